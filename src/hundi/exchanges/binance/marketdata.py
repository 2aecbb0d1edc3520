"""The market-data half of the Binance venue (public streams and REST), sans-I/O.

At start it fetches ``exchangeInfo`` once (after any due book snapshot, retried until answered)
and records an ``invalid_symbol`` event for each configured symbol Binance does not list, does
not trade, or (futures) lists as something other than the perpetual we name it as: Binance
accepts subscriptions to unknown streams and then sends nothing, silently.

Frames are combined-stream envelopes; the envelope is decoded with ``data`` left raw, the
stream name picks a prebuilt :class:`~hundi.exchanges.binance.routes.Route`, and that route's
typed decoder builds the record. Control frames (subscribe acks) are FILTERED; server errors,
malformed JSON, unknown streams/symbols/events raise :class:`RejectedFrame` with stable reasons.

Its REST requests are tagged by :class:`~hundi.exchanges.base.RestPurpose` (book snapshots,
the listing, trade backfills), and answers are routed by that tag. Trade ids a ``gap`` event
names on an ``aggTrade`` stream are fetched again over REST ``aggTrades`` in the background
(:mod:`hundi.exchanges.binance.backfill`; option ``backfill_requests_per_gap``).

Everything that differs between markets comes from the market's row
(:class:`~hundi.exchanges.binance.markets.BinanceMarket`).
"""

from __future__ import annotations

import logging
import math
import random

from msgspec import Raw

from hundi.exchanges.base import (
    DECODE_ERRORS,
    BookStatus,
    FrameStatus,
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestRequest,
    RestResponse,
    StreamSpec,
    VenueProtocol,
    decode_rejection,
    is_utf8,
)
from hundi.exchanges.binance import streams
from hundi.exchanges.binance.backfill import TradeBackfill
from hundi.exchanges.binance.book import MS, OrderBook
from hundi.exchanges.binance.derivatives import (
    DerivativeState,
    ForceOrderRoute,
    InstrumentWatch,
    MarkPriceRoute,
    OpenInterestPoll,
    size_unit,
)
from hundi.exchanges.binance.fastpath import receive as FAST_RECEIVE
from hundi.exchanges.binance.markets import BinanceMarket
from hundi.exchanges.binance.messages import (
    EXCHANGE_INFO_DECODER,
    FRAME_DECODER,
    SHUTDOWN_DECODER,
    SNAPSHOT_DECODER,
    STREAM_EVENT_TYPE_DECODER,
    DepthSnapshotMsg,
    ExchangeInfoMsg,
    Frame,
    ListedSymbol,
    ShutdownMsg,
)
from hundi.exchanges.binance.options import BinanceOptions
from hundi.exchanges.binance.ratelimit import NS, RestScheduler
from hundi.exchanges.binance.routes import ROUTE_TYPES, AggTradeRoute, DepthRoute, Route
from hundi.exchanges.binance.symbols import SymbolInfo
from hundi.exchanges.validity import check_levels, check_time
from hundi.records import Channel, Event, EventKind

log = logging.getLogger("hundi.exchanges.binance")

EXCHANGE = "binance"

SHUTDOWN = "serverShutdown"
# REST key (name in logs, captures and the scheduler) of the exchangeInfo request.
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


def _open_interest_interval_s(market: BinanceMarket, opts: BinanceOptions, symbols: int) -> int:
    """Seconds between two open-interest polls of a symbol, within the weight budget: the polls
    of all ``symbols`` may take at most half of ``rest_weight_per_minute`` (the rest is the book
    snapshots'). The default interval stretches to fit (logged); a given one that does not fit
    is a ValueError, not a poll that silently falls behind."""
    interval_s = opts.open_interest_interval_s
    share = max(1, opts.rest_weight_per_minute // 2)
    least_s = math.ceil(symbols * market.open_interest_weight * 60 / share)
    if interval_s >= least_s:
        return interval_s
    if opts.open_interest_interval_given:
        raise ValueError(
            f"option open_interest_interval_s={interval_s}: polling the open interest of "
            f"{symbols} symbols that often takes "
            f"{math.ceil(symbols * market.open_interest_weight * 60 / interval_s)} REST weight a "
            f"minute, more than half of rest_weight_per_minute={opts.rest_weight_per_minute}; "
            f"give at least {least_s} (or 0: no polling)"
        )
    log.info(
        "open interest of %d symbols polled every %ds (not %ds) to stay within half of the REST "
        "weight budget (%d a minute)", symbols, least_s, interval_s, opts.rest_weight_per_minute,
    )  # fmt: skip
    return least_s


class MarketData(VenueProtocol):
    """See the module docstring. Built by :class:`~hundi.exchanges.binance.protocol.
    BinanceProtocol` from a checked configuration."""

    exchange = EXCHANGE

    def __init__(
        self,
        market: BinanceMarket,
        opts: BinanceOptions,
        symbols: dict[str, SymbolInfo],
        channels: tuple[Channel, ...],
        ws_base: str,
        rest_base: str,
        rng: random.Random | None,
    ) -> None:
        """``symbols``: the configured ones by native name; ``channels``: the public ones."""
        self.market = market
        infos = tuple(symbols.values())
        self._symbols = symbols
        self._stream_symbols = frozenset(i.stream for i in infos)

        self.depth_limit = opts.depth_limit
        self.depth_weight = market.depth_weight(opts.depth_limit)
        self.rest_base = rest_base
        plans = streams.plan_streams(
            market,
            infos,
            channels,
            trade_stream=opts.trade_stream,
            kline_interval=opts.kline_interval,
            split=opts.usdm_split,
            mark_price_stream=opts.mark_price_stream,
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
        # futures: the latest derivative-ticker fields per symbol (mark price + open interest)
        self._derivatives = {
            native: DerivativeState(market.inverse) for native in symbols if market.futures
        }
        for plan in plans:
            info = plan.symbol
            route: Route
            if plan.kind == "markPrice":
                state = self._derivatives[info.native]
                route = MarkPriceRoute(EXCHANGE, info.normalized, info.native, state)
            elif plan.kind == "forceOrder":
                route = ForceOrderRoute(EXCHANGE, info.normalized, info.native, size_unit(market))
            elif plan.kind == "depth":
                book = OrderBook(
                    exchange=EXCHANGE,
                    symbol=info.normalized,
                    native=info.native,
                    usdm=market.futures,  # the futures sync rules (``pu`` chaining)
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
            market, rest_base, self._scheduler, opts.backfill_requests_per_gap
        )
        if opts.backfill_requests_per_gap > 0:
            for route in self._routes.values():
                if type(route) is AggTradeRoute:
                    route.backfill = self.backfill.add(route)
        # derivative_ticker: open interest polled over REST (option open_interest_interval_s)
        self.open_interest: OpenInterestPoll | None = None
        if (
            market.futures
            and Channel.DERIVATIVE_TICKER in channels
            and opts.open_interest_interval_s > 0
        ):
            interval_s = _open_interest_interval_s(market, opts, len(symbols))
            self.open_interest = OpenInterestPoll(
                EXCHANGE, market, rest_base, self._scheduler, interval_s * NS
            )
            for native, info in symbols.items():
                self.open_interest.add(info, self._derivatives[native])
        # instruments: exchangeInfo rows at start and, re-polled, when they change
        self.instruments = InstrumentWatch(
            EXCHANGE, market, symbols, self._derivatives, Channel.INSTRUMENTS in channels
        )
        self._info_interval_ns = (
            opts.instruments_interval_s * NS if Channel.INSTRUMENTS in channels else 0
        )
        self._info_due_ns = -1  # the next exchangeInfo re-poll; -1: none planned
        self._info_checked = False  # symbols checked against the first listing
        self._wanting: dict[str, None] = {}  # natives whose book wants a snapshot, in order
        self._info_url = market.rest_url("exchangeInfo", rest_base)
        self.info_weight = market.exchange_info_weight
        self._info_wanted = True  # exchangeInfo not yet answered and not in flight
        self.invalid_symbols: list[str] = []  # natives exchangeInfo says we cannot collect
        self._reconnects: list[str] = []
        self._now_ns = 0

    # ------------------------------------------------------------------ connections
    def connections(self) -> list[StreamSpec]:
        return list(self._specs)

    def on_open(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        """A fresh connection starts a fresh diff sequence: books on it start over."""
        self._disconnect_books(conn_key, now_ns, out)

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self._disconnect_books(conn_key, now_ns, out)

    def _disconnect_books(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self._now_ns = max(self._now_ns, now_ns)
        for native, key in self._book_conn.items():
            if key == conn_key:
                self._books[native].disconnect(now_ns, out)
                self._wanting.pop(native, None)

    def take_reconnects(self) -> list[str]:
        taken, self._reconnects = self._reconnects, []
        return taken

    # ------------------------------------------------------------------ frames
    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        if FAST_RECEIVE is not None:  # most frames: one C call (see fastpath), else None
            status = FAST_RECEIVE(data, recv_ns, self._routes, out)
            if status is not None:
                return status
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
            event_type = STREAM_EVENT_TYPE_DECODER.decode(payload).e
        except DECODE_ERRORS:
            raise RejectedFrame("invalid_message", str(error)) from None
        if event_type is not None and event_type != route.EVENT_TYPE:
            raise RejectedFrame("unknown_event", f"{event_type!r} on a {route.EVENT_TYPE} stream")
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

    # ------------------------------------------------------------------ REST
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
                weight=self.depth_weight, purpose=RestPurpose.BOOK_SNAPSHOT,
            ))  # fmt: skip
        # A side request after the books: it never makes a book wait (see the scheduler).
        info_weight = self.info_weight
        if 0 <= self._info_due_ns <= now_ns:
            self._info_due_ns = -1
            self._info_wanted = True  # the slow instruments re-poll
        if self._info_wanted and scheduler.may_send(
            EXCHANGE_INFO_KEY, info_weight, now_ns, side=True
        ):
            scheduler.sent(EXCHANGE_INFO_KEY, info_weight, now_ns, side=True)
            self._info_wanted = False
            requests.append(RestRequest(
                key=EXCHANGE_INFO_KEY, url=self._info_url, weight=info_weight,
                purpose=RestPurpose.SYMBOL_LISTING,
            ))  # fmt: skip
        if self.open_interest is not None:
            requests += self.open_interest.due_requests(now_ns)
        if self.backfill.symbols:
            requests += self.backfill.due_requests(now_ns)
        return requests

    def finishing_requests(self, now_ns: int) -> list[RestRequest] | None:
        backfill = self.backfill
        return backfill.due_requests(now_ns) if backfill.owed else None

    def abandon(self, now_ns: int, out: RecordSink) -> None:
        self.backfill.abandon(now_ns, out)

    def owed_ids(self) -> int:
        return self.backfill.owed_ids()

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        self._now_ns = max(self._now_ns, recv_ns)
        purpose = request.purpose
        if purpose is RestPurpose.BOOK_SNAPSHOT:
            self._snapshot(request.key, response, recv_ns, out)
        elif purpose is RestPurpose.SYMBOL_LISTING:
            self._exchange_info(response, recv_ns, out)
        elif purpose is RestPurpose.TRADE_BACKFILL:
            self.backfill.receive_response(request, response, recv_ns, out)
        elif self.open_interest is not None and self.open_interest.owns(request):
            self.open_interest.receive_response(request, response, recv_ns, out)

    def _snapshot(self, native: str, response: RestResponse, recv_ns: int, out: RecordSink) -> None:
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
            else:
                # a configured symbol without a status: cannot tell (others do not matter: one
                # odd entry among hundreds must not block the listing forever)
                mine = self._symbols
                if any(not s.listing_status for s in info.symbols if s.symbol in mine):
                    info, status = None, 599
        self._scheduler.completed(EXCHANGE_INFO_KEY, status, response.headers, recv_ns, side=True)
        if info is None:
            self._info_wanted = True
            return
        listed = {s.symbol: s for s in info.symbols}
        self.instruments.on_listing(listed, recv_ns, out)
        if self._info_interval_ns:
            self._info_due_ns = recv_ns + self._info_interval_ns
        if self._info_checked:
            return  # a re-poll: the symbols were checked against the first listing
        self._info_checked = True
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
        venue = f"{EXCHANGE.upper()} {self.market.market.value}"
        native = symbol.native
        if listed is None:
            return f"{venue} does not list {native} (exchangeInfo)"
        pair = f"{native} ({listed.base}/{listed.quote})"
        status = listed.listing_status
        if status != TRADING:
            return f"{venue} lists {pair} with status {status}, not {TRADING} (exchangeInfo)"
        if (
            self.market.futures
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
        elif self._info_due_ns >= 0:
            times.append(self._info_due_ns)
        if self.open_interest is not None:
            times += self.open_interest.next_wakeup_ns(self._now_ns)
        if self.backfill.symbols:
            times += self.backfill.next_wakeup_ns(self._now_ns)
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

    def books(self) -> list[BookStatus]:
        return [book.state() for book in self._books.values()]

    def book(self, native: str) -> OrderBook:
        """The live book state machine of one symbol (tests, status screens)."""
        return self._books[native]
