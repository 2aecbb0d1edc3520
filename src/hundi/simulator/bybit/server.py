"""Bybit v5 public WebSocket and the REST endpoints the collector uses, over real sockets.

The wire is Bybit's: WebSockets at ``/v5/public/spot``, ``/v5/public/linear`` and
``/v5/public/inverse`` taking ``{"op":"subscribe"|"unsubscribe","args":[...]}`` (acknowledged
``{"success":true,"ret_msg":"","conn_id":...,"op":...}``; an unknown topic, or more than 10
args in one spot request, gets ``"success":false`` with Bybit's ``ret_msg``) and
``{"op":"ping"}`` (spot answers ``op:ping`` with ``ret_msg:pong``, derivatives ``op:pong``).
Topics per symbol: ``publicTrade`` (derivatives' trade ids are UUIDs, spot's decimal),
``orderbook.{1,50,200,1000}`` (a snapshot of the top N levels on subscribe, then one delta per
change of that top-N view with ``u`` + 1; a level leaving the view is sent with size 0;
``orderbook.1`` is snapshots only, re-sent after 3 s without a change with the same ``u``),
``tickers`` (spot: snapshots; derivatives: a snapshot on subscribe, then deltas of the changed
fields), ``kline.{interval}`` (the open kline every 100 ms, a closed one with ``confirm``
true) and ``allLiquidation`` (synthetic liquidations, ``S`` the liquidated position's side).
REST: ``/v5/market/instruments-info?category=...`` (symbols ending in ``USD`` are inverse
perpetuals, the others spot pairs and linear perpetuals; ``limit``/``cursor`` paging) and
``/v5/market/orderbook?category=&symbol=&limit=``; spot also serves ``orderbook.full`` (delta
only, every level, ``u`` + 1 per change) and its snapshot ``/v5/market/full_orderbook``.

Faults (``faults``: kind → seconds): ``drop`` aborts every socket; ``restart`` is Bybit's
book service restart: every book stream's ``u`` restarts at 1 with a fresh snapshot;
``skip`` skips one ``u`` of every book stream (a delta lost); ``stale-snapshot`` N answers the
first N ``full_orderbook`` requests with the book some changes back (older than the deltas a
client has buffered). With ``steps``, faults strike
during the first half of the market's actions only. ``GET /sim/stats`` is the ground truth:
trade ids sent per symbol, the final top-N views with their ``u``, the latest ticker fields,
the liquidations sent and the fault log.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from hundi.simulator.ground_truth import ConnectionRecord, FaultLog
from hundi.simulator.market import SymbolSpec, SyntheticMarket, fixed
from hundi.simulator.site import SimulatorSite

FAULTS = ("drop", "restart", "skip", "stale-snapshot")
FULL = 10_000  # orderbook.full: up to 10,000 levels a side (documented), delta only
STALE_BACK = 10  # a stale full_orderbook answer is the book this many changes back
CATEGORIES = ("spot", "linear", "inverse")
DEPTHS = (1, 50, 200, 1000)
DEPTH_KEY = 0
SPOT_ARGS_LIMIT = 10
RESNAPSHOT_MS = 3_000  # derivatives' orderbook.1: a snapshot after 3 s without a change
RANGE_CAP = 100_000
# Bybit kline intervals → the shared market's names (``M`` is not simulated)
KLINES = {
    "1": "1m", "3": "3m", "5": "5m", "15": "15m", "30": "30m", "60": "1h", "120": "2h",
    "240": "4h", "360": "6h", "720": "12h", "D": "1d", "W": "1w",
}  # fmt: skip
FUNDING_PERIOD_MS = 8 * 3_600_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def category_of(symbol: str) -> tuple[str, ...]:
    """The categories a simulated symbol is listed in."""
    return ("inverse",) if symbol.endswith("USD") else ("spot", "linear")


def split(symbol: str) -> tuple[str, str]:
    for quote in ("USDT", "USDC", "USD"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol[:-3], symbol[-3:]


@dataclass(slots=True)
class BybitSimConfig:
    host: str = "127.0.0.1"
    port: int = 0
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "BTCUSD")
    seed: int = 1
    rate: float = 200.0  # market actions per second
    tick_s: float = 0.02  # book deltas are pushed every tick
    ticker_s: float = 0.1  # tickers every 100 ms (documented)
    steps: int | None = None
    liquidation_rate: float = 0.05  # share of trades that come with a liquidation
    faults: dict[str, float] = field(default_factory=dict)


class _Stream:
    """One (category, depth, symbol) book stream: its ``u`` and the top-N view published
    (``depth`` :data:`FULL`: ``orderbook.full``, every level)."""

    __slots__ = ("asks", "bids", "category", "changed_ms", "depth", "symbol", "u")

    def __init__(self, category: str, depth: int, symbol: str, u: int) -> None:
        self.category = category
        self.depth = depth
        self.symbol = symbol
        self.u = u
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.changed_ms = 0

    @property
    def topic(self) -> str:
        depth = "full" if self.depth == FULL else str(self.depth)
        return f"orderbook.{depth}.{self.symbol}"


class _Conn:
    __slots__ = ("category", "record", "topics", "transport", "ws")

    def __init__(self, record: ConnectionRecord, ws: web.WebSocketResponse, transport: Any,
                 category: str) -> None:  # fmt: skip
        self.record = record
        self.ws = ws
        self.transport = transport
        self.category = category
        self.topics: set[str] = set()


class BybitSimulator(SimulatorSite[BybitSimConfig]):
    """``async with BybitSimulator(cfg) as sim: sim.ws_url, sim.rest_url``."""

    def __init__(self, config: BybitSimConfig) -> None:
        unknown = set(config.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault {sorted(unknown)[0]!r} (known: {', '.join(FAULTS)})")
        self.config = config
        self.market = SyntheticMarket(config.symbols, config.seed, _now_ms(), 1)
        self.market.add_depth_speed(DEPTH_KEY)
        self.specs: dict[str, SymbolSpec] = {s: m.spec for s, m in self.market.symbols.items()}
        self.rng = random.Random(f"{config.seed}:bybit")
        self.steps = 0
        self.faults = FaultLog()
        self.streams: dict[tuple[str, int, str], _Stream] = {}
        # "category:i:seq:fill" of every trade sent (the client's id: trade_id(i, seq, fill))
        self.trades_sent: dict[str, list[str]] = {s: [] for s in config.symbols}
        self.trade_seq = 10**9  # the cross sequence of trades: one per match (a taker's fills)
        self.liquidations: dict[str, list[list[Any]]] = {s: [] for s in config.symbols}
        self.tickers: dict[str, dict[str, str]] = {}
        self.open_interest: dict[str, float] = {
            s: 1000.0 + self.rng.random() * 1000 for s in config.symbols
        }
        self.last_price: dict[str, int] = {s: m.best_ask for s, m in self.market.symbols.items()}
        self._skip_next = False
        self.full_history: dict[str, list[tuple[int, dict[int, int], dict[int, int]]]] = {}
        self.stale_left = int(config.faults.get("stale-snapshot", 0))
        self.snapshots_served = 0
        self.kline_topics: set[tuple[str, str]] = set()  # (symbol, Bybit interval) subscribed
        self.kline_pushes = 0  # rounds of kline pushes (tests: one after a pause is final)
        self.paused = False  # tests: no market actions, ticker changes or faults while set
        self._conns: dict[int, _Conn] = {}
        self._closed: list[ConnectionRecord] = []
        self._next_conn = 1
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        for symbol in config.symbols:
            self._ticker_fields(symbol)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = web.Application()
        for category in CATEGORIES:
            app.router.add_get(f"/v5/public/{category}", self._ws)
        app.router.add_get("/v5/market/instruments-info", self._instruments)
        app.router.add_get("/v5/market/orderbook", self._orderbook)
        app.router.add_get("/v5/market/full_orderbook", self._full_orderbook)
        app.router.add_get("/sim/stats", self._stats)
        await self._listen(app)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._ticker_loop())]
        for kind in set(self.config.faults) & {"drop", "restart", "skip"}:
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
        books = {
            f"{s.category}:{s.topic}": {
                "u": s.u,
                "bids": sorted(s.bids.items(), reverse=True),
                "asks": sorted(s.asks.items()),
                "price_decimals": self.specs[s.symbol].price_decimals,
                "qty_decimals": self.specs[s.symbol].qty_decimals,
            }
            for s in self.streams.values()
        }
        return {
            "exchange": "bybit",
            "steps": self.steps,
            "faults": self.faults.to_json(),
            "trades": self.trades_sent,
            "liquidations": self.liquidations,
            "tickers": self.tickers,
            "books": books,
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
            if self.paused:
                owed = 0.0
            while owed >= 1 and (config.steps is None or self.steps < config.steps):
                owed -= 1
                self.steps += 1
                market = self.market.step()
                symbol = market.spec.symbol
                for event in market.events:
                    if event[0] == "A":
                        await self._trades(symbol, event)
                market.events.clear()
            if config.steps is not None and self.steps >= config.steps:
                owed = 0.0
            for symbol, diff in list(self.market.take_depth(DEPTH_KEY)):
                self.market.publish_depth(symbol, diff)
            await self._book_deltas()

    def _trade_id(self, category: str, trade_id: int) -> str:
        if category == "spot":
            return str(2_290_000_000_000_000_000 + trade_id)
        return str(uuid.uuid5(uuid.NAMESPACE_OID, f"bybit:{self.config.seed}:{trade_id}"))

    async def _trades(self, symbol: str, event: tuple[Any, ...]) -> None:
        _, _, price, _, _, _, buyer_is_maker, fills = event
        spec = self.specs[symbol]
        self.last_price[symbol] = price
        now = _now_ms()
        side = "Sell" if buyer_is_maker else "Buy"
        price_text = fixed(price, spec.price_decimals)
        self.trade_seq += 1
        seq = self.trade_seq
        for category in category_of(symbol):
            rows = [
                {"T": now, "s": symbol, "S": side, "v": fixed(qty, spec.qty_decimals),
                 "p": price_text, "L": "PlusTick", "i": self._trade_id(category, tid),
                 "BT": False, "seq": seq}
                for tid, qty in fills
            ]  # fmt: skip
            topic = f"publicTrade.{symbol}"
            frame = msgspec.json.encode({"topic": topic, "type": "snapshot", "ts": now,
                                         "data": rows})  # fmt: skip
            if await self._broadcast(category, topic, frame):
                self.trades_sent[symbol].extend(
                    f"{category}:{r['i']}:{seq}:{fill}" for fill, r in enumerate(rows)
                )
        for tid, qty in fills:
            if self.rng.random() < self.config.liquidation_rate:
                await self._liquidation(symbol, price, qty, tid)

    async def _liquidation(self, symbol: str, price: int, qty: int, tid: int) -> None:
        spec = self.specs[symbol]
        category = "inverse" if symbol.endswith("USD") else "linear"
        side = self.rng.choice(("Buy", "Sell"))
        size, price_text = fixed(qty, spec.qty_decimals), fixed(price, spec.price_decimals)
        row = {"T": _now_ms(), "s": symbol, "S": side, "v": size, "p": price_text}
        topic = f"allLiquidation.{symbol}"
        frame = msgspec.json.encode({"topic": topic, "type": "snapshot", "ts": row["T"],
                                     "data": [row]})  # fmt: skip
        if await self._broadcast(category, topic, frame):
            self.liquidations[symbol].append([row["T"], row["S"], row["v"], row["p"]])

    def _view(self, symbol: str, depth: int) -> tuple[dict[int, int], dict[int, int]]:
        _, bids, asks = self.market.published[symbol]
        return (
            {p: bids[p] for p in heapq.nlargest(depth, bids)},
            {p: asks[p] for p in heapq.nsmallest(depth, asks)},
        )

    async def _book_deltas(self) -> None:
        now = _now_ms()
        skip, self._skip_next = self._skip_next, False
        for stream in list(self.streams.values()):  # every stream moves, subscribed or not
            bids, asks = self._view(stream.symbol, stream.depth)
            bid_rows = _changes(stream.bids, bids)
            ask_rows = _changes(stream.asks, asks)
            if stream.depth == 1:  # documented: level 1 is snapshots only
                if bid_rows or ask_rows:
                    stream.bids, stream.asks, stream.changed_ms = bids, asks, now
                    stream.u += 1
                elif now - stream.changed_ms < RESNAPSHOT_MS:
                    continue
                stream.changed_ms = now  # unchanged for 3 s: the same snapshot, same u
                frame = self._book_frame(stream, "snapshot", now)
                await self._broadcast(stream.category, stream.topic, frame)
                continue
            if not bid_rows and not ask_rows:
                continue
            stream.bids, stream.asks, stream.changed_ms = bids, asks, now
            stream.u += 2 if skip else 1
            if skip:
                self.faults.record("skip", symbol=stream.symbol, stream=stream.topic,
                                   first_id=stream.u - 1, last_id=stream.u - 1)  # fmt: skip
            if stream.depth == FULL:
                history = self.full_history.setdefault(stream.symbol, [])
                history.append((stream.u, dict(bids), dict(asks)))
                del history[:-STALE_BACK]
            spec = self.specs[stream.symbol]
            pd, qd = spec.price_decimals, spec.qty_decimals
            data = {
                "s": stream.symbol,
                "b": [[fixed(p, pd), fixed(q, qd)] for p, q in sorted(bid_rows, reverse=True)],
                "a": [[fixed(p, pd), fixed(q, qd)] for p, q in sorted(ask_rows)],
                "u": stream.u, "seq": self.steps,
            }  # fmt: skip
            frame = msgspec.json.encode({"topic": stream.topic, "type": "delta", "ts": now,
                                         "data": data, "cts": now})  # fmt: skip
            await self._broadcast(stream.category, stream.topic, frame)

    def _book_frame(self, stream: _Stream, kind: str, now: int) -> bytes:
        spec = self.specs[stream.symbol]
        pd, qd = spec.price_decimals, spec.qty_decimals
        bids = sorted(stream.bids.items(), reverse=True)
        data = {
            "s": stream.symbol,
            "b": [[fixed(p, pd), fixed(q, qd)] for p, q in bids],
            "a": [[fixed(p, pd), fixed(q, qd)] for p, q in sorted(stream.asks.items())],
            "u": stream.u, "seq": self.steps,
        }  # fmt: skip
        return msgspec.json.encode({"topic": stream.topic, "type": kind, "ts": now, "data": data,
                                    "cts": now})  # fmt: skip

    # ------------------------------------------------------------------ tickers
    def _ticker_fields(self, symbol: str) -> dict[str, str]:
        """The full ticker of ``symbol`` now (derivatives' fields included)."""
        spec = self.specs[symbol]
        m = self.market.symbols[symbol]
        pd = spec.price_decimals
        s = m.stats
        mid2 = m.best_bid + m.best_ask
        now = _now_ms()
        self.open_interest[symbol] = max(1.0, self.open_interest[symbol] + self.rng.uniform(-5, 5))
        fields = {
            "symbol": symbol,
            "lastPrice": fixed(self.last_price[symbol], pd),
            "prevPrice24h": fixed(s.open, pd),
            "highPrice24h": fixed(max(s.high, self.last_price[symbol]), pd),
            "lowPrice24h": fixed(min(s.low, self.last_price[symbol]), pd),
            "volume24h": fixed(s.volume, spec.qty_decimals),
            "turnover24h": f"{s.quote / 10**pd / 10**spec.qty_decimals:.4f}",
            "markPrice": fixed(mid2 // 2, pd),
            "indexPrice": fixed(m.best_bid, pd),
            "fundingRate": f"{self.rng.uniform(-0.0005, 0.0005):.6f}",
            "nextFundingTime": str((now // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS),
            "openInterest": f"{self.open_interest[symbol]:.3f}",
            "openInterestValue": f"{self.open_interest[symbol] * mid2 / 2 / 10**pd:.2f}",
        }
        return fields

    async def _ticker_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.ticker_s)
            await self._klines()
            if self.paused:
                continue
            now = _now_ms()
            for symbol in self.specs:
                before = self.tickers.get(symbol, {})
                fields = self._ticker_fields(symbol)
                if self.rng.random() < 0.5:  # funding rate changes less often than the rest
                    fields["fundingRate"] = before.get("fundingRate", fields["fundingRate"])
                self.tickers[symbol] = fields
                topic = f"tickers.{symbol}"
                for category in category_of(symbol):
                    if category == "spot":
                        spot = {k: v for k, v in fields.items() if k in _SPOT_FIELDS}
                        frame = msgspec.json.encode({"topic": topic, "type": "snapshot",
                                                     "ts": now, "data": spot})  # fmt: skip
                    else:
                        delta = {k: v for k, v in fields.items() if before.get(k) != v}
                        delta["symbol"] = symbol
                        frame = msgspec.json.encode({"topic": topic, "type": "delta", "ts": now,
                                                     "cs": self.steps, "data": delta})  # fmt: skip
                    await self._broadcast(category, topic, frame)

    async def _klines(self) -> None:
        """The open kline of every subscribed interval (closed ones first, ``confirm`` true)."""
        now = _now_ms()
        self.kline_pushes += 1
        for symbol, interval in sorted(self.kline_topics):
            market = self.market.symbols[symbol]
            name = KLINES[interval]
            closed = [k for k in market.roll_klines(now) if k.interval == name]
            rows = [self._kline_row(symbol, k, True, now) for k in closed]
            rows.append(self._kline_row(symbol, market.kline(name), False, now))
            topic = f"kline.{interval}.{symbol}"
            frame = msgspec.json.encode({"topic": topic, "type": "snapshot", "ts": now,
                                         "data": rows})  # fmt: skip
            for category in category_of(symbol):
                await self._broadcast(category, topic, frame)

    def _kline_row(self, symbol: str, k: Any, confirm: bool, now: int) -> dict[str, Any]:
        spec = self.specs[symbol]
        pd, qd = spec.price_decimals, spec.qty_decimals
        interval = next(i for i, name in KLINES.items() if name == k.interval)
        return {
            "start": k.open_ms, "end": k.close_ms, "interval": interval,
            "open": fixed(k.open, pd), "close": fixed(k.close, pd), "high": fixed(k.high, pd),
            "low": fixed(k.low, pd), "volume": fixed(k.volume, qd),
            "turnover": f"{k.quote / 10 ** (pd + qd):.4f}", "confirm": confirm, "timestamp": now,
        }  # fmt: skip

    # ------------------------------------------------------------------ sending
    async def _broadcast(self, category: str, topic: str, frame: bytes) -> bool:
        """Send to every subscriber; True if one got it."""
        sent = False
        for conn in list(self._conns.values()):
            if conn.category == category and topic in conn.topics and await self._send(conn, frame):
                conn.record.sent(topic, -1, -1)
                sent = True
        return sent

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
            if kind == "drop":
                conns = list(self._conns.values())
                self.faults.record("drop", detail=f"{len(conns)} connection(s)")
                for conn in conns:
                    conn.record.close_reason = "drop fault"
                    if conn.transport is not None:
                        conn.transport.abort()
            elif kind == "skip":
                self._skip_next = True
            elif kind == "restart":
                now = _now_ms()
                for stream in self.streams.values():
                    stream.u = 1
                    self.faults.record("restart", symbol=stream.symbol, stream=stream.topic)
                    if stream.depth == FULL:  # delta only: a u=1 delta (the client refetches)
                        self.full_history.pop(stream.symbol, None)
                        data = {"s": stream.symbol, "b": [], "a": [], "u": 1, "seq": self.steps}
                        push = {"topic": stream.topic, "type": "delta", "ts": now, "data": data}
                        frame = msgspec.json.encode(push)
                        await self._broadcast(stream.category, stream.topic, frame)
                        continue
                    stream.bids, stream.asks = self._view(stream.symbol, stream.depth)
                    await self._broadcast(stream.category, stream.topic,
                                          self._book_frame(stream, "snapshot", now))  # fmt: skip

    def _faulting(self) -> bool:
        steps = self.config.steps
        return not self.paused and (steps is None or self.steps < steps // 2)

    # ------------------------------------------------------------------ REST
    async def _instruments(self, request: web.Request) -> web.Response:
        category = request.query.get("category", "")
        if category not in CATEGORIES:
            return _json({"retCode": 10001, "retMsg": "params error: category", "result": {}})
        symbols = sorted(s for s in self.specs if category in category_of(s))
        if "symbol" in request.query:
            symbols = [s for s in symbols if s == request.query["symbol"]]
        limit = max(1, min(1000, int(request.query.get("limit", "500") or 500)))
        start = int(request.query.get("cursor", "0") or 0)
        page = symbols[start : start + limit] if category != "spot" else symbols
        more = category != "spot" and start + limit < len(symbols)
        rows = []
        for symbol in page:
            spec = self.specs[symbol]
            base, quote = split(symbol)
            row: dict[str, Any] = {
                "symbol": symbol, "status": "Trading", "baseCoin": base, "quoteCoin": quote,
                "priceFilter": {"tickSize": fixed(1, spec.price_decimals)},
                "lotSizeFilter": {"qtyStep": fixed(1, spec.qty_decimals),
                                  "basePrecision": fixed(1, spec.qty_decimals)},
            }  # fmt: skip
            if category != "spot":
                inverse = category == "inverse"
                row.update(
                    contractType="InversePerpetual" if inverse else "LinearPerpetual",
                    settleCoin=base if inverse else quote, deliveryTime="0",
                )  # fmt: skip
            rows.append(row)
        result = {"category": category, "list": rows,
                  "nextPageCursor": str(start + limit) if more else ""}  # fmt: skip
        return _json({"retCode": 0, "retMsg": "OK", "result": result, "time": _now_ms()})

    async def _orderbook(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        if symbol not in self.specs:
            return _json({"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {}})
        limit = int(request.query.get("limit", "25") or 25)
        spec = self.specs[symbol]
        pd, qd = spec.price_decimals, spec.qty_decimals
        bids, asks = self._view(symbol, limit)
        result = {
            "s": symbol, "ts": _now_ms(), "u": self.steps, "seq": self.steps,
            "b": [[fixed(p, pd), fixed(q, qd)] for p, q in sorted(bids.items(), reverse=True)],
            "a": [[fixed(p, pd), fixed(q, qd)] for p, q in sorted(asks.items())],
        }  # fmt: skip
        return _json({"retCode": 0, "retMsg": "OK", "result": result, "time": _now_ms()})

    async def _full_orderbook(self, request: web.Request) -> web.Response:
        """The full book as the ``orderbook.full`` stream has published it, with its ``u``
        (``stale-snapshot`` N: the first N answers are the book some changes back)."""
        symbol = request.query.get("symbol", "")
        stream = self.streams.get((request.query.get("category", ""), FULL, symbol))
        if stream is None:
            return _json({"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {}})
        self.snapshots_served += 1
        u, bids, asks = stream.u, stream.bids, stream.asks
        history = self.full_history.get(symbol, [])
        if self.stale_left > 0 and len(history) >= STALE_BACK:  # older than any buffer
            self.stale_left -= 1
            u, bids, asks = history[0]
            self.faults.record("stale-snapshot", symbol=symbol, first_id=u, last_id=stream.u)
        spec = self.specs[symbol]
        pd, qd = spec.price_decimals, spec.qty_decimals
        result = {
            "s": symbol, "ts": _now_ms(), "u": u, "seq": self.steps, "cts": _now_ms(),
            "b": [[fixed(p, pd), fixed(q, qd)] for p, q in sorted(bids.items(), reverse=True)],
            "a": [[fixed(p, pd), fixed(q, qd)] for p, q in sorted(asks.items())],
        }  # fmt: skip
        return _json({"retCode": 0, "retMsg": "OK", "result": result, "time": _now_ms()})

    async def _stats(self, request: web.Request) -> web.Response:
        return _json(self.stats())

    # ------------------------------------------------------------------ WebSocket
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        category = request.path.rsplit("/", 1)[-1]
        ws = web.WebSocketResponse(max_msg_size=1 << 16)
        await ws.prepare(request)
        record = ConnectionRecord(self._next_conn, request.path, request.remote or "", RANGE_CAP)
        conn = _Conn(record, ws, request.transport, category)
        self._next_conn += 1
        self._conns[record.conn_id] = conn
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._request(conn, msg.data)
        finally:
            record.closed_ns = time.time_ns()
            self._conns.pop(record.conn_id, None)
            self._closed.append(record)
        return ws

    async def _request(self, conn: _Conn, text: str | bytes) -> None:
        try:
            req = msgspec.json.decode(text)
        except msgspec.DecodeError:
            req = None
        op = req.get("op") if isinstance(req, dict) else None
        conn_id = f"sim-{conn.record.conn_id}"
        if op == "ping":
            if conn.category == "spot":
                pong = {"success": True, "ret_msg": "pong", "conn_id": conn_id, "op": "ping"}
            else:
                pong = {"op": "pong", "args": [str(_now_ms())], "conn_id": conn_id}
            await self._send(conn, msgspec.json.encode(pong))
            return
        args = req.get("args") if isinstance(req, dict) else None
        req_id = req.get("req_id", "") if isinstance(req, dict) else ""  # echoed, as Bybit does
        req_id = req_id if isinstance(req_id, str) else ""
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
            await self._refuse(conn, str(op or ""), "error:request not supported", req_id)
            return
        if conn.category == "spot" and len(args) > SPOT_ARGS_LIMIT:
            await self._refuse(conn, op, f"args size >{SPOT_ARGS_LIMIT}", req_id)
            return
        bad = [a for a in args if not isinstance(a, str) or not self._known(conn.category, a)]
        if bad:
            await self._refuse(conn, op, f"Invalid symbol :[{bad[0]}]", req_id)
            return
        ack = {"success": True, "ret_msg": "", "conn_id": conn_id, "req_id": req_id, "op": op}
        await self._send(conn, msgspec.json.encode(ack))
        for topic in args:
            if op == "unsubscribe":
                conn.topics.discard(topic)
                continue
            conn.topics.add(topic)
            conn.record.subscriptions.append(topic)
            await self._first_push(conn, topic)

    async def _refuse(self, conn: _Conn, op: str, why: str, req_id: str = "") -> None:
        refusal = {"success": False, "ret_msg": why, "conn_id": f"sim-{conn.record.conn_id}",
                   "req_id": req_id, "op": op}  # fmt: skip
        await self._send(conn, msgspec.json.encode(refusal))

    def _known(self, category: str, topic: str) -> bool:
        kind, _, symbol = topic.rpartition(".")
        if symbol not in self.specs or category not in category_of(symbol):
            return False
        if kind == "orderbook.full":
            return category == "spot"  # futures: release "not determined" (docs, 2026)
        if kind.startswith("orderbook."):
            return kind.split(".")[1] in {str(d) for d in DEPTHS}
        if kind == "allLiquidation":
            return category != "spot"
        if kind.startswith("kline."):
            return kind.split(".", 1)[1] in KLINES
        return kind in ("publicTrade", "tickers")

    async def _first_push(self, conn: _Conn, topic: str) -> None:
        """A book's snapshot, a derivative ticker's snapshot, on subscribe."""
        kind, _, symbol = topic.rpartition(".")
        now = _now_ms()
        if kind == "orderbook.full":
            key = (conn.category, FULL, symbol)
            if key not in self.streams:
                full = _Stream(conn.category, FULL, symbol, self.rng.randrange(10**6, 10**8))
                full.bids, full.asks = self._view(symbol, FULL)
                full.changed_ms = now
                self.streams[key] = full
                self.full_history[symbol] = [(full.u, dict(full.bids), dict(full.asks))]
            return  # delta only: no snapshot on subscribe
        if kind.startswith("orderbook."):
            depth = int(kind.split(".")[1])
            key = (conn.category, depth, symbol)
            stream = self.streams.get(key)
            if stream is None:
                stream = _Stream(conn.category, depth, symbol, self.rng.randrange(10**6, 10**8))
                stream.bids, stream.asks = self._view(symbol, depth)
                stream.changed_ms = now
                self.streams[key] = stream
            await self._send(conn, self._book_frame(stream, "snapshot", now))
        elif kind.startswith("kline."):
            interval = kind.split(".", 1)[1]
            self.market.symbols[symbol].kline(KLINES[interval])
            self.kline_topics.add((symbol, interval))
        elif kind == "tickers" and conn.category != "spot":
            fields = self.tickers[symbol] if symbol in self.tickers else self._ticker_fields(symbol)
            self.tickers[symbol] = fields
            frame = msgspec.json.encode({"topic": topic, "type": "snapshot", "ts": now,
                                         "cs": self.steps, "data": fields})  # fmt: skip
            await self._send(conn, frame)


_SPOT_FIELDS = frozenset(
    ("symbol", "lastPrice", "prevPrice24h", "highPrice24h", "lowPrice24h", "volume24h",
     "turnover24h")
)  # fmt: skip


def _changes(old: dict[int, int], new: dict[int, int]) -> list[tuple[int, int]]:
    """The levels that differ between two views: new sizes, 0 for the levels that left."""
    rows = [(p, q) for p, q in new.items() if old.get(p) != q]
    rows += [(p, 0) for p in old if p not in new]
    return rows


def _json(body: Any) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), content_type="application/json")
