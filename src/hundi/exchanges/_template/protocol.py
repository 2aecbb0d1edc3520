"""The venue protocol, sans-I/O: bytes in, records out (copy, rename and adapt).

A protocol is a pure state machine (:class:`hundi.exchanges.base.VenueProtocol`): it says which
WebSocket connections to open and what to send on them (``connections``), turns every received
frame into records appended to the sink it is given (``receive``), and runs the venue's book
sync. It never opens a socket, sleeps or reads the clock: ``hundi collect``
(:mod:`hundi.connection`), ``hundi replay`` (:mod:`hundi.capture.replay`) and the tests drive
the very same code with live, captured or hand-written frames.

Every received frame is accounted for exactly once (``received == processed + filtered +
rejected``, :mod:`hundi.accounting`): ``receive`` returns ``FrameStatus.PROCESSED`` (it made
records, or moved a book), ``FrameStatus.FILTERED`` (acks, heartbeats: nothing to store, by
design) or raises :class:`~hundi.exchanges.base.RejectedFrame` with a short stable reason. It
must raise nothing else on bad input: the tests feed it garbage.

The imaginary venue of this template (replace all of it with the real wire format):

* one WebSocket, ``wss://ws.example.invalid/v1``; after opening, the client sends
  ``{"op":"subscribe","channel":"trades"|"book","symbols":["BTC/USDT",...]}``;
* acks and heartbeats: ``{"event":"subscribed"|"heartbeat",...}``;
* trades: ``{"channel":"trades","symbol":"BTC/USDT","data":[{"id":7,"px":"100.5","qty":"0.1",
  "side":"buy","ts":1700000000000}]}`` (times in ms);
* book: ``{"channel":"book","symbol":...,"type":"snapshot","seq":10,"ts":...,"bids":[["100",
  "1.5"]],"asks":[...]}`` on subscribe, then ``"type":"update"`` diffs that carry their ``seq``
  and the ``prev_seq`` of the message before (a size of ``"0"`` deletes the level). A diff whose
  ``prev_seq`` is not the last ``seq`` is a gap: the book is unsynced, a ``gap`` event stored,
  and the connection reconnected (the venue sends a fresh snapshot on subscribe).
"""

from __future__ import annotations

import math

import msgspec

from hundi.book.side import BookSide
from hundi.exchanges._template.symbols import normalize
from hundi.exchanges.base import (
    DECODE_ERRORS,
    BookStatus,
    FrameStatus,
    RecordSink,
    RejectedFrame,
    StreamSpec,
    VenueConfig,
    VenueProtocol,
    decode_rejection,
)
from hundi.exchanges.validity import check_trade
from hundi.records import ASK, BID, BUY, SELL, BookChange, Channel, Event, EventKind, Trade

EXCHANGE = "template"  # the records' ``exchange``: the name registered in ``__init__.py``
WS_URL = "wss://ws.example.invalid/v1"
CONN = "public"  # the one connection's key (logs, raw captures, ``receive``)
MS = 1_000_000  # the venue's times are ms; records are ns
SUPPORTED = frozenset((Channel.TRADES, Channel.BOOK, Channel.EVENTS))


class TradeMsg(msgspec.Struct, frozen=True):
    id: int
    px: str
    qty: str
    side: str
    ts: int


class Message(msgspec.Struct, frozen=True):
    """Every frame of the venue; which fields are set depends on ``event``/``channel``/``type``.
    Unknown fields are ignored, so a venue adding one does not reject frames."""

    event: str = ""
    channel: str = ""
    symbol: str = ""
    type: str = ""
    seq: int = -1
    prev_seq: int = -1
    ts: int = 0
    data: list[TradeMsg] = msgspec.field(default_factory=list)
    bids: list[tuple[str, str]] = msgspec.field(default_factory=list)
    asks: list[tuple[str, str]] = msgspec.field(default_factory=list)


DECODER = msgspec.json.Decoder(Message)


class Book:
    """One symbol's live book and its sync state."""

    def __init__(self, symbol: str, native: str) -> None:
        self.symbol = symbol
        self.native = native
        self.bids = BookSide(-1)
        self.asks = BookSide(1)
        self.synced = False
        self.seq = -1

    def status(self) -> BookStatus:
        bid, ask = self.bids.best(), self.asks.best()
        return BookStatus(
            symbol=self.symbol,
            synced=self.synced,
            bids=len(self.bids.levels),
            asks=len(self.asks.levels),
            best_bid=math.nan if bid is None else bid,
            best_ask=math.nan if ask is None else ask,
            last_update_id=self.seq,
            waiting="" if self.synced else "waiting for a snapshot",
        )


class TemplateProtocol(VenueProtocol):
    """The template venue's market data: trades and an L2 book per symbol."""

    exchange = EXCHANGE

    def __init__(self, config: VenueConfig) -> None:
        unsupported = set(config.channels) - SUPPORTED
        if unsupported:  # a bad configuration is a ValueError, raised here, not at runtime
            raise ValueError(
                f"{EXCHANGE} does not serve {', '.join(sorted(c.value for c in unsupported))}"
            )
        if not config.symbols:
            raise ValueError(f"{EXCHANGE}: no symbols")
        self.config = config
        self.symbols = {native: normalize(native) for native in config.symbols}
        self.book = {n: Book(s, n) for n, s in self.symbols.items()}
        self._reconnects: list[str] = []

    def connections(self) -> list[StreamSpec]:
        subscribe = [
            msgspec.json.encode(
                {"op": "subscribe", "channel": channel.value, "symbols": list(self.symbols)}
            )
            for channel in self.config.channels
            if channel is not Channel.EVENTS
        ]
        return [StreamSpec(CONN, self.config.endpoint or WS_URL, subscribe=tuple(subscribe))]

    def normalize_symbol(self, native: str) -> str:
        return self.symbols.get(native) or normalize(native)

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        # Books are reset here, not in ``on_open``: that runs after the subscribe messages went
        # out, when the snapshots they bring may already have been received.
        for book in self.book.values():
            if book.synced:
                self._event(out, book, EventKind.GAP, now_ns, now_ns, book.seq, -1, conn_key)
            book.synced = False

    def take_reconnects(self) -> list[str]:
        taken, self._reconnects = self._reconnects, []
        return taken

    def books(self) -> list[BookStatus]:
        return [book.status() for book in self.book.values()]

    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        try:
            msg = DECODER.decode(data)
        except DECODE_ERRORS as e:
            raise decode_rejection(data, e) from None
        if msg.event:
            return FrameStatus.FILTERED  # subscription acks, heartbeats
        if msg.symbol not in self.symbols:
            raise RejectedFrame("unknown_symbol", msg.symbol)
        if msg.channel == Channel.TRADES.value:
            return self._trades(msg, recv_ns, out)
        if msg.channel == Channel.BOOK.value:
            return self._book(msg, conn_key, recv_ns, out)
        raise RejectedFrame("unknown_message", msg.channel or "(no channel)")

    def _trades(self, msg: Message, recv_ns: int, out: RecordSink) -> FrameStatus:
        trades = []
        for t in msg.data:  # validate the whole frame first: a rejected frame stores nothing
            price, size, ts = _number(t.px), _number(t.qty), t.ts * MS
            if t.side not in ("buy", "sell"):
                raise RejectedFrame("invalid_field", f"side {t.side!r}")
            check_trade(price, size, ts, recv_ns)
            trades.append(
                Trade(
                    exchange=EXCHANGE,
                    symbol=self.symbols[msg.symbol],
                    native_symbol=msg.symbol,
                    ts=ts,
                    recv_ts=recv_ns,
                    trade_id=t.id,
                    price=price,
                    size=size,
                    side=BUY if t.side == "buy" else SELL,
                    first_trade_id=t.id,
                    last_trade_id=t.id,
                )
            )
        out.trades.extend(trades)
        return FrameStatus.PROCESSED

    def _book(self, msg: Message, conn_key: str, recv_ns: int, out: RecordSink) -> FrameStatus:
        book = self.book[msg.symbol]
        levels = [(BID, _number(p), _number(s)) for p, s in msg.bids]
        levels += [(ASK, _number(p), _number(s)) for p, s in msg.asks]
        ts = msg.ts * MS
        if msg.type == "snapshot":
            book.bids.load((p, s) for side, p, s in levels if side == BID)
            book.asks.load((p, s) for side, p, s in levels if side == ASK)
            book.seq, book.synced = msg.seq, True
            self._rows(out, book, levels, ts, recv_ns, True, msg.seq, -1)
            self._event(out, book, EventKind.SYNCED, ts, recv_ns, -1, msg.seq, "snapshot")
            return FrameStatus.PROCESSED
        if msg.type != "update":
            raise RejectedFrame("unknown_message", f"book type {msg.type!r}")
        if not book.synced:
            return FrameStatus.FILTERED  # before the snapshot, or after a gap: nothing to apply
        if msg.prev_seq != book.seq:
            book.synced = False
            self._event(out, book, EventKind.GAP, ts, recv_ns, book.seq, msg.prev_seq, conn_key)
            if conn_key not in self._reconnects:
                self._reconnects.append(conn_key)  # a fresh subscribe brings a fresh snapshot
            return FrameStatus.PROCESSED
        for side, price, size in levels:
            (book.bids if side == BID else book.asks).set(price, size)
        book.seq = msg.seq
        self._rows(out, book, levels, ts, recv_ns, False, msg.seq, msg.prev_seq)
        return FrameStatus.PROCESSED

    @staticmethod
    def _rows(
        out: RecordSink,
        book: Book,
        levels: list[tuple[int, float, float]],
        ts: int,
        recv_ns: int,
        snapshot: bool,
        seq: int,
        prev_seq: int,
    ) -> None:
        """Stored rows: ``update_id``/``prev_update_id`` are what ``book.py``'s rule checks."""
        out.book.extend(
            BookChange(
                exchange=EXCHANGE,
                symbol=book.symbol,
                native_symbol=book.native,
                ts=ts,
                recv_ts=recv_ns,
                side=side,
                price=price,
                size=size,
                snapshot=snapshot,
                first_update_id=seq,
                update_id=seq,
                prev_update_id=prev_seq,
            )
            for side, price, size in levels
        )

    @staticmethod
    def _event(
        out: RecordSink,
        book: Book,
        kind: EventKind,
        ts: int,
        recv_ns: int,
        expected: int,
        received: int,
        detail: str,
    ) -> None:
        out.events.append(
            Event(
                exchange=EXCHANGE,
                symbol=book.symbol,
                native_symbol=book.native,
                ts=ts,
                recv_ts=recv_ns,
                kind=kind.value,
                channel=Channel.BOOK.value,
                expected=expected,
                received=received,
                detail=detail,
            )
        )


def _number(text: str) -> float:
    """A decimal string of the wire → float; RejectedFrame for anything else (``nan`` too)."""
    try:
        value = float(text)
    except ValueError:
        raise RejectedFrame("invalid_field", f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise RejectedFrame("invalid_field", f"not a number: {text!r}")
    return value
