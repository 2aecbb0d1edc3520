"""The Coinbase Exchange ``full`` channel, sans-I/O: an order-level (L3) book per product.

Its own connection (key ``full``) to ``wss://ws-feed.exchange.coinbase.com`` subscribes to
``full`` for the configured products, signed with the user's key (:mod:`.full_auth`: Coinbase
requires authentication for ``full`` today). Every ``received``/``open``/``match``/``change``/
``done`` message becomes one :class:`~hundi.records.OrderEvent` row (channel ``book_l3``) with
its ``sequence``, so the stored rows rebuild the L2 book and every order's queue position at any
time (:func:`hundi.research.book_l3_at`).

Book sync, as Coinbase documents it for a real-time order book: (1) subscribe to ``full``,
(2) queue the messages, (3) fetch the level-3 REST snapshot ``GET /products/{id}/book?level=3``,
(4) drop queued messages with ``sequence <=`` the snapshot's, (5) apply the rest on top of it,
(6) then apply live messages. The snapshot is stored as one ``snapshot`` row per resting order
(all sharing its sequence and time) followed by the applied messages.

Integrity: each product's sequence grows by exactly 1 per message. Coinbase warns that messages
may arrive out of order, so a message ahead of the next expected one waits in a small reorder
window (``full_reorder_window`` messages, ``full_reorder_ms``): the missing one arriving in
time is applied first and nothing breaks. A message still missing after the window is a
skipped sequence: a ``gap`` event (expected, received) and a ``resync`` in place (the stream
goes on, buffered, while a new snapshot is fetched). A message at or below the last applied one
is a duplicate or late (ignored, as the docs say: filtered). A snapshot older than the first
buffered message after it (stale: the events between are in neither) is not used: a ``resync``
event, and another snapshot is fetched after a short back-off. An ``open`` that would cross
the book is a broken book too (gap + resync), found before it is stored; not while the
snapshot says the product is in an auction (``auction_mode``: a crossed book is the auction).
A dropped connection is a ``gap`` stamped just after (1 ns) the exchange time of the last
applied message, so the book as of that message stays known (the next connection resyncs from
a new snapshot).

Every ``full_snapshot_interval_s`` (an hour by default) a synced book is checked against a fresh
level-3 snapshot: the live messages are held while it is fetched; when the book reaches the
snapshot's sequence the two must list the same orders in the same queue order. The same: the
snapshot is stored as a checkpoint (so a research query replays at most an interval of events).
Different: a ``gap`` event and the book restarts from that snapshot.

``activate`` (a stop order triggered; it carries no sequence and rests nowhere until its
``received``), ``heartbeat`` and ``subscriptions`` are filtered; ``error`` frames about
authentication record ``auth_failed`` and reconnect with a capped back-off; one refusing a
configured product (``X is not a valid product``: Coinbase refuses the whole subscribe) records
``invalid_symbol`` and reconnects to subscribe the others without it; others are rejected
(``server_error``).
``subscriptions`` marks subscribed only the products its ``full`` channel lists.

Mounting: :class:`CoinbaseFullProtocol` is a complete :class:`VenueProtocol` for the
``book_l3`` channel (connection key :data:`FULL_CONN`, snapshot requests keyed
``full:<product>``); a venue that also serves public channels builds it with :func:`full_feed`
and forwards to it the calls of that connection and those requests, and ``books``.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field, replace
from typing import Final

from hundi.book.orders import OrderBook
from hundi.exchanges.authretry import AUTH_RETRY_OPTIONS, AuthRetry
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
from hundi.exchanges.coinbase.full_auth import (
    CoinbaseCredentials,
    load_full_credentials,
    rest_headers,
    subscribe_message,
)
from hundi.exchanges.coinbase.full_messages import (
    FULL_DECODER,
    SNAPSHOT_DECODER,
    FullMessage,
    Level3Snapshot,
    TimeParser,
    number,
    optional_number,
)
from hundi.exchanges.credentials import redact_values
from hundi.exchanges.options import int_option
from hundi.exchanges.validity import check_amount, check_positive, check_time
from hundi.records import ASK, BID, Channel, Event, EventKind, OrderEvent

log = logging.getLogger("hundi.exchanges.coinbase")

EXCHANGE: Final = "coinbase"
FULL_CONN: Final = "full"
WS_URL: Final = "wss://ws-feed.exchange.coinbase.com"
REST_URL: Final = "https://api.exchange.coinbase.com"
SUPPORTED: Final = frozenset((Channel.BOOK_L3, Channel.EVENTS))
BOOK_KINDS: Final = frozenset(("received", "open", "match", "change", "done"))
FILTERED_TYPES: Final = frozenset(("subscriptions", "heartbeat", "activate"))
SIDES: Final = {"buy": BID, "sell": ASK}
NS: Final = 1_000_000_000
OPTION_HELP: Final = {
    "full_max_buffer": "messages buffered per product while a snapshot is fetched, default 500000",
    "full_snapshot_retry_ms": "first retry of a failed or stale level-3 snapshot, default 1000",
    "full_snapshot_interval_s": "check a synced book against a new level-3 snapshot and store "
    "it as a checkpoint every N s (0: never), default 3600",
    "full_reorder_window": "messages a missing sequence is waited for before it is a gap, "
    "default 50",
    "full_reorder_ms": "ms a missing sequence is waited for before it is a gap, default 200",
    **AUTH_RETRY_OPTIONS,
}
_PRODUCT = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")
_SNAPSHOT_RETRY_CAP_NS: Final = 60 * NS
_INVALID_PRODUCT = re.compile(r"^(\S+) is not a valid product")


def request_key(native: str) -> str:
    """The key of a product's snapshot request (``full:BTC-USD``): apart from the keys of
    a public feed's requests for the same product, for a venue forwarding answers by key."""
    return f"{FULL_CONN}:{native}"


def full_feed(config: VenueConfig) -> CoinbaseFullProtocol | None:
    """The ``full`` feed of a Coinbase configuration that asks for ``book_l3`` (its own
    connection; the rest of the configuration is another protocol's), else None: what a venue
    serving public channels too mounts next to them."""
    if Channel.BOOK_L3 not in config.channels:
        return None
    return CoinbaseFullProtocol(replace(config, channels=(Channel.BOOK_L3,)))


def check_product(native: str) -> str:
    """A Coinbase product id (``BTC-USD``: already hundi's normalized spelling)."""
    if not _PRODUCT.match(native):
        hint = f" (did you mean {native.upper()!r}?)" if _PRODUCT.match(native.upper()) else ""
        raise ValueError(
            f"not a Coinbase product id: {native!r}; expected BASE-QUOTE in capitals, "
            f"e.g. BTC-USD{hint}"
        )
    return native


@dataclass(slots=True)
class ProductBook:
    """One product's L3 book and its sync state."""

    native: str
    book: OrderBook = field(default_factory=OrderBook)
    synced: bool = False
    sequence: int = -1  # the last applied sequence
    buffer: list[OrderEvent] = field(default_factory=list)
    subscribed: bool = False  # the subscription is acknowledged: messages are on their way
    in_flight: bool = False  # a snapshot request is out
    discard_answer: bool = False  # the connection dropped while it was out: it answers too early
    retry_at_ns: int = 0
    retry_ns: int = NS
    last_break: str = ""
    last_break_ts: int = 0  # exchange time: a snapshot repairing a break is never stored before
    last_ts: int = -1  # exchange time of the last applied message
    ahead: dict[int, OrderEvent] = field(default_factory=dict)  # the reorder window, by sequence
    auction: bool = False  # the last snapshot said auction_mode: crossing is allowed
    refused: bool = False  # Coinbase said it is not a valid product: no longer subscribed
    check_at_ns: int = 0  # local time the next periodic snapshot check is due (0: none)
    checking: bool = False  # a check's snapshot is out or waits for the stream: messages held
    check: tuple[int, list[tuple[int, float, float, str]], int, int] | None = None
    snapshots_used: int = 0
    snapshots_stale: int = 0
    snapshots_checked: int = 0

    @property
    def wants_snapshot(self) -> bool:
        return not self.synced and not self.in_flight and (self.subscribed or bool(self.buffer))

    def wants_check(self, now_ns: int) -> bool:
        return (
            self.synced
            and not self.in_flight
            and not self.checking
            and 0 < self.check_at_ns <= now_ns
        )

    def waiting(self) -> str:
        if self.synced:
            return ""
        if self.refused:
            return "refused by Coinbase (not a valid product)"
        if self.in_flight or self.buffer:
            what = "waiting for a level-3 snapshot"
        else:
            what = "waiting for the subscription"
        return f"{what} (after {self.last_break})" if self.last_break else what


class CoinbaseFullProtocol(VenueProtocol):
    """Coinbase Exchange ``full`` channel → ``book_l3`` rows and a live L3 book per product."""

    exchange = EXCHANGE

    def __init__(self, config: VenueConfig, credentials: CoinbaseCredentials | None = None) -> None:
        unsupported = set(config.channels) - SUPPORTED
        if unsupported:
            names = ", ".join(sorted(c.value for c in unsupported))
            raise ValueError(f"the Coinbase full feed serves book_l3 only, not {names}")
        if Channel.BOOK_L3 not in config.channels:
            raise ValueError("the Coinbase full feed needs the book_l3 channel")
        if not config.symbols:
            raise ValueError("coinbase: no symbols")
        self.config = config
        self.products = tuple(dict.fromkeys(check_product(native) for native in config.symbols))
        self.max_buffer = int_option(config.options, "full_max_buffer", 500_000, 1, 50_000_000)
        self.retry_initial_ns = (
            int_option(config.options, "full_snapshot_retry_ms", 1000, 1, 600_000) * 1_000_000
        )
        self.check_interval_ns = (
            int_option(config.options, "full_snapshot_interval_s", 3600, 0, 7 * 86_400) * NS
        )
        self.reorder_window = int_option(config.options, "full_reorder_window", 50, 0, 100_000)
        self.reorder_ns = int_option(config.options, "full_reorder_ms", 200, 0, 60_000) * 1_000_000
        self.retry = AuthRetry.from_options(config.options)
        if credentials is None and config.authenticate:
            credentials = load_full_credentials()
        self.credentials = credentials
        self.ws_url = config.endpoint or WS_URL
        self.rest_url = (config.rest_endpoint or REST_URL).rstrip("/")
        self.state = {n: ProductBook(n, retry_ns=self.retry_initial_ns) for n in self.products}
        self._time = TimeParser()
        self._reconnect = False
        self._now_ns = 0

    # ------------------------------------------------------------------ connections
    def connections(self) -> list[StreamSpec]:
        subscribe = subscribe_message(["full"], list(self.products), None, 0)
        return [
            StreamSpec(
                FULL_CONN,
                self.ws_url,
                subscribe=(subscribe,),
                private=self.credentials is not None,
                max_outgoing_per_s=1.0,
            )
        ]

    def _active(self) -> list[str]:
        """The products to subscribe: those Coinbase did not refuse."""
        return [native for native, state in self.state.items() if not state.refused]

    def opening(self, spec: StreamSpec, now_ns: int) -> Opening | None:
        """The subscribe message, signed now (Coinbase refuses a timestamp 30 s off)."""
        self._now_ns = max(self._now_ns, now_ns)
        active = self._active()
        if not active:
            return None  # every product refused: nothing to subscribe
        if self.credentials is None:
            return Opening(spec.url, (subscribe_message(["full"], active, None, 0),))
        if not self.retry.allowed(now_ns):
            return None
        signed = subscribe_message(["full"], active, self.credentials, now_ns)
        return Opening(spec.url, (signed,))

    def redact(self, conn_key: str, data: bytes) -> bytes:
        if self.credentials is None:
            return data
        return redact_values(data, self.credentials.values())

    def normalize_symbol(self, native: str) -> str:
        return native

    def on_open(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self._now_ns = max(self._now_ns, now_ns)
        for state in self.state.values():
            state.subscribed = False

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self._now_ns = max(self._now_ns, now_ns)
        for state in self.state.values():
            if state.synced:  # stamped just after the exchange time the book is known up to
                detail = f"{conn_key}: connection closed after sequence {state.sequence}"
                ts = state.last_ts + 1  # the book as of its last message is still known
                self._event(out, state, EventKind.GAP, ts, now_ns, state.sequence + 1, -1, detail)
                self._event(out, state, EventKind.RESYNC, ts, now_ns, -1, -1, "disconnect")
                state.last_break_ts = ts
            state.synced = False
            state.subscribed = False
            state.buffer.clear()
            state.ahead.clear()
            state.checking, state.check = False, None
            state.discard_answer = state.in_flight
            state.last_break = "disconnect"

    def take_reconnects(self) -> list[str]:
        if self._reconnect and self.retry.allowed(self._now_ns):
            self._reconnect = False
            return [FULL_CONN]
        return []

    def books(self) -> list[BookStatus]:
        statuses = []
        for state in self.state.values():
            bid, ask = state.book.best(BID), state.book.best(ASK)
            statuses.append(
                BookStatus(
                    symbol=state.native,
                    synced=state.synced,
                    bids=state.book.level_count(BID),
                    asks=state.book.level_count(ASK),
                    best_bid=math.nan if bid is None else bid,
                    best_ask=math.nan if ask is None else ask,
                    last_update_id=state.sequence if state.synced else -1,
                    waiting=state.waiting(),
                )
            )
        return statuses

    # ------------------------------------------------------------------ frames
    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        self._now_ns = max(self._now_ns, recv_ns)
        try:
            msg = FULL_DECODER.decode(data)
        except DECODE_ERRORS as e:
            raise decode_rejection(data, e) from None
        kind = msg.type
        if kind in BOOK_KINDS:
            state = self.state.get(msg.product_id)
            if state is None:
                raise RejectedFrame("unknown_symbol", msg.product_id or "(no product_id)")
            record = self._record(msg, recv_ns)
            if self._on_record(state, record, out):
                return FrameStatus.PROCESSED
            return FrameStatus.FILTERED  # a duplicate or late message: already applied
        if kind in FILTERED_TYPES:
            if kind == "subscriptions":
                self.retry.succeeded()
                listed = {p for c in msg.channels if c.name == "full" for p in c.product_ids}
                for native in listed:
                    state = self.state.get(native)
                    if state is not None:
                        state.subscribed = True
            elif msg.product_id and msg.product_id not in self.state:
                raise RejectedFrame("unknown_symbol", msg.product_id)
            return FrameStatus.FILTERED
        if kind == "error":
            return self._error(msg, recv_ns, out)
        raise RejectedFrame("unknown_message", kind or "(no type)")

    def _error(self, msg: FullMessage, recv_ns: int, out: RecordSink) -> FrameStatus:
        text = self._scrub(f"{msg.message} {msg.reason}".strip())
        invalid = _INVALID_PRODUCT.match(msg.reason)
        if invalid is not None and invalid.group(1) in self.state:
            native = invalid.group(1)  # Coinbase refuses the whole subscribe for one bad id
            self.state[native].refused = True
            # the others again, without it: a new connection (a venue mounting this feed
            # forwards reconnects, see the module docstring), whose subscribe leaves it out
            self._reconnect = True
            log.error("Coinbase refused product %s: %s; subscribing the others", native, text)
            out.events.append(
                Event(
                    exchange=EXCHANGE, symbol=native, native_symbol=native, ts=recv_ns,
                    recv_ts=recv_ns, kind=EventKind.INVALID_SYMBOL.value, channel="",
                    expected=-1, received=-1, detail=f"Coinbase: {text}",
                )
            )  # fmt: skip
            return FrameStatus.PROCESSED
        if "auth" not in text.lower():
            raise RejectedFrame("server_error", text)
        delay = self.retry.failed(recv_ns)
        source = self.credentials.source if self.credentials is not None else "nowhere"
        refused = f"Coinbase refused the API credentials from {source} ({text})"
        if delay is None:
            detail = f"{refused}; giving up after {self.retry.failures} attempts"
            log.error("%s", detail)
        else:
            detail = f"{refused}; attempt {self.retry.failures}, next in {delay:.0f}s"
            log.warning("%s", detail)
            self._reconnect = True
        out.events.append(
            Event(
                exchange=EXCHANGE, symbol="", native_symbol="", ts=recv_ns, recv_ts=recv_ns,
                kind=EventKind.AUTH_FAILED.value, channel=Channel.BOOK_L3.value, expected=-1,
                received=-1, detail=detail,
            )
        )  # fmt: skip
        return FrameStatus.PROCESSED

    def _scrub(self, text: str) -> str:
        if self.credentials is None:
            return text
        for value in self.credentials.values():
            text = text.replace(value, "***")
        return text

    def _record(self, msg: FullMessage, recv_ns: int) -> OrderEvent:
        """A checked book message → its row (RejectedFrame: nothing of it is used)."""
        if msg.sequence < 0:
            raise RejectedFrame("invalid_field", f"{msg.type}: sequence missing")
        ts = self._time(msg.time)
        check_time("time", ts, recv_ns)
        side = SIDES.get(msg.side)
        if side is None:
            raise RejectedFrame("invalid_field", f"{msg.type}: side {msg.side!r}")
        kind = msg.type
        order_id, other, reason, trade_id = msg.order_id, "", "", -1
        if kind == "match":
            order_id, other, trade_id = msg.maker_order_id, msg.taker_order_id, msg.trade_id
            price, size = number("price", msg.price), number("size", msg.size)
            check_positive("price", price)
            check_positive("size", size)
            if trade_id < 0 or not other:
                raise RejectedFrame("invalid_field", "match: trade_id or taker_order_id missing")
        elif kind == "open":
            price, size = number("price", msg.price), number("remaining_size", msg.remaining_size)
            check_positive("price", price)
            check_amount("remaining_size", size)
        elif kind == "change":
            price = optional_number("price", msg.new_price or msg.price)
            size = optional_number("new_size", msg.new_size)
            check_amount("price", price)
            check_amount("new_size", size)
        elif kind == "done":
            price = optional_number("price", msg.price)
            size = optional_number("remaining_size", msg.remaining_size)
            check_amount("price", price)
            check_amount("remaining_size", size)
            reason = msg.reason
        else:  # received
            price = optional_number("price", msg.price)
            size = optional_number("size", msg.size)
            check_amount("price", price)
            check_amount("size", size)
        if not order_id:
            raise RejectedFrame("invalid_field", f"{kind}: order id missing")
        return OrderEvent(
            exchange=EXCHANGE, symbol=msg.product_id, native_symbol=msg.product_id, ts=ts,
            recv_ts=recv_ns, order_id=order_id, side=side, price=price, size=size, kind=kind,
            sequence=msg.sequence, other_order_id=other, trade_id=trade_id, reason=reason,
        )  # fmt: skip

    # ------------------------------------------------------------------ book sync
    def _on_record(self, state: ProductBook, record: OrderEvent, out: RecordSink) -> bool:
        """Apply a message to a synced book, or hold it (reorder window, a periodic check) or
        buffer it for the next snapshot; False for a message the book already holds."""
        if not state.synced:
            self._buffer(state, record, out)
            return True
        if record.sequence <= state.sequence or record.sequence in state.ahead:
            return False  # a duplicate or late message: already in the book (the docs: ignore)
        if state.checking:
            self._hold_for_check(state, record, out)
            return True
        if record.sequence != state.sequence + 1:
            state.ahead[record.sequence] = record  # maybe only out of order: wait a little
            self._expire_window(state, record.recv_ts, out)
            return True
        self._apply(state, record, out)
        while state.synced and state.sequence + 1 in state.ahead:
            self._apply(state, state.ahead.pop(state.sequence + 1), out)
        if state.synced and state.ahead:
            self._expire_window(state, record.recv_ts, out)
        return True

    def _buffer(self, state: ProductBook, record: OrderEvent, out: RecordSink) -> None:
        if len(state.buffer) >= self.max_buffer:
            detail = f"buffer full ({self.max_buffer}) while waiting for a snapshot"
            first = state.buffer[0].sequence
            self._event(
                out, state, EventKind.GAP, record.ts, record.recv_ts, first, record.sequence,
                detail,
            )  # fmt: skip
            state.buffer.clear()
            state.last_break = "buffer overflow"
            state.last_break_ts = record.ts
        state.buffer.append(record)

    def _expire_window(self, state: ProductBook, now_ns: int, out: RecordSink) -> None:
        """A missing sequence waited for longer than the reorder window (counted in messages
        and in time, checked as messages arrive): a skipped sequence."""
        if not state.ahead:
            return
        oldest = min(r.recv_ts for r in state.ahead.values())
        if len(state.ahead) <= self.reorder_window and now_ns - oldest <= self.reorder_ns:
            return
        held = sorted(state.ahead.values(), key=_by_sequence)
        state.ahead.clear()
        detail = f"sequence {held[0].sequence} after {state.sequence}"
        expected = state.sequence + 1
        self._break(out, state, held, expected, held[0].sequence, detail, "skipped sequence")

    def _apply(self, state: ProductBook, record: OrderEvent, out: RecordSink) -> None:
        """The next message of a synced book: applied and stored, unless it would cross the
        book (then nothing of it is stored: gap + resync, the message waits for the snapshot)."""
        book = state.book
        if record.kind == "open" and not state.auction and _would_cross(book, record):
            detail = f"open of {record.order_id} at {record.price:g} crosses the book"
            held = [record, *sorted(state.ahead.values(), key=_by_sequence)]
            state.ahead.clear()
            self._break(out, state, held, -1, -1, detail, "crossed book")
            return
        book.apply(record.kind, record.order_id, record.side, record.price, record.size, record.ts)
        state.sequence = record.sequence
        state.last_ts = record.ts
        out.book_l3.append(record)

    def _break(
        self,
        out: RecordSink,
        state: ProductBook,
        pending: list[OrderEvent],
        expected: int,
        received: int,
        detail: str,
        why: str,
    ) -> None:
        """The book is no longer known: store the gap, keep buffering, fetch a new snapshot.
        Stamped with the exchange time of the message that broke it, else of the last applied."""
        ts = pending[0].ts if pending else state.last_ts
        self._event(out, state, EventKind.GAP, ts, self._now_ns, expected, received, detail)
        self._event(out, state, EventKind.RESYNC, ts, self._now_ns, -1, -1, "level-3 snapshot")
        state.synced = False
        state.last_break = why
        state.last_break_ts = ts
        state.buffer = list(pending)
        state.retry_at_ns = 0

    def _schedule_check(self, state: ProductBook, delay_ns: int) -> None:
        state.check_at_ns = self._now_ns + delay_ns if self.check_interval_ns else 0

    def _hold_for_check(self, state: ProductBook, record: OrderEvent, out: RecordSink) -> None:
        """A message while a periodic check's snapshot is out: held (not applied) so the book
        can be compared at the snapshot's sequence; once the stream reaches it, compared."""
        if len(state.buffer) >= self.max_buffer:  # the check takes too long: give it up
            log.warning("%s: level-3 check given up (buffer full)", state.native)
            self._end_check(state, out, self.check_interval_ns)
            self._on_record(state, record, out)
            return
        state.buffer.append(record)
        if state.check is not None and record.sequence >= state.check[0]:
            self._compare(state, out)

    def _end_check(self, state: ProductBook, out: RecordSink, next_in_ns: int) -> None:
        """Stop holding: apply what was held, schedule the next check."""
        held = sorted(state.buffer, key=_by_sequence)
        state.buffer, state.checking, state.check = [], False, None
        self._schedule_check(state, next_in_ns)
        for record in held:
            self._on_record(state, record, out)

    def _compare(self, state: ProductBook, out: RecordSink) -> None:
        """The held messages up to the check's snapshot applied, the book compared with it:
        the same, the snapshot is stored as a checkpoint; different, a gap and a resync."""
        assert state.check is not None
        sequence, orders, ts, recv_ns = state.check
        held = sorted(state.buffer, key=_by_sequence)
        state.buffer, state.checking, state.check = [], False, None
        self._schedule_check(state, self.check_interval_ns)
        rest = [r for r in held if r.sequence > sequence]
        for record in held:
            if record.sequence <= sequence:
                self._on_record(state, record, out)
        if not state.synced:  # broken on the way: this snapshot resyncs it
            state.buffer.extend(rest)
            self._sync(state, sequence, orders, max(ts, state.last_break_ts), recv_ns, out)
            return
        if state.sequence != sequence:  # the snapshot is older than the book: try again soon
            self._schedule_check(state, self.retry_initial_ns)
            for record in rest:
                self._on_record(state, record, out)
            return
        difference = _difference(state.book, orders)
        if difference:
            detail = f"level-3 snapshot {sequence} differs from the live book: {difference}"
            log.warning("%s: %s", state.native, detail)
            stamp = state.last_ts
            self._event(out, state, EventKind.GAP, stamp, recv_ns, sequence, sequence, detail)
            self._event(out, state, EventKind.RESYNC, stamp, recv_ns, -1, -1, "level-3 snapshot")
            state.synced = False
            state.last_break, state.last_break_ts = "snapshot check", stamp
            state.buffer = rest
            self._sync(state, sequence, orders, max(ts, stamp), recv_ns, out)
            return
        state.snapshots_checked += 1
        self._store_snapshot(state, sequence, orders, state.last_ts, recv_ns, out)
        for record in rest:
            self._on_record(state, record, out)

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        self._now_ns = max(self._now_ns, now_ns)
        requests = []
        for native, state in self.state.items():
            check = state.wants_check(now_ns)
            if not check and (not state.wants_snapshot or now_ns < state.retry_at_ns):
                continue
            state.in_flight = True
            state.checking = check
            path = f"/products/{native}/book?level=3"
            headers = (
                {} if self.credentials is None else rest_headers(self.credentials, now_ns, path)
            )
            requests.append(
                RestRequest(
                    key=request_key(native), url=self.rest_url + path, headers=headers,
                    purpose=RestPurpose.BOOK_SNAPSHOT,
                )
            )  # fmt: skip
        return requests

    def next_wakeup_ns(self) -> int | None:
        times = [s.retry_at_ns for s in self.state.values() if s.wants_snapshot and s.retry_at_ns]
        times += [
            s.check_at_ns
            for s in self.state.values()
            if s.synced and s.check_at_ns and not (s.in_flight or s.checking)
        ]
        return min(times) if times else None

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        self._now_ns = max(self._now_ns, recv_ns)
        state = self.state.get(request.key.removeprefix(f"{FULL_CONN}:"))
        if state is None or request.purpose is not RestPurpose.BOOK_SNAPSHOT:
            return
        state.in_flight = False
        if state.discard_answer:
            state.discard_answer = False  # taken before the reconnect: ask again after it
            return
        if state.synced and not state.checking:
            return  # answered after the book synced another way: nothing to do
        try:
            if response.status != 200:
                raise RejectedFrame("http_error", f"HTTP {response.status}")
            snapshot = SNAPSHOT_DECODER.decode(response.body)
            orders = self._snapshot_orders(snapshot)
            # exchange times only: the snapshot's, never before the break it repairs
            ts = max(self._time(snapshot.time) if snapshot.time else -1, state.last_break_ts)
        except (RejectedFrame, *DECODE_ERRORS) as e:
            log.warning("%s level-3 snapshot refused (%s); refetching", request.key, e)
            if state.synced:
                self._end_check(state, out, self.retry_initial_ns)
            else:
                self._retry_later(state, recv_ns)
            return
        if ts < 0:  # no time in the snapshot: the newest exchange time of the messages around
            ts = max([r.ts for r in state.buffer] + [state.last_ts])
        state.auction = snapshot.auction_mode
        if state.synced:
            state.check = (snapshot.sequence, orders, ts, recv_ns)
            newest = max((r.sequence for r in state.buffer), default=state.sequence)
            if newest >= snapshot.sequence:
                self._compare(state, out)
            return
        self._sync(state, snapshot.sequence, orders, ts, recv_ns, out)

    def _snapshot_orders(self, snapshot: Level3Snapshot) -> list[tuple[int, float, float, str]]:
        if snapshot.sequence < 0:
            raise RejectedFrame("invalid_field", "snapshot sequence")
        orders = []
        for side, levels in ((BID, snapshot.bids), (ASK, snapshot.asks)):
            for price_text, size_text, order_id in levels:
                price, size = number("price", price_text), number("size", size_text)
                check_positive("price", price)
                check_positive("size", size)
                orders.append((side, price, size, order_id))
        return orders

    def _retry_later(self, state: ProductBook, now_ns: int) -> None:
        state.retry_at_ns = now_ns + state.retry_ns
        state.retry_ns = min(2 * state.retry_ns, _SNAPSHOT_RETRY_CAP_NS)

    def _sync(
        self,
        state: ProductBook,
        sequence: int,
        orders: list[tuple[int, float, float, str]],
        ts: int,
        recv_ns: int,
        out: RecordSink,
    ) -> None:
        """Steps 4-6 of the documented sync: drop what the snapshot covers, apply the rest."""
        pending = sorted((r for r in state.buffer if r.sequence > sequence), key=_by_sequence)
        if pending and pending[0].sequence != sequence + 1:
            state.snapshots_stale += 1
            detail = (
                f"stale snapshot: sequence {sequence}, buffered messages resume at "
                f"{pending[0].sequence}"
            )
            self._event(
                out, state, EventKind.RESYNC, ts, recv_ns, sequence + 1, pending[0].sequence, detail
            )
            state.buffer = pending
            self._retry_later(state, recv_ns)
            return
        book = state.book
        book.clear()
        for side, price, size, order_id in orders:
            book.add(order_id, side, price, size, ts)
        if book.crossed() and not state.auction:
            state.snapshots_stale += 1
            self._event(out, state, EventKind.RESYNC, ts, recv_ns, -1, -1, "crossed snapshot")
            book.clear()
            self._retry_later(state, recv_ns)
            return
        self._store_snapshot(state, sequence, orders, ts, recv_ns, out)
        state.synced, state.sequence, state.buffer = True, sequence, []
        state.last_ts = ts
        state.ahead.clear()
        state.checking, state.check = False, None
        state.check_at_ns = recv_ns + self.check_interval_ns if self.check_interval_ns else 0
        state.snapshots_used += 1
        state.retry_ns = self.retry_initial_ns
        state.retry_at_ns = 0
        self._event(out, state, EventKind.SYNCED, ts, recv_ns, -1, sequence, "level-3 snapshot")
        for record in pending:
            self._on_record(state, record, out)

    def _store_snapshot(
        self,
        state: ProductBook,
        sequence: int,
        orders: list[tuple[int, float, float, str]],
        ts: int,
        recv_ns: int,
        out: RecordSink,
    ) -> None:
        """One ``snapshot`` row per order, each with its place in the snapshot (``trade_id``):
        a store may return rows of one key prefix in any order, the place restores the queues."""
        out.book_l3.extend(
            OrderEvent(
                exchange=EXCHANGE, symbol=state.native, native_symbol=state.native, ts=ts,
                recv_ts=recv_ns, order_id=order_id, side=side, price=price, size=size,
                kind="snapshot", sequence=sequence, other_order_id="", trade_id=place, reason="",
            )
            for place, (side, price, size, order_id) in enumerate(orders)
        )  # fmt: skip

    def _event(
        self,
        out: RecordSink,
        state: ProductBook,
        kind: EventKind,
        ts: int,
        recv_ns: int,
        expected: int,
        received: int,
        detail: str,
    ) -> None:
        out.events.append(
            Event(
                exchange=EXCHANGE, symbol=state.native, native_symbol=state.native, ts=ts,
                recv_ts=recv_ns, kind=kind.value, channel=Channel.BOOK_L3.value,
                expected=expected, received=received, detail=detail,
            )
        )  # fmt: skip


def _by_sequence(record: OrderEvent) -> int:
    return record.sequence


def _would_cross(book: OrderBook, record: OrderEvent) -> bool:
    """An ``open`` resting at or through the other side's best price."""
    if record.side == BID:
        ask = book.best(ASK)
        return ask is not None and record.price >= ask
    bid = book.best(BID)
    return bid is not None and record.price <= bid


def _difference(book: OrderBook, orders: list[tuple[int, float, float, str]]) -> str:
    """How the live book differs from a snapshot's orders (queues included); "" if it does not."""
    listed: dict[tuple[int, float], list[tuple[str, float]]] = {}
    for side, price, size, order_id in orders:
        listed.setdefault((side, price), []).append((order_id, size))
    if len(orders) != len(book):
        return f"{len(book)} orders live, {len(orders)} in the snapshot"
    for (side, price), queue in listed.items():
        live = [(o.order_id, o.size) for o in book.queue(side, price)]
        if [i for i, _ in live] != [i for i, _ in queue]:
            return f"the queue at {price:g} ({'bid' if side == BID else 'ask'}) differs"
        for (order_id, size), (_, expected) in zip(live, queue, strict=True):
            if abs(size - expected) > 1e-9 * max(1.0, abs(expected)):
                return f"order {order_id} has size {size:g} live, {expected:g} in the snapshot"
    return ""
