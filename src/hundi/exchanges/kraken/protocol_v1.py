"""Kraken spot WebSocket v1 (``wss://ws.kraken.com``) order books, sans-I/O.

Kept for replaying v1 recordings (``../shared/recordings/KRAKEN.*``, picked by
:func:`hundi.exchanges.kraken.capture.infer_capture` from the recording's URL) and usable live
with ``--option api=v1``; v2 (:mod:`hundi.exchanges.kraken.protocol`) is the default. Only
the ``book`` channel is implemented for v1. At start the REST ``AssetPairs`` listing is fetched
(as the recording's client did): a configured pair no ``wsname`` names is an
``invalid_symbol`` event. Its precisions are not needed: v1 levels are decimal strings that
carry them, and the checksum is built from those strings.

v1 frames are JSON arrays tagged by a channel id that the ``subscriptionStatus`` event maps to
a pair; books are ``[id, {"as": [...], "bs": [...]}, "book-D", "XBT/USD"]`` (snapshot) and
``[id, {"a": [...]}, {"b": [...], "c": "CRC"}, "book-D", "XBT/USD"]`` (updates: one or two
maps, the checksum ``c`` in the last). Levels are ``[price, volume, time]`` decimal strings,
with a fourth ``"r"`` for a republished level (one that came back into the subscribed depth),
applied like any other. The checksum is built from the level strings as received (no
precision needed); snapshots carry none. Pairs use the legacy codes (``XBT/USD``), which
normalize to ``BTC-USD``. A mismatch is a gap, then the book is unsubscribed and subscribed
again on the connection (:meth:`KrakenV1Protocol.take_messages`).
"""

from __future__ import annotations

import math
from typing import Final

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
from hundi.exchanges.kraken.book import KrakenBook, LevelSide
from hundi.exchanges.kraken.common import (
    CONN,
    EXCHANGE,
    MAX_OUTGOING_PER_S,
    Resubscribes,
    book_event,
    book_rows,
    check_config,
    depth_option,
    epoch_ns,
    number,
)
from hundi.exchanges.kraken.symbols import normalize
from hundi.exchanges.validity import check_levels, check_time
from hundi.records import ASK, BID, Channel, Event, EventKind

WS_URL_V1: Final = "wss://ws.kraken.com"
REST_URL: Final = "https://api.kraken.com"
ASSET_PAIRS_PATH: Final = "/0/public/AssetPairs"
LISTING_RETRY_NS: Final = 10 * 1_000_000_000
SUPPORTED_V1: Final = frozenset((Channel.BOOK, Channel.EVENTS))


class BookMap(msgspec.Struct, frozen=True):
    """One map of a v1 book frame: snapshot sides (``as``/``bs``) or update sides (``a``/``b``)
    and, in the last map of an update, the checksum ``c``."""

    snapshot_asks: list[list[str]] | None = msgspec.field(default=None, name="as")
    snapshot_bids: list[list[str]] | None = msgspec.field(default=None, name="bs")
    a: list[list[str]] | None = None
    b: list[list[str]] | None = None
    c: str = ""


class EventMessage(msgspec.Struct, frozen=True):
    event: str
    status: str = ""
    pair: str = ""
    channelID: int = -1  # the wire's spelling
    channelName: str = ""
    errorMessage: str = ""


class AssetPair(msgspec.Struct, frozen=True):
    wsname: str = ""  # the v1 WebSocket spelling, e.g. XBT/USD
    status: str = "online"


class AssetPairs(msgspec.Struct, frozen=True):
    error: list[str] = []
    result: dict[str, AssetPair] = {}


ASSET_PAIRS_DECODER: Final = msgspec.json.Decoder(AssetPairs)
ARRAY_DECODER: Final = msgspec.json.Decoder(list[int | str | BookMap])
EVENT_DECODER: Final = msgspec.json.Decoder(EventMessage)
FILTERED_EVENTS: Final = frozenset(("heartbeat", "systemStatus", "pong"))


class KrakenV1Protocol(VenueProtocol):
    """Kraken spot WebSocket v1 books (module docstring)."""

    exchange = EXCHANGE

    def __init__(self, config: VenueConfig) -> None:
        check_config(config, SUPPORTED_V1, "WebSocket v1")
        self.config = config
        self.depth = depth_option(config)
        self.symbols = {native: normalize(native) for native in config.symbols}
        self.book = {n: KrakenBook(s, n, self.depth) for n, s in self.symbols.items()}
        self.channel_ids: dict[int, str] = {}
        self.resubscribes = Resubscribes(self._book_message)
        self.invalid_symbols: list[str] = []  # configured pairs AssetPairs does not list
        self._listing_due_ns: int | None = 0  # None: the listing was checked
        base = (config.rest_endpoint or REST_URL).rstrip("/")
        self._listing = RestRequest(
            "AssetPairs", base + ASSET_PAIRS_PATH, purpose=RestPurpose.SYMBOL_LISTING
        )

    def connections(self) -> list[StreamSpec]:
        return [
            StreamSpec(
                CONN,
                self.config.endpoint or WS_URL_V1,
                subscribe=(self._book_message("subscribe", list(self.symbols)),),
                max_outgoing_per_s=MAX_OUTGOING_PER_S,
                max_lifetime_s=math.inf,  # Kraken documents no connection lifetime
            )
        ]

    def _book_message(self, event: str, pairs: list[str]) -> bytes:
        return msgspec.json.encode(
            {"event": event, "pair": pairs, "subscription": {"name": "book", "depth": self.depth}}
        )

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        """REST ``AssetPairs`` once (again after a failure): the listing the pairs are checked
        against (its ``wsname`` is the v1 spelling)."""
        due = self._listing_due_ns
        if due is None or now_ns < due:
            return []
        self._listing_due_ns = now_ns + LISTING_RETRY_NS  # asked: wait for the answer
        return [self._listing]

    def next_wakeup_ns(self) -> int | None:
        return self._listing_due_ns

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        listing: AssetPairs | None = None
        if 200 <= response.status < 300:
            try:
                listing = ASSET_PAIRS_DECODER.decode(response.body)
            except DECODE_ERRORS:
                listing = None
        if listing is None or listing.error:
            self._listing_due_ns = recv_ns + LISTING_RETRY_NS  # unusable: ask again later
            return
        self._listing_due_ns = None
        listed = {p.wsname: p for p in listing.result.values() if p.wsname}
        for native, symbol in self.symbols.items():
            pair = listed.get(native)
            if pair is None:
                problem = f"KRAKEN does not list {native} (AssetPairs wsname)"
            elif pair.status != "online":
                problem = f"KRAKEN lists {native} with status {pair.status} (AssetPairs)"
            else:
                continue
            self.invalid_symbols.append(native)
            out.events.append(Event(
                exchange=EXCHANGE, symbol=symbol, native_symbol=native, ts=recv_ns,
                recv_ts=recv_ns, kind=EventKind.INVALID_SYMBOL.value, channel="", expected=-1,
                received=-1, detail=problem,
            ))  # fmt: skip

    def take_messages(self) -> list[tuple[str, bytes]]:
        return self.resubscribes.take()

    def normalize_symbol(self, native: str) -> str:
        return self.symbols.get(native) or normalize(native)

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        """A gap per synced book; nothing is reset at ``on_open``, which the I/O layer calls
        after the subscribes (their snapshots may already be in)."""
        self.resubscribes.clear()
        self.channel_ids.clear()
        for book in self.book.values():
            if book.synced:
                book_event(out, book, EventKind.GAP, now_ns, now_ns, f"{conn_key} closed")
            book.reset("connection closed: waiting for a snapshot")

    def books(self) -> list[BookStatus]:
        return [book.status() for book in self.book.values()]

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

    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        due = self.resubscribes.next_due_ns  # delayed resyncs fall due with the frames' clock
        if due is not None and recv_ns >= due:
            self.resubscribes.release(recv_ns)
        head = data.lstrip()[:1]
        if head == b"{":
            return self._event(data, recv_ns, out)
        if head != b"[":
            raise decode_rejection(data, msgspec.DecodeError("not a JSON array or object"))
        try:
            items = ARRAY_DECODER.decode(data)
        except DECODE_ERRORS as e:
            raise decode_rejection(data, e) from None
        if len(items) not in (4, 5) or not isinstance(items[0], int):
            raise RejectedFrame("invalid_message", f"{len(items)} elements")
        channel_name, pair = items[-2], items[-1]
        maps = items[1:-2]
        if not isinstance(channel_name, str) or not isinstance(pair, str):
            raise RejectedFrame("invalid_message", "channel name and pair must be strings")
        if not all(isinstance(m, BookMap) for m in maps):
            raise RejectedFrame("invalid_message", "book maps expected")
        if not channel_name.startswith("book-"):
            raise RejectedFrame("unknown_message", channel_name)
        if pair not in self.book:
            raise RejectedFrame("unknown_symbol", pair)
        book = self.book[pair]
        book_maps: list[BookMap] = [m for m in maps if isinstance(m, BookMap)]
        first = book_maps[0]
        if first.snapshot_asks is not None or first.snapshot_bids is not None:
            if book.synced:  # a rollover's second socket: see KrakenProtocol (v2)
                return FrameStatus.FILTERED
            return self._snapshot(book, first, recv_ns, out)
        return self._update(book, book_maps, conn_key, recv_ns, out)

    def _event(self, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        try:
            msg = EVENT_DECODER.decode(data)
        except DECODE_ERRORS as e:
            raise decode_rejection(data, e) from None
        if msg.event in FILTERED_EVENTS:
            return FrameStatus.FILTERED
        if msg.event == "subscriptionStatus":
            if msg.status == "error":
                if self._refused(msg, recv_ns, out):
                    return FrameStatus.PROCESSED
                raise RejectedFrame("subscription_failed", f"{msg.pair}: {msg.errorMessage}")
            if msg.status == "subscribed" and msg.channelID >= 0:
                self.channel_ids[msg.channelID] = msg.pair
            return FrameStatus.FILTERED
        raise RejectedFrame("unknown_message", f"event {msg.event!r}")

    def _refused(self, msg: EventMessage, recv_ns: int, out: RecordSink) -> bool:
        """A refused book re-subscribe of ours: an event and the re-subscribe owed again with
        the back-off (v2's ``KrakenProtocol._refused``); False if none was in flight."""
        book = self.book.get(msg.pair)
        if book is None or book.synced:
            return False
        delay = self.resubscribes.refused(msg.pair, recv_ns)
        if delay is None:
            return False
        later = f" in {delay}s" if delay else ""
        book.waiting = f"re-subscribe refused ({msg.errorMessage}): again{later or ' now'}"
        detail = f"re-subscribe refused: {msg.errorMessage}; unsubscribe and subscribe{later}"
        book_event(out, book, EventKind.RESYNC, recv_ns, recv_ns, detail)
        return True

    @staticmethod
    def _levels(rows: list[list[str]] | None, side: str) -> list[tuple[float, float, str, str]]:
        """``(price, volume, price text, volume text)``; republish flags need no handling."""
        if not rows:
            return []
        levels = []
        for row in rows:
            if len(row) not in (3, 4) or (len(row) == 4 and row[3] != "r"):
                raise RejectedFrame("invalid_field", f"{side} level {row!r}")
            levels.append((number(row[0], "price"), number(row[1], "volume"), row[0], row[1]))
        check_levels(side, [(p, v) for p, v, _, _ in levels])
        return levels

    def _snapshot(self, book: KrakenBook, m: BookMap, recv_ns: int, out: RecordSink) -> FrameStatus:
        bids = self._levels(m.snapshot_bids, "bid")
        asks = self._levels(m.snapshot_asks, "ask")
        self.resubscribes.landed(book.native)
        book.reset("")
        _apply(book.bids, bids)
        _apply(book.asks, asks)
        book.bids.truncate(book.depth)
        book.asks.truncate(book.depth)
        rows = [(BID, p, s) for p, s in book.bids.levels()]
        rows += [(ASK, p, s) for p, s in book.asks.levels()]
        book_rows(out, book, rows, recv_ns, recv_ns, True)  # a snapshot carries no time
        book.synced = True  # v1 snapshots carry no checksum: the first update verifies it
        book_event(out, book, EventKind.SYNCED, recv_ns, recv_ns, "snapshot")
        return FrameStatus.PROCESSED

    def _update(
        self, book: KrakenBook, maps: list[BookMap], conn_key: str, recv_ns: int, out: RecordSink
    ) -> FrameStatus:
        checksum_text_ = maps[-1].c
        if not checksum_text_.isdigit():
            raise RejectedFrame("invalid_field", f"checksum {checksum_text_!r}")
        asks: list[tuple[float, float, str, str]] = []
        bids: list[tuple[float, float, str, str]] = []
        times: list[int] = []
        for m in maps:
            asks += self._levels(m.a, "ask")
            bids += self._levels(m.b, "bid")
            times += [epoch_ns(row[2]) for row in (m.a or []) + (m.b or []) if len(row) == 3]
        ts = max(times) if times else recv_ns  # republished levels keep their old times
        check_time("book time", ts, recv_ns)
        if not book.synced:
            return FrameStatus.FILTERED  # before the snapshot, or after a gap
        rows: list[tuple[int, float, float]] = []
        for side, sign, levels in ((book.asks, ASK, asks), (book.bids, BID, bids)):
            _apply(side, levels)
            rows += [(sign, price, size) for price, size, _, _ in levels]
            rows += [(sign, price, 0.0) for price in side.truncate(book.depth)]
        book_rows(out, book, rows, ts, recv_ns, False)
        expected = int(checksum_text_)
        local = book.checksum()
        if local == expected:  # crossed or not: the checksum is the rule (v2's ``_verify``)
            book.checksums += 1
            if book.crossed():
                book.crossed_verified += 1
            self.resubscribes.verified(book.native)
            return FrameStatus.PROCESSED
        book.mismatches += 1
        why = f"checksum mismatch: computed {local}, Kraken sent {expected}"
        book_event(out, book, EventKind.GAP, ts, recv_ns, why, local, expected)
        delay = self.resubscribes.owe(conn_key, book.native, recv_ns)
        later = f" in {delay}s" if delay else ""
        book.reset(f"re-subscribing after a {why.partition(':')[0]}{later}")
        book_event(out, book, EventKind.RESYNC, ts, recv_ns, f"unsubscribe and subscribe{later}")
        return FrameStatus.PROCESSED


def _apply(side: LevelSide, levels: list[tuple[float, float, str, str]]) -> None:
    """Levels into a side: the checksum text (``checksum_text`` as is: v1 pads the decimals)
    is built only for levels in (or rising into) the top 10 (:class:`LevelSide`)."""
    put = side.set
    for price, size, price_text, size_text in levels:
        put(price, size, price_text, size_text)
