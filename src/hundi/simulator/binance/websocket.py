"""Binance's WebSocket endpoints: ``/ws``, ``/ws/<streams>``, ``/stream?streams=`` (and USD-M's
``/public`` and ``/market`` splits), live ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS``/
``SET_PROPERTY``/``GET_PROPERTY`` requests answered as Binance answers them, and Binance's
connection rules: server pings and the pong timeout, the incoming message limit, 1024 streams
per connection and the 24 h connection age.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from hundi.simulator.binance.config import SimulatorConfig
from hundi.simulator.binance.fanout import ClientConnection, FanOut
from hundi.simulator.binance.faults import FaultInjector
from hundi.simulator.binance.rules import MAX_STREAMS, BinanceVariant
from hundi.simulator.binance.streams import StreamName, allowed_on, parse_stream
from hundi.simulator.ground_truth import ConnectionRecord
from hundi.simulator.wire import OP_PING, OP_PONG, ws_frame

HOUSEKEEPING_S = 0.05
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
SPLIT_PREFIXES = ("/public", "/market")  # USD-M's endpoint split

_encode = msgspec.json.encode
_decode = msgspec.json.decode


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class BinanceWebSocket:
    """The WebSocket side. ``on_stream`` is called for each newly routed stream (the feed
    starts producing it), ``on_subscribed`` after each subscription change (a replay starts)."""

    def __init__(
        self,
        config: SimulatorConfig,
        fanout: FanOut,
        injector: FaultInjector,
        on_stream: Callable[[StreamName], None] | None = None,
        on_subscribed: Callable[[ClientConnection], None] | None = None,
        flush_each_tick: bool = False,
    ) -> None:
        self.config = config
        self.variant: BinanceVariant = config.market
        self.fanout = fanout
        self.injector = injector
        self._on_stream = on_stream
        self._on_subscribed = on_subscribed
        self._flush_each_tick = flush_each_tick  # nothing else flushes a replay's batches
        self._next_conn_id = 1

    def install(self, app: web.Application, split: bool) -> None:
        """The endpoints, also under ``/public`` and ``/market`` when ``split``."""
        for prefix in ("", *SPLIT_PREFIXES) if split else ("",):
            app.router.add_get(f"{prefix}/stream", self._handler)
            app.router.add_get(f"{prefix}/ws", self._handler)
            app.router.add_get(f"{prefix}/ws/{{streams:.+}}", self._handler)

    # -- liveness ---------------------------------------------------------------------------
    async def housekeeping(self) -> None:
        """Pings, pong timeouts, the connection age limit and the connection faults."""
        interval = self.config.effective_ping_interval
        timeout = self.config.effective_pong_timeout
        max_age = self.config.max_connection_age
        fanout = self.fanout
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            now = time.monotonic()
            for conn in list(fanout.conns.values()):
                if conn.closing:
                    continue
                if conn.ping_sent and now - conn.ping_sent > timeout:
                    fanout.close(conn, "pong timeout", code=1008)
                    continue
                if now - conn.opened >= max_age:
                    fanout.close(conn, "connection age limit", code=1000)
                    continue
                if now - conn.last_ping >= interval:
                    conn.last_ping = now
                    if not conn.ping_sent:
                        conn.ping_sent = now
                    fanout.send_now(conn, ws_frame(str(_now_ms()).encode(), OP_PING))
            self.injector.connection_faults(now)
            if self._flush_each_tick:
                fanout.flush_all()

    # -- subscriptions ----------------------------------------------------------------------
    def _subscribe(self, conn: ClientConnection, names: list[str]) -> bool:
        """Add streams; ``False`` (and the connection is closed) past 1024 streams."""
        subs = self.fanout.subs
        for text in names:
            stream = parse_stream(text, self.variant)
            name = stream.name if stream is not None else text
            if name in conn.streams:
                continue
            if len(conn.streams) >= MAX_STREAMS[self.variant]:
                self.fanout.close(conn, "too many streams", code=1008)
                return False
            routable = stream is not None and allowed_on(conn.prefix, stream)
            conn.streams[name] = stream if routable else None
            conn.record.subscriptions.append(name)
            if stream is not None and routable:
                subs.setdefault(name, set()).add(conn)
                if self._on_stream is not None:
                    self._on_stream(stream)
        if self._on_subscribed is not None:
            self._on_subscribed(conn)
        return True

    def _unsubscribe(self, conn: ClientConnection, names: list[str]) -> None:
        for text in names:
            stream = parse_stream(text, self.variant)
            name = stream.name if stream is not None else text
            if conn.streams.pop(name, None) is not None or name in self.fanout.subs:
                self.fanout.unsubscribe(conn, name)

    # -- connections ------------------------------------------------------------------------
    async def _handler(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        prefix = ""
        for candidate in SPLIT_PREFIXES:
            if path.startswith(candidate + "/"):
                prefix = candidate
        rest_of_path = path[len(prefix) :]
        combined = rest_of_path.startswith("/stream")
        names: list[str] = []
        if combined:
            names = [s for s in request.query.get("streams", "").split("/") if s]
        elif rest_of_path.startswith("/ws/"):
            names = [s for s in rest_of_path[4:].split("/") if s]
        if len(names) > MAX_STREAMS[self.variant]:
            return web.json_response({"code": -1121, "msg": "Too many streams."}, status=400)
        ws = web.WebSocketResponse(
            autoping=False, compress=False, timeout=2.0, max_msg_size=1 << 16
        )
        await ws.prepare(request)
        transport = request.transport
        if transport is None:
            return ws
        remote = str(request.remote or "")
        record = ConnectionRecord(
            self._next_conn_id, str(request.rel_url), remote, self.config.stats_id_ranges
        )
        self._next_conn_id += 1
        conn = ClientConnection(ws, transport, record, combined, prefix, self.injector.max_unsent)
        self.fanout.conns[record.conn_id] = conn
        try:
            if names:
                self._subscribe(conn, names)
            await self._receive_loop(conn)
        finally:
            self.fanout.forget(conn)
        return ws

    async def _receive_loop(self, conn: ClientConnection) -> None:
        limit = self.config.effective_incoming_limit
        async for msg in conn.ws:
            now = time.monotonic()
            incoming = conn.incoming
            incoming.append(now)
            while incoming and now - incoming[0] > 1.0:
                incoming.popleft()
            if len(incoming) > limit:
                self.fanout.close(conn, "too many messages", code=1008)
                break
            if msg.type is WSMsgType.PONG:
                conn.ping_sent = 0.0
            elif msg.type is WSMsgType.PING:
                self.fanout.send_now(conn, ws_frame(bytes(msg.data), OP_PONG))
            elif msg.type is WSMsgType.TEXT:
                self._request(conn, str(msg.data))
            elif msg.type is WSMsgType.BINARY:
                self._request(conn, bytes(msg.data).decode("utf-8", "replace"))

    # -- requests ---------------------------------------------------------------------------
    def _reply(self, conn: ClientConnection, body: dict[str, Any]) -> None:
        self.fanout.send_now(conn, ws_frame(_encode(body)))

    def _error(self, conn: ClientConnection, code: int, msg: str, rid: Any = None) -> None:
        body: dict[str, Any] = {"error": {"code": code, "msg": msg}}
        if rid is not None:
            body["id"] = rid
        self._reply(conn, body)

    def _request(self, conn: ClientConnection, text: str) -> None:
        """A live-subscription request, answered the way Binance answers it."""
        try:
            req = _decode(text)
        except msgspec.DecodeError:
            self._error(conn, 3, "Invalid JSON: expected value at line 1 column 1")
            return
        if not isinstance(req, dict):
            self._error(conn, 2, "Invalid request: expected an object")
            return
        rid = req.get("id")
        valid_id = (
            rid is None
            or (isinstance(rid, int) and not isinstance(rid, bool))
            or (isinstance(rid, str) and len(rid) <= 36 and rid.isalnum())
        )
        if not valid_id:
            self._error(conn, 2, "Invalid request: request ID must be an unsigned integer")
            return
        method = req.get("method")
        if method is None:
            self._error(conn, 2, "Invalid request: missing field `method`", rid)
            return
        if method not in METHODS:
            expected = ", ".join(f"`{m}`" for m in METHODS)
            self._error(
                conn,
                2,
                f"Invalid request: unknown variant `{method}`, expected one of {expected}",
                rid,
            )
            return
        params = req.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                self._error(conn, 2, "Invalid request: params must be an array of strings", rid)
                return
            if method == "SUBSCRIBE":
                if not self._subscribe(conn, params):
                    return
            else:
                self._unsubscribe(conn, params)
            self._reply(conn, {"result": None, "id": rid})
        elif method == "LIST_SUBSCRIPTIONS":
            self._reply(conn, {"result": list(conn.streams), "id": rid})
        else:
            if not isinstance(params, list) or not params or not isinstance(params[0], str):
                self._error(conn, 2, "Invalid request: property name must be a string", rid)
                return
            if params[0] != "combined":
                self._error(conn, 0, "Unknown property", rid)
                return
            if method == "GET_PROPERTY":
                self._reply(conn, {"result": conn.combined, "id": rid})
                return
            if len(params) != 2 or not isinstance(params[1], bool):
                self._error(conn, 1, "Invalid value type: expected Boolean", rid)
                return
            conn.combined = params[1]
            self._reply(conn, {"result": None, "id": rid})
