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

Integrity: each product's sequence grows by exactly 1 per message. A message more than one
ahead is a skipped sequence: a ``gap`` event (expected, received) and a ``resync`` in place (the
stream goes on, buffered, while a new snapshot is fetched). A message at or below the last
applied one is a duplicate or late (ignored, as the docs say: filtered). A snapshot older than
the first buffered message after it (stale: the events between are in neither) is not used: a
``resync`` event, and another snapshot is fetched after a short back-off. An ``open`` that would
cross the book is a broken book too (gap + resync). A dropped connection is a ``gap`` (the
next connection resyncs from a new snapshot).

``activate`` (a stop order triggered; it carries no sequence and rests nowhere until its
``received``), ``heartbeat`` and ``subscriptions`` are filtered; ``error`` frames about
authentication record ``auth_failed`` and reconnect with a capped back-off; one refusing a
configured product (``X is not a valid product``) records ``invalid_symbol``; others are rejected
(``server_error``).

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
    last_break_ts: int = 0  # a snapshot repairing a break is never stored before it
    snapshots_used: int = 0
    snapshots_stale: int = 0

    @property
    def wants_snapshot(self) -> bool:
        return not self.synced and not self.in_flight and (self.subscribed or bool(self.buffer))

    def waiting(self) -> str:
        if self.synced:
            return ""
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

    def opening(self, spec: StreamSpec, now_ns: int) -> Opening | None:
        """The subscribe message, signed now (Coinbase refuses a timestamp 30 s off)."""
        self._now_ns = max(self._now_ns, now_ns)
        if self.credentials is None:
            return Opening(spec.url, spec.subscribe)
        if not self.retry.allowed(now_ns):
            return None
        signed = subscribe_message(["full"], list(self.products), self.credentials, now_ns)
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
            if state.synced:
                detail = f"{conn_key}: connection closed after sequence {state.sequence}"
                self._event(
                    out, state, EventKind.GAP, now_ns, now_ns, state.sequence + 1, -1, detail
                )
                self._event(out, state, EventKind.RESYNC, now_ns, now_ns, -1, -1, "disconnect")
            state.synced = False
            state.subscribed = False
            state.buffer.clear()
            state.discard_answer = state.in_flight
            state.last_break = "disconnect"
            state.last_break_ts = now_ns

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
                for state in self.state.values():
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
        """Apply a message to a synced book, or buffer it for the next snapshot; False for a
        message the book already holds."""
        if not state.synced:
            if len(state.buffer) >= self.max_buffer:
                detail = f"buffer full ({self.max_buffer}) while waiting for a snapshot"
                first = state.buffer[0].sequence
                self._event(
                    out,
                    state,
                    EventKind.GAP,
                    record.ts,
                    record.recv_ts,
                    first,
                    record.sequence,
                    detail,
                )
                state.buffer.clear()
                state.last_break = "buffer overflow"
                state.last_break_ts = record.ts
            state.buffer.append(record)
            return True
        if record.sequence <= state.sequence:
            return False  # a duplicate or late message: already in the book (the docs: ignore)
        if record.sequence != state.sequence + 1:
            detail = f"sequence {record.sequence} after {state.sequence}"
            self._break(out, state, record, state.sequence + 1, detail, "skipped sequence")
            return True
        book = state.book
        book.apply(record.kind, record.order_id, record.side, record.price, record.size, record.ts)
        state.sequence = record.sequence
        out.book_l3.append(record)
        if record.kind == "open" and book.crossed():
            detail = f"open of {record.order_id} at {record.price:g} crosses the book"
            self._break(out, state, None, -1, detail, "crossed book")
        return True

    def _break(
        self,
        out: RecordSink,
        state: ProductBook,
        pending: OrderEvent | None,
        expected: int,
        detail: str,
        why: str,
    ) -> None:
        """The book is no longer known: store the gap, keep buffering, fetch a new snapshot."""
        ts = pending.ts if pending is not None else self._now_ns
        received = pending.sequence if pending is not None else -1
        self._event(out, state, EventKind.GAP, ts, self._now_ns, expected, received, detail)
        self._event(out, state, EventKind.RESYNC, ts, self._now_ns, -1, -1, "level-3 snapshot")
        state.synced = False
        state.last_break = why
        state.last_break_ts = ts
        state.buffer = [] if pending is None else [pending]
        state.retry_at_ns = 0

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        self._now_ns = max(self._now_ns, now_ns)
        requests = []
        for native, state in self.state.items():
            if not state.wants_snapshot or now_ns < state.retry_at_ns:
                continue
            state.in_flight = True
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
        if state.synced:
            return  # answered after the book synced another way: nothing to do
        try:
            if response.status != 200:
                raise RejectedFrame("http_error", f"HTTP {response.status}")
            snapshot = SNAPSHOT_DECODER.decode(response.body)
            orders = self._snapshot_orders(snapshot)
            ts = max(self._time(snapshot.time) if snapshot.time else recv_ns, state.last_break_ts)
        except (RejectedFrame, *DECODE_ERRORS) as e:
            self._retry_later(state, recv_ns)
            log.warning("%s level-3 snapshot refused (%s); refetching", request.key, e)
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
        if book.crossed():
            state.snapshots_stale += 1
            self._event(out, state, EventKind.RESYNC, ts, recv_ns, -1, -1, "crossed snapshot")
            book.clear()
            self._retry_later(state, recv_ns)
            return
        out.book_l3.extend(
            OrderEvent(
                exchange=EXCHANGE, symbol=state.native, native_symbol=state.native, ts=ts,
                recv_ts=recv_ns, order_id=order_id, side=side, price=price, size=size,
                kind="snapshot", sequence=sequence, other_order_id="", trade_id=-1, reason="",
            )
            for side, price, size, order_id in orders
        )  # fmt: skip
        state.synced, state.sequence, state.buffer = True, sequence, []
        state.snapshots_used += 1
        state.retry_ns = self.retry_initial_ns
        state.retry_at_ns = 0
        self._event(out, state, EventKind.SYNCED, ts, recv_ns, -1, sequence, "level-3 snapshot")
        for record in pending:
            self._on_record(state, record, out)

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
