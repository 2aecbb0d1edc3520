"""Bybit v5 public market data (sans-I/O): one WebSocket per category (``spot``, ``linear``,
``inverse``), the instrument list over REST.

Wire rules (https://bybit-exchange.github.io/docs/v5/ws/connect and the topic pages):

* ``{"op":"subscribe","args":[topic, ...]}``, at most :data:`ARGS_PER_REQUEST` topics a
  request (spot allows 10); acks ``{"success":true|false,"ret_msg":...,"op":"subscribe"}``; a
  refused topic is an ``invalid_symbol`` event, not a silent hole.
* Heartbeat: the client sends ``{"op":"ping"}`` every 20 s (spot answers ``op:ping`` with
  ``ret_msg:pong``, derivatives ``op:pong``): sent through :meth:`BybitProtocol.take_messages`.
* ``orderbook.{depth}.{symbol}``: a snapshot, then deltas whose update id ``u`` grows by one per
  message. A delta that does not continue (``u != previous u + 1``) is a ``gap`` event and the
  topic is unsubscribed and subscribed again on the same socket (a fresh snapshot, resync in
  place). A snapshot always overwrites the book; ``u == 1`` means Bybit's book service
  restarted (documented), stored as a snapshot with a ``resync`` event saying so.
  ``orderbook.1`` (snapshots only) is re-sent every 3 s without a change, with the same ``u``.
  Stored rows are ordered by the cross sequence ``seq`` (``update_id``), ``u`` kept as
  ``first_update_id``: see :mod:`hundi.exchanges.bybit.book`.
* ``tickers.{symbol}``: spot sends snapshots; derivatives a snapshot then deltas carrying only
  the fields that changed, merged here into full records (a missing field is the previous
  value): :class:`~hundi.records.Ticker` and :class:`~hundi.records.DerivativeTicker`.
* ``allLiquidation.{symbol}``: every liquidation (documented "push all liquidations"); ``S`` is
  the side of the liquidated POSITION ("When you receive a Buy update, this means that a long
  position has been liquidated"), so the liquidation order's side is the opposite.

Before subscribing, ``/v5/market/instruments-info`` names every symbol (:meth:`opening` waits
for it, a few attempts, then falls back to :func:`~hundi.exchanges.bybit.symbols.guess`).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from hundi.book.side import BookSide
from hundi.exchanges.base import (
    DECODE_ERRORS,
    BookStatus,
    FrameStatus,
    Opening,
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
from hundi.exchanges.bybit import messages as wire
from hundi.exchanges.bybit.symbols import MARKETS, NATIVE, Contract, from_instrument, guess
from hundi.exchanges.options import int_option
from hundi.exchanges.validity import (
    check_bbo,
    check_candle,
    check_levels,
    check_positive,
    check_time,
    check_trade,
    invalid,
)
from hundi.records import (
    ASK,
    BID,
    BUY,
    COMPLETE,
    SELL,
    Bbo,
    BookChange,
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

log = logging.getLogger(__name__)

EXCHANGE: Final = "bybit"
WS_URL: Final = "wss://stream.bybit.com/v5/public/{market}"
REST_URL: Final = "https://api.bybit.com"
INSTRUMENTS_PATH: Final = "/v5/market/instruments-info"
CONN: Final = "public"
MS: Final = 1_000_000
S_NS: Final = 1_000_000_000
PING: Final = b'{"op":"ping"}'
PING_INTERVAL_NS: Final = 20 * S_NS  # documented: send a ping every 20 s
ARGS_PER_REQUEST: Final = 10  # spot: at most 10 args a subscribe request (documented)
DEPTHS: Final = (1, 50, 200, 1000)
LISTING_ATTEMPTS: Final = 3
LISTING_RETRY_NS: Final = 5 * S_NS
RESYNC_TIMEOUT_NS: Final = 30 * S_NS  # no snapshot this long after a resubscribe: reconnect
KLINE_INTERVALS: Final = {
    "1": "1m", "3": "3m", "5": "5m", "15": "15m", "30": "30m", "60": "1h", "120": "2h",
    "240": "4h", "360": "6h", "720": "12h", "D": "1d", "W": "1w", "M": "1M",
}  # fmt: skip
SUPPORTED: Final = frozenset(
    (
        Channel.TRADES,
        Channel.BOOK,
        Channel.BBO,
        Channel.TICKER,
        Channel.CANDLES,
        Channel.DERIVATIVE_TICKER,
        Channel.LIQUIDATIONS,
        Channel.INSTRUMENTS,
        Channel.EVENTS,
    )
)
DERIVATIVE_ONLY: Final = frozenset((Channel.DERIVATIVE_TICKER, Channel.LIQUIDATIONS))
OPTIONS: Final = ("depth", "book", "kline_interval", "instruments_interval_s")
FULL_BOOK_PATH: Final = "/v5/market/full_orderbook"
FULL_BUFFER: Final = 20_000  # orderbook.full deltas kept while the REST snapshot is fetched
SNAPSHOT_RETRY_NS: Final = S_NS
TICKER_FIELDS: Final = frozenset(
    ("lastPrice", "highPrice24h", "lowPrice24h", "prevPrice24h", "volume24h", "turnover24h")
)
DERIVATIVE_FIELDS: Final = frozenset(
    ("markPrice", "indexPrice", "fundingRate", "nextFundingTime", "openInterest",
     "openInterestValue")
)  # fmt: skip
_ID_MASK: Final = (1 << 63) - 1
FILL_BITS: Final = 12  # trade ids from seq: the low bits number the fills of one seq


def trade_id(text: str, seq: int = -1, fill: int = 0) -> int:
    """``Trade.trade_id`` of Bybit's ``i``: the number itself where it is a decimal below 2**63
    (spot). Derivatives send UUIDs, which order nothing, and readers (the bar series) order a
    symbol's trades by id: so ``seq << 12 | fill`` where the trade has Bybit's cross sequence
    ``seq`` (it grows with time; ``fill`` numbers the trades of one ``seq``, a sweep's fills, in
    the order Bybit sends them), stable across collectors. Without ``seq``: the first 63 bits of
    the BLAKE2b hash of ``i`` (unique in practice; orders nothing)."""
    if text.isascii() and text.isdigit() and len(text) <= 19:
        value = int(text)
        if value <= _ID_MASK:
            return value
    if 0 <= seq < 1 << (63 - FILL_BITS) and 0 <= fill < 1 << FILL_BITS:
        return seq << FILL_BITS | fill
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _ID_MASK


def _float(text: object) -> float:
    """A Bybit number (sent as a string); NaN for ``""``/None (not known)."""
    if text is None or text == "":
        return math.nan
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise invalid("number", text) from None


def _levels(pairs: list[tuple[str, str]], side: str) -> list[tuple[float, float]]:
    try:
        levels = [(float(p), float(s)) for p, s in pairs]
    except ValueError as e:
        raise invalid(f"{side} level", str(e)) from None
    check_levels(side, levels)
    return levels


@dataclass(slots=True)
class Book:
    """One topic's live book (``orderbook.{depth}``, or ``orderbook.1`` for bbo)."""

    topic: str
    symbol: str
    native: str
    channel: Channel
    bids: BookSide = field(default_factory=lambda: BookSide(-1))
    asks: BookSide = field(default_factory=lambda: BookSide(1))
    synced: bool = False
    u: int = -1
    seq: int = -1
    row_id: int = -1  # ``update_id`` of the last stored row (its ``seq``, see ``_rows``)
    waiting: str = "waiting for a snapshot"
    resync_since_ns: int = -1  # a resubscribe went out then; -1: none pending
    # orderbook.full (delta only): deltas buffered until the REST snapshot answers
    buffer: list[tuple[int, int, int, list[tuple[float, float]], list[tuple[float, float]]]] = (
        field(default_factory=list)
    )  # (ts, u, seq, bids, asks)
    snapshot_due_ns: int = -1  # -1: no REST snapshot wanted
    snapshot_in_flight: bool = False
    fresh: bool = False  # synced from a REST snapshot and no delta applied since
    stale_snapshots: int = 0  # REST snapshots older than the first buffered delta

    def status(self) -> BookStatus:
        bid, ask = self.bids.best(), self.asks.best()
        return BookStatus(
            symbol=self.symbol if self.channel is Channel.BOOK else f"{self.symbol} (bbo)",
            synced=self.synced,
            bids=len(self.bids.levels),
            asks=len(self.asks.levels),
            best_bid=math.nan if bid is None else bid,
            best_ask=math.nan if ask is None else ask,
            last_update_id=self.u,
            waiting="" if self.synced else self.waiting,
        )


class BybitProtocol(VenueProtocol):
    """One Bybit category: trades, books, bbo, tickers, candles, derivative tickers,
    liquidations and instruments of the configured symbols."""

    exchange = EXCHANGE

    def __init__(self, config: VenueConfig) -> None:
        if config.market not in MARKETS:
            raise ValueError(f"bybit market must be spot, linear or inverse, not {config.market!r}")
        unsupported = set(config.channels) - SUPPORTED
        if unsupported:
            names = ", ".join(sorted(c.value for c in unsupported))
            raise ValueError(f"bybit does not serve {names}")
        if config.market == "spot" and DERIVATIVE_ONLY & set(config.channels):
            names = ", ".join(sorted(c.value for c in DERIVATIVE_ONLY & set(config.channels)))
            raise ValueError(f"bybit spot has no {names} (use --market linear or inverse)")
        unknown = set(config.options) - set(OPTIONS)
        if unknown:
            raise ValueError(f"unknown bybit option(s): {', '.join(sorted(unknown))}")
        if not config.symbols:
            raise ValueError("bybit: no symbols")
        for native in config.symbols:
            if not NATIVE.match(native):
                raise ValueError(f"{native!r} is not a Bybit symbol (e.g. BTCUSDT, BTCUSDH26)")
        self.full = config.options.get("book", "depth") == "full"
        if config.options.get("book", "depth") not in ("depth", "full"):
            raise ValueError(f"option book must be depth or full, got {config.options['book']!r}")
        if self.full and config.market != "spot":
            raise ValueError(
                "option book=full: Bybit serves orderbook.full on spot only (futures release "
                "not determined in the 2026 docs)"
            )
        self.depth = int_option(config.options, "depth", 50, 1, 1000)
        if self.depth not in DEPTHS:
            raise ValueError(f"option depth must be one of 1, 50, 200, 1000, got {self.depth}")
        self.kline = config.options.get("kline_interval", "1")
        if self.kline not in KLINE_INTERVALS:
            raise ValueError(
                f"option kline_interval must be one of {', '.join(KLINE_INTERVALS)}, "
                f"got {self.kline!r}"
            )
        interval_s = int_option(config.options, "instruments_interval_s", 3600, 60, 7 * 86400)
        self.instruments_interval_ns = interval_s * S_NS
        self.config = config
        self.market = config.market
        self.channels = frozenset(config.channels)
        self.url = config.endpoint or WS_URL.format(market=self.market)
        self.rest = (config.rest_endpoint or REST_URL).rstrip("/")
        # Until the instrument list answers: names by their spelling (replays, REST down).
        self.contracts: dict[str, Contract] = {}
        for native in config.symbols:
            guessed = guess(self.market, native)
            if guessed is not None:
                self.contracts[native] = guessed
        self.listed: dict[str, wire.InstrumentInfo] | None = None  # native → entry, once read
        self.active: list[str] = list(config.symbols)  # the symbols subscribed
        self.books_by_topic: dict[str, Book] = {}
        self.tickers: dict[str, dict[str, Any]] = {}  # native → merged latest fields
        self.emitted_instruments: dict[str, Instrument] = {}
        self._now_ns = 0
        self._listing_due_ns = 0  # 0: at once; -1: done or given up
        self._listing_attempts = 0
        self._listing_in_flight = False
        self._listing_pages: list[wire.InstrumentInfo] = []
        self._next_page: str | None = None
        self._listing_given_up = False
        self._next_poll_ns = -1
        self._poll_in_flight = False
        self._open = False
        self._last_ping_ns = 0
        self._outbox: list[tuple[str, bytes]] = []
        self._reconnects: list[str] = []
        # req_id → the topics of that subscribe request (Bybit echoes req_id in its answer)
        self._requests: dict[str, list[str]] = {}
        self._resubscribes = 0
        self._last_fill: dict[str, tuple[int, int]] = {}  # native → (seq, fill) of its last trade

    # -- symbols and topics -------------------------------------------------------------------
    def normalize_symbol(self, native: str) -> str:
        contract = self.contracts.get(native)
        return contract.symbol if contract is not None else native

    def topics(self, native: str) -> list[str]:
        """The topics of one symbol for the configured channels, each once."""
        wanted: list[str] = []
        channels = self.channels
        if Channel.TRADES in channels:
            wanted.append(f"publicTrade.{native}")
        if Channel.BOOK in channels:
            wanted.append(
                f"orderbook.full.{native}" if self.full else f"orderbook.{self.depth}.{native}"
            )
        if Channel.BBO in channels and f"orderbook.1.{native}" not in wanted:
            wanted.append(f"orderbook.1.{native}")
        if channels & {Channel.TICKER, Channel.DERIVATIVE_TICKER}:
            wanted.append(f"tickers.{native}")
        if Channel.CANDLES in channels:
            wanted.append(f"kline.{self.kline}.{native}")
        if Channel.LIQUIDATIONS in channels:
            wanted.append(f"allLiquidation.{native}")
        return wanted

    def subscribe_messages(self) -> tuple[bytes, ...]:
        """The subscribe requests, each with a ``req_id`` naming its topics (a refusal is then
        an event per refused topic and symbol)."""
        topics = [topic for native in self.active for topic in self.topics(native)]
        messages = []
        for n, i in enumerate(range(0, len(topics), ARGS_PER_REQUEST)):
            args = topics[i : i + ARGS_PER_REQUEST]
            req_id = f"s{n}"
            self._requests[req_id] = args
            messages.append(
                msgspec.json.encode({"op": "subscribe", "args": args, "req_id": req_id})
            )
        return tuple(messages)

    # -- connections --------------------------------------------------------------------------
    def connections(self) -> list[StreamSpec]:
        return [
            StreamSpec(
                CONN,
                self.url,
                subscribe=self.subscribe_messages(),
                max_outgoing_per_s=5.0,
            )
        ]

    def opening(self, spec: StreamSpec, now_ns: int) -> Opening | None:
        """Subscribe once the instrument list named the symbols (or could not be had)."""
        self._now_ns = max(self._now_ns, now_ns)
        if self.listed is None and not self._listing_given_up:
            return None
        return Opening(spec.url, self.subscribe_messages())

    def on_open(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self._now_ns = max(self._now_ns, now_ns)
        self._open = True
        self._last_ping_ns = now_ns

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self._now_ns = max(self._now_ns, now_ns)
        self._open = False
        self._outbox = []
        for book in self.books_by_topic.values():
            if book.synced:
                self._event(out, book.native, book.channel, EventKind.GAP, now_ns, now_ns,
                            book.u + 1, -1, f"{conn_key}: connection lost")  # fmt: skip
            book.synced = False
            book.waiting = "waiting for a snapshot (reconnecting)"
            book.resync_since_ns = -1
            book.buffer = []
            book.snapshot_due_ns = -1  # the first delta after the reopen asks for it
        self.tickers.clear()  # a new subscription starts with a snapshot

    def take_messages(self) -> list[tuple[str, bytes]]:
        """Resubscribes of broken books, and the heartbeat ping every 20 s."""
        if self._open and self._now_ns - self._last_ping_ns >= PING_INTERVAL_NS:
            self._last_ping_ns = self._now_ns
            self._outbox.append((CONN, PING))
        taken, self._outbox = self._outbox, []
        return taken

    def take_reconnects(self) -> list[str]:
        for book in self.books_by_topic.values():
            since = book.resync_since_ns
            if (
                since >= 0
                and self._now_ns - since > RESYNC_TIMEOUT_NS
                and CONN not in self._reconnects
            ):
                book.resync_since_ns = -1
                self._reconnects.append(CONN)
        taken, self._reconnects = self._reconnects, []
        return taken

    def books(self) -> list[BookStatus]:
        return [book.status() for book in self.books_by_topic.values()]

    # -- REST: the instrument list ------------------------------------------------------------
    def _listing_request(self, cursor: str = "") -> RestRequest:
        url = f"{self.rest}{INSTRUMENTS_PATH}?category={self.market}"
        if self.market != "spot":
            url += "&limit=1000"
        if cursor:
            url += f"&cursor={cursor}"
        return RestRequest("instruments-info", url, purpose=RestPurpose.SYMBOL_LISTING)

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        self._now_ns = max(self._now_ns, now_ns)
        if self._next_page is not None:  # the next page of a paged instrument list
            cursor, self._next_page = self._next_page, None
            return [self._listing_request(cursor)]
        snapshots = self._snapshot_requests(now_ns)
        if self._listing_in_flight or self._poll_in_flight:
            return snapshots
        if self._listing_due_ns >= 0 and now_ns >= self._listing_due_ns:
            self._listing_in_flight = True
            self._listing_attempts += 1
            self._listing_pages = []
            return [*snapshots, self._listing_request()]
        if (
            Channel.INSTRUMENTS in self.channels
            and self._next_poll_ns >= 0
            and now_ns >= self._next_poll_ns
        ):
            self._poll_in_flight = True
            self._listing_pages = []
            return [*snapshots, self._listing_request()]
        return snapshots

    def _snapshot_requests(self, now_ns: int) -> list[RestRequest]:
        """REST snapshots of the ``orderbook.full`` books waiting for one."""
        requests = []
        for book in self.books_by_topic.values():
            if 0 <= book.snapshot_due_ns <= now_ns and not book.snapshot_in_flight:
                book.snapshot_due_ns = -1
                book.snapshot_in_flight = True
                url = f"{self.rest}{FULL_BOOK_PATH}?category={self.market}&symbol={book.native}"
                requests.append(RestRequest(book.native, url, purpose=RestPurpose.BOOK_SNAPSHOT))
        return requests

    def next_wakeup_ns(self) -> int | None:
        times = [self._now_ns] if self._next_page is not None else []
        if self._listing_due_ns >= 0 and not self._listing_in_flight:
            times.append(self._listing_due_ns)
        if self._next_poll_ns >= 0 and not self._poll_in_flight:
            times.append(self._next_poll_ns)
        if self._open:
            times.append(self._last_ping_ns + PING_INTERVAL_NS)
        times += [b.snapshot_due_ns for b in self.books_by_topic.values() if b.snapshot_due_ns >= 0]
        return min(times) if times else None

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        self._now_ns = max(self._now_ns, recv_ns)
        if request.purpose is RestPurpose.BOOK_SNAPSHOT:
            self._full_snapshot(request.key, response, recv_ns, out)
            return
        if request.purpose is not RestPurpose.SYMBOL_LISTING:
            return
        try:
            if not 200 <= response.status < 300:
                raise ValueError(f"HTTP {response.status}")
            answer = wire.INSTRUMENTS.decode(response.body)
            if answer.retCode != 0:
                raise ValueError(f"retCode {answer.retCode}: {answer.retMsg}")
        except (ValueError, *DECODE_ERRORS) as e:
            self._listing_failed(str(e), recv_ns, out)
            return
        self._listing_pages.extend(answer.result.entries)
        cursor = answer.result.nextPageCursor
        if cursor and answer.result.entries:
            self._next_page = cursor  # asked at once by ``due_requests``
            return
        listed = {info.symbol: info for info in self._listing_pages}
        self._listing_pages = []
        first = self.listed is None
        self.listed = listed
        self._listing_in_flight = self._poll_in_flight = False
        self._listing_due_ns = -1
        if Channel.INSTRUMENTS in self.channels:
            self._next_poll_ns = recv_ns + self.instruments_interval_ns
        if first:
            self._apply_listing(listed, recv_ns, out)
        self._emit_instruments(listed, recv_ns, out)

    def _listing_failed(self, why: str, recv_ns: int, out: RecordSink) -> None:
        log.warning("bybit instruments-info: %s", why)
        self._listing_pages, self._next_page = [], None
        if self._poll_in_flight:  # a later poll failed: try again at the next one
            self._poll_in_flight = False
            self._next_poll_ns = recv_ns + self.instruments_interval_ns
            return
        self._listing_in_flight = False
        if self._listing_attempts >= LISTING_ATTEMPTS:
            self._listing_due_ns = -1
            self._listing_given_up = True
            self._event(out, "", Channel.EVENTS, EventKind.INVALID_SYMBOL, recv_ns, recv_ns, -1,
                        -1, f"instrument list unavailable ({why}): symbols named by their "
                        "spelling, unknown ones not subscribed")  # fmt: skip
            self._drop_unknown(set(self.contracts), recv_ns, out)
        else:
            self._listing_due_ns = recv_ns + LISTING_RETRY_NS

    def _apply_listing(
        self, listed: dict[str, wire.InstrumentInfo], recv_ns: int, out: RecordSink
    ) -> None:
        for native in self.config.symbols:
            info = listed.get(native)
            if info is not None:
                self.contracts[native] = _contract(self.market, info)
        self._drop_unknown(set(listed), recv_ns, out)

    def _drop_unknown(self, known: set[str], recv_ns: int, out: RecordSink) -> None:
        """Symbols the venue does not list are an ``invalid_symbol`` event and not subscribed."""
        for native in self.config.symbols:
            if native not in known:
                self.contracts.pop(native, None)
                self._event(out, native, Channel.EVENTS, EventKind.INVALID_SYMBOL, recv_ns,
                            recv_ns, -1, -1, f"{native} is not a Bybit {self.market} "
                            "instrument (instruments-info)")  # fmt: skip
        self.active = [n for n in self.config.symbols if n in self.contracts]

    def _emit_instruments(
        self, listed: dict[str, wire.InstrumentInfo], recv_ns: int, out: RecordSink
    ) -> None:
        """The configured symbols' instruments: all the first time, then the changed ones."""
        if Channel.INSTRUMENTS not in self.channels:
            return
        for native in self.active:
            info = listed.get(native)
            if info is None:
                continue
            record = _instrument(self.market, info, recv_ns)
            before = self.emitted_instruments.get(native)
            if (
                before is not None
                and msgspec.structs.replace(before, ts=recv_ns, recv_ts=recv_ns) == record
            ):
                continue
            self.emitted_instruments[native] = record
            out.instruments.append(record)

    # -- frames -------------------------------------------------------------------------------
    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        if recv_ns > self._now_ns:
            self._now_ns = recv_ns
        try:
            msg = wire.ENVELOPE.decode(data)
        except DECODE_ERRORS as e:
            raise decode_rejection(data, e) from None
        topic = msg.topic
        if not topic:
            return self._control(msg, recv_ns, out)
        kind, _, native = topic.rpartition(".")
        if native not in self.contracts:
            raise RejectedFrame("unknown_symbol", topic)
        try:
            if kind == "publicTrade":
                return self._trades(native, msg, recv_ns, out)
            if kind == "orderbook.full":
                return self._full_delta(topic, native, msg, recv_ns, out)
            if kind.startswith("orderbook."):
                return self._book(topic, native, msg, recv_ns, out)
            if kind == "tickers":
                return self._ticker(native, msg, recv_ns, out)
            if kind.startswith("kline."):
                return self._klines(native, msg, recv_ns, out)
            if kind == "allLiquidation":
                return self._liquidations(native, msg, recv_ns, out)
        except DECODE_ERRORS as e:
            raise decode_rejection(msg.data, e) from None
        raise RejectedFrame("unknown_topic", topic)

    def _control(self, msg: wire.Envelope, recv_ns: int, out: RecordSink) -> FrameStatus:
        op = msg.op
        if op in ("pong", "ping"):
            return FrameStatus.FILTERED  # heartbeat answers (derivatives: pong; spot: ping)
        if op in ("subscribe", "unsubscribe"):
            if msg.success is False:
                topics = self._requests.get(msg.req_id) if op == "subscribe" else None
                if not topics:
                    self._event(out, "", Channel.EVENTS, EventKind.INVALID_SYMBOL, recv_ns,
                                recv_ns, -1, -1, f"Bybit refused {op}: {msg.ret_msg}")  # fmt: skip
                for topic in topics or ():
                    native = topic.rpartition(".")[2]
                    self._event(out, native, Channel.EVENTS, EventKind.INVALID_SYMBOL, recv_ns,
                                recv_ns, -1, -1, f"Bybit refused subscribe {topic}: "
                                f"{msg.ret_msg}")  # fmt: skip
                return FrameStatus.PROCESSED
            return FrameStatus.FILTERED
        raise RejectedFrame("unknown_message", op or "(no topic and no op)")

    def _trades(
        self, native: str, msg: wire.Envelope, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        symbol = self.contracts[native].symbol
        trades = []
        last_seq, fill = self._last_fill.get(native, (-1, -1))
        for t in wire.TRADES.decode(msg.data):
            if t.S not in ("Buy", "Sell"):
                raise RejectedFrame("invalid_field", f"side {t.S!r}")
            price, size, ts = _float(t.p), _float(t.v), t.T * MS
            check_trade(price, size, ts, recv_ns)
            # the fills of one seq (a sweep) numbered in order, across messages too
            fill = fill + 1 if t.seq == last_seq else 0
            last_seq = t.seq
            tid = trade_id(t.i, t.seq, fill)
            trades.append(Trade(
                exchange=EXCHANGE, symbol=symbol, native_symbol=native, ts=ts, recv_ts=recv_ns,
                trade_id=tid, price=price, size=size, side=BUY if t.S == "Buy" else SELL,
                first_trade_id=tid, last_trade_id=tid,
            ))  # fmt: skip
        out.trades.extend(trades)
        self._last_fill[native] = (last_seq, fill)
        return FrameStatus.PROCESSED

    # -- books --------------------------------------------------------------------------------
    def _book(
        self, topic: str, native: str, msg: wire.Envelope, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        depth = topic.split(".")[1]
        book_wanted = Channel.BOOK in self.channels and not self.full and depth == str(self.depth)
        bbo_wanted = Channel.BBO in self.channels and depth == "1"
        if not (book_wanted or bbo_wanted):
            raise RejectedFrame("unknown_topic", topic)
        body = wire.BOOK.decode(msg.data)
        bids, asks = _levels(body.b, "bid"), _levels(body.a, "ask")
        ts = msg.ts * MS
        check_time("event time", ts, recv_ns)
        book = self.books_by_topic.get(topic)
        if book is None:
            channel = Channel.BOOK if book_wanted else Channel.BBO
            book = Book(topic, self.contracts[native].symbol, native, channel)
            self.books_by_topic[topic] = book
        if msg.type == "snapshot":
            restart = body.u == 1 and book.u > 1
            book.bids.load(bids)
            book.asks.load(asks)
            if self._crossed(book):
                return self._broken(book, ts, recv_ns, out, body.u, "crossed snapshot")
            was_synced = book.synced
            book.u, book.seq, book.synced, book.resync_since_ns = body.u, body.seq, True, -1
            book.waiting = ""
            if book_wanted:
                self._rows(out, book, bids, asks, ts, recv_ns, True, body.u, body.seq)
            if restart:
                why = "u=1 snapshot: Bybit's book service restarted; book overwritten"
                self._event(out, native, book.channel, EventKind.RESYNC, ts, recv_ns, -1, 1, why)
            if not was_synced:
                self._event(out, native, book.channel, EventKind.SYNCED, ts, recv_ns, -1,
                            body.u, f"{topic} snapshot")  # fmt: skip
            if bbo_wanted:
                self._bbo(out, book, ts, recv_ns)
            return FrameStatus.PROCESSED
        if msg.type != "delta":
            raise RejectedFrame("unknown_message", f"book type {msg.type!r}")
        if not book.synced:
            return FrameStatus.FILTERED  # before the (re)subscribe's snapshot: nothing to apply
        if body.u != book.u + 1:
            return self._broken(book, ts, recv_ns, out, body.u, f"u {body.u} after {book.u}")
        for price, size in bids:
            book.bids.set(price, size)
        for price, size in asks:
            book.asks.set(price, size)
        if self._crossed(book):
            return self._broken(book, ts, recv_ns, out, body.u, "crossed after the delta")
        book.u, book.seq = body.u, body.seq
        if book_wanted:
            self._rows(out, book, bids, asks, ts, recv_ns, False, body.u, body.seq)
        if bbo_wanted:
            self._bbo(out, book, ts, recv_ns)
        return FrameStatus.PROCESSED

    @staticmethod
    def _crossed(book: Book) -> bool:
        bid, ask = book.bids.best(), book.asks.best()
        return bid is not None and ask is not None and bid >= ask

    def _broken(
        self, book: Book, ts: int, recv_ns: int, out: RecordSink, received: int, why: str
    ) -> FrameStatus:
        """A gap event, and the topic subscribed again on the same socket (resync in place)."""
        expected = book.u + 1 if book.u >= 0 else -1
        book.synced = False
        book.bids.clear()
        book.asks.clear()
        book.waiting = f"resubscribed after a gap ({why})"
        book.resync_since_ns = recv_ns
        self._event(out, book.native, book.channel, EventKind.GAP, ts, recv_ns, expected,
                    received, f"{book.topic}: {why}")  # fmt: skip
        self._event(out, book.native, book.channel, EventKind.RESYNC, ts, recv_ns, expected,
                    received, f"{book.topic}: resubscribing for a fresh snapshot")  # fmt: skip
        args = [book.topic]
        self._resubscribes += 1
        req_id = f"r{self._resubscribes}"
        self._requests[req_id] = args
        unsubscribe = {"op": "unsubscribe", "args": args}
        self._outbox.append((CONN, msgspec.json.encode(unsubscribe)))
        subscribe = {"op": "subscribe", "args": args, "req_id": req_id}
        self._outbox.append((CONN, msgspec.json.encode(subscribe)))
        return FrameStatus.PROCESSED

    @staticmethod
    def _rows(
        out: RecordSink,
        book: Book,
        bids: list[tuple[float, float]],
        asks: list[tuple[float, float]],
        ts: int,
        recv_ns: int,
        snapshot: bool,
        u: int,
        seq: int,
    ) -> None:
        """Stored rows: ``first_update_id = u``, ``update_id = seq`` (Bybit's cross sequence:
        "for the smaller seq, the data is generated earlier"; ``u`` where a message has none)
        and, on deltas, ``prev_update_id`` = the previous stored message's ``update_id`` (what
        :mod:`hundi.exchanges.bybit.book` checks). Readers order rows by ``update_id``: ``u``
        restarts at 1 after a service restart, so it cannot order them."""
        symbol, native = book.symbol, book.native
        row_id = seq if seq >= 0 else u
        prev = -1 if snapshot else book.row_id
        book.row_id = row_id
        for side, levels in ((BID, bids), (ASK, asks)):
            out.book.extend(
                BookChange(
                    exchange=EXCHANGE,
                    symbol=symbol,
                    native_symbol=native,
                    ts=ts,
                    recv_ts=recv_ns,
                    side=side,
                    price=price,
                    size=size,
                    snapshot=snapshot,
                    first_update_id=u,
                    update_id=row_id,
                    prev_update_id=prev,
                )
                for price, size in levels
            )

    @staticmethod
    def _bbo(out: RecordSink, book: Book, ts: int, recv_ns: int) -> None:
        bid, ask = book.bids.best(), book.asks.best()
        bid_price = 0.0 if bid is None else bid
        ask_price = 0.0 if ask is None else ask
        bid_size = book.bids.levels.get(bid_price, 0.0)
        ask_size = book.asks.levels.get(ask_price, 0.0)
        check_bbo(bid_price, bid_size, ask_price, ask_size, ts, recv_ns)
        out.bbo.append(Bbo(
            exchange=EXCHANGE, symbol=book.symbol, native_symbol=book.native, ts=ts,
            recv_ts=recv_ns, update_id=book.u, bid_price=bid_price, bid_size=bid_size,
            ask_price=ask_price, ask_size=ask_size,
        ))  # fmt: skip

    # -- orderbook.full: delta only, synced from the REST snapshot ----------------------------
    def _full_book(self, topic: str, native: str) -> Book:
        book = self.books_by_topic.get(topic)
        if book is None:
            book = Book(topic, self.contracts[native].symbol, native, Channel.BOOK)
            book.waiting = "waiting for the REST snapshot"
            self.books_by_topic[topic] = book
        return book

    def _full_delta(
        self, topic: str, native: str, msg: wire.Envelope, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        """Deltas apply when ``u`` is the previous ``u`` + 1; before the REST snapshot they are
        buffered; a break (or ``u = 1``: the service restarted) refetches the snapshot."""
        if not (Channel.BOOK in self.channels and self.full):
            raise RejectedFrame("unknown_topic", topic)
        if msg.type != "delta":
            raise RejectedFrame("unknown_message", f"orderbook.full type {msg.type!r}")
        body = wire.BOOK.decode(msg.data)
        bids, asks = _levels(body.b, "bid"), _levels(body.a, "ask")
        ts = msg.ts * MS
        check_time("event time", ts, recv_ns)
        book = self._full_book(topic, native)
        u = body.u
        if book.synced:
            if book.fresh and 1 < u <= book.u:
                return FrameStatus.FILTERED  # already in the REST snapshot
            if u != book.u + 1:
                why = "u=1: Bybit's book service restarted" if u == 1 else f"u {u} after {book.u}"
                self._refetch(book, ts, recv_ns, out, u, why)
                book.buffer.append((ts, u, body.seq, bids, asks))
                return FrameStatus.PROCESSED
            self._apply_full(book, ts, recv_ns, out, u, body.seq, bids, asks)
            return FrameStatus.PROCESSED
        if u == 1:
            book.buffer = []  # a restart while buffering: what came before is another sequence
        book.buffer.append((ts, u, body.seq, bids, asks))
        del book.buffer[:-FULL_BUFFER]
        if not book.snapshot_in_flight and book.snapshot_due_ns < 0:
            book.snapshot_due_ns = recv_ns
        return FrameStatus.PROCESSED

    def _apply_full(
        self,
        book: Book,
        ts: int,
        recv_ns: int,
        out: RecordSink,
        u: int,
        seq: int,
        bids: list[tuple[float, float]],
        asks: list[tuple[float, float]],
    ) -> None:
        for price, size in bids:
            book.bids.set(price, size)
        for price, size in asks:
            book.asks.set(price, size)
        if self._crossed(book):
            self._refetch(book, ts, recv_ns, out, u, "crossed after the delta")
            return
        book.u, book.seq, book.fresh = u, seq, False
        self._rows(out, book, bids, asks, ts, recv_ns, False, u, seq)

    def _refetch(
        self, book: Book, ts: int, recv_ns: int, out: RecordSink, received: int, why: str
    ) -> None:
        """A gap event; the book waits for a new REST snapshot (the stream goes on)."""
        expected = book.u + 1
        book.synced = False
        book.bids.clear()
        book.asks.clear()
        book.buffer = []
        book.waiting = f"refetching the REST snapshot ({why})"
        if not book.snapshot_in_flight:
            book.snapshot_due_ns = recv_ns
        self._event(out, book.native, Channel.BOOK, EventKind.GAP, ts, recv_ns, expected,
                    received, f"{book.topic}: {why}")  # fmt: skip
        self._event(out, book.native, Channel.BOOK, EventKind.RESYNC, ts, recv_ns, expected,
                    received, f"{book.topic}: refetching the REST snapshot")  # fmt: skip

    def _full_snapshot(
        self, native: str, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        """The REST snapshot: buffered deltas up to its ``u`` are dropped; the first one left
        must be ``u + 1``, else the snapshot is older than the stream (stale): fetch again."""
        book = self.books_by_topic.get(f"orderbook.full.{native}")
        if book is None:
            return
        book.snapshot_in_flight = False
        if book.synced or not self._open:
            return  # a reopen asks afresh with its first delta
        try:
            if not 200 <= response.status < 300:
                raise ValueError(f"HTTP {response.status}")
            answer = wire.SNAPSHOT.decode(response.body)
            if answer.retCode != 0 or answer.result is None:
                raise ValueError(f"retCode {answer.retCode}: {answer.retMsg}")
            snap = answer.result
            bids, asks = _levels(snap.b, "bid"), _levels(snap.a, "ask")
        except (ValueError, RejectedFrame, *DECODE_ERRORS) as e:
            log.warning("bybit full_orderbook %s: %s", native, e)
            book.snapshot_due_ns = recv_ns + SNAPSHOT_RETRY_NS
            book.waiting = f"REST snapshot failed ({e}); retrying"
            return
        pending = [entry for entry in book.buffer if entry[1] > snap.u]
        if pending and pending[0][1] != snap.u + 1:
            book.stale_snapshots += 1
            book.snapshot_due_ns = recv_ns
            book.waiting = f"REST snapshot u={snap.u} older than buffered u={pending[0][1]}"
            return
        book.buffer = []
        book.bids.load(bids)
        book.asks.load(asks)
        book.u, book.seq, book.synced, book.fresh, book.waiting = snap.u, snap.seq, True, True, ""
        ts = (snap.ts or recv_ns // MS) * MS
        self._rows(out, book, bids, asks, ts, recv_ns, True, snap.u, snap.seq)
        self._event(out, native, Channel.BOOK, EventKind.SYNCED, ts, recv_ns, -1, snap.u,
                    f"{book.topic}: REST snapshot")  # fmt: skip
        for entry in pending:
            d_ts, u, d_seq, d_bids, d_asks = entry
            if not book.synced:
                book.buffer.append(entry)
                continue
            if u != book.u + 1:  # a delta lost while buffering: a hole, not applied over
                self._refetch(book, d_ts, recv_ns, out, u, f"u {u} after {book.u} (buffered)")
                book.buffer.append(entry)
                continue
            self._apply_full(book, d_ts, recv_ns, out, u, d_seq, d_bids, d_asks)

    # -- tickers ------------------------------------------------------------------------------
    def _ticker(
        self, native: str, msg: wire.Envelope, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        fields = wire.TICKER.decode(msg.data)
        if not isinstance(fields, dict) or fields.get("symbol", native) != native:
            raise RejectedFrame("invalid_message", "tickers data is not this symbol's object")
        ts = msg.ts * MS
        check_time("event time", ts, recv_ns)
        if msg.type == "snapshot":
            state = dict(fields)
        elif msg.type == "delta":
            if native not in self.tickers:
                return FrameStatus.FILTERED  # a delta before the snapshot: nothing to merge into
            # a copy: a rejected delta leaves the merged state as it was
            state = {**self.tickers[native], **{k: v for k, v in fields.items() if v is not None}}
        else:
            raise RejectedFrame("unknown_message", f"tickers type {msg.type!r}")
        values = {k: _float(state.get(k)) for k in TICKER_FIELDS | DERIVATIVE_FIELDS}
        for name in ("lastPrice", "markPrice", "indexPrice"):
            if not math.isnan(values[name]):
                check_positive(name, values[name])
        self.tickers[native] = state
        contract = self.contracts[native]
        if Channel.TICKER in self.channels and (
            msg.type == "snapshot" or TICKER_FIELDS & fields.keys()
        ):
            out.ticker.append(self._ticker_record(native, contract, values, ts, recv_ns))
        if Channel.DERIVATIVE_TICKER in self.channels and (
            msg.type == "snapshot" or DERIVATIVE_FIELDS & fields.keys()
        ):
            nft = values["nextFundingTime"]
            out.derivative_ticker.append(DerivativeTicker(
                exchange=EXCHANGE, symbol=contract.symbol, native_symbol=native, ts=ts,
                recv_ts=recv_ns, source="tickers", mark_price=values["markPrice"],
                index_price=values["indexPrice"], funding_rate=values["fundingRate"],
                predicted_funding_rate=math.nan,
                next_funding_time=0 if math.isnan(nft) else int(nft) * MS,
                open_interest=values["openInterest"],
                # the record's value is in the quote currency; Bybit's inverse
                # ``openInterestValue`` is in the coin, and its ``openInterest`` is already USD
                open_interest_value=(
                    values["openInterest"] if contract.inverse else values["openInterestValue"]
                ),
                size_unit=contract.size_unit,
            ))  # fmt: skip
        return FrameStatus.PROCESSED

    @staticmethod
    def _ticker_record(
        native: str, contract: Contract, v: dict[str, float], ts: int, recv_ns: int
    ) -> Ticker:
        """Inverse contracts count ``volume24h`` in USD and ``turnover24h`` in the coin: the
        record's ``volume`` is the base asset, so they swap."""
        volume, quote_volume = v["volume24h"], v["turnover24h"]
        if contract.inverse:
            volume, quote_volume = quote_volume, volume
        last, prev = v["lastPrice"], v["prevPrice24h"]
        vwap = quote_volume / volume if volume > 0 else math.nan
        change = last - prev
        pct = change / prev * 100 if prev > 0 else math.nan
        return Ticker(
            exchange=EXCHANGE, symbol=contract.symbol, native_symbol=native, ts=ts,
            recv_ts=recv_ns, last_price=last, last_size=math.nan, open_price=prev,
            high_price=v["highPrice24h"], low_price=v["lowPrice24h"], volume=volume,
            quote_volume=quote_volume, vwap=vwap, price_change=change, price_change_pct=pct,
            trade_count=-1, open_time=ts - 86_400 * S_NS, close_time=ts, first_trade_id=-1,
            last_trade_id=-1,
        )  # fmt: skip

    # -- candles and liquidations -------------------------------------------------------------
    def _klines(
        self, native: str, msg: wire.Envelope, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        contract = self.contracts[native]
        candles = []
        for k in wire.KLINES.decode(msg.data):
            if k.interval not in KLINE_INTERVALS:
                raise RejectedFrame("invalid_field", f"interval {k.interval!r}")
            o, h, lo, c = _float(k.open), _float(k.high), _float(k.low), _float(k.close)
            volume, quote_volume = _float(k.volume), _float(k.turnover)
            if contract.inverse:
                volume, quote_volume = quote_volume, volume
            ts = (k.timestamp or msg.ts) * MS
            check_candle(o, h, lo, c, volume, quote_volume, 0.0, ts, recv_ns)
            candles.append(Candle(
                exchange=EXCHANGE, symbol=contract.symbol, native_symbol=native, ts=ts,
                recv_ts=recv_ns, interval=KLINE_INTERVALS[k.interval], open_time=k.start * MS,
                close_time=k.end * MS, open=o, high=h, low=lo, close=c, volume=volume,
                quote_volume=quote_volume, taker_buy_volume=math.nan, trade_count=-1,
                closed=k.confirm,
            ))  # fmt: skip
        out.candles.extend(candles)
        return FrameStatus.PROCESSED

    def _liquidations(
        self, native: str, msg: wire.Envelope, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        contract = self.contracts[native]
        records = []
        for position, item in enumerate(wire.LIQUIDATIONS.decode(msg.data)):
            if item.S not in ("Buy", "Sell"):
                raise RejectedFrame("invalid_field", f"position side {item.S!r}")
            price, size, ts = _float(item.p), _float(item.v), item.T * MS
            check_trade(price, size, ts, recv_ns)
            records.append(Liquidation(
                exchange=EXCHANGE, symbol=contract.symbol, native_symbol=native, ts=ts,
                recv_ts=recv_ns, side=SELL if item.S == "Buy" else BUY, price=price, size=size,
                size_unit=contract.size_unit, completeness=COMPLETE,
                detail=f"position {item.S}; bankruptcy price", position=position,
            ))  # fmt: skip
        out.liquidations.extend(records)
        return FrameStatus.PROCESSED

    # -- events -------------------------------------------------------------------------------
    def _event(
        self,
        out: RecordSink,
        native: str,
        channel: Channel,
        kind: EventKind,
        ts: int,
        recv_ns: int,
        expected: int,
        received: int,
        detail: str,
    ) -> None:
        contract = self.contracts.get(native)
        out.events.append(Event(
            exchange=EXCHANGE, symbol=contract.symbol if contract else native,
            native_symbol=native, ts=ts, recv_ts=recv_ns, kind=kind.value,
            channel=channel.value if channel is not Channel.EVENTS else "", expected=expected,
            received=received, detail=detail,
        ))  # fmt: skip


def _contract(market: str, info: wire.InstrumentInfo) -> Contract:
    try:
        delivery_ms = int(info.deliveryTime or 0)
    except ValueError:
        delivery_ms = 0
    return from_instrument(
        market, info.baseCoin, info.quoteCoin, info.settleCoin, info.contractType, delivery_ms
    )


def _instrument(market: str, info: wire.InstrumentInfo, recv_ns: int) -> Instrument:
    contract = _contract(market, info)
    lot = info.lotSizeFilter.qtyStep or info.lotSizeFilter.basePrecision
    return Instrument(
        exchange=EXCHANGE, symbol=contract.symbol, native_symbol=info.symbol, ts=recv_ns,
        recv_ts=recv_ns, contract_type=contract.contract_type, inverse=contract.inverse,
        base_asset=contract.base, quote_asset=contract.quote, settle_asset=contract.settle,
        contract_size=1.0, size_unit=contract.size_unit,
        tick_size=_safe_float(info.priceFilter.tickSize), lot_size=_safe_float(lot),
        expiry=contract.expiry_ns, status=info.status,
    )  # fmt: skip


def _safe_float(text: str) -> float:
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan
