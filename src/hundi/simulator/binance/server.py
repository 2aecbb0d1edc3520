"""The Binance simulator: spot or USD-M WebSocket streams and REST on one aiohttp port.

One task drives the synthetic market (or the replay) and fans frames out to connections; each
connection buffers its frames in a bounded list that is written to the socket in one
``transport.write`` per batch. The ground truth of what was written is kept per connection and
stream (:mod:`hundi.simulator.ground_truth`) and served at ``GET /sim/stats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from hundi.simulator.binance.frames import AggRow, FrameEncoder, server_shutdown
from hundi.simulator.binance.market import Kline, SymbolMarket, SymbolSpec
from hundi.simulator.binance.private import BinancePrivate
from hundi.simulator.binance.replay import ReplayData, ReplayFrame
from hundi.simulator.binance.streams import (
    DEFAULT_DEPTH_MS,
    StreamName,
    allowed_on,
    parse_stream,
)
from hundi.simulator.config import (
    MAX_STREAMS_PER_CONNECTION,
    FaultKind,
    Market,
    SimulatorConfig,
)
from hundi.simulator.ground_truth import ConnectionRecord, FaultLog
from hundi.simulator.site import SimulatorSite
from hundi.simulator.wire import OP_PING, OP_PONG, ws_frame

Tag = tuple[str, int, int]  # (stream, first id, last id); -1 ids for frames without ids

WARMUP_STEPS = 500  # market actions before serving, so a pre-warm-up book is provably stale
MAX_BATCH_STEPS = 500  # market actions between two flushes when running flat out
HOUSEKEEPING_S = 0.05
KLINE_PUSH_MS = {"1s": 1000}  # every other interval pushes every 2 s
TICKER_PUSH_MS = 1000
DEFAULT_SLOW_READER_BOUND = 256 * 1024
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY")

MISSING_SYMBOL = "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
BAD_LIMIT_CHARS = "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."
BAD_LIMIT = "Data sent for parameter 'limit' is not valid."
TOO_MANY_REQUESTS = (
    "Too many requests; please use the websocket for live updates to avoid polling the API."
)
UNNAMED_STREAM = "(no stream)"  # replayed frames that are not combined-stream envelopes

_encode = msgspec.json.encode
_decode = msgspec.json.decode


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ClientConnection:
    """One client WebSocket: its subscriptions, pending frames and liveness bookkeeping."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        record: ConnectionRecord,
        combined: bool,
        prefix: str,
        max_unsent: int,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.record = record
        self.combined = combined
        self.prefix = prefix  # "", "/public" or "/market" (USD-M endpoint split)
        self.streams: dict[str, StreamName | None] = {}  # in subscription order
        self.out: list[bytes] = []
        self.tags: list[Tag | None] = []
        self.out_bytes = 0
        self.max_unsent = max_unsent
        self.high_water = min(1 << 20, max_unsent // 4)
        self.closing = False
        self.opened = time.monotonic()
        self.ping_sent = 0.0  # monotonic time of the unanswered ping, 0 when none
        self.last_ping = self.opened
        self.incoming: deque[float] = deque()
        self.shutdown_notice_sent = False
        self.replay_task: asyncio.Task[None] | None = None

    @property
    def conn_id(self) -> int:
        return self.record.conn_id

    def push(self, frame: bytes, tag: Tag | None) -> None:
        self.out.append(frame)
        self.tags.append(tag)
        self.out_bytes += len(frame)

    def unsent(self) -> int:
        return self.out_bytes + self.transport.get_write_buffer_size()


class BinanceSimulator(SimulatorSite[SimulatorConfig]):
    """Binance over real sockets. ``async with BinanceSimulator(cfg) as sim: sim.ws_url ...``."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.market = config.market
        self.faults = FaultLog()
        self._conns: dict[int, ClientConnection] = {}
        self._closed_records: deque[ConnectionRecord] = deque(
            maxlen=config.stats_closed_connections
        )
        self._subs: dict[str, set[ClientConnection]] = {}
        self._next_conn_id = 1
        self._tasks: list[asyncio.Task[None]] = []
        self._close_tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._started_ns = 0
        self._started_mono = 0.0
        self.port = 0
        # market state
        self._rng = random.Random(config.seed)
        self._markets: dict[str, SymbolMarket] = {}
        self._encoders: dict[str, FrameEncoder] = {}
        self._symbol_list: list[str] = []
        self._depth_names: dict[tuple[str, int], list[str]] = {}
        self._depth_speeds: dict[int, float] = {}  # speed ms -> next flush (monotonic)
        self._published: dict[str, tuple[int, dict[int, int], dict[int, int]]] = {}
        self._pre_warmup: dict[str, tuple[int, dict[int, int], dict[int, int]]] = {}
        self._kline_next: dict[str, float] = {}
        self._ticker_next = 0.0
        self._last_payload: dict[str, tuple[bytes, int, int]] = {}
        self._hold_armed: set[str] = set()
        self._held: dict[str, tuple[bytes, int, int]] = {}
        self._gap_armed: set[tuple[str, int]] = set()
        self._trade_gap_armed: set[str] = set()  # symbols whose next aggTrade frame is skipped
        # the newest aggTrades per symbol, as streamed, for REST ``aggTrades``
        self._agg_history: dict[str, deque[AggRow]] = {}
        self._fault_round = 0
        self._fault_next: dict[FaultKind, float] = {}
        self.generated = 0
        self.steps = 0
        self.frames_sent = 0
        self.bytes_sent = 0
        # REST
        self._weights: deque[tuple[float, int]] = deque()
        self._depth_calls = 0
        self._stale_served: set[str] = set()
        self.rest_requests = 0
        # replay
        self._replay: ReplayData | None = None
        if config.replay:
            self._replay = ReplayData.load(config.replay)
        slow = config.fault(FaultKind.SLOW_READER)
        self._max_unsent = config.max_send_buffer
        if slow is not None:
            self._max_unsent = int(slow.param) if slow.param else DEFAULT_SLOW_READER_BOUND
        self._flat_out = config.rate == 0 or slow is not None
        # private endpoints (user-data streams), set before start() when simulated
        self.private: BinancePrivate | None = None

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        self._started_ns = time.time_ns()
        self._started_mono = time.monotonic()
        if self._replay is None:
            self._build_market()
        app = web.Application()
        app.router.add_get("/sim/stats", self._rest_stats)
        # a replay serves whatever was captured, spot or USD-M, so it answers on both
        replaying = self._replay is not None
        usdm = self.market is Market.USDM
        rest_roots = ["/fapi/v1", "/api/v3"] if replaying else ["/fapi/v1" if usdm else "/api/v3"]
        for rest in rest_roots:
            app.router.add_get(f"{rest}/depth", self._rest_depth)
            app.router.add_get(f"{rest}/exchangeInfo", self._rest_exchange_info)
            app.router.add_get(f"{rest}/aggTrades", self._rest_agg_trades)
            app.router.add_get(f"{rest}/ping", self._rest_ping)
            app.router.add_get(f"{rest}/time", self._rest_time)
        prefixes = [""] + (["/public", "/market"] if usdm or replaying else [])
        for prefix in prefixes:
            app.router.add_get(f"{prefix}/stream", self._ws_handler)
            app.router.add_get(f"{prefix}/ws", self._ws_handler)
            app.router.add_get(f"{prefix}/ws/{{streams:.+}}", self._ws_handler)
        if self.private is not None:
            self.private.install(app)
        await self._listen(app)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._housekeeping()))
        if self._replay is None:
            self._tasks.append(loop.create_task(self._run_market()))
        if self.private is not None:
            self._tasks.append(loop.create_task(self.private.run()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.private is not None:
            await self.private.close()
        for conn in list(self._conns.values()):
            if conn.replay_task is not None:
                conn.replay_task.cancel()
            self._close(conn, "simulator stopped", code=1001)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._close_tasks:
            await asyncio.wait(list(self._close_tasks), timeout=2)
        await self._unlisten()

    # -- synthetic market -------------------------------------------------------------------
    def _build_market(self) -> None:
        now_ms = _now_ms()
        for symbol in self.config.symbols:
            spec = SymbolSpec.derive(symbol, random.Random(f"{self.config.seed}:{symbol}:spec"))
            market = SymbolMarket(spec, self.config.seed, now_ms)
            self._pre_warmup[symbol] = market.snapshot()
            for _ in range(WARMUP_STEPS):
                market.step()
            market.events.clear()
            s = market.stats
            s.open = s.high = s.low = s.last = market.best_ask
            s.volume = s.quote = s.trades = s.last_qty = 0
            s.first_id = s.last_id = -1
            self._markets[symbol] = market
            self._encoders[symbol] = FrameEncoder(spec, self.market)
            self._published[symbol] = market.snapshot()
            self._agg_history[symbol] = deque(maxlen=self.config.trade_history)
        self._symbol_list = list(self._markets)
        self._ensure_depth_speed(self.config.depth_interval_ms)

    def _ensure_depth_speed(self, speed_ms: int) -> None:
        if speed_ms in self._depth_speeds:
            return
        self._depth_speeds[speed_ms] = time.monotonic() + speed_ms / 1000
        default = DEFAULT_DEPTH_MS[self.market]
        for symbol, market in self._markets.items():
            market.add_channel(speed_ms)
            names = [f"{symbol.lower()}@depth@{speed_ms}ms"]
            if speed_ms == default:
                names.append(f"{symbol.lower()}@depth")
            self._depth_names[(symbol, speed_ms)] = names

    def _ensure_stream(self, stream: StreamName) -> None:
        market = self._markets.get(stream.symbol)
        if market is None:
            return
        if stream.kind == "depth":
            self._ensure_depth_speed(stream.depth_ms)
        elif stream.kind == "kline":
            market.kline(stream.interval)
            self._kline_next.setdefault(
                stream.interval, time.monotonic() + KLINE_PUSH_MS.get(stream.interval, 2000) / 1000
            )

    async def _run_market(self) -> None:
        rate = self.config.rate
        start = time.monotonic()
        symbols = self._symbol_list
        markets = self._markets
        pick = self._rng.randrange
        n = len(symbols)
        while True:
            now = time.monotonic()
            now_ms = _now_ms()
            for market in markets.values():
                market.now_ms = now_ms
                for k in market.roll_klines(now_ms):
                    self._emit_kline(market, k, now_ms, closed=True)
            budget = MAX_BATCH_STEPS
            if not self._flat_out:
                budget = min(MAX_BATCH_STEPS, int((now - start) * rate) - self.generated)
            steps_left = 4 * MAX_BATCH_STEPS  # actions that change no stream still take time
            while budget > 0 and steps_left > 0:
                steps_left -= 1
                market = markets[symbols[pick(n)]]
                market.step()
                if market.events:
                    produced = self._emit_events(market, now_ms)
                    self.generated += produced
                    budget -= produced
            self.steps += 4 * MAX_BATCH_STEPS - steps_left
            self._timers(now, now_ms)
            self._flush_all()
            if self._flat_out:
                await asyncio.sleep(0)
            else:
                deficit = self.generated - (time.monotonic() - start) * rate
                await asyncio.sleep(min(0.01, max(0.001, deficit / rate)))

    def _emit_events(self, market: SymbolMarket, now_ms: int) -> int:
        """Turn the market's new events into frames; returns how many messages they make."""
        enc = self._encoders[market.spec.symbol]
        lower = market.spec.symbol.lower()
        produced = 0
        spot = self.market is Market.SPOT
        symbol = market.spec.symbol
        history = self._agg_history[symbol]
        for event in market.events:
            if event[0] == "A":
                _, agg_id, price, qty, first, last, maker, fills = event
                history.append((agg_id, price, qty, first, last, now_ms, maker))
                stream = f"{lower}@aggTrade"
                if stream in self._subs and symbol in self._trade_gap_armed:
                    self._trade_gap_armed.discard(symbol)
                    self.faults.record(
                        "gap",
                        symbol=symbol,
                        stream=stream,
                        first_id=agg_id,
                        last_id=agg_id,
                        detail="aggTrade frame not sent",
                    )
                elif stream in self._subs:
                    payload = enc.agg_trade(now_ms, agg_id, price, qty, first, last, now_ms, maker)
                    self._publish(stream, payload, agg_id, agg_id)
                produced += 1
                if spot:
                    trade_stream = f"{lower}@trade"
                    if trade_stream in self._subs:
                        for tid, fill_qty in fills:
                            payload = enc.trade(now_ms, tid, price, fill_qty, now_ms, maker)
                            self._publish(trade_stream, payload, tid, tid)
                    produced += len(fills)
            else:
                _, uid, bid, bid_qty, ask, ask_qty = event
                stream = f"{lower}@bookTicker"
                if stream in self._subs:
                    payload = enc.book_ticker(now_ms, uid, bid, bid_qty, ask, ask_qty)
                    self._publish(stream, payload, -1, -1)
                produced += 1
        market.events.clear()
        return produced

    def _timers(self, now: float, now_ms: int) -> None:
        for speed, due in list(self._depth_speeds.items()):
            if now >= due:
                self._depth_speeds[speed] = max(due + speed / 1000, now)
                self._flush_depth(speed, now_ms)
        for interval, due in list(self._kline_next.items()):
            if now >= due:
                self._kline_next[interval] = max(
                    due + KLINE_PUSH_MS.get(interval, 2000) / 1000, now
                )
                for market in self._markets.values():
                    k = market.klines.get(interval)
                    if k is not None:
                        self._emit_kline(market, k, now_ms, closed=False)
        if now >= self._ticker_next:
            self._ticker_next = now + TICKER_PUSH_MS / 1000
            for symbol, market in self._markets.items():
                stream = f"{symbol.lower()}@ticker"
                if stream in self._subs:
                    payload = self._encoders[symbol].ticker(now_ms, market.stats, *market.top)
                    self._publish(stream, payload, -1, -1)
        self._market_faults(now)

    def _emit_kline(self, market: SymbolMarket, k: Kline, now_ms: int, closed: bool) -> None:
        stream = f"{market.spec.symbol.lower()}@kline_{k.interval}"
        if stream in self._subs:
            self._publish(
                stream, self._encoders[market.spec.symbol].kline(now_ms, k, closed), -1, -1
            )

    def _flush_depth(self, speed: int, now_ms: int) -> None:
        base = speed == self.config.depth_interval_ms
        for symbol, market in self._markets.items():
            channel = next(c for c in market.channels if c.interval_ms == speed)
            taken = channel.take()
            if taken is None:
                continue
            first, last, prev, bids, asks = taken
            if base:
                self.generated += 1
                _, pub_bids, pub_asks = self._published[symbol]
                for price, qty in bids.items():
                    if qty:
                        pub_bids[price] = qty
                    else:
                        pub_bids.pop(price, None)
                for price, qty in asks.items():
                    if qty:
                        pub_asks[price] = qty
                    else:
                        pub_asks.pop(price, None)
                self._published[symbol] = (last, pub_bids, pub_asks)
            names = self._depth_names[(symbol, speed)]
            if (symbol, speed) in self._gap_armed:
                self._gap_armed.discard((symbol, speed))
                self.faults.record(
                    "gap",
                    symbol=symbol,
                    stream=names[0],
                    first_id=first,
                    last_id=last,
                    detail="depth frame not sent",
                )
                continue
            if not any(name in self._subs for name in names):
                continue
            payload = self._encoders[symbol].depth_update(now_ms, first, last, prev, bids, asks)
            for name in names:
                self._publish(name, payload, first, last)

    # -- fan-out ----------------------------------------------------------------------------
    def _publish(self, stream: str, payload: bytes, first: int, last: int) -> None:
        subs = self._subs.get(stream)
        if not subs:
            return
        self._last_payload[stream] = (payload, first, last)
        if self._hold_armed and stream in self._hold_armed:
            self._hold_armed.discard(stream)
            self._held[stream] = (payload, first, last)
            return
        self._deliver(subs, stream, payload, first, last)
        if self._held:
            held = self._held.pop(stream, None)
            if held is not None:
                self._deliver(subs, stream, *held)
                self.faults.record(
                    "reorder",
                    symbol=stream.partition("@")[0].upper(),
                    stream=stream,
                    first_id=held[1],
                    last_id=first,
                    detail=f"{first} sent before {held[1]}",
                )

    @staticmethod
    def _deliver(
        subs: Iterable[ClientConnection], stream: str, payload: bytes, first: int, last: int
    ) -> None:
        tag = (stream, first, last)
        combined = raw = b""
        for conn in subs:
            if conn.combined:
                if not combined:
                    combined = ws_frame(
                        b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"
                    )
                conn.push(combined, tag)
            else:
                if not raw:
                    raw = ws_frame(payload)
                conn.push(raw, tag)

    def _flush_all(self) -> None:
        for conn in list(self._conns.values()):
            if conn.out:
                self._flush(conn)

    def _flush(self, conn: ClientConnection) -> None:
        if conn.closing:
            conn.out.clear()
            conn.tags.clear()
            conn.out_bytes = 0
            return
        transport = conn.transport
        if transport.is_closing():
            return
        buffered = transport.get_write_buffer_size()
        if buffered + conn.out_bytes > conn.max_unsent:
            self.faults.record(
                "slow-reader",
                conn=conn.conn_id,
                detail=f"{buffered + conn.out_bytes} unsent bytes > {conn.max_unsent}",
            )
            self._close(conn, "slow reader: send buffer full", code=1008, abrupt=True)
            return
        if buffered > conn.high_water:
            return  # wait for the socket to drain; frames stay pending (bounded above)
        data = b"".join(conn.out)
        transport.write(data)
        record = conn.record
        sent = 0
        for tag in conn.tags:
            if tag is not None:
                record.sent(*tag)
                sent += 1
        record.frames_sent += sent
        record.bytes_sent += len(data)
        self.frames_sent += sent
        self.bytes_sent += len(data)
        conn.out.clear()
        conn.tags.clear()
        conn.out_bytes = 0

    # -- faults -----------------------------------------------------------------------------
    def _due(self, kind: FaultKind, now: float) -> bool:
        """Whether a periodic fault fires now (every PARAM seconds from the start)."""
        spec = self.config.fault(kind)
        if spec is None or spec.param is None:
            return False
        due = self._fault_next.setdefault(kind, self._started_mono + spec.param)
        if now < due:
            return False
        self._fault_next[kind] = max(due + spec.param, now)
        return True

    def _market_faults(self, now: float) -> None:
        if not self._symbol_list:
            return
        if self._due(FaultKind.GAP, now):
            for key in self._depth_names:
                self._gap_armed.add(key)
            self._trade_gap_armed.update(self._symbol_list)
        symbol = self._symbol_list[self._fault_round % len(self._symbol_list)]
        lower = symbol.lower()
        base = f"{lower}@depth@{self.config.depth_interval_ms}ms"
        if self._due(FaultKind.DUPLICATE, now):
            self._fault_round += 1
            for stream in (f"{lower}@aggTrade", base):
                last = self._last_payload.get(stream)
                subs = self._subs.get(stream)
                if last is not None and subs:
                    self._deliver(subs, stream, *last)
                    self.faults.record(
                        "duplicate",
                        symbol=symbol,
                        stream=stream,
                        first_id=last[1],
                        last_id=last[2],
                        detail="frame sent again",
                    )
        if self._due(FaultKind.REORDER, now):
            self._fault_round += 1
            self._hold_armed.update((f"{lower}@aggTrade", base))

    def _connection_faults(self, now: float) -> None:
        if self._due(FaultKind.DISCONNECT, now):
            for conn in list(self._conns.values()):
                self.faults.record("disconnect", conn=conn.conn_id, detail="connection dropped")
                self._close(conn, "fault: disconnect", abrupt=True)
        if self._due(FaultKind.MALFORMED, now):
            for conn in list(self._conns.values()):
                frame = b'{"stream":"' + next(iter(conn.streams), "x").encode() + b'","data":{"e":"'
                conn.push(ws_frame(frame), None)
                self._flush(conn)
                self.faults.record("malformed", conn=conn.conn_id, detail=frame.decode())
        shutdown = self.config.fault(FaultKind.SHUTDOWN)
        if shutdown is not None and shutdown.param is not None:
            for conn in list(self._conns.values()):
                age = now - conn.opened
                if not conn.shutdown_notice_sent and age >= shutdown.param:
                    conn.shutdown_notice_sent = True
                    payload = server_shutdown(_now_ms())
                    if conn.combined:
                        payload = b'{"stream":"!serverShutdown","data":' + payload + b"}"
                    conn.push(ws_frame(payload), None)
                    self._flush(conn)
                    self.faults.record("shutdown", conn=conn.conn_id, detail="serverShutdown sent")
                elif conn.shutdown_notice_sent and age >= 2 * shutdown.param:
                    self._close(conn, "server shutdown", code=1001)

    # -- connections ------------------------------------------------------------------------
    async def _housekeeping(self) -> None:
        interval = self.config.effective_ping_interval
        timeout = self.config.effective_pong_timeout
        max_age = self.config.max_connection_age
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            now = time.monotonic()
            for conn in list(self._conns.values()):
                if conn.closing:
                    continue
                if conn.ping_sent and now - conn.ping_sent > timeout:
                    self._close(conn, "pong timeout", code=1008)
                    continue
                if now - conn.opened >= max_age:
                    self._close(conn, "connection age limit", code=1000)
                    continue
                if now - conn.last_ping >= interval:
                    conn.last_ping = now
                    if not conn.ping_sent:
                        conn.ping_sent = now
                    conn.push(ws_frame(str(_now_ms()).encode(), OP_PING), None)
                    self._flush(conn)
            self._connection_faults(now)
            if self._replay is not None:
                self._flush_all()

    def _close(
        self, conn: ClientConnection, reason: str, code: int = 1000, abrupt: bool = False
    ) -> None:
        if conn.closing:
            return
        conn.closing = True
        conn.record.close_reason = reason
        self._unsubscribe_all(conn)
        if conn.replay_task is not None:
            conn.replay_task.cancel()
        if abrupt:
            conn.transport.abort()
            return
        if conn.out:
            conn.closing = False
            self._flush(conn)
            conn.closing = True
        task = asyncio.get_running_loop().create_task(
            conn.ws.close(code=code, message=reason.encode()[:120])
        )
        self._close_tasks.add(task)
        task.add_done_callback(self._close_tasks.discard)

    def _unsubscribe_all(self, conn: ClientConnection) -> None:
        for name in conn.streams:
            subs = self._subs.get(name)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self._subs[name]

    def _subscribe(self, conn: ClientConnection, names: list[str]) -> bool:
        """Add streams; ``False`` (and the connection is closed) past 1024 streams."""
        for text in names:
            stream = parse_stream(text, self.market)
            name = stream.name if stream is not None else text
            if name in conn.streams:
                continue
            if len(conn.streams) >= MAX_STREAMS_PER_CONNECTION:
                self._close(conn, "too many streams", code=1008)
                return False
            routable = stream is not None and allowed_on(conn.prefix, stream)
            conn.streams[name] = stream if routable else None
            conn.record.subscriptions.append(name)
            if stream is not None and routable:
                self._subs.setdefault(name, set()).add(conn)
                if self._replay is None:
                    self._ensure_stream(stream)
        if self._replay is not None and conn.streams and conn.replay_task is None:
            conn.replay_task = asyncio.get_running_loop().create_task(self._play(conn))
        return True

    def _unsubscribe(self, conn: ClientConnection, names: list[str]) -> None:
        for text in names:
            stream = parse_stream(text, self.market)
            name = stream.name if stream is not None else text
            if conn.streams.pop(name, None) is not None or name in self._subs:
                subs = self._subs.get(name)
                if subs is not None:
                    subs.discard(conn)
                    if not subs:
                        del self._subs[name]

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        prefix = ""
        for candidate in ("/public", "/market"):
            if path.startswith(candidate + "/"):
                prefix = candidate
        rest_of_path = path[len(prefix) :]
        combined = rest_of_path.startswith("/stream")
        names: list[str] = []
        if combined:
            names = [s for s in request.query.get("streams", "").split("/") if s]
        elif rest_of_path.startswith("/ws/"):
            names = [s for s in rest_of_path[4:].split("/") if s]
        if len(names) > MAX_STREAMS_PER_CONNECTION:
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
        conn = ClientConnection(ws, transport, record, combined, prefix, self._max_unsent)
        self._conns[record.conn_id] = conn
        try:
            if names:
                self._subscribe(conn, names)
            await self._receive_loop(conn)
        finally:
            self._forget(conn)
        return ws

    def _forget(self, conn: ClientConnection) -> None:
        if not conn.closing:
            conn.closing = True
            conn.record.close_reason = conn.record.close_reason or "closed by client"
        self._unsubscribe_all(conn)
        if conn.replay_task is not None:
            conn.replay_task.cancel()
        conn.record.closed_ns = time.time_ns()
        if self._conns.pop(conn.conn_id, None) is not None:
            self._closed_records.append(conn.record)

    async def _receive_loop(self, conn: ClientConnection) -> None:
        limit = self.config.effective_incoming_limit
        async for msg in conn.ws:
            now = time.monotonic()
            incoming = conn.incoming
            incoming.append(now)
            while incoming and now - incoming[0] > 1.0:
                incoming.popleft()
            if len(incoming) > limit:
                self._close(conn, "too many messages", code=1008)
                break
            if msg.type is WSMsgType.PONG:
                conn.ping_sent = 0.0
            elif msg.type is WSMsgType.PING:
                conn.push(ws_frame(bytes(msg.data), OP_PONG), None)
                self._flush(conn)
            elif msg.type is WSMsgType.TEXT:
                self._request(conn, str(msg.data))
            elif msg.type is WSMsgType.BINARY:
                self._request(conn, bytes(msg.data).decode("utf-8", "replace"))

    def _reply(self, conn: ClientConnection, body: dict[str, Any]) -> None:
        conn.push(ws_frame(_encode(body)), None)
        self._flush(conn)

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

    # -- replay -----------------------------------------------------------------------------
    async def _play(self, conn: ClientConnection) -> None:
        """Send the captured frames to one connection, paced like the capture or flat out."""
        assert self._replay is not None
        frames = self._replay.frames
        if not frames:
            return
        original = self.config.speed == "original"
        t0 = frames[0].ts_ns
        start = time.monotonic()
        batch = 0
        for frame in frames:
            if conn.closing:
                return
            if original:
                wait = (frame.ts_ns - t0) / 1e9 - (time.monotonic() - start)
                if wait > 0:
                    self._flush(conn)
                    await asyncio.sleep(wait)
            self._push_replayed(conn, frame)
            batch += 1
            if batch >= MAX_BATCH_STEPS:
                batch = 0
                self._flush(conn)
                while not conn.closing and conn.unsent() > conn.high_water:
                    await asyncio.sleep(0.001)
                    self._flush(conn)
                await asyncio.sleep(0)
        self._flush(conn)
        self.faults.record("replay-done", conn=conn.conn_id, detail=f"{len(frames)} frames")

    def _push_replayed(self, conn: ClientConnection, frame: ReplayFrame) -> None:
        if frame.stream:
            if frame.stream not in conn.streams:
                return
            data = frame.data if conn.combined else frame.payload
            conn.push(ws_frame(data), (frame.stream, frame.first, frame.last))
        else:
            conn.push(ws_frame(frame.data), (UNNAMED_STREAM, -1, -1))

    # -- REST -------------------------------------------------------------------------------
    def _used_weight(self, add: int) -> int:
        now = time.monotonic()
        weights = self._weights
        while weights and now - weights[0][0] > 60:
            weights.popleft()
        weights.append((now, add))
        return sum(w for _, w in weights)

    def _rest(
        self,
        body: bytes | dict[str, Any],
        weight: int,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        self.rest_requests += 1
        used = self._used_weight(weight)
        all_headers = {"X-MBX-USED-WEIGHT-1M": str(used), "Content-Type": "application/json"}
        if used > self.config.effective_rest_weight and status == 200:
            status = 429
            body = {
                "code": -1003,
                "msg": "Too many requests; current limit of IP is "
                f"{self.config.effective_rest_weight} requests per minute.",
            }
            all_headers["Retry-After"] = "60"
        all_headers.update(headers or {})
        data = body if isinstance(body, bytes) else _encode(body)
        return web.Response(body=data, status=status, headers=all_headers)

    async def _rest_ping(self, request: web.Request) -> web.Response:
        return self._rest(b"{}", 1)

    async def _rest_time(self, request: web.Request) -> web.Response:
        return self._rest({"serverTime": _now_ms()}, 1)

    async def _rest_stats(self, request: web.Request) -> web.Response:
        return web.Response(body=_encode(self.stats()), content_type="application/json")

    def _depth_weight(self, limit: int) -> int:
        if self.market is Market.USDM:
            return {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10}.get(limit, 20)
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250

    async def _rest_depth(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        if not symbol:
            return self._rest(
                {"code": -1102, "msg": MISSING_SYMBOL},
                1,
                400,
            )
        futures = self.market is Market.USDM
        raw_limit = request.query.get("limit", "500" if futures else "100")
        if not raw_limit.isdigit():
            return self._rest(
                {"code": -1100, "msg": BAD_LIMIT_CHARS},
                1,
                400,
            )
        limit = int(raw_limit)
        if futures and limit not in (5, 10, 20, 50, 100, 500, 1000):
            return self._rest({"code": -1130, "msg": BAD_LIMIT}, 1, 400)
        limit = max(1, min(limit, 5000))
        weight = self._depth_weight(limit)
        self._depth_calls += 1
        rest_429 = self.config.fault(FaultKind.REST_429)
        if rest_429 is not None and rest_429.param and self._depth_calls <= rest_429.param:
            self.faults.record(
                "rest-429", symbol=symbol.upper(), detail=f"depth call {self._depth_calls}"
            )
            return self._rest(
                {"code": -1003, "msg": TOO_MANY_REQUESTS},
                weight,
                429,
                {"Retry-After": "1"},
            )
        if self._replay is not None:
            answer = self._replay.rest_answer(request.path, symbol)
            if answer is None:
                return self._rest({"code": -1121, "msg": "Invalid symbol."}, weight, 400)
            return self._rest(answer[1], weight, answer[0])
        upper = symbol.upper()
        if upper not in self._markets or symbol != upper:
            return self._rest({"code": -1121, "msg": "Invalid symbol."}, weight, 400)
        book = self._published[upper]
        stale = self.config.fault(FaultKind.STALE_SNAPSHOT) is not None
        if stale and upper not in self._stale_served:
            self._stale_served.add(upper)
            book = self._pre_warmup[upper]
            self.faults.record(
                "stale-snapshot",
                symbol=upper,
                first_id=book[0],
                last_id=self._published[upper][0],
                detail="snapshot predates the stream",
            )
        body = self._encoders[upper].depth_snapshot(book[0], book[1], book[2], limit, _now_ms())
        return self._rest(body, weight)

    async def _rest_agg_trades(self, request: web.Request) -> web.Response:
        """``aggTrades``: the newest ``trade_history`` aggTrades as streamed; older ids: ``[]``."""
        futures = self.market is Market.USDM
        weight = 20 if futures else 4
        symbol = request.query.get("symbol", "")
        if not symbol:
            return self._rest({"code": -1102, "msg": MISSING_SYMBOL}, weight, 400)
        raw_limit = request.query.get("limit", "500")
        raw_from = request.query.get("fromId")
        if not raw_limit.isdigit() or (raw_from is not None and not raw_from.isdigit()):
            return self._rest({"code": -1100, "msg": BAD_LIMIT_CHARS}, weight, 400)
        limit = max(1, min(int(raw_limit), 1000))
        if self._replay is not None:
            return self._rest(b"[]", weight)
        upper = symbol.upper()
        if upper not in self._markets or symbol != upper:
            return self._rest({"code": -1121, "msg": "Invalid symbol."}, weight, 400)
        history = self._agg_history[upper]
        if raw_from is None:
            start = max(0, len(history) - limit)
        elif not history or int(raw_from) < history[0][0]:
            start = len(history)  # older than what is kept: the venue no longer has them
        else:
            start = min(len(history), int(raw_from) - history[0][0])  # ids are contiguous
        rows = list(itertools.islice(history, start, start + limit))
        return self._rest(self._encoders[upper].agg_trades_rest(rows), weight)

    async def _rest_exchange_info(self, request: web.Request) -> web.Response:
        futures = self.market is Market.USDM
        weight = 1 if futures else 20
        if self._replay is not None:
            answer = self._replay.rest_answer(request.path, "")
            if answer is not None:
                return self._rest(answer[1], weight, answer[0])
        return self._rest(self._exchange_info(), weight)

    def _exchange_info(self) -> dict[str, Any]:
        futures = self.market is Market.USDM
        limit = self.config.effective_rest_weight
        symbols = []
        names = list(self._encoders) or (self._replay.symbols() if self._replay else [])
        for name in names:
            quote = next((q for q in QUOTES if name.endswith(q) and name != q), name[-4:])
            base = name[: -len(quote)]
            enc = self._encoders.get(name)
            pd, qd = (enc.pd, enc.qd) if enc is not None else (8, 8)
            filters = [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": _unit(pd),
                    "maxPrice": "1000000",
                    "tickSize": _unit(pd),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": _unit(qd),
                    "maxQty": "9000000",
                    "stepSize": _unit(qd),
                },
            ]
            if futures:
                symbols.append(
                    {
                        "symbol": name,
                        "pair": name,
                        "contractType": "PERPETUAL",
                        "status": "TRADING",
                        "baseAsset": base,
                        "quoteAsset": quote,
                        "marginAsset": quote,
                        "pricePrecision": pd,
                        "quantityPrecision": qd,
                        "filters": filters,
                    }
                )
            else:
                symbols.append(
                    {
                        "symbol": name,
                        "status": "TRADING",
                        "baseAsset": base,
                        "baseAssetPrecision": 8,
                        "quoteAsset": quote,
                        "quotePrecision": 8,
                        "quoteAssetPrecision": 8,
                        "isSpotTradingAllowed": True,
                        "filters": filters,
                        "permissions": ["SPOT"],
                    }
                )
        return {
            "timezone": "UTC",
            "serverTime": _now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": limit,
                },
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    # -- ground truth -----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Everything sent so far, per connection and stream (schema: package docstring)."""
        uptime = time.monotonic() - self._started_mono if self._started_mono else 0.0
        symbols = {}
        for symbol, market in self._markets.items():
            history = self._agg_history[symbol]
            symbols[symbol] = {
                "last_agg_id": market.agg_id,
                "oldest_kept_agg_id": history[0][0] if history else -1,
                "last_trade_id": market.trade_id,
                "update_id": market.update_id,
                "published_update_id": self._published[symbol][0],
                "best_bid": self._encoders[symbol].price(market.best_bid),
                "best_ask": self._encoders[symbol].price(market.best_ask),
            }
        connections = [r.to_json() for r in self._closed_records]
        connections += [c.record.to_json() for c in self._conns.values()]
        return {
            "market": self.market.value,
            "mode": "replay" if self._replay is not None else "synthetic",
            "seed": self.config.seed,
            "started_ns": self._started_ns,
            "uptime_s": uptime,
            "rate": self.config.rate,
            "steps": self.steps,
            "messages_generated": self.generated,
            "messages_per_s": self.generated / uptime if uptime else 0.0,
            "frames_sent": self.frames_sent,
            "bytes_sent": self.bytes_sent,
            "rest_requests": self.rest_requests,
            "open_connections": len(self._conns),
            "symbols": symbols,
            "connections": connections,
            "faults": self.faults.to_json(),
            "faults_total": self.faults.total,
            "replay": self._replay.summary() if self._replay is not None else None,
        }


def _unit(decimals: int) -> str:
    return "1" if decimals == 0 else f"0.{'0' * (decimals - 1)}1"
