"""Authenticated streams in the connection manager: URLs and messages built at each open by the
protocol, waiting while it is not ready, and never a credential in logs or captures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from test_manager import FAST, Running, settings
from wsharness import Exchange, SeqVenue, assert_continuous, http_route, trade_ids, until

from hundi.accounting import Accounting
from hundi.capture.events import STOPPED_ASKING, CaptureKind
from hundi.connection.client import PicowsClient
from hundi.connection.manager import REDACTED, ConnectionManager
from hundi.exchanges.base import (
    Opening,
    RecordSink,
    RestRequest,
    StreamSpec,
)

TOKEN, SIGNATURE, API_KEY = "tok3n-SECRET", "sig-SECRET", "apikey-SECRET"


@pytest.fixture
async def exchange() -> AsyncIterator[Exchange]:
    ex = await Exchange().start()
    yield ex
    await ex.close()


class PrivateVenue(SeqVenue):
    """One private stream: not ready until ``ready``; each open signs a fresh message."""

    def __init__(self, url: str, rest_url: str = "") -> None:
        super().__init__(url, rest_url=rest_url)
        self.ready = False
        self.openings = 0

    def connections(self) -> list[StreamSpec]:
        return [StreamSpec(key="main", url=self.url, private=True)]

    def opening(self, spec: StreamSpec, now_ns: int) -> Opening | None:
        if not self.ready:
            return None
        self.openings += 1
        return Opening(
            f"{self.url}?token={TOKEN}", (f'{{"auth":"{SIGNATURE}{self.openings}"}}'.encode(),)
        )

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        if self.rest_due:
            self.rest_due = False
            return [
                RestRequest("key", self.rest_url, 1, "POST", {"X-API-KEY": API_KEY}, private=True)
            ]
        return []


async def test_private_stream_waits_then_opens_with_fresh_signed_messages(
    exchange: Exchange, caplog: pytest.LogCaptureFixture
) -> None:
    venue = PrivateVenue(exchange.url)
    captured: list[tuple[CaptureKind, str, str, bytes | str]] = []
    sink = RecordSink()
    manager = ConnectionManager(
        venue, sink, Accounting(), PicowsClient(), settings=FAST,
        capture=lambda kind, ts, conn, url="", data=b"", status=0: captured.append(
            (kind, conn, url, data)
        ),
    )  # fmt: skip
    with caplog.at_level(logging.DEBUG):
        task = asyncio.create_task(manager.run())
        await asyncio.sleep(0.3)  # time passing on purpose: a while of not being ready
        assert exchange.connects == 0  # not ready: no network attempt at all
        assert manager.stats["main"].connect_failures == 0
        venue.ready = True
        await until(lambda: bool(exchange.received) and len(sink.trades) > 5)
        exchange.drop_all()
        await until(lambda: len(exchange.received) >= 2)
        manager.stop()
        await asyncio.wait_for(task, 10)
    assert exchange.received == [f'{{"auth":"{SIGNATURE}1"}}', f'{{"auth":"{SIGNATURE}2"}}']
    assert all(path.endswith(f"?token={TOKEN}") for path in exchange.paths)
    sent = [data for kind, _c, _u, data in captured if kind is CaptureKind.SENT]
    assert sent == [REDACTED, REDACTED]
    opened = [url for kind, _c, url, _d in captured if kind is CaptureKind.OPEN]
    assert opened == [exchange.url, exchange.url]
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("websockets")]
    text = "\n".join(ours) + repr(captured) + repr(manager.stats)  # (not the test server's)
    assert TOKEN not in text and SIGNATURE not in text


async def test_private_rest_request_sends_method_and_headers_but_logs_and_captures_nothing(
    exchange: Exchange, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[str, str]] = []

    async def listen_key(request: web.Request) -> web.Response:
        seen.append((request.method, request.headers.get("X-API-KEY", "")))
        return web.json_response({"code": -1, "msg": f"refused {TOKEN}"}, status=400)

    async with http_route("POST", "/key", listen_key) as url:
        venue = PrivateVenue(exchange.url, rest_url=url)
        run = Running(venue, PicowsClient(), FAST)
        captured: list[Any] = []
        run.manager.capture = lambda *a, **k: captured.append((a, k))
        with caplog.at_level(logging.DEBUG):
            await run.until(lambda: len(venue.responses) == 1)
            await run.stop()
    assert seen == [("POST", API_KEY)]
    assert venue.responses[0].status == 400 and TOKEN.encode() in venue.responses[0].body
    rest = [c for c in captured if c[0][0] is CaptureKind.REST]
    statuses = [k["status"] for _, k in rest]
    assert statuses[0] == STOPPED_ASKING and all(s < 0 for s in statuses)  # the stop's marks
    assert TOKEN not in repr(captured) and API_KEY not in repr(captured)
    assert "status 400" in caplog.text
    assert TOKEN not in caplog.text and API_KEY not in caplog.text
    assert API_KEY not in repr(RestRequest("k", "u", 1, "POST", {"X-API-KEY": API_KEY}))


async def test_private_rollover_whose_new_socket_dies_delivers_its_messages_and_breaks(
    exchange: Exchange,
) -> None:
    """The venue ended the old socket's subscription (it goes silent) and the new socket dies
    during the overlap: what the new one received is delivered, then the protocol hears of the
    break (its gap) instead of the manager keeping a socket that carries nothing."""
    venue = PrivateVenue(exchange.url)
    venue.ready = True
    run = Running(venue, PicowsClient(), settings(overlap_s=10.0, rollover_wait_s=20.0))
    await run.until(lambda: len(run.sink.trades) > 5 and len(exchange.clients) == 1)
    (old,) = exchange.clients
    exchange.silent.add(old)  # the old subscription ended
    sent_to_old = exchange.seq  # the last event broadcast to it
    await run.until(
        lambda: max(trade_ids(run.sink)) >= sent_to_old,
        within=60,
        what=f"the old socket's last event {sent_to_old} delivered",
    )
    last_old = max(trade_ids(run.sink))
    venue.reconnects.append("main")
    await until(lambda: len(exchange.clients) == 2)
    (new,) = exchange.clients - {old}
    await asyncio.sleep(0.3)  # the new socket's messages are held back in the overlap
    assert max(trade_ids(run.sink)) == last_old
    new.transport.abort()
    await run.until(lambda: venue.closes == ["main"] and len(venue.opens) == 2)
    await run.stop()
    (gap, *_) = [e for e in run.sink.events if e.kind == "gap"]
    salvaged = [t for t in run.sink.trades if t.trade_id > last_old and t.recv_ts <= gap.ts]
    assert len(salvaged) > 5  # delivered before the gap that says the stream broke
    assert_continuous([t.trade_id for t in salvaged])
