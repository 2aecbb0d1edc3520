"""A real in-test WebSocket exchange, a minimal venue protocol for it and a one-route HTTP server.

The server broadcasts one global, numbered event sequence to every connected client (as an
exchange does), with byte-identical frames on every connection, so tests can check that a
stream is continuous across reconnects: no event lost, none doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve

from hundi.exchanges.base import (
    FrameStatus,
    RecordSink,
    RejectedFrame,
    RestRequest,
    RestResponse,
    StreamSpec,
    VenueProtocol,
)
from hundi.records import Event, Trade


@contextlib.asynccontextmanager
async def http_route(method: str, path: str, handler: Handler) -> AsyncIterator[str]:
    """A real HTTP server on a free local port answering one route; yields that route's URL
    (which refuses connections once the block is left)."""
    app = web.Application()
    app.router.add_route(method, path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}{path}"
    finally:
        await runner.cleanup()


@dataclass
class Exchange:
    """In-process WebSocket server; ``interval`` seconds between events."""

    interval: float = 0.002
    seq: int = 0
    clients: set[ServerConnection] = field(default_factory=set)
    silent: set[ServerConnection] = field(default_factory=set)
    connects: int = 0
    received: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    server: Server | None = None
    ticker: asyncio.Task[None] | None = None
    running: bool = True
    port: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream"

    async def start(self, port: int = 0) -> Exchange:
        self.server = await serve(
            self._handler, "127.0.0.1", port, ping_interval=None, compression=None
        )
        self.port = self.server.sockets[0].getsockname()[1]
        if self.ticker is None:
            self.ticker = asyncio.create_task(self._tick())
        return self

    async def _handler(self, ws: ServerConnection) -> None:
        self.connects += 1
        self.paths.append(ws.request.path if ws.request else "")
        self.clients.add(ws)
        try:
            async for message in ws:
                self.received.append(message if isinstance(message, str) else message.decode())
        except Exception:
            pass
        finally:
            self.clients.discard(ws)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self.running:
                continue
            self.seq += 1
            frame = json.dumps({"s": "X", "seq": self.seq, "p": 100.0 + self.seq % 7})
            broadcast(self.clients - self.silent, frame)

    def send_all(self, frame: str) -> None:
        broadcast(self.clients, frame)

    async def trickle(self, message: bytes, *, chunks: int, every: float) -> None:
        """Send ``message`` to every client as ONE unfragmented text frame, written in
        ``chunks`` pieces ``every`` seconds apart: a large frame on a slow link."""
        size = len(message)
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")  # FIN + text, 64-bit length
        transports = [ws.transport for ws in self.clients]
        step = -(-size // chunks)
        for i, start in enumerate(range(0, size, step)):
            if i:
                await asyncio.sleep(every)
            piece = message[start : start + step]
            for transport in transports:
                if not transport.is_closing():  # a client may have given up on it
                    transport.write(header + piece if i == 0 else piece)

    def drop_all(self) -> None:
        """Kill every connection without a close handshake (a network drop)."""
        for ws in list(self.clients):
            ws.transport.abort()

    async def close(self) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.ticker
        if self.server is not None:
            self.server.close()
            self.drop_all()
            await self.server.wait_closed()


class SeqVenue(VenueProtocol):
    """Turns ``{"s","seq","p"}`` frames into trades; records lifecycle calls for assertions.

    ``{"ack": ...}`` is filtered, ``{"shutdown": 1}`` asks for a reconnect, ``{"boom": 1}``
    makes it raise a bug (``KeyError``), anything non-JSON is rejected as ``malformed``.
    """

    exchange = "testex"

    def __init__(
        self, url: str, subscribe: tuple[bytes, ...] = (), rate: float = 50.0, rest_url: str = ""
    ) -> None:
        self.url = url
        self.subscribe = subscribe
        self.rate = rate
        self.rest_url = rest_url
        self.opens: list[str] = []
        self.closes: list[str] = []
        self.reconnects: list[str] = []
        self.rest_due = bool(rest_url)
        self.responses: list[RestResponse] = []

    def connections(self) -> list[StreamSpec]:
        return [
            StreamSpec(
                key="main", url=self.url, subscribe=self.subscribe, max_outgoing_per_s=self.rate
            )
        ]

    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        try:
            message: dict[str, Any] = json.loads(data)
        except ValueError as exc:
            raise RejectedFrame("malformed", str(exc)) from None
        if "ack" in message:
            return FrameStatus.FILTERED
        if "shutdown" in message:
            self.reconnects.append(conn_key)
            return FrameStatus.FILTERED
        if "boom" in message:
            return FrameStatus(message["missing"])
        seq = int(message["seq"])
        out.trades.append(
            Trade(
                exchange=self.exchange,
                symbol="X-USD",
                native_symbol="X",
                ts=recv_ns,
                recv_ts=recv_ns,
                trade_id=seq,
                price=float(message["p"]),
                size=1.0,
                side=1,
                first_trade_id=seq,
                last_trade_id=seq,
            )
        )
        return FrameStatus.PROCESSED

    def on_open(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self.opens.append(conn_key)

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self.closes.append(conn_key)
        out.events.append(
            Event(
                exchange=self.exchange,
                symbol="X-USD",
                native_symbol="X",
                ts=now_ns,
                recv_ts=now_ns,
                kind="gap",
                channel="trades",
                expected=-1,
                received=-1,
                detail="connection closed",
            )
        )

    def take_reconnects(self) -> list[str]:
        taken, self.reconnects = self.reconnects, []
        return taken

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        if self.rest_due:
            self.rest_due = False
            return [RestRequest(key="X", url=self.rest_url)]
        return []

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        self.responses.append(response)


def trade_ids(sink: RecordSink) -> list[int]:
    return [t.trade_id for t in sink.trades]


def assert_continuous(ids: list[int]) -> None:
    """The exchange's sequence arrived whole: not empty, nothing lost, nothing doubled."""
    assert ids, "no trades received"
    assert ids == list(range(ids[0], ids[0] + len(ids))), "lost or doubled events"


async def until(
    condition: Callable[[], bool], within: float = 60.0, what: str = "condition"
) -> None:
    """Poll ``condition`` on the running loop; fail the test, naming ``what``, after ``within``
    seconds."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not reached within {within:g} s: {what}"
        await asyncio.sleep(0.01)
