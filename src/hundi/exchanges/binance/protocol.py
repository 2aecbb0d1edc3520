"""The Binance venue protocol (spot and USD-M futures), sans-I/O.

At start the protocol fetches ``exchangeInfo`` once (after any due book snapshot, retried until
answered) and records an ``invalid_symbol`` event for each configured symbol Binance does not
list, does not trade, or (USD-M) lists as something other than the perpetual we name it as:
Binance accepts subscriptions to unknown streams and then sends nothing, silently.

Frames are combined-stream envelopes; the envelope is decoded with ``data`` left raw, the
stream name picks a prebuilt :class:`~hundi.exchanges.binance.routes.Route`, and that route's
typed decoder builds the record. Control frames (subscribe acks) are FILTERED; server errors,
malformed JSON, unknown streams/symbols/events raise :class:`RejectedFrame` with stable reasons.

Trade ids a ``gap`` event names on an ``aggTrade`` stream are fetched again over REST
``aggTrades`` in the background (:mod:`hundi.exchanges.binance.backfill`; option
``backfill_requests_per_gap``).

Options (``VenueConfig.options``, strings) are listed and checked in
:mod:`hundi.exchanges.binance.options`.

The ``orders`` and ``fills`` channels add one authenticated user-data connection (key
``userdata``), run by :mod:`hundi.exchanges.binance.userdata`; it covers every symbol of the
account, not just the configured ones.
"""

from __future__ import annotations

import logging
import random

from msgspec import Raw

from hundi.exchanges.base import (
    DECODE_ERRORS,
    BookState,
    FrameStatus,
    Opening,
    RecordSink,
    RejectedFrame,
    RestRequest,
    RestResponse,
    StreamSpec,
    VenueConfig,
    VenueProtocol,
    decode_rejection,
    is_utf8,
)
from hundi.exchanges.binance import streams
from hundi.exchanges.binance.backfill import KEY_PREFIX as BACKFILL_PREFIX
from hundi.exchanges.binance.backfill import TradeBackfill
from hundi.exchanges.binance.book import MS, OrderBook
from hundi.exchanges.binance.messages import (
    EVENT_HEAD_DECODER,
    EXCHANGE_INFO_DECODER,
    FRAME_DECODER,
    SHUTDOWN_DECODER,
    SNAPSHOT_DECODER,
    DepthSnapshotMsg,
    ExchangeInfoMsg,
    Frame,
    ListedSymbol,
    ShutdownMsg,
)
from hundi.exchanges.binance.options import BinanceOptions
from hundi.exchanges.binance.ratelimit import RestScheduler
from hundi.exchanges.binance.routes import ROUTE_TYPES, AggTradeRoute, DepthRoute, Route
from hundi.exchanges.binance.symbols import (
    KNOWN_QUOTE_ASSETS,
    Market,
    SymbolInfo,
    normalize,
    parse_market,
)
from hundi.exchanges.binance.userdata import (
    LISTEN_KEY,
    SPOT_WS_API,
    USERDATA_KEY,
    FuturesUserData,
    SpotUserData,
    UserDataStream,
)
from hundi.exchanges.credentials import Credentials
from hundi.exchanges.validity import check_levels, check_time
from hundi.records import Channel, Event, EventKind

PRIVATE_CHANNELS = frozenset((Channel.ORDERS, Channel.FILLS))

log = logging.getLogger("hundi.exchanges.binance")

EXCHANGE = "binance"

SHUTDOWN = "serverShutdown"
# REST key of the exchangeInfo request; lower-case letters, so never a (upper-case) native symbol.
EXCHANGE_INFO_KEY = "exchangeInfo"
TRADING = "TRADING"
PERPETUAL = "PERPETUAL"


def _plausible(snapshot: DepthSnapshotMsg, recv_ns: int) -> DepthSnapshotMsg:
    """The snapshot, if its levels and time are possible (:mod:`hundi.exchanges.validity`);
    raises :class:`RejectedFrame` otherwise."""
    check_levels("bid", snapshot.bids)
    check_levels("ask", snapshot.asks)
    if snapshot.event_time >= 0:
        check_time("event time", snapshot.event_time * MS, recv_ns)
    return snapshot


def _shutdown_msg(payload: Raw) -> ShutdownMsg | None:
    """The payload as a ``serverShutdown`` event, or None if it is not one."""
    try:
        msg = SHUTDOWN_DECODER.decode(payload)
    except DECODE_ERRORS:
        return None
    return msg if msg.e == SHUTDOWN else None


class BinanceProtocol(VenueProtocol):
    """See the module docstring. Build it with :func:`hundi.exchanges.binance.BinanceVenue`."""

    exchange = EXCHANGE

    def __init__(
        self,
        config: VenueConfig,
        rng: random.Random | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.market = market = parse_market(config.market)
        opts = BinanceOptions.parse(config.options, market)
        if not config.symbols:
            raise ValueError("no symbols configured")
        wanted = tuple(dict.fromkeys(config.channels))
        private = [c for c in wanted if c in PRIVATE_CHANNELS]
        channels = tuple(c for c in wanted if c not in PRIVATE_CHANNELS)
        if not private and not [c for c in channels if c is not Channel.EVENTS]:
            raise ValueError("no market-data channels configured")
        if private and credentials is None and config.authenticate:
            raise ValueError("the orders and fills channels need API credentials")

        quotes = KNOWN_QUOTE_ASSETS + opts.quote_assets
        by_native = {}
        for native in config.symbols:
            info = normalize(native, market, quotes, opts.symbol_map)
            by_native[info.native] = info
        infos = tuple(by_native.values())
        self._symbols: dict[str, SymbolInfo] = by_native
        self._stream_symbols = frozenset(i.stream for i in infos)

        self.depth_limit = opts.depth_limit
        self.depth_weight = streams.depth_weight(market, opts.depth_limit)
        ws_base = config.endpoint or (streams.SPOT_WS if market is Market.SPOT else streams.USDM_WS)
        self.rest_base = config.rest_endpoint or (
            streams.SPOT_REST if market is Market.SPOT else streams.USDM_REST
        )
        plans = streams.plan_streams(
            market,
            infos,
            channels,
            trade_stream=opts.trade_stream,
            kline_interval=opts.kline_interval,
            split=opts.usdm_split,
        )
        self._specs, owner = streams.build_connections(
            market,
            plans,
            ws_base,
            per_connection=opts.max_streams_per_connection,
            subscribe_batch=opts.subscribe_batch,
        )

        self._books: dict[str, OrderBook] = {}
        self._book_conn: dict[str, str] = {}
        self._routes: dict[str, Route] = {}
        for plan in plans:
            info = plan.symbol
            route: Route
            if plan.kind == "depth":
                book = OrderBook(
                    exchange=EXCHANGE,
                    symbol=info.normalized,
                    native=info.native,
                    usdm=market is Market.USDM,
                    max_buffer=opts.book_buffer,
                )
                self._books[info.native] = book
                self._book_conn[info.native] = owner[plan.name]
                route = DepthRoute(EXCHANGE, info.normalized, info.native, book)
            else:
                route = ROUTE_TYPES[plan.kind](EXCHANGE, info.normalized, info.native)
            self._routes[plan.name] = route

        self._scheduler = RestScheduler(
            weight_per_minute=opts.rest_weight_per_minute,
            min_interval_ns=opts.rest_min_interval_ms * MS,
            rng=rng if rng is not None else random.Random(opts.seed),
        )
        # missed aggregate trades fetched again over REST (option backfill_requests_per_gap)
        self.backfill = TradeBackfill(
            market, self.rest_base, self._scheduler, opts.backfill_requests_per_gap
        )
        if opts.backfill_requests_per_gap > 0:
            for route in self._routes.values():
                if type(route) is AggTradeRoute:
                    route.backfill = self.backfill.add(route)
        self._wanting: dict[str, None] = {}  # natives whose book wants a snapshot, in order
        self._info_url = streams.exchange_info_url(market, self.rest_base)
        self.info_weight = streams.exchange_info_weight(market)
        self._info_wanted = True  # exchangeInfo not yet answered and not in flight
        self.invalid_symbols: list[str] = []  # natives exchangeInfo says we cannot collect
        self._reconnects: list[str] = []
        self._now_ns = 0
        self._quotes = quotes
        self._symbol_map = opts.symbol_map
        self._account_symbols: dict[str, str] = {}
        self.userdata: UserDataStream | None = None
        if private:
            retry = opts.auth_retry
            if market is Market.SPOT:
                self.userdata = SpotUserData(
                    credentials,
                    self._account_symbol,
                    retry,
                    opts.private_endpoint or config.endpoint or SPOT_WS_API,
                    opts.recv_window_ms,
                )
            else:
                self.userdata = FuturesUserData(
                    credentials,
                    self._account_symbol,
                    retry,
                    opts.private_endpoint or ws_base,
                    self.rest_base,
                    opts.usdm_split,
                    opts.listen_key_keepalive_s,
                )
            self._specs.append(self.userdata.spec)

    # ------------------------------------------------------------------ connections
    def connections(self) -> list[StreamSpec]:
        return list(self._specs)

    def normalize_symbol(self, native: str) -> str:
        info = self._symbols.get(native.upper())
        return info.normalized if info is not None else native

    def _account_symbol(self, native: str) -> str:
        """Account events name any symbol of the account: normalize it once, keep it."""
        known = self._account_symbols.get(native)
        if known is None:
            info = self._symbols.get(native)
            if info is not None:
                known = info.normalized
            else:
                try:
                    info = normalize(native, self.market, self._quotes, self._symbol_map)
                    known = info.normalized
                except ValueError:
                    known = native  # an unknown quote asset: keep the native name
            self._account_symbols[native] = known
        return known

    def opening(self, spec: StreamSpec, now_ns: int) -> Opening | None:
        if spec.key == USERDATA_KEY and self.userdata is not None:
            return self.userdata.opening(now_ns)
        return Opening(spec.url, spec.subscribe)

    def redact(self, conn_key: str, data: bytes) -> bytes:
        if conn_key == USERDATA_KEY and self.userdata is not None:
            return self.userdata.redact(data)
        return data

    def on_open(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        """A fresh connection starts a fresh diff sequence: books on it start over."""
        if conn_key == USERDATA_KEY and self.userdata is not None:
            self.userdata.on_open(now_ns, out)
            return
        self._disconnect_books(conn_key, now_ns, out)

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        if conn_key == USERDATA_KEY and self.userdata is not None:
            self.userdata.on_close(now_ns, out)
            return
        self._disconnect_books(conn_key, now_ns, out)

    def _disconnect_books(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self._now_ns = max(self._now_ns, now_ns)
        for native, key in self._book_conn.items():
            if key == conn_key:
                self._books[native].disconnect(now_ns, out)
                self._wanting.pop(native, None)

    def take_reconnects(self) -> list[str]:
        taken, self._reconnects = self._reconnects, []
        if self.userdata is not None and self.userdata.take_reconnect():
            taken.append(USERDATA_KEY)
        return taken

    # ------------------------------------------------------------------ frames
    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        if conn_key == USERDATA_KEY and self.userdata is not None:
            return self.userdata.receive(data, recv_ns, out)
        try:
            frame = FRAME_DECODER.decode(data)
        except DECODE_ERRORS as e:
            raise decode_rejection(data, e) from None
        stream = frame.stream
        if stream is not None:
            route = self._routes.get(stream)
            payload = frame.data
            if not payload:
                raise RejectedFrame("invalid_message", f"stream {stream!r} frame without data")
            if route is None:
                if (shutdown := _shutdown_msg(payload)) is not None:
                    return self._shutdown(conn_key, shutdown, recv_ns, out)
                symbol = stream.partition("@")[0]
                if symbol not in self._stream_symbols:
                    raise RejectedFrame("unknown_symbol", stream)
                raise RejectedFrame("unknown_stream", stream)
            try:
                route.handle(payload, recv_ns, out)
            except DECODE_ERRORS as e:  # includes ValidationError
                return self._misfit(conn_key, route, payload, recv_ns, out, e)
            if type(route) is DepthRoute:
                book = route.book
                if book.needs_request:
                    self._wanting[route.native] = None
                    self._now_ns = max(self._now_ns, recv_ns)
            return FrameStatus.PROCESSED
        return self._control(conn_key, frame, data, recv_ns, out)

    def _misfit(
        self,
        conn_key: str,
        route: Route,
        payload: Raw,
        recv_ns: int,
        out: RecordSink,
        error: Exception,
    ) -> FrameStatus:
        """A payload that did not decode as its stream's type: say why, precisely."""
        if isinstance(error, RecursionError) or not is_utf8(payload):
            raise decode_rejection(payload, error) from None
        if (shutdown := _shutdown_msg(payload)) is not None:
            return self._shutdown(conn_key, shutdown, recv_ns, out)
        try:
            head = EVENT_HEAD_DECODER.decode(payload)
        except DECODE_ERRORS:
            raise RejectedFrame("invalid_message", str(error)) from None
        if head.e is not None and head.e != route.EVENT_TYPE:
            raise RejectedFrame("unknown_event", f"{head.e!r} on a {route.EVENT_TYPE} stream")
        raise RejectedFrame("invalid_message", str(error))

    def _control(
        self, conn_key: str, frame: Frame, data: bytes, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        """Frames without a stream: acks, errors, bare events."""
        if frame.error or frame.code is not None:
            detail = data.decode("utf-8", "replace")[:300]
            raise RejectedFrame("server_error", detail)
        if frame.result:
            return FrameStatus.FILTERED  # subscribe / unsubscribe ack
        if frame.e == SHUTDOWN or frame.event:  # bare, or in the WebSocket-API wrapper
            shutdown = _shutdown_msg(Raw(data) if frame.e == SHUTDOWN else frame.event)
            if shutdown is not None:
                return self._shutdown(conn_key, shutdown, recv_ns, out)
            if frame.e == SHUTDOWN:
                raise RejectedFrame("invalid_message", "serverShutdown with a bad event time")
        if frame.e is not None:
            raise RejectedFrame("unknown_event", frame.e)
        raise RejectedFrame("invalid_message", "neither stream data, ack, error nor event")

    def _shutdown(
        self, conn_key: str, msg: ShutdownMsg, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        """The server will drop this connection soon: reconnect now, while data still flows."""
        event_ms = msg.event_time
        out.events.append(Event(
            exchange=EXCHANGE, symbol="", native_symbol="",
            ts=event_ms * MS if event_ms >= 0 else recv_ns, recv_ts=recv_ns,
            kind=EventKind.SHUTDOWN.value, channel="", expected=-1, received=-1,
            detail=f"serverShutdown on {conn_key}",
        ))  # fmt: skip
        if conn_key not in self._reconnects:
            self._reconnects.append(conn_key)
        return FrameStatus.PROCESSED

    # ------------------------------------------------------------------ REST snapshots
    def due_requests(self, now_ns: int) -> list[RestRequest]:
        self._now_ns = max(self._now_ns, now_ns)
        requests = []
        scheduler = self._scheduler
        for native in list(self._wanting):
            book = self._books[native]
            if not book.needs_request:
                del self._wanting[native]
                continue
            if not scheduler.may_send(native, self.depth_weight, now_ns):
                continue
            scheduler.sent(native, self.depth_weight, now_ns)
            book.wants_snapshot = False
            del self._wanting[native]
            requests.append(RestRequest(
                key=native,
                url=streams.depth_url(self.market, self.rest_base, native, self.depth_limit),
                weight=self.depth_weight,
            ))  # fmt: skip
        # A side request after the books: it never makes a book wait (see the scheduler).
        info_weight = self.info_weight
        if self._info_wanted and scheduler.may_send(
            EXCHANGE_INFO_KEY, info_weight, now_ns, side=True
        ):
            scheduler.sent(EXCHANGE_INFO_KEY, info_weight, now_ns, side=True)
            self._info_wanted = False
            requests.append(
                RestRequest(key=EXCHANGE_INFO_KEY, url=self._info_url, weight=info_weight)
            )
        if self.backfill.symbols:
            requests += self.backfill.due_requests(now_ns)
        if self.userdata is not None:
            requests += self.userdata.due_requests(now_ns)
        return requests

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        self._now_ns = max(self._now_ns, recv_ns)
        native = request.key
        if native == LISTEN_KEY and self.userdata is not None:
            self.userdata.receive_response(request, response, recv_ns, out)
            return
        if native == EXCHANGE_INFO_KEY:
            self._exchange_info(response, recv_ns, out)
            return
        if native.startswith(BACKFILL_PREFIX):
            self.backfill.receive_response(request, response, recv_ns, out)
            return
        book = self._books.get(native)
        if book is None:
            return
        snapshot: DepthSnapshotMsg | None = None
        status = response.status
        if 200 <= status < 300:
            try:
                snapshot = _plausible(SNAPSHOT_DECODER.decode(response.body), recv_ns)
            except DECODE_ERRORS:
                status = 599  # unusable body: retry like a transport failure
            except RejectedFrame as e:
                log.warning("%s depth snapshot refused (%s); refetching", native, e)
                status = 599
        self._scheduler.completed(native, status, response.headers, recv_ns)
        if snapshot is not None:
            book.on_snapshot(snapshot, recv_ns, out)
        else:
            book.snapshot_failed()
        if book.needs_request:
            self._wanting[native] = None

    def _exchange_info(self, response: RestResponse, recv_ns: int, out: RecordSink) -> None:
        """Check every configured symbol against the listing; unusable answers are retried."""
        info: ExchangeInfoMsg | None = None
        status = response.status
        if 200 <= status < 300:
            try:
                info = EXCHANGE_INFO_DECODER.decode(response.body)
            except DECODE_ERRORS:
                status = 599  # unusable body: retry like a transport failure
        self._scheduler.completed(EXCHANGE_INFO_KEY, status, response.headers, recv_ns, side=True)
        if info is None:
            self._info_wanted = True
            return
        listed = {s.symbol: s for s in info.symbols}
        for native, symbol in self._symbols.items():
            problem = self._listing_problem(symbol, listed.get(native))
            if problem is None:
                continue
            self.invalid_symbols.append(native)
            out.events.append(Event(
                exchange=EXCHANGE, symbol=symbol.normalized, native_symbol=native,
                ts=recv_ns, recv_ts=recv_ns, kind=EventKind.INVALID_SYMBOL.value, channel="",
                expected=-1, received=-1, detail=problem,
            ))  # fmt: skip

    def _listing_problem(self, symbol: SymbolInfo, listed: ListedSymbol | None) -> str | None:
        """Why ``symbol`` cannot be collected as configured, or None if it can."""
        venue = f"{EXCHANGE.upper()} {self.market.value}"
        native = symbol.native
        if listed is None:
            return f"{venue} does not list {native} (exchangeInfo)"
        pair = f"{native} ({listed.base}/{listed.quote})"
        if listed.status != TRADING:
            return f"{venue} lists {pair} with status {listed.status}, not {TRADING} (exchangeInfo)"
        if (
            self.market is Market.USDM
            and symbol.normalized.endswith("-PERP")
            and listed.contract_type != PERPETUAL
        ):
            return (
                f"{venue} lists {pair} as {listed.contract_type or 'no contract type'}, not "
                f"{PERPETUAL}, yet it is collected as {symbol.normalized} (exchangeInfo)"
            )
        return None

    def next_wakeup_ns(self) -> int | None:
        scheduler = self._scheduler
        times = [
            scheduler.earliest_ns(native, self.depth_weight, self._now_ns)
            for native in self._wanting
            if native not in scheduler.in_flight
        ]
        if self._info_wanted:
            times.append(
                scheduler.earliest_ns(EXCHANGE_INFO_KEY, self.info_weight, self._now_ns, side=True)
            )
        if self.backfill.symbols:
            times += self.backfill.next_wakeup_ns(self._now_ns)
        if self.userdata is not None and (wake := self.userdata.next_wakeup_ns()) is not None:
            times.append(wake)
        return min(times) if times else None

    # ------------------------------------------------------------------ status
    def recover(self, gap: Event, now_ns: int, out: RecordSink) -> bool:
        """A trades gap of one of our symbols (e.g. between two runs) joins that symbol's
        REST backfill queue, like a gap the stream showed."""
        if (
            gap.kind != EventKind.GAP.value
            or gap.channel != Channel.TRADES.value
            or gap.expected < 0
            or gap.received <= gap.expected
        ):
            return False
        for symbol in self.backfill.symbols.values():
            if symbol.exchange == gap.exchange and symbol.symbol == gap.symbol:
                self._now_ns = max(self._now_ns, now_ns)
                symbol.want(gap.expected, gap.received, now_ns, out)
                return True
        return False

    def books(self) -> list[BookState]:
        return [book.state() for book in self._books.values()]

    def book(self, native: str) -> OrderBook:
        """The live book state machine of one symbol (tests, status screens)."""
        return self._books[native]
