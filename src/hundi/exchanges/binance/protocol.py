"""The Binance venue protocol (spot and USD-M futures), sans-I/O.

Frames are combined-stream envelopes; the envelope is decoded with ``data`` left raw, the
stream name picks a prebuilt :class:`~hundi.exchanges.binance.routes.Route`, and that route's
typed decoder builds the record. Control frames (subscribe acks) are FILTERED; server errors,
malformed JSON, unknown streams/symbols/events raise :class:`RejectedFrame` with stable reasons.

Options (``VenueConfig.options``, all strings):

``trade_stream``  ``aggTrade`` (default) or ``trade``
``kline_interval``  default ``1m``
``usdm_split``  ``true`` (default): USD-M /public + /market paths; ``false``: legacy ``/stream``
``depth_limit``  REST snapshot depth, default 1000
``book_buffer``  max diffs buffered per unsynced book, default 2000
``max_streams_per_connection``  default 1024 (Binance's limit)
``subscribe_batch``  streams per SUBSCRIBE message, default 200
``rest_weight_per_minute``  default half of Binance's budget (spot 3000, USD-M 1200)
``rest_min_interval_ms``  minimal gap between REST requests, default 100
``seed``  seed of the back-off jitter RNG, default 0
``quote_assets``  extra quote assets, comma separated
``symbol_map``  explicit names, ``NATIVE=BASE-QUOTE,...``
"""

from __future__ import annotations

import random

import msgspec
from msgspec import Raw

from hundi.exchanges.base import (
    BookState,
    FrameStatus,
    RecordSink,
    RejectedFrame,
    RestRequest,
    RestResponse,
    StreamSpec,
    VenueConfig,
    VenueProtocol,
)
from hundi.exchanges.binance import streams
from hundi.exchanges.binance.book import MS, OrderBook
from hundi.exchanges.binance.messages import (
    EVENT_HEAD_DECODER,
    FRAME_DECODER,
    SNAPSHOT_DECODER,
    DepthSnapshotMsg,
    Frame,
)
from hundi.exchanges.binance.ratelimit import RestScheduler
from hundi.exchanges.binance.routes import ROUTE_TYPES, DepthRoute, Route
from hundi.exchanges.binance.symbols import (
    KNOWN_QUOTE_ASSETS,
    Market,
    SymbolInfo,
    normalize,
    parse_market,
    parse_symbol_map,
)
from hundi.records import Channel, Event, EventKind

EXCHANGE = "binance"

KNOWN_OPTIONS = frozenset({
    "trade_stream", "kline_interval", "usdm_split", "depth_limit", "book_buffer",
    "max_streams_per_connection", "subscribe_batch", "rest_weight_per_minute",
    "rest_min_interval_ms", "seed", "quote_assets", "symbol_map",
})  # fmt: skip

# Binance's REQUEST_WEIGHT per minute; we use half by default.
WEIGHT_BUDGET = {Market.SPOT: 6000, Market.USDM: 2400}
SHUTDOWN = "serverShutdown"
# msgspec reports invalid UTF-8 inside strings as UnicodeDecodeError, not DecodeError.
DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError)


class _ShutdownEvent(msgspec.Struct, gc=False):
    e: str | None = None
    E: int = -1


_SHUTDOWN_DECODER = msgspec.json.Decoder(_ShutdownEvent)


def _int_option(options: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = options.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"option {name} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise ValueError(f"option {name} must be within {low}..{high}, got {value}")
    return value


def _bool_option(options: dict[str, str], name: str, default: bool) -> bool:
    text = options.get(name)
    if text is None:
        return default
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"option {name} must be true or false, got {text!r}")


class BinanceProtocol(VenueProtocol):
    """See the module docstring. Build it with :func:`hundi.exchanges.binance.BinanceVenue`."""

    exchange = EXCHANGE

    def __init__(self, config: VenueConfig, rng: random.Random | None = None) -> None:
        options = dict(config.options)
        unknown = set(options) - KNOWN_OPTIONS
        if unknown:
            raise ValueError(
                f"unknown Binance option(s) {sorted(unknown)}; known: {sorted(KNOWN_OPTIONS)}"
            )
        self.market = market = parse_market(config.market)
        if not config.symbols:
            raise ValueError("no symbols configured")
        channels = tuple(dict.fromkeys(config.channels))
        if not [c for c in channels if c is not Channel.EVENTS]:
            raise ValueError("no market-data channels configured")

        quotes = KNOWN_QUOTE_ASSETS + tuple(
            q.strip().upper() for q in options.get("quote_assets", "").split(",") if q.strip()
        )
        overrides = parse_symbol_map(options.get("symbol_map", ""))
        infos = tuple(
            {
                info.native: info
                for info in (normalize(s, market, quotes, overrides) for s in config.symbols)
            }.values()
        )
        self._symbols: dict[str, SymbolInfo] = {i.native: i for i in infos}
        self._stream_symbols = frozenset(i.stream for i in infos)

        trade_stream = options.get("trade_stream", "aggTrade")
        if trade_stream not in streams.TRADE_STREAMS:
            raise ValueError(f"option trade_stream must be aggTrade or trade, got {trade_stream!r}")
        kline_interval = options.get("kline_interval", "1m")
        if kline_interval not in streams.KLINE_INTERVALS:
            raise ValueError(f"unknown kline_interval {kline_interval!r}")
        split = _bool_option(options, "usdm_split", True)
        self.depth_limit = streams.validate_depth_limit(
            market, _int_option(options, "depth_limit", 1000, 1, streams.SPOT_MAX_DEPTH_LIMIT)
        )
        self.depth_weight = streams.depth_weight(market, self.depth_limit)
        per_connection = _int_option(
            options,
            "max_streams_per_connection",
            streams.MAX_STREAMS_PER_CONNECTION,
            1,
            streams.MAX_STREAMS_PER_CONNECTION,
        )
        batch = _int_option(options, "subscribe_batch", streams.DEFAULT_SUBSCRIBE_BATCH, 1, 1024)
        book_buffer = _int_option(options, "book_buffer", 2000, 1, 1_000_000)

        ws_base = config.endpoint or (streams.SPOT_WS if market is Market.SPOT else streams.USDM_WS)
        self.rest_base = config.rest_endpoint or (
            streams.SPOT_REST if market is Market.SPOT else streams.USDM_REST
        )
        plans = streams.plan_streams(
            market,
            infos,
            channels,
            trade_stream=trade_stream,
            kline_interval=kline_interval,
            split=split,
        )
        self._specs, owner = streams.build_connections(
            market, plans, ws_base, per_connection=per_connection, subscribe_batch=batch
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
                    max_buffer=book_buffer,
                )
                self._books[info.native] = book
                self._book_conn[info.native] = owner[plan.name]
                route = DepthRoute(EXCHANGE, info.normalized, info.native, book)
            else:
                route = ROUTE_TYPES[plan.kind](EXCHANGE, info.normalized, info.native)
            self._routes[plan.name] = route

        budget = WEIGHT_BUDGET[market] // 2
        self._scheduler = RestScheduler(
            weight_per_minute=_int_option(
                options,
                "rest_weight_per_minute",
                budget,
                self.depth_weight,
                WEIGHT_BUDGET[market],
            ),
            min_interval_ns=_int_option(options, "rest_min_interval_ms", 100, 0, 60_000) * MS,
            rng=rng
            if rng is not None
            else random.Random(_int_option(options, "seed", 0, 0, 2**63 - 1)),
        )
        self._wanting: dict[str, None] = {}  # natives whose book wants a snapshot, in order
        self._reconnects: list[str] = []
        self._now_ns = 0

    # ------------------------------------------------------------------ connections
    def connections(self) -> list[StreamSpec]:
        return list(self._specs)

    def normalize_symbol(self, native: str) -> str:
        info = self._symbols.get(native.upper())
        return info.normalized if info is not None else native

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
        try:
            frame = FRAME_DECODER.decode(data)
        except msgspec.ValidationError as e:
            raise RejectedFrame("invalid_message", str(e)) from None
        except DECODE_ERRORS as e:
            raise RejectedFrame("malformed_json", str(e)) from None
        stream = frame.stream
        if stream is not None:
            route = self._routes.get(stream)
            payload = frame.data
            if not payload:
                raise RejectedFrame("invalid_message", f"stream {stream!r} frame without data")
            if route is None:
                if self._is_shutdown(payload):
                    return self._shutdown(conn_key, payload, recv_ns, out)
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
        if isinstance(error, UnicodeDecodeError):
            raise RejectedFrame("malformed_json", str(error))
        if self._is_shutdown(payload):
            return self._shutdown(conn_key, payload, recv_ns, out)
        try:
            head = EVENT_HEAD_DECODER.decode(payload)
        except UnicodeDecodeError as e:
            raise RejectedFrame("malformed_json", str(e)) from None
        except msgspec.DecodeError:
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
        if frame.e == SHUTDOWN:
            return self._shutdown(conn_key, Raw(data), recv_ns, out)
        if frame.event and self._is_shutdown(frame.event):  # WebSocket-API style wrapper
            return self._shutdown(conn_key, frame.event, recv_ns, out)
        if frame.e is not None:
            raise RejectedFrame("unknown_event", frame.e)
        raise RejectedFrame("invalid_message", "neither stream data, ack, error nor event")

    @staticmethod
    def _is_shutdown(payload: Raw) -> bool:
        try:
            return _SHUTDOWN_DECODER.decode(payload).e == SHUTDOWN
        except DECODE_ERRORS:
            return False

    def _shutdown(self, conn_key: str, payload: Raw, recv_ns: int, out: RecordSink) -> FrameStatus:
        """The server will drop this connection soon: reconnect now, while data still flows."""
        event_ms = _SHUTDOWN_DECODER.decode(payload).E
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
        return requests

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        self._now_ns = max(self._now_ns, recv_ns)
        native = request.key
        book = self._books.get(native)
        if book is None:
            return
        snapshot: DepthSnapshotMsg | None = None
        status = response.status
        if 200 <= status < 300:
            try:
                snapshot = SNAPSHOT_DECODER.decode(response.body)
            except DECODE_ERRORS:
                status = 599  # unusable body: retry like a transport failure
        self._scheduler.completed(native, status, response.headers, recv_ns)
        if snapshot is not None:
            book.on_snapshot(snapshot, recv_ns, out)
        else:
            book.snapshot_failed()
        if book.needs_request:
            self._wanting[native] = None

    def next_wakeup_ns(self) -> int | None:
        times = [
            self._scheduler.earliest_ns(native, self.depth_weight, self._now_ns)
            for native in self._wanting
            if native not in self._scheduler.in_flight
        ]
        return min(times) if times else None

    # ------------------------------------------------------------------ status
    def books(self) -> list[BookState]:
        return [book.state() for book in self._books.values()]

    def book(self, native: str) -> OrderBook:
        """The live book state machine of one symbol (tests, status screens)."""
        return self._books[native]
