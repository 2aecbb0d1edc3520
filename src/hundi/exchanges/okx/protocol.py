"""OKX v5 public market data (sans-I/O): spot, perpetual swaps and dated futures.

Connections: ``public`` (``wss://ws.okx.com:8443/ws/v5/public``: trades, bbo-tbt, books,
tickers, mark-price, index-tickers, funding-rate, open-interest, liquidation-orders) and, for
candles only, ``business`` (``/ws/v5/business``, where OKX moved the candle channels).
Subscriptions are ``{"op": "subscribe", "args": [{"channel", "instId"}...]}``, at most
:data:`ARGS_PER_REQUEST` args a request (OKX caps a request at 64 KB). OKX closes a
connection silent for 30 s: the protocol sends the text ``ping`` after :data:`PING_AFTER_NS`
without a frame and OKX answers ``pong``.

Books: :mod:`hundi.exchanges.okx.book` (REST snapshot + seqId chain, CRC32 checksums where
non-zero). Trades: OKX's ``tradeId`` counts up by one per instrument and a push aggregating
``count`` fills carries the last of them, so a skipped id is a stored ``gap`` event and a resent
id is dropped (:class:`hundi.exchanges.sequence.IdSequence`); the skipped ids are fetched back
over REST ``/api/v5/market/history-trades`` (:mod:`.backfill`). Derivatives: the four channels
of one contract are merged into one full :class:`~hundi.records.DerivativeTicker` per update.
``liquidation-orders`` is subscribed per ``instType`` and filtered to the configured symbols;
OKX documents it as at most one order per contract per second: ``sampled``. Instruments come
from ``GET /api/v5/public/instruments`` at start and every ``instruments_interval_s``.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

import msgspec

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
    VenueConfig,
    VenueProtocol,
    decode_rejection,
)
from hundi.exchanges.okx import messages as m
from hundi.exchanges.okx.backfill import InstrumentBackfill
from hundi.exchanges.okx.book import OrderBook, Parsed, parse_levels
from hundi.exchanges.okx.symbols import (
    FUTURES,
    INST_TYPE,
    MARKETS,
    SPOT,
    SWAP,
    market_of,
    normalize,
    underlying,
)
from hundi.exchanges.sequence import IdSequence, IdVerdict
from hundi.exchanges.validity import (
    MAX_VALUE,
    check_bbo,
    check_candle,
    check_ticker,
    check_time,
    check_trade,
    invalid,
)
from hundi.records import (
    BASE,
    BUY,
    CONTRACTS,
    SAMPLED,
    SELL,
    Bbo,
    Candle,
    Channel,
    DerivativeTicker,
    Event,
    EventKind,
    Instrument,
    Liquidation,
    Ticker,
    Trade,
)

log = logging.getLogger("hundi.exchanges.okx")

EXCHANGE: Final = "okx"
WS_URL: Final = "wss://ws.okx.com:8443/ws/v5/public"
BUSINESS_URL: Final = "wss://ws.okx.com:8443/ws/v5/business"
REST_URL: Final = "https://www.okx.com"
PUBLIC: Final = "public"
BUSINESS: Final = "business"
MS: Final = 1_000_000
S: Final = 1_000_000_000
ARGS_PER_REQUEST: Final = 100
PING_AFTER_NS: Final = 20 * S  # OKX drops a connection silent for 30 s
BOOK_DEPTH: Final = 400  # the ``books`` channel's depth; the REST snapshot asks as many
REST_GAP_NS: Final = 60 * MS  # /market/books: 40 requests / 2 s per IP; stay well under
TRADES_GAP_NS: Final = 150 * MS  # /market/history-trades: 20 requests / 2 s per IP
TRADES_KEY: Final = "trades:"  # + instId: a history-trades (backfill) request
RETRY_NS: Final = 1 * S
DAY_NS: Final = 86_400 * S

SUPPORTED: Final = frozenset((
    Channel.TRADES, Channel.BBO, Channel.BOOK, Channel.TICKER, Channel.CANDLES,
    Channel.DERIVATIVE_TICKER, Channel.LIQUIDATIONS, Channel.INSTRUMENTS, Channel.EVENTS,
))  # fmt: skip
DERIVATIVES_ONLY: Final = (Channel.DERIVATIVE_TICKER, Channel.LIQUIDATIONS)
# OKX candle bars (channel ``candle<bar>``) → hundi interval and length
BARS: Final = {
    "1s": ("1s", S), "1m": ("1m", 60 * S), "3m": ("3m", 180 * S), "5m": ("5m", 300 * S),
    "15m": ("15m", 900 * S), "30m": ("30m", 1800 * S), "1H": ("1h", 3600 * S),
    "2H": ("2h", 7200 * S), "4H": ("4h", 14400 * S), "6H": ("6h", 21600 * S),
    "12H": ("12h", 43200 * S), "1D": ("1d", DAY_NS), "1W": ("1w", 7 * DAY_NS),
}  # fmt: skip
OPTIONS: Final = (
    "candle_interval", "instruments_interval_s", "business_endpoint", "max_buffer",
    "backfill_requests_per_gap",
)  # fmt: skip
_MISSING = re.compile(r"instId:\s*([A-Za-z0-9-]+)")


@dataclass(slots=True)
class Derivative:
    """The latest value of each derivative field of one contract (NaN: not known yet)."""

    mark: float = math.nan
    index: float = math.nan
    funding: float = math.nan
    predicted: float = math.nan
    next_funding_ns: int = 0
    open_interest: float = math.nan
    open_interest_value: float = math.nan


class OkxProtocol(VenueProtocol):
    """OKX public market data for the configured instruments (see the module docstring)."""

    exchange = EXCHANGE

    def __init__(self, config: VenueConfig) -> None:
        markets = tuple(x.strip() for x in config.market.split(",") if x.strip())
        bad = [x for x in markets if x not in MARKETS]
        if not markets or bad:
            raise ValueError(
                f"okx market must be spot, swap or futures (or a comma list), got {config.market!r}"
            )
        unsupported = set(config.channels) - SUPPORTED
        if unsupported:
            names = ", ".join(sorted(c.value for c in unsupported))
            raise ValueError(f"okx does not serve {names}")
        unknown = set(config.options) - set(OPTIONS)
        if unknown:
            raise ValueError(f"unknown okx option(s): {', '.join(sorted(unknown))}")
        if not config.symbols:
            raise ValueError("okx: no symbols")
        self.config = config
        self.markets = markets
        self.symbols: dict[str, str] = {}
        self.market: dict[str, str] = {}
        for native in config.symbols:
            market = market_of(native)  # ValueError for a spelling OKX does not use
            if market not in markets:
                raise ValueError(f"okx symbol {native} is {market}, not of market {config.market}")
            self.symbols[native] = normalize(native)
            self.market[native] = market
        derivatives = [n for n in self.symbols if self.market[n] != SPOT]
        for channel in DERIVATIVES_ONLY:
            if channel in config.channels and not derivatives:
                raise ValueError(f"okx {channel.value} needs swap or futures symbols")
        bar = config.options.get("candle_interval", "1m")
        if bar not in BARS:
            raise ValueError(f"okx candle_interval must be one of {', '.join(BARS)}, got {bar!r}")
        self.bar = bar
        self.interval, self.interval_ns = BARS[bar]
        self.instruments_interval_ns = _positive(config.options, "instruments_interval_s", 3600.0)
        max_buffer = _count(config.options, "max_buffer", 10_000)
        self.channels = set(config.channels)
        self.rest_url = (config.rest_endpoint or REST_URL).rstrip("/")
        self.ws_url = config.endpoint or WS_URL
        self.business_url = config.options.get("business_endpoint") or (
            BUSINESS_URL if not config.endpoint else _business(config.endpoint)
        )
        self.book_of = {n: OrderBook(EXCHANGE, s, n, max_buffer) for n, s in self.symbols.items()}
        self.trade_ids = {n: IdSequence() for n in self.symbols}
        per_gap = _count(config.options, "backfill_requests_per_gap", 10, minimum=0)
        self.backfill = {
            n: InstrumentBackfill(n, s, self.trade_ids[n], per_gap) for n, s in self.symbols.items()
        }
        self._trades_in_flight: dict[str, tuple[int, int]] = {}  # key → (after, limit)
        self._trades_next_ns = 0
        self._trades_backoff_ns = 0
        self._now_ns = 0
        self.derivative = {n: Derivative() for n in derivatives}
        self.by_index: dict[str, list[str]] = {}
        for native in derivatives:
            self.by_index.setdefault(underlying(native), []).append(native)
        self.inst_types = sorted({INST_TYPE[self.market[n]] for n in self.symbols})
        self.instruments: dict[str, Instrument] = {}
        self.listed: set[str] = set()  # instTypes whose instrument list was read at least once
        self._instruments_due: dict[str, int] = dict.fromkeys(self.inst_types, 0)
        self._instruments_in_flight: set[str] = set()
        self._rest_next_ns = 0
        self._open: dict[str, int] = {}  # connection → last frame (or open) time
        self._messages: list[tuple[str, bytes]] = []
        self._reconnects: list[str] = []
        self._invalid: set[str] = set()

    # ------------------------------------------------------------------ connections
    def _args(self) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        public: list[dict[str, str]] = []
        business: list[dict[str, str]] = []
        natives = list(self.symbols)
        derivatives = list(self.derivative)
        per_symbol = (
            (Channel.TRADES, "trades"), (Channel.BBO, "bbo-tbt"), (Channel.BOOK, "books"),
            (Channel.TICKER, "tickers"),
        )  # fmt: skip
        for channel, name in per_symbol:
            if channel in self.channels:
                public += [{"channel": name, "instId": n} for n in natives]
        if Channel.DERIVATIVE_TICKER in self.channels:
            for name in ("mark-price", "funding-rate", "open-interest"):
                public += [
                    {"channel": name, "instId": n}
                    for n in derivatives
                    if not (name == "funding-rate" and self.market[n] == FUTURES)
                ]
            public += [{"channel": "index-tickers", "instId": i} for i in self.by_index]
        if Channel.LIQUIDATIONS in self.channels:
            types = sorted({INST_TYPE[self.market[n]] for n in derivatives})
            public += [{"channel": "liquidation-orders", "instType": t} for t in types]
        if Channel.CANDLES in self.channels:
            business += [{"channel": f"candle{self.bar}", "instId": n} for n in natives]
        return public, business

    def connections(self) -> list[StreamSpec]:
        public, business = self._args()
        specs = []
        wanted = ((PUBLIC, self.ws_url, public), (BUSINESS, self.business_url, business))
        for key, url, args in wanted:
            if args:
                specs.append(StreamSpec(
                    key, url, subscribe=_subscribe("subscribe", args), max_outgoing_per_s=3.0,
                ))  # fmt: skip
        return specs

    def on_open(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self._open[conn_key] = now_ns

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self._open.pop(conn_key, None)
        self._messages = [(k, msg) for k, msg in self._messages if k != conn_key]
        if conn_key == PUBLIC:
            for book in self.book_of.values():
                book.disconnect(now_ns, out)

    def take_messages(self) -> list[tuple[str, bytes]]:
        taken, self._messages = self._messages, []
        return taken

    def take_reconnects(self) -> list[str]:
        taken, self._reconnects = self._reconnects, []
        return taken

    def books(self) -> list[BookStatus]:
        if Channel.BOOK not in self.channels:
            return []
        return [book.status() for book in self.book_of.values()]

    def normalize_symbol(self, native: str) -> str:
        return self.symbols.get(native) or normalize(native)

    # ------------------------------------------------------------------ REST
    def due_requests(self, now_ns: int) -> list[RestRequest]:
        self._now_ns = max(self._now_ns, now_ns)
        for key, last in self._open.items():
            if now_ns - last >= PING_AFTER_NS:
                self._messages.append((key, b"ping"))
                self._open[key] = now_ns
        requests: list[RestRequest] = []
        page = self._backfill_request(now_ns)  # its own rate limit, beside /market/books
        if page is not None:
            requests.append(page)
        if now_ns < self._rest_next_ns:
            return requests
        if Channel.INSTRUMENTS in self.channels:
            for inst_type, due in self._instruments_due.items():
                if due <= now_ns and inst_type not in self._instruments_in_flight:
                    self._instruments_in_flight.add(inst_type)
                    self._rest_next_ns = now_ns + REST_GAP_NS
                    url = f"{self.rest_url}/api/v5/public/instruments?instType={inst_type}"
                    return [*requests, RestRequest(
                        f"instruments:{inst_type}", url, purpose=RestPurpose.SYMBOL_LISTING,
                    )]  # fmt: skip
        for native, book in self.book_of.items():
            if book.wants_snapshot and not book.in_flight:
                book.requested()
                self._rest_next_ns = now_ns + REST_GAP_NS
                url = f"{self.rest_url}/api/v5/market/books?instId={quote(native)}&sz={BOOK_DEPTH}"
                requests.append(RestRequest(native, url, purpose=RestPurpose.BOOK_SNAPSHOT))
                return requests
        return requests

    def _backfill_request(self, now_ns: int) -> RestRequest | None:
        """The next history-trades page of the first instrument owing trades (one request per
        :data:`TRADES_GAP_NS`, one in flight per instrument)."""
        if now_ns < self._trades_next_ns:
            return None
        for native, backfill in self.backfill.items():
            key = TRADES_KEY + native
            if not backfill.pending or key in self._trades_in_flight:
                continue
            page = backfill.next_page()
            if page is None:
                continue
            after, limit = page
            self._trades_in_flight[key] = page
            self._trades_next_ns = now_ns + TRADES_GAP_NS
            return RestRequest(
                key=key,
                url=f"{self.rest_url}/api/v5/market/history-trades?instId={quote(native)}"
                f"&type=1&after={after}&limit={limit}",
                purpose=RestPurpose.TRADE_BACKFILL,
            )
        return None

    def _backfill_owing(self) -> bool:
        return any(
            b.pending and TRADES_KEY + n not in self._trades_in_flight
            for n, b in self.backfill.items()
        )

    def next_wakeup_ns(self) -> int | None:
        wake = [last + PING_AFTER_NS for last in self._open.values()]
        if Channel.INSTRUMENTS in self.channels:
            wake += [
                d for t, d in self._instruments_due.items() if t not in self._instruments_in_flight
            ]
        if any(b.wants_snapshot for b in self.book_of.values()):
            wake.append(self._rest_next_ns)
        rest = max(min(wake), self._rest_next_ns) if wake else None
        if self._backfill_owing():
            trades = max(self._trades_next_ns, self._now_ns)
            rest = trades if rest is None else min(rest, trades)
        return rest

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        self._now_ns = max(self._now_ns, recv_ns)
        if request.purpose is RestPurpose.SYMBOL_LISTING:
            self._instruments_response(request, response, recv_ns, out)
            return
        if request.purpose is RestPurpose.TRADE_BACKFILL:
            self._backfill_response(request, response, recv_ns, out)
            return
        book = self.book_of.get(request.key)
        if book is None:
            return
        try:
            if response.status != 200:
                raise RejectedFrame("http", f"HTTP {response.status}")
            answer = m.REST_BOOKS.decode(response.body)
            if answer.code != "0" or not answer.data:
                raise RejectedFrame("venue_error", f"{answer.code} {answer.msg}")
            snap = answer.data[0]
            if snap.seqId < 0:
                raise RejectedFrame("invalid_message", "snapshot without seqId")
            parsed = _parse_book(snap)
        except (*DECODE_ERRORS, RejectedFrame) as e:
            # the book waits for the next one: say why (status, and a log line per new reason)
            reason = str(e) if isinstance(e, RejectedFrame) else f"undecodable answer ({e})"
            if reason != book.snapshot_error:
                log.warning("%s REST book snapshot refused: %s; retrying", book.native, reason)
            book.snapshot_failed(reason)
            self._rest_next_ns = max(self._rest_next_ns, recv_ns + RETRY_NS)
            return
        book.on_rest_snapshot(parsed, recv_ns, out)

    def _backfill_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        asked = self._trades_in_flight.pop(request.key, None)
        backfill = self.backfill.get(request.key.removeprefix(TRADES_KEY))
        if asked is None or backfill is None:
            return
        status = response.status
        limited = status == 429  # OKX 50011 "Rate limit reached" comes with HTTP 429
        if status == 200:
            self._trades_backoff_ns = 0
            after, limit = asked
            if backfill.answer(after, limit, response.body, recv_ns, out):
                return
        else:  # rate limited, down or unreachable (599): back off, doubling up to 30 s
            self._trades_backoff_ns = min(max(2 * self._trades_backoff_ns, RETRY_NS), 30 * S)
            self._trades_next_ns = max(self._trades_next_ns, recv_ns + self._trades_backoff_ns)
        if limited and backfill.pending:
            backfill.pending[0].requests_left += 1  # a rate-limited request does not count
        backfill.give_up_if_spent(recv_ns, out)

    def finishing_requests(self, now_ns: int) -> list[RestRequest] | None:
        self._now_ns = max(self._now_ns, now_ns)
        if not any(b.pending for b in self.backfill.values()):
            return None
        page = self._backfill_request(now_ns)
        return [page] if page is not None else []

    def owed_ids(self) -> int:
        return sum(b.owed_ids() for b in self.backfill.values())

    def abandon(self, now_ns: int, out: RecordSink) -> None:
        self._trades_in_flight.clear()
        for backfill in self.backfill.values():
            backfill.abandon(now_ns, out)

    def recover(self, gap: Event, now_ns: int, out: RecordSink) -> bool:
        """A trades gap of one of our instruments found outside the stream (between two runs)
        joins that instrument's REST backfill, like a gap the stream showed."""
        if (
            gap.exchange != EXCHANGE
            or gap.kind != EventKind.GAP.value
            or gap.channel != Channel.TRADES.value
            or gap.expected < 0
            or gap.received <= gap.expected
            or gap.native_symbol not in self.backfill
        ):
            return False
        self._now_ns = max(self._now_ns, now_ns)
        self.backfill[gap.native_symbol].want(gap.expected, gap.received, now_ns, out)
        return True

    def _instruments_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        inst_type = request.key.partition(":")[2]
        self._instruments_in_flight.discard(inst_type)
        try:
            if response.status != 200:
                raise RejectedFrame("http", str(response.status))
            answer = m.REST_INSTRUMENTS.decode(response.body)
            if answer.code != "0":
                raise RejectedFrame("venue_error", f"{answer.code} {answer.msg}")
        except (*DECODE_ERRORS, RejectedFrame):
            self._instruments_due[inst_type] = recv_ns + 10 * RETRY_NS
            return
        self._instruments_due[inst_type] = recv_ns + self.instruments_interval_ns
        listed = set()
        for item in answer.data:
            if item.instId not in self.symbols:
                continue
            listed.add(item.instId)
            try:
                record = self._instrument(item, recv_ns)
            except RejectedFrame:
                continue
            previous = self.instruments.get(item.instId)
            if previous is None or msgspec.structs.replace(previous, ts=0, recv_ts=0) != (
                msgspec.structs.replace(record, ts=0, recv_ts=0)
            ):
                self.instruments[item.instId] = record
                out.instruments.append(record)
        for native, market in self.market.items():
            if INST_TYPE[market] == inst_type and native not in listed:
                self._invalid_symbol(native, recv_ns, out, f"not listed by {request.url}")
        self.listed.add(inst_type)

    def _instrument(self, item: m.InstrumentMsg, now_ns: int) -> Instrument:
        native = item.instId
        market = self.market[native]
        base, quote_ccy = native.split("-")[:2]
        if market == SPOT:
            contract_type, inverse, size, unit = "spot", False, 1.0, BASE
            settle, expiry = quote_ccy, 0
        else:
            contract_type = "perpetual" if market == SWAP else "future"
            inverse = item.ctType == "inverse"
            size = _opt(item.ctVal) * (_opt(item.ctMult) if item.ctMult else 1.0)
            unit, settle = CONTRACTS, item.settleCcy
            expiry = int(item.expTime) * MS if item.expTime.isdigit() else 0
        return Instrument(
            exchange=EXCHANGE, symbol=self.symbols[native], native_symbol=native, ts=now_ns,
            recv_ts=now_ns, contract_type=contract_type, inverse=inverse,
            base_asset=item.baseCcy or base, quote_asset=item.quoteCcy or quote_ccy,
            settle_asset=settle, contract_size=size, size_unit=unit,
            tick_size=_opt(item.tickSz), lot_size=_opt(item.lotSz), expiry=expiry,
            status=item.state,
        )  # fmt: skip

    # ------------------------------------------------------------------ frames
    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        if conn_key in self._open:
            self._open[conn_key] = recv_ns
        if data == b"pong":
            return FrameStatus.FILTERED
        try:
            env = m.ENVELOPE.decode(data)
        except DECODE_ERRORS as e:
            raise decode_rejection(data, e) from None
        if env.event:
            return self._event(env, conn_key, recv_ns, out)
        channel = env.arg.channel
        if not channel:
            raise RejectedFrame("unknown_message", "no event and no arg.channel")
        try:
            if channel == "liquidation-orders":
                return self._liquidations(m.LIQUIDATIONS.decode(env.data), recv_ns, out)
            if channel == "index-tickers":
                return self._index(env.arg.instId, m.INDEX.decode(env.data), recv_ns, out)
            native = env.arg.instId
            if native not in self.symbols:
                raise RejectedFrame("unknown_symbol", f"{channel} {native!r}")
            if channel == "books":
                return self._book(native, env, recv_ns, out)
            if channel == "trades":
                return self._trades(native, m.TRADES.decode(env.data), recv_ns, out)
            if channel == "bbo-tbt":
                return self._bbo(native, m.BOOKS.decode(env.data), recv_ns, out)
            if channel == "tickers":
                return self._tickers(native, m.TICKERS.decode(env.data), recv_ns, out)
            if channel == f"candle{self.bar}":
                return self._candles(native, m.CANDLES.decode(env.data), recv_ns, out)
            if native in self.derivative:
                if channel == "mark-price":
                    return self._mark(native, m.MARK.decode(env.data), recv_ns, out)
                if channel == "funding-rate":
                    return self._funding(native, m.FUNDING.decode(env.data), recv_ns, out)
                if channel == "open-interest":
                    return self._oi(native, m.OPEN_INTEREST.decode(env.data), recv_ns, out)
        except DECODE_ERRORS as e:
            raise decode_rejection(env.data, e) from None
        raise RejectedFrame("unknown_message", f"channel {channel!r}")

    def _event(self, env: m.Envelope, conn_key: str, recv_ns: int, out: RecordSink) -> FrameStatus:
        if env.event in ("subscribe", "unsubscribe", "channel-conn-count"):
            return FrameStatus.FILTERED
        if env.event == "error":
            # 60018: "Wrong URL or channel:books,instId:XYZ doesn't exist"
            found = _MISSING.search(env.msg)
            if env.code == "60018" and found and found[1] in self.symbols:
                self._invalid_symbol(found[1], recv_ns, out, f"{env.code} {env.msg}")
                return FrameStatus.PROCESSED
            raise RejectedFrame("venue_error", f"{env.code} {env.msg}")
        if env.event == "notice":
            # 64008: "The connection will soon be closed for a service upgrade"
            out.events.append(Event(
                exchange=EXCHANGE, symbol="", native_symbol="", ts=recv_ns, recv_ts=recv_ns,
                kind=EventKind.SHUTDOWN.value, channel="", expected=-1, received=-1,
                detail=f"{conn_key}: {env.code} {env.msg}",
            ))  # fmt: skip
            if conn_key not in self._reconnects:
                self._reconnects.append(conn_key)
            return FrameStatus.PROCESSED
        raise RejectedFrame("unknown_message", f"event {env.event!r}")

    def _invalid_symbol(self, native: str, recv_ns: int, out: RecordSink, detail: str) -> None:
        if native in self._invalid:
            return
        self._invalid.add(native)
        out.events.append(Event(
            exchange=EXCHANGE, symbol=self.symbols[native], native_symbol=native, ts=recv_ns,
            recv_ts=recv_ns, kind=EventKind.INVALID_SYMBOL.value, channel="", expected=-1,
            received=-1, detail=detail,
        ))  # fmt: skip

    def _book(self, native: str, env: m.Envelope, recv_ns: int, out: RecordSink) -> FrameStatus:
        if env.action not in ("snapshot", "update", ""):
            raise RejectedFrame("unknown_message", f"books action {env.action!r}")
        try:
            pushes = m.BOOKS.decode(env.data)
        except DECODE_ERRORS as e:
            raise decode_rejection(env.data, e) from None
        parsed = [_parse_book(msg) for msg in pushes]  # validate everything before applying
        for push in parsed:
            _ms(push[0].ts, recv_ns, "book time")
        book = self.book_of[native]
        for push in parsed:
            book.on_push(push, env.action == "snapshot", recv_ns, out)
        if book.wants_resubscribe:
            book.wants_resubscribe = False
            arg = [{"channel": "books", "instId": native}]
            self._messages += [(PUBLIC, msg) for msg in _subscribe("unsubscribe", arg)]
            self._messages += [(PUBLIC, msg) for msg in _subscribe("subscribe", arg)]
        return FrameStatus.PROCESSED

    def _trades(
        self, native: str, trades: list[m.TradeMsg], recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        symbol = self.symbols[native]
        records = []
        for t in trades:
            if t.side not in ("buy", "sell"):
                raise RejectedFrame("invalid_field", f"side {t.side!r}")
            try:
                last = int(t.tradeId)
                count = int(t.count or "1")
            except ValueError:
                raise RejectedFrame("invalid_field", f"tradeId {t.tradeId!r}") from None
            price, size, ts = _num(t.px, "price"), _num(t.sz, "size"), _ms(t.ts, recv_ns, "ts")
            check_trade(price, size, ts, recv_ns)
            records.append(Trade(
                exchange=EXCHANGE, symbol=symbol, native_symbol=native, ts=ts, recv_ts=recv_ns,
                trade_id=last, price=price, size=size, side=BUY if t.side == "buy" else SELL,
                first_trade_id=last - max(count, 1) + 1, last_trade_id=last,
            ))  # fmt: skip
        ids = self.trade_ids[native]
        for record in records:
            expected = ids.expected()
            verdict = ids.check(record.first_trade_id, record.last_trade_id)
            if verdict in (IdVerdict.DUPLICATE, IdVerdict.EXPIRED):
                continue
            if verdict is IdVerdict.AHEAD:
                out.events.append(Event(
                    exchange=EXCHANGE, symbol=symbol, native_symbol=native, ts=record.ts,
                    recv_ts=recv_ns, kind=EventKind.GAP.value, channel=Channel.TRADES.value,
                    expected=expected, received=record.first_trade_id,
                    detail=f"trade ids {expected}..{record.first_trade_id - 1} missing",
                ))  # fmt: skip
                self.backfill[native].want(expected, record.first_trade_id, recv_ns, out)
            out.trades.append(record)
        return FrameStatus.PROCESSED

    def _bbo(
        self, native: str, pushes: list[m.BookMsg], recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        records = []
        for push in pushes:
            bids, asks = parse_levels("bid", push.bids), parse_levels("ask", push.asks)
            bid, bid_size = (bids[0][0], bids[0][1]) if bids else (0.0, 0.0)
            ask, ask_size = (asks[0][0], asks[0][1]) if asks else (0.0, 0.0)
            ts = _ms(push.ts, recv_ns, "ts")
            check_bbo(bid, bid_size, ask, ask_size, ts, recv_ns)
            records.append(Bbo(
                exchange=EXCHANGE, symbol=self.symbols[native], native_symbol=native, ts=ts,
                recv_ts=recv_ns, update_id=push.seqId if push.seqId >= 0 else ts // MS,
                bid_price=bid, bid_size=bid_size, ask_price=ask, ask_size=ask_size,
            ))  # fmt: skip
        out.bbo.extend(records)
        return FrameStatus.PROCESSED

    def _tickers(
        self, native: str, tickers: list[m.TickerMsg], recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        records = []
        spot = self.market[native] == SPOT
        for t in tickers:
            ts = _ms(t.ts, recv_ns, "ts")
            last, last_size = _num0(t.last), _num0(t.lastSz)
            open_, high, low = _num0(t.open24h), _num0(t.high24h), _num0(t.low24h)
            # spot: vol24h base, volCcy24h quote; derivatives: vol24h contracts, volCcy24h base
            volume = _num0(t.vol24h) if spot else _num0(t.volCcy24h)
            quote_volume = _num0(t.volCcy24h) if spot else 0.0
            change = last - open_ if open_ > 0 else 0.0
            pct = 100.0 * change / open_ if open_ > 0 else 0.0
            check_ticker(last, last_size, open_, high, low, 0.0, volume, quote_volume, change,
                         pct, ts, recv_ns)  # fmt: skip
            records.append(Ticker(
                exchange=EXCHANGE, symbol=self.symbols[native], native_symbol=native, ts=ts,
                recv_ts=recv_ns, last_price=last, last_size=last_size, open_price=open_,
                high_price=high, low_price=low, volume=volume, quote_volume=quote_volume,
                vwap=0.0, price_change=change, price_change_pct=pct, trade_count=-1,
                open_time=ts - DAY_NS, close_time=ts, first_trade_id=-1, last_trade_id=-1,
            ))  # fmt: skip
        out.ticker.extend(records)
        return FrameStatus.PROCESSED

    def _candles(
        self, native: str, rows: list[list[str]], recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        records = []
        spot = self.market[native] == SPOT
        for row in rows:
            if len(row) < 9:
                raise RejectedFrame("invalid_field", f"candle of {len(row)} fields")
            start = _ms(row[0], recv_ns, "candle time", skew=False)
            o, h, lo, c = (_num(x, "ohlc") for x in row[1:5])
            # spot: vol base; derivatives: vol contracts, volCcy base
            volume = _num(row[5] if spot else row[6], "volume")
            quote_volume = _num(row[7], "quote volume")
            # a daily or weekly bar starts more than the clock-skew bound before it is pushed
            checked = start if self.interval_ns < DAY_NS else recv_ns
            check_candle(o, h, lo, c, volume, quote_volume, 0.0, checked, recv_ns)
            records.append(Candle(
                exchange=EXCHANGE, symbol=self.symbols[native], native_symbol=native,
                ts=start, recv_ts=recv_ns, interval=self.interval, open_time=start,
                close_time=start + self.interval_ns - MS, open=o, high=h, low=lo, close=c,
                volume=volume, quote_volume=quote_volume, taker_buy_volume=0.0,
                trade_count=-1, closed=row[8] == "1",
            ))  # fmt: skip
        out.candles.extend(records)
        return FrameStatus.PROCESSED

    # ------------------------------------------------------------------ derivatives
    def _emit_derivative(
        self, native: str, source: str, ts: int, recv_ns: int, out: RecordSink
    ) -> None:
        d = self.derivative[native]
        out.derivative_ticker.append(DerivativeTicker(
            exchange=EXCHANGE, symbol=self.symbols[native], native_symbol=native, ts=ts,
            recv_ts=recv_ns, source=source, mark_price=d.mark, index_price=d.index,
            funding_rate=d.funding, predicted_funding_rate=d.predicted,
            next_funding_time=d.next_funding_ns, open_interest=d.open_interest,
            open_interest_value=d.open_interest_value, size_unit=CONTRACTS,
        ))  # fmt: skip

    def _mark(
        self, native: str, rows: list[m.MarkPriceMsg], recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        parsed = [(_num(r.markPx, "markPx"), _ms(r.ts, recv_ns, "ts")) for r in rows]
        for mark, ts in parsed:
            _positive_value("markPx", mark)
            self.derivative[native].mark = mark
            self._emit_derivative(native, "mark-price", ts, recv_ns, out)
        return FrameStatus.PROCESSED

    def _index(
        self, index: str, rows: list[m.IndexMsg], recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        natives = self.by_index.get(index)
        if natives is None:
            raise RejectedFrame("unknown_symbol", f"index-tickers {index!r}")
        parsed = [(_num(r.idxPx, "idxPx"), _ms(r.ts, recv_ns, "ts")) for r in rows]
        for price, ts in parsed:
            _positive_value("idxPx", price)
            for native in natives:
                self.derivative[native].index = price
                self._emit_derivative(native, "index-tickers", ts, recv_ns, out)
        return FrameStatus.PROCESSED

    def _funding(
        self, native: str, rows: list[m.FundingMsg], recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        parsed = []
        for r in rows:
            rate = _num(r.fundingRate, "fundingRate")
            predicted = (
                _num(r.nextFundingRate, "nextFundingRate") if r.nextFundingRate else math.nan
            )
            funding_time = _ms(r.fundingTime, recv_ns, "fundingTime", skew=False)
            ts = _ms(r.ts, recv_ns, "ts") if r.ts else recv_ns
            parsed.append((rate, predicted, funding_time, ts))
        for rate, predicted, funding_time, ts in parsed:
            d = self.derivative[native]
            d.funding, d.predicted, d.next_funding_ns = rate, predicted, funding_time
            self._emit_derivative(native, "funding-rate", ts, recv_ns, out)
        return FrameStatus.PROCESSED

    def _oi(
        self, native: str, rows: list[m.OpenInterestMsg], recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        parsed = []
        for r in rows:
            oi = _num(r.oi, "oi")
            value = _num(r.oiUsd, "oiUsd") if r.oiUsd else math.nan
            if not 0.0 <= oi <= MAX_VALUE:
                raise invalid("oi", oi)
            parsed.append((oi, value, _ms(r.ts, recv_ns, "ts") if r.ts else recv_ns))
        for oi, value, ts in parsed:
            d = self.derivative[native]
            d.open_interest, d.open_interest_value = oi, value
            self._emit_derivative(native, "open-interest", ts, recv_ns, out)
        return FrameStatus.PROCESSED

    def _liquidations(
        self, rows: list[m.LiquidationMsg], recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        records = []
        for row in rows:
            if row.instId not in self.derivative:
                continue  # instType-wide channel: other contracts are not ours
            for position, d in enumerate(row.details):
                if d.side not in ("buy", "sell"):
                    raise RejectedFrame("invalid_field", f"side {d.side!r}")
                price, size = _num(d.bkPx, "bkPx"), _num(d.sz, "sz")
                ts = _ms(d.ts, recv_ns, "ts")
                check_trade(price, size, ts, recv_ns)
                records.append(Liquidation(
                    exchange=EXCHANGE, symbol=self.symbols[row.instId], native_symbol=row.instId,
                    ts=ts, recv_ts=recv_ns, side=BUY if d.side == "buy" else SELL, price=price,
                    size=size, size_unit=CONTRACTS, completeness=SAMPLED,
                    detail=f"posSide={d.posSide} bkLoss={d.bkLoss} ccy={d.ccy}",
                    position=position,
                ))  # fmt: skip
        if not records:
            return FrameStatus.FILTERED
        out.liquidations.extend(records)
        return FrameStatus.PROCESSED


def _subscribe(op: str, args: list[dict[str, str]]) -> tuple[bytes, ...]:
    return tuple(
        msgspec.json.encode({"op": op, "args": args[i : i + ARGS_PER_REQUEST]})
        for i in range(0, len(args), ARGS_PER_REQUEST)
    )


def _business(endpoint: str) -> str:
    """The business URL beside an overridden public one (``.../public`` → ``.../business``)."""
    head, sep, _ = endpoint.rstrip("/").rpartition("/")
    return f"{head}/business" if sep else endpoint


def _parse_book(msg: m.BookMsg) -> Parsed:
    return msg, parse_levels("bid", msg.bids), parse_levels("ask", msg.asks)


def _num(text: str, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RejectedFrame("invalid_field", f"{field} not a number: {text!r}") from None
    if not math.isfinite(value):
        raise RejectedFrame("invalid_field", f"{field} not a number: {text!r}")
    return value


def _num0(text: str) -> float:
    """A ticker field OKX leaves empty when nothing traded: 0."""
    return _num(text, "ticker field") if text else 0.0


def _opt(text: str) -> float:
    """An instrument field OKX may leave empty: NaN."""
    try:
        return float(text) if text else math.nan
    except ValueError:
        raise RejectedFrame("invalid_field", f"not a number: {text!r}") from None


def _positive_value(field: str, value: float) -> None:
    if not 0.0 < value <= MAX_VALUE:
        raise invalid(field, value)


def _ms(text: str, recv_ns: int, field: str, skew: bool = True) -> int:
    try:
        ts = int(text) * MS
    except ValueError:
        raise RejectedFrame("invalid_field", f"{field} {text!r}") from None
    if skew:
        check_time(field, ts, recv_ns)
    return ts


def _positive(options: dict[str, str], name: str, default: float) -> int:
    """A positive number of seconds option, in ns; ValueError otherwise."""
    text = options.get(name)
    if text is None:
        return int(default * S)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"okx option {name} must be a number, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"okx option {name} must be positive, got {text!r}")
    return int(value * S)


def _count(options: dict[str, str], name: str, default: int, minimum: int = 1) -> int:
    text = options.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < minimum:
        what = "a positive integer" if minimum >= 1 else "an integer >= 0"
        raise ValueError(f"okx option {name} must be {what}, got {text!r}")
    return int(text)
