"""``book_l3_at`` and ``book_at`` of order-level (``book_l3``) rows, through the embedded store:
queues in arrival order, every event kind, sequence holes and gap events, L2 aggregation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import hundi
from hundi.api.queries import Limits, stored_symbols
from hundi.api.status import stream_rows
from hundi.listing import ls
from hundi.query import NotStored, query
from hundi.records import ASK, BID, BookChange, Channel, Event, EventKind, OrderEvent, Record
from hundi.research import book_at, book_l3_at
from hundi.stores.embedded import EmbeddedStore

S = 1_000_000_000
T0 = int(datetime(2024, 5, 2, 10, tzinfo=UTC).timestamp()) * S
HEAD = {"exchange": "coinbase", "symbol": "BTC-USD", "native_symbol": "BTC-USD"}


def event(at_s: float, kind: str, seq: int, order_id: str, side: int = BID, price: float = 0.0,
          size: float = 0.0, *, other: str = "", trade_id: int = -1,
          reason: str = "") -> OrderEvent:  # fmt: skip
    ts = T0 + round(at_s * S)
    return OrderEvent(
        **HEAD, ts=ts, recv_ts=ts + 1000, order_id=order_id, side=side, price=price, size=size,
        kind=kind, sequence=seq, other_order_id=other, trade_id=trade_id, reason=reason,
    )  # fmt: skip


def snapshot(
    at_s: float, seq: int, orders: list[tuple[str, int, float, float]]
) -> list[OrderEvent]:
    """One row per listed order, each carrying its place in the snapshot (``trade_id``)."""
    return [
        event(at_s, "snapshot", seq, oid, side, price, size, trade_id=place)
        for place, (oid, side, price, size) in enumerate(orders)
    ]


BASE = snapshot(
    0,
    100,
    [
        ("b1", BID, 99.0, 1.0),
        ("b2", BID, 99.0, 2.0),
        ("b3", BID, 98.0, 0.5),
        ("a1", ASK, 101.0, 1.5),
        ("a2", ASK, 102.0, 3.0),
    ],
)
LIVE = [
    event(1, "received", 101, "b4", BID, 99.0, 0.7),
    event(1, "open", 102, "b4", BID, 99.0, 0.7),
    event(2, "received", 103, "t1", ASK, 99.0, 1.2),
    event(2, "match", 104, "b1", BID, 99.0, 1.0, other="t1", trade_id=7),
    event(2, "match", 105, "b2", BID, 99.0, 0.2, other="t1", trade_id=8),
    event(2, "done", 106, "b1", BID, 99.0, 0.0, reason="filled"),
    event(2, "done", 107, "t1", ASK, 99.0, 0.0, reason="filled"),
    event(3, "change", 108, "a2", ASK, 102.0, 2.5),
    event(4, "done", 109, "b3", BID, 98.0, 0.5, reason="canceled"),
]


def store_with(root: Path, *batches: list[Record] | list[OrderEvent]) -> EmbeddedStore:
    store = EmbeddedStore(str(root), fsync=False)
    for batch in batches:
        by_channel: dict[Channel, list[Record]] = {}
        for record in batch:
            by_channel.setdefault(record.CHANNEL, []).append(record)
        store.write(by_channel)
        store.flush()
    return store


def at(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(T0 + round(seconds * S), unit="ns", tz="UTC")


def queues(frame: pd.DataFrame) -> list[tuple[int, float, int, int, str, float]]:
    return [
        (int(r.side), float(r.price), int(r.level), int(r.position), str(r.order_id), float(r.size))
        for r in frame.itertuples()
    ]


def test_every_event_kind_rebuilds_the_queues_in_arrival_order(tmp_path: Path) -> None:
    store = store_with(tmp_path, BASE, LIVE)
    frame = book_l3_at(store, "coinbase", "BTC-USD", at(10))
    assert queues(frame) == [
        (BID, 99.0, 0, 0, "b2", pytest.approx(1.8)),  # b1 filled and done: b2 is first now
        (BID, 99.0, 0, 1, "b4", 0.7),  # joined after the snapshot's orders
        (ASK, 101.0, 0, 0, "a1", 1.5),
        (ASK, 102.0, 1, 0, "a2", 2.5),  # a smaller size keeps the queue position
    ]
    assert frame.attrs["synced"] is True
    assert frame.attrs["update_id"] == 109
    assert frame.attrs["snapshot_ts"] == at(0)
    assert list(frame.index) == [at(0), at(1), at(0), at(0)]  # when each took its place


def test_the_book_as_of_a_time_includes_only_events_up_to_it(tmp_path: Path) -> None:
    store = store_with(tmp_path, BASE, LIVE)
    before_match = book_l3_at(store, "coinbase", "BTC-USD", at(1))
    assert [r[4] for r in queues(before_match) if r[0] == BID] == ["b1", "b2", "b4", "b3"]
    assert before_match.attrs["update_id"] == 102
    at_snapshot = book_l3_at(store, "coinbase", "BTC-USD", at(0), depth=1)
    assert [r[4] for r in queues(at_snapshot)] == ["b1", "b2", "a1"]
    empty = book_l3_at(store, "coinbase", "BTC-USD", at(-1))
    assert empty.empty and empty.attrs["synced"] is False and empty.attrs["update_id"] == -1


def test_book_at_of_an_l3_only_symbol_is_the_l3_book_summed_per_price(tmp_path: Path) -> None:
    store = store_with(tmp_path, BASE, LIVE)
    frame = hundi.book_at(store, "coinbase", "BTC-USD", at(10))
    assert frame[["side", "price", "size", "level"]].values.tolist() == [
        [BID, 99.0, pytest.approx(2.5), 0],
        [ASK, 101.0, 1.5, 0],
        [ASK, 102.0, 2.5, 1],
    ]
    assert frame.attrs["synced"] is True and frame.attrs["update_id"] == 109
    # when each level last changed (matches and dones at 99, the change at 102), as L2 books
    assert list(frame.index) == [at(2), at(0), at(3)]
    top = book_at(store, "coinbase", "BTC-USD", at(1.5), depth=1)
    assert top[["price", "size"]].values.tolist() == [[99.0, 3.7], [101.0, 1.5]]


def test_a_symbol_with_an_l2_book_reads_the_l2_book(tmp_path: Path) -> None:
    l2 = [
        BookChange(**HEAD, ts=T0, recv_ts=T0, side=BID, price=50.0, size=9.0, snapshot=True,
                   first_update_id=-1, update_id=5, prev_update_id=-1),
    ]  # fmt: skip
    store = store_with(tmp_path, BASE, LIVE, l2)
    frame = book_at(store, "coinbase", "BTC-USD", at(10))
    assert frame[["price", "size"]].values.tolist() == [[50.0, 9.0]]


def test_a_sequence_hole_leaves_the_book_unknown_until_the_next_snapshot(tmp_path: Path) -> None:
    holed = [e for e in LIVE if e.sequence != 105]  # one lost event
    later = snapshot(20, 200, [("b9", BID, 97.0, 4.0), ("a9", ASK, 103.0, 1.0)])
    after = [event(21, "open", 201, "a10", ASK, 103.0, 2.0)]
    store = store_with(tmp_path, BASE, holed, later, after)
    broken = book_l3_at(store, "coinbase", "BTC-USD", at(10))
    assert broken.attrs["synced"] is False
    assert broken.attrs["update_id"] == 104  # the last consistent book: up to the hole
    assert [r[4:] for r in queues(broken) if r[0] == BID] == [
        ("b2", 2.0),  # its match was lost; nothing after the hole is applied
        ("b4", 0.7),
        ("b3", 0.5),
    ]
    again = book_l3_at(store, "coinbase", "BTC-USD", at(30))
    assert again.attrs["synced"] is True and again.attrs["update_id"] == 201
    assert [r[4] for r in queues(again)] == ["b9", "a9", "a10"]
    assert book_at(store, "coinbase", "BTC-USD", at(10)).attrs["synced"] is False


def test_a_stored_gap_event_of_the_channel_leaves_the_book_unknown(tmp_path: Path) -> None:
    def gap_event(at_s: float, channel: str) -> Event:
        ts = T0 + round(at_s * S)
        return Event(**HEAD, ts=ts, recv_ts=ts, kind=EventKind.GAP.value, channel=channel,
                     expected=110, received=115, detail="sequence 115 after 109")  # fmt: skip

    store = store_with(tmp_path, BASE, LIVE, [gap_event(5, "trades")])
    assert book_l3_at(store, "coinbase", "BTC-USD", at(10)).attrs["synced"] is True
    store = store_with(tmp_path / "gapped", BASE, LIVE, [gap_event(5, "book_l3")])
    assert book_l3_at(store, "coinbase", "BTC-USD", at(4)).attrs["synced"] is True
    assert book_l3_at(store, "coinbase", "BTC-USD", at(10)).attrs["synced"] is False


def test_a_new_price_requeues_the_order_and_done_finds_it_by_id(tmp_path: Path) -> None:
    moved = [
        event(1, "change", 101, "b1", BID, 98.0, 1.0),  # modified to 98: behind b3
        event(2, "done", 102, "b2", BID, 97.0, 0.0, reason="canceled"),  # another price: by id
    ]
    store = store_with(tmp_path, BASE, moved)
    frame = book_l3_at(store, "coinbase", "BTC-USD", at(3))
    assert [(r[1], r[3], r[4]) for r in queues(frame) if r[0] == BID] == [
        (98.0, 0, "b3"),
        (98.0, 1, "b1"),
    ]


def test_events_buffered_before_the_snapshot_time_follow_it_by_sequence(tmp_path: Path) -> None:
    """The snapshot is timed when its response arrived, after events it is followed by."""
    early = [event(-0.5, "open", 101, "b5", BID, 99.0, 1.0), event(-0.7, "received", 99, "x")]
    store = store_with(tmp_path, BASE, early)
    frame = book_l3_at(store, "coinbase", "BTC-USD", at(1))
    assert [r[4] for r in queues(frame) if r[0] == BID] == ["b1", "b2", "b5", "b3"]
    assert frame.attrs["update_id"] == 101


def test_the_book_carries_across_days(tmp_path: Path) -> None:
    day = 86_400
    store = store_with(tmp_path, BASE, [event(day + 5, "done", 101, "a1", ASK, 101.0)])
    frame = book_l3_at(store, "coinbase", "BTC-USD", at(day + 10))
    assert [r[4] for r in queues(frame) if r[0] == ASK] == ["a2"]
    assert frame.attrs["synced"] is True


def test_unknown_symbols_and_missing_times_are_clear_errors(tmp_path: Path) -> None:
    store = store_with(tmp_path, BASE)
    with pytest.raises(NotStored, match="book_l3"):
        book_l3_at(store, "coinbase", "ETH-USD", at(1))
    with pytest.raises(NotStored):
        book_at(store, "coinbase", "ETH-USD", at(1))
    with pytest.raises(ValueError, match="needs a time"):
        book_l3_at(store, "coinbase", "BTC-USD", None)


def test_read_query_and_ls_show_the_channel(tmp_path: Path) -> None:
    store_with(tmp_path, BASE, LIVE).close()
    frame = hundi.read(tmp_path, exchange="coinbase", symbol="BTC-USD", channel="book_l3")
    assert len(frame) == len(BASE) + len(LIVE)
    assert set(frame["kind"].astype(str)) == {
        "snapshot",
        "received",
        "open",
        "match",
        "change",
        "done",
    }
    assert hundi.book_l3_at is book_l3_at
    queried = CliRunner().invoke(
        query,
        ["--store", str(tmp_path), "--exchange", "coinbase", "--channel", "book_l3",
         "--format", "csv"],
    )  # fmt: skip
    assert queried.exit_code == 0, queried.output
    assert queried.stdout.count("\n") == 1 + len(BASE) + len(LIVE)
    assert "order_id" in queried.stdout.splitlines()[0]
    listed = CliRunner().invoke(ls, [str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert "book_l3" in listed.output


def test_the_api_lists_an_l3_only_symbol_and_its_stream(tmp_path: Path) -> None:
    store = store_with(tmp_path, BASE, LIVE)
    assert stored_symbols(store, "coinbase") == [{"exchange": "coinbase", "symbol": "BTC-USD"}]
    rows = stream_rows(store, Limits(), exchange="coinbase", now_ns=T0 + 10 * S, window_ns=60 * S)
    (row,) = [r for r in rows if r["channel"] == "book_l3"]
    assert row["symbol"] == "BTC-USD" and row["count"] == len(BASE) + len(LIVE)


def test_snapshot_queues_follow_each_rows_place_whatever_order_the_store_returns(
    tmp_path: Path,
) -> None:
    """Cassandra returns a snapshot's rows (one ts and sequence) sorted by order id: the queue
    order comes from each row's place in the snapshot, not from the order id or storage."""
    ids = ["f3c1-9a", "0b7e-44", "c0de-01", "7a2f-e9", "2d4b-73"]  # queue order != id order
    rows = snapshot(0, 100, [(oid, BID, 99.0, 1.0 + i) for i, oid in enumerate(ids)])
    by_id = sorted(rows, key=lambda r: r.order_id)  # the order Cassandra reads them back in
    store = store_with(tmp_path, by_id)  # type: ignore[arg-type]
    frame = book_l3_at(store, "coinbase", "BTC-USD", at(1))
    assert frame["order_id"].tolist() == ids
    assert frame["position"].tolist() == [0, 1, 2, 3, 4]


def test_a_snapshot_hours_back_is_found_and_later_events_replayed_window_by_window(
    tmp_path: Path,
) -> None:
    """The snapshot search looks back in growing windows and the events are applied a window
    at a time: a book 30 hours after its snapshot, with events all along, is the full book."""
    live = [
        event(3600.0 * h + 1, "open", 101 + h, f"o{h}", BID, 90.0 + h % 5, 1.0) for h in range(30)
    ]
    store = store_with(tmp_path, BASE, live)
    frame = book_l3_at(store, "coinbase", "BTC-USD", at(30 * 3600))
    assert frame.attrs["synced"] is True and frame.attrs["update_id"] == 130
    assert frame.attrs["snapshot_ts"] == at(0)
    assert sorted(frame["order_id"].tolist()) == sorted(
        ["b1", "b2", "b3", "a1", "a2", *(f"o{h}" for h in range(30))]
    )
    assert [r[4] for r in queues(frame) if r[1] == 90.0] == ["o0", "o5", "o10", "o15", "o20", "o25"]
