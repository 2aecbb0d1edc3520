"""The connection manager over real sockets against an in-test exchange."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web
from wsharness import Exchange, SeqVenue, assert_continuous, http_route, trade_ids, until

from hundi.accounting import Accounting
from hundi.capture.events import (
    ABANDONED_OWED,
    ABANDONED_OWED_DETAIL,
    NO_ANSWER_AT_STOP,
    NO_ANSWER_DETAIL,
    STOPPED_ASKING,
    STOPPED_ASKING_DETAIL,
    CaptureEvent,
    CaptureKind,
)
from hundi.capture.replay import replay_events
from hundi.connection.client import AiohttpClient, PicowsClient, WsClient, WsConnectError
from hundi.connection.manager import ConnectionManager, ConnectionSettings
from hundi.exchanges.base import FrameStatus, RecordSink, RestRequest, RestResponse

FAST = ConnectionSettings(
    backoff_initial_s=0.05,
    backoff_cap_s=0.4,
    healthy_after_s=0.5,
    stale_after_s=5.0,
    connect_timeout_s=2.0,
    overlap_s=0.1,
    rollover_wait_s=2.0,
    tick_s=0.02,
)

CLIENTS: list[Callable[[], WsClient]] = [PicowsClient, AiohttpClient]


@pytest.fixture
async def exchange() -> AsyncIterator[Exchange]:
    ex = await Exchange().start()
    yield ex
    await ex.close()


def settings(**changes: float | None) -> ConnectionSettings:
    values = {name: getattr(FAST, name) for name in FAST.__slots__}
    values.update(changes)
    return ConnectionSettings(**values)  # type: ignore[arg-type]


class Running:
    """A manager running in the background of a test."""

    def __init__(self, venue: SeqVenue, client: WsClient, config: ConnectionSettings) -> None:
        self.venue = venue
        self.sink = RecordSink()
        self.accounting = Accounting()
        self.quarantined: list[tuple[str, str, bytes]] = []
        self.captured: list[tuple[CaptureKind, str, str, bytes | str, int]] = []
        self.events: list[CaptureEvent] = []  # the same, as a capture file holds them
        self.manager = ConnectionManager(
            venue,
            self.sink,
            self.accounting,
            client,
            settings=config,
            capture=self._capture,
            quarantine=lambda ts, conn, reason, data: self.quarantined.append((conn, reason, data)),
        )
        self.task = asyncio.create_task(self.manager.run())

    def _capture(
        self,
        kind: CaptureKind,
        ts_ns: int,
        conn: str,
        url: str = "",
        data: bytes | str = b"",
        status: int = 0,
    ) -> None:
        self.captured.append((kind, conn, url, data, status))
        raw = data.encode() if isinstance(data, str) else data
        self.events.append(CaptureEvent(kind, ts_ns, conn, url, raw, status))

    async def until(
        self, condition: Callable[[], bool], within: float = 60.0, what: str = "condition"
    ) -> None:
        """``until``, failing at once if the manager ended instead."""

        def reached() -> bool:
            if condition():
                return True
            assert not self.task.done(), self.task
            return False

        await until(reached, within, what)

    async def stop(self) -> None:
        self.manager.stop()
        await asyncio.wait_for(self.task, 10)


@pytest.mark.parametrize("client", CLIENTS)
async def test_streams_frames_and_sends_paced_subscriptions(
    exchange: Exchange, client: Callable[[], WsClient]
) -> None:
    venue = SeqVenue(exchange.url, subscribe=(b'{"sub":1}', b'{"sub":2}'), rate=10.0)
    run = Running(venue, client(), FAST)
    await run.until(lambda: len(exchange.received) == 2 and len(run.sink.trades) > 20)
    await run.stop()
    assert exchange.received == ['{"sub":1}', '{"sub":2}']
    assert venue.opens == ["main"] and venue.closes == ["main"]
    assert_continuous(trade_ids(run.sink))
    assert run.accounting.balanced()
    assert run.accounting.processed == len(run.sink.trades)


async def test_subscriptions_respect_the_outgoing_rate(exchange: Exchange) -> None:
    venue = SeqVenue(exchange.url, subscribe=(b"1", b"2", b"3"), rate=5.0)
    run = Running(venue, PicowsClient(), FAST)
    await run.until(lambda: len(exchange.received) == 1)
    first_seen = time.monotonic()
    await run.until(lambda: len(exchange.received) == 3)
    await run.stop()
    # Three messages at 5/s need two 0.2 s gaps.
    assert time.monotonic() - first_seen >= 0.35
    assert exchange.received == ["1", "2", "3"]


async def test_rejected_and_buggy_frames_are_counted_and_quarantined(
    exchange: Exchange, caplog: pytest.LogCaptureFixture
) -> None:
    venue = SeqVenue(exchange.url)
    run = Running(venue, PicowsClient(), FAST)
    await run.until(lambda: len(run.sink.trades) > 3)
    with caplog.at_level(logging.ERROR, logger="hundi.connection"):
        for _ in range(3):
            exchange.send_all("not json")
            exchange.send_all('{"boom": 1}')
        exchange.send_all('{"ack": 1}')
        await run.until(lambda: run.accounting.filtered == 1)
    count = len(run.sink.trades)
    await run.until(lambda: len(run.sink.trades) > count + 3)  # still collecting
    await run.stop()
    assert run.accounting.rejected == {"malformed": 3, "internal_error": 3}
    assert run.accounting.balanced()
    assert sorted({reason for _, reason, _ in run.quarantined}) == ["internal_error", "malformed"]
    bug_logs = [r for r in caplog.records if "internal_error" in r.getMessage()]
    assert len(bug_logs) == 1 and bug_logs[0].exc_info is not None


@pytest.mark.parametrize("client", CLIENTS)
async def test_reconnects_after_the_server_drops_us(
    exchange: Exchange, client: Callable[[], WsClient]
) -> None:
    venue = SeqVenue(exchange.url)
    run = Running(venue, client(), FAST)
    await run.until(lambda: len(run.sink.trades) > 5)
    exchange.drop_all()
    await run.until(lambda: run.accounting.reconnects == 1 and exchange.connects == 2)
    count = len(run.sink.trades)
    await run.until(lambda: len(run.sink.trades) > count + 5)
    await run.stop()
    assert venue.opens == ["main", "main"]
    assert venue.closes == ["main", "main"]  # the drop, then our own stop
    assert run.manager.stats["main"].reconnects == 1
    assert [e.kind for e in run.sink.events].count("reconnect") == 1


async def test_unreachable_endpoint_is_retried_with_backoff_until_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    venue = SeqVenue(f"ws://127.0.0.1:{port}/stream")
    caplog.set_level(logging.WARNING, logger="hundi.connection")
    started = time.monotonic()
    run = Running(venue, PicowsClient(), settings(backoff_initial_s=0.1, backoff_cap_s=0.2))
    await run.until(lambda: run.manager.stats["main"].connect_failures >= 3)
    await asyncio.sleep(0.5)  # time passing on purpose: more retries, at the backoff's pace
    failures = run.manager.stats["main"].connect_failures
    # Never an instant loop: delays are at least 0.01 s and average ~0.1 s here.
    assert failures <= 40 * (time.monotonic() - started)
    retries = [r.getMessage() for r in caplog.records if "retry #" in r.getMessage()]
    assert len(retries) == failures
    assert all("cannot connect" in message for message in retries)
    ex = await Exchange().start(port)
    try:
        await run.until(lambda: len(run.sink.trades) > 3)
        await run.stop()
    finally:
        await ex.close()
    assert venue.opens == ["main"]


@pytest.mark.parametrize("client", CLIENTS)
async def test_server_pings_are_answered(
    exchange: Exchange, client: Callable[[], WsClient]
) -> None:
    run = Running(SeqVenue(exchange.url), client(), FAST)
    await run.until(lambda: len(exchange.clients) == 1)
    server_side = next(iter(exchange.clients))
    pong = await server_side.ping(b"are you there")
    latency = await asyncio.wait_for(pong, 2.0)
    await run.stop()
    assert latency >= 0


@pytest.mark.slow
async def test_pings_keep_a_silent_stream_alive(exchange: Exchange) -> None:
    exchange.running = False
    run = Running(SeqVenue(exchange.url), PicowsClient(), settings(stale_after_s=0.3))
    await run.until(lambda: len(exchange.clients) == 1)
    server_side = next(iter(exchange.clients))
    for _ in range(10):  # 1 s of pings and no data: over three stale windows on purpose
        await server_side.ping()
        await asyncio.sleep(0.1)
    await run.stop()
    assert run.manager.stats["main"].stale_reconnects == 0
    assert exchange.connects == 1


@pytest.mark.slow
async def test_stale_stream_reconnects_with_growing_delays(exchange: Exchange) -> None:
    exchange.running = False  # a connected but silent exchange
    config = settings(stale_after_s=0.2, stale_backoff_initial_s=0.2, stale_backoff_cap_s=5.0)
    connected_at: list[float] = []
    venue = SeqVenue(exchange.url)
    original = venue.on_open

    def on_open(conn_key: str, now_ns: int, out: RecordSink) -> None:
        connected_at.append(time.monotonic())
        original(conn_key, now_ns, out)

    venue.on_open = on_open  # type: ignore[method-assign]
    run = Running(venue, PicowsClient(), config)
    await run.until(lambda: len(connected_at) == 4, within=60)
    await run.stop()
    intervals = [b - a for a, b in itertools.pairwise(connected_at)]
    # Interval n = stale window (0.2 s) + a delay in [0.1 * 2**n, 0.2 * 2**n].
    for n, interval in enumerate(intervals):
        assert interval >= 0.2 + 0.1 * 2**n - 0.02
    assert intervals[2] > intervals[0]
    assert run.manager.stats["main"].stale_reconnects == 3
    assert [e.kind for e in run.sink.events].count("stale") == 3


@pytest.mark.slow
async def test_lifetime_rollover_keeps_the_stream_continuous(exchange: Exchange) -> None:
    venue = SeqVenue(exchange.url)
    run = Running(venue, PicowsClient(), settings(lifetime_s=0.4))
    await run.until(lambda: run.manager.stats["main"].rollovers >= 3, within=60)
    await run.stop()
    assert venue.opens == ["main"]  # the protocol never saw the socket change: book kept
    assert venue.closes == ["main"]  # only our final stop
    assert_continuous(trade_ids(run.sink))
    assert run.accounting.reconnects == run.manager.stats["main"].rollovers
    assert exchange.connects >= 4


async def test_venue_requested_reconnect_is_make_before_break(exchange: Exchange) -> None:
    venue = SeqVenue(exchange.url)
    run = Running(venue, PicowsClient(), FAST)
    await run.until(lambda: len(run.sink.trades) > 10)
    exchange.send_all('{"shutdown": 1}')
    await run.until(lambda: run.manager.stats["main"].rollovers == 1)
    count = len(run.sink.trades)
    await run.until(lambda: len(run.sink.trades) > count + 10)
    await run.stop()
    assert venue.opens == ["main"]
    assert_continuous(trade_ids(run.sink))
    assert exchange.connects == 2


async def test_pause_reading_stops_delivery_until_resumed(exchange: Exchange) -> None:
    run = Running(SeqVenue(exchange.url), PicowsClient(), settings(stale_after_s=0.3))
    await run.until(lambda: len(run.sink.trades) > 5)
    run.manager.pause_reading()
    paused_at = len(run.sink.trades)  # delivery is synchronous: nothing more once paused
    await asyncio.sleep(0.5)  # longer than the stale window: pausing must not look stale
    assert len(run.sink.trades) == paused_at
    run.manager.resume_reading()
    await run.until(lambda: len(run.sink.trades) > paused_at + 50)
    await run.stop()
    assert_continuous(trade_ids(run.sink))  # the socket buffered; nothing lost
    assert run.manager.stats["main"].stale_reconnects == 0


async def test_rest_requests_are_served_and_transport_errors_become_599(
    exchange: Exchange,
) -> None:
    async def snapshot(request: web.Request) -> web.Response:
        return web.Response(body=b'{"lastUpdateId": 7}', content_type="application/json")

    async with http_route("GET", "/depth", snapshot) as url:
        ok = SeqVenue(exchange.url, rest_url=url)
        run = Running(ok, PicowsClient(), FAST)
        await run.until(lambda: len(ok.responses) == 1)
        await run.stop()
    assert ok.responses[0].status == 200
    assert ok.responses[0].body == b'{"lastUpdateId": 7}'

    down = SeqVenue(exchange.url, rest_url=url)  # the server is gone
    run = Running(down, PicowsClient(), FAST)
    await run.until(lambda: len(down.responses) == 1)
    await run.stop()
    assert down.responses[0].status == 599
    port = url.split(":")[2].split("/")[0]
    # in words, never "ClientConnectorError ... ssl:default [Connect call failed ...]"
    assert (
        down.responses[0].body == f"cannot connect to 127.0.0.1:{port}: connection refused".encode()
    )


@pytest.mark.slow
@pytest.mark.parametrize("client", CLIENTS)
async def test_a_refused_connect_says_what_failed_in_words(client: Callable[[], WsClient]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(WsConnectError) as refused:
        await client().connect(f"ws://127.0.0.1:{port}/stream", lambda _: None)
    assert str(refused.value) == f"cannot connect to 127.0.0.1:{port}: connection refused"


@pytest.mark.slow
async def test_a_clean_stop_is_a_stopped_event_not_a_gap(exchange: Exchange) -> None:
    """Stopping (--duration, SIGTERM) ends the stream by choice: one ``stopped`` event for the
    connection, and the venue's closing gap becomes ``stopped`` too (its resync dropped), with
    the stop's reason; a drop before it stays a gap."""
    venue = SeqVenue(exchange.url)
    run = Running(venue, PicowsClient(), FAST)
    await run.until(lambda: len(run.sink.trades) > 3)
    run.manager.stop("duration 3s reached")
    await asyncio.wait_for(run.task, 10)
    kinds = [(e.kind, e.symbol, e.detail) for e in run.sink.events]
    assert kinds == [
        ("stopped", "", "main: collector stopping: duration 3s reached"),
        ("stopped", "X-USD", "collector stopping: duration 3s reached"),
    ], kinds
    assert venue.closes == ["main"]  # the venue still hears the close


async def test_stale_event_reports_the_silence_that_was_judged(exchange: Exchange) -> None:
    """The silence is measured when staleness is decided, not after the close handshake
    (whose frames used to reset it: "nothing received for 0.0s")."""
    exchange.running = False
    run = Running(SeqVenue(exchange.url), PicowsClient(), settings(stale_after_s=0.3))
    await run.until(lambda: any(e.kind == "stale" for e in run.sink.events))
    await run.stop()
    stale = next(e for e in run.sink.events if e.kind == "stale")
    found = re.search(r"nothing received for ([0-9.]+)s", stale.detail)
    assert found, stale.detail
    assert 0.3 <= float(found.group(1)) < 5.0


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.slow
async def test_a_large_frame_still_arriving_is_not_stale(
    exchange: Exchange, client: Callable[[], WsClient]
) -> None:
    """Bytes arriving are life: one frame that takes four stale windows to arrive (a large
    frame on a slow link) is received whole on the same connection."""
    exchange.running = False
    run = Running(SeqVenue(exchange.url), client(), settings(stale_after_s=0.3))
    await run.until(lambda: len(exchange.clients) == 1)
    big = json.dumps({"s": "X", "seq": 1, "p": 100.0, "pad": "x" * 4_000_000}).encode()
    await exchange.trickle(big, chunks=40, every=0.03)  # 1.2 s for one frame
    await run.until(lambda: len(run.sink.trades) == 1)
    await run.stop()
    assert run.manager.stats["main"].stale_reconnects == 0
    assert exchange.connects == 1


class OwingVenue(SeqVenue):
    """Owes one REST answer at the stop (a gap's trades being fetched back)."""

    def __init__(self, url: str, rest_url: str) -> None:
        super().__init__(url)
        self.owed_url = rest_url
        self.asked = False
        self.abandoned: list[int] = []

    def finishing_requests(self, now_ns: int) -> list[RestRequest] | None:
        if self.responses:
            return None
        if self.asked:
            return []
        self.asked = True
        return [RestRequest(key="owed", url=self.owed_url)]

    def abandon(self, now_ns: int, out: RecordSink) -> None:
        self.abandoned.append(now_ns)


async def test_a_stop_first_fetches_what_is_owed(exchange: Exchange) -> None:
    async def trades(request: web.Request) -> web.Response:
        return web.Response(body=b"[]", content_type="application/json")

    async with http_route("GET", "/aggTrades", trades) as url:
        venue = OwingVenue(exchange.url, url)
        run = Running(venue, PicowsClient(), FAST)
        await run.until(lambda: len(venue.opens) == 1)
        assert not venue.asked  # owed only matters once stopping
        await run.stop()
    assert venue.asked and [r.status for r in venue.responses] == [200]
    assert venue.abandoned == []
    # the replay asks what the stop owed too: the captured answer is used, not left over
    again = OwingVenue(exchange.url, url)
    stats = replay_events(run.events, again, lambda b: None, Accounting())
    assert (stats.rest_answered, stats.rest_unanswered, stats.rest_unused) == (1, 0, 0)
    assert again.responses[0].body == b"[]" and again.abandoned == []


async def test_what_is_still_owed_after_the_bound_is_handed_back(exchange: Exchange) -> None:
    never = asyncio.Event()

    async def hangs(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response(body=b"[]")

    async with http_route("GET", "/aggTrades", hangs) as url:
        venue = OwingVenue(exchange.url, url)
        run = Running(venue, PicowsClient(), settings(finish_owed_s=0.3))
        await run.until(lambda: len(venue.opens) == 1)
        await run.stop()
        never.set()
    # no answer, not even the 599 a REST timeout (10 s) would give: finish_owed_s bounded it
    assert venue.asked and venue.responses == [] and len(venue.abandoned) == 1
    # the capture says the stop came before the answer, so a replay knows it was not lost
    # and marks when the stop stopped asking and when it gave up on what was owed
    rest = [c for c in run.captured if c[0] is CaptureKind.REST]
    assert rest == [
        (CaptureKind.REST, "main", "", STOPPED_ASKING_DETAIL, STOPPED_ASKING),
        (CaptureKind.REST, "main", "", ABANDONED_OWED_DETAIL, ABANDONED_OWED),
        (CaptureKind.REST, "owed", url, NO_ANSWER_DETAIL, NO_ANSWER_AT_STOP),
    ]
    again = OwingVenue(exchange.url, url)
    stats = replay_events(run.events, again, lambda b: None, Accounting())
    assert (stats.rest_stopped, stats.rest_unanswered, stats.rest_unused) == (1, 0, 0)
    mark = next(e for e in run.events if e.status == ABANDONED_OWED)
    assert again.abandoned == [mark.ts]  # where the live stop gave up


class AsksWhenTold(SeqVenue):
    """Wants one REST call after a ``{"want": 1}`` frame (as a venue wants a snapshot after a
    frame shows its book out of sync); ``told`` runs right after that frame."""

    def __init__(self, url: str, rest_url: str, told: Callable[[], None] = lambda: None) -> None:
        super().__init__(url, rest_url=rest_url)
        self.rest_due = False
        self.told = told

    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        if b'"want"' in data:
            self.rest_due = True
            asyncio.get_running_loop().call_soon(self.told)
            return FrameStatus.FILTERED
        return super().receive(conn_key, data, recv_ns, out)


async def test_a_request_due_as_the_stop_comes_is_asked_so_the_capture_replays_whole(
    exchange: Exchange,
) -> None:
    """A frame makes a REST call due and the stop comes before the REST loop's next look
    (it looks every 100 ms): the stop's last look asks it and the capture marks that moment.
    The replay asked it after the frame and found no answer for it in the capture: a faithful
    capture read as INCOMPLETE (seen once in CI on the Bitfinex drop-trades test)."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=b"{}", content_type="application/json")

    async with http_route("GET", "/depth", answer) as url:
        exchange.running = False
        venue = AsksWhenTold(exchange.url, url)
        run = Running(venue, PicowsClient(), FAST)
        venue.told = run.manager.stop  # before the REST loop can look again
        await run.until(lambda: len(venue.opens) == 1)
        exchange.send_all(json.dumps({"want": 1}))
        await asyncio.wait_for(run.task, 10)
    statuses = [e.status for e in run.events if e.kind is CaptureKind.REST]
    assert statuses[0] == STOPPED_ASKING
    assert len([s for s in statuses if s >= 0]) == 1  # its answer, or: the stop came first
    stats = replay_events(run.events, AsksWhenTold(exchange.url, url), lambda b: None, Accounting())
    rest = (stats.rest_answered + stats.rest_stopped, stats.rest_unanswered, stats.rest_unused)
    assert rest == (1, 0, 0)


class OwesAfterAGap(OwingVenue):
    """Owes, as OwingVenue, only once a ``{"gap": 1}`` frame came (a trade-id jump); ``told``
    runs at a ``{"want": 1}`` frame."""

    def __init__(self, url: str, rest_url: str, told: Callable[[], None] = lambda: None) -> None:
        super().__init__(url, rest_url)
        self.owed = False
        self.told = told

    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        if b'"want"' in data:
            self.told()
            return FrameStatus.FILTERED
        if b'"gap"' in data:
            self.owed = True
            return FrameStatus.FILTERED
        return super().receive(conn_key, data, recv_ns, out)

    def finishing_requests(self, now_ns: int) -> list[RestRequest] | None:
        return super().finishing_requests(now_ns) if self.owed else None


@pytest.mark.parametrize("client", CLIENTS)
async def test_what_a_frame_read_after_the_stop_began_owes_is_fetched_and_replayed(
    exchange: Exchange, client: Callable[[], WsClient]
) -> None:
    """A frame read between the stop's mark and the REST loop's first look at what is owed
    makes trades owed: live fetches them, and the replay (which once decided at the mark that
    nothing was owed) asks and uses the same answer. Found by review: a reproducer failed 3 of
    3 with picows."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=b"[]", content_type="application/json")

    async with http_route("GET", "/hist", answer) as url:
        exchange.running = False
        runs: list[Running] = []

        def told() -> None:
            exchange.send_all(json.dumps({"gap": 1}))  # on its way as the stop begins
            asyncio.get_running_loop().call_soon(runs[0].manager.stop)

        venue = OwesAfterAGap(exchange.url, url, told)
        runs.append(Running(venue, client(), settings(finish_owed_s=2.0)))
        run = runs[0]
        await run.until(lambda: len(venue.opens) == 1)
        exchange.send_all(json.dumps({"want": 1}))
        await asyncio.wait_for(run.task, 10)
    again = OwesAfterAGap(exchange.url, url)
    stats = replay_events(run.events, again, lambda b: None, Accounting())
    order = [(e.kind.value, e.status) for e in run.events]
    assert (venue.asked, len(venue.responses)) == (again.asked, len(again.responses)), order
    assert (stats.rest_unanswered, stats.rest_unused) == (0, 0), order


PAGE_NS = 30_000_000


class PagesForever(SeqVenue):
    """Once stopping, owes pages without end, one in flight, one per 30 ms (as Bitfinex pages
    its trade history)."""

    def __init__(self, url: str, rest_url: str) -> None:
        super().__init__(url)
        self.page_url = rest_url
        self.in_flight = False
        self.next_ns = 0
        self.asked: list[int] = []
        self.abandoned: list[int] = []

    def finishing_requests(self, now_ns: int) -> list[RestRequest] | None:
        if self.in_flight or now_ns < self.next_ns:
            return []
        self.in_flight = True
        self.next_ns = now_ns + PAGE_NS
        self.asked.append(now_ns)
        return [RestRequest(key="page", url=f"{self.page_url}?n={len(self.asked)}")]

    def next_wakeup_ns(self) -> int | None:
        return None if self.in_flight or not self.asked else self.next_ns

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        self.in_flight = False
        self.responses.append(response)

    def abandon(self, now_ns: int, out: RecordSink) -> None:
        self.abandoned.append(now_ns)


@pytest.mark.parametrize("attempt", range(6))
async def test_paced_owed_pages_cut_by_the_bound_replay_whole(
    exchange: Exchange, attempt: int
) -> None:
    """The replay paces from wake-up times, live from its looks (a little later), so when the
    bound cuts the paging the replay may have asked one page more than live: that page was
    asked after the stop began and counts as stopped, not missing (a reproducer failed ~1 in
    12 with INCOMPLETE)."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=b"[]", content_type="application/json")

    async with http_route("GET", "/hist", page) as url:
        venue = PagesForever(exchange.url, url)
        run = Running(venue, PicowsClient(), settings(finish_owed_s=0.25 + attempt * 0.0037))
        await run.until(lambda: len(venue.opens) == 1)
        await run.stop()
    assert venue.abandoned and len(venue.asked) > 2
    again = PagesForever(exchange.url, url)
    stats = replay_events(run.events, again, lambda b: None, Accounting())
    assert (stats.rest_unanswered, stats.rest_unused) == (0, 0)
    assert stats.rest_answered >= len(venue.responses)
    mark = next(e for e in run.events if e.status == ABANDONED_OWED)
    assert again.abandoned == [mark.ts]


class RaisesWhenStopping(SeqVenue):
    stopping = False

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        if self.stopping:
            raise KeyError("a bug in the venue")
        return []


async def test_a_venue_raising_at_the_stops_last_look_still_stops(
    exchange: Exchange, caplog: pytest.LogCaptureFixture
) -> None:
    venue = RaisesWhenStopping(exchange.url)
    run = Running(venue, PicowsClient(), FAST)
    await run.until(lambda: len(venue.opens) == 1)
    venue.stopping = True
    with caplog.at_level(logging.ERROR):
        await run.stop()  # would hang (the stop flag never set) or raise
    assert "last look at REST requests" in caplog.text
    assert any(e.status == STOPPED_ASKING for e in run.events)
