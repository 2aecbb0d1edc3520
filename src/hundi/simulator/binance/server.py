"""The Binance simulator: spot, USD-M or COIN-M WebSocket streams and REST on one aiohttp port.

Binance's wire format and rules on top of the shared synthetic market
(:mod:`hundi.simulator.market`), or a capture played back. The parts:

- :mod:`.feed`: drives the market and publishes Binance stream frames (:mod:`.frames`);
- :mod:`.fanout`: connections, subscriptions, batched writes and what was written;
- :mod:`.websocket`: the endpoints, live requests and Binance's connection rules;
- :mod:`.rest`: the REST endpoints and request weights;
- :mod:`.derivatives`: futures mark prices, liquidations and open interest;
- :mod:`.faults`: fault injection; :mod:`.replay`: capture playback;
- :mod:`hundi.simulator.ground_truth`: the records behind ``stats()`` / ``GET /sim/stats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import msgspec
from aiohttp import web

from hundi.capture.events import venue_id
from hundi.simulator.binance.config import SimulatorConfig
from hundi.simulator.binance.derivatives import DerivativesFeed
from hundi.simulator.binance.fanout import FanOut
from hundi.simulator.binance.faults import FaultInjector
from hundi.simulator.binance.feed import BinanceFeed
from hundi.simulator.binance.private import BinancePrivate
from hundi.simulator.binance.replay import ReplayData, ReplayPlayer
from hundi.simulator.binance.rest import BinanceRest
from hundi.simulator.binance.rules import FUTURES, REST_ROOTS, BinanceVariant
from hundi.simulator.binance.websocket import BinanceWebSocket
from hundi.simulator.ground_truth import FaultLog
from hundi.simulator.market import SyntheticMarket
from hundi.simulator.site import SimulatorSite


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class BinanceSimulator(SimulatorSite[SimulatorConfig]):
    """Binance over real sockets. ``async with BinanceSimulator(cfg) as sim: sim.ws_url ...``."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.variant: BinanceVariant = config.market
        self.faults = FaultLog()
        self._fanout = FanOut(config, self.faults)
        self._injector = FaultInjector(config, self.faults, self._fanout)
        venue = venue_id("binance", config.market)  # its events of a capture of several
        self._replay = ReplayData.load(config.replay, venue) if config.replay else None
        self._market: SyntheticMarket | None = None  # built at start
        self._feed: BinanceFeed | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._started_ns = 0
        self._started_mono = 0.0
        self.port = 0
        self._rest: BinanceRest | None = None
        self._derivatives: DerivativesFeed | None = None  # futures, synthetic market
        # private endpoints (user-data streams), set before start() when simulated
        self.private: BinancePrivate | None = None

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        self._started_ns = time.time_ns()
        self._started_mono = time.monotonic()
        self._injector.start(self._started_mono)
        config = self.config
        replay = self._replay
        player = None
        if replay is None:
            market = SyntheticMarket(config.symbols, config.seed, _now_ms(), config.trade_history)
            self._market = market
            self._feed = BinanceFeed(config, market, self._fanout, self._injector)
        else:
            player = ReplayPlayer(replay, config.speed, self._fanout)
        feed = self._feed
        encoders = feed.encoders if feed is not None else {}
        self._rest = BinanceRest(config, self._injector, self._market, encoders, replay)
        websocket = BinanceWebSocket(
            config,
            self._fanout,
            self._injector,
            on_stream=feed.ensure_stream if feed is not None else None,
            on_subscribed=player.start if player is not None else None,
            flush_each_tick=replay is not None,
        )
        app = web.Application()
        app.router.add_get("/sim/stats", self._rest_stats)
        # a replay serves whatever was captured, spot or USD-M, so it answers on both
        usdm = self.variant is BinanceVariant.USDM
        if replay is not None:
            roots = [REST_ROOTS[BinanceVariant.USDM], REST_ROOTS[BinanceVariant.SPOT]]
        else:
            roots = [REST_ROOTS[self.variant]]
        for root in roots:
            self._rest.install(app, root)
        if feed is not None and self._market is not None and self.variant in FUTURES:
            self._derivatives = DerivativesFeed(
                self.variant, config.seed, self._market, self._fanout, feed.encoders
            )
            self._derivatives.install(app, REST_ROOTS[self.variant], self._rest)
        websocket.install(app, split=usdm or replay is not None)
        if self.private is not None:
            self.private.install(app)
        await self._listen(app)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(websocket.housekeeping()))
        if feed is not None:
            self._tasks.append(loop.create_task(feed.run()))
        if self._derivatives is not None:
            self._tasks.append(loop.create_task(self._derivatives.run()))
        if self.private is not None:
            self._tasks.append(loop.create_task(self.private.run()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.private is not None:
            await self.private.close()
        self._fanout.close_all("simulator stopped", code=1001)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self._fanout.closed()
        await self._unlisten()

    def pause(self) -> None:
        """Stop the synthetic market (the clocked streams go on): once the last diffs are out,
        a collector's books must equal :meth:`true_book`."""
        if self._feed is not None:
            self._feed.paused = True

    def true_book(self, symbol: str) -> tuple[int, dict[float, float], dict[float, float]]:
        """The last published book of ``symbol`` as prices and sizes on the wire: (last update
        id, {price: size} bids, asks); COIN-M sizes are whole contracts."""
        assert self._market is not None and self._feed is not None
        update_id, bids, asks = self._market.published[symbol]
        enc = self._feed.encoders[symbol]
        return (
            update_id,
            {float(enc.price(p)): float(enc.qty(q)) for p, q in bids.items()},
            {float(enc.price(p)): float(enc.qty(q)) for p, q in asks.items()},
        )

    # -- ground truth -----------------------------------------------------------------------
    async def _rest_stats(self, request: web.Request) -> web.Response:
        return web.Response(body=msgspec.json.encode(self.stats()), content_type="application/json")

    def stats(self) -> dict[str, Any]:
        """Everything sent so far, per connection and stream (schema: package docstring)."""
        uptime = time.monotonic() - self._started_mono if self._started_mono else 0.0
        symbols = {}
        market, feed = self._market, self._feed
        if market is not None and feed is not None:
            for symbol, book in market.symbols.items():
                history = market.trades[symbol]
                encoder = feed.encoders[symbol]
                symbols[symbol] = {
                    "last_agg_id": book.agg_id,
                    "oldest_kept_agg_id": history[0][0] if history else -1,
                    "last_trade_id": book.trade_id,
                    "update_id": book.update_id,
                    "published_update_id": market.published[symbol][0],
                    "best_bid": encoder.price(book.best_bid),
                    "best_ask": encoder.price(book.best_ask),
                }
        generated = feed.generated if feed is not None else 0
        fanout = self._fanout
        return {
            "market": self.variant.value,
            "mode": "replay" if self._replay is not None else "synthetic",
            "seed": self.config.seed,
            "started_ns": self._started_ns,
            "uptime_s": uptime,
            "rate": self.config.rate,
            "steps": feed.steps if feed is not None else 0,
            "messages_generated": generated,
            "messages_per_s": generated / uptime if uptime else 0.0,
            "frames_sent": fanout.frames_sent,
            "bytes_sent": fanout.bytes_sent,
            "rest_requests": self._rest.requests if self._rest is not None else 0,
            "open_connections": len(fanout.conns),
            "symbols": symbols,
            "connections": fanout.records(),
            "faults": self.faults.to_json(),
            "faults_total": self.faults.total,
            "replay": self._replay.summary() if self._replay is not None else None,
            "derivatives": self._derivatives.truth if self._derivatives is not None else {},
        }
