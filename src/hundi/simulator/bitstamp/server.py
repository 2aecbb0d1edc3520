"""Bitstamp WebSocket v2 and the REST endpoints the collector uses, over real sockets.

The wire is Bitstamp's: one WebSocket at ``/`` taking ``bts:subscribe`` /
``bts:unsubscribe`` (acknowledged with ``bts:subscription_succeeded`` /
``bts:unsubscription_succeeded``; an unknown channel gets ``bts:error``) and ``bts:heartbeat``
(answered ``{"status":"success"}``). Channels per pair: ``live_trades_<pair>`` (one ``trade``
event per fill), ``diff_order_book_<pair>`` (the levels changed since the previous diff, amount
``0`` deletes) and ``order_book_<pair>`` (top 100 levels per side, every ``top_interval_s``).
REST: ``/api/v2/order_book/<pair>`` (the book as the diffs have published it, with the
microtimestamp of the last published diff), ``/api/v2/transactions/<pair>/?time=minute|hour|day``
(the pair's trades of that last window from the trade history, newest first, ``date`` in whole
seconds) and ``/api/v2/trading-pairs-info/``.

The market is the shared synthetic one (:mod:`hundi.simulator.market`), seeded; ``steps``
stops it after that many actions (the stream then stays quiet: tests compare final books).

Faults (``faults``: kind → number): ``stale-snapshot`` N answers the first N order_book
requests with the book from before the warm-up, stamped before the first diff (a stale
snapshot); ``reconnect`` S sends ``bts:request_reconnect`` every S seconds and closes the
sockets still open ``reconnect_grace_s`` (5 s) later; ``drop`` S aborts every socket every S
seconds, and refuses new WebSocket connections for ``drop_outage_s`` (0.5 s) after, so the trades
of the outage are lost from the WebSocket (``transactions`` still has them); ``rest-lag`` S
answers ``order_book`` with the book as it was S seconds earlier, stamped with that book's last
change (Bitstamp's REST answers lag its stream by 1-2.5 s).
With ``steps``, the timed faults strike only during the first half of the market's actions.
``GET /sim/stats`` is the ground truth: trade ids sent per connection and pair, every trade the
market made per pair (``trades``: id and microtimestamp), faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from hundi.exchanges.bitstamp.symbols import listed_name
from hundi.simulator.ground_truth import ConnectionRecord, FaultLog
from hundi.simulator.market import SymbolSpec, SyntheticMarket, fixed
from hundi.simulator.site import SimulatorSite

FAULTS = ("stale-snapshot", "reconnect", "drop", "rest-lag")
TRADES_KEPT = 500_000  # trades kept per pair for ``transactions`` (a day of a busy simulator)
WINDOWS = {"minute": 60, "hour": 3_600, "day": 86_400}
DEPTH_KEY = 0  # the one diff stream of the market (Bitstamp pushes every change as it comes)
TOP_LEVELS = 100
RANGE_CAP = 100_000


def _now_us() -> int:
    return time.time_ns() // 1_000


@dataclass(slots=True)
class BitstampSimConfig:
    host: str = "127.0.0.1"
    port: int = 0
    symbols: tuple[str, ...] = ("btcusd", "etheur")
    seed: int = 1
    rate: float = 200.0  # market actions per second
    tick_s: float = 0.02  # diffs are flushed every tick
    steps: int | None = None  # stop the market after this many actions
    top_interval_s: float = 0.1  # order_book (top 100) pushes
    reconnect_grace_s: float = 5.0
    drop_outage_s: float = 0.5  # after a drop fault, new connections are refused this long
    faults: dict[str, float] = field(default_factory=dict)


class _Conn:
    __slots__ = ("channels", "record", "transport", "ws")

    def __init__(self, record: ConnectionRecord, ws: web.WebSocketResponse, transport: Any):
        self.record = record
        self.ws = ws
        self.transport = transport
        self.channels: set[str] = set()


class BitstampSimulator(SimulatorSite[BitstampSimConfig]):
    """``async with BitstampSimulator(cfg) as sim: sim.ws_url, sim.rest_url``."""

    def __init__(self, config: BitstampSimConfig) -> None:
        unknown = set(config.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault {sorted(unknown)[0]!r} (known: {', '.join(FAULTS)})")
        self.config = config
        self.market = SyntheticMarket(config.symbols, config.seed, time.time_ns() // 1_000_000, 1)
        self.market.add_depth_speed(DEPTH_KEY)
        self.specs: dict[str, SymbolSpec] = {
            pair: m.spec for pair, m in self.market.symbols.items()
        }
        self.start_us = _now_us()
        self._last_us = self.start_us
        self.published_us = dict.fromkeys(config.symbols, self.start_us)
        self.steps = 0
        self.stale_left = int(config.faults.get("stale-snapshot", 0))
        self.snapshots_served = 0
        self.faults = FaultLog()
        # per pair: (microtimestamp, id, price, amount, type) of every trade, oldest first
        self.trades: dict[str, deque[tuple[int, int, str, str, int]]] = {
            pair: deque(maxlen=TRADES_KEPT) for pair in config.symbols
        }
        # per pair: [id, microtimestamp] of every trade the market made
        self.trades_made: dict[str, list[tuple[int, int]]] = {pair: [] for pair in config.symbols}
        self.refuse_until = 0.0  # monotonic time until which new sockets are refused (drop)
        # rest-lag: per pair, (microtimestamp, book) as published, for answers that lag
        self.lag_us = int(config.faults.get("rest-lag", 0) * 1_000_000)
        self.history: dict[str, deque[tuple[int, tuple[int, dict[int, int], dict[int, int]]]]] = {
            pair: deque() for pair in config.symbols
        }
        self._conns: dict[int, _Conn] = {}
        self._closed: deque[ConnectionRecord] = deque(maxlen=1000)
        self._next_conn = 1
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._ws)
        app.router.add_get("/api/v2/order_book/{pair}", self._order_book)
        app.router.add_get("/api/v2/order_book/{pair}/", self._order_book)
        app.router.add_get("/api/v2/trading-pairs-info/", self._pairs)
        app.router.add_get("/api/v2/transactions/{pair}/", self._transactions)
        app.router.add_get("/api/v2/transactions/{pair}", self._transactions)
        app.router.add_get("/sim/stats", self._stats)
        await self._listen(app)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._tops())]
        for kind in ("reconnect", "drop"):
            if kind in self.config.faults:
                self._tasks.append(loop.create_task(self._fault_loop(kind)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for conn in list(self._conns.values()):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"simulator stopped")
        await self._unlisten()

    def stats(self) -> dict[str, Any]:
        records = [*self._closed, *(c.record for c in self._conns.values())]
        return {
            "exchange": "bitstamp",
            "steps": self.steps,
            "start_us": self.start_us,  # stale snapshots are stamped before it
            "snapshots_served": self.snapshots_served,
            "faults": self.faults.to_json(),
            "trades": self.trades_made,
            "connections": [r.to_json() for r in records],
        }

    # ------------------------------------------------------------------ market
    def _mt(self) -> int:
        """A microtimestamp, strictly increasing across all frames."""
        self._last_us = max(self._last_us + 1, _now_us())
        return self._last_us

    async def _run(self) -> None:
        config = self.config
        per_tick = config.rate * config.tick_s
        owed = 0.0
        while True:
            await asyncio.sleep(config.tick_s)
            owed += per_tick
            while owed >= 1 and (config.steps is None or self.steps < config.steps):
                owed -= 1
                self.steps += 1
                market = self.market.step()
                pair = market.spec.symbol
                for event in market.events:
                    if event[0] == "A":
                        await self._trades(pair, event)
                market.events.clear()
            if config.steps is not None and self.steps >= config.steps:
                owed = 0.0
            for pair, diff in list(self.market.take_depth(DEPTH_KEY)):
                await self._diff(pair, diff)

    async def _trades(self, pair: str, event: tuple[Any, ...]) -> None:
        _, _, price, _, _, _, buyer_is_maker, fills = event
        spec = self.specs[pair]
        channel = f"live_trades_{pair}"
        price_str = fixed(price, spec.price_decimals)
        for trade_id, qty in fills:
            mt = self._mt()
            amount_str = fixed(qty, spec.qty_decimals)
            side = 1 if buyer_is_maker else 0
            self.trades[pair].append((mt, trade_id, price_str, amount_str, side))
            self.trades_made[pair].append((trade_id, mt))
            frame = msgspec.json.encode({
                "data": {
                    "id": trade_id, "timestamp": str(mt // 1_000_000),
                    "amount": float(amount_str), "amount_str": amount_str,
                    "price": float(price_str), "price_str": price_str,
                    "type": side, "microtimestamp": str(mt),
                    "buy_order_id": trade_id * 2, "sell_order_id": trade_id * 2 + 1,
                },
                "channel": channel, "event": "trade",
            })  # fmt: skip
            await self._broadcast(channel, frame, trade_id)

    async def _diff(self, pair: str, diff: Any) -> None:
        _, _, _, bids, asks = diff
        spec = self.specs[pair]
        self.market.publish_depth(pair, diff)
        mt = self._mt()
        self.published_us[pair] = mt
        if self.lag_us:
            _, pub_bids, pub_asks = self.market.published[pair]
            history = self.history[pair]
            history.append((mt, (0, dict(pub_bids), dict(pub_asks))))
            while len(history) > 1 and history[1][0] <= mt - self.lag_us:
                history.popleft()  # keep the newest one at least lag old
        pd, qd = spec.price_decimals, spec.qty_decimals
        channel = f"diff_order_book_{pair}"
        bid_rows = sorted(bids.items(), reverse=True)
        frame = msgspec.json.encode({
            "data": {
                "timestamp": str(mt // 1_000_000), "microtimestamp": str(mt),
                "bids": [[fixed(p, pd), fixed(q, qd)] for p, q in bid_rows],
                "asks": [[fixed(p, pd), fixed(q, qd)] for p, q in sorted(asks.items())],
            },
            "channel": channel, "event": "data",
        })  # fmt: skip
        await self._broadcast(channel, frame, -1)

    async def _tops(self) -> None:
        while True:
            await asyncio.sleep(self.config.top_interval_s)
            for pair in self.specs:
                channel = f"order_book_{pair}"
                if not any(channel in c.channels for c in self._conns.values()):
                    continue
                body = self._book_body(pair, self.market.published[pair], self._mt(), TOP_LEVELS)
                frame = msgspec.json.encode({"data": body, "channel": channel, "event": "data"})
                await self._broadcast(channel, frame, -1)

    def _book_body(
        self, pair: str, book: tuple[int, dict[int, int], dict[int, int]], mt: int, depth: int
    ) -> dict[str, Any]:
        spec = self.specs[pair]
        pd, qd = spec.price_decimals, spec.qty_decimals
        _, bids, asks = book
        return {
            "timestamp": str(mt // 1_000_000),
            "microtimestamp": str(mt),
            "bids": [[fixed(p, pd), fixed(bids[p], qd)] for p in heapq.nlargest(depth, bids)],
            "asks": [[fixed(p, pd), fixed(asks[p], qd)] for p in heapq.nsmallest(depth, asks)],
        }

    async def _broadcast(self, channel: str, frame: bytes, trade_id: int) -> None:
        for conn in list(self._conns.values()):
            if channel in conn.channels and await self._send(conn, frame):
                conn.record.sent(channel, trade_id, trade_id)

    async def _send(self, conn: _Conn, frame: bytes) -> bool:
        try:
            await conn.ws.send_bytes(frame)
        except (ConnectionError, RuntimeError):
            return False
        conn.record.frames_sent += 1
        conn.record.bytes_sent += len(frame)
        return True

    # ------------------------------------------------------------------ faults
    async def _fault_loop(self, kind: str) -> None:
        every = self.config.faults[kind]
        while True:
            await asyncio.sleep(every)
            if not self._faulting():
                continue
            conns = list(self._conns.values())
            self.faults.record(kind, detail=f"{len(conns)} connection(s)")
            if kind == "drop":
                self.refuse_until = time.monotonic() + self.config.drop_outage_s
                for conn in conns:
                    conn.record.close_reason = "drop fault"
                    if conn.transport is not None:
                        conn.transport.abort()
                continue
            notice = b'{"event": "bts:request_reconnect", "channel": "", "data": ""}'
            for conn in conns:
                await self._send(conn, notice)
            closing = asyncio.get_running_loop().create_task(self._close_after_grace(conns))
            self._tasks.append(closing)

    async def _close_after_grace(self, conns: list[_Conn]) -> None:
        """Bitstamp closes the sockets still open a few seconds after asking to reconnect."""
        await asyncio.sleep(self.config.reconnect_grace_s)
        for conn in conns:
            if conn.record.conn_id in self._conns:
                conn.record.close_reason = "request_reconnect grace over"
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=1001, message=b"reconnect requested")

    def _faulting(self) -> bool:
        """Timed faults strike while the first half of ``steps`` runs (always without
        ``steps``): after the last one the market still moves, so a client can resync on it
        before the market stops and the final books are compared."""
        steps = self.config.steps
        return steps is None or self.steps < steps // 2

    # ------------------------------------------------------------------ REST
    async def _order_book(self, request: web.Request) -> web.Response:
        pair = request.match_info["pair"]
        if pair not in self.specs:
            return web.json_response({"error": "Invalid currency pair"}, status=404)
        self.snapshots_served += 1
        if self.stale_left > 0:
            self.stale_left -= 1
            self.faults.record("stale-snapshot", symbol=pair)
            body = self._book_body(
                pair, self.market.pre_warmup[pair], self.start_us - 1_000_000, 10**9
            )
        elif self.lag_us and self.history[pair]:
            cutoff = _now_us() - self.lag_us
            lagging = [entry for entry in self.history[pair] if entry[0] <= cutoff]
            mt, book = lagging[-1] if lagging else self.history[pair][0]
            body = self._book_body(pair, book, mt, 10**9)
        else:
            body = self._book_body(
                pair, self.market.published[pair], self.published_us[pair], 10**9
            )
        return web.Response(body=msgspec.json.encode(body), content_type="application/json")

    async def _transactions(self, request: web.Request) -> web.Response:
        """The pair's trades of the last ``time`` window (default hour), newest first."""
        pair = request.match_info["pair"]
        window = WINDOWS.get(request.query.get("time", "hour"))
        if pair not in self.specs or window is None:
            return web.json_response({"error": "Invalid currency pair or time"}, status=404)
        since = _now_us() - window * 1_000_000
        rows = [
            {"date": str(mt // 1_000_000), "tid": str(tid), "price": price, "amount": amount,
             "type": str(side)}
            for mt, tid, price, amount, side in reversed(self.trades[pair])
            if mt >= since
        ]  # fmt: skip
        return web.Response(body=msgspec.json.encode(rows), content_type="application/json")

    async def _pairs(self, request: web.Request) -> web.Response:
        rows = [
            {
                "name": listed_name(pair), "url_symbol": pair,
                "base_decimals": spec.qty_decimals, "counter_decimals": spec.price_decimals,
                "trading": "Enabled", "description": listed_name(pair),
            }
            for pair, spec in self.specs.items()
        ]  # fmt: skip
        return web.Response(body=msgspec.json.encode(rows), content_type="application/json")

    async def _stats(self, request: web.Request) -> web.Response:
        return web.Response(body=msgspec.json.encode(self.stats()), content_type="application/json")

    # ------------------------------------------------------------------ WebSocket
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if time.monotonic() < self.refuse_until:
            return web.Response(status=503, text="down for the drop fault's outage")
        ws = web.WebSocketResponse(max_msg_size=1 << 16)
        await ws.prepare(request)
        record = ConnectionRecord(self._next_conn, "/", request.remote or "", RANGE_CAP)
        conn = _Conn(record, ws, request.transport)
        self._next_conn += 1
        self._conns[record.conn_id] = conn
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._request(conn, msg.data)
        finally:
            record.closed_ns = time.time_ns()
            self._conns.pop(record.conn_id, None)
            self._closed.append(record)
        return ws

    async def _request(self, conn: _Conn, text: str) -> None:
        try:
            req = msgspec.json.decode(text)
        except msgspec.DecodeError:
            req = None
        event = req.get("event") if isinstance(req, dict) else None
        if event == "bts:heartbeat":
            await self._send(
                conn, b'{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}'
            )
            return
        data = req.get("data") if isinstance(req, dict) else None
        channel = data.get("channel") if isinstance(data, dict) else None
        if event in ("bts:subscribe", "bts:unsubscribe") and self._known(channel):
            assert isinstance(channel, str)
            if event == "bts:subscribe":
                conn.channels.add(channel)
                conn.record.subscriptions.append(channel)
                ack = "bts:subscription_succeeded"
            else:
                conn.channels.discard(channel)
                ack = "bts:unsubscription_succeeded"
            await self._send(
                conn, msgspec.json.encode({"event": ack, "channel": channel, "data": {}})
            )
            return
        error = {"event": "bts:error", "channel": "",
                 "data": {"code": None, "message": "Bad subscription string."}}  # fmt: skip
        await self._send(conn, msgspec.json.encode(error))

    def _known(self, channel: object) -> bool:
        if not isinstance(channel, str):
            return False
        for prefix in ("diff_order_book_", "live_trades_", "order_book_"):
            if channel.startswith(prefix) and channel.removeprefix(prefix) in self.specs:
                return True
        return False
