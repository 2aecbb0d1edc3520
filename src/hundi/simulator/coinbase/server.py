"""Coinbase Exchange public market data over real sockets, for tests: ws-feed + REST.

The WebSocket (any path; the real feed is ``wss://ws-feed.exchange.coinbase.com``) takes
``{"type":"subscribe","product_ids":[...],"channels":[...]}`` (channel names, or
``{"name":...,"product_ids":[...]}`` objects) and answers ``subscriptions``. Channels:

* ``matches``: a ``last_match`` per product on subscribe, then a ``match`` per fill
  (``side`` = the maker's side, as Coinbase documents);
* ``ticker``: after every taker action, last trade, 24 h statistics and the BBO with sizes;
* ``level2_batch`` (and ``level2``, served alike): a ``snapshot`` per product on subscribe,
  then ``l2update`` changes every ``batch_ms``, batched per connection from its subscribe on
  (folded every ``cut_ms``): two sockets carry the same changes in different frames, with
  different times, as the real feed's per-connection batches do;
* ``heartbeat``: each ``heartbeat_s`` per product, with ``last_trade_id``;
* ``full``: every order's received/open/match/change/done, with the per-product ``sequence``
  (:class:`~hundi.simulator.coinbase.full.CoinbaseFullFeed`; signed subscriptions when
  ``full_credentials`` is set), and ``GET /products/{id}/book?level=3`` its snapshot.

An unknown product or channel answers ``{"type":"error","message":"Failed to subscribe",...}``
as Coinbase does. REST: ``GET /products`` (the configured products ``online`` plus one
``delisted``), ``GET /products/{id}/trades?after=&before=&limit=`` (cursor pagination, newest
first, ``CB-BEFORE``/``CB-AFTER`` headers). Channels and routes are listed in one place each,
:meth:`CoinbaseSimulator.channel_handlers` and :meth:`CoinbaseSimulator.rest_routes`.

Faults (``faults``: kind → period in seconds): ``skip_match`` withholds one match of one
product from every connection (the trade stays in the REST history), ``disconnect`` aborts
every socket, ``cross_book`` sends one product an ``l2update`` that crosses its book (a bid at
the best ask; the real book is unchanged). ``GET /sim/stats`` is the ground truth: match ids
sent per connection and product, withheld ids, the fault log, and the book as published;
``POST /sim/pause`` stops the market (heartbeats go on) so a test can compare final books.
``skip_sequence`` loses one ``full`` message of one product (its sequence is used) and
``stale_snapshot`` answers that product's next level-3 snapshot with the book from the start.
A socket that has not subscribed ``subscribe_timeout_s`` after opening is closed, as Coinbase
closes one after 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from hundi.simulator.coinbase.full import CoinbaseFullFeed
from hundi.simulator.ground_truth import ConnectionRecord, FaultLog
from hundi.simulator.market import SymbolMarket, SyntheticMarket, fixed
from hundi.simulator.site import SimulatorSite

FAULTS = ("skip_match", "disconnect", "cross_book", "skip_sequence", "stale_snapshot")
CHANNELS = ("matches", "ticker", "level2_batch", "level2", "heartbeat", "full")
DELISTED = "DELISTED-USD"
RANGE_CAP = 100_000
PAGE = 1000

# A REST trade as kept for ``/products/{id}/trades``: (trade_id, price text, size text,
# maker side, time text)
RestTrade = tuple[int, str, str, str, str]


@dataclass(slots=True)
class CoinbaseSimConfig:
    host: str = "127.0.0.1"
    port: int = 0
    symbols: tuple[str, ...] = ("BTC-USD", "ETH-USD")
    seed: int = 1
    rate: float = 200.0  # market actions per second, all products together
    batch_ms: int = 50  # level2_batch interval, per connection
    cut_ms: int = 10  # book changes are folded this often into every connection's batch
    subscribe_timeout_s: float = 5.0  # a socket without a subscribe is closed after this
    heartbeat_s: float = 1.0
    trade_history: int = 100_000  # trades per product the REST history keeps
    faults: dict[str, float] = field(default_factory=dict)
    # key, base64 secret, passphrase: ``full`` subscriptions must be signed with them (None:
    # unsigned ones are accepted, the simulator's default)
    full_credentials: tuple[str, str, str] | None = None


def iso(ns: int) -> str:
    """Coinbase's time format, microseconds: ``2026-12-03T06:00:00.123456Z``."""
    moment = datetime.datetime.fromtimestamp(ns // 1000 / 1e6, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Conn:
    __slots__ = ("batch", "batch_due", "channels", "record", "subscribed", "transport", "ws")

    def __init__(self, ws: web.WebSocketResponse, transport: Any, record: ConnectionRecord) -> None:
        self.ws = ws
        self.transport = transport
        self.record = record
        self.channels: dict[str, set[str]] = {}  # channel -> products
        self.subscribed = False
        # level2 changes not yet sent: product -> (side, price text) -> size text, and when
        # this connection's next batch goes out (monotonic; its own phase)
        self.batch: dict[str, dict[tuple[str, str], str]] = {}
        self.batch_due = 0.0

    def wants(self, channel: str, product: str) -> bool:
        products = self.channels.get(channel)
        return products is not None and product in products


class CoinbaseSimulator(SimulatorSite[CoinbaseSimConfig]):
    """``async with CoinbaseSimulator(cfg) as sim: sim.ws_url, sim.rest_url``."""

    def __init__(self, config: CoinbaseSimConfig) -> None:
        for kind in config.faults:
            if kind not in FAULTS:
                raise ValueError(f"unknown coinbase fault {kind!r} (known: {', '.join(FAULTS)})")
        self.config = config
        now_ms = time.time_ns() // 1_000_000
        self.market = SyntheticMarket(config.symbols, config.seed, now_ms, trade_history=1)
        self.market.add_depth_speed(config.cut_ms)
        # the order-level ``full`` feed: the orders behind the same market's levels
        self.full = CoinbaseFullFeed(
            {s: self.market.symbols[s] for s in config.symbols},
            config.seed,
            credentials=config.full_credentials,
        )
        self.history: dict[str, deque[RestTrade]] = {
            s: deque(maxlen=config.trade_history) for s in config.symbols
        }
        self.sequence = dict.fromkeys(config.symbols, 0)
        self.last_trade_id = {s: -1 for s in config.symbols}
        self.withheld: dict[str, list[int]] = {s: [] for s in config.symbols}
        self.faults = FaultLog()
        self.fault_counts = dict.fromkeys(FAULTS, 0)
        self._fault_next: dict[str, float] = {}
        self._skip_next: set[str] = set()  # products whose next match is withheld
        self._conns: dict[int, _Conn] = {}
        self._closed: deque[ConnectionRecord] = deque(maxlen=1000)
        self._next_conn = 1
        self.paused = False
        self.steps = 0
        self.matches_sent = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- extension points ------------------------------------------------------------------
    def channel_handlers(self) -> dict[str, Callable[[_Conn, list[str]], Awaitable[None]]]:
        """What a subscription to each channel sends at once (snapshots, last match); the
        order-level ``full`` channel adds itself here."""
        return {
            "matches": self._subscribed_matches,
            "ticker": self._nothing,
            "level2_batch": self._subscribed_level2,
            "level2": self._subscribed_level2,
            "heartbeat": self._nothing,
            "full": self._nothing,  # messages from the next market action on, no snapshot
        }

    def rest_routes(self) -> list[web.RouteDef]:
        """The REST API; ``/products/{id}/book`` (level 3) adds itself here."""
        return [
            web.get("/products", self._products),
            web.get("/products/{product}/trades", self._trades),
            web.get("/products/{product}/book", self._book),
            web.get("/sim/stats", self._stats),
            web.post("/sim/pause", self._pause),
        ]

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.add_routes([*self.rest_routes(), web.get("/{tail:.*}", self._ws)])
        await self._listen(app)
        now = time.monotonic()
        self._fault_next = {k: now + every for k, every in self.config.faults.items()}
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run()),
            loop.create_task(self._batches()),
            loop.create_task(self._heartbeats()),
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

    def pause(self) -> None:
        """Stop the market and the faults; heartbeats go on."""
        self.paused = True

    # -- ground truth ----------------------------------------------------------------------
    def book(self, product: str) -> tuple[dict[float, float], dict[float, float]]:
        """The book as published on level2 (what a synced client holds), in floats."""
        spec = self.market.symbols[product].spec
        _, bids, asks = self.market.published[product]
        pd, qd = 10**spec.price_decimals, 10**spec.qty_decimals
        return (
            {p / pd: q / qd for p, q in bids.items() if q},
            {p / pd: q / qd for p, q in asks.items() if q},
        )

    def stats(self) -> dict[str, Any]:
        records = [*self._closed, *(c.record for c in self._conns.values())]
        return {
            "exchange": "coinbase",
            "steps": self.steps,
            "paused": self.paused,
            "matches_sent": self.matches_sent,
            "last_trade_id": dict(self.last_trade_id),
            "withheld": {k: list(v) for k, v in self.withheld.items()},
            "fault_counts": dict(self.fault_counts),
            "faults": self.faults.to_json(),
            "connections": [r.to_json() for r in records],
            "books": {
                s: {"bids": sorted(b.items(), reverse=True), "asks": sorted(a.items())}
                for s in self.config.symbols
                for b, a in [self.book(s)]
            },
        }

    async def _stats(self, request: web.Request) -> web.Response:
        return web.Response(body=msgspec.json.encode(self.stats()), content_type="application/json")

    async def _pause(self, request: web.Request) -> web.Response:
        self.pause()
        return await self._stats(request)

    # -- the market --------------------------------------------------------------------------
    async def _run(self) -> None:
        tick = 0.01
        owed = 0.0
        while True:
            await asyncio.sleep(tick)
            if self.paused:
                continue
            await self._faults()
            owed += self.config.rate * tick
            while owed >= 1.0:
                owed -= 1.0
                await self._step()

    async def _step(self) -> None:
        self.steps += 1
        market = self.market.step()
        product = market.spec.symbol
        await self._full(self.full.on_step(market, time.time_ns()))
        events = market.events
        if not events:
            return
        taken = [e for e in events if e[0] == "A"]
        events.clear()
        if not taken:
            return
        now = time.time_ns()
        stamp = iso(now)
        spec = market.spec
        for _, _, price, _, _, _, buyer_is_maker, fills in taken:
            maker_side = "buy" if buyer_is_maker else "sell"
            price_text = fixed(price, spec.price_decimals)
            for trade_id, qty in fills:
                size_text = fixed(qty, spec.qty_decimals)
                self.history[product].append((trade_id, price_text, size_text, maker_side, stamp))
                self.last_trade_id[product] = trade_id
                if product in self._skip_next:
                    self._skip_next.discard(product)
                    self.withheld[product].append(trade_id)
                    self.faults.record("skip_match", symbol=product, stream="matches",
                                       first_id=trade_id, last_id=trade_id)  # fmt: skip
                    continue
                await self._match(product, "match", trade_id, price_text, size_text,
                                  maker_side, stamp)  # fmt: skip
        await self._ticker(market, taken[-1], stamp)

    def _seq(self, product: str) -> int:
        self.sequence[product] += 1
        return self.sequence[product]

    async def _match(
        self,
        product: str,
        kind: str,
        trade_id: int,
        price: str,
        size: str,
        maker_side: str,
        stamp: str,
        only: _Conn | None = None,
    ) -> None:
        message = {
            "type": kind, "trade_id": trade_id,
            "maker_order_id": f"00000000-0000-4000-8000-{trade_id * 2:012d}",
            "taker_order_id": f"00000000-0000-4000-8000-{trade_id * 2 + 1:012d}",
            "side": maker_side, "size": size, "price": price, "product_id": product,
            "sequence": self._seq(product), "time": stamp,
        }  # fmt: skip
        data = msgspec.json.encode(message)
        for conn in [only] if only is not None else list(self._conns.values()):
            if conn.wants("matches", product) and await self._send(conn, data):
                conn.record.sent(f"{product}:matches", trade_id, trade_id)
                self.matches_sent += 1

    async def _ticker(self, market: SymbolMarket, last: tuple[Any, ...], stamp: str) -> None:
        product = market.spec.symbol
        pd, qd = market.spec.price_decimals, market.spec.qty_decimals
        bid, bid_qty, ask, ask_qty = market.top
        s = market.stats
        _, _, price, qty, _, last_id, buyer_is_maker, _ = last
        message = {
            "type": "ticker", "sequence": self._seq(product), "product_id": product,
            "price": fixed(price, pd), "open_24h": fixed(s.open, pd),
            "volume_24h": fixed(s.volume, qd), "low_24h": fixed(s.low, pd),
            "high_24h": fixed(s.high, pd), "volume_30d": fixed(s.volume, qd),
            "best_bid": fixed(bid, pd), "best_bid_size": fixed(bid_qty, qd),
            "best_ask": fixed(ask, pd), "best_ask_size": fixed(ask_qty, qd),
            "side": "sell" if buyer_is_maker else "buy", "time": stamp, "trade_id": last_id,
            "last_size": fixed(qty, qd),
        }  # fmt: skip
        data = msgspec.json.encode(message)
        for conn in list(self._conns.values()):
            if conn.wants("ticker", product):
                await self._send(conn, data)

    async def _batches(self) -> None:
        """Fold the book's changes into every subscribed connection's batch each ``cut_ms``;
        send a connection its batch each ``batch_ms`` from its own subscribe (the cut differs
        per socket). Batches still go out while paused, so final books can be compared."""
        cut = self.config.cut_ms / 1000
        every = self.config.batch_ms / 1000
        while True:
            await asyncio.sleep(cut)
            for product, diff in list(self.market.take_depth(self.config.cut_ms)):
                self.market.publish_depth(product, diff)
                spec = self.market.symbols[product].spec
                _, _, _, bids, asks = diff
                changes = [("buy", fixed(p, spec.price_decimals), fixed(q, spec.qty_decimals))
                           for p, q in bids.items()]  # fmt: skip
                changes += [("sell", fixed(p, spec.price_decimals), fixed(q, spec.qty_decimals))
                            for p, q in asks.items()]  # fmt: skip
                for conn in list(self._conns.values()):
                    if conn.wants("level2_batch", product) or conn.wants("level2", product):
                        batch = conn.batch.setdefault(product, {})
                        for side, price, size in changes:
                            batch[(side, price)] = size
            now = time.monotonic()
            for conn in list(self._conns.values()):
                if not conn.batch or now < conn.batch_due:
                    continue
                conn.batch_due = max(conn.batch_due + every, now)
                stamp = iso(time.time_ns())
                batches, conn.batch = conn.batch, {}
                for product, levels in batches.items():
                    changes_sent = [[side, price, size] for (side, price), size in levels.items()]
                    await self._l2update(product, changes_sent, stamp, only=conn)

    async def _l2update(
        self, product: str, changes: list[list[str]], stamp: str, only: _Conn | None = None
    ) -> None:
        data = msgspec.json.encode(
            {"type": "l2update", "product_id": product, "changes": changes, "time": stamp}
        )
        for conn in [only] if only is not None else list(self._conns.values()):
            if conn.wants("level2_batch", product) or conn.wants("level2", product):
                await self._send(conn, data)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            stamp = iso(time.time_ns())
            for product in self.config.symbols:
                data = msgspec.json.encode({
                    "type": "heartbeat", "sequence": self.sequence[product],
                    "last_trade_id": self.last_trade_id[product], "product_id": product,
                    "time": stamp,
                })  # fmt: skip
                for conn in list(self._conns.values()):
                    if conn.wants("heartbeat", product):
                        await self._send(conn, data)

    async def _faults(self) -> None:
        now = time.monotonic()
        for kind, due in list(self._fault_next.items()):
            if now < due:
                continue
            self._fault_next[kind] = now + self.config.faults[kind]
            self.fault_counts[kind] += 1
            turn = self.fault_counts[kind]
            product = self.config.symbols[turn % len(self.config.symbols)]
            if kind == "skip_match":
                self._skip_next.add(product)
            elif kind == "skip_sequence":
                self.faults.record(kind, symbol=product, stream="full")
                self.full.skip_sequence(product)
            elif kind == "stale_snapshot":
                self.faults.record(kind, symbol=product, stream="full")
                self.full.stale_snapshot(product)
            elif kind == "disconnect":
                self.faults.record("disconnect", detail=f"{len(self._conns)} connections")
                for conn in list(self._conns.values()):
                    if conn.transport is not None:
                        conn.transport.abort()
            else:
                await self._cross(product)

    async def _full(self, frames: list[tuple[str, bytes]]) -> None:
        """The ``full`` messages of one market action to the sockets subscribed to them."""
        for product, frame in frames:
            for conn in list(self._conns.values()):
                if conn.wants("full", product):
                    await self._send(conn, frame)

    async def _book(self, request: web.Request) -> web.Response:
        """``GET /products/{id}/book?level=3``: the order-level snapshot (levels 1 and 2 are
        not served: the protocol takes its L2 book from ``level2_batch``)."""
        product = request.match_info["product"]
        if product not in self.full.products:
            return web.json_response({"message": "NotFound"}, status=404)
        if request.query.get("level") != "3":
            return web.json_response({"message": "this simulator serves level=3"}, status=400)
        body = self.full.snapshot_body(product, time.time_ns())
        return web.Response(body=body, content_type="application/json")

    async def _cross(self, product: str) -> None:
        """An l2update that crosses ``product``'s book: a bid at the best ask (not applied)."""
        asks = self.market.published[product][2]
        spec = self.market.symbols[product].spec
        best_ask = min(p for p, q in asks.items() if q)
        change = ["buy", fixed(best_ask, spec.price_decimals), fixed(1, spec.qty_decimals)]
        self.faults.record("cross_book", symbol=product, stream="level2_batch",
                           detail=f"bid at the best ask {change[1]}")  # fmt: skip
        await self._l2update(product, [change], iso(time.time_ns()))

    # -- connections -------------------------------------------------------------------------
    async def _send(self, conn: _Conn, data: bytes) -> bool:
        try:
            await conn.ws.send_str(data.decode())
        except (ConnectionError, RuntimeError):
            return False
        conn.record.frames_sent += 1
        conn.record.bytes_sent += len(data)
        return True

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        record = ConnectionRecord(self._next_conn, request.path, str(request.remote), RANGE_CAP)
        conn = _Conn(ws, request.transport, record)
        self._conns[record.conn_id] = conn
        self._next_conn += 1
        timeout = asyncio.get_running_loop().call_later(
            self.config.subscribe_timeout_s, self._no_subscribe, conn
        )
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._request(conn, msg.data)
        finally:
            timeout.cancel()
            record.closed_ns = time.time_ns()
            self._conns.pop(record.conn_id, None)
            self._closed.append(record)
        return ws

    def _no_subscribe(self, conn: _Conn) -> None:
        """Coinbase closes a socket that sent no subscribe within 5 s."""
        if not conn.subscribed and conn.transport is not None:
            self.faults.record("no_subscribe", detail=f"connection {conn.record.conn_id}")
            conn.transport.abort()

    async def _error(self, conn: _Conn, reason: str) -> None:
        error = {"type": "error", "message": "Failed to subscribe", "reason": reason}
        await self._send(conn, msgspec.json.encode(error))

    async def _request(self, conn: _Conn, text: str) -> None:
        try:
            req = msgspec.json.decode(text)
        except msgspec.DecodeError:
            await self._error(conn, "malformed JSON")
            return
        if not isinstance(req, dict) or req.get("type") not in ("subscribe", "unsubscribe"):
            await self._error(conn, "type must be subscribe or unsubscribe")
            return
        handlers = self.channel_handlers()
        names = [c.get("name") if isinstance(c, dict) else c for c in req.get("channels") or []]
        if "full" in names and not self.full.signed(req, time.time_ns()):
            error = {"type": "error", "message": "Authentication Failed", "reason": "signature"}
            await self._send(conn, msgspec.json.encode(error))
            return
        default_products = [p for p in req.get("product_ids") or [] if isinstance(p, str)]
        wanted: list[tuple[str, list[str]]] = []
        for channel in req.get("channels") or []:
            if isinstance(channel, dict):
                name = channel.get("name")
                products = [p for p in channel.get("product_ids") or default_products]
            else:
                name, products = channel, default_products
            if name not in handlers:
                await self._error(conn, f"{name} is not a valid channel")
                return
            unknown = [p for p in products if p not in self.history]
            if unknown:
                await self._error(conn, f"{unknown[0]} is not a valid product")
                return
            wanted.append((str(name), products))
        conn.subscribed = True
        for name, products in wanted:
            current = conn.channels.setdefault(name, set())
            if req["type"] == "subscribe":
                current.update(products)
            else:
                current.difference_update(products)
            conn.record.subscriptions.append(f"{req['type']} {name} {','.join(products)}")
        listed = [{"name": n, "product_ids": sorted(p)} for n, p in conn.channels.items()]
        ack = {"type": "subscriptions", "channels": listed}
        await self._send(conn, msgspec.json.encode(ack))
        if req["type"] == "subscribe":
            for name, products in wanted:
                await handlers[name](conn, products)

    async def _nothing(self, conn: _Conn, products: list[str]) -> None:
        return None

    async def _subscribed_matches(self, conn: _Conn, products: list[str]) -> None:
        for product in products:
            history = self.history[product]
            if history:
                trade_id, price, size, maker_side, stamp = history[-1]
                await self._match(product, "last_match", trade_id, price, size, maker_side,
                                  stamp, only=conn)  # fmt: skip

    async def _subscribed_level2(self, conn: _Conn, products: list[str]) -> None:
        if not conn.batch_due:  # this connection's batches are cut from now on
            conn.batch_due = time.monotonic() + self.config.batch_ms / 1000
        for product in products:
            spec = self.market.symbols[product].spec
            _, bids, asks = self.market.published[product]
            pd, qd = spec.price_decimals, spec.qty_decimals
            message = {
                "type": "snapshot", "product_id": product,
                "bids": [[fixed(p, pd), fixed(q, qd)] for p, q in sorted(bids.items())[::-1] if q],
                "asks": [[fixed(p, pd), fixed(q, qd)] for p, q in sorted(asks.items()) if q],
                "time": iso(time.time_ns()),
            }  # fmt: skip
            await self._send(conn, msgspec.json.encode(message))

    # -- REST ------------------------------------------------------------------------------
    async def _products(self, request: web.Request) -> web.Response:
        listed = [
            {"id": p, "base_currency": p.split("-")[0], "quote_currency": p.split("-")[1],
             "status": "online", "trading_disabled": False}
            for p in self.config.symbols
        ]  # fmt: skip
        listed.append({"id": DELISTED, "base_currency": "DELISTED", "quote_currency": "USD",
                       "status": "delisted", "trading_disabled": True})  # fmt: skip
        return web.Response(body=msgspec.json.encode(listed), content_type="application/json")

    async def _trades(self, request: web.Request) -> web.Response:
        product = request.match_info["product"]
        history = self.history.get(product)
        if history is None:
            return web.json_response({"message": "NotFound"}, status=404)
        try:
            limit = int(request.query.get("limit", PAGE))
            after = int(request.query["after"]) if "after" in request.query else None
            before = int(request.query["before"]) if "before" in request.query else None
        except ValueError:
            return web.json_response({"message": "invalid cursor or limit"}, status=400)
        if not 1 <= limit <= PAGE:
            return web.json_response({"message": "limit must be 1..1000"}, status=400)
        newest_first = reversed(history)
        if after is not None:  # older than ``after``
            rows = [t for t in newest_first if t[0] < after][:limit]
        elif before is not None:  # newer than ``before``: the page just above it
            newer = [t for t in history if t[0] > before][:limit]
            rows = newer[::-1]
        else:
            rows = list(newest_first)[:limit]
        body = [
            {"time": stamp, "trade_id": tid, "price": price, "size": size, "side": side}
            for tid, price, size, side, stamp in rows
        ]
        headers = {}
        if rows:
            headers = {"CB-BEFORE": str(rows[0][0]), "CB-AFTER": str(rows[-1][0])}
        return web.Response(
            body=msgspec.json.encode(body), content_type="application/json", headers=headers
        )
