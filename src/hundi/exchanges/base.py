"""The sans-I/O contract every venue implements.

A venue protocol is pure code: it builds connection URLs and subscribe messages, turns received
bytes into records, and runs the order-book sync rules. It never opens a socket, sleeps or reads
the clock: the caller passes ``now_ns``/``recv_ns`` in and performs the I/O it asks for
(``connections()`` to open, ``due_requests()`` to fetch). That is what lets the same code run
live, in replays of raw captures and in tests on recorded frames (the ``websockets`` model:
a protocol state machine plus a thin asyncio adapter, here :mod:`hundi.connection`).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

import msgspec

from hundi.records import (
    Bbo,
    BookChange,
    Candle,
    Channel,
    DerivativeTicker,
    Event,
    Fill,
    Instrument,
    Liquidation,
    Order,
    OrderEvent,
    Record,
    Ticker,
    Trade,
)

#: What a capture shows of a message sent on an authenticated stream (``redact_sent``).
REDACTED: Final = b"<redacted: authenticated message>"


class FrameStatus(enum.IntEnum):
    """How a received frame was accounted for (rejections raise :class:`RejectedFrame`)."""

    PROCESSED = 0  # market data turned into records (or buffered for the book)
    FILTERED = 1  # acks, pings, heartbeats, control: nothing to store, by design


class RejectedFrame(Exception):
    """A frame that could not be used. ``reason`` is a short stable key for the summary."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# What a decoder may raise on bytes it cannot use. msgspec raised UnicodeDecodeError for invalid
# UTF-8 up to 0.19 and DecodeError since; JSON nested past its depth limit raises RecursionError.
DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


Bytes = bytes | bytearray | memoryview | msgspec.Raw


def is_utf8(data: Bytes) -> bool:
    try:
        bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_rejection(data: Bytes, error: Exception) -> RejectedFrame:
    """Why bytes that failed to decode are rejected, judged by what the bytes are, never by
    which exception a library version happens to raise: not UTF-8 text, or not JSON at all, is
    ``malformed_json``; well-formed JSON of the wrong shape (a ``ValidationError``) is
    ``invalid_message``."""
    if not is_utf8(data):
        return RejectedFrame("malformed_json", f"not UTF-8 text ({error})")
    if isinstance(error, msgspec.ValidationError):
        return RejectedFrame("invalid_message", str(error))
    if isinstance(error, RecursionError):
        return RejectedFrame("malformed_json", "JSON nested too deeply")
    return RejectedFrame("malformed_json", str(error))


class RecordSink:
    """Per-channel lists the protocol appends records to; drained in batches by the pipeline.

    One list attribute per :class:`Channel`, named by its value (``sink.trades``...), so a
    channel added to ``records`` gets its list without editing this class.
    """

    __slots__ = tuple(c.value for c in Channel)

    trades: list[Trade]
    bbo: list[Bbo]
    ticker: list[Ticker]
    book: list[BookChange]
    book_l3: list[OrderEvent]
    candles: list[Candle]
    derivative_ticker: list[DerivativeTicker]
    liquidations: list[Liquidation]
    instruments: list[Instrument]
    events: list[Event]
    orders: list[Order]
    fills: list[Fill]

    def __init__(self) -> None:
        for channel in Channel:
            setattr(self, channel.value, [])

    def __len__(self) -> int:
        return sum(len(getattr(self, channel.value)) for channel in Channel)

    def items(self) -> Iterator[tuple[Channel, list[Record]]]:
        """Non-empty channels and their records."""
        for channel in Channel:
            records: list[Record] = getattr(self, channel.value)
            if records:
                yield channel, records

    def drain(self) -> dict[Channel, list[Record]]:
        """Take everything collected so far, leaving the sink empty."""
        taken = dict(self.items())
        for channel in taken:
            setattr(self, channel.value, [])
        return taken


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One WebSocket connection the venue wants open."""

    key: str  # stable id, used in logs, raw captures and ``receive``
    url: str
    subscribe: tuple[bytes, ...] = ()  # messages to send after the socket opens, in order
    max_outgoing_per_s: float = 5.0  # venue limit on client messages
    max_lifetime_s: float = 23.5 * 3600  # reconnect proactively before the venue drops us
    # Authenticated: the URL/messages come from ``VenueProtocol.opening`` at each (re)open and
    # carry credentials or a listen key, so logs and raw captures show ``url`` and redact them.
    private: bool = False
    # Streams that are legitimately quiet for long (an idle account) override the collector's
    # stale window; None = the collector's.
    stale_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Opening:
    """What to connect to and send for one (re)open of a stream, built at that moment.

    Signed messages (timestamps, nonces) and listen-key URLs cannot be fixed in advance, so the
    I/O layer asks the protocol for them at every open.
    """

    url: str = field(repr=False)
    messages: tuple[bytes, ...] = field(default=(), repr=False)


class RestPurpose(enum.StrEnum):
    """What a :class:`RestRequest` is for: the venue routes the answer by this tag, never by
    parsing the request's ``key`` (which only names it in logs, captures and rate limits)."""

    BOOK_SNAPSHOT = "book_snapshot"  # an order book's REST snapshot
    SYMBOL_LISTING = "symbol_listing"  # the venue's list of symbols (Binance ``exchangeInfo``)
    TRADE_BACKFILL = "trade_backfill"  # missed trades fetched again
    SESSION_KEY = "session_key"  # the token of a private stream (Binance listen key)
    OTHER = "other"  # untagged: a venue with a single kind of request, test doubles


@dataclass(frozen=True, slots=True)
class RestRequest:
    """A REST call the venue needs (order-book snapshots, listen keys)."""

    key: str  # e.g. the native symbol whose book needs it; also the capture's connection name
    url: str
    weight: int = 1
    method: str = "GET"
    # Headers may hold an API key: never in reprs, logs or captures.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Private answers (a listen key) are neither logged nor captured.
    private: bool = False
    purpose: RestPurpose = field(default=RestPurpose.OTHER, kw_only=True)


@dataclass(frozen=True, slots=True)
class RestResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class VenueConfig:
    """What a user asks a venue for; venue-specific knobs live in ``options``."""

    market: str
    symbols: tuple[str, ...]  # native symbols, e.g. BTCUSDT
    channels: tuple[Channel, ...]
    endpoint: str | None = None  # WS base URL override
    rest_endpoint: str | None = None  # REST base URL override
    options: dict[str, str] = field(default_factory=dict)
    # False for replays: authenticated channels' captured frames are parsed, but no credentials
    # are loaded and nothing is signed or opened.
    authenticate: bool = True


@dataclass(slots=True)
class BookStatus:
    """A venue's view of one live book for status screens and summaries."""

    symbol: str
    synced: bool
    bids: int
    asks: int
    best_bid: float
    best_ask: float
    last_update_id: int
    # Why it is not synced (what it waits for, what broke it last); "" when synced.
    waiting: str = ""


def book_keys(books: Iterable[BookStatus]) -> list[tuple[str, int]]:
    """Each book's key among a venue's books: its symbol and how many books of that symbol come
    before it. The symbol alone is not unique: a venue may keep a level-2 and a level-3 book of
    one product, both named by its symbol."""
    seen: dict[str, int] = {}
    keys: list[tuple[str, int]] = []
    for book in books:
        rank = seen.get(book.symbol, 0)
        seen[book.symbol] = rank + 1
        keys.append((book.symbol, rank))
    return keys


class VenueProtocol(ABC):
    """Pure state machine of one venue market. See the module docstring."""

    exchange: str

    @abstractmethod
    def connections(self) -> list[StreamSpec]:
        """The connections to open, with their subscribe messages."""

    @abstractmethod
    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        """Handle one received frame; append records to ``out``.

        Raises :class:`RejectedFrame` for frames that cannot be used (malformed, unknown event,
        unknown symbol...). Must never raise anything else on bad input.
        """

    def opening(self, spec: StreamSpec, now_ns: int) -> Opening | None:
        """URL and messages for opening ``spec`` now; None = not yet (waiting for a listen key
        or an authentication back-off): the I/O layer asks again a little later."""
        return Opening(spec.url, spec.subscribe)

    def redact(self, conn_key: str, data: bytes) -> bytes:
        """A frame of an authenticated stream as it may be written to raw captures and
        quarantine files: venues echo API keys (Binance ``session.logon``) or listen keys."""
        return data

    def on_open(self, conn_key: str, now_ns: int, out: RecordSink) -> None:  # noqa: B027
        """A connection (re)opened; books on it will need a fresh snapshot."""

    def redact_sent(self, conn_key: str, message: bytes) -> bytes:
        """A message sent on an authenticated stream as captures may show it: by default
        nothing of it (signatures, keys); a venue keeps what holds no secret and a replay
        needs (a request's id and method, see :meth:`replayed_sent`)."""
        return REDACTED

    def replayed_sent(self, conn_key: str, data: bytes, now_ns: int) -> None:  # noqa: B027
        """A message the live run sent on the connection, from a capture (redacted). A replay
        sends nothing itself, so a protocol that matches replies to its requests (by id)
        learns them here, to read the replies as the live run did."""

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:  # noqa: B027
        """A connection dropped; books on it are no longer continuous (record a gap)."""

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        """REST calls to make now, within the venue's rate limits and back-offs."""
        return []

    def receive_response(  # noqa: B027
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        """Feed back the answer to a :meth:`due_requests` call (or a transport failure as 599)."""

    def next_wakeup_ns(self) -> int | None:
        """When ``due_requests`` may next return something (for the I/O loop's sleep)."""
        return None

    def take_reconnects(self) -> list[str]:
        """Connection keys the venue asked to reconnect (e.g. a ``serverShutdown`` notice)."""
        return []

    def take_messages(self) -> list[tuple[str, bytes]]:
        """``(connection key, message)`` the venue asks to send now on an open connection, e.g.
        a re-subscribe that resyncs one book in place after a checksum mismatch. The I/O
        layer sends them on the stream's socket at its next supervisor tick, within
        ``StreamSpec.max_outgoing_per_s``; messages for a stream whose socket is lost before
        they are sent are dropped (``on_close`` runs, and the reopen subscribes afresh)."""
        return []

    def finishing_requests(self, now_ns: int) -> list[RestRequest] | None:
        """At a clean stop: the REST calls still owed for data known missing (trades of a gap
        being fetched back), due now; ``[]`` while waiting for answers or the rate limit,
        None when nothing is owed. The I/O loop serves them for a bounded time, then calls
        :meth:`abandon`, so a stop right after a gap does not leave it unfetched."""
        return None

    def owed_ids(self) -> int:
        """Ids known missing and being fetched back (trades of gaps): the status shows the
        backfill's progress with it. 0: nothing owed."""
        return 0

    def abandon(self, now_ns: int, out: RecordSink) -> None:  # noqa: B027
        """The run ends with :meth:`finishing_requests` still owed: record what stays missing."""

    def books(self) -> list[BookStatus]:
        return []

    def recover(self, gap: Event, now_ns: int, out: RecordSink) -> bool:
        """Fetch back what ``gap`` says is missing, when the venue can (e.g. trades by id over
        REST), for a gap found outside the protocol (between two runs). True: it will try, and
        says how it went with events in ``out``; False: nothing can be fetched for it here."""
        return False

    def normalize_symbol(self, native: str) -> str:
        return native
