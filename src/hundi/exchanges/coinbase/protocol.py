"""Coinbase Exchange public market data (ws-feed), sans-I/O.

Connections (``wss://ws-feed.exchange.coinbase.com``, one ``subscribe`` message each):

* ``matches``: the ``matches`` channel (→ trades), ``heartbeat`` (per product, once a second:
  its ``last_trade_id``) and ``ticker`` (→ ticker and/or bbo). Trade ids increase by one per
  product: a skipped id, a ``last_match`` (sent on every subscribe) ahead of the last id seen
  or a ``heartbeat`` whose ``last_trade_id`` is ahead is a ``gap`` event, and the missing ids
  are fetched back over REST ``/products/{id}/trades`` (:mod:`.backfill`).
* ``level2``: the public ``level2_batch`` channel (→ book): a ``snapshot`` per product on
  subscribe, then ``l2update`` changes every 50 ms. The channel carries no sequence numbers, so
  the integrity rule is the book itself: a snapshot or update that leaves the book crossed
  (best bid >= best ask) is a ``gap`` event, and the connection is re-subscribed (reconnected)
  for fresh snapshots. Kept apart from ``matches`` so a book resync never interrupts trades.

REST ``/products`` is asked once: a configured product Coinbase does not list, or lists as not
``online`` or with trading disabled, gets an ``invalid_symbol`` event.

Order-level feeds (the ``full`` channel, ``book_l3``) run as separate sans-I/O protocols on
their own connections: :func:`sub_protocols` is the one place that adds them, and every
:class:`VenueProtocol` call is forwarded to them by connection key or REST request key.
"""

from __future__ import annotations

import math
from typing import Final

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
from hundi.exchanges.coinbase.backfill import ProductBackfill, TradeIds, taker_side
from hundi.exchanges.coinbase.full import OPTION_HELP as FULL_OPTIONS
from hundi.exchanges.coinbase.full import full_feed
from hundi.exchanges.coinbase.messages import (
    FEED_DECODER,
    PRODUCTS_DECODER,
    TYPE_DECODER,
    TYPES,
    ErrorMsg,
    Heartbeat,
    L2Update,
    LastMatch,
    Match,
    Snapshot,
    Subscriptions,
    TickerMsg,
)
from hundi.exchanges.coinbase.symbols import normalize
from hundi.exchanges.coinbase.timeparse import parse_time
from hundi.exchanges.sequence import IdVerdict
from hundi.exchanges.validity import (
    MAX_CLOCK_SKEW_NS,
    check_amount,
    check_bbo,
    check_levels,
    check_positive,
    check_time,
    check_trade,
)
from hundi.records import (
    ASK,
    BID,
    Bbo,
    BookChange,
    Channel,
    Event,
    EventKind,
    Ticker,
    Trade,
)

EXCHANGE: Final = "coinbase"
WS_URL: Final = "wss://ws-feed.exchange.coinbase.com"
REST_URL: Final = "https://api.exchange.coinbase.com"
MATCHES: Final = "matches"  # connection keys
LEVEL2: Final = "level2"
PRODUCTS_KEY: Final = "products"
TRADES_KEY: Final = "trades:"  # + native: a backfill request
SUPPORTED: Final = frozenset(
    (Channel.TRADES, Channel.TICKER, Channel.BBO, Channel.BOOK, Channel.BOOK_L3, Channel.EVENTS)
)
# ``level2_batch`` is public; ``level2`` (unbatched) needs a signed subscribe since 2023. Replays
# of captures made on ``level2`` (its frames are the same) parse it without subscribing.
BOOK_CHANNELS: Final = ("level2_batch", "level2")
OPTIONS: Final = frozenset(
    ("backfill_requests_per_gap", "level2_channel", "rest_interval_ms", *FULL_OPTIONS)
)
DAY_NS: Final = 86_400 * 1_000_000_000
# l2updates kept per book between a break and the re-subscribe's snapshot (seconds of traffic)
MAX_PENDING_UPDATES: Final = 100_000
LISTING_WAIT_NS: Final = 10 * 1_000_000_000  # longest a first subscribe waits for /products
MS: Final = 1_000_000


def sub_protocols(config: VenueConfig) -> list[VenueProtocol]:
    """Extra feeds on their own connections (the order-level ``full`` feed, ``book_l3``), each a
    :class:`VenueProtocol` whose calls :class:`CoinbaseProtocol` forwards."""
    full = full_feed(config)
    return [] if full is None else [full]


class Book:
    """One product's L2 book from ``level2_batch`` and whether it can be trusted.

    A resync re-subscribes make-before-break (the I/O layer's rollover): the old socket keeps
    delivering while the new one's snapshot is held back. So after a break the updates arriving
    meanwhile are kept (``pending``), and the new snapshot is brought forward with them: sizes are
    absolute, so replaying every update since the break over a snapshot taken at or after the
    break gives the book as of the last one. A snapshot taken before the break (a rollover that
    was under way) misses what the old socket delivered in between: it is not used
    (``break_ns``). ``level2_batch`` batches are cut per connection, so the new socket's frames
    are not byte-identical to the old one's and the I/O layer's dedup lets them through: an
    update older than the last one applied (``last_ns``) is dropped as a copy.
    """

    __slots__ = (
        "asks",
        "bids",
        "break_ns",
        "fresh",
        "last_ns",
        "native",
        "pending",
        "symbol",
        "synced",
        "waiting",
    )

    def __init__(self, native: str, symbol: str) -> None:
        self.native = native
        self.symbol = symbol
        self.bids = BookSide(-1)
        self.asks = BookSide(1)
        self.synced = False
        # a new connection: its snapshot is the start of the stream, nothing to bring forward
        self.fresh = True
        # after a break on a live connection: the (ts, changes) received since, in order
        self.pending: list[tuple[int, list[tuple[int, float, float]]]] | None = None
        self.waiting = "waiting for the level2 snapshot"
        self.break_ns = -1  # venue time of the last break: an older snapshot misses updates
        self.last_ns = -1  # venue time of the last update applied or kept

    def crossed(self) -> tuple[float, float] | None:
        bid, ask = self.bids.best(), self.asks.best()
        if bid is not None and ask is not None and bid >= ask:
            return bid, ask
        return None

    def status(self) -> BookStatus:
        bid, ask = self.bids.best(), self.asks.best()
        return BookStatus(
            symbol=self.symbol,
            synced=self.synced,
            bids=len(self.bids.levels),
            asks=len(self.asks.levels),
            best_bid=math.nan if bid is None else bid,
            best_ask=math.nan if ask is None else ask,
            last_update_id=-1,
            waiting="" if self.synced else self.waiting,
        )


def _int_option(config: VenueConfig, name: str, default: int) -> int:
    raw = config.options.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"coinbase option {name}={raw!r} is not an integer") from None
    if value < 0:
        raise ValueError(f"coinbase option {name}={raw!r} must be >= 0")
    return value


class CoinbaseProtocol(VenueProtocol):
    """Trades, ticker/bbo and the L2 book of Coinbase Exchange products."""

    exchange = EXCHANGE

    def __init__(self, config: VenueConfig) -> None:
        unsupported = set(config.channels) - SUPPORTED
        if unsupported:
            raise ValueError(
                f"coinbase does not serve {', '.join(sorted(c.value for c in unsupported))} "
                f"(it serves {', '.join(sorted(c.value for c in SUPPORTED))})"
            )
        if config.market not in ("spot", ""):
            raise ValueError(f"coinbase has one market, spot, not {config.market!r}")
        if not config.symbols:
            raise ValueError("coinbase: no symbols (give product ids such as BTC-USD)")
        unknown = sorted(set(config.options) - OPTIONS)
        if unknown:
            raise ValueError(
                f"unknown coinbase option {unknown[0]!r} (known: {', '.join(sorted(OPTIONS))})"
            )
        self.level2_channel = config.options.get("level2_channel", "level2_batch")
        if self.level2_channel not in BOOK_CHANNELS:
            raise ValueError(
                f"coinbase option level2_channel={self.level2_channel!r}: use level2_batch "
                "(public) or level2 (replays only)"
            )
        if (
            self.level2_channel == "level2"
            and config.authenticate
            and Channel.BOOK in config.channels
        ):
            raise ValueError(
                "coinbase level2 (unbatched) needs an authenticated subscribe, which this "
                "collector does not sign: use level2_channel=level2_batch (public)"
            )
        self.config = config
        self.symbols = {native: normalize(native) for native in dict.fromkeys(config.symbols)}
        self.ws_url = (config.endpoint or WS_URL).rstrip("/")
        self.rest_url = (config.rest_endpoint or REST_URL).rstrip("/")
        channels = set(config.channels)
        self.trades_on = Channel.TRADES in channels
        self.ticker_on = Channel.TICKER in channels
        self.bbo_on = Channel.BBO in channels
        self.book_on = Channel.BOOK in channels
        self.book = {n: Book(n, s) for n, s in self.symbols.items()} if self.book_on else {}
        self.ids = {n: TradeIds() for n in self.symbols}
        per_gap = _int_option(config, "backfill_requests_per_gap", 10)
        self.backfill = {
            n: ProductBackfill(n, s, self.ids[n], per_gap) for n, s in self.symbols.items()
        }
        self.rest_interval_ns = _int_option(config, "rest_interval_ms", 150) * MS
        self._rest_next_ns = 0  # no REST call before (pacing, 429 back-off)
        self._rest_backoff_ns = 0
        self._in_flight: dict[str, tuple[int, int]] = {}  # REST key -> (after, limit) asked
        self._products_wanted = True  # the listing, asked once (replays answer it from files)
        self.invalid_symbols: list[str] = []
        self._listed = False  # the /products answer came
        self._listing_since_ns = 0  # first open waiting for it
        self._reconnects: list[str] = []
        self._refusals: dict[str, int] = {}  # connection -> subscribes refused in a row
        self._reconnect_due: dict[str, int] = {}  # connection -> reconnect after a refusal at
        self._ticker_seen: dict[str, tuple[int, int]] = {}  # product -> (sequence, trade_id)
        self._open: set[str] = set()  # connections open (on_open without on_close since)
        self._now_ns = 0
        # Sub-feeds on their own connections (see :func:`sub_protocols`).
        self.subs = sub_protocols(config)
        self._sub_of_conn = {s.key: sub for sub in self.subs for s in sub.connections()}
        self._sub_of_request: dict[str, VenueProtocol] = {}

    # ------------------------------------------------------------------ connections
    def _subscribe(self, channels: list[str], products: list[str] | None = None) -> bytes:
        return msgspec.json.encode(
            {
                "type": "subscribe",
                "product_ids": list(self.symbols) if products is None else products,
                "channels": channels,
            }
        )

    def connections(self) -> list[StreamSpec]:
        specs = []
        feed = []
        if self.trades_on:
            feed += ["matches", "heartbeat"]
        if self.ticker_on or self.bbo_on:
            feed.append("ticker")
        if feed:
            specs.append(StreamSpec(MATCHES, self.ws_url, (self._subscribe(feed),)))
        if self.book_on:  # heartbeats keep quiet products' connection from looking stale
            channels = [self.level2_channel, "heartbeat"]
            specs.append(StreamSpec(LEVEL2, self.ws_url, (self._subscribe(channels),)))
        for sub in self.subs:
            specs += sub.connections()
        return specs

    def opening(self, spec: StreamSpec, now_ns: int) -> Opening | None:
        """Subscribe only to listed products: Coinbase refuses a whole ``subscribe`` naming one
        it does not list. Waits for the ``/products`` answer, at most ``LISTING_WAIT_NS``
        (REST down: subscribe to all as configured)."""
        sub = self._sub_of_conn.get(spec.key)
        if sub is not None:
            return sub.opening(spec, now_ns)
        if not self._listed:
            if not self._listing_since_ns:
                self._listing_since_ns = now_ns
            if now_ns - self._listing_since_ns < LISTING_WAIT_NS:
                return None
        if not self.invalid_symbols:
            return Opening(spec.url, spec.subscribe)
        products = [n for n in self.symbols if n not in self.invalid_symbols]
        if not products:
            # nothing listed to ask for (the invalid_symbol events say why): Coinbase drops a
            # socket that sends no subscribe within 5 s, so none is opened
            return None
        messages = []
        for message in spec.subscribe:
            channels = msgspec.json.decode(message)["channels"]
            messages.append(self._subscribe(channels, products))
        return Opening(spec.url, tuple(messages))

    def redact(self, conn_key: str, data: bytes) -> bytes:
        sub = self._sub_of_conn.get(conn_key)
        return sub.redact(conn_key, data) if sub else data

    def normalize_symbol(self, native: str) -> str:
        return self.symbols.get(native) or normalize(native)

    def on_open(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        sub = self._sub_of_conn.get(conn_key)
        if sub is not None:
            sub.on_open(conn_key, now_ns, out)
            return
        if conn_key in self._open:
            # a make-before-break switch (replays of our captures show its OPEN): the stream
            # goes on without a break, its snapshots are handled as the live run handled them
            return
        self._open.add(conn_key)
        if conn_key == LEVEL2:
            for book in self.book.values():  # the subscribe brings fresh snapshots
                book.synced = False
                book.fresh = True
                book.pending = None
                book.waiting = "waiting for the level2 snapshot"
                book.break_ns = -1
                book.last_ns = -1

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        sub = self._sub_of_conn.get(conn_key)
        if sub is not None:
            sub.on_close(conn_key, now_ns, out)
            return
        self._open.discard(conn_key)
        if conn_key != LEVEL2:
            return  # trades: the next last_match shows what was missed
        for book in self.book.values():
            if book.synced:
                book.synced = False
                book.waiting = "connection closed; waiting for a new snapshot"
                self._book_event(book, EventKind.GAP, now_ns, now_ns, f"{conn_key} closed", out)

    def take_reconnects(self) -> list[str]:
        now = self._now_ns
        for key, due in list(self._reconnect_due.items()):
            if now >= due:
                del self._reconnect_due[key]
                self._ask_reconnect(key)
        taken, self._reconnects = self._reconnects, []
        for sub in self.subs:
            taken += sub.take_reconnects()
        return taken

    def books(self) -> list[BookStatus]:
        found = [book.status() for book in self.book.values()]
        for sub in self.subs:
            found += sub.books()
        return found

    # ------------------------------------------------------------------ frames
    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        sub = self._sub_of_conn.get(conn_key)
        if sub is not None:
            return sub.receive(conn_key, data, recv_ns, out)
        try:
            msg = FEED_DECODER.decode(data)
        except DECODE_ERRORS as e:
            raise self._rejection(data, e) from None
        self._now_ns = max(self._now_ns, recv_ns)
        match msg:
            case L2Update():
                return self._l2update(msg, recv_ns, out)
            case LastMatch():
                return self._last_match(msg, recv_ns, out)
            case Match():
                return self._match(msg, recv_ns, out)
            case TickerMsg():
                return self._ticker(msg, recv_ns, out)
            case Heartbeat():
                return self._heartbeat(msg, conn_key, recv_ns, out)
            case Snapshot():
                return self._snapshot(msg, recv_ns, out)
            case Subscriptions():
                self._refusals.pop(conn_key, None)  # accepted: the next refusal waits 1 s
                return FrameStatus.FILTERED
            case ErrorMsg():
                return self._venue_error(msg, conn_key, recv_ns, out)

    def _venue_error(
        self, error: ErrorMsg, conn_key: str, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        """Coinbase refused the subscribe (``Failed to subscribe``): the connection receives
        nothing, so the refusal is stored and the connection reopened, backing off (doubling
        from 1 s up to 60 s) so a lasting refusal does not spin."""
        detail = f"{error.message}: {error.reason}".strip(": ")
        tries = self._refusals.get(conn_key, 0) + 1
        self._refusals[conn_key] = tries
        delay_ns = min(1_000 * MS << min(tries - 1, 6), 60_000 * MS)
        self._reconnect_due[conn_key] = recv_ns + delay_ns
        out.events.append(Event(
            exchange=EXCHANGE, symbol="", native_symbol="", ts=recv_ns, recv_ts=recv_ns,
            kind=EventKind.RECONNECT.value, channel="", expected=-1, received=-1,
            detail=f"{conn_key}: the venue refused the subscribe ({detail}); reconnecting in "
            f"{delay_ns / 1e9:g} s",
        ))  # fmt: skip
        raise RejectedFrame("venue_error", detail)

    @staticmethod
    def _rejection(data: bytes, error: Exception) -> RejectedFrame:
        """An unknown ``type`` is ``unknown_message``; anything else as the decoder says."""
        if isinstance(error, msgspec.ValidationError):
            try:
                kind = TYPE_DECODER.decode(data).type
            except DECODE_ERRORS:
                return decode_rejection(data, error)
            if kind and kind not in TYPES:
                return RejectedFrame("unknown_message", kind)
        return decode_rejection(data, error)

    def _known(self, product: str) -> str:
        symbol = self.symbols.get(product)
        if symbol is None:
            raise RejectedFrame("unknown_symbol", product)
        return symbol

    def _match(self, msg: Match, recv_ns: int, out: RecordSink) -> FrameStatus:
        native = msg.product_id
        symbol = self._known(native)
        if not self.trades_on:
            raise RejectedFrame("unexpected_channel", "matches")
        ts = parse_time(msg.time)
        check_trade(msg.price, msg.size, ts, recv_ns)
        side = taker_side(msg.side)
        tid = msg.trade_id
        ids = self.ids[native]
        expected = ids.expected()
        verdict = ids.check(tid, tid)
        if verdict is IdVerdict.DUPLICATE or verdict is IdVerdict.EXPIRED:
            return FrameStatus.FILTERED  # a resent match
        out.trades.append(Trade(
            exchange=EXCHANGE, symbol=symbol, native_symbol=native, ts=ts, recv_ts=recv_ns,
            trade_id=tid, price=msg.price, size=msg.size, side=side, first_trade_id=tid,
            last_trade_id=tid,
        ))  # fmt: skip
        if verdict is IdVerdict.AHEAD:
            self._trade_gap(native, symbol, expected, tid, ts, recv_ns, out, "match")
        return FrameStatus.PROCESSED

    def _last_match(self, msg: LastMatch, recv_ns: int, out: RecordSink) -> FrameStatus:
        """The product's latest trade, resent on every subscribe. The first of a run only
        starts the id window: an earlier run may have stored it, and if not, the restart's gap
        (``recover``) fetches it. A later one shows what a reconnect missed. One older than the
        validity window (an illiquid product) is not stored; the ids it names still count."""
        native = msg.product_id
        self._known(native)
        if not self.trades_on:
            raise RejectedFrame("unexpected_channel", "matches")
        ids = self.ids[native]
        tid = msg.trade_id
        if ids.last < 0:
            check_positive("price", msg.price)
            check_positive("size", msg.size)
            taker_side(msg.side)
            parse_time(msg.time)
            ids.start_after(tid)
            return FrameStatus.FILTERED
        ts = parse_time(msg.time)
        if ts < recv_ns - MAX_CLOCK_SKEW_NS:
            missed = ids.declare_through(tid)  # the trade itself is fetched with the gap
            if missed is None:
                return FrameStatus.FILTERED
            self._trade_gap(native, self.symbols[native], *missed, recv_ns, recv_ns, out,
                            "an old last_match")  # fmt: skip
            return FrameStatus.PROCESSED
        return self._match(msg, recv_ns, out)

    def _trade_gap(
        self,
        native: str,
        symbol: str,
        lo: int,
        hi: int,
        ts: int,
        recv_ns: int,
        out: RecordSink,
        seen_in: str,
    ) -> None:
        out.events.append(Event(
            exchange=EXCHANGE, symbol=symbol, native_symbol=native, ts=ts, recv_ts=recv_ns,
            kind=EventKind.GAP.value, channel=Channel.TRADES.value, expected=lo, received=hi,
            detail=f"trade ids {lo}..{hi - 1} missed (seen in {seen_in})",
        ))  # fmt: skip
        self.backfill[native].want(lo, hi, recv_ns, out)

    def _heartbeat(
        self, msg: Heartbeat, conn_key: str, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        native = msg.product_id
        symbol = self._known(native)
        if conn_key != MATCHES or not self.trades_on:
            return FrameStatus.FILTERED  # keep-alive of the book connection
        missed = self.ids[native].declare_through(msg.last_trade_id)
        if missed is not None:
            ts = parse_time(msg.time) if msg.time else recv_ns
            self._trade_gap(native, symbol, *missed, ts, recv_ns, out, "heartbeat")
            return FrameStatus.PROCESSED
        return FrameStatus.FILTERED

    def _ticker(self, msg: TickerMsg, recv_ns: int, out: RecordSink) -> FrameStatus:
        """Ticker and/or BBO rows. Coinbase resends the current ticker on every subscribe: one
        not newer (``sequence``, else ``trade_id``) than the last seen is filtered, and so is
        one older than the validity window (a quiet product's subscribe-time ticker)."""
        native = msg.product_id
        symbol = self._known(native)
        ts = parse_time(msg.time) if msg.time else recv_ns
        key = (msg.sequence, msg.trade_id)
        seen = self._ticker_seen.get(native)
        if seen is not None and (
            key[0] <= seen[0] if key[0] >= 0 and seen[0] >= 0 else key[1] <= seen[1]
        ):
            return FrameStatus.FILTERED
        if ts < recv_ns - MAX_CLOCK_SKEW_NS and (self.ticker_on or self.bbo_on):
            self._ticker_seen[native] = key
            return FrameStatus.FILTERED
        produced = False
        if self.bbo_on and msg.best_bid_size is not None and msg.best_ask_size is not None:
            check_bbo(msg.best_bid, msg.best_bid_size, msg.best_ask, msg.best_ask_size, ts, recv_ns)
            out.bbo.append(Bbo(
                exchange=EXCHANGE, symbol=symbol, native_symbol=native, ts=ts, recv_ts=recv_ns,
                update_id=msg.sequence, bid_price=msg.best_bid, bid_size=msg.best_bid_size,
                ask_price=msg.best_ask, ask_size=msg.best_ask_size,
            ))  # fmt: skip
            produced = True
        if self.ticker_on:
            check_positive("last price", msg.price)
            for field, value in (("last size", msg.last_size), ("open", msg.open_24h),
                                 ("high", msg.high_24h), ("low", msg.low_24h),
                                 ("volume", msg.volume_24h)):  # fmt: skip
                check_amount(field, value)
            check_time("event time", ts, recv_ns)
            change = msg.price - msg.open_24h
            out.ticker.append(Ticker(
                exchange=EXCHANGE, symbol=symbol, native_symbol=native, ts=ts, recv_ts=recv_ns,
                last_price=msg.price, last_size=msg.last_size, open_price=msg.open_24h,
                high_price=msg.high_24h, low_price=msg.low_24h, volume=msg.volume_24h,
                quote_volume=math.nan, vwap=math.nan, price_change=change,
                price_change_pct=100.0 * change / msg.open_24h if msg.open_24h else 0.0,
                trade_count=-1, open_time=ts - DAY_NS, close_time=ts, first_trade_id=-1,
                last_trade_id=msg.trade_id,
            ))  # fmt: skip
            produced = True
        if produced:
            self._ticker_seen[native] = key
            return FrameStatus.PROCESSED
        if self.bbo_on:
            raise RejectedFrame("invalid_message", "ticker without best_bid_size/best_ask_size")
        raise RejectedFrame("unexpected_channel", "ticker")

    # ------------------------------------------------------------------ book
    def _snapshot(self, msg: Snapshot, recv_ns: int, out: RecordSink) -> FrameStatus:
        native = msg.product_id
        self._known(native)
        book = self.book.get(native)
        if book is None:
            raise RejectedFrame("unexpected_channel", "level2 snapshot")
        check_levels("bid", msg.bids)
        check_levels("ask", msg.asks)
        if book.synced or (not book.fresh and book.pending is None):
            # a re-subscribe's copy for a book its stream kept continuous
            return FrameStatus.FILTERED
        ts = parse_time(msg.time) if msg.time else recv_ns
        if not book.fresh and msg.time and ts < book.break_ns:
            # taken before the break (a rollover under way): the updates the old socket
            # delivered between it and the break are in neither; wait for a newer one
            book.waiting = "the re-subscribe's snapshot predates the break; re-subscribing again"
            self._ask_reconnect(LEVEL2)
            return FrameStatus.FILTERED
        book.bids.load(msg.bids)
        book.asks.load(msg.asks)
        pending = book.pending or []
        for update_ts, changes in pending:
            for side, price, size in changes:
                (book.bids if side == BID else book.asks).set(price, size)
            ts = max(ts, update_ts)
        book.pending = None
        crossed = book.crossed()
        if crossed is not None:
            why = f"snapshot crossed: bid {crossed[0]} >= ask {crossed[1]}"
            self._break(book, ts, recv_ns, out, why)
            return FrameStatus.PROCESSED
        book.synced = True
        book.fresh = False
        book.waiting = ""
        if msg.time:  # a venue time (without one, ``ts`` is our clock: not comparable)
            book.last_ns = max(book.last_ns, ts)
        rows = out.book
        for side, levels in ((BID, book.bids.levels), (ASK, book.asks.levels)):
            for price, size in levels.items():
                rows.append(self._row(book, ts, recv_ns, side, price, size, True))
        detail = "level2 snapshot"
        if pending:
            detail += f" brought forward with {len(pending)} updates received since the break"
        self._book_event(book, EventKind.SYNCED, ts, recv_ns, detail, out)
        return FrameStatus.PROCESSED

    def _l2update(self, msg: L2Update, recv_ns: int, out: RecordSink) -> FrameStatus:
        native = msg.product_id
        self._known(native)
        book = self.book.get(native)
        if book is None:
            raise RejectedFrame("unexpected_channel", "level2 update")
        ts = parse_time(msg.time)
        if ts < book.last_ns:
            # an older batch: another socket's copy of what was applied (rollover overlap)
            return FrameStatus.FILTERED
        changes = []
        for side_text, price, size in msg.changes:  # validate all first: rejected = unapplied
            if side_text == "buy":
                side = BID
            elif side_text == "sell":
                side = ASK
            else:
                raise RejectedFrame("invalid_field", f"side {side_text!r}")
            if not (0.0 < price <= 1e18 and 0.0 <= size <= 1e18):
                check_levels("bid" if side == BID else "ask", [(price, size)])
            changes.append((side, price, size))
        if not book.synced:
            pending = book.pending
            if pending is None:
                return FrameStatus.FILTERED  # before the first snapshot of a connection
            book.last_ns = ts
            if len(pending) >= MAX_PENDING_UPDATES:
                # the snapshot is late: start again from a snapshot taken after this update
                pending.clear()
                book.break_ns = ts
                book.waiting = "too many updates before the snapshot; re-subscribing again"
                self._ask_reconnect(LEVEL2)
                return FrameStatus.FILTERED
            pending.append((ts, changes))
            return FrameStatus.PROCESSED  # kept for the snapshot to come
        book.last_ns = ts
        bids, asks = book.bids, book.asks
        for side, price, size in changes:
            (bids if side == BID else asks).set(price, size)
        crossed = book.crossed()
        if crossed is not None:
            why = f"l2update crossed the book: bid {crossed[0]} >= ask {crossed[1]}"
            self._break(book, ts, recv_ns, out, why)
            return FrameStatus.PROCESSED
        out.book.extend(self._row(book, ts, recv_ns, s, p, q, False) for s, p, q in changes)
        return FrameStatus.PROCESSED

    def _break(self, book: Book, ts: int, recv_ns: int, out: RecordSink, why: str) -> None:
        """The book cannot be trusted: a gap, then a re-subscribe for a fresh snapshot."""
        book.synced = False
        book.fresh = False
        book.pending = []  # what the old socket delivers until the new snapshot
        book.break_ns = ts
        book.waiting = f"{why}; re-subscribing"
        self._book_event(book, EventKind.GAP, ts, recv_ns, why, out)
        self._book_event(
            book, EventKind.RESYNC, ts, recv_ns, f"reconnecting {LEVEL2} for a snapshot", out
        )
        self._ask_reconnect(LEVEL2)

    def _ask_reconnect(self, conn_key: str) -> None:
        if conn_key not in self._reconnects:
            self._reconnects.append(conn_key)

    @staticmethod
    def _row(
        book: Book, ts: int, recv_ns: int, side: int, price: float, size: float, snapshot: bool
    ) -> BookChange:
        """A stored row; ``level2_batch`` has no sequence ids (``update_id`` -1, no rule)."""
        return BookChange(
            exchange=EXCHANGE, symbol=book.symbol, native_symbol=book.native, ts=ts,
            recv_ts=recv_ns, side=side, price=price, size=size, snapshot=snapshot,
            first_update_id=-1, update_id=-1, prev_update_id=-1,
        )  # fmt: skip

    @staticmethod
    def _book_event(
        book: Book, kind: EventKind, ts: int, recv_ns: int, detail: str, out: RecordSink
    ) -> None:
        out.events.append(Event(
            exchange=EXCHANGE, symbol=book.symbol, native_symbol=book.native, ts=ts,
            recv_ts=recv_ns, kind=kind.value, channel=Channel.BOOK.value, expected=-1,
            received=-1, detail=detail,
        ))  # fmt: skip

    # ------------------------------------------------------------------ REST
    def due_requests(self, now_ns: int) -> list[RestRequest]:
        self._now_ns = max(self._now_ns, now_ns)
        requests: list[RestRequest] = []
        for sub in self.subs:
            for request in sub.due_requests(now_ns):
                self._sub_of_request[request.key] = sub
                requests.append(request)
        if now_ns < self._rest_next_ns:
            return requests
        if self._products_wanted and PRODUCTS_KEY not in self._in_flight:
            self._products_wanted = False
            self._in_flight[PRODUCTS_KEY] = (0, 0)
            self._rest_next_ns = now_ns + self.rest_interval_ns
            requests.append(RestRequest(
                key=PRODUCTS_KEY, url=f"{self.rest_url}/products",
                purpose=RestPurpose.SYMBOL_LISTING,
            ))  # fmt: skip
            return requests
        page = self._backfill_request(now_ns)
        if page is not None:
            requests.append(page)
        return requests

    def _backfill_request(self, now_ns: int) -> RestRequest | None:
        """The next page of the first product owing trades (one REST call per interval)."""
        for native, backfill in self.backfill.items():
            key = TRADES_KEY + native
            if not backfill.pending or key in self._in_flight:
                continue
            page = backfill.next_page()
            if page is None:
                continue
            after, limit = page
            self._in_flight[key] = page
            self._rest_next_ns = now_ns + self.rest_interval_ns
            return RestRequest(
                key=key,
                url=f"{self.rest_url}/products/{native}/trades?after={after}&limit={limit}",
                purpose=RestPurpose.TRADE_BACKFILL,
            )
        return None

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        self._now_ns = max(self._now_ns, recv_ns)
        sub = self._sub_of_request.pop(request.key, None)
        if sub is not None:
            sub.receive_response(request, response, recv_ns, out)
            return
        asked = self._in_flight.pop(request.key, None)
        if asked is None:
            return
        status = response.status
        if 200 <= status < 300:
            self._rest_backoff_ns = 0
        else:  # rate limited (429), down or unreachable (599): back off, doubling up to 30 s
            self._rest_backoff_ns = min(max(2 * self._rest_backoff_ns, 1_000 * MS), 30_000 * MS)
            self._rest_next_ns = max(self._rest_next_ns, recv_ns + self._rest_backoff_ns)
        if request.purpose is RestPurpose.SYMBOL_LISTING:
            if not (200 <= status < 300 and self._products(response.body, recv_ns, out)):
                self._products_wanted = True
            return
        native = request.key.removeprefix(TRADES_KEY)
        backfill = self.backfill.get(native)
        if backfill is None:
            return
        after, limit = asked
        if 200 <= status < 300 and backfill.answer(after, limit, response.body, recv_ns, out):
            return
        if status == 429 and backfill.pending:
            backfill.pending[0].requests_left += 1  # a rate-limited request does not count
        backfill.give_up_if_spent(recv_ns, out)

    def _products(self, body: bytes, recv_ns: int, out: RecordSink) -> bool:
        """Check every configured product against ``/products``; False: unusable answer."""
        try:
            listed = {p.id: p for p in PRODUCTS_DECODER.decode(body)}
        except DECODE_ERRORS:
            return False
        self._listed = True
        for native, symbol in self.symbols.items():
            product = listed.get(native)
            if product is None:
                problem = f"COINBASE does not list {native} (/products)"
            elif product.status != "online" or product.trading_disabled:
                problem = (
                    f"COINBASE lists {native} with status {product.status!r}"
                    + (", trading disabled" if product.trading_disabled else "")
                    + " (/products)"
                )
            else:
                continue
            self.invalid_symbols.append(native)
            out.events.append(Event(
                exchange=EXCHANGE, symbol=symbol, native_symbol=native, ts=recv_ns,
                recv_ts=recv_ns, kind=EventKind.INVALID_SYMBOL.value, channel="", expected=-1,
                received=-1, detail=problem,
            ))  # fmt: skip
        return True

    def next_wakeup_ns(self) -> int | None:
        times = [t for sub in self.subs if (t := sub.next_wakeup_ns()) is not None]
        owing = self._products_wanted or any(
            b.pending and TRADES_KEY + n not in self._in_flight for n, b in self.backfill.items()
        )
        if owing:
            times.append(max(self._rest_next_ns, self._now_ns))
        times += self._reconnect_due.values()
        return min(times) if times else None

    def finishing_requests(self, now_ns: int) -> list[RestRequest] | None:
        requests: list[RestRequest] = []
        owing = False
        for sub in self.subs:
            found = sub.finishing_requests(now_ns)
            if found is not None:
                owing = True
                for request in found:
                    self._sub_of_request[request.key] = sub
                    requests.append(request)
        if any(b.pending for b in self.backfill.values()):
            owing = True
            if now_ns >= self._rest_next_ns:
                page = self._backfill_request(now_ns)
                if page is not None:
                    requests.append(page)
        return requests if owing else None

    def recover(self, gap: Event, now_ns: int, out: RecordSink) -> bool:
        """A trades gap of one of our products found outside the stream (between two runs)
        joins that product's REST backfill, like a gap the stream showed."""
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

    def owed_ids(self) -> int:
        return sum(b.owed_ids() for b in self.backfill.values()) + sum(
            sub.owed_ids() for sub in self.subs
        )

    def abandon(self, now_ns: int, out: RecordSink) -> None:
        self._in_flight.clear()
        for backfill in self.backfill.values():
            backfill.abandon(now_ns, out)
        for sub in self.subs:
            sub.abandon(now_ns, out)
