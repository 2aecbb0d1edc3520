"""Kraken review items 6, 7, 10, 11 and 12: a crossed book whose checksum matches, a refused
re-subscribe, an odd pair in the instrument listing, quoted book numbers, lazy checksum text."""

from __future__ import annotations

import zlib

import msgspec

from hundi.exchanges.base import FrameStatus, RecordSink, VenueConfig
from hundi.exchanges.kraken import KrakenProtocol, KrakenV1Protocol, KrakenVenue
from hundi.records import Channel

NOW = 1_700_000_000_000_000_000
S = 1_000_000_000
TS = "2023-11-14T22:13:20.123456Z"
PAIR = {"symbol": "BTC/USD", "base": "BTC", "quote": "USD", "price_precision": 1,
        "qty_precision": 8, "status": "online"}  # fmt: skip


def make(depth: int = 10) -> KrakenProtocol:
    config = VenueConfig("spot", ("BTC/USD",), (Channel.BOOK, Channel.EVENTS),
                         options={"depth": str(depth)})  # fmt: skip
    protocol = KrakenVenue(config)
    assert isinstance(protocol, KrakenProtocol)
    return protocol


def feed(
    p: KrakenProtocol, message: object, out: RecordSink | None = None, at: int = NOW
) -> FrameStatus:
    return p.receive(
        "public", msgspec.json.encode(message), at, out if out is not None else RecordSink()
    )


def listing(*pairs: object) -> dict[str, object]:
    return {"channel": "instrument", "type": "snapshot", "data": {"assets": [], "pairs": pairs}}


def crc(*levels: str) -> int:
    return zlib.crc32("".join(levels).encode())


def book(kind: str, bids: list[tuple[object, object]], asks: list[tuple[object, object]],
         checksum: int) -> dict[str, object]:  # fmt: skip
    entry: dict[str, object] = {
        "symbol": "BTC/USD",
        "bids": [{"price": p, "qty": q} for p, q in bids],
        "asks": [{"price": p, "qty": q} for p, q in asks],
        "checksum": checksum,
    }
    if kind == "update":
        entry["timestamp"] = TS
    return {"channel": "book", "type": kind, "data": [entry]}


V1_TIME = "1700000000.0"  # NOW, v1's spelling
V1_SNAP = msgspec.json.encode(
    [
        42,
        {"as": [["100.0", "1.0", V1_TIME]], "bs": [["99.0", "1.0", V1_TIME]]},
        "book-10",
        "XBT/USD",
    ]
)
SNAP = book("snapshot", [(99.9, 0.5)], [(100.0, 1.01)], crc("1000101000000", "99950000000"))


def synced() -> KrakenProtocol:
    p = make()
    feed(p, listing(PAIR))
    assert feed(p, SNAP) is FrameStatus.PROCESSED and p.books()[0].synced
    return p


# -- 6: a crossed book whose checksum matches is Kraken's book as it is ---------------------------


def test_a_crossed_book_with_a_matching_checksum_stays_synced_without_a_resync() -> None:
    p = synced()
    out = RecordSink()
    # a bid at 100.5 above the best ask 100.0: crossed, and the checksum says so too
    crossed = crc("1000101000000", "1005100000000", "99950000000")
    assert feed(p, book("update", [(100.5, 1.0)], [], crossed), out) is FrameStatus.PROCESSED
    assert [e.kind for e in out.events] == []
    assert p.books()[0].synced and p.take_messages() == []
    assert p.checksums_verified == 2 and p.checksum_mismatches == 0
    assert p.crossed_books == 1
    # it uncrosses by itself: verified again, nothing owed
    fine = crc("1000101000000", "99950000000")
    out = RecordSink()
    assert feed(p, book("update", [(100.5, 0.0)], [], fine), out) is FrameStatus.PROCESSED
    assert out.events == [] and p.books()[0].synced and p.checksums_verified == 3


def test_v1_a_crossed_book_with_a_matching_checksum_stays_synced() -> None:
    config = VenueConfig("spot", ("XBT/USD",), (Channel.BOOK,),
                         options={"api": "v1", "depth": "10"})  # fmt: skip
    p = KrakenVenue(config)
    assert isinstance(p, KrakenV1Protocol)
    p.receive("public", V1_SNAP, NOW, RecordSink())
    text = "1000" + "10" + "1010" + "10" + "990" + "10"  # asks, then bids 101.0 and 99.0
    update = msgspec.json.encode(
        [42, {"b": [["101.0", "1.0", V1_TIME]], "c": str(crc(text))}, "book-10", "XBT/USD"]
    )
    out = RecordSink()
    assert p.receive("public", update, NOW, out) is FrameStatus.PROCESSED
    assert out.events == [] and p.books()[0].synced and p.take_messages() == []
    assert p.checksums_verified == 1 and p.crossed_books == 1


# -- 7: a refused re-subscribe is an event and is retried with back-off ---------------------------


def test_a_refused_resubscribe_is_an_event_and_is_retried_with_a_back_off() -> None:
    p = synced()
    feed(p, book("update", [(99.95, 1.0)], [], 12345))  # mismatch: re-subscribe at once
    assert len(p.take_messages()) == 2
    refused = {"method": "subscribe", "success": False, "symbol": "BTC/USD",
               "error": "Exchange is busy, try again later"}  # fmt: skip
    out = RecordSink()
    assert feed(p, refused, out) is FrameStatus.PROCESSED
    assert [e.kind for e in out.events] == ["resync"]
    assert "refused" in out.events[0].detail and "in 1s" in out.events[0].detail
    assert "refused" in p.books()[0].waiting
    assert p.take_messages() == []
    p.receive("public", b'{"channel":"heartbeat"}', NOW + S, RecordSink())
    assert [msgspec.json.decode(m)["method"] for _, m in p.take_messages()] == [
        "unsubscribe", "subscribe"
    ]  # fmt: skip
    # the snapshot lands: synced, and no retry left owed
    assert feed(p, SNAP, at=NOW + S) is FrameStatus.PROCESSED and p.books()[0].synced
    p.receive("public", b'{"channel":"heartbeat"}', NOW + 100 * S, RecordSink())
    assert p.take_messages() == []


def test_v1_a_refused_resubscribe_is_an_event_and_is_retried() -> None:
    config = VenueConfig("spot", ("XBT/USD",), (Channel.BOOK,),
                         options={"api": "v1", "depth": "10"})  # fmt: skip
    p = KrakenVenue(config)
    assert isinstance(p, KrakenV1Protocol)
    p.receive("public", V1_SNAP, NOW, RecordSink())
    bad = msgspec.json.encode(
        [42, {"a": [["100.0", "2.0", "1700000000.0"]], "c": "1"}, "book-10", "XBT/USD"]
    )
    p.receive("public", bad, NOW, RecordSink())
    assert len(p.take_messages()) == 2
    refused = (b'{"event":"subscriptionStatus","status":"error","pair":"XBT/USD",'
               b'"errorMessage":"Exchange is busy","subscription":{"name":"book"}}')  # fmt: skip
    out = RecordSink()
    assert p.receive("public", refused, NOW, out) is FrameStatus.PROCESSED
    assert [e.kind for e in out.events] == ["resync"] and "refused" in out.events[0].detail
    p.receive("public", b'{"event":"heartbeat"}', NOW + S, RecordSink())
    assert len(p.take_messages()) == 2


# -- 10: one odd pair does not reject the listing -------------------------------------------------


def test_an_odd_pair_we_do_not_collect_does_not_reject_the_listing() -> None:
    p = make()
    odd = {"symbol": "ODD/USD", "price_precision": "one", "qty_precision": None, "status": 5}
    out = RecordSink()
    assert feed(p, listing(odd, PAIR), out) is FrameStatus.PROCESSED
    assert out.events == [] and p.precision == {"BTC/USD": (1, 8)}
    assert feed(p, SNAP) is FrameStatus.PROCESSED and p.books()[0].synced


def test_a_collected_pair_that_cannot_be_decoded_is_an_invalid_symbol_event() -> None:
    p = make()
    odd = {**PAIR, "price_precision": "one"}
    out = RecordSink()
    assert feed(p, listing(odd), out) is FrameStatus.PROCESSED
    assert [(e.kind, e.native_symbol) for e in out.events] == [("invalid_symbol", "BTC/USD")]
    assert "cannot be decoded" in out.events[0].detail
    assert p.invalid_symbols == ["BTC/USD"]


# -- 11: quoted numbers in book levels ------------------------------------------------------------


def test_quoted_book_numbers_are_accepted_and_checksummed_from_their_text() -> None:
    p = make()
    feed(p, listing(PAIR))
    quoted = book("snapshot", [("99.9", "0.5")], [("100.0", "1.01")],
                  crc("1000101000000", "99950000000"))  # fmt: skip
    out = RecordSink()
    assert feed(p, quoted, out) is FrameStatus.PROCESSED
    assert p.books()[0].synced and p.checksums_verified == 1
    assert sorted((r.price, r.size) for r in out.book) == [(99.9, 0.5), (100.0, 1.01)]


# -- 12: the checksum text is built only for the levels hashed ------------------------------------


def test_checksum_text_is_built_only_for_the_top_levels() -> None:
    p = make(depth=100)
    feed(p, listing(PAIR))
    bids = [(round(99.9 - i / 10, 1), 1.0) for i in range(50)]
    asks = [(round(100.0 + i / 10, 1), 1.0) for i in range(50)]

    def text(price: float) -> str:
        return f"{price:.1f}".replace(".", "").lstrip("0") + "100000000"

    top = crc(*(text(a) for a, _ in asks[:10]), *(text(b) for b, _ in bids[:10]))
    assert feed(p, book("snapshot", bids, asks, top)) is FrameStatus.PROCESSED
    assert p.books()[0].synced
    side = p.book["BTC/USD"].bids
    built = [key for key, text in side.texts.items() if text is not None]
    assert len(side.keys) == 50 and len(built) == 10  # the other 40 never formatted
    # the best bid deleted: the 11th rises into the top 10 and its text is built then
    rest = [text(b) for b, _ in bids[1:11]]
    assert (
        feed(
            p, book("update", [(bids[0][0], 0.0)], [], crc(*(text(a) for a, _ in asks[:10]), *rest))
        )
        is FrameStatus.PROCESSED
    )
    assert side.texts[-bids[10][0]] is not None and p.checksum_mismatches == 0
    assert feed(p, book("update", [(bids[0][0], 1.0)], [], top)) is FrameStatus.PROCESSED
    # a level changed in the top 10 is formatted again: the cached text is not reused
    changed = crc(*(text(a) for a, _ in asks[:10]),
                  text(bids[0][0])[:-9] + "200000000",
                  *(text(b) for b, _ in bids[1:10]))  # fmt: skip
    assert feed(p, book("update", [(bids[0][0], 2.0)], [], changed)) is FrameStatus.PROCESSED
    assert p.checksums_verified == 4 and p.checksum_mismatches == 0


def test_a_snapshot_landing_cancels_a_retry_still_delayed() -> None:
    """v1 cannot tell a refused unsubscribe from a refused subscribe: if the subscribe went
    through after all, its snapshot cancels the retry, so a synced book is not re-subscribed."""
    config = VenueConfig("spot", ("XBT/USD",), (Channel.BOOK,),
                         options={"api": "v1", "depth": "10"})  # fmt: skip
    p = KrakenVenue(config)
    assert isinstance(p, KrakenV1Protocol)
    p.receive("public", V1_SNAP, NOW, RecordSink())
    bad = msgspec.json.encode([42, {"a": [["100.0", "2.0", V1_TIME]], "c": "1"}, "book-10",
                               "XBT/USD"])  # fmt: skip
    p.receive("public", bad, NOW, RecordSink())
    assert len(p.take_messages()) == 2
    refused = (b'{"event":"subscriptionStatus","status":"error","pair":"XBT/USD",'
               b'"errorMessage":"Subscription Not Found"}')  # fmt: skip
    assert p.receive("public", refused, NOW, RecordSink()) is FrameStatus.PROCESSED
    p.receive("public", V1_SNAP, NOW, RecordSink())  # the subscribe itself went through
    assert p.books()[0].synced
    p.receive("public", b'{"event":"heartbeat"}', NOW + 100 * S, RecordSink())
    assert p.take_messages() == []
