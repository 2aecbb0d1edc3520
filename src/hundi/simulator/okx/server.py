"""OKX v5 public WebSocket and the REST endpoints the collector uses, over real sockets.

The wire is OKX's (2026 format): WebSockets at ``/ws/v5/public`` and ``/ws/v5/business`` take
``{"op": "subscribe" | "unsubscribe", "args": [{"channel", "instId" | "instType"}]}``; each arg
is acknowledged ``{"event": "subscribe", "arg": ..., "connId": ...}``, an unknown instrument or
channel (candles on the public URL) gets ``{"event": "error", "code": "60018", ...}``, a
malformed request ``60012``; the text ``ping`` is answered ``pong``. Public channels: ``trades``
(one push per taker order and price, ``tradeId`` = the last fill's id, ``count`` fills),
``bbo-tbt``, ``books`` (no initial snapshot, ``checksum`` 0, ``seqId``/``prevSeqId`` chained),
``tickers``, ``mark-price``, ``index-tickers``, ``funding-rate``, ``open-interest``,
``liquidation-orders`` (per instType); business: ``candle1m``. REST: ``/api/v5/market/books``
(the book as the pushes published it, with its ``seqId``), ``/api/v5/public/instruments`` and
``/api/v5/market/history-trades`` (every fill, ``type=1`` paged by tradeId with ``after`` /
``before`` / ``limit`` <= 100, newest first; 20 requests per 2 s, then HTTP 429 ``50011``).

The market is the shared synthetic one (:mod:`hundi.simulator.market`), seeded; ``steps``
stops it after that many actions. Faults (kind → number): ``disconnect`` S aborts every socket
every S seconds; ``seq-reset`` S renumbers every book's seqIds lower every S seconds (OKX's
sequence reset: ``seqId < prevSeqId`` on the push that does it); ``skip`` S withholds one book
push every S seconds (a seqId chain break); ``trade-skip`` S withholds one ``trades`` push every
S seconds (a tradeId gap, its fills still served by history-trades); ``stale-snapshot`` N
answers the first N book
snapshots with the book from before the warm-up (older than every buffered push). Timed faults
strike during the first half of ``steps``. ``GET /sim/stats`` is the ground truth: trades per
instrument, derivative pushes and liquidations as sent, faults, connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from hundi.exchanges.okx.symbols import FUTURES, INST_TYPE, SPOT, market_of, underlying
from hundi.simulator.ground_truth import ConnectionRecord, FaultLog
from hundi.simulator.market import SymbolSpec, SyntheticMarket, fixed
from hundi.simulator.site import SimulatorSite

FAULTS = ("disconnect", "seq-reset", "skip", "trade-skip", "stale-snapshot")
HISTORY_KEPT = 200_000  # fills per instrument history-trades can return
HISTORY_LIMIT = 20  # history-trades requests per HISTORY_WINDOW_S per IP (OKX's limit)
HISTORY_WINDOW_S = 2.0
DEPTH_KEY = 0
RANGE_CAP = 100_000
PUBLIC_CHANNELS = frozenset((
    "trades", "bbo-tbt", "books", "tickers", "mark-price", "funding-rate", "open-interest",
))  # fmt: skip
DERIVATIVE_CHANNELS = frozenset(("mark-price", "funding-rate", "open-interest"))
BUSINESS_CHANNELS = frozenset(("candle1m",))
HOUR_MS = 3_600_000


def _ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class OkxSimConfig:
    host: str = "127.0.0.1"
    port: int = 0
    symbols: tuple[str, ...] = ("BTC-USDT", "BTC-USDT-SWAP", "BTC-USD-261225")
    seed: int = 1
    rate: float = 200.0  # market actions per second
    tick_s: float = 0.02  # book pushes are flushed every tick
    steps: int | None = None
    slow_s: float = 0.2  # tickers, derivatives, candles, liquidations
    faults: dict[str, float] = field(default_factory=dict)


class _Conn:
    __slots__ = ("args", "business", "record", "transport", "ws")

    def __init__(self, record: ConnectionRecord, ws: web.WebSocketResponse, transport: Any,
                 business: bool) -> None:  # fmt: skip
        self.record = record
        self.ws = ws
        self.transport = transport
        self.business = business
        self.args: set[tuple[str, str]] = set()  # (channel, instId or instType)


class OkxSimulator(SimulatorSite[OkxSimConfig]):
    """``async with OkxSimulator(cfg) as sim: sim.ws_url, sim.rest_url``."""

    def __init__(self, config: OkxSimConfig) -> None:
        unknown = set(config.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault {sorted(unknown)[0]!r} (known: {', '.join(FAULTS)})")
        for inst in config.symbols:
            market_of(inst)  # ValueError for a spelling OKX does not use
        self.config = config
        self.market = SyntheticMarket(config.symbols, config.seed, _ms(), 1)
        self.market.add_depth_speed(DEPTH_KEY)
        self.specs: dict[str, SymbolSpec] = {s: m.spec for s, m in self.market.symbols.items()}
        self.rng = random.Random(f"{config.seed}:okx")
        self.steps = 0
        self.faults = FaultLog()
        self.stale_left = int(config.faults.get("stale-snapshot", 0))
        self.skip_due = False
        self.trade_skip_due = False
        # every fill, for history-trades: (tradeId, px, sz, side, ts ms)
        self.fills: dict[str, deque[tuple[int, str, str, str, int]]] = {
            s: deque(maxlen=HISTORY_KEPT) for s in config.symbols
        }
        self.history_calls: deque[float] = deque()
        self.history_served = 0
        self.offset = dict.fromkeys(config.symbols, 0)  # seqId = market update id - offset
        self.last_seq = {s: self.market.published[s][0] for s in config.symbols}
        self.snapshots_served = 0
        self.trades_made: dict[str, list[list[int]]] = {s: [] for s in config.symbols}
        self.derivatives_sent: list[dict[str, Any]] = []
        self.liquidations_sent: list[dict[str, Any]] = []
        self.open_interest = {s: 1000.0 + self.rng.randrange(1000) for s in config.symbols}
        self._conns: dict[int, _Conn] = {}
        self._closed: deque[ConnectionRecord] = deque(maxlen=1000)
        self._next_conn = 1
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws/v5/public", self._ws_public)
        app.router.add_get("/ws/v5/business", self._ws_business)
        app.router.add_get("/api/v5/market/books", self._books)
        app.router.add_get("/api/v5/public/instruments", self._instruments)
        app.router.add_get("/api/v5/market/history-trades", self._history_trades)
        app.router.add_get("/sim/stats", self._stats)
        await self._listen(app)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._slow())]
        for kind in ("disconnect", "seq-reset", "skip", "trade-skip"):
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
            "exchange": "okx",
            "steps": self.steps,
            "snapshots_served": self.snapshots_served,
            "history_served": self.history_served,
            "faults": self.faults.to_json(),
            "trades": self.trades_made,
            "derivatives": self.derivatives_sent,
            "liquidations": self.liquidations_sent,
            "connections": [r.to_json() for r in records],
        }

    # ------------------------------------------------------------------ market
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
                inst = market.spec.symbol
                for event in market.events:
                    if event[0] == "A":
                        await self._trade(inst, event)
                    elif event[0] == "B":
                        await self._bbo(inst, event)
                market.events.clear()
            if config.steps is not None and self.steps >= config.steps:
                owed = 0.0
            for inst, diff in list(self.market.take_depth(DEPTH_KEY)):
                await self._book_push(inst, diff)

    async def _trade(self, inst: str, event: tuple[Any, ...]) -> None:
        _, _, price, qty, first, last, buyer_is_maker, fills = event
        spec = self.specs[inst]
        now = _ms()
        self.trades_made[inst].append([first, last])
        px, side = fixed(price, spec.price_decimals), "sell" if buyer_is_maker else "buy"
        self.fills[inst].extend(
            (tid, px, fixed(size, spec.qty_decimals), side, now) for tid, size in fills
        )
        if self.trade_skip_due:
            self.trade_skip_due = False
            self.faults.record("trade-skip", symbol=inst, first_id=first, last_id=last)
            return  # withheld: the next push's first fill is past an id never sent
        data = [{
            "instId": inst, "tradeId": str(last), "px": px,
            "sz": fixed(qty, spec.qty_decimals), "side": side,
            "ts": str(now), "count": str(len(fills)), "source": "0",
        }]  # fmt: skip
        await self._push("trades", inst, data, first, last)

    async def _bbo(self, inst: str, event: tuple[Any, ...]) -> None:
        _, uid, bid, bid_qty, ask, ask_qty = event
        spec = self.specs[inst]
        pd, qd = spec.price_decimals, spec.qty_decimals
        data = [{
            "asks": [[fixed(ask, pd), fixed(ask_qty, qd), "0", "1"]],
            "bids": [[fixed(bid, pd), fixed(bid_qty, qd), "0", "1"]],
            "ts": str(_ms()), "seqId": uid - self.offset[inst],
        }]  # fmt: skip
        await self._push("bbo-tbt", inst, data, -1, -1)

    async def _book_push(self, inst: str, diff: Any) -> None:
        _, last, _, bids, asks = diff
        self.market.publish_depth(inst, diff)
        prev = self.last_seq[inst]
        seq = last - self.offset[inst]
        self.last_seq[inst] = seq
        if self.skip_due:
            self.skip_due = False
            self.faults.record("skip", symbol=inst, first_id=prev, last_id=seq)
            return  # withheld: the next push's prevSeqId names a seqId never sent
        spec = self.specs[inst]
        pd, qd = spec.price_decimals, spec.qty_decimals
        data = [{
            "asks": [[fixed(p, pd), fixed(q, qd), "0", "1" if q else "0"]
                     for p, q in sorted(asks.items())],
            "bids": [[fixed(p, pd), fixed(q, qd), "0", "1" if q else "0"]
                     for p, q in sorted(bids.items(), reverse=True)],
            "ts": str(_ms()), "checksum": 0, "prevSeqId": prev, "seqId": seq,
        }]  # fmt: skip
        await self._push("books", inst, data, -1, -1, action="update")

    async def _slow(self) -> None:
        """Tickers, derivative channels, candles and liquidations, every ``slow_s``."""
        while True:
            await asyncio.sleep(self.config.slow_s)
            now = _ms()
            for inst, market in self.market.symbols.items():
                spec = self.specs[inst]
                pd, qd = spec.price_decimals, spec.qty_decimals
                bid, bid_qty, ask, ask_qty = market.top
                s = market.stats
                await self._push("tickers", inst, [{
                    "instType": INST_TYPE[market_of(inst)], "instId": inst,
                    "last": fixed(s.last, pd), "lastSz": fixed(s.last_qty, qd),
                    "askPx": fixed(ask, pd), "askSz": fixed(ask_qty, qd),
                    "bidPx": fixed(bid, pd), "bidSz": fixed(bid_qty, qd),
                    "open24h": fixed(s.open, pd), "high24h": fixed(s.high, pd),
                    "low24h": fixed(s.low, pd), "volCcy24h": fixed(s.quote, pd + qd),
                    "vol24h": fixed(s.volume, qd), "sodUtc0": fixed(s.open, pd),
                    "sodUtc8": fixed(s.open, pd), "ts": str(now),
                }], -1, -1)  # fmt: skip
                k = market.kline("1m")
                market.roll_klines(now)
                await self._push("candle1m", inst, [[
                    str(k.open_ms), fixed(k.open, pd), fixed(k.high, pd), fixed(k.low, pd),
                    fixed(k.close, pd), fixed(k.volume, qd), fixed(k.volume, qd),
                    fixed(k.quote, pd + qd), "0",
                ]], -1, -1)  # fmt: skip
                if market_of(inst) != SPOT and self._running():
                    await self._derivatives(inst, now, (bid + ask) / 2 / 10**pd)
            if self._running():
                await self._liquidation(now)

    def _running(self) -> bool:
        return self.config.steps is None or self.steps < self.config.steps

    async def _derivatives(self, inst: str, now: int, mid: float) -> None:
        rng = self.rng
        mark = round(mid * (1 + rng.uniform(-1e-4, 1e-4)), 2)
        index = round(mid * (1 + rng.uniform(-2e-4, 2e-4)), 2)
        self.open_interest[inst] = max(1.0, self.open_interest[inst] + rng.randrange(-5, 6))
        oi = self.open_interest[inst]
        rows: list[tuple[str, str, dict[str, str]]] = [
            ("mark-price", inst, {"instType": INST_TYPE[market_of(inst)], "instId": inst,
                                  "markPx": str(mark), "ts": str(now)}),
            ("index-tickers", underlying(inst), {"instId": underlying(inst), "idxPx": str(index),
                                                 "ts": str(now)}),
            ("open-interest", inst, {"instType": INST_TYPE[market_of(inst)], "instId": inst,
                                     "oi": str(oi), "oiCcy": str(oi / 100),
                                     "oiUsd": str(round(oi * mid, 2)), "ts": str(now)}),
        ]  # fmt: skip
        if market_of(inst) != FUTURES:
            next_ms = now - now % (8 * HOUR_MS) + 8 * HOUR_MS
            rows.append(("funding-rate", inst, {
                "instType": "SWAP", "instId": inst, "method": "current_period",
                "fundingRate": f"{rng.uniform(-3e-4, 3e-4):.8f}", "nextFundingRate": "",
                "fundingTime": str(next_ms), "nextFundingTime": str(next_ms + 8 * HOUR_MS),
                "ts": str(now),
            }))  # fmt: skip
        for channel, key, row in rows:
            if await self._push(channel, key, [row], -1, -1):
                self.derivatives_sent.append({"channel": channel, "inst": inst, **row})

    async def _liquidation(self, now: int) -> None:
        derivs = [i for i in self.specs if market_of(i) != SPOT]
        if not derivs or self.rng.random() < 0.5:
            return
        inst = derivs[self.rng.randrange(len(derivs))]
        spec = self.specs[inst]
        bid, _, ask, _ = self.market.symbols[inst].top
        side = self.rng.choice(("buy", "sell"))
        detail = {
            "side": side, "posSide": "short" if side == "buy" else "long",
            "bkPx": fixed(ask if side == "buy" else bid, spec.price_decimals),
            "sz": str(self.rng.randrange(1, 50)), "bkLoss": "0", "ccy": "", "ts": str(now),
        }  # fmt: skip
        inst_type = INST_TYPE[market_of(inst)]
        row = {"instId": inst, "instType": inst_type, "uly": underlying(inst),
               "instFamily": underlying(inst), "details": [detail]}  # fmt: skip
        if await self._push("liquidation-orders", inst_type, [row], -1, -1):
            self.liquidations_sent.append({"inst": inst, **detail})

    async def _push(self, channel: str, key: str, data: list[Any], first: int, last: int,
                    action: str = "") -> bool:  # fmt: skip
        """Send to every connection subscribed to ``(channel, key)``; True if any got it."""
        arg: dict[str, str] = {"channel": channel}
        arg["instType" if channel == "liquidation-orders" else "instId"] = key
        body: dict[str, Any] = {"arg": arg}
        if action:
            body["action"] = action
        body["data"] = data
        frame = msgspec.json.encode(body)
        sent = False
        for conn in list(self._conns.values()):
            if (channel, key) in conn.args and await self._send(conn, frame):
                conn.record.sent(f"{channel}:{key}", first, last)
                sent = True
        return sent

    async def _send(self, conn: _Conn, frame: bytes | str) -> bool:
        try:
            # OKX pushes text frames
            await conn.ws.send_str(frame if isinstance(frame, str) else frame.decode())
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
            if kind == "disconnect":
                conns = list(self._conns.values())
                self.faults.record(kind, detail=f"{len(conns)} connection(s)")
                for conn in conns:
                    conn.record.close_reason = "disconnect fault"
                    if conn.transport is not None:
                        conn.transport.abort()
            elif kind == "skip":
                self.skip_due = True
            elif kind == "trade-skip":
                self.trade_skip_due = True
            else:  # seq-reset: the next pushes count from a much lower seqId
                for inst in self.offset:
                    uid = self.market.symbols[inst].update_id
                    self.offset[inst] = uid - self.rng.randrange(10, 1000)
                    self.faults.record(kind, symbol=inst, detail=f"offset {self.offset[inst]}")

    def _faulting(self) -> bool:
        steps = self.config.steps
        return steps is None or self.steps < steps // 2

    # ------------------------------------------------------------------ REST
    async def _books(self, request: web.Request) -> web.Response:
        inst = request.query.get("instId", "")
        if inst not in self.specs:
            missing = {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
            return web.Response(body=msgspec.json.encode(missing), content_type="application/json")
        try:
            depth = max(1, min(400, int(request.query.get("sz", "1"))))
        except ValueError:
            depth = 1
        self.snapshots_served += 1
        if self.stale_left > 0:
            self.stale_left -= 1
            self.faults.record("stale-snapshot", symbol=inst)
            uid, bids, asks = self.market.pre_warmup[inst]
            seq = max(1, uid - self.offset[inst])  # older than every push sent since
        else:
            _, bids, asks = self.market.published[inst]
            seq = self.last_seq[inst]
        spec = self.specs[inst]
        pd, qd = spec.price_decimals, spec.qty_decimals
        data = [{
            "asks": [[fixed(p, pd), fixed(asks[p], qd), "0", "1"]
                     for p in heapq.nsmallest(depth, asks)],
            "bids": [[fixed(p, pd), fixed(bids[p], qd), "0", "1"]
                     for p in heapq.nlargest(depth, bids)],
            "ts": str(_ms()), "seqId": seq,
        }]  # fmt: skip
        body: dict[str, Any] = {"code": "0", "msg": "", "data": data}
        return web.Response(body=msgspec.json.encode(body), content_type="application/json")

    async def _history_trades(self, request: web.Request) -> web.Response:
        """OKX ``GET /api/v5/market/history-trades``: ``type=1`` pages by tradeId (``after``:
        older than it, ``before``: newer than it), newest first, ``limit`` 1..100."""
        now = time.monotonic()
        calls = self.history_calls
        while calls and calls[0] <= now - HISTORY_WINDOW_S:
            calls.popleft()
        if len(calls) >= HISTORY_LIMIT:
            limited = {"code": "50011", "msg": "Too Many Requests", "data": []}
            return web.Response(
                status=429, body=msgspec.json.encode(limited), content_type="application/json"
            )
        calls.append(now)
        query = request.query
        inst = query.get("instId", "")
        if inst not in self.fills:
            return _okx_error("51001", "Instrument ID does not exist")
        if query.get("type", "1") != "1":
            return _okx_error("51000", "Parameter type error")  # the simulator pages by id only
        try:
            after = int(query["after"]) if "after" in query else None
            before = int(query["before"]) if "before" in query else None
            limit = int(query.get("limit", "100"))
        except ValueError:
            return _okx_error("51000", "Parameter after, before or limit error")
        if not 1 <= limit <= 100:
            return _okx_error("51000", "Parameter limit error")
        rows = []
        for tid, px, sz, side, ts in reversed(self.fills[inst]):  # newest first
            if after is not None and tid >= after:
                continue
            if before is not None and tid <= before:
                break
            rows.append({"instId": inst, "side": side, "sz": sz, "px": px, "source": "0",
                         "tradeId": str(tid), "ts": str(ts)})  # fmt: skip
            if len(rows) >= limit:
                break
        self.history_served += 1
        body = {"code": "0", "msg": "", "data": rows}
        return web.Response(body=msgspec.json.encode(body), content_type="application/json")

    async def _instruments(self, request: web.Request) -> web.Response:
        inst_type = request.query.get("instType", "")
        rows = []
        for inst, spec in self.specs.items():
            if INST_TYPE[market_of(inst)] != inst_type:
                continue
            base, quote = inst.split("-")[:2]
            tick = fixed(1, spec.price_decimals)
            row = {"instId": inst, "instType": inst_type, "tickSz": tick, "state": "live",
                   "uly": "", "baseCcy": "", "quoteCcy": "", "settleCcy": "", "ctVal": "",
                   "ctMult": "", "ctValCcy": "", "ctType": "", "expTime": "",
                   "lotSz": fixed(1, spec.qty_decimals)}  # fmt: skip
            if inst_type == "SPOT":
                row.update(baseCcy=base, quoteCcy=quote)
            else:
                inverse = quote == "USD"
                row.update(uly=f"{base}-{quote}", settleCcy=base if inverse else quote,
                           ctVal="100" if inverse else "0.01", ctMult="1",
                           ctValCcy=quote if inverse else base,
                           ctType="inverse" if inverse else "linear", lotSz="1")  # fmt: skip
                if inst_type == "FUTURES":
                    row["expTime"] = str(_expiry_ms(inst))
            rows.append(row)
        if inst_type not in ("SPOT", "SWAP", "FUTURES", "OPTION"):
            body: dict[str, Any] = {"code": "51000", "msg": "Parameter instType error", "data": []}
        else:
            body = {"code": "0", "msg": "", "data": rows}
        return web.Response(body=msgspec.json.encode(body), content_type="application/json")

    async def _stats(self, request: web.Request) -> web.Response:
        return web.Response(body=msgspec.json.encode(self.stats()), content_type="application/json")

    # ------------------------------------------------------------------ WebSocket
    async def _ws_public(self, request: web.Request) -> web.StreamResponse:
        return await self._ws(request, business=False)

    async def _ws_business(self, request: web.Request) -> web.StreamResponse:
        return await self._ws(request, business=True)

    async def _ws(self, request: web.Request, business: bool) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 16)
        await ws.prepare(request)
        record = ConnectionRecord(self._next_conn, request.path, request.remote or "", RANGE_CAP)
        conn = _Conn(record, ws, request.transport, business)
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
        if text == "ping":
            await self._send(conn, "pong")
            return
        conn_id = f"{conn.record.conn_id:08x}"
        try:
            req = msgspec.json.decode(text)
        except msgspec.DecodeError:
            req = None
        op = req.get("op") if isinstance(req, dict) else None
        args = req.get("args") if isinstance(req, dict) else None
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
            error = {"event": "error", "code": "60012", "msg": f"Invalid request: {text[:200]}",
                     "connId": conn_id}  # fmt: skip
            await self._send(conn, msgspec.json.encode(error))
            return
        for arg in args:
            channel = arg.get("channel", "") if isinstance(arg, dict) else ""
            key = (arg.get("instType") if channel == "liquidation-orders" else arg.get("instId")) \
                if isinstance(arg, dict) else None  # fmt: skip
            if not isinstance(key, str) or not self._known(conn, channel, key):
                error = {"event": "error", "code": "60018",
                         "msg": f"Wrong URL or channel:{channel},instId:{key} doesn't exist",
                         "connId": conn_id}  # fmt: skip
                await self._send(conn, msgspec.json.encode(error))
                continue
            if op == "subscribe":
                conn.args.add((channel, key))
                conn.record.subscriptions.append(f"{channel}:{key}")
            else:
                conn.args.discard((channel, key))
            ack = {"event": op, "arg": arg, "connId": conn_id}
            await self._send(conn, msgspec.json.encode(ack))

    def _known(self, conn: _Conn, channel: str, key: str) -> bool:
        if conn.business:
            return channel in BUSINESS_CHANNELS and key in self.specs
        if channel == "liquidation-orders":
            return key in ("SWAP", "FUTURES")
        if channel == "index-tickers":
            return any(market_of(i) != SPOT and underlying(i) == key for i in self.specs)
        if channel not in PUBLIC_CHANNELS or key not in self.specs:
            return False
        if channel in DERIVATIVE_CHANNELS and market_of(key) == SPOT:
            return False
        return not (channel == "funding-rate" and market_of(key) == FUTURES)


def _okx_error(code: str, msg: str) -> web.Response:
    """OKX's error answer: HTTP 400 for a parameter error (51000), 200 otherwise (51001)."""
    body = {"code": code, "msg": msg, "data": []}
    status = 400 if code == "51000" else 200
    return web.Response(
        status=status, body=msgspec.json.encode(body), content_type="application/json"
    )


def _expiry_ms(inst: str) -> int:
    """A dated future's expiry: 08:00 UTC of its date (OKX's delivery time)."""
    import datetime

    day = datetime.datetime.strptime(inst.rsplit("-", 1)[1], "%y%m%d").replace(
        hour=8, tzinfo=datetime.UTC
    )
    return int(day.timestamp() * 1000)
