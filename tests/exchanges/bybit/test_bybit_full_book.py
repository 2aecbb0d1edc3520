"""Bybit ``orderbook.full`` (spot, delta only): buffered deltas, the REST snapshot, stale
snapshots fetched again, gaps and ``u = 1`` restarts refetching it."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from hundi.exchanges.base import (
    FrameStatus,
    RecordSink,
    RestPurpose,
    RestRequest,
    RestResponse,
    VenueConfig,
)
from hundi.exchanges.bybit import BybitVenue
from hundi.exchanges.bybit.protocol import CONN, BybitProtocol
from hundi.records import Channel, EventKind

MS = 1_000_000
T0_MS = 1_795_000_000_000
T0 = T0_MS * MS
TOPIC = "orderbook.full.BTCUSDT"


def ready() -> BybitProtocol:
    p = BybitVenue(VenueConfig("spot", ("BTCUSDT",), (Channel.BOOK, Channel.EVENTS),
                               options={"book": "full"}))  # fmt: skip
    (listing,) = p.due_requests(T0)
    entry = {"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "status": "Trading"}
    body = {"retCode": 0, "result": {"list": [entry]}}
    p.receive_response(listing, RestResponse(200, msgspec.json.encode(body)), T0, RecordSink())
    (spec,) = p.connections()
    opening = p.opening(spec, T0)
    assert opening is not None
    assert msgspec.json.decode(opening.messages[0])["args"] == [TOPIC]
    p.on_open(CONN, T0, RecordSink())
    return p


def delta(u: int, bids: Any = (), asks: Any = ()) -> bytes:
    data = {"s": "BTCUSDT", "b": list(bids), "a": list(asks), "u": u, "seq": 1000 + u}
    return msgspec.json.encode({"topic": TOPIC, "type": "delta", "ts": T0_MS, "data": data})


def snapshot(p: BybitProtocol, u: int, bids: Any, asks: Any, out: RecordSink) -> RestRequest:
    (request,) = p.due_requests(T0)
    assert request.purpose is RestPurpose.BOOK_SNAPSHOT
    assert request.url.endswith("/v5/market/full_orderbook?category=spot&symbol=BTCUSDT")
    body = {
        "retCode": 0,
        "result": {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": 1000 + u, "ts": T0_MS},
    }
    p.receive_response(request, RestResponse(200, msgspec.json.encode(body)), T0, out)
    return request


def test_buffered_deltas_after_the_snapshot_apply() -> None:
    p = ready()
    out = RecordSink()
    for u in (10, 11, 12):
        assert p.receive(CONN, delta(u, [["100", str(u)]]), T0, out) is FrameStatus.PROCESSED
    assert not out.book
    snapshot(p, 10, [["100", "1"], ["99", "1"]], [["101", "1"]], out)
    assert [e.kind for e in out.events] == [EventKind.SYNCED]
    (status,) = p.books()
    assert status.synced and status.last_update_id == 12
    # update_id: the cross sequence seq; first_update_id: u; prev_update_id: the seq before
    assert [(r.snapshot, r.first_update_id, r.update_id, r.prev_update_id) for r in out.book] == [
        (True, 10, 1010, -1), (True, 10, 1010, -1), (True, 10, 1010, -1),
        (False, 11, 1011, 1010), (False, 12, 1012, 1011),
    ]  # fmt: skip
    assert p.books()[0].best_bid == 100.0


def test_a_stale_snapshot_is_fetched_again() -> None:
    p = ready()
    out = RecordSink()
    p.receive(CONN, delta(20, [["100", "1"]]), T0, out)
    snapshot(p, 15, [["100", "1"]], [["101", "1"]], out)
    assert not p.books()[0].synced and "older than buffered u=20" in p.books()[0].waiting
    assert p.books_by_topic[TOPIC].stale_snapshots == 1
    snapshot(p, 19, [["100", "1"]], [["101", "1"]], out)
    assert p.books()[0].synced and p.books()[0].last_update_id == 20


def test_a_snapshot_newer_than_the_buffer_filters_what_it_holds() -> None:
    p = ready()
    out = RecordSink()
    p.receive(CONN, delta(5), T0, out)
    snapshot(p, 7, [["100", "1"]], [["101", "1"]], out)
    assert p.receive(CONN, delta(7), T0, out) is FrameStatus.FILTERED
    assert p.receive(CONN, delta(8, [["100.5", "1"]]), T0, out) is FrameStatus.PROCESSED
    assert p.books()[0].best_bid == 100.5


@pytest.mark.parametrize(("u", "detail"), [(13, "u 13 after 11"), (1, "restarted")])
def test_a_break_or_a_restart_refetches_the_snapshot(u: int, detail: str) -> None:
    p = ready()
    out = RecordSink()
    p.receive(CONN, delta(11), T0, out)
    snapshot(p, 10, [["100", "1"]], [["101", "1"]], out)
    out = RecordSink()
    p.receive(CONN, delta(u), T0, out)
    gap, resync = out.events
    assert gap.kind == EventKind.GAP and detail in gap.detail and resync.kind == EventKind.RESYNC
    assert not p.books()[0].synced
    snapshot(p, u, [["90", "1"]], [["91", "1"]], out)
    assert p.books()[0].synced and p.books()[0].best_bid == 90.0


def test_a_failed_snapshot_is_retried_and_a_closed_socket_discards_it() -> None:
    p = ready()
    p.receive(CONN, delta(3), T0, RecordSink())
    (request,) = p.due_requests(T0)
    p.receive_response(request, RestResponse(500, b""), T0, RecordSink())
    assert p.due_requests(T0) == [] and p.next_wakeup_ns() == T0 + 1_000_000_000
    (request,) = p.due_requests(T0 + 1_000_000_000)
    p.on_close(CONN, T0, RecordSink())
    body = {"retCode": 0, "result": {"s": "BTCUSDT", "b": [], "a": [], "u": 3}}
    p.receive_response(request, RestResponse(200, msgspec.json.encode(body)), T0, RecordSink())
    assert not p.books()[0].synced


def test_full_is_for_spot_only() -> None:
    with pytest.raises(ValueError, match=r"orderbook\.full on spot only"):
        BybitVenue(VenueConfig("linear", ("BTCUSDT",), (Channel.BOOK,), options={"book": "full"}))
    with pytest.raises(ValueError, match="option book must be depth or full"):
        BybitVenue(VenueConfig("spot", ("BTCUSDT",), (Channel.BOOK,), options={"book": "l3"}))


def test_a_break_inside_the_buffered_deltas_is_a_gap_not_applied() -> None:
    """Deltas buffered while the REST snapshot is fetched must chain too: a ``u`` missing
    among them (here 12) is a gap and a refetch, never applied over the hole."""
    p = ready()
    out = RecordSink()
    for u in (10, 11, 13):
        p.receive(CONN, delta(u, [["100", str(u)]]), T0, out)
    snapshot(p, 10, [["100", "1"], ["99", "1"]], [["101", "1"]], out)
    assert [e.kind for e in out.events] == [EventKind.SYNCED, EventKind.GAP, EventKind.RESYNC]
    gap = out.events[1]
    assert (gap.expected, gap.received) == (12, 13)
    assert [r.first_update_id for r in out.book if not r.snapshot] == [11]  # 13 not stored
    assert not p.books()[0].synced
    (request,) = p.due_requests(T0)  # the snapshot is fetched again
    assert request.purpose is RestPurpose.BOOK_SNAPSHOT
    snapshot_again = {
        "retCode": 0,
        "result": {"s": "BTCUSDT", "b": [["98", "1"]], "a": [["101", "1"]], "u": 13, "seq": 1013},
    }
    p.receive_response(request, RestResponse(200, msgspec.json.encode(snapshot_again)), T0, out)
    assert p.books()[0].synced and p.books()[0].best_bid == 98.0
