"""The Coinbase ``full`` feed on real sockets: a WebSocket at ``/`` and the level-3 REST book.

A small aiohttp site around :class:`~hundi.simulator.coinbase.full.CoinbaseFullFeed` for
end-to-end tests of :class:`~hundi.exchanges.coinbase.full.CoinbaseFullProtocol` through the
collector (and an example of mounting the feed): the market steps ``steps_per_tick`` actions
every ``tick_s``, each subscribed socket gets the ``full`` messages of its products as text
frames, and ``GET /products/{id}/book?level=3`` answers the snapshot. Faults are methods the
test calls: :meth:`skip_sequence`, :meth:`stale_snapshot` and :meth:`reorder` (the feed's) and
:meth:`drop_connections` (every socket aborted, no close frame). :meth:`pause` stops the market
so the collector can catch up with :meth:`book`, the ground truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from hundi.simulator.coinbase.full import CoinbaseFullFeed
from hundi.simulator.market import SyntheticMarket
from hundi.simulator.site import SimulatorSite


@dataclass(slots=True)
class FullSimConfig:
    products: Sequence[str] = ("BTC-USD", "ETH-EUR")
    seed: int = 1
    host: str = "127.0.0.1"
    port: int = 0
    tick_s: float = 0.005
    steps_per_tick: int = 4
    credentials: tuple[str, str, str] | None = None  # key, base64 secret, passphrase


class _Socket:
    __slots__ = ("products", "transport", "ws")

    def __init__(self, ws: web.WebSocketResponse, transport: Any) -> None:
        self.ws = ws
        self.transport = transport
        self.products: set[str] = set()


class CoinbaseFullSimulator(SimulatorSite[FullSimConfig]):
    """``async with CoinbaseFullSimulator(config) as sim``: ``sim.ws_url``, ``sim.rest_url``."""

    def __init__(self, config: FullSimConfig) -> None:
        self.config = config
        self.market = SyntheticMarket(config.products, config.seed, time.time_ns() // 1_000_000, 10)
        self.feed = CoinbaseFullFeed(
            {p: self.market.symbols[p] for p in config.products},
            config.seed,
            credentials=config.credentials,
        )
        self.sockets: set[_Socket] = set()
        self.snapshots_served = 0
        self.connections_opened = 0
        self.steps = 0
        self._running = asyncio.Event()
        self._running.set()
        self._task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._ws)
        app.router.add_get("/products/{product_id}/book", self._book)
        await self._listen(app)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for socket in list(self.sockets):
            with contextlib.suppress(Exception):
                await socket.ws.close(code=1001, message=b"simulator stopped")
        await self._unlisten()

    # ------------------------------------------------------------------ faults and truth
    def skip_sequence(self, product: str) -> None:
        self.feed.skip_sequence(product)

    def reorder(self, product: str) -> None:
        self.feed.reorder(product)

    def stale_snapshot(self, product: str) -> None:
        self.feed.stale_snapshot(product)

    def drop_connections(self) -> int:
        """Abort every socket (no close frame), as a network failure would."""
        dropped = 0
        for socket in list(self.sockets):
            if socket.transport is not None:
                socket.transport.abort()
                dropped += 1
        return dropped

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def book(self, product: str) -> dict[int, list[tuple[float, str, float]]]:
        return self.feed.book(product)

    # ------------------------------------------------------------------ serving
    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_s)
            await self._running.wait()
            for _ in range(self.config.steps_per_tick):
                moved = self.market.step()
                self.steps += 1
                frames = self.feed.on_step(moved, time.time_ns())
                for socket in list(self.sockets):
                    for product, frame in frames:
                        if product in socket.products and not socket.ws.closed:
                            with contextlib.suppress(ConnectionError, RuntimeError):
                                await socket.ws.send_str(frame.decode())

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        socket = _Socket(ws, request.transport)
        self.sockets.add(socket)
        self.connections_opened += 1
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                replies, products = self.feed.subscribe(message.data.encode(), time.time_ns())
                for reply in replies:
                    await ws.send_str(reply.decode())
                socket.products.update(products)
        finally:
            self.sockets.discard(socket)
        return ws

    async def _book(self, request: web.Request) -> web.Response:
        product = request.match_info["product_id"]
        if product not in self.feed.products:
            return web.json_response({"message": "NotFound"}, status=404)
        if request.query.get("level") != "3":
            return web.json_response({"message": "this simulator serves level=3"}, status=400)
        self.snapshots_served += 1
        body = self.feed.snapshot_body(product, time.time_ns())
        return web.Response(body=body, content_type="application/json")
