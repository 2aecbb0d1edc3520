"""Kraken spot WebSocket v2 (``/v2``) and v1 books (``/``) over real sockets, for tests: the
shared synthetic market (:mod:`hundi.simulator.market`) spoken as Kraken's public channels,
with Kraken's faults.

Clients send ``{"method":"subscribe","params":{"channel":...,"symbol":[...]}}`` and get the
acknowledgement Kraken sends (``{"method":"subscribe","result":{...},"success":true,...}``),
then:

* ``instrument``: one snapshot of every pair's precisions (``price_precision``,
  ``qty_precision``), as Kraken lists them;
* ``book`` (depth 10/25/100/500/1000): a snapshot of the top ``depth`` levels, then, every
  ``book_interval_s``, the levels of that view that changed. As on Kraken a level pushed beyond
  the depth by an insert is not deleted on the wire (the client truncates), a level that enters
  the view as one leaves it is sent, and every message carries the CRC32 of the top 10 levels
  (asks then bids, ``.`` removed, leading zeros stripped, at the pair's precision). Numbers are
  JSON numbers without trailing zeros, as v2 sends them. ``unsubscribe`` ends the view;
* ``trade``: every fill with its sequential per-pair ``trade_id``, and on subscribe a snapshot
  of the last 50 trades;
* ``ticker`` (``event_trigger`` ``bbo`` or ``trades``): best bid/offer and 24 h statistics;
* ``ohlc`` (``interval`` minutes): the open candle on each trade;
* ``{"channel":"heartbeat"}`` every ``heartbeat_s``, a ``status`` message on connect.

WebSocket v1 is served on the bare host (``/``), books only: ``systemStatus`` on connect,
``{"event":"subscribe","pair":["XBT/USD"],"subscription":{"name":"book","depth":10}}``
answered by ``subscriptionStatus`` with a channel id, legacy pair names (``XBT``, ``XDG``),
levels as decimal strings (volumes with 8 decimals) with their time, the checksum ``c`` in the
last map of an update, and ``"r"`` on a level republished: one that re-enters the view from
beyond the depth, unchanged. ``{"event":"heartbeat"}`` every ``heartbeat_s``.

Faults (``--fault KIND:SECONDS``, each every so many seconds):

* ``checksum``: one level of the next book update of one connection is sent with a wrong
  quantity while the checksum is the true book's: the client's checksum fails and it must
  resync (re-subscribe); the book view stays true, so the fresh snapshot is right.
* ``disconnect``: every socket is aborted.
* ``skip_trade``: the next trade is withheld from the WebSocket (every connection) but kept in
  the REST history (and the subscribe snapshot): the client sees a trade-id jump and must fetch
  the trade back over REST.
* ``rate_limit``: the next REST ``Trades`` request is answered
  ``{"error":["EGeneral:Too many requests"]}`` (HTTP 200, as Kraken does).
* ``refuse_resubscribe``: the next book subscribe of a pair the connection subscribed before
  (a client's in-place resync) is refused (``EService:Busy``, naming the pair): the client must
  subscribe again itself.

``GET /0/public/Trades?pair=BTC/USD&since=NS&count=N`` serves the trade history
(:mod:`hundi.simulator.kraken.trades`), with the WebSocket's ids and times.
``GET /0/public/AssetPairs`` lists the pairs with their v1 ``wsname``. ``GET /sim/stats`` is
the ground truth: every trade id generated per pair, the faults injected
with their connection and pair, subscriptions per connection, and each pair's true book.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from aiohttp import WSMsgType, web

from hundi.simulator.kraken.trades import TradeHistory, trades_answer
from hundi.simulator.market import SymbolMarket, SyntheticMarket, fixed
from hundi.simulator.site import SimulatorSite

FAULTS: Final = ("checksum", "disconnect", "skip_trade", "rate_limit", "refuse_resubscribe")
BUSY: Final = "EService:Busy"  # the refusal of ``refuse_resubscribe``
DEPTHS: Final = (10, 25, 100, 500, 1000)
OHLC_MINUTES: Final = {1: "1m", 5: "5m", 15: "15m", 30: "30m", 60: "1h", 240: "4h", 1440: "1d"}
TRADE_SNAPSHOT: Final = 50
CHANNELS: Final = ("instrument", "book", "trade", "ticker", "ohlc")
V1_ASSETS: Final = {"BTC": "XBT", "DOGE": "XDG"}
V1_VOLUME_DECIMALS: Final = 8


def _iso(ns: int) -> str:
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction // 1000:06d}Z"


def _number(value: int, decimals: int) -> msgspec.Raw:
    """An exact JSON number without trailing zeros (v2 sends ``0.5657``, not ``0.56570``)."""
    text = fixed(value, decimals)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return msgspec.Raw(text.encode())


@dataclass(slots=True)
class KrakenSimConfig:
    host: str = "127.0.0.1"
    port: int = 0
    symbols: tuple[str, ...] = ("BTC/USD", "ETH/USD")
    seed: int = 1
    rate: float = 200.0  # market actions a second
    book_interval_s: float = 0.05
    heartbeat_s: float = 1.0
    faults: dict[str, float] = field(default_factory=dict)


class _View:
    """One connection's book subscription: the top ``depth`` levels as last sent."""

    __slots__ = ("asks", "bids", "depth")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}


class _Conn:
    __slots__ = (
        "api", "books", "channel_ids", "closed_ns", "conn_id", "ohlc", "opened_ns", "seen",
        "ticker", "trades", "transport", "ws",
    )  # fmt: skip

    def __init__(
        self, conn_id: int, ws: web.WebSocketResponse, transport: Any, api: str = "v2"
    ) -> None:
        self.conn_id = conn_id
        self.api = api
        self.channel_ids: dict[str, int] = {}  # v1: pair → channelID
        self.ws = ws
        self.transport = transport
        self.seen: list[str] = []  # book subscriptions, in order (re-subscribes repeat a pair)
        self.books: dict[str, _View] = {}
        self.trades: set[str] = set()
        self.ticker: dict[str, str] = {}  # pair → event trigger
        self.ohlc: dict[str, int] = {}  # pair → interval minutes
        self.opened_ns = time.time_ns()
        self.closed_ns = 0


class KrakenSimulator(SimulatorSite[KrakenSimConfig]):
    """``async with KrakenSimulator(cfg) as sim: sim.ws_url + "/v2"``."""

    def __init__(self, config: KrakenSimConfig) -> None:
        for kind in config.faults:
            if kind not in FAULTS:
                raise ValueError(f"unknown fault {kind!r} (known: {', '.join(FAULTS)})")
        self.config = config
        self.market = SyntheticMarket(config.symbols, config.seed, _now_ms(), TRADE_SNAPSHOT)
        self.trades: dict[str, deque[dict[str, Any]]] = {
            s: deque(maxlen=TRADE_SNAPSHOT) for s in config.symbols
        }
        self.trade_ids: dict[str, list[int]] = {s: [] for s in config.symbols}
        self.history = {s: TradeHistory() for s in config.symbols}  # REST ``Trades``
        self.faults_on = True  # tests turn faults off to let the market settle
        self._skip_next = False
        self._limit_next = False
        self.rest_trades_requests = 0
        self._conns: dict[int, _Conn] = {}
        self._closed: deque[_Conn] = deque(maxlen=1000)
        self._next_conn = 1
        self.steps = 0
        self.paused = False
        self.fault_log: list[dict[str, Any]] = []
        self._corrupt_next = False
        self._refuse_next = False
        self._previous: dict[str, tuple[set[int], set[int]]] = {}
        self.republished = 0  # v1 levels sent with the "r" flag
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v2", self._ws)
        app.router.add_get("/", self._ws_v1)
        app.router.add_get("/0/public/AssetPairs", self._asset_pairs)
        app.router.add_get("/0/public/Trades", self._rest_trades)
        app.router.add_get("/sim/stats", self._stats)
        await self._listen(app)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run()),
            loop.create_task(self._books()),
            loop.create_task(self._heartbeats()),
            *(
                loop.create_task(self._fault(kind, every))
                for kind, every in self.config.faults.items()
            ),
        ]

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

    def true_book(self, pair: str, depth: int) -> tuple[dict[int, int], dict[int, int]]:
        """The top ``depth`` levels of a pair's book now: what a synced client must hold."""
        m = self.market.symbols[pair]
        bids = {p: m.bids[p] for p in heapq.nlargest(depth, m.bids)}
        asks = {p: m.asks[p] for p in heapq.nsmallest(depth, m.asks)}
        return bids, asks

    def stats(self) -> dict[str, Any]:
        conns = list(self._closed) + list(self._conns.values())
        return {
            "exchange": "kraken",
            "steps": self.steps,
            "faults": list(self.fault_log),
            "republished": self.republished,
            "rest_trades_requests": self.rest_trades_requests,
            "trade_ids": {s: list(ids) for s, ids in self.trade_ids.items()},
            "connections": [
                {
                    "id": c.conn_id,
                    "opened_ns": c.opened_ns,
                    "closed_ns": c.closed_ns,
                    "book_subscriptions": c.seen,
                }
                for c in conns
            ],
        }

    async def _stats(self, request: web.Request) -> web.Response:
        return web.Response(body=msgspec.json.encode(self.stats()), content_type="application/json")

    # -- the market ------------------------------------------------------------------------------

    async def _run(self) -> None:
        """Market actions at ``rate``, in small batches so a loaded loop keeps the pace."""
        period = 0.01
        owed = 0.0
        while True:
            await asyncio.sleep(period)
            if self.paused:
                continue
            owed += self.config.rate * period
            while owed >= 1:
                owed -= 1
                market = self.market.step()
                self.steps += 1
                await self._publish(market)

    async def _publish(self, market: SymbolMarket) -> None:
        pair = market.spec.symbol
        events, market.events = market.events, []
        now_ns = time.time_ns()
        spec = market.spec
        for event in events:
            if event[0] == "A":
                _, _, price, _, _, _, buyer_is_maker, fills = event
                side = "sell" if buyer_is_maker else "buy"
                rows = []
                history = self.history[pair]
                for trade_id, qty in fills:
                    history.add(trade_id, now_ns, price, qty, spec.price_decimals,
                                spec.qty_decimals, not buyer_is_maker)  # fmt: skip
                    row = {
                        "symbol": pair, "side": side,
                        "price": _number(price, spec.price_decimals),
                        "qty": _number(qty, spec.qty_decimals), "ord_type": "limit",
                        "trade_id": trade_id, "timestamp": _iso(now_ns),
                    }  # fmt: skip
                    self.trades[pair].append(row)
                    self.trade_ids[pair].append(trade_id)
                    if self._skip_next:  # withheld from the WebSocket, kept for REST
                        self._skip_next = False
                        self.fault_log.append({"kind": "skip_trade", "conn": -1, "symbol": pair,
                                               "trade_id": trade_id, "ns": now_ns})  # fmt: skip
                        continue
                    rows.append(row)
                if rows:
                    await self._fan(pair, "trade", rows)
                await self._ticker(market, "trades", now_ns)
                await self._ohlc(market, now_ns)
            else:
                await self._ticker(market, "bbo", now_ns)

    async def _fan(self, pair: str, channel: str, rows: list[dict[str, Any]]) -> None:
        frame = None
        for conn in list(self._conns.values()):
            if pair in conn.trades:
                frame = frame or msgspec.json.encode(
                    {"channel": channel, "type": "update", "data": rows}
                )
                await self._send_bytes(conn, frame)

    def _ticker_row(self, market: SymbolMarket, now_ns: int) -> dict[str, Any]:
        spec, s = market.spec, market.stats
        pd, qd = spec.price_decimals, spec.qty_decimals
        bid, bid_qty, ask, ask_qty = market.top
        vwap = s.quote // s.volume if s.volume else 0
        change = s.last - s.open
        return {
            "symbol": spec.symbol, "bid": _number(bid, pd), "bid_qty": _number(bid_qty, qd),
            "ask": _number(ask, pd), "ask_qty": _number(ask_qty, qd),
            "last": _number(s.last, pd), "volume": _number(s.volume, qd),
            "vwap": _number(vwap, pd), "low": _number(s.low, pd), "high": _number(s.high, pd),
            "change": _number(change, pd),
            "change_pct": round(100 * change / s.open, 2) if s.open else 0.0,
            "timestamp": _iso(now_ns),
        }  # fmt: skip

    async def _ticker(self, market: SymbolMarket, trigger: str, now_ns: int) -> None:
        pair = market.spec.symbol
        frame = None
        for conn in list(self._conns.values()):
            if conn.ticker.get(pair) == trigger:
                if frame is None:
                    row = self._ticker_row(market, now_ns)
                    frame = msgspec.json.encode(
                        {"channel": "ticker", "type": "update", "data": [row]}
                    )
                await self._send_bytes(conn, frame)

    def _ohlc_row(self, market: SymbolMarket, minutes: int, now_ns: int) -> dict[str, Any]:
        spec = market.spec
        pd, qd = spec.price_decimals, spec.qty_decimals
        k = market.kline(OHLC_MINUTES[minutes])
        market.roll_klines(now_ns // 1_000_000)
        vwap = k.quote // k.volume if k.volume else 0
        return {
            "symbol": spec.symbol, "open": _number(k.open, pd), "high": _number(k.high, pd),
            "low": _number(k.low, pd), "close": _number(k.close, pd), "trades": k.trades,
            "volume": _number(k.volume, qd), "vwap": _number(vwap, pd),
            "interval_begin": _iso(k.open_ms * 1_000_000), "interval": minutes,
            "timestamp": _iso(now_ns),
        }  # fmt: skip

    async def _ohlc(self, market: SymbolMarket, now_ns: int) -> None:
        pair = market.spec.symbol
        for conn in list(self._conns.values()):
            minutes = conn.ohlc.get(pair)
            if minutes is not None:
                row = self._ohlc_row(market, minutes, now_ns)
                await self._send(conn, {"channel": "ohlc", "type": "update", "data": [row]})

    # -- books -----------------------------------------------------------------------------------

    def _checksum(
        self, pair: str, bids: dict[int, int], asks: dict[int, int], api: str = "v2"
    ) -> int:
        """CRC32 of the top 10 levels, from the strings the API prints (v1 pads volumes to 8
        decimals, v2 formats at the pair's precision)."""
        spec = self.market.symbols[pair].spec
        pd, qd = spec.price_decimals, spec.qty_decimals
        pad = V1_VOLUME_DECIMALS if api == "v1" else 0

        def text(price: int, qty: int) -> str:
            return (fixed(price, pd).replace(".", "").lstrip("0")
                    + fixed(qty, qd, pad).replace(".", "").lstrip("0"))  # fmt: skip

        top_asks = "".join(text(p, asks[p]) for p in sorted(asks)[:10])
        top_bids = "".join(text(p, bids[p]) for p in sorted(bids, reverse=True)[:10])
        return zlib.crc32((top_asks + top_bids).encode())

    def _levels(self, pair: str, levels: dict[int, int], reverse: bool) -> list[dict[str, Any]]:
        spec = self.market.symbols[pair].spec
        return [
            {"price": _number(p, spec.price_decimals), "qty": _number(levels[p], spec.qty_decimals)}
            for p in sorted(levels, reverse=reverse)
        ]

    async def _book_snapshot(self, conn: _Conn, pair: str, view: _View) -> None:
        view.bids, view.asks = self.true_book(pair, view.depth)
        if conn.api == "v1":
            ts = _epoch(time.time_ns())
            book = {"as": self._v1_levels(pair, view.asks, False, ts, set()),
                    "bs": self._v1_levels(pair, view.bids, True, ts, set())}  # fmt: skip
            frame = [conn.channel_ids[pair], book, f"book-{view.depth}", _v1_pair(pair)]
            await self._send_bytes(conn, msgspec.json.encode(frame))
            return
        entry = {
            "symbol": pair,
            "bids": self._levels(pair, view.bids, True),
            "asks": self._levels(pair, view.asks, False),
            "checksum": self._checksum(pair, view.bids, view.asks),
        }
        await self._send(conn, {"channel": "book", "type": "snapshot", "data": [entry]})

    async def _books(self) -> None:
        """Every ``book_interval_s``: each view's changed levels, with the checksum."""
        while True:
            await asyncio.sleep(self.config.book_interval_s)
            now_ns = time.time_ns()
            for conn in list(self._conns.values()):
                for pair, view in list(conn.books.items()):
                    await self._book_update(conn, pair, view, now_ns)
            for pair, market in self.market.symbols.items():  # what "was in the book" next time
                self._previous[pair] = (set(market.bids), set(market.asks))

    async def _book_update(self, conn: _Conn, pair: str, view: _View, now_ns: int) -> None:
        bids, asks = self.true_book(pair, view.depth)
        full = self.market.symbols[pair]
        changed_bids = _changes(view.bids, bids, full.bids)
        changed_asks = _changes(view.asks, asks, full.asks)
        if not changed_bids and not changed_asks:
            return
        # v1 flags a level that re-enters the view unchanged from beyond the depth ("r")
        old_bids, old_asks = self._previous.get(pair, (set(), set()))
        republished = {p for p in changed_bids if p not in view.bids and p in old_bids} | {
            -p for p in changed_asks if p not in view.asks and p in old_asks
        }
        view.bids, view.asks = bids, asks
        checksum = self._checksum(pair, bids, asks, conn.api)
        if self._corrupt_next:  # a wrong quantity on the wire, the true book's checksum
            self._corrupt_next = False
            side = changed_bids or changed_asks
            price = next(iter(side))
            side[price] = side[price] + 1 if side[price] else 1
            self.fault_log.append({"kind": "checksum", "conn": conn.conn_id, "symbol": pair,
                                   "ns": time.time_ns()})  # fmt: skip
        if conn.api == "v1":
            await self._v1_update(conn, pair, view, changed_bids, changed_asks, republished,
                                  checksum, now_ns)  # fmt: skip
            return
        entry = {
            "symbol": pair,
            "bids": self._levels(pair, changed_bids, True),
            "asks": self._levels(pair, changed_asks, False),
            "checksum": checksum,
            "timestamp": _iso(now_ns),
        }
        await self._send(conn, {"channel": "book", "type": "update", "data": [entry]})

    def _v1_levels(
        self, pair: str, levels: dict[int, int], is_bid: bool, ts: str, republished: set[int]
    ) -> list[list[str]]:
        spec = self.market.symbols[pair].spec
        rows = []
        for price in sorted(levels, reverse=is_bid):
            row = [fixed(price, spec.price_decimals),
                   fixed(levels[price], spec.qty_decimals, V1_VOLUME_DECIMALS), ts]  # fmt: skip
            if (price if is_bid else -price) in republished:
                row.append("r")
                self.republished += 1
            rows.append(row)
        return rows

    async def _v1_update(
        self,
        conn: _Conn,
        pair: str,
        view: _View,
        bids: dict[int, int],
        asks: dict[int, int],
        republished: set[int],
        checksum: int,
        now_ns: int,
    ) -> None:
        ts = _epoch(now_ns)
        maps: list[dict[str, Any]] = []
        if asks:
            maps.append({"a": self._v1_levels(pair, asks, False, ts, republished)})
        if bids:
            maps.append({"b": self._v1_levels(pair, bids, True, ts, republished)})
        maps[-1]["c"] = str(checksum)
        frame = [conn.channel_ids[pair], *maps, f"book-{view.depth}", _v1_pair(pair)]
        await self._send_bytes(conn, msgspec.json.encode(frame))

    # -- faults and heartbeats -------------------------------------------------------------------

    def _refused(self, conn: _Conn, pair: str) -> bool:
        """Whether this book subscribe is refused: the ``refuse_resubscribe`` fault is armed
        and ``pair`` was subscribed on ``conn`` before (a re-subscribe)."""
        if not (self._refuse_next and self.faults_on and pair in conn.seen):
            return False
        self._refuse_next = False
        self.fault_log.append({"kind": "refuse_resubscribe", "conn": conn.conn_id,
                               "symbol": pair, "ns": time.time_ns()})  # fmt: skip
        return True

    async def _fault(self, kind: str, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            if not self.faults_on:
                continue
            if kind == "checksum":
                self._corrupt_next = True
            elif kind == "skip_trade":
                self._skip_next = True
            elif kind == "rate_limit":
                self._limit_next = True
            elif kind == "refuse_resubscribe":
                self._refuse_next = True
            else:
                self.fault_log.append(
                    {"kind": kind, "conn": -1, "symbol": "", "ns": time.time_ns()}
                )
                for conn in list(self._conns.values()):
                    if conn.transport is not None:
                        conn.transport.abort()

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            for conn in list(self._conns.values()):
                if conn.api == "v1":
                    await self._send(conn, {"event": "heartbeat"})
                elif conn.books or conn.trades or conn.ticker or conn.ohlc:
                    await self._send(conn, {"channel": "heartbeat"})

    # -- connections -----------------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Conn(self._next_conn, ws, request.transport)
        self._next_conn += 1
        self._conns[conn.conn_id] = conn
        status = {"version": "2.0.0", "system": "online", "api_version": "v2",
                  "connection_id": conn.conn_id}  # fmt: skip
        await self._send(conn, {"channel": "status", "type": "update", "data": [status]})
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                await self._request(conn, msg.data)
        finally:
            conn.closed_ns = time.time_ns()
            self._conns.pop(conn.conn_id, None)
            self._closed.append(conn)
        return ws

    async def _asset_pairs(self, request: web.Request) -> web.Response:
        """REST ``AssetPairs``: the listing a v1 client checks its pairs against."""
        result = {}
        for pair, market in self.market.symbols.items():
            v1 = _v1_pair(pair)
            base, _, quote = v1.partition("/")
            result[v1.replace("/", "")] = {
                "altname": v1.replace("/", ""), "wsname": v1, "base": base, "quote": quote,
                "pair_decimals": market.spec.price_decimals,
                "lot_decimals": V1_VOLUME_DECIMALS, "status": "online",
            }  # fmt: skip
        body = msgspec.json.encode({"error": [], "result": result})
        return web.Response(body=body, content_type="application/json")

    async def _rest_trades(self, request: web.Request) -> web.Response:
        """REST ``Trades``: the history after ``since`` (see :mod:`.trades`)."""
        self.rest_trades_requests += 1
        if self._limit_next:
            self._limit_next = False
            self.fault_log.append({"kind": "rate_limit", "conn": -1, "symbol": "",
                                   "ns": time.time_ns()})  # fmt: skip
            answer: dict[str, Any] = {"error": ["EGeneral:Too many requests"]}
        else:
            answer = trades_answer(self.history, dict(request.query))
        return web.Response(body=msgspec.json.encode(answer), content_type="application/json")

    async def _ws_v1(self, request: web.Request) -> web.WebSocketResponse:
        """WebSocket v1 (the bare host): books only, legacy pair names, channel ids."""
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Conn(self._next_conn, ws, request.transport, api="v1")
        self._next_conn += 1
        self._conns[conn.conn_id] = conn
        await self._send(conn, {"connectionID": conn.conn_id, "event": "systemStatus",
                                "status": "online", "version": "1.9.0"})  # fmt: skip
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._request_v1(conn, msg.data)
        finally:
            conn.closed_ns = time.time_ns()
            self._conns.pop(conn.conn_id, None)
            self._closed.append(conn)
        return ws

    async def _request_v1(self, conn: _Conn, text: str) -> None:
        try:
            request = msgspec.json.decode(text)
            event = request["event"]
        except (msgspec.DecodeError, KeyError, TypeError):
            await self._send(conn, {"event": "error", "errorMessage": "Malformed request"})
            return
        if event == "ping":
            await self._send(conn, {"event": "pong", "reqid": request.get("reqid")})
            return
        subscription = request.get("subscription") or {}
        depth = subscription.get("depth", 10)
        by_v1 = {_v1_pair(p): p for p in self.market.symbols}
        for name in request.get("pair") or []:
            status: dict[str, Any] = {
                "channelName": f"book-{depth}", "event": "subscriptionStatus", "pair": name,
                "subscription": {"depth": depth, "name": "book"},
            }  # fmt: skip
            pair = by_v1.get(name)
            problem = (
                "Event(s) not found" if event not in ("subscribe", "unsubscribe")
                else "Subscription name invalid" if subscription.get("name") != "book"
                else "Subscription depth not supported" if depth not in DEPTHS
                else f"Currency pair not supported {name}" if pair is None
                else "Already subscribed" if event == "subscribe" and pair in conn.books
                else BUSY if event == "subscribe" and self._refused(conn, pair)
                else ""
            )  # fmt: skip
            if problem or pair is None:
                await self._send(conn, {**status, "status": "error", "errorMessage": problem})
                continue
            if event == "subscribe":
                channel_id = conn.channel_ids.setdefault(pair, 100 + 16 * len(conn.channel_ids))
                await self._send(conn, {**status, "channelID": channel_id, "status": "subscribed"})
                view = conn.books[pair] = _View(depth)
                conn.seen.append(pair)
                await self._book_snapshot(conn, pair, view)
            else:
                conn.books.pop(pair, None)
                channel_id = conn.channel_ids.get(pair, -1)
                await self._send(
                    conn, {**status, "channelID": channel_id, "status": "unsubscribed"}
                )

    async def _request(self, conn: _Conn, text: str) -> None:
        try:
            request = msgspec.json.decode(text)
            method = request["method"]
        except (msgspec.DecodeError, KeyError, TypeError):
            await self._send(conn, {"error": "Malformed request", "success": False})
            return
        if method == "ping":
            await self._send(conn, {"method": "pong", "time_in": _iso(time.time_ns()),
                                    "time_out": _iso(time.time_ns())})  # fmt: skip
            return
        params = request.get("params") or {}
        channel = params.get("channel")
        if method not in ("subscribe", "unsubscribe") or channel not in CHANNELS:
            await self._send(conn, {"error": f"Unsupported request {method}/{channel}",
                                    "method": method, "success": False})  # fmt: skip
            return
        if channel == "instrument":
            await self._ack(conn, method, {"channel": channel})
            await self._instrument(conn)
            return
        for pair in params.get("symbol") or []:
            if pair not in self.market.symbols:
                error = f"Currency pair not supported {pair}"
                await self._send(conn, {"error": error, "method": method, "success": False,
                                        "symbol": pair})  # fmt: skip
                continue
            await self._subscription(conn, method, channel, pair, params)

    async def _subscription(
        self, conn: _Conn, method: str, channel: str, pair: str, params: dict[str, Any]
    ) -> None:
        subscribe = method == "subscribe"
        if channel == "book":
            depth = params.get("depth", 10)
            if depth not in DEPTHS:
                await self._send(conn, {"error": f"Invalid depth {depth}", "method": method,
                                        "success": False, "symbol": pair})  # fmt: skip
                return
            if subscribe and pair in conn.books:
                await self._send(conn, {"error": "Already subscribed", "method": method,
                                        "success": False, "symbol": pair})  # fmt: skip
                return
            if subscribe and self._refused(conn, pair):
                await self._send(conn, {"error": BUSY, "method": method, "success": False,
                                        "symbol": pair})  # fmt: skip
                return
            await self._ack(conn, method, {"channel": "book", "symbol": pair, "depth": depth})
            if subscribe:
                view = conn.books[pair] = _View(depth)
                conn.seen.append(pair)
                await self._book_snapshot(conn, pair, view)
            else:
                conn.books.pop(pair, None)
        elif channel == "trade":
            await self._ack(conn, method, {"channel": "trade", "symbol": pair})
            if subscribe:
                conn.trades.add(pair)
                if params.get("snapshot", True) and self.trades[pair]:
                    rows = list(self.trades[pair])
                    await self._send(conn, {"channel": "trade", "type": "snapshot", "data": rows})
            else:
                conn.trades.discard(pair)
        elif channel == "ticker":
            trigger = params.get("event_trigger", "trades")
            await self._ack(conn, method, {"channel": "ticker", "symbol": pair,
                                           "event_trigger": trigger})  # fmt: skip
            if subscribe:
                conn.ticker[pair] = trigger
                row = self._ticker_row(self.market.symbols[pair], time.time_ns())
                await self._send(conn, {"channel": "ticker", "type": "snapshot", "data": [row]})
            else:
                conn.ticker.pop(pair, None)
        else:
            minutes = params.get("interval", 1)
            if minutes not in OHLC_MINUTES:
                await self._send(conn, {"error": f"Invalid interval {minutes}", "method": method,
                                        "success": False, "symbol": pair})  # fmt: skip
                return
            await self._ack(conn, method, {"channel": "ohlc", "symbol": pair, "interval": minutes})
            if subscribe:
                conn.ohlc[pair] = minutes
                row = self._ohlc_row(self.market.symbols[pair], minutes, time.time_ns())
                await self._send(conn, {"channel": "ohlc", "type": "snapshot", "data": [row]})
            else:
                conn.ohlc.pop(pair, None)

    async def _ack(self, conn: _Conn, method: str, result: dict[str, Any]) -> None:
        now = _iso(time.time_ns())
        await self._send(conn, {"method": method, "result": result, "success": True,
                                "time_in": now, "time_out": now})  # fmt: skip

    async def _instrument(self, conn: _Conn) -> None:
        pairs = []
        for pair, market in self.market.symbols.items():
            base, _, quote = pair.partition("/")
            spec = market.spec
            pairs.append({
                "symbol": pair, "base": base, "quote": quote, "status": "online",
                "qty_precision": spec.qty_decimals, "qty_increment": 10.0**-spec.qty_decimals,
                "price_precision": spec.price_decimals,
                "price_increment": 10.0**-spec.price_decimals, "marginable": False,
                "has_index": True, "cost_min": 0.5, "qty_min": 10.0**-spec.qty_decimals,
            })  # fmt: skip
        await self._send(conn, {"channel": "instrument", "type": "snapshot",
                                "data": {"assets": [], "pairs": pairs}})  # fmt: skip

    async def _send(self, conn: _Conn, message: dict[str, Any]) -> bool:
        return await self._send_bytes(conn, msgspec.json.encode(message))

    async def _send_bytes(self, conn: _Conn, frame: bytes) -> bool:
        if conn.ws.closed:
            return False
        try:
            await conn.ws.send_str(frame.decode())
        except (ConnectionResetError, RuntimeError):
            return False
        return True


def _epoch(ns: int) -> str:
    """v1 times: epoch seconds with microseconds, as a string."""
    return f"{ns // 1_000_000_000}.{ns // 1000 % 1_000_000:06d}"


def _v1_pair(pair: str) -> str:
    """``BTC/USD`` → ``XBT/USD``: v1 keeps Kraken's legacy asset codes."""
    base, _, quote = pair.partition("/")
    return f"{V1_ASSETS.get(base, base)}/{V1_ASSETS.get(quote, quote)}"


def _changes(old: dict[int, int], new: dict[int, int], full: dict[int, int]) -> dict[int, int]:
    """What Kraken sends to move a client's view from ``old`` to ``new``: changed or entering
    levels, and deletes of levels gone from the book; a level merely pushed beyond the depth is
    not sent (the client truncates it)."""
    changes = {p: q for p, q in new.items() if old.get(p) != q}
    for price in old.keys() - new.keys():
        if price not in full:
            changes[price] = 0
    return changes


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
