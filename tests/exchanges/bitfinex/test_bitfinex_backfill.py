"""Bitfinex trades missed in a break, fetched back over REST ``/v2/trades/{symbol}/hist``."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest

from hundi.exchanges.base import RecordSink, RestPurpose, RestRequest, RestResponse, VenueConfig
from hundi.exchanges.bitfinex import BitfinexVenue
from hundi.exchanges.bitfinex.protocol import BitfinexProtocol
from hundi.records import Channel, EventKind

T0 = 1_700_000_000_000_000_000
T0_MS = T0 // 1_000_000
MS = 1_000_000
CONN = "public-0"


class Feed:
    """A protocol subscribed to tBTCUSD trades (chanId 5) with sequence numbers."""

    def __init__(self, **options: str) -> None:
        config = VenueConfig("spot", ("tBTCUSD",), (Channel.TRADES,), options=dict(options))
        self.p: BitfinexProtocol = BitfinexVenue(config)
        self.seq = 0
        self.chan = 5
        listings = self.p.due_requests(T0 - 1)  # asked once; left unanswered here
        assert {r.purpose for r in listings} == {RestPurpose.SYMBOL_LISTING}
        self.greet()

    def send(self, frame: object, out: RecordSink, at_ms: int = T0_MS) -> None:
        self.p.receive(CONN, msgspec.json.encode(frame), at_ms * MS, out)

    def greet(self, out: RecordSink | None = None) -> None:
        out = out if out is not None else RecordSink()
        self.seq = 0
        self.send({"event": "info", "version": 2}, out)
        self.send({"event": "conf", "status": "OK", "flags": 65536}, out)
        self.send({"event": "subscribed", "channel": "trades", "chanId": self.chan,
                   "symbol": "tBTCUSD"}, out)  # fmt: skip

    def frame(self, payload: list[object], out: RecordSink, skip: int = 0) -> None:
        self.seq += 1 + skip
        self.send([self.chan, *payload, self.seq], out)

    def snapshot(self, trades: list[list[object]], out: RecordSink) -> None:
        self.frame([trades], out)

    def te(self, trade: list[object], out: RecordSink, skip: int = 0) -> None:
        self.frame(["te", trade], out, skip)


def trade(trade_id: int, ms: int) -> list[object]:
    return [trade_id, T0_MS + ms, 0.5, 100.0 + trade_id]


def hist(request: RestRequest) -> tuple[str, dict[str, str]]:
    parts = urlsplit(request.url)
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}


def answer(
    f: Feed, request: RestRequest, trades: list[list[object]], at_ms: int, status: int = 200
) -> RecordSink:
    out = RecordSink()
    body = msgspec.json.encode(trades) if status == 200 else b'["error",10020,"down"]'
    f.p.receive_response(request, RestResponse(status, body), at_ms * MS, out)
    return out


def dropped(f: Feed, **_: object) -> RecordSink:
    """Trades 10, 11 stored; the connection drops; a new socket's snapshot has 11, 12; the
    first live trade after it is 15 (at +50 ms)."""
    out = RecordSink()
    f.snapshot([trade(11, 10), trade(10, 5)], out)
    f.p.on_close(CONN, (T0_MS + 20) * MS, out)
    f.chan = 6
    f.greet(out)
    f.snapshot([trade(12, 30), trade(11, 10)], out)
    assert f.p.due_requests((T0_MS + 40) * MS) == [], "the snapshot does not end the window"
    f.te(trade(15, 50), out)
    return out


def test_a_drop_opens_a_window_the_first_live_trade_closes_and_rest_fills() -> None:
    f = Feed()
    out = dropped(f)
    assert [t.trade_id for t in out.trades] == [10, 11, 12, 15]
    gap = next(e for e in out.events if e.kind == EventKind.GAP)
    assert (gap.channel, gap.expected, gap.received) == ("trades", -1, -1)
    assert f.p.owed_ids() == 1
    (request,) = f.p.due_requests((T0_MS + 60) * MS)
    assert request.purpose is RestPurpose.TRADE_BACKFILL
    path, query = hist(request)
    assert path == "/v2/trades/tBTCUSD/hist"
    assert request.url.startswith("https://api-pub.bitfinex.com/")
    assert query == {"start": str(T0_MS + 10), "end": str(T0_MS + 50), "limit": "10000",
                     "sort": "1"}  # fmt: skip
    assert f.p.due_requests((T0_MS + 70) * MS) == [], "one request in flight"
    got = answer(f, request, [trade(11, 10), trade(12, 30), trade(13, 35), trade(14, 40),
                              trade(15, 50)], T0_MS + 80)  # fmt: skip
    assert [t.trade_id for t in got.trades] == [13, 14], "each trade stored once"
    assert got.trades[0].ts == (T0_MS + 35) * MS and got.trades[0].recv_ts == (T0_MS + 80) * MS
    (event,) = got.events
    assert (event.kind, event.channel, event.symbol) == (EventKind.BACKFILLED, "trades", "BTC-USD")
    assert (event.expected, event.received) == (13, 15)
    assert "5 fetched over REST, 2 stored" in event.detail and "closed" in event.detail
    assert f.p.owed_ids() == 0 and f.p.finishing_requests((T0_MS + 90) * MS) is None


def test_a_skipped_sequence_window_ends_at_the_frame_that_revealed_it() -> None:
    f = Feed(backfill_interval_ms="1000")
    out = RecordSink()
    f.snapshot([trade(10, 5)], out)
    f.te(trade(20, 100), out, skip=1)  # the number before it never came
    assert [e.detail for e in out.events if e.kind == EventKind.GAP] == [
        "public-0 skipped sequence"
    ]
    (request,) = f.p.due_requests((T0_MS + 110) * MS)
    _, query = hist(request)
    assert (query["start"], query["end"]) == (str(T0_MS + 5), str(T0_MS + 100))
    got = answer(f, request, [trade(10, 5), trade(17, 60), trade(20, 100)], T0_MS + 120)
    assert [t.trade_id for t in got.trades] == [17]


def test_full_pages_are_followed_from_their_last_ms_paced_by_the_interval() -> None:
    f = Feed(backfill_limit="2", backfill_interval_ms="4000")
    dropped(f)
    (first,) = f.p.due_requests((T0_MS + 60) * MS)
    got = answer(f, first, [trade(11, 10), trade(13, 35)], T0_MS + 100)
    assert [t.trade_id for t in got.trades] == [13] and not got.events
    assert f.p.due_requests((T0_MS + 3000) * MS) == [], "15 requests a minute"
    assert f.p.next_wakeup_ns() == (T0_MS + 4060) * MS
    (second,) = f.p.due_requests((T0_MS + 4060) * MS)
    assert hist(second)[1]["start"] == str(T0_MS + 35)
    got = answer(f, second, [trade(14, 40)], T0_MS + 4100)  # a short page: the window is done
    assert [t.trade_id for t in got.trades] == [14]
    (event,) = got.events
    assert event.kind == EventKind.BACKFILLED and (event.expected, event.received) == (13, 15)


def test_failures_are_retried_with_back_off_then_unrecoverable() -> None:
    f = Feed(backfill_interval_ms="100")
    dropped(f)
    now = T0_MS + 60
    for attempt in range(5):
        (request,) = f.p.due_requests(now * MS)
        got = answer(f, request, [], now + 1, status=500 if attempt else 429)
        wake = f.p.next_wakeup_ns()
        if attempt == 0:
            assert wake is not None and wake >= (now + 60_000) * MS, "429: a minute"
        assert f.p.due_requests((now + 2) * MS) == []
        now = (wake or 0) // MS if attempt < 4 else now
    (event,) = got.events
    assert (event.kind, event.expected, event.received) == (EventKind.UNRECOVERABLE, -1, -1)
    assert "REST failed 5 times (last status 500)" in event.detail
    assert f.p.owed_ids() == 0


def test_a_window_past_its_page_budget_is_partly_unrecoverable() -> None:
    f = Feed(backfill_limit="1", backfill_requests_per_gap="1")
    dropped(f)
    (request,) = f.p.due_requests((T0_MS + 60) * MS)
    got = answer(f, request, [trade(13, 35)], T0_MS + 70)
    assert [t.trade_id for t in got.trades] == [13]
    backfilled, lost = got.events
    assert backfilled.kind == EventKind.BACKFILLED and lost.kind == EventKind.UNRECOVERABLE
    assert f"trades {T0_MS + 35}..{T0_MS + 50} ms" in lost.detail
    assert "at most 1 trades/hist pages" in lost.detail


def test_clean_stop_finishes_owed_windows_then_abandons_them() -> None:
    f = Feed(backfill_interval_ms="10000")
    assert f.p.finishing_requests(T0) is None
    dropped(f)
    (request,) = f.p.finishing_requests((T0_MS + 60) * MS) or []
    assert f.p.finishing_requests((T0_MS + 61) * MS) == [], "waiting for the answer"
    answer(f, request, [trade(13, 35)], T0_MS + 62)
    assert f.p.finishing_requests((T0_MS + 63) * MS) is None
    # a second break; its window is owed when the collector stops
    out = RecordSink()
    f.te(trade(30, 200), out, skip=2)
    assert f.p.finishing_requests((T0_MS + 300) * MS) == [], "paced"
    f.p.on_close(CONN, (T0_MS + 400) * MS, out)  # the stop closes the socket: an open window
    out = RecordSink()
    f.p.abandon((T0_MS + 500) * MS, out)
    (event,) = out.events
    assert event.kind == EventKind.UNRECOVERABLE
    assert "the collector stopped first" in event.detail
    assert f.p.owed_ids() == 0 and f.p.finishing_requests((T0_MS + 600) * MS) is None


def test_backfill_off_opens_no_window() -> None:
    f = Feed(backfill="false")
    dropped(f)
    assert f.p.due_requests((T0_MS + 60) * MS) == [] and f.p.owed_ids() == 0


def test_ids_are_remembered_past_the_usual_bound_while_a_window_is_owed() -> None:
    f = Feed(backfill_interval_ms="0")
    out = dropped(f)
    for n in range(5000):  # more live trades than the 4096 usually remembered
        f.te(trade(100 + n, 60 + n), out)
    (request,) = f.p.due_requests((T0_MS + 6000) * MS)
    got = answer(f, request, [trade(13, 35), trade(100, 60)], T0_MS + 6001)
    assert [t.trade_id for t in got.trades] == [13]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backfill_limit": "0"}, "backfill_limit must be an integer 1..10000"),
        ({"backfill_limit": "20000"}, "backfill_limit must be an integer 1..10000"),
        ({"backfill_interval_ms": "soon"}, "backfill_interval_ms must be an integer"),
        ({"backfill_requests_per_gap": "0"}, "backfill_requests_per_gap must be an integer"),
        ({"backfill": "maybe"}, "backfill must be true or false"),
    ],
)
def test_backfill_option_errors_are_one_line(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        Feed(**options)
    assert "\n" not in str(error.value)


def test_on_a_quiet_market_the_first_heartbeat_after_the_snapshot_ends_the_window() -> None:
    f = Feed()
    out = RecordSink()
    f.snapshot([trade(10, 5)], out)
    f.p.on_close(CONN, (T0_MS + 20) * MS, out)
    f.chan = 6
    f.greet(out)
    f.send([6, "hb", 1], out, at_ms=T0_MS + 25)  # a beat before the snapshot: not yet
    f.seq = 1
    assert f.p.owed_ids() == 0
    f.snapshot([trade(10, 5)], out)
    f.seq += 1
    f.send([6, "hb", f.seq], out, at_ms=T0_MS + 15_000)
    (request,) = f.p.due_requests((T0_MS + 15_001) * MS)
    _, query = hist(request)
    assert (query["start"], query["end"]) == (str(T0_MS + 5), str(T0_MS + 15_000))
