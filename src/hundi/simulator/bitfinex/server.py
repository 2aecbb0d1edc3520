"""Bitfinex v2 authenticated WebSocket over real sockets, for tests: auth, channel 0, faults.

``/ws/2`` greets with the ``info`` event, then takes ``auth``: the API key must be the account's
(else ``{"event":"auth","status":"FAILED","code":10100,"msg":"apikey: invalid"}``), the nonce
must exceed the last one seen for the key (10114 ``nonce: small``), ``authPayload`` must be
``"AUTH" + nonce`` and ``authSig`` its hex HMAC-SHA384 (10100 ``apikey: digest invalid``). After
``OK`` it sends the position, wallet and open-order snapshots (``ps``, ``ws``, ``os``), then the
account's order lifecycles as ``on``/``ou``/``oc``, ``te``+``tu`` per fill and ``n`` for a
refused order, with heartbeats ``[0,"hb"]``. Fault ``drop:N`` aborts every socket each N s.
``GET /sim/private`` lists every order update delivered, per connection (ground truth).

The same socket serves the public channels (``conf``, ``subscribe``: trades, books with
checksums and sequence numbers, ticker, candles) from :mod:`hundi.simulator.bitfinex.public`,
with faults ``checksum:N``, ``seq:N`` and ``reconnect:N``; ``GET /sim/public`` is their ground
truth. Without credentials (``credentials=None``) every ``auth`` is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from hundi.exchanges.credentials import Credentials
from hundi.simulator.bitfinex.public import (
    HIST_DEFAULT_LIMIT,
    HIST_MAX_LIMIT,
    PUBLIC_FAULTS,
    PublicFeed,
)
from hundi.simulator.lifecycle import Lifecycles, SimOrder, Step
from hundi.simulator.site import SimulatorSite

GROUND_TRUTH_MAX = 200_000
BAD_KEY = (10100, "apikey: invalid")
BAD_SIGNATURE = (10100, "apikey: digest invalid")
SMALL_NONCE = (10114, "nonce: small")
FAULTS = ("drop", "drop_trades", *PUBLIC_FAULTS)
PUBLIC_EVENTS = ("conf", "subscribe", "unsubscribe", "ping")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class BitfinexSimConfig:
    credentials: Credentials | None
    host: str = "127.0.0.1"
    port: int = 0
    symbols: tuple[str, ...] = ("tBTCUSD", "tETHUSD")
    order_interval_s: float = 0.05
    heartbeat_s: float = 15.0
    faults: dict[str, float] = field(default_factory=dict)
    seed: int = 1
    rate: float = 50.0  # public market actions per second
    tick_s: float = 0.05  # how often the public feed publishes


class _Conn:
    __slots__ = ("authed", "closed_ns", "conn_id", "opened_ns", "transport", "ws")

    def __init__(self, conn_id: int, ws: web.WebSocketResponse, transport: Any) -> None:
        self.conn_id = conn_id
        self.ws = ws
        self.transport = transport
        self.authed = False
        self.opened_ns = time.time_ns()
        self.closed_ns = 0


def _cid(o: SimOrder) -> int:
    """Bitfinex client order ids are integers."""
    return 1_000_000_000_000 + o.order_id


def order_array(o: SimOrder, step: Step, amount_left: float, status: str) -> list[Any]:
    """The documented 32-field order array."""
    sign = 1 if o.side == "BUY" else -1
    avg = step.filled_quote / step.filled if step.filled else 0.0
    return [
        o.order_id if step.execution != "REJECTED" else None, None, _cid(o),
        o.symbol, o.created_ms, step.time_ms, sign * amount_left, sign * o.quantity,
        "EXCHANGE LIMIT" if o.time_in_force == "GTC" else "EXCHANGE IOC", None, None, None,
        0, status, None, None, o.price, avg, 0, 0, None, None, None, 0, 0, None, None, None,
        "API>BFX", None, None, {},
    ]  # fmt: skip


def status_text(step: Step) -> str:
    price = step.order.price
    if step.status == "NEW":
        return "ACTIVE"
    if step.status == "PARTIALLY_FILLED":
        return f"PARTIALLY FILLED @ {price}({step.last_quantity})"
    if step.status == "FILLED":
        return f"EXECUTED @ {price}({step.last_quantity}): was PARTIALLY FILLED @ {price}"
    if step.status == "EXPIRED":
        return "IOC CANCELED" + (f" was: PARTIALLY FILLED @ {price}" if step.filled else "")
    return "CANCELED" + (f" was: PARTIALLY FILLED @ {price}" if step.filled else "")


class BitfinexSimulator(SimulatorSite[BitfinexSimConfig]):
    """``async with BitfinexSimulator(cfg) as sim: sim.ws_url``."""

    def __init__(self, config: BitfinexSimConfig) -> None:
        self.config = config
        creds = config.credentials
        self._key = creds.api_key.reveal() if creds is not None else ""
        self._secret = creds.api_secret.reveal() if creds is not None else ""
        self.public = PublicFeed(config.symbols, config.seed, config.rate)
        self.lifecycles = Lifecycles(random.Random(config.seed), config.symbols, fee_asset="USD")
        self._conns: dict[int, _Conn] = {}
        self._closed: deque[_Conn] = deque(maxlen=1000)
        self._next_conn = 1
        self._last_nonce = 0
        self._open: dict[int, tuple[SimOrder, Step]] = {}  # open orders, for ``os``
        self.delivered: deque[dict[str, Any]] = deque(maxlen=GROUND_TRUTH_MAX)
        self.auth_ok = 0
        self.auth_failed: dict[str, int] = {}
        self.steps = 0
        self.fault_counts: dict[str, int] = {}
        self._fault_next: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws/2", self._ws)
        app.router.add_get("/sim/private", self._ground_truth)
        app.router.add_get("/sim/stats", self._ground_truth)
        app.router.add_get("/sim/public", self._public_truth)
        app.router.add_post("/sim/public/pause", self._pause)
        app.router.add_get("/v2/conf/{name}", self._conf)
        app.router.add_get("/v2/trades/{symbol}/hist", self._trades_hist)
        await self._listen(app)
        now = time.monotonic()
        self._fault_next = {k: now + every for k, every in self.config.faults.items()}
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run()),
            loop.create_task(self._heartbeats()),
            loop.create_task(self._publish()),
            loop.create_task(self._tickers()),
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

    def stats(self) -> dict[str, Any]:
        conns = list(self._closed) + list(self._conns.values())
        return {
            "exchange": "bitfinex",
            "steps": self.steps,
            "auth_ok": self.auth_ok,
            "auth_failed": dict(self.auth_failed),
            "faults": dict(self.fault_counts),
            "connections": [
                {
                    "id": c.conn_id,
                    "opened_ns": c.opened_ns,
                    "closed_ns": c.closed_ns,
                    "authenticated": c.authed,
                }
                for c in conns
            ],
            "delivered": list(self.delivered),
        }

    async def _ground_truth(self, request: web.Request) -> web.Response:
        return web.Response(body=msgspec.json.encode(self.stats()), content_type="application/json")

    async def _public_truth(self, request: web.Request) -> web.Response:
        found = self.public.ground_truth()
        found["faults"] |= self.fault_counts  # ``drop`` is the server's
        body = msgspec.json.encode(found)
        return web.Response(body=body, content_type="application/json")

    async def _conf(self, request: web.Request) -> web.Response:
        listing = self.public.listing(request.match_info["name"])
        if listing is None:
            return web.Response(status=404, body=b'["error",10020,"conf: invalid"]')
        return web.Response(body=msgspec.json.encode(listing), content_type="application/json")

    async def _trades_hist(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            start = int(query["start"]) if "start" in query else None
            end = int(query["end"]) if "end" in query else None
            limit = int(query.get("limit", HIST_DEFAULT_LIMIT))
            sort = int(query.get("sort", -1))
        except ValueError:
            return web.Response(status=500, body=b'["error",10020,"time_interval: invalid"]')
        if not 1 <= limit <= HIST_MAX_LIMIT:
            return web.Response(status=500, body=b'["error",10020,"limit: invalid"]')
        found = self.public.hist(request.match_info["symbol"], start, end, limit, sort)
        if found is None:
            return web.Response(status=500, body=b'["error",10020,"symbol: invalid"]')
        return web.Response(body=msgspec.json.encode(found), content_type="application/json")

    async def _pause(self, request: web.Request) -> web.Response:
        self.public.paused = True
        return web.Response(body=b'{"paused":true}', content_type="application/json")

    # -- public market data -------------------------------------------------------------------
    async def _publish(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.config.tick_s)
            now = time.monotonic()
            await self._public_faults(now)
            await self.public.tick(now - last)
            last = now

    async def _tickers(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self.public.tickers()

    async def _public_faults(self, now: float) -> None:
        if self.public.paused:
            return  # a frozen market stays consistent: the final books can be compared
        for kind in PUBLIC_FAULTS:
            due = self._fault_next.get(kind)
            if due is not None and now >= due:
                self._fault_next[kind] = now + self.config.faults[kind]
                await self.public.fault(kind)

    # -- account activity --------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.order_interval_s)
            self._faults()
            await self._step(self.lifecycles.next_step(_now_ms()))

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            for conn in list(self._conns.values()):
                if conn.authed:
                    await self._send(conn, [0, "hb"])
            await self.public.heartbeats()

    def _faults(self) -> None:
        now = time.monotonic()
        for kind, due in list(self._fault_next.items()):
            if kind in ("drop", "drop_trades") and now >= due:
                self._fault_next[kind] = now + self.config.faults[kind]
                self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1
                if kind == "drop_trades":
                    self.public.withhold_trades()
                for conn in list(self._conns.values()):
                    if conn.transport is not None:
                        conn.transport.abort()

    def _messages(self, step: Step) -> list[tuple[list[Any], str, float]]:
        """(message, execution, filled) per order update; trades carry no order key."""
        o = step.order
        left = round(o.quantity - step.filled, 8)
        text = status_text(step)
        if step.execution == "REJECTED":
            info = order_array(o, step, o.quantity, "ERROR")
            notice = [step.time_ms, "on-req", None, None, info, None, "ERROR",
                      "Invalid order: not enough exchange balance"]  # fmt: skip
            return [([0, "n", notice], "n", 0.0)]
        if step.execution == "NEW":
            self._open[o.order_id] = (o, step)
            return [([0, "on", order_array(o, step, left, text)], "on", step.filled)]
        if step.execution == "TRADE":
            sign = 1 if o.side == "BUY" else -1
            trade = [step.trade_id, o.symbol, step.time_ms, o.order_id,
                     sign * step.last_quantity, step.last_price, "EXCHANGE LIMIT", o.price,
                     1 if step.maker else -1]  # fmt: skip
            cid = _cid(o)
            messages: list[tuple[list[Any], str, float]] = [
                ([0, "te", [*trade, None, None, cid]], "", 0.0),
                ([0, "tu", [*trade, -step.fee, step.fee_asset, cid]], "", 0.0),
            ]
            kind = "ou" if step.status == "PARTIALLY_FILLED" else "oc"
            if kind == "ou":
                self._open[o.order_id] = (o, step)
            else:
                self._open.pop(o.order_id, None)
            messages.append(([0, kind, order_array(o, step, left, text)], kind, step.filled))
            return messages
        self._open.pop(o.order_id, None)
        return [([0, "oc", order_array(o, step, left, text)], "oc", step.filled)]

    async def _step(self, step: Step) -> None:
        self.steps += 1
        messages = self._messages(step)
        for conn in [c for c in self._conns.values() if c.authed]:
            for message, execution, filled in messages:
                if not await self._send(conn, message):
                    break
                self._record(conn, step.order, step, execution, filled)

    def _record(self, conn: _Conn, o: SimOrder, step: Step, execution: str, filled: float) -> None:
        if execution:
            order_id = "" if execution == "n" else str(o.order_id)
            self.delivered.append({
                "conn": conn.conn_id, "order_id": order_id, "client_id": str(_cid(o)),
                "execution": execution,
                "filled": filled, "trade_id": -1, "time_ms": step.time_ms,
            })  # fmt: skip
        elif step.execution == "TRADE":
            self.delivered.append({
                "conn": conn.conn_id, "order_id": str(o.order_id), "execution": "trade",
                "filled": step.filled, "trade_id": step.trade_id, "time_ms": step.time_ms,
            })  # fmt: skip

    async def _send(self, conn: _Conn, message: Any) -> bool:
        try:
            await conn.ws.send_bytes(msgspec.json.encode(message))
        except (ConnectionError, RuntimeError):
            return False
        return True

    # -- connections --------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 16)
        await ws.prepare(request)
        conn = _Conn(self._next_conn, ws, request.transport)
        self._next_conn += 1
        self._conns[conn.conn_id] = conn
        self.public.attach(conn.conn_id, lambda message: self._send(conn, message))
        try:
            await self._send(conn, {"event": "info", "version": 2, "serverId": "sim",
                                    "platform": {"status": 1}})  # fmt: skip
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):  # Bitfinex takes either
                    await self._request(conn, msg.data)
        finally:
            conn.closed_ns = time.time_ns()
            self.public.detach(conn.conn_id)
            self._conns.pop(conn.conn_id, None)
            self._closed.append(conn)
        return ws

    async def _request(self, conn: _Conn, text: str | bytes) -> None:
        try:
            req = msgspec.json.decode(text)
        except msgspec.DecodeError:
            await self._send(conn, {"event": "error", "code": 10001, "msg": "Invalid JSON"})
            return
        if isinstance(req, dict) and req.get("event") in PUBLIC_EVENTS:
            await self.public.request(conn.conn_id, req)
            return
        if not isinstance(req, dict) or req.get("event") != "auth":
            await self._send(conn, {"event": "error", "code": 10000, "msg": "Unknown event"})
            return
        problem = self._check_auth(req)
        if problem is not None:
            code, msg = problem
            self.auth_failed[str(code)] = self.auth_failed.get(str(code), 0) + 1
            await self._send(conn, {"event": "auth", "status": "FAILED", "chanId": 0,
                                    "code": code, "msg": msg})  # fmt: skip
            return
        self.auth_ok += 1
        conn.authed = True
        ok = {"event": "auth", "status": "OK", "chanId": 0, "userId": 1, "auth_id": "sim-auth",
              "caps": {"orders": {"read": 1}}}  # fmt: skip
        await self._send(conn, ok)
        await self._send(conn, [0, "ps", []])
        await self._send(conn, [0, "ws", [["exchange", "USD", 10000.0, 0, None]]])
        snapshot = []
        for o, step in self._open.values():
            left = round(o.quantity - step.filled, 8)
            snapshot.append(order_array(o, step, left, status_text(step)))
        if await self._send(conn, [0, "os", snapshot]):
            for o, step in self._open.values():
                self._record(conn, o, step, "os", step.filled)

    def _check_auth(self, req: dict[str, Any]) -> tuple[int, str] | None:
        key = req.get("apiKey")
        if not self._key or not isinstance(key, str) or not hmac.compare_digest(key, self._key):
            return BAD_KEY
        nonce = req.get("authNonce")
        if not isinstance(nonce, int) or nonce <= self._last_nonce:
            return SMALL_NONCE
        payload = req.get("authPayload")
        signature = req.get("authSig")
        expected = hmac.new(
            self._secret.encode(), f"AUTH{nonce}".encode(), hashlib.sha384
        ).hexdigest()
        if (
            payload != f"AUTH{nonce}"
            or not isinstance(signature, str)
            or not hmac.compare_digest(signature.lower(), expected)
        ):
            return BAD_SIGNATURE
        self._last_nonce = nonce
        return None
