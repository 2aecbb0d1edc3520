"""Kraken spot WebSocket v2 (``wss://ws.kraken.com/v2``), sans-I/O: bytes in, records out.

One public connection. After it opens the client subscribes (``{"method":"subscribe",
"params":{"channel":...,"symbol":[...]}}``) to:

* ``instrument`` (always, first): the listing. A configured pair it does not list (or lists
  with a status that does not trade) is an ``invalid_symbol`` event, which the collector's
  outcome reports as an error; each pair's ``price_precision`` and ``qty_precision`` format
  the strings of the book checksum.
* ``book`` (``depth`` option, 10/25/100/500/1000): a snapshot, then updates; both carry the
  CRC32 ``checksum`` of the top 10 levels (:mod:`hundi.exchanges.kraken.book`). A mismatch is
  a stored ``gap`` event, then a ``resync``: the book alone is unsubscribed and subscribed
  again on the same connection (:meth:`KrakenProtocol.take_messages`; a refusal of that
  re-subscribe is a ``resync`` event and it is retried with the back-off), and the fresh
  snapshot is a ``synced`` event. A crossed book whose checksum matches is Kraken's book as it
  is: kept synced, counted (``crossed_books``). Kraken numbers no book message: rows store
  ``update_id = -1``. Levels pushed beyond the depth are dropped locally and stored as deletes.
* ``trade``: trades, with Kraken's sequential per-pair ``trade_id``; the snapshot of the last
  trades sent on (re)subscribe is deduplicated by id, and a jump in ids is a ``trades`` gap
  whose ids are fetched back over REST ``Trades`` (:mod:`hundi.exchanges.kraken.backfill`:
  ``backfilled``/``unrecoverable`` events; options ``backfill_requests_per_gap``, default 10,
  0 = off, and ``rest_interval_ms``, default 1000).
* ``ticker``: best bid/offer (``bbo``, with ``event_trigger: bbo``: one update per top-of-book
  change) and/or the rolling 24 h statistics (``ticker``), from the same channel.
* ``ohlc`` (``ohlc_interval`` option, minutes): candles; Kraken marks no candle final.

Heartbeats, ``status``, pongs and acknowledgements are filtered; a refused subscription other
than a book re-subscribe of ours (an unknown pair) is rejected with reason
``subscription_failed``.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, Final

import msgspec

from hundi.exchanges.base import (
    DECODE_ERRORS,
    BookStatus,
    FrameStatus,
    RecordSink,
    RejectedFrame,
    RestRequest,
    RestResponse,
    StreamSpec,
    VenueConfig,
    VenueProtocol,
    decode_rejection,
)
from hundi.exchanges.kraken.backfill import MS, REST_URL, PairBackfill, TradeBackfill
from hundi.exchanges.kraken.book import KrakenBook, LevelSide, LevelText, checksum_text
from hundi.exchanges.kraken.common import (
    CONN,
    EXCHANGE,
    MAX_OUTGOING_PER_S,
    OHLC_INTERVALS,
    Resubscribes,
    book_event,
    book_rows,
    check_config,
    depth_option,
    number,
    rfc3339_ns,
)
from hundi.exchanges.kraken.symbols import LEGACY_ASSETS, native_v2, normalize, split
from hundi.exchanges.options import int_option
from hundi.exchanges.sequence import IdSequence, IdVerdict
from hundi.exchanges.validity import (
    check_amount,
    check_bbo,
    check_candle,
    check_levels,
    check_positive,
    check_signed,
    check_time,
    check_trade,
)
from hundi.records import ASK, BID, BUY, SELL, Bbo, Candle, Channel, Event, EventKind, Ticker, Trade

WS_URL: Final = "wss://ws.kraken.com/v2"
SUPPORTED: Final = frozenset(
    (Channel.TRADES, Channel.BBO, Channel.TICKER, Channel.BOOK, Channel.CANDLES, Channel.EVENTS)
)
NS: Final = 1_000_000_000
MAX_PRECISION: Final = 18  # decimals: more is a corrupt listing (a float has ~17 digits)
DAY_NS: Final = 86_400 * NS
INTERVAL_NAMES: Final = {
    1: "1m", 5: "5m", 15: "15m", 30: "30m", 60: "1h", 240: "4h", 1440: "1d", 10080: "1w",
    21600: "15d",
}  # fmt: skip


class Level(msgspec.Struct, frozen=True):
    """A book level, numbers kept as the wire's text: the checksum is built from the exact
    decimals (a float of 1234567890.12345678 prints back as ...672), as Kraken advises."""

    price: msgspec.Raw
    qty: msgspec.Raw


class BookData(msgspec.Struct, frozen=True):
    symbol: str
    bids: list[Level] = []
    asks: list[Level] = []
    checksum: int = -1
    timestamp: str = ""


class TradeData(msgspec.Struct, frozen=True):
    symbol: str
    side: str
    price: float
    qty: float
    trade_id: int
    timestamp: str
    ord_type: str = ""


class TickerData(msgspec.Struct, frozen=True):
    symbol: str
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    last: float
    volume: float
    vwap: float
    low: float
    high: float
    change: float
    change_pct: float
    timestamp: str = ""


class OhlcData(msgspec.Struct, frozen=True):
    symbol: str
    open: float
    high: float
    low: float
    close: float
    trades: int
    volume: float
    vwap: float
    interval_begin: str
    interval: int
    timestamp: str = ""


class PairInfo(msgspec.Struct, frozen=True):
    """One listed pair; fields Kraken might leave out of a pair we do not collect default, so
    one odd listing does not reject the whole snapshot."""

    symbol: str
    price_precision: int = -1
    qty_precision: int = -1
    status: str = "online"


class InstrumentData(msgspec.Struct, frozen=True):
    """The listing, each pair decoded on its own (:meth:`KrakenProtocol._instrument`): one
    odd pair among ~1,000 must not reject the whole snapshot."""

    pairs: list[msgspec.Raw] = []


class PairName(msgspec.Struct, frozen=True):
    """Just a pair's name, to tell whether a pair that does not decode is one we collect."""

    symbol: str = ""


class Message(msgspec.Struct, frozen=True):
    """Every frame: market data (``channel``/``type``/``data``) or a method response
    (``method``/``success``/``error``). Unknown fields are ignored."""

    channel: str = ""
    type: str = ""
    method: str = ""
    success: bool = True
    error: str = ""
    symbol: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


DECODER: Final = msgspec.json.Decoder(Message)
BOOK_DECODER: Final = msgspec.json.Decoder(list[BookData])
TRADE_DECODER: Final = msgspec.json.Decoder(list[TradeData])
TICKER_DECODER: Final = msgspec.json.Decoder(list[TickerData])
OHLC_DECODER: Final = msgspec.json.Decoder(list[OhlcData])
INSTRUMENT_DECODER: Final = msgspec.json.Decoder(InstrumentData)
PAIR_DECODER: Final = msgspec.json.Decoder(PairInfo)
PAIR_NAME_DECODER: Final = msgspec.json.Decoder(PairName)
FILTERED_CHANNELS: Final = frozenset(("heartbeat", "status"))


def _decode(decoder: msgspec.json.Decoder[Any], raw: msgspec.Raw) -> Any:
    try:
        return decoder.decode(raw)
    except DECODE_ERRORS as e:
        raise decode_rejection(bytes(raw), e) from None


def subscribe_message(channel: str, method: str = "subscribe", **params: Any) -> bytes:
    return msgspec.json.encode({"method": method, "params": {"channel": channel, **params}})


class KrakenProtocol(VenueProtocol):
    """Kraken spot market data over WebSocket v2 (module docstring)."""

    exchange = EXCHANGE

    def __init__(self, config: VenueConfig) -> None:
        check_config(config, SUPPORTED, "WebSocket v2")
        self.config = config
        self.depth = depth_option(config)
        self.ohlc_interval = int_option(config.options, "ohlc_interval", 1, 1, OHLC_INTERVALS[-1])
        if self.ohlc_interval not in OHLC_INTERVALS:
            raise ValueError(
                f"option ohlc_interval must be one of {', '.join(map(str, OHLC_INTERVALS))} "
                f"(minutes), got {self.ohlc_interval}"
            )
        for native in config.symbols:
            if set(split(native)) & LEGACY_ASSETS.keys():
                raise ValueError(
                    f"{native} is the WebSocket v1 spelling; v2 spells it "
                    f"{native_v2(normalize(native))} (or pass --option api=v1)"
                )
        self.channels = frozenset(config.channels)
        self.symbols = {native: normalize(native) for native in config.symbols}
        self.book = (
            {n: KrakenBook(s, n, self.depth) for n, s in self.symbols.items()}
            if Channel.BOOK in self.channels
            else {}
        )
        self.precision: dict[str, tuple[int, int]] = {}  # native → (price, qty) decimals
        # trade ids seen per pair (live and fetched back), the highest one and its time
        self.trade_ids = {native: IdSequence() for native in self.symbols}
        self.last_trade_id: dict[str, int] = {}
        self.last_trade_ns: dict[str, int] = {}
        per_gap = int_option(config.options, "backfill_requests_per_gap", 10, 0, 1000)
        interval_ms = int_option(config.options, "rest_interval_ms", 1000, 100, 60_000)
        self.backfill = TradeBackfill(config.rest_endpoint or REST_URL, interval_ms * MS)
        for native, symbol in self.symbols.items():
            ids = self.trade_ids[native]
            self.backfill.add(PairBackfill(native, symbol, ids, per_gap))
        self.resubscribes = Resubscribes(self._book_message)
        self._resubscribe_on_precision: set[str] = set()
        self.invalid_symbols: list[str] = []  # configured pairs Kraken does not list (online)

    # -- connections ---------------------------------------------------------------------------

    def connections(self) -> list[StreamSpec]:
        symbols = list(self.symbols)
        channels = self.channels
        messages: list[bytes] = []
        messages.append(subscribe_message("instrument", snapshot=True))
        if Channel.BOOK in channels:
            messages.append(self._book_message("subscribe", symbols))
        if Channel.TRADES in channels:
            messages.append(subscribe_message("trade", symbol=symbols, snapshot=True))
        if Channel.BBO in channels or Channel.TICKER in channels:
            trigger = "bbo" if Channel.BBO in channels else "trades"
            messages.append(subscribe_message("ticker", symbol=symbols, event_trigger=trigger))
        if Channel.CANDLES in channels:
            messages.append(subscribe_message("ohlc", symbol=symbols, interval=self.ohlc_interval))
        return [
            StreamSpec(
                CONN,
                self.config.endpoint or WS_URL,
                subscribe=tuple(messages),
                max_outgoing_per_s=MAX_OUTGOING_PER_S,
                max_lifetime_s=math.inf,  # Kraken documents no connection lifetime
            )
        ]

    def _book_message(self, method: str, symbols: list[str]) -> bytes:
        if method == "unsubscribe":
            return subscribe_message("book", method, symbol=symbols, depth=self.depth)
        return subscribe_message("book", method, symbol=symbols, depth=self.depth, snapshot=True)

    def take_messages(self) -> list[tuple[str, bytes]]:
        return self.resubscribes.take()

    def normalize_symbol(self, native: str) -> str:
        return self.symbols.get(native) or normalize(native)

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        """Books are no longer continuous (a gap each); the next open's subscribes bring fresh
        snapshots, so re-subscribes still owed are dropped. Nothing is reset at ``on_open``:
        the I/O layer calls it after sending the subscribes, and the snapshots they bring may
        already have been received by then."""
        self.resubscribes.clear()
        self._resubscribe_on_precision.clear()
        for book in self.book.values():
            if book.synced:
                book_event(out, book, EventKind.GAP, now_ns, now_ns, f"{conn_key} closed")
            book.reset("connection closed: waiting for a snapshot")

    def books(self) -> list[BookStatus]:
        return [book.status() for book in self.book.values()]

    # -- trades fetched back over REST (:mod:`hundi.exchanges.kraken.backfill`) -----------------

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        return self.backfill.due_requests(now_ns)

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        self.backfill.receive_response(request, response, recv_ns, out)

    def next_wakeup_ns(self) -> int | None:
        return self.backfill.next_wakeup_ns()

    def finishing_requests(self, now_ns: int) -> list[RestRequest] | None:
        return self.backfill.finishing_requests(now_ns)

    def owed_ids(self) -> int:
        return self.backfill.owed_ids()

    def recover(self, gap: Event, now_ns: int, out: RecordSink) -> bool:
        """A trades gap of one of our pairs found between two runs joins the pair's REST
        backfill, searched back from the time of the trade after it (``gap.ts``)."""
        if (
            gap.exchange != EXCHANGE
            or gap.kind != EventKind.GAP.value
            or gap.channel != Channel.TRADES.value
            or gap.expected < 0
            or gap.received <= gap.expected
            or gap.native_symbol not in self.backfill.pairs
        ):
            return False
        self.backfill.pairs[gap.native_symbol].want(
            gap.expected, gap.received, -1, now_ns, out, after_ns=gap.ts
        )
        return True

    def abandon(self, now_ns: int, out: RecordSink) -> None:
        self.backfill.abandon(now_ns, out)

    @property
    def checksums_verified(self) -> int:
        return sum(book.checksums for book in self.book.values())

    @property
    def checksum_mismatches(self) -> int:
        return sum(book.mismatches for book in self.book.values())

    @property
    def crossed_books(self) -> int:
        """Checksums that matched a crossed book: Kraken's own book was crossed then."""
        return sum(book.crossed_verified for book in self.book.values())

    # -- frames --------------------------------------------------------------------------------

    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        due = self.resubscribes.next_due_ns  # delayed resyncs fall due with the frames' clock
        if due is not None and recv_ns >= due:
            self.resubscribes.release(recv_ns)
        try:
            msg = DECODER.decode(data)
        except DECODE_ERRORS as e:
            raise decode_rejection(data, e) from None
        channel = msg.channel
        if channel == "book":
            return self._book(msg, conn_key, recv_ns, out)
        if channel == "trade":
            return self._trades(msg, recv_ns, out)
        if channel == "ticker":
            return self._ticker(msg, recv_ns, out)
        if channel == "ohlc":
            return self._ohlc(msg, recv_ns, out)
        if channel == "instrument":
            return self._instrument(msg, conn_key, recv_ns, out)
        if channel in FILTERED_CHANNELS:
            return FrameStatus.FILTERED
        if msg.method:
            if not msg.success:
                if msg.method == "subscribe" and self._refused(msg, recv_ns, out):
                    return FrameStatus.PROCESSED
                raise RejectedFrame("subscription_failed", f"{msg.method}: {msg.error}")
            return FrameStatus.FILTERED  # subscribe/unsubscribe acknowledgements, pongs
        raise RejectedFrame("unknown_message", channel or "(no channel or method)")

    def _refused(self, msg: Message, recv_ns: int, out: RecordSink) -> bool:
        """A refused book re-subscribe of ours (Kraken busy, rate limited...): an event, and
        the re-subscribe owed again with the back-off, so the book does not wait unsynced for
        the next reconnect. False if no re-subscribe of ``msg.symbol`` was in flight."""
        book = self.book.get(msg.symbol)
        if book is None or book.synced:
            return False
        delay = self.resubscribes.refused(msg.symbol, recv_ns)
        if delay is None:
            return False
        later = f" in {delay}s" if delay else ""
        book.waiting = f"re-subscribe refused ({msg.error}): again{later or ' now'}"
        detail = f"re-subscribe refused: {msg.error}; unsubscribe and subscribe{later}"
        book_event(out, book, EventKind.RESYNC, recv_ns, recv_ns, detail)
        return True

    def _native(self, symbol: str) -> str:
        if symbol not in self.symbols:
            raise RejectedFrame("unknown_symbol", symbol)
        return symbol

    def _instrument(
        self, msg: Message, conn_key: str, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        data: InstrumentData = _decode(INSTRUMENT_DECODER, msg.data)
        listed, undecodable = _pairs(data.pairs, self.symbols)
        found: dict[str, tuple[int, int]] = {}
        for native in self.symbols.keys() & listed.keys():
            pair = listed[native]
            precision = (pair.price_precision, pair.qty_precision)
            if min(precision) < 0:
                continue  # not given: a listing problem below
            if max(precision) > MAX_PRECISION:
                raise RejectedFrame("invalid_field", f"precision of {native}: {precision}")
            found[native] = precision
        self.precision.update(found)
        if msg.type == "snapshot":  # the full listing: every configured pair must be in it
            for native, symbol in self.symbols.items():
                problem = undecodable.get(native) or _listing_problem(native, listed.get(native))
                if problem and native not in self.invalid_symbols:
                    self.invalid_symbols.append(native)
                    out.events.append(Event(
                        exchange=EXCHANGE, symbol=symbol, native_symbol=native, ts=recv_ns,
                        recv_ts=recv_ns, kind=EventKind.INVALID_SYMBOL.value, channel="",
                        expected=-1, received=-1, detail=problem,
                    ))  # fmt: skip
        waiting = [s for s in self._resubscribe_on_precision if s in self.precision]
        if waiting:
            self._resubscribe_on_precision.difference_update(waiting)
            self.resubscribes.now(conn_key, sorted(waiting))
        return FrameStatus.PROCESSED

    def _book(self, msg: Message, conn_key: str, recv_ns: int, out: RecordSink) -> FrameStatus:
        if msg.type not in ("snapshot", "update"):
            raise RejectedFrame("unknown_message", f"book type {msg.type!r}")
        entries: list[BookData] = _decode(BOOK_DECODER, msg.data)
        if not self.book:
            raise RejectedFrame("unknown_message", "book frame without a book subscription")
        prepared = []
        for entry in entries:  # validate the whole frame before touching any book
            native = self._native(entry.symbol)
            bids = [_level(level) for level in entry.bids]
            asks = [_level(level) for level in entry.asks]
            check_levels("bid", [(p, q) for p, q, _, _ in bids])
            check_levels("ask", [(p, q) for p, q, _, _ in asks])
            ts = rfc3339_ns(entry.timestamp) if entry.timestamp else recv_ns
            check_time("book time", ts, recv_ns)
            prepared.append((self.book[native], entry.checksum, bids, asks, ts))
        status = FrameStatus.FILTERED
        for book, checksum, bids, asks, ts in prepared:
            if msg.type == "snapshot" and book.synced:
                # a second socket's snapshot while this book is synced (a make-before-break
                # rollover): older than the updates the old socket already gave, and the new
                # socket's copies of those are dropped as duplicates, so it must not reset it
                continue
            if msg.type == "snapshot":
                self._snapshot(book, conn_key, checksum, bids, asks, ts, recv_ns, out)
                status = FrameStatus.PROCESSED
            elif book.synced:
                self._update(book, conn_key, checksum, bids, asks, ts, recv_ns, out)
                status = FrameStatus.PROCESSED
        return status

    def _snapshot(
        self,
        book: KrakenBook,
        conn_key: str,
        checksum: int,
        bids: list[WireLevel],
        asks: list[WireLevel],
        ts: int,
        recv_ns: int,
        out: RecordSink,
    ) -> None:
        self.resubscribes.landed(book.native)  # the subscribe was accepted
        precision = self.precision.get(book.native)
        if precision is None:  # the checksum cannot be verified: ask again once it is known
            book.reset("waiting for the pair's precision (instrument channel)")
            self._resubscribe_on_precision.add(book.native)
            return
        book.reset("")
        if book.precision != precision:
            book.precision = precision
            book.format_levels(level_text(precision))
        for side, levels in ((book.bids, bids), (book.asks, asks)):
            _apply(side, levels)
            side.truncate(book.depth)
        rows = [(BID, p, s) for p, s in book.bids.levels()]
        rows += [(ASK, p, s) for p, s in book.asks.levels()]
        book_rows(out, book, rows, ts, recv_ns, True)
        # without a checksum (v2 documents one on snapshots) the first update verifies the book
        if checksum < 0 or self._verify(book, conn_key, checksum, ts, recv_ns, out):
            book.synced = True
            book_event(out, book, EventKind.SYNCED, ts, recv_ns, "snapshot", received=checksum)

    def _update(
        self,
        book: KrakenBook,
        conn_key: str,
        checksum: int,
        bids: list[WireLevel],
        asks: list[WireLevel],
        ts: int,
        recv_ns: int,
        out: RecordSink,
    ) -> None:
        rows: list[tuple[int, float, float]] = []
        for side, sign, levels in ((book.bids, BID, bids), (book.asks, ASK, asks)):
            _apply(side, levels)
            rows += [(sign, price, qty) for price, qty, _, _ in levels]
            rows += [(sign, price, 0.0) for price in side.truncate(book.depth)]
        book_rows(out, book, rows, ts, recv_ns, False)
        if self._verify(book, conn_key, checksum, ts, recv_ns, out):
            self.resubscribes.verified(book.native)

    def _verify(
        self, book: KrakenBook, conn_key: str, checksum: int, ts: int, recv_ns: int, out: RecordSink
    ) -> bool:
        """The checksum, or a gap and an in-place resync. The checksum is the documented
        integrity rule: a crossed book it matches is Kraken's book as it is (counted in
        ``crossed_verified``), kept synced rather than resubscribed in a loop."""
        local = book.checksum()
        if local == checksum:
            book.checksums += 1
            if book.crossed():
                book.crossed_verified += 1
            return True
        book.mismatches += 1
        why = f"checksum mismatch: computed {local}, Kraken sent {checksum}"
        book_event(out, book, EventKind.GAP, ts, recv_ns, why, local, checksum)
        delay = self.resubscribes.owe(conn_key, book.native, recv_ns)
        later = f" in {delay}s" if delay else ""
        book.reset(f"re-subscribing after a {why.partition(':')[0]}{later}")
        book_event(out, book, EventKind.RESYNC, ts, recv_ns, f"unsubscribe and subscribe{later}")
        return False

    def _trades(self, msg: Message, recv_ns: int, out: RecordSink) -> FrameStatus:
        entries: list[TradeData] = _decode(TRADE_DECODER, msg.data)
        if len(entries) > 1:  # a snapshot's order is not documented: ids ascending
            entries.sort(key=_trade_id)
        times: list[int] = []
        for t in entries:  # validate the whole frame first: a rejected frame stores nothing
            self._native(t.symbol)
            if t.side not in ("buy", "sell"):
                raise RejectedFrame("invalid_field", f"side {t.side!r}")
            ts = rfc3339_ns(t.timestamp)
            check_trade(t.price, t.qty, ts, recv_ns)
            times.append(ts)
        trades: list[Trade] = []
        gaps: list[Event] = []
        holes: list[tuple[str, int, int, int]] = []  # (pair, lo, hi, time of the id before)
        for t, ts in zip(entries, times, strict=True):
            native = t.symbol
            symbol = self.symbols[native]
            ids = self.trade_ids[native]
            tid = t.trade_id
            expected = ids.last + 1
            if tid == expected and expected > 0:  # the usual case, as ``check`` would
                ids.last = tid
                verdict = IdVerdict.NEXT
            else:
                verdict = ids.check(tid, tid)
            if verdict is IdVerdict.DUPLICATE or verdict is IdVerdict.EXPIRED:
                continue  # the snapshot of a re-subscribe repeats trades already stored
            if verdict is IdVerdict.AHEAD:
                gaps.append(self._trade_gap(native, symbol, ts, recv_ns, expected, tid))
                holes.append((native, expected, tid, self.last_trade_ns[native]))
            if tid == ids.last:
                self.last_trade_id[native] = tid
                self.last_trade_ns[native] = ts
            trades.append(
                Trade(
                    exchange=EXCHANGE,
                    symbol=symbol,
                    native_symbol=native,
                    ts=ts,
                    recv_ts=recv_ns,
                    trade_id=tid,
                    price=t.price,
                    size=t.qty,
                    side=BUY if t.side == "buy" else SELL,
                    first_trade_id=tid,
                    last_trade_id=tid,
                )
            )
        out.events.extend(gaps)
        out.trades.extend(trades)
        for native, lo, hi, before_ns in holes:  # fetched back over REST (after its gap event)
            self.backfill.pairs[native].want(lo, hi, before_ns, recv_ns, out)
        return FrameStatus.PROCESSED if trades or gaps else FrameStatus.FILTERED

    @staticmethod
    def _trade_gap(
        native: str, symbol: str, ts: int, recv_ns: int, expected: int, received: int
    ) -> Event:
        return Event(
            exchange=EXCHANGE,
            symbol=symbol,
            native_symbol=native,
            ts=ts,
            recv_ts=recv_ns,
            kind=EventKind.GAP.value,
            channel=Channel.TRADES.value,
            expected=expected,
            received=received,
            detail=f"trade ids {expected}..{received - 1} missing",
        )

    def _ticker(self, msg: Message, recv_ns: int, out: RecordSink) -> FrameStatus:
        entries: list[TickerData] = _decode(TICKER_DECODER, msg.data)
        bbos: list[Bbo] = []
        tickers: list[Ticker] = []
        want_bbo = Channel.BBO in self.channels
        want_ticker = Channel.TICKER in self.channels
        for t in entries:
            native = self._native(t.symbol)
            symbol = self.symbols[native]
            ts = rfc3339_ns(t.timestamp) if t.timestamp else recv_ns
            if want_bbo:
                check_bbo(t.bid, t.bid_qty, t.ask, t.ask_qty, ts, recv_ns)
                bbos.append(
                    Bbo(
                        exchange=EXCHANGE,
                        symbol=symbol,
                        native_symbol=native,
                        ts=ts,
                        recv_ts=recv_ns,
                        update_id=-1,
                        bid_price=t.bid,
                        bid_size=t.bid_qty,
                        ask_price=t.ask,
                        ask_size=t.ask_qty,
                    )
                )
            if want_ticker:
                for field, value in (("last price", t.last), ("high", t.high), ("low", t.low),
                                     ("vwap", t.vwap), ("volume", t.volume)):  # fmt: skip
                    check_amount(field, value)
                check_signed("price change", t.change)
                check_signed("price change pct", t.change_pct)
                check_time("event time", ts, recv_ns)
                tickers.append(
                    Ticker(
                        exchange=EXCHANGE,
                        symbol=symbol,
                        native_symbol=native,
                        ts=ts,
                        recv_ts=recv_ns,
                        last_price=t.last,
                        last_size=math.nan,  # not sent
                        open_price=t.last - t.change,
                        high_price=t.high,
                        low_price=t.low,
                        volume=t.volume,
                        quote_volume=t.volume * t.vwap,
                        vwap=t.vwap,
                        price_change=t.change,
                        price_change_pct=t.change_pct,
                        trade_count=-1,  # not sent
                        open_time=ts - DAY_NS,
                        close_time=ts,
                        first_trade_id=-1,
                        last_trade_id=-1,
                    )
                )
        out.bbo.extend(bbos)
        out.ticker.extend(tickers)
        return FrameStatus.PROCESSED

    def _ohlc(self, msg: Message, recv_ns: int, out: RecordSink) -> FrameStatus:
        entries: list[OhlcData] = _decode(OHLC_DECODER, msg.data)
        candles: list[Candle] = []
        for c in entries:
            native = self._native(c.symbol)
            if c.interval not in INTERVAL_NAMES:
                raise RejectedFrame("invalid_field", f"interval {c.interval!r}")
            open_ns = rfc3339_ns(c.interval_begin)
            ts = rfc3339_ns(c.timestamp) if c.timestamp else recv_ns
            check_candle(c.open, c.high, c.low, c.close, c.volume, 0.0, 0.0, ts, recv_ns)
            check_positive("vwap", c.vwap) if c.volume > 0 else check_amount("vwap", c.vwap)
            if c.trades < 0:
                raise RejectedFrame("invalid_value", f"trades: {c.trades}")
            candles.append(
                Candle(
                    exchange=EXCHANGE,
                    symbol=self.symbols[native],
                    native_symbol=native,
                    ts=ts,
                    recv_ts=recv_ns,
                    interval=INTERVAL_NAMES[c.interval],
                    open_time=open_ns,
                    close_time=open_ns + c.interval * 60 * NS - 1,
                    open=c.open,
                    high=c.high,
                    low=c.low,
                    close=c.close,
                    volume=c.volume,
                    quote_volume=c.volume * c.vwap,
                    taker_buy_volume=math.nan,  # not sent
                    trade_count=c.trades,
                    closed=False,  # Kraken marks no candle final
                )
            )
        out.candles.extend(candles)
        return FrameStatus.PROCESSED


def _pairs(
    raws: list[msgspec.Raw], collected: dict[str, str]
) -> tuple[dict[str, PairInfo], dict[str, str]]:
    """The listed pairs decoded one by one: those that decode, and why each collected pair
    that does not cannot be (pairs not collected that do not decode are skipped)."""
    listed: dict[str, PairInfo] = {}
    undecodable: dict[str, str] = {}
    for raw in raws:
        try:
            pair = PAIR_DECODER.decode(raw)
        except DECODE_ERRORS as e:
            try:
                name = PAIR_NAME_DECODER.decode(raw).symbol
            except DECODE_ERRORS:
                continue  # not even a name: not a pair we could collect
            if name in collected:
                undecodable[name] = f"KRAKEN lists {name}, but it cannot be decoded: {e}"
            continue
        listed[pair.symbol] = pair
    return listed, undecodable


def _listing_problem(native: str, pair: PairInfo | None) -> str | None:
    """Why ``native`` cannot be collected, by the instrument snapshot; None if it can."""
    if pair is None:
        return f"KRAKEN does not list {native} (instrument channel)"
    if pair.price_precision < 0 or pair.qty_precision < 0:
        return f"KRAKEN lists {native} without its precisions (instrument channel)"
    # maintenance, reduce_only, work_in_progress... pass: the pair exists and its data comes
    # back with it; only a delisted pair has none to come
    if pair.status == "delisted":
        return f"KRAKEN lists {native} with status {pair.status} (instrument channel)"
    return None


def _trade_id(trade: TradeData) -> int:
    return trade.trade_id


WireLevel = tuple[float, float, str, str]  # price, qty and their wire text


def _level(level: Level) -> WireLevel:
    price_text = bytes(level.price).decode()
    qty_text = bytes(level.qty).decode()
    if price_text[0] == '"' or qty_text[0] == '"':  # a Raw is never empty
        price_text, qty_text = _unquoted(price_text), _unquoted(qty_text)
    return number(price_text, "price"), number(qty_text, "qty"), price_text, qty_text


def _unquoted(text: str) -> str:
    """A number's text, quoted or not: the v2 reference documents numbers, its checksum guide
    shows ``"price": "45283.5"``; the checksum is built from the digits either way."""
    if text[:1] == '"' and text[-1:] == '"' and len(text) >= 2:
        return text[1:-1]
    return text


def at_precision(text: str, decimals: int) -> str:
    """A JSON number's text with ``decimals`` decimals, exactly: ``0.5657`` at 5 →
    ``0.56570`` (v2 drops trailing zeros; the checksum counts them)."""
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    whole, _, fraction = text.partition(".")
    if decimals <= 0:
        return whole
    return f"{whole}.{fraction.ljust(decimals, '0')}"


def _apply(side: LevelSide, levels: list[WireLevel]) -> None:
    """Levels into a side: the checksum text is built only for levels in (or rising into) the
    top 10 (:class:`LevelSide`)."""
    put = side.set
    for price, qty, price_text, qty_text in levels:
        put(price, qty, price_text, qty_text)


def level_text(precision: tuple[int, int]) -> LevelText:
    """A level's checksum text at the pair's precisions (v2 drops trailing zeros)."""
    price_decimals, qty_decimals = precision

    def text_of(price_text: str, qty_text: str) -> str:
        return checksum_text(
            at_precision(price_text, price_decimals), at_precision(qty_text, qty_decimals)
        )

    return text_of


__all__ = ["WS_URL", "KrakenProtocol", "number"]
