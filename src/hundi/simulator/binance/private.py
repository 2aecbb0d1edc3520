"""Binance private endpoints for the simulator: user-data streams checked like the venue does.

Spot: the WebSocket API at ``/ws-api/v3``. ``userDataStream.subscribe.signature`` is checked in
Binance's order: API key (-2015, status 401), timestamp against ``recvWindow`` (-1021), then the
HMAC-SHA256 signature over the sorted parameters (-1022, case-insensitive hex). Events go out as
``{"subscriptionId": n, "event": {...}}``: ``executionReport`` (all fields),
``outboundAccountPosition`` after fills, an occasional ``balanceUpdate``, and
``eventStreamTerminated`` (fault ``terminate:N``).

USD-M: ``POST/PUT/DELETE /fapi/v1/listenKey`` (header ``X-MBX-APIKEY``; -2014 without one,
-2015 for a wrong one, -1125 for a keep-alive of an unknown key), keys lapse after
``listen_key_ttl`` without keep-alive (``listenKeyExpired`` is sent, the socket closed), events
on ``/private/ws/<listenKey>``: ``ORDER_TRADE_UPDATE``, ``TRADE_LITE`` before each fill,
``ACCOUNT_UPDATE`` after it.

Faults (``--private-fault``): ``terminate:N`` (spot: end every subscription each N s),
``listen-key-expire:N`` (USD-M: expire the key each N s), ``drop:N`` (abort every private
socket each N s). ``GET /sim/private`` is the ground truth: every event delivered, per
connection, plus authentication and listen-key counters.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import random
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import WSMsgType, web
from cryptography.exceptions import InvalidSignature

from hundi.exchanges.binance.auth import load_ed25519
from hundi.exchanges.credentials import Credentials
from hundi.simulator.binance.rules import BinanceVariant
from hundi.simulator.lifecycle import SCENARIOS, Lifecycles, Step

FAULTS = ("terminate", "listen-key-expire", "drop")
INVALID_KEY = (-2015, "Invalid API-key, IP, or permissions for action.")
KEY_FORMAT = (-2014, "API-key format invalid.")
BAD_SIGNATURE = (-1022, "Signature for this request is not valid.")
BAD_TIMESTAMP = (-1021, "Timestamp for this request is outside of the recvWindow.")
UNKNOWN_KEY = (-1125, "This listenKey does not exist.")
NOT_LOGGED_ON = (-2015, "Invalid API-key, IP, or permissions for action.")
ED25519_ONLY = (-4056, "HMAC_SHA256 API key is not supported.")
ED25519_SIGNATURE_PARAM = (-1022, "Signature for this request is not valid.")
GROUND_TRUTH_MAX = 200_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _f(value: float) -> str:
    return f"{value:.8f}"


@dataclass(slots=True)
class PrivateConfig:
    """What the private side simulates; credentials are the one account that is accepted."""

    credentials: Credentials
    order_interval_s: float = 0.05  # one order step this often
    faults: dict[str, float] = field(default_factory=dict)  # kind -> every N seconds
    listen_key_ttl_s: float = 3600.0
    ping_interval_s: float = 180.0
    seed: int = 1

    @staticmethod
    def parse_fault(text: str) -> tuple[str, float]:
        kind, _, raw = text.partition(":")
        if kind not in FAULTS:
            raise ValueError(f"unknown private fault {kind!r} (known: {', '.join(FAULTS)})")
        try:
            every = float(raw)
        except ValueError:
            raise ValueError(f"private fault {kind} needs seconds: {kind}:N") from None
        if not every > 0:
            raise ValueError(f"private fault {kind}: N must be > 0")
        return kind, every


class _Conn:
    __slots__ = (
        "closed_ns", "conn_id", "listen_key", "logged_on", "opened_ns", "subscription",
        "transport", "ws",
    )  # fmt: skip

    def __init__(
        self, conn_id: int, ws: web.WebSocketResponse, transport: Any, listen_key: str = ""
    ) -> None:
        self.conn_id = conn_id
        self.ws = ws
        self.transport = transport  # to drop the connection abruptly (fault ``drop``)
        self.listen_key = listen_key
        self.subscription: int | None = None  # spot: the subscription id once subscribed
        self.logged_on = False  # spot: session.logon accepted (Ed25519 keys)
        self.opened_ns = time.time_ns()
        self.closed_ns = 0


class BinancePrivate:
    """Install with :meth:`install`, run :meth:`run` as a task, :meth:`close` at stop."""

    def __init__(
        self, market: BinanceVariant, config: PrivateConfig, symbols: tuple[str, ...]
    ) -> None:
        self.market = market
        self.config = config
        self._key = config.credentials.api_key.reveal()
        self._secret = config.credentials.api_secret.reveal()
        self._public_key: Any = None  # an Ed25519 account verifies session.logon with it
        pem = config.credentials.ed25519_pem
        if pem is not None:
            self._public_key = load_ed25519(pem.reveal()).public_key()
        # USD-M answers a rejected order on the request; its user-data stream never shows one
        scenarios = (
            SCENARIOS
            if market is BinanceVariant.SPOT
            else tuple(s for s in SCENARIOS if s != "reject")
        )
        self.lifecycles = Lifecycles(random.Random(config.seed), symbols, scenarios=scenarios)
        self._conns: dict[int, _Conn] = {}
        self._next_conn = 1
        self._closed: deque[_Conn] = deque(maxlen=1000)
        self.delivered: deque[dict[str, Any]] = deque(maxlen=GROUND_TRUTH_MAX)
        self.steps = 0
        self.auth_ok = 0
        self.auth_failed: dict[str, int] = {}
        self.listen_key: str | None = None
        self.listen_key_expires = 0.0
        self.listen_keys_created = 0
        self.keepalives = 0
        self.fault_counts: dict[str, int] = {}
        self._fault_next = {k: time.monotonic() + every for k, every in config.faults.items()}

    # -- wiring -------------------------------------------------------------------------------
    def install(self, app: web.Application) -> None:
        app.router.add_get("/sim/private", self._ground_truth)
        if self.market is BinanceVariant.SPOT:
            app.router.add_get("/ws-api/v3", self._ws_api)
        else:
            for method in ("POST", "PUT", "DELETE"):
                app.router.add_route(method, "/fapi/v1/listenKey", self._listen_key)
            app.router.add_get("/private/ws/{listen_key}", self._listen_ws)

    async def run(self) -> None:
        """Move the account's orders along and inject the configured faults."""
        interval = self.config.order_interval_s
        while True:
            await asyncio.sleep(interval)
            await self._faults()
            await self._expire_listen_key()
            await self._step(self.lifecycles.next_step(_now_ms()))

    async def close(self) -> None:
        for conn in list(self._conns.values()):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"simulator stopped")

    def stats(self) -> dict[str, Any]:
        conns = list(self._closed) + list(self._conns.values())
        return {
            "market": self.market.value,
            "steps": self.steps,
            "auth_ok": self.auth_ok,
            "auth_failed": dict(self.auth_failed),
            "listen_keys_created": self.listen_keys_created,
            "keepalives": self.keepalives,
            "faults": dict(self.fault_counts),
            "connections": [
                {
                    "id": c.conn_id,
                    "opened_ns": c.opened_ns,
                    "closed_ns": c.closed_ns,
                    "subscribed": c.subscription is not None or bool(c.listen_key),
                }
                for c in conns
            ],
            "delivered": list(self.delivered),
        }

    async def _ground_truth(self, request: web.Request) -> web.Response:
        return web.Response(body=msgspec.json.encode(self.stats()), content_type="application/json")

    # -- delivery -----------------------------------------------------------------------------
    def _listeners(self) -> list[_Conn]:
        if self.market is BinanceVariant.SPOT:
            return [c for c in self._conns.values() if c.subscription is not None]
        return [c for c in self._conns.values() if c.listen_key and c.listen_key == self.listen_key]

    async def _send(self, conn: _Conn, event: dict[str, Any]) -> bool:
        if self.market is BinanceVariant.SPOT:
            body: dict[str, Any] = {"subscriptionId": conn.subscription, "event": event}
        else:
            body = event
        try:
            await conn.ws.send_bytes(msgspec.json.encode(body))
        except (ConnectionError, RuntimeError):
            return False
        return True

    async def _step(self, step: Step) -> None:
        self.steps += 1
        events = (
            self._spot_events(step)
            if self.market is BinanceVariant.SPOT
            else self._usdm_events(step)
        )
        for conn in self._listeners():
            for event in events:
                if not await self._send(conn, event):
                    break
            else:
                self.delivered.append({
                    "conn": conn.conn_id, "order_id": step.order.order_id,
                    "client_id": step.order.client_id, "symbol": step.order.symbol,
                    "execution": step.execution, "status": step.status, "filled": step.filled,
                    "trade_id": step.trade_id, "time_ms": step.time_ms,
                })  # fmt: skip

    def _spot_events(self, step: Step) -> list[dict[str, Any]]:
        o = step.order
        now = step.time_ms
        canceled = step.execution == "CANCELED"
        report = {
            "e": "executionReport", "E": now + 1, "s": o.symbol,
            "c": step.cancel_client_id if canceled else o.client_id,
            "S": o.side, "o": o.order_type, "f": o.time_in_force, "q": _f(o.quantity),
            "p": _f(o.price), "P": _f(0.0), "F": _f(0.0), "g": -1,
            "C": o.client_id if canceled else "", "x": step.execution, "X": step.status,
            "r": step.reject_reason, "i": o.order_id, "l": _f(step.last_quantity),
            "z": _f(step.filled), "L": _f(step.last_price), "n": _f(step.fee),
            "N": step.fee_asset or None, "T": now, "t": step.trade_id, "I": self.steps,
            "w": step.status in ("NEW", "PARTIALLY_FILLED"), "m": step.maker, "M": False,
            "O": o.created_ms, "Z": _f(step.filled_quote),
            "Y": _f(step.last_quantity * step.last_price), "Q": _f(0.0), "W": o.created_ms,
            "V": "EXPIRE_MAKER",
        }  # fmt: skip
        events: list[dict[str, Any]] = [report]
        if step.execution == "TRADE":
            events.append({
                "e": "outboundAccountPosition", "E": now + 1, "u": now,
                "B": [{"a": "USDT", "f": _f(10_000 - step.filled_quote), "l": _f(0.0)}],
            })  # fmt: skip
        if self.steps % 10 == 0:
            events.append({"e": "balanceUpdate", "E": now + 1, "a": "USDT", "d": "1.00000000",
                           "T": now})  # fmt: skip
        return events

    def _usdm_events(self, step: Step) -> list[dict[str, Any]]:
        o = step.order
        now = step.time_ms
        trade = step.execution == "TRADE"
        order = {
            "s": o.symbol, "c": o.client_id, "S": o.side, "o": o.order_type,
            "f": "GTX" if o.time_in_force == "IOC" else o.time_in_force,
            "q": _f(o.quantity), "p": _f(o.price),
            "ap": _f(step.filled_quote / step.filled if step.filled else 0.0), "sp": _f(0.0),
            "x": step.execution, "X": step.status,
            "i": o.order_id, "l": _f(step.last_quantity), "z": _f(step.filled),
            "L": _f(step.last_price), "N": step.fee_asset or "USDT", "n": _f(step.fee),
            "T": now, "t": step.trade_id if trade else 0, "b": _f(0.0), "a": _f(0.0),
            "m": step.maker, "R": False, "wt": "CONTRACT_PRICE", "ot": o.order_type,
            "ps": "BOTH", "cp": False, "rp": _f(0.0), "pP": False, "si": 0, "ss": 0,
            "V": "EXPIRE_TAKER", "pm": "NONE", "gtd": 0,
            "er": "6" if step.status == "EXPIRED" else "0",
        }  # fmt: skip
        events: list[dict[str, Any]] = []
        if trade:
            events.append({
                "e": "TRADE_LITE", "E": now + 1, "T": now, "s": o.symbol, "q": _f(o.quantity),
                "p": _f(o.price), "m": step.maker, "c": o.client_id, "S": o.side,
                "L": _f(step.last_price), "l": _f(step.last_quantity), "t": step.trade_id,
                "i": o.order_id,
            })  # fmt: skip
        events.append({"e": "ORDER_TRADE_UPDATE", "E": now + 1, "T": now, "o": order})
        if trade:
            events.append({
                "e": "ACCOUNT_UPDATE", "E": now + 1, "T": now,
                "a": {"m": "ORDER",
                      "B": [{"a": "USDT", "wb": _f(10_000.0), "cw": _f(10_000.0), "bc": "0"}],
                      "P": [{"s": o.symbol, "pa": _f(step.filled), "ep": _f(o.price),
                             "bep": _f(o.price), "cr": "0", "up": "0", "mt": "cross",
                             "iw": "0", "ps": "BOTH"}]},
            })  # fmt: skip
        return events

    # -- faults -------------------------------------------------------------------------------
    async def _faults(self) -> None:
        now = time.monotonic()
        for kind, due in list(self._fault_next.items()):
            if now < due:
                continue
            self._fault_next[kind] = now + self.config.faults[kind]
            self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1
            if kind == "drop":
                for conn in list(self._conns.values()):
                    if conn.transport is not None:
                        conn.transport.abort()
            elif kind == "terminate" and self.market is BinanceVariant.SPOT:
                for conn in self._listeners():
                    await self._send(conn, {"e": "eventStreamTerminated", "E": _now_ms()})
                    conn.subscription = None
            elif kind == "listen-key-expire" and self.listen_key is not None:
                self.listen_key_expires = 0.0

    async def _expire_listen_key(self) -> None:
        if self.listen_key is None or time.monotonic() < self.listen_key_expires:
            return
        expired, self.listen_key = self.listen_key, None
        for conn in [c for c in self._conns.values() if c.listen_key == expired]:
            await conn.ws.send_bytes(msgspec.json.encode(
                {"e": "listenKeyExpired", "E": str(_now_ms()), "listenKey": expired}
            ))  # fmt: skip
            await conn.ws.close(code=1000, message=b"listen key expired")

    # -- spot WebSocket API -------------------------------------------------------------------
    def _open(self, request: web.Request, ws: web.WebSocketResponse, listen_key: str = "") -> _Conn:
        conn = _Conn(self._next_conn, ws, request.transport, listen_key)
        self._next_conn += 1
        self._conns[conn.conn_id] = conn
        return conn

    def _forget(self, conn: _Conn) -> None:
        conn.closed_ns = time.time_ns()
        if self._conns.pop(conn.conn_id, None) is not None:
            self._closed.append(conn)

    async def _ws_api(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=self.config.ping_interval_s, max_msg_size=1 << 16)
        await ws.prepare(request)
        conn = self._open(request, ws)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._api_request(conn, msg.data)
        finally:
            self._forget(conn)
        return ws

    async def _reply(self, conn: _Conn, rid: Any, status: int, **body: Any) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.send_bytes(msgspec.json.encode({"id": rid, "status": status, **body}))

    async def _fail(self, conn: _Conn, rid: Any, status: int, error: tuple[int, str]) -> None:
        code, msg = error
        self.auth_failed[str(code)] = self.auth_failed.get(str(code), 0) + 1
        await self._reply(conn, rid, status, error={"code": code, "msg": msg})

    async def _api_request(self, conn: _Conn, text: str) -> None:
        try:
            req = msgspec.json.decode(text)
        except msgspec.DecodeError:
            await self._reply(conn, None, 400, error={"code": -1102, "msg": "Invalid JSON."})
            return
        if not isinstance(req, dict):
            await self._reply(conn, None, 400, error={"code": -1102, "msg": "Invalid request."})
            return
        rid = req.get("id")
        method = req.get("method")
        params = req.get("params") or {}
        if method == "ping":
            await self._reply(conn, rid, 200, result={})
        elif method == "userDataStream.subscribe.signature" and isinstance(params, dict):
            problem = self._check_signed(params)
            if problem is not None:
                await self._fail(conn, rid, 401 if problem[0] in (-2014, -2015) else 400, problem)
                return
            self.auth_ok += 1
            conn.subscription = 0 if conn.subscription is None else conn.subscription + 1
            await self._reply(conn, rid, 200, result={"subscriptionId": conn.subscription})
        elif method == "session.logon" and isinstance(params, dict):
            problem = self._check_logon(params)
            if problem is not None:
                await self._fail(conn, rid, 401 if problem[0] in (-2014, -2015) else 400, problem)
                return
            conn.logged_on = True
            await self._reply(conn, rid, 200, result={"apiKey": self._key})
        elif method == "userDataStream.subscribe":
            if not conn.logged_on:
                await self._fail(conn, rid, 401, NOT_LOGGED_ON)
                return
            self.auth_ok += 1
            conn.subscription = 0 if conn.subscription is None else conn.subscription + 1
            await self._reply(conn, rid, 200, result={"subscriptionId": conn.subscription})
        elif method == "userDataStream.unsubscribe":
            conn.subscription = None
            await self._reply(conn, rid, 200, result={})
        else:
            unknown = {"code": -1100, "msg": f"Unknown method {method!r}."}
            await self._reply(conn, rid, 400, error=unknown)

    def _check_logon(self, params: dict[str, Any]) -> tuple[int, str] | None:
        """``session.logon``: Ed25519 keys only; key, timestamp window, then the signature."""
        if self._public_key is None:
            return ED25519_ONLY
        problem = self._check_key_and_time(params)
        if problem is not None:
            return problem
        signature = params.get("signature")
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
        try:
            self._public_key.verify(base64.b64decode(str(signature), validate=True),
                                    payload.encode())  # fmt: skip
        except (InvalidSignature, ValueError):
            return BAD_SIGNATURE
        return None

    def _check_key_and_time(self, params: dict[str, Any]) -> tuple[int, str] | None:
        key = params.get("apiKey")
        if not isinstance(key, str) or not key:
            return KEY_FORMAT
        if not hmac.compare_digest(key, self._key):
            return INVALID_KEY
        timestamp = params.get("timestamp")
        window = params.get("recvWindow", 5000)
        now = _now_ms()
        if (
            not isinstance(timestamp, int)
            or not isinstance(window, int | float)
            or not (timestamp < now + 1000 and now - timestamp <= window)
        ):
            return BAD_TIMESTAMP
        return None

    def _check_signed(self, params: dict[str, Any]) -> tuple[int, str] | None:
        """Binance's order of checks: key, timestamp window, signature."""
        if self._public_key is not None:
            return ED25519_SIGNATURE_PARAM
        problem = self._check_key_and_time(params)
        if problem is not None:
            return problem
        signature = params.get("signature")
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
        expected = hmac.new(self._secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not isinstance(signature, str) or not hmac.compare_digest(signature.lower(), expected):
            return BAD_SIGNATURE
        return None

    # -- USD-M listen keys ----------------------------------------------------------------------
    async def _listen_key(self, request: web.Request) -> web.Response:
        key = request.headers.get("X-MBX-APIKEY", "")
        problem = KEY_FORMAT if not key else None
        if problem is None and not hmac.compare_digest(key, self._key):
            problem = INVALID_KEY
        if problem is not None:
            self.auth_failed[str(problem[0])] = self.auth_failed.get(str(problem[0]), 0) + 1
            return web.json_response({"code": problem[0], "msg": problem[1]}, status=401)
        ttl = self.config.listen_key_ttl_s
        if request.method == "POST":
            if self.listen_key is None:
                self.listen_key = secrets.token_urlsafe(48)[:64]
                self.listen_keys_created += 1
            self.auth_ok += 1
            self.listen_key_expires = time.monotonic() + ttl
            return web.json_response({"listenKey": self.listen_key})
        if self.listen_key is None:
            return web.json_response({"code": UNKNOWN_KEY[0], "msg": UNKNOWN_KEY[1]}, status=400)
        if request.method == "PUT":
            self.keepalives += 1
            self.listen_key_expires = time.monotonic() + ttl
            return web.json_response({"listenKey": self.listen_key})
        self.listen_key = None
        return web.json_response({})

    async def _listen_ws(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["listen_key"]
        if self.listen_key is None or key != self.listen_key:
            return web.json_response({"code": UNKNOWN_KEY[0], "msg": UNKNOWN_KEY[1]}, status=400)
        ws = web.WebSocketResponse(heartbeat=self.config.ping_interval_s, max_msg_size=1 << 16)
        await ws.prepare(request)
        conn = self._open(request, ws, key)
        try:
            async for _msg in ws:
                pass  # the listen-key stream takes no requests
        finally:
            self._forget(conn)
        return ws
