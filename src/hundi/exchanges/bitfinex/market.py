"""Bitfinex v2 public market data, sans-I/O: trades, P0-P4 books (and their top as ``bbo``),
ticker and candles.

Public channels live on ``wss://api-pub.bitfinex.com/ws/2``, at most
:data:`SUBSCRIPTIONS_PER_CONNECTION` subscriptions a connection (Bitfinex's limit), so the
subscriptions are spread over connections ``public-0``, ``public-1``... Each opens with
``{"event":"conf","flags":F}`` then one ``subscribe`` per channel and symbol; Bitfinex answers
``subscribed`` with the ``chanId`` its frames carry, then ``[CHAN_ID, PAYLOAD, SEQ]``.

Integrity, per connection:

* ``flags`` 65536 (sequence): every frame ends with the connection's public sequence number. A
  skipped number is a ``gap`` event for every book and trade stream of the connection, its
  books are unsynced, and the connection is reopened (make-before-break), which subscribes
  everything again: the fresh book snapshots resync the books. Sequence numbers are per
  connection, so the lost frame may be any channel's: the whole connection is resynced, on a
  fresh socket opened before the old one closes.
* ``flags`` 131072 (checksum): after each book change Bitfinex sends ``[CHAN_ID,"cs",CRC32]``
  (:mod:`hundi.exchanges.bitfinex.checksum`). A mismatch is a ``gap`` event for that book and a
  resync of that book alone, in place, as Bitfinex documents: ``unsubscribe`` its chanId
  (:meth:`MarketData.take_messages`), ``subscribe`` again on ``unsubscribed``, and the new
  chanId's snapshot syncs it. State changes follow what is received only, so a replay (which
  sends nothing) stores the same. :attr:`MarketData.checksums_verified` /
  ``checksum_mismatches`` count them.
* A dropped connection is a ``gap`` for its books and trades; a reopened one a resync.
* Trades missed in a break are fetched back over REST ``trades/{symbol}/hist`` by time window
  (:mod:`hundi.exchanges.bitfinex.backfill`).
* ``info`` 20051 (server restarting) and 20061 (maintenance over: resubscribe) reopen the
  connection; 20060 (maintenance started) is stored as a ``shutdown`` event.

Trades come as a snapshot of the last trades at subscribe, then ``te`` (executed) and ``tu``
(the same trade, updated once written): each trade id is stored once, whichever comes first.
Candles: the snapshot's history and each update; an update of a newer candle first stores the
previous candle's last state as ``closed``. The ticker has no exchange time: its ``ts`` is the
receive time. Raw books (``R0``, order level) are not collected (see ``docs/venue-bitfinex.md``).
"""

from __future__ import annotations

import calendar
import datetime
import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Final

import msgspec

from hundi.book.side import BookSide
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
    decode_rejection,
)
from hundi.exchanges.bitfinex.backfill import (
    DEFAULT_INTERVAL_MS,
    MAX_BACKOFF_NS,
    MAX_LIMIT,
    RATE_LIMITED_BACKOFF_NS,
    RETRIES,
    TradeWindow,
    WindowQueue,
)
from hundi.exchanges.bitfinex.checksum import book_checksum
from hundi.exchanges.bitfinex.messages import (
    BOOK_ENTRY_DECODER,
    BOOK_SNAPSHOT_DECODER,
    CANDLE_DECODER,
    CANDLES_DECODER,
    INT_DECODER,
    KIND_DECODER,
    PUBLIC_EVENT_DECODER,
    PUBLIC_FRAME_DECODER,
    PUBLIC_TRADE_DECODER,
    PUBLIC_TRADES_DECODER,
    TICKER_DECODER,
    BookEntry,
    CandleArray,
    PublicEvent,
    PublicTrade,
)
from hundi.exchanges.bitfinex.symbols import check_pair, normalize, split
from hundi.exchanges.validity import (
    MAX_CLOCK_SKEW_NS,
    check_candle,
    check_ticker,
    check_trade,
    invalid,
)
from hundi.records import (
    ASK,
    BID,
    BUY,
    SELL,
    Bbo,
    BookChange,
    Candle,
    Channel,
    Event,
    EventKind,
    Ticker,
    Trade,
)

log = logging.getLogger("hundi.exchanges.bitfinex")

EXCHANGE = "bitfinex"
PUBLIC_WS = "wss://api-pub.bitfinex.com"
PUBLIC_REST = "https://api-pub.bitfinex.com"
# Bitfinex's lists of trading pairs (spot, derivatives) and currencies: configured symbols are
# checked against them once at start (an unknown one is an ``invalid_symbol`` event)
LISTINGS = ("pub:list:pair:exchange", "pub:list:pair:future", "pub:list:currency")
LISTING_DECODER: Final = msgspec.json.Decoder(list[list[str]])
LISTING_RETRY_NS = 5_000_000_000
LISTING_ATTEMPTS = 3
MS = 1_000_000
DAY_NS = 86_400 * 1_000_000_000
PUBLIC_CHANNELS = frozenset(
    (Channel.TRADES, Channel.BOOK, Channel.BBO, Channel.TICKER, Channel.CANDLES)
)
SUBSCRIPTIONS_PER_CONNECTION = 25
SEQ_FLAG = 65536
EPOCH_SHIFT = 31  # stored update ids: greeting second << 31 | sequence number
CHECKSUM_FLAG = 131072
RECONNECT_INFO = 20051
MAINTENANCE_START = 20060
MAINTENANCE_END = 20061
INVALID_SYMBOL_ERRORS = frozenset((10300, 10301, 10302))  # subscribe failed/dup/bad channel
DUPLICATE_SUBSCRIPTION = 10301
UNSUBSCRIBE_ERRORS = frozenset((10400, 10401))  # unsubscribe failed / not subscribed
TRADES_REMEMBERED = 4096  # ids per symbol kept to store each trade once
TRADES_REMEMBERED_OWING = 1_000_000  # while a backfill window is owed (its dedupe needs them)
RESUBSCRIBE_TIMEOUT_NS = 30_000_000_000  # no new snapshot this long after a mismatch: reopen
OUTBOX_MAX = 1024  # messages not taken (a replay never takes them): the oldest go
HIST_KEY = "trades:"  # + native: the REST key of a backfill request
PRECISIONS = ("P0", "P1", "P2", "P3", "P4")
LENGTHS = ("1", "25", "100", "250")
FREQUENCIES = ("F0", "F1")
CANDLE_INTERVALS: Final = {
    "1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "3h": 10800, "6h": 21600,
    "12h": 43200, "1D": 86400, "1W": 604800, "14D": 1_209_600, "1M": 0,
}  # fmt: skip
MARKET_OPTION_HELP = {
    "book_precision": f"book precision {'/'.join(PRECISIONS)}, default P0",
    "book_length": f"book levels per side {'/'.join(LENGTHS)}, default 25",
    "book_frequency": "F0 realtime or F1 every 2 s, default F0",
    "checksum": "true/false: ask for book checksums (conf flag 131072), default true",
    "sequence": "true/false: ask for sequence numbers (conf flag 65536), default true",
    "candle_interval": f"candles time frame {'/'.join(CANDLE_INTERVALS)}, default 1m",
    "backfill": "true/false: fetch trades missed in a break over REST trades/hist, default true",
    "backfill_interval_ms": f"ms between two trades/hist requests, default {DEFAULT_INTERVAL_MS}",
    "backfill_limit": f"trades per trades/hist page (1..{MAX_LIMIT}), default {MAX_LIMIT}",
    "backfill_requests_per_gap": "trades/hist pages per break window, default 10",
}


def _int_option(options: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ValueError(f"Bitfinex option {name} must be an integer {low}..{high}, not {raw!r}")
    return value


def _flag(options: dict[str, str], name: str) -> bool:
    value = options.get(name, "true").lower()
    if value not in ("true", "false"):
        raise ValueError(f"Bitfinex option {name} must be true or false, not {value!r}")
    return value == "true"


def _choice(options: dict[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = options.get(name, default)
    if value not in allowed:
        raise ValueError(f"Bitfinex option {name} must be one of {', '.join(allowed)}: {value!r}")
    return value


def candle_close_ns(open_ns: int, interval: str) -> int:
    """The last ns of the candle opened at ``open_ns``."""
    seconds = CANDLE_INTERVALS[interval]
    if seconds:
        return open_ns + seconds * 1_000_000_000 - 1
    start = datetime.datetime.fromtimestamp(open_ns // 1_000_000_000, datetime.UTC)
    days = calendar.monthrange(start.year, start.month)[1]
    return open_ns + days * DAY_NS - 1


@dataclass(slots=True)
class LiveBook:
    """One P0-P4 book: the sides keep positive amounts; ``seq`` is the last change's number."""

    bids: BookSide = field(default_factory=lambda: BookSide(-1))
    asks: BookSide = field(default_factory=lambda: BookSide(1))
    synced: bool = False
    seq: int = -1
    waiting: str = "waiting for the subscription's snapshot"
    rows: bool = True  # store BookChange rows (the ``book`` channel asked)
    bbo: bool = False  # store the top of book when it changes (the ``bbo`` channel asked)
    top: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


@dataclass(slots=True)
class Subscription:
    """One channel of one symbol on one connection."""

    channel: Channel
    native: str
    symbol: str
    conn: str
    message: bytes
    key: str = ""  # candles: ``trade:1m:tBTCUSD``
    chan_id: int | None = None
    book: LiveBook | None = None
    seen: set[int] = field(default_factory=set)
    order: deque[int] = field(default_factory=deque)
    candle: Candle | None = None  # the newest candle stored (closed when a newer one comes)
    subscribed: bool = False  # between ``subscribed`` and a close: a dropped stream is a gap
    subscribed_ms: int = -1  # when it last was (our clock): a window's start if no trade yet
    resubscribing: bool = False  # unsubscribed after a checksum mismatch: subscribe again
    snapshot_seen: bool = False  # this subscription's snapshot came (what follows is live)
    last_mts: int = -1  # MTS of the newest trade stored: where a break's window starts
    windows: WindowQueue | None = None  # trades: the break windows owed to the REST backfill


@dataclass(slots=True)
class ConnState:
    """What one public connection has negotiated."""

    subs: list[Subscription]
    by_chan: dict[int, Subscription] = field(default_factory=dict)
    seq: int | None = None  # last sequence number seen
    flags: int = 0  # as acknowledged by the ``conf`` answer
    epoch: int = 0  # this socket's greeting time in s, shifted above its sequence numbers
    resubscribe_due_ns: int = 0  # a book resubscribed in place must be synced by then (0: none)


class MarketData:
    """See the module docstring; :class:`~hundi.exchanges.bitfinex.protocol.BitfinexProtocol`
    routes every connection but ``auth`` here."""

    def __init__(self, config: VenueConfig, channels: frozenset[Channel]) -> None:
        if not config.symbols:
            raise ValueError("Bitfinex market data needs --symbols (e.g. tBTCUSD)")
        options = config.options
        self.precision = _choice(options, "book_precision", "P0", PRECISIONS)
        self.length = _choice(options, "book_length", "25", LENGTHS)
        self.frequency = _choice(options, "book_frequency", "F0", FREQUENCIES)
        self.interval = _choice(options, "candle_interval", "1m", tuple(CANDLE_INTERVALS))
        checksum, sequence = _flag(options, "checksum"), _flag(options, "sequence")
        self.flags = (SEQ_FLAG if sequence else 0) | (CHECKSUM_FLAG if checksum else 0)
        self.symbols = {n: normalize(n) for n in map(check_pair, config.symbols)}
        self.base = (config.endpoint or PUBLIC_WS).rstrip("/") + "/ws/2"
        rest = (config.rest_endpoint or PUBLIC_REST).rstrip("/")
        self._listing_urls = {name: f"{rest}/v2/conf/{name}" for name in LISTINGS}
        self._listed: dict[str, frozenset[str]] = {}
        self._listing_due_ns = 0  # 0: ask at the first chance; -1: done (or given up)
        self._listing_attempts = 0
        self._listing_in_flight = False
        self.invalid_symbols: list[str] = []
        self.store_rows = Channel.BOOK in channels
        self.store_bbo = Channel.BBO in channels
        if self.store_bbo:  # Bitfinex has no BBO channel: the top of the P0 book is it
            channels = channels | {Channel.BOOK}
        order = (Channel.BOOK, Channel.TRADES, Channel.TICKER, Channel.CANDLES)
        wanted = [(c, n) for c in order if c in channels for n in self.symbols]
        self.conns: dict[str, ConnState] = {}
        self.by_key: dict[tuple[str, str], Subscription] = {}
        for start in range(0, len(wanted), SUBSCRIPTIONS_PER_CONNECTION):
            conn = f"public-{start // SUBSCRIPTIONS_PER_CONNECTION}"
            subs = [self._subscription(c, n, conn) for c, n in wanted[start:][:25]]
            self.conns[conn] = ConnState(subs)
            for sub in subs:
                self.by_key[(sub.channel.value, sub.key or sub.native)] = sub
        self.checksums_verified = 0
        self.checksum_mismatches = 0
        self.sequence_checked = 0
        self._last_epoch = 0
        self._reconnects: list[str] = []
        self._outbox: list[tuple[str, bytes]] = []  # ``take_messages``: resubscribes in place
        self.backfill = _flag(options, "backfill")
        self.hist_interval_ns = (
            _int_option(options, "backfill_interval_ms", DEFAULT_INTERVAL_MS, 0, 3_600_000) * MS
        )
        self.hist_limit = _int_option(options, "backfill_limit", MAX_LIMIT, 1, MAX_LIMIT)
        self.hist_requests = _int_option(options, "backfill_requests_per_gap", 10, 1, 10_000)
        self._hist_url = f"{rest}/v2/trades"
        self._hist_next_ns = 0
        self._hist_backoff_ns = 0
        self._hist_in_flight: tuple[Subscription, TradeWindow] | None = None
        self._now_ns = 0

    def _subscription(self, channel: Channel, native: str, conn: str) -> Subscription:
        symbol = self.symbols[native]
        request: dict[str, str] = {"event": "subscribe", "channel": channel.value}
        key = ""
        if channel is Channel.BOOK:
            request |= {"symbol": native, "prec": self.precision, "freq": self.frequency,
                        "len": self.length}  # fmt: skip
        elif channel is Channel.CANDLES:
            key = f"trade:{self.interval}:{native}"
            request["key"] = key
        else:
            request["symbol"] = native
        sub = Subscription(channel, native, symbol, conn, msgspec.json.encode(request), key=key)
        if channel is Channel.BOOK:
            sub.book = LiveBook(rows=self.store_rows, bbo=self.store_bbo)
        elif channel is Channel.TRADES:
            sub.windows = WindowQueue(EXCHANGE, symbol, native)
        return sub

    # -- connections --------------------------------------------------------------------------
    def connections(self) -> list[StreamSpec]:
        conf = msgspec.json.encode({"event": "conf", "flags": self.flags})
        return [
            StreamSpec(
                key=conn,
                url=self.base,
                subscribe=(conf, *(sub.message for sub in state.subs)),
                max_outgoing_per_s=10.0,
                stale_after_s=60.0,  # heartbeats every 15 s on every channel
            )
            for conn, state in self.conns.items()
        ]

    def owns(self, conn: str) -> bool:
        return conn in self.conns

    def on_open(self, conn: str, now_ns: int, out: RecordSink) -> None:
        """Nothing to do: the I/O layer may report the open after the socket's first frames
        (it paces the subscribe messages); the ``info`` greeting starts a connection afresh."""

    def on_close(self, conn: str, now_ns: int, out: RecordSink) -> None:
        state = self.conns[conn]
        for sub in state.subs:
            if sub.subscribed and sub.channel in (Channel.BOOK, Channel.TRADES):
                self._gap(out, sub, now_ns, now_ns, -1, -1, f"{conn} closed")
            sub.subscribed = False
        self._fresh_connection(state)

    def take_reconnects(self) -> list[str]:
        taken, self._reconnects = self._reconnects, []
        return taken

    # -- symbol listing -------------------------------------------------------------------------
    def due_requests(self, now_ns: int) -> list[RestRequest]:
        """The conf lists once at start, then the trades of break windows, paced."""
        self._now_ns = max(self._now_ns, now_ns)
        requests = self._listing_requests(now_ns)
        page = self._hist_request(now_ns)
        if page is not None:
            requests.append(page)
        return requests

    def _listing_requests(self, now_ns: int) -> list[RestRequest]:
        """The three conf lists, once at start (retried a few times on failure)."""
        if self._listing_in_flight or self._listing_due_ns < 0 or now_ns < self._listing_due_ns:
            return []
        self._listing_in_flight = True
        self._listing_attempts += 1
        return [
            RestRequest(name, url, purpose=RestPurpose.SYMBOL_LISTING)
            for name, url in self._listing_urls.items()
            if name not in self._listed
        ]

    def next_wakeup_ns(self) -> int | None:
        times = [self._listing_due_ns] if self._listing_due_ns > 0 else []
        if self._hist_in_flight is None and self._owed_stream() is not None:
            times.append(max(self._hist_next_ns, self._now_ns))
        return min(times) if times else None

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        self._now_ns = max(self._now_ns, recv_ns)
        if request.purpose is RestPurpose.TRADE_BACKFILL:
            self._hist_answer(response, recv_ns, out)
            return
        if request.purpose is not RestPurpose.SYMBOL_LISTING:
            return
        try:
            if not 200 <= response.status < 300:
                raise ValueError(f"status {response.status}")
            lists = LISTING_DECODER.decode(response.body)  # [[NAME, ...]]
            self._listed[request.key] = frozenset(lists[0] if lists else ())
        except (ValueError, *DECODE_ERRORS) as e:
            log.warning("Bitfinex %s: %s", request.key, e)
        if any(name not in self._listed for name in self._listing_urls):
            if request.key not in self._listed:  # this one failed: ask again later, or give up
                self._listing_in_flight = False
                if self._listing_attempts >= LISTING_ATTEMPTS:
                    log.warning("Bitfinex symbol lists unavailable: symbols not checked")
                    self._listing_due_ns = -1
                else:
                    self._listing_due_ns = recv_ns + LISTING_RETRY_NS
            return
        self._listing_in_flight = False
        self._listing_due_ns = -1
        self._check_listed(recv_ns, out)

    def _check_listed(self, recv_ns: int, out: RecordSink) -> None:
        pairs = self._listed["pub:list:pair:exchange"] | self._listed["pub:list:pair:future"]
        currencies = self._listed["pub:list:currency"]
        for native, symbol in self.symbols.items():
            base, quote = split(native)
            if native[1:] in pairs and {base, quote} <= currencies:
                continue
            self.invalid_symbols.append(native)
            out.events.append(Event(
                exchange=EXCHANGE, symbol=symbol, native_symbol=native, ts=recv_ns,
                recv_ts=recv_ns, kind=EventKind.INVALID_SYMBOL.value, channel="",
                expected=-1, received=-1,
                detail=f"{native} is not a Bitfinex trading pair (conf pub:list:pair:*)",
            ))  # fmt: skip

    # -- trades fetched back (see hundi.exchanges.bitfinex.backfill) ---------------------------
    def _owed_stream(self) -> Subscription | None:
        for state in self.conns.values():
            for sub in state.subs:
                if sub.windows is not None and sub.windows.due() is not None:
                    return sub
        return None

    def _hist_request(self, now_ns: int) -> RestRequest | None:
        """The next page of the oldest owed window: one in flight, one per interval."""
        if self._hist_in_flight is not None or now_ns < self._hist_next_ns:
            return None
        sub = self._owed_stream()
        if sub is None or sub.windows is None:
            return None
        window = sub.windows.due()
        assert window is not None
        window.requests_left -= 1
        self._hist_in_flight = (sub, window)
        self._hist_next_ns = now_ns + self.hist_interval_ns
        query = f"start={window.cursor_ms}&end={window.end_ms}&limit={self.hist_limit}&sort=1"
        return RestRequest(
            key=HIST_KEY + sub.native,
            url=f"{self._hist_url}/{sub.native}/hist?{query}",
            purpose=RestPurpose.TRADE_BACKFILL,
        )

    def _hist_answer(self, response: RestResponse, recv_ns: int, out: RecordSink) -> None:
        asked, self._hist_in_flight = self._hist_in_flight, None
        if asked is None:
            return
        sub, window = asked
        windows = sub.windows
        if windows is None or window not in windows.windows or window.end_ms is None:
            return  # abandoned meanwhile
        trades: list[PublicTrade] | None = None
        if 200 <= response.status < 300:
            try:
                trades = PUBLIC_TRADES_DECODER.decode(response.body)
            except DECODE_ERRORS:
                trades = None
        if trades is None:
            window.failures += 1
            window.requests_left += 1  # a failed answer spends a retry, not a page
            if response.status == 429:
                self._hist_backoff_ns = RATE_LIMITED_BACKOFF_NS
            else:
                self._hist_backoff_ns = min(
                    max(2 * self._hist_backoff_ns, self.hist_interval_ns, 1_000 * MS),
                    MAX_BACKOFF_NS,
                )
            self._hist_next_ns = max(self._hist_next_ns, recv_ns + self._hist_backoff_ns)
            log.warning("%s trades/hist answered %d (failure %d of %d)", sub.native,
                        response.status, window.failures, RETRIES)  # fmt: skip
            if window.failures >= RETRIES:
                why = f"REST failed {RETRIES} times (last status {response.status})"
                windows.finish(window, recv_ns, out.events, why)
            return
        self._hist_backoff_ns = 0
        start, end = window.cursor_ms, window.end_ms
        page = sorted((t for t in trades if start <= t.mts <= end), key=lambda t: (t.mts, t.id))
        window.returned.update(t.id for t in page)
        for t in page:
            try:
                check_trade(t.price, abs(t.amount), t.mts * MS, t.mts * MS)
            except RejectedFrame as e:
                log.warning("%s backfilled trade %d refused (%s)", sub.native, t.id, e)
                continue
            if t.id in sub.seen:
                continue
            self._remember(sub, t.id)
            window.note(t.id)
            out.trades.append(_trade(sub, t, recv_ns))
        if len(trades) < self.hist_limit:
            windows.finish(window, recv_ns, out.events, "")
            return
        last = max(t.mts for t in trades)
        if last >= end:
            windows.finish(window, recv_ns, out.events, "")
            return
        # a full page: the next starts at its last ms (inclusive: the ids dedupe it); a page
        # all within one ms cannot be paged by time, so the next starts one ms later
        window.cursor_ms = last if last > start else last + 1
        if window.requests_left <= 0:
            windows.finish(window, recv_ns, out.events,
                           f"at most {self.hist_requests} trades/hist pages per break")  # fmt: skip

    def finishing_requests(self, now_ns: int) -> list[RestRequest] | None:
        if self._owed_stream() is None and self._hist_in_flight is None:
            return None
        page = self._hist_request(now_ns)
        return [page] if page is not None else []

    def owed_ids(self) -> int:
        """Break windows owed (Bitfinex ids are not contiguous: a window's count is unknown)."""
        return sum(sub.windows.owed() for s in self.conns.values() for sub in s.subs if sub.windows)

    def abandon(self, now_ns: int, out: RecordSink) -> None:
        self._hist_in_flight = None
        for state in self.conns.values():
            for sub in state.subs:
                if sub.windows is not None:
                    sub.windows.abandon(now_ns, out.events)

    # -- per-book resubscribe -----------------------------------------------------------------
    def take_messages(self) -> list[tuple[str, bytes]]:
        taken, self._outbox = self._outbox, []
        return taken

    def _send(self, conn: str, message: bytes) -> None:
        self._outbox.append((conn, message))
        if len(self._outbox) > OUTBOX_MAX:
            del self._outbox[0]

    def books(self) -> list[BookStatus]:
        statuses = []
        for state in self.conns.values():
            for sub in state.subs:
                book = sub.book
                if book is None:
                    continue
                bid, ask = book.bids.best(), book.asks.best()
                statuses.append(BookStatus(
                    symbol=sub.symbol, synced=book.synced, bids=len(book.bids.levels),
                    asks=len(book.asks.levels), best_bid=math.nan if bid is None else bid,
                    best_ask=math.nan if ask is None else ask, last_update_id=book.seq,
                    waiting="" if book.synced else book.waiting,
                ))  # fmt: skip
        return statuses

    def _fresh_connection(self, state: ConnState) -> None:
        """A new socket: channel ids and sequence numbers start again; its own subscribes
        replace any resubscribe still owed."""
        state.by_chan.clear()
        state.seq = None
        state.flags = 0
        state.resubscribe_due_ns = 0
        conns = {sub.conn for sub in state.subs}
        self._outbox = [(c, m) for c, m in self._outbox if c not in conns]
        for sub in state.subs:
            sub.chan_id = None
            sub.resubscribing = False
            if sub.book is not None and sub.book.synced:
                sub.book.synced = False
                sub.book.waiting = "waiting for the new connection's snapshot"

    def _resubscribe_overdue(self, conn: str, state: ConnState) -> None:
        """A book resubscribed in place got no snapshot in time (an answer lost): the whole
        connection is reopened, whose subscribes resync it."""
        state.resubscribe_due_ns = 0
        if any(sub.resubscribing or (sub.book and not sub.book.synced) for sub in state.subs):
            log.warning("%s: a book resubscribed in place is still not synced; reopening", conn)
            self._reconnect(conn)

    def _resync(self, conn: str, recv_ns: int, out: RecordSink) -> None:
        """Resubscribe ``conn`` on a fresh socket: a ``resync`` event per broken book on it."""
        for sub in self.conns[conn].subs:
            if sub.book is not None and sub.subscribed and not sub.book.synced:
                out.events.append(Event(
                    exchange=EXCHANGE, symbol=sub.symbol, native_symbol=sub.native,
                    ts=recv_ns, recv_ts=recv_ns, kind=EventKind.RESYNC.value,
                    channel=Channel.BOOK.value, expected=-1, received=-1,
                    detail=f"resubscribing {conn} on a new connection",
                ))  # fmt: skip
        self._reconnect(conn)

    def _reconnect(self, conn: str) -> None:
        if conn not in self._reconnects:
            self._reconnects.append(conn)

    # -- frames -------------------------------------------------------------------------------
    def receive(self, conn: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        state = self.conns[conn]
        if state.resubscribe_due_ns and recv_ns > state.resubscribe_due_ns:
            self._resubscribe_overdue(conn, state)
        try:
            if data[:1] == b"{":
                return self._event(conn, state, PUBLIC_EVENT_DECODER.decode(data), recv_ns, out)
            frame = PUBLIC_FRAME_DECODER.decode(data)
            body = frame.body
            if _head(body, 1) == b'"':
                kind: str = KIND_DECODER.decode(body)
                payload, seq_raw = frame.second, frame.third
            else:
                kind, payload, seq_raw = "", body, frame.second
            seq = -1
            if state.flags & SEQ_FLAG:
                # first: a skipped number breaks the books before this frame touches them
                seq = INT_DECODER.decode(payload if kind == "hb" else seq_raw)
                if not 0 <= seq < 1 << EPOCH_SHIFT:
                    raise RejectedFrame("invalid_message", f"sequence number {seq}")
                self._sequence(conn, state, seq, recv_ns, out)
                seq |= state.epoch  # stored ids: see hundi.exchanges.bitfinex.book
            sub = state.by_chan.get(frame.chan_id)
            if kind == "hb":
                if sub is not None and sub.windows is not None and sub.windows.open_ended:
                    self._quiet_since_break(sub, recv_ns)
                return FrameStatus.FILTERED  # Bitfinex beats before ``subscribed`` too
            if sub is None:
                raise RejectedFrame("unknown_channel", str(frame.chan_id))
            if kind == "cs":
                return self._checksum(sub, INT_DECODER.decode(payload), recv_ns, out)
            if sub.channel is Channel.BOOK:
                return self._book(sub, payload, seq, recv_ns, out)
            if sub.channel is Channel.TRADES:
                return self._trades(sub, kind, payload, recv_ns, out)
            if kind:
                raise RejectedFrame("unknown_event", f"{kind} on {sub.channel.value}")
            if sub.channel is Channel.TICKER:
                return self._ticker(sub, payload, recv_ns, out)
            return self._candles(sub, payload, recv_ns, out)
        except DECODE_ERRORS as e:
            raise decode_rejection(data, e) from None

    def _sequence(
        self, conn: str, state: ConnState, seq: int, recv_ns: int, out: RecordSink
    ) -> None:
        last = state.seq
        state.seq = seq
        if last is None:
            return
        self.sequence_checked += 1
        if seq == last + 1:
            return
        log.warning("%s: sequence %d after %d; resubscribing", conn, seq, last)
        for sub in state.subs:
            if sub.subscribed and sub.channel in (Channel.BOOK, Channel.TRADES):
                self._gap(out, sub, recv_ns, recv_ns, last + 1, seq, f"{conn} skipped sequence")
        self._resync(conn, recv_ns, out)

    def _gap(
        self,
        out: RecordSink,
        sub: Subscription,
        ts: int,
        recv_ns: int,
        expected: int,
        received: int,
        detail: str,
    ) -> None:
        book = sub.book
        if book is not None:
            if not book.synced:
                return  # already broken: the resync is on its way
            book.synced = False
            book.waiting = f"waiting for a fresh snapshot (after {detail})"
        if sub.windows is not None and self.backfill:
            start = sub.last_mts if sub.last_mts >= 0 else sub.subscribed_ms
            sub.windows.open(start, detail, recv_ns, out.events)
        out.events.append(Event(
            exchange=EXCHANGE, symbol=sub.symbol, native_symbol=sub.native, ts=ts,
            recv_ts=recv_ns, kind=EventKind.GAP.value, channel=sub.channel.value,
            expected=expected, received=received, detail=detail,
        ))  # fmt: skip

    def _event(
        self, conn: str, state: ConnState, msg: PublicEvent, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        if msg.event == "subscribed":
            key = msg.key or msg.symbol
            sub = self.by_key.get((msg.channel, key))
            if sub is None or sub.conn != conn or msg.chan_id is None:
                raise RejectedFrame("unknown_subscription", f"{msg.channel} {key}")
            sub.chan_id = msg.chan_id
            sub.subscribed = True
            sub.subscribed_ms = recv_ns // MS
            sub.snapshot_seen = False
            sub.resubscribing = False
            state.by_chan[msg.chan_id] = sub
            return FrameStatus.FILTERED
        if msg.event == "info":
            if msg.version is not None:  # the greeting of a new socket (also after a rollover)
                self._fresh_connection(state)
                self._last_epoch = max(recv_ns // 1_000_000_000, self._last_epoch + 1)
                state.epoch = self._last_epoch << EPOCH_SHIFT
                return FrameStatus.FILTERED
            if msg.code in (RECONNECT_INFO, MAINTENANCE_END):
                self._reconnect(conn)
                kind = EventKind.RECONNECT
            elif msg.code == MAINTENANCE_START:
                kind = EventKind.SHUTDOWN
            else:
                return FrameStatus.FILTERED
            out.events.append(Event(
                exchange=EXCHANGE, symbol="", native_symbol="", ts=recv_ns, recv_ts=recv_ns,
                kind=kind.value, channel="", expected=-1, received=-1,
                detail=f"{conn}: info {msg.code} {msg.msg}".strip(),
            ))  # fmt: skip
            return FrameStatus.PROCESSED
        if msg.event == "conf":
            if msg.status == "OK" and msg.flags is not None:
                state.flags = msg.flags
                return FrameStatus.FILTERED
            raise RejectedFrame("conf_refused", f"flags {msg.flags}: {msg.msg}")
        if msg.event == "unsubscribed":
            gone = state.by_chan.pop(msg.chan_id, None) if msg.chan_id is not None else None
            if gone is not None:
                gone.subscribed = False
                gone.chan_id = None
                if gone.resubscribing:  # the book resyncs in place: subscribe it again
                    self._send(conn, gone.message)
            return FrameStatus.FILTERED
        if msg.event == "pong":
            return FrameStatus.FILTERED
        if msg.event == "error":
            if msg.code in UNSUBSCRIBE_ERRORS:
                log.info("%s: unsubscribe refused (code %s %s)", conn, msg.code, msg.msg)
                if any(sub.resubscribing for sub in state.subs):
                    self._reconnect(conn)  # the book cannot resync in place: a new socket
                # else: an unsubscribe that reached a newer socket than the one it was meant for
                return FrameStatus.FILTERED
            if msg.code == DUPLICATE_SUBSCRIPTION:
                sub = self.by_key.get((msg.channel, msg.key or msg.symbol))
                if sub is not None and sub.conn == conn and sub.subscribed:
                    return FrameStatus.FILTERED  # a resubscribe that met a fresh subscribe
            if msg.code in INVALID_SYMBOL_ERRORS and msg.symbol:
                out.events.append(Event(
                    exchange=EXCHANGE, symbol=normalize(msg.symbol), native_symbol=msg.symbol,
                    ts=recv_ns, recv_ts=recv_ns, kind=EventKind.INVALID_SYMBOL.value,
                    channel=msg.channel, expected=-1, received=-1,
                    detail=f"Bitfinex refused {msg.channel} {msg.symbol}: {msg.msg}",
                ))  # fmt: skip
                return FrameStatus.PROCESSED
            raise RejectedFrame("server_error", f"code {msg.code}: {msg.msg}")
        raise RejectedFrame("unknown_event", msg.event)

    # -- books --------------------------------------------------------------------------------
    def _book(
        self, sub: Subscription, payload: msgspec.Raw, seq: int, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        book = sub.book
        assert book is not None
        if _head(payload, 2) in LIST_HEADS:
            entries = BOOK_SNAPSHOT_DECODER.decode(payload)
            for entry in entries:
                _check_entry(entry)
            bids = [(e.price, e.amount) for e in entries if e.amount > 0]
            asks = [(e.price, -e.amount) for e in entries if e.amount < 0]
            book.bids.load(bids)
            book.asks.load(asks)
            book.synced, book.seq, book.waiting = True, seq, ""
            state = self.conns[sub.conn]
            if state.resubscribe_due_ns and not any(s.resubscribing for s in state.subs):
                state.resubscribe_due_ns = 0
            rows = [(BID, p, a) for p, a in bids] + [(ASK, p, a) for p, a in asks]
            if book.bbo:
                self._top(sub, book, seq, recv_ns, out)
            out.book.extend(
                BookChange(
                    exchange=EXCHANGE, symbol=sub.symbol, native_symbol=sub.native,
                    ts=recv_ns, recv_ts=recv_ns, side=side, price=price, size=size,
                    snapshot=True, first_update_id=seq, update_id=seq, prev_update_id=-1,
                )
                for side, price, size in (rows if book.rows else ())
            )  # fmt: skip
            out.events.append(Event(
                exchange=EXCHANGE, symbol=sub.symbol, native_symbol=sub.native, ts=recv_ns,
                recv_ts=recv_ns, kind=EventKind.SYNCED.value, channel=Channel.BOOK.value,
                expected=-1, received=seq, detail=f"{sub.conn} snapshot",
            ))  # fmt: skip
            return FrameStatus.PROCESSED
        entry = BOOK_ENTRY_DECODER.decode(payload)
        _check_entry(entry)
        if not book.synced:
            return FrameStatus.FILTERED  # broken: the resubscribe's snapshot restarts it
        side_sign = BID if entry.amount > 0 else ASK
        size = abs(entry.amount) if entry.count > 0 else 0.0
        (book.bids if side_sign == BID else book.asks).set(entry.price, size)
        prev, book.seq = book.seq, seq
        if book.bbo:
            self._top(sub, book, seq, recv_ns, out)
        if book.rows:
            out.book.append(BookChange(
                exchange=EXCHANGE, symbol=sub.symbol, native_symbol=sub.native, ts=recv_ns,
                recv_ts=recv_ns, side=side_sign, price=entry.price, size=size, snapshot=False,
                first_update_id=seq, update_id=seq, prev_update_id=prev,
            ))  # fmt: skip
        return FrameStatus.PROCESSED

    @staticmethod
    def _top(sub: Subscription, book: LiveBook, seq: int, recv_ns: int, out: RecordSink) -> None:
        """A ``Bbo`` when the book's best levels changed (price or size; an empty side is 0)."""
        bid, ask = book.bids.best(), book.asks.best()
        top = (
            bid or 0.0, book.bids.levels[bid] if bid is not None else 0.0,
            ask or 0.0, book.asks.levels[ask] if ask is not None else 0.0,
        )  # fmt: skip
        if top == book.top:
            return
        book.top = top
        out.bbo.append(Bbo(
            exchange=EXCHANGE, symbol=sub.symbol, native_symbol=sub.native, ts=recv_ns,
            recv_ts=recv_ns, update_id=seq if seq >= 0 else recv_ns, bid_price=top[0],
            bid_size=top[1], ask_price=top[2], ask_size=top[3],
        ))  # fmt: skip

    def _checksum(
        self, sub: Subscription, expected: int, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        book = sub.book
        if book is None:
            raise RejectedFrame("unknown_event", f"cs on {sub.channel.value}")
        if not book.synced:
            return FrameStatus.FILTERED
        ours = book_checksum(book.bids.levels, book.asks.levels)
        if ours == expected:
            self.checksums_verified += 1
            return FrameStatus.FILTERED
        self.checksum_mismatches += 1
        log.warning("%s: book checksum %d, Bitfinex says %d; resubscribing", sub.native, ours,
                    expected)  # fmt: skip
        self._gap(out, sub, recv_ns, recv_ns, expected, ours, "checksum mismatch")
        self._resubscribe(sub, recv_ns, out)
        return FrameStatus.PROCESSED

    def _resubscribe(self, sub: Subscription, recv_ns: int, out: RecordSink) -> None:
        """Resync one book in place, as Bitfinex documents: unsubscribe its channel, subscribe
        again when ``unsubscribed`` comes; the new chanId's snapshot syncs it."""
        if sub.chan_id is None:
            return
        sub.resubscribing = True
        state = self.conns[sub.conn]
        if not state.resubscribe_due_ns:
            state.resubscribe_due_ns = recv_ns + RESUBSCRIBE_TIMEOUT_NS
        self._send(sub.conn, msgspec.json.encode({"event": "unsubscribe", "chanId": sub.chan_id}))
        out.events.append(Event(
            exchange=EXCHANGE, symbol=sub.symbol, native_symbol=sub.native, ts=recv_ns,
            recv_ts=recv_ns, kind=EventKind.RESYNC.value, channel=Channel.BOOK.value,
            expected=-1, received=-1,
            detail=f"unsubscribing chanId {sub.chan_id} on {sub.conn} and subscribing again",
        ))  # fmt: skip

    # -- trades, ticker, candles --------------------------------------------------------------
    def _trades(
        self, sub: Subscription, kind: str, payload: msgspec.Raw, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        if kind in ("te", "tu"):
            trades = [PUBLIC_TRADE_DECODER.decode(payload)]
        elif not kind:
            sub.snapshot_seen = True
            # the snapshot's history may reach back beyond the clock-skew bound: not news
            oldest = recv_ns - MAX_CLOCK_SKEW_NS
            listed = PUBLIC_TRADES_DECODER.decode(payload)
            trades = sorted((t for t in listed if t.mts * MS >= oldest), key=lambda t: t.id)
        else:
            raise RejectedFrame("unknown_event", kind)
        for t in trades:  # the whole frame is checked before anything is stored
            check_trade(t.price, abs(t.amount), t.mts * MS, recv_ns)
        before = len(out.trades)
        for t in trades:
            if t.id not in sub.seen:
                self._remember(sub, t.id)
                out.trades.append(_trade(sub, t, recv_ns))
                sub.last_mts = max(sub.last_mts, t.mts)
        windows = sub.windows
        if kind and trades and windows is not None and windows.open_ended:
            windows.close(trades[0].mts, self.hist_requests)  # live again: the window ends
        return FrameStatus.PROCESSED if len(out.trades) > before else FrameStatus.FILTERED

    def _quiet_since_break(self, sub: Subscription, recv_ns: int) -> None:
        """A heartbeat of a trades channel whose snapshot came: no trade since it, and the
        stream is live, so a quiet market's window ends now (our clock: its trades after now
        come live)."""
        if sub.snapshot_seen and sub.windows is not None:
            sub.windows.close(recv_ns // MS, self.hist_requests)

    @staticmethod
    def _remember(sub: Subscription, trade_id: int) -> None:
        sub.seen.add(trade_id)
        sub.order.append(trade_id)
        owing = sub.windows is not None and bool(sub.windows.windows)
        while len(sub.order) > (TRADES_REMEMBERED_OWING if owing else TRADES_REMEMBERED):
            sub.seen.discard(sub.order.popleft())

    def _ticker(
        self, sub: Subscription, payload: msgspec.Raw, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        t = TICKER_DECODER.decode(payload)
        open_price = t.last_price - t.daily_change
        check_ticker(t.last_price, 0.0, open_price, t.high, t.low, 0.0, t.volume, 0.0,
                     t.daily_change, t.daily_change_relative, recv_ns, recv_ns)  # fmt: skip
        out.ticker.append(Ticker(
            exchange=EXCHANGE, symbol=sub.symbol, native_symbol=sub.native, ts=recv_ns,
            recv_ts=recv_ns, last_price=t.last_price, last_size=math.nan,
            open_price=open_price, high_price=t.high, low_price=t.low,
            volume=t.volume, quote_volume=math.nan, vwap=math.nan,
            price_change=t.daily_change, price_change_pct=t.daily_change_relative * 100.0,
            trade_count=-1, open_time=recv_ns - DAY_NS, close_time=recv_ns,
            first_trade_id=-1, last_trade_id=-1,
        ))  # fmt: skip
        return FrameStatus.PROCESSED

    def _candles(
        self, sub: Subscription, payload: msgspec.Raw, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        if _head(payload, 2) in LIST_HEADS:
            history = sorted(CANDLES_DECODER.decode(payload), key=lambda c: c.mts)
            newest = sub.candle.open_time // MS if sub.candle is not None else -1
            fresh = [c for c in history if c.mts >= newest]
            for i, c in enumerate(fresh):
                candle = self._candle(sub, c, recv_ns, closed=i < len(fresh) - 1)
                out.candles.append(candle)
                sub.candle = candle
            return FrameStatus.PROCESSED if fresh else FrameStatus.FILTERED
        c = CANDLE_DECODER.decode(payload)
        last = sub.candle
        if last is not None and c.mts * MS < last.open_time:
            return FrameStatus.FILTERED  # an older candle than the one stored: nothing new
        if last is not None and c.mts * MS > last.open_time and not last.closed:
            out.candles.append(msgspec.structs.replace(last, ts=recv_ns, recv_ts=recv_ns,
                                                       closed=True))  # fmt: skip
        candle = self._candle(sub, c, recv_ns, closed=False)
        out.candles.append(candle)
        sub.candle = candle
        return FrameStatus.PROCESSED

    def _candle(self, sub: Subscription, c: CandleArray, recv_ns: int, closed: bool) -> Candle:
        # history is old by design: only the values are checked, not the time
        check_candle(c.open, c.high, c.low, c.close, c.volume, 0.0, 0.0, recv_ns, recv_ns)
        open_ns = c.mts * MS
        return Candle(
            exchange=EXCHANGE, symbol=sub.symbol, native_symbol=sub.native, ts=recv_ns,
            recv_ts=recv_ns, interval=self.interval, open_time=open_ns,
            close_time=candle_close_ns(open_ns, self.interval), open=c.open, high=c.high,
            low=c.low, close=c.close, volume=c.volume, quote_volume=math.nan,
            taker_buy_volume=math.nan, trade_count=-1, closed=closed,
        )  # fmt: skip


LIST_HEADS: Final = (b"[[", b"[]")


def _head(raw: msgspec.Raw, n: int) -> bytes:
    """The first ``n`` bytes of a raw JSON value (snapshot lists start ``[[`` or are ``[]``)."""
    return bytes(memoryview(raw)[:n])


def _check_entry(entry: BookEntry) -> None:
    """A level's price is positive, its count not negative, its amount signed (never 0)."""
    if not 0.0 < entry.price <= 1e18:
        raise invalid("book price", entry.price)
    if entry.count < 0:
        raise invalid("book count", entry.count)
    if entry.amount == 0.0:
        raise invalid("book amount", entry.amount)


def _trade(sub: Subscription, t: PublicTrade, recv_ns: int) -> Trade:
    return Trade(
        exchange=EXCHANGE, symbol=sub.symbol, native_symbol=sub.native, ts=t.mts * MS,
        recv_ts=recv_ns, trade_id=t.id, price=t.price, size=abs(t.amount),
        side=BUY if t.amount > 0 else SELL, first_trade_id=t.id, last_trade_id=t.id,
    )  # fmt: skip
