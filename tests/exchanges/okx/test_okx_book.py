"""OKX book sync on hand-written frames: REST snapshot + seqId chain (2026), WS snapshot +
CRC32 checksum (older traffic), gaps resynced in place, sequence reset, the stored-row rule."""

from __future__ import annotations

import zlib

import msgspec
import numpy as np
import pytest

from hundi.exchanges.base import RecordSink, RestPurpose, RestResponse, VenueConfig
from hundi.exchanges.okx import OkxVenue
from hundi.exchanges.okx.book import BOOK_RULE, checksum
from hundi.exchanges.okx.protocol import OkxProtocol
from hundi.records import Channel, EventKind

T0 = 1_780_000_000_000
NS = T0 * 1_000_000


def proto() -> OkxProtocol:
    return OkxVenue(
        VenueConfig("swap", ("BTC-USDT-SWAP",), (Channel.BOOK,), rest_endpoint="http://sim")
    )


def push(seq: int, prev: int, bids=(), asks=(), action: str = "update", check: int = 0) -> bytes:  # type: ignore[no-untyped-def]
    data = {
        "asks": [[p, s, "0", "1"] for p, s in asks],
        "bids": [[p, s, "0", "1"] for p, s in bids],
        "ts": str(T0),
        "checksum": check,
        "seqId": seq,
        "prevSeqId": prev,
    }
    return msgspec.json.encode(
        {"arg": {"channel": "books", "instId": "BTC-USDT-SWAP"}, "action": action, "data": [data]}
    )


def rest(seq: int, bids=(), asks=()) -> RestResponse:  # type: ignore[no-untyped-def]
    data = {
        "asks": [[p, s, "0", "1"] for p, s in asks],
        "bids": [[p, s, "0", "1"] for p, s in bids],
        "ts": str(T0),
        "seqId": seq,
    }
    return RestResponse(200, msgspec.json.encode({"code": "0", "msg": "", "data": [data]}))


def kinds(out: RecordSink) -> list[str]:
    return [e.kind for e in out.events]


def sync(p: OkxProtocol, out: RecordSink) -> None:
    """Buffered pushes 10→12, 12→15; a REST snapshot at 11 straddled by the second."""
    p.receive("public", push(12, 10, bids=[("99", "1")]), NS, out)
    p.receive("public", push(15, 12, asks=[("102", "1")]), NS, out)
    (request,) = p.due_requests(NS)
    assert request.purpose is RestPurpose.BOOK_SNAPSHOT
    assert request.url == "http://sim/api/v5/market/books?instId=BTC-USDT-SWAP&sz=400"
    assert p.due_requests(NS + 10**9) == []  # one in flight
    p.receive_response(
        request, rest(12, bids=[("99", "1"), ("98", "2")], asks=[("101", "1")]), NS, out
    )


def test_rest_snapshot_then_chain() -> None:
    p, out = proto(), RecordSink()
    sync(p, out)
    (book,) = p.books()
    assert book.synced and book.last_update_id == 15
    assert (book.best_bid, book.best_ask, book.bids, book.asks) == (99, 101, 2, 2)
    assert kinds(out) == [EventKind.SYNCED]
    snap = [r for r in out.book if r.snapshot]
    assert {r.update_id for r in snap} == {12}
    diffs = [r for r in out.book if not r.snapshot]
    assert [(r.price, r.update_id, r.prev_update_id) for r in diffs] == [(102, 15, 12)]
    p.receive("public", push(16, 15, bids=[("99", "0")]), NS, out)
    assert p.books()[0].best_bid == 98


def test_gap_resyncs_in_place_with_new_rest_snapshot() -> None:
    p, out = proto(), RecordSink()
    sync(p, out)
    p.receive("public", push(20, 17, bids=[("97", "1")]), NS, out)  # 15 → 17 missing
    assert kinds(out)[-2:] == [EventKind.GAP, EventKind.RESYNC]
    gap = out.events[-2]
    assert (gap.expected, gap.received) == (15, 17)
    assert not p.books()[0].synced
    assert p.take_reconnects() == [] and p.take_messages() == []  # the stream is kept
    (request,) = p.due_requests(NS + 10**9)
    p.receive_response(request, rest(18, bids=[("97", "5")], asks=[("103", "1")]), NS, out)
    assert p.books()[0].synced and p.books()[0].last_update_id == 20
    assert kinds(out)[-1] == EventKind.SYNCED


def test_snapshot_older_than_buffer_is_refetched() -> None:
    p, out = proto(), RecordSink()
    p.receive("public", push(12, 10, bids=[("99", "1")]), NS, out)
    (request,) = p.due_requests(NS)
    p.receive_response(request, rest(5, bids=[("99", "1")], asks=[("101", "1")]), NS, out)
    assert not p.books()[0].synced
    assert kinds(out) == [EventKind.RESYNC] and "stale snapshot" in out.events[0].detail
    (again,) = p.due_requests(NS + 10**9)
    p.receive_response(again, rest(11, bids=[("99", "1")], asks=[("101", "1")]), NS, out)
    assert p.books()[0].synced


def test_snapshot_ahead_waits_for_straddling_push() -> None:
    p, out = proto(), RecordSink()
    p.receive("public", push(12, 10), NS, out)
    (request,) = p.due_requests(NS)
    p.receive_response(request, rest(14, bids=[("99", "1")], asks=[("101", "1")]), NS, out)
    assert not p.books()[0].synced
    p.receive("public", push(16, 12), NS, out)
    assert p.books()[0].synced and p.books()[0].last_update_id == 16


def test_heartbeat_and_sequence_reset_continue() -> None:
    p, out = proto(), RecordSink()
    sync(p, out)
    p.receive("public", push(15, 15), NS, out)  # no change: seqId == prevSeqId
    p.receive("public", push(3, 15, bids=[("98", "7")]), NS, out)  # OKX sequence reset
    p.receive("public", push(5, 3, asks=[("101", "4")]), NS, out)
    assert p.books()[0].synced and p.books()[0].last_update_id == 5
    assert EventKind.GAP not in kinds(out)


def test_lower_seqid_after_a_reset_is_never_taken_for_a_duplicate() -> None:
    """The reset push withheld: the next one names a seqId never received, though lower than
    the book's: a gap, not a duplicate to ignore (ignoring it would freeze the book)."""
    p, out = proto(), RecordSink()
    sync(p, out)
    p.receive("public", push(9, 5, asks=[("102", "1")]), NS, out)
    assert kinds(out)[-2:] == [EventKind.GAP, EventKind.RESYNC]
    assert not p.books()[0].synced


def test_crossing_push_is_a_gap() -> None:
    p, out = proto(), RecordSink()
    sync(p, out)
    p.receive("public", push(16, 15, bids=[("105", "1")]), NS, out)
    assert kinds(out)[-2:] == [EventKind.GAP, EventKind.RESYNC]
    assert not p.books()[0].synced


def test_failed_snapshot_retried() -> None:
    p, out = proto(), RecordSink()
    p.receive("public", push(12, 10), NS, out)
    (request,) = p.due_requests(NS)
    p.receive_response(request, RestResponse(599, b""), NS, out)
    assert p.due_requests(NS + 10**8) == []  # backed off
    assert len(p.due_requests(NS + 2 * 10**9)) == 1
    bad = RestResponse(200, b'{"code":"0","data":[{"asks":[],"bids":[],"ts":"1"}]}')  # no seqId
    p.receive_response(request, bad, NS, out)
    assert not p.books()[0].synced


def test_disconnect_is_a_gap_and_reopen_resyncs() -> None:
    p, out = proto(), RecordSink()
    sync(p, out)
    p.on_close("public", NS, out)
    assert kinds(out)[-2:] == [EventKind.GAP, EventKind.RESYNC]
    assert out.events[-2].detail == "disconnect"
    assert p.due_requests(NS) == []
    p.receive("public", push(40, 39), NS, out)
    assert len(p.due_requests(NS + 10**9)) == 1


# ------------------------------------------------------------------ checksum (older traffic)
def crc(text: str) -> int:
    value = zlib.crc32(text.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def test_checksum_is_okx_signed_crc32_interleaved() -> None:
    # OKX's documented example shape: bid:size:ask:size..., the longer side's rest appended
    assert checksum(["3366.1:7"], ["3366.8:9", "3368:8"]) == crc("3366.1:7:3366.8:9:3368:8")
    assert checksum(["1:1", "0.5:2"], ["2:3"]) == crc("1:1:2:3:0.5:2")


def test_ws_snapshot_and_checksums_verified() -> None:
    p, out = proto(), RecordSink()
    snap_sum = crc("99:1:101:1")
    p.receive("public", push(10, -1, [("99", "1")], [("101", "1")], "snapshot", snap_sum), NS, out)
    assert p.books()[0].synced and kinds(out) == [EventKind.SYNCED]
    p.receive("public", push(11, 10, [("99.5", "2")], (), check=crc("99.5:2:101:1:99:1")), NS, out)
    assert p.book_of["BTC-USDT-SWAP"].checksums_verified == 2
    p.receive("public", push(12, 11, [("98", "2")], (), check=12345), NS, out)
    assert kinds(out)[-2:] == [EventKind.GAP, EventKind.RESYNC]
    assert out.events[-2].detail == "checksum mismatch"
    assert p.book_of["BTC-USDT-SWAP"].checksum_mismatches == 1
    assert len(p.due_requests(NS)) == 1  # seqIds present: resynced from REST


def test_checksum_mismatch_without_seqids_resubscribes() -> None:
    p, out = proto(), RecordSink()

    def old(action: str, bids: list[list[str]], check: int) -> bytes:
        data = {"asks": [["101", "1", "0", "1"]], "bids": bids, "ts": str(T0), "checksum": check}
        return msgspec.json.encode(
            {
                "arg": {"channel": "books", "instId": "BTC-USDT-SWAP"},
                "action": action,
                "data": [data],
            }
        )

    p.receive("public", old("snapshot", [["99", "1", "0", "1"]], crc("99:1:101:1")), NS, out)
    p.receive("public", old("update", [["99", "2", "0", "1"]], 7), NS, out)
    assert kinds(out)[-2:] == [EventKind.GAP, EventKind.RESYNC]
    assert p.due_requests(NS) == []  # nothing aligns a REST snapshot without seqIds
    sent = [msgspec.json.decode(m) for _, m in p.take_messages()]
    assert [s["op"] for s in sent] == ["unsubscribe", "subscribe"]
    assert sent[1]["args"] == [{"channel": "books", "instId": "BTC-USDT-SWAP"}]
    p.receive("public", old("update", [["99", "3", "0", "1"]], 0), NS, out)  # before: dropped
    assert not p.books()[0].synced
    p.receive("public", old("snapshot", [["99", "4", "0", "1"]], crc("99:4:101:1")), NS, out)
    assert p.books()[0].synced and kinds(out)[-1] == EventKind.SYNCED


@pytest.mark.parametrize("level", [["x", "1", "0", "1"], ["0", "1", "0", "1"], ["1"]])
def test_bad_book_level_rejected(level: list[str]) -> None:
    from hundi.exchanges.base import RejectedFrame

    bad = msgspec.json.encode(
        {
            "arg": {"channel": "books", "instId": "BTC-USDT-SWAP"},
            "action": "update",
            "data": [{"asks": [level], "bids": [], "ts": str(T0)}],
        }
    )
    with pytest.raises(RejectedFrame):
        proto().receive("public", bad, NS, RecordSink())


def test_book_rule() -> None:
    a = np.array
    # after a snapshot at 12: straddle (prev 10 <= 12 < 15), exact (prev 12), stale (prev 13)
    cont = BOOK_RULE.after_snapshot(
        a([15, 15, 20]), a([15, 15, 20]), a([10, 12, 13]), a([12, 12, 12])
    )
    assert cont.tolist() == [True, True, False]
    # after a diff at 15: continues (prev 15, reset to 3 included), breaks (prev 17)
    cont = BOOK_RULE.after_diff(a([16, 3, 20]), a([16, 3, 20]), a([15, 15, 17]), a([15, 15, 15]))
    assert cont.tolist() == [True, True, False]


def test_sequence_reset_while_buffering() -> None:
    """A reset push drops the old numbering from the buffer; a snapshot asked for before the
    reset is refetched, one asked for after it syncs."""
    p, out = proto(), RecordSink()
    p.receive("public", push(100, 90, bids=[("99", "1")]), NS, out)
    (request,) = p.due_requests(NS)
    p.receive("public", push(4, 100, bids=[("98", "1")]), NS, out)  # reset
    p.receive("public", push(6, 4, asks=[("101", "2")]), NS, out)
    p.receive_response(request, rest(95, bids=[("99", "1")], asks=[("101", "1")]), NS, out)
    assert not p.books()[0].synced  # a snapshot taken before the reset: refetched
    assert "stale snapshot" in out.events[-1].detail
    p.receive("public", push(8, 6, asks=[("101", "3")]), NS, out)
    (again,) = p.due_requests(NS + 10**9)
    p.receive_response(again, rest(6, bids=[("98", "1")], asks=[("101", "2")]), NS, out)
    assert p.books()[0].synced and p.books()[0].last_update_id == 8
    assert p.books()[0].asks == 1


def test_stored_ids_keep_increasing_across_a_sequence_reset() -> None:
    """Readers put stored rows in id order: after OKX renumbers lower, the stored ids go on
    above the old ones and still chain (``prev_update_id`` = the previous row's id)."""
    p, out = proto(), RecordSink()
    sync(p, out)  # stored ids are OKX's: snapshot 12, diff 15
    p.receive("public", push(3, 15, bids=[("98", "7")]), NS, out)  # reset
    p.receive("public", push(5, 3, asks=[("101", "4")]), NS, out)
    rows = [(r.update_id, r.prev_update_id) for r in out.book if not r.snapshot]
    base = T0 << 20  # the reset push's exchange time (ms) << 20
    assert rows == [(15, 12), (3 + base, 15), (5 + base, 3 + base)]
    ids = [u for u, _ in rows]
    assert ids == sorted(ids)
    a = np.array
    assert BOOK_RULE.after_diff(a(ids[1:]), a(ids[1:]), a([15, 3 + base]), a(ids[:-1])).all()


def test_missed_reset_push_resyncs_with_increasing_stored_ids() -> None:
    p, out = proto(), RecordSink()
    sync(p, out)
    p.receive("public", push(5, 3, asks=[("101", "4")]), NS, out)  # the reset push was lost
    assert kinds(out)[-2:] == [EventKind.GAP, EventKind.RESYNC]
    (request,) = p.due_requests(NS + 10**9)
    p.receive_response(request, rest(4, bids=[("98", "1")], asks=[("101", "1")]), NS, out)
    assert p.books()[0].synced
    snap = [r.update_id for r in out.book if r.snapshot]
    # dated by the push that showed the reset (not the lost one): above every id stored before
    assert snap[-1] == 4 + (T0 << 20) > 15


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (
            RestResponse(
                200,
                msgspec.json.encode(
                    {"code": "0", "data": [{"asks": [], "bids": [], "ts": str(T0)}]}
                ),
            ),
            "snapshot without seqId",
        ),
        (
            RestResponse(200, b'{"code":"51001","msg":"Instrument ID does not exist","data":[]}'),
            "51001 Instrument ID does not exist",
        ),
        (RestResponse(429, b'{"code":"50011"}'), "HTTP 429"),
    ],
)
def test_a_refused_snapshot_says_why_and_is_retried(response: RestResponse, reason: str) -> None:
    p, out = proto(), RecordSink()
    p.receive("public", push(12, 10, bids=[("99", "1")]), NS, out)
    (request,) = p.due_requests(NS)
    p.receive_response(request, response, NS, out)
    status = p.books()[0]
    assert not status.synced and reason in status.waiting
    (again,) = p.due_requests(NS + 2 * 10**9)  # retried
    p.receive_response(again, rest(12, bids=[("99", "1")], asks=[("101", "1")]), NS, out)
    p.receive("public", push(15, 12, asks=[("102", "1")]), NS, out)
    assert p.books()[0].synced and p.books()[0].waiting == ""


def push_at(seq: int, prev: int, ms: int, bids=(), asks=()) -> bytes:  # type: ignore[no-untyped-def]
    """A push stamped ``ms`` (OKX's exchange time of the message)."""
    frame = msgspec.json.decode(push(seq, prev, bids=bids, asks=asks))
    frame["data"][0]["ts"] = str(ms)
    return msgspec.json.encode(frame)


def test_two_collectors_that_saw_a_reset_store_the_same_ids() -> None:
    """The stored ids after a sequence reset come from the reset push itself (its exchange
    time), not from what this process saw before: A ran through an earlier reset, B started
    after it; after the next reset both store one id per update, so the merge (by update id)
    keeps one copy. On the old code A's base held the earlier numbering too: A and B differ."""
    a, b = proto(), RecordSink()
    out_a = b
    sync(a, out_a)
    a.receive("public", push_at(3, 15, T0 + 1_000, bids=[("98", "7")]), NS, out_a)  # reset 1
    a.receive("public", push_at(5, 3, T0 + 1_001, asks=[("101", "4")]), NS, out_a)
    # B starts after reset 1: synced on the new numbering (stored ids = OKX's, it saw no reset)
    b_proto, out_b = proto(), RecordSink()
    b_proto.receive("public", push_at(5, 3, T0 + 1_001, asks=[("101", "4")]), NS, out_b)
    b_proto.receive("public", push_at(7, 5, T0 + 1_002, bids=[("98", "6")]), NS, out_b)
    a.receive("public", push_at(7, 5, T0 + 1_002, bids=[("98", "6")]), NS, out_a)
    (request,) = b_proto.due_requests(NS)
    b_proto.receive_response(
        request, rest(5, bids=[("99", "1"), ("98", "7")], asks=[("101", "4")]), NS, out_b
    )
    assert b_proto.books()[0].synced
    reset_ms = T0 + 2_000
    after = [
        push_at(2, 7, reset_ms, bids=[("98", "5")]),  # reset 2: both see it
        push_at(4, 2, reset_ms + 1, asks=[("101", "3")]),
    ]
    count_a, count_b = len(out_a.book), len(out_b.book)
    for frame in after:
        a.receive("public", frame, NS + 5, out_a)
        b_proto.receive("public", frame, NS + 9, out_b)
    ids_a = [(r.update_id, r.prev_update_id) for r in out_a.book[count_a:]]
    ids_b = [(r.update_id, r.prev_update_id) for r in out_b.book[count_b:]]
    # the update ids (the merge's identity) agree; the reset push's prev_update_id is each
    # collector's own old numbering (not in the identity)
    assert [u for u, _ in ids_a] == [u for u, _ in ids_b]
    base = reset_ms << 20
    assert [u for u, _ in ids_a] == [2 + base, 4 + base]
    assert ids_a[1] == ids_b[1] == (4 + base, 2 + base)  # still a chain
    stored_before = [r.update_id for r in out_a.book[:count_a]]
    assert max(stored_before) < ids_a[0][0]  # ids keep increasing across the resets


def test_two_collectors_rows_across_a_reset_read_back_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Store level: A (through an earlier reset) and B (started after it) both receive the
    next reset and two pushes after it; the embedded store, written by both, reads each
    update after the reset once (old code: twice, under two ids)."""
    from hundi.stores.embedded import EmbeddedStore

    frames_a = [
        push_at(3, 15, T0 + 1_000, bids=[("98", "7")]),  # reset 1: only A
        push_at(5, 3, T0 + 1_001, asks=[("101", "4")]),
    ]
    reset = [
        push_at(2, 7, T0 + 2_000, bids=[("98", "5")]),  # reset 2: both
        push_at(4, 2, T0 + 2_001, asks=[("101", "3")]),
    ]
    a, out_a = proto(), RecordSink()
    sync(a, out_a)
    for frame in frames_a:
        a.receive("public", frame, NS, out_a)
    b, out_b = proto(), RecordSink()
    b.receive("public", push_at(7, 5, T0 + 1_002, bids=[("98", "6")]), NS + 1, out_b)
    a.receive("public", push_at(7, 5, T0 + 1_002, bids=[("98", "6")]), NS, out_a)
    (request,) = b.due_requests(NS)
    b.receive_response(request, rest(5, bids=[("99", "1"), ("98", "7")], asks=[("101", "4")]),
                       NS + 1, out_b)  # fmt: skip
    for frame in reset:
        a.receive("public", frame, NS + 5, out_a)
        b.receive("public", frame, NS + 9, out_b)
    for out in (out_a, out_b):  # each collector its own run (writer)
        store = EmbeddedStore(str(tmp_path), fsync=False)
        store.write({Channel.BOOK: out.book})
        store.flush()
        store.close()
    read = EmbeddedStore(str(tmp_path), read_only=True)
    frame = read.read(exchange="okx", symbol="BTC-USDT-PERP", channel=Channel.BOOK)
    diffs = frame[~frame["snapshot"]]
    # each update after the reset once (old code: A's copy and B's, under different ids)
    assert ((diffs["price"] == 98) & (diffs["size"] == 5)).sum() == 1
    assert ((diffs["price"] == 101) & (diffs["size"] == 3)).sum() == 1
    after = diffs[diffs["update_id"] >= (T0 + 2_000) << 20]
    assert after["update_id"].tolist() == [2 + ((T0 + 2_000) << 20), 4 + ((T0 + 2_000) << 20)]
    assert (after["recv_ts"].astype("int64") == NS + 5).all()  # A's copies: received first
