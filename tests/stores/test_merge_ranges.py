"""Two collectors' book rows read by time range and day by day: a change is never dropped for
another collector's snapshot that the range then cuts away, and a key one writer repeats goes
to the writer holding most of its rows (found by review; each test failed before)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from book_rows import SEC, at, diff, snapshot
from hundi.records import BID, BookChange, Channel
from hundi.stores.embedded import EmbeddedStore

T0 = 1_714_608_000_000_000_000  # 2024-05-02 00:00 UTC


def write(root: Path, records: list[BookChange]) -> None:
    store = EmbeddedStore(str(root), fsync=False)  # one collector run: its own run id
    store.write({Channel.BOOK: records})
    store.flush()
    store.close()


def a_pair_s_book(root: Path) -> EmbeddedStore:
    """A: snapshot 0 at T0, then diffs 1..200 (one a second). B starts later: its REST snapshot
    has lastUpdateId 100 and is received at 100.5 s (after diff 100, at 100 s), then 101..200.
    """
    write(root, snapshot(0, T0) + [diff(u, T0, 5_000_000) for u in range(1, 201)])
    write(
        root,
        snapshot(100, T0 + 100 * SEC + SEC // 2)
        + [diff(u, T0, 3_000_000) for u in range(101, 201)],
    )
    return EmbeddedStore(str(root), read_only=True)


def test_range_read_keeps_a_diff_absorbed_by_a_snapshot_cut_off_after_the_range(
    tmp_path: Path,
) -> None:
    store = a_pair_s_book(tmp_path)
    whole = store.read(exchange="binance", symbol="BTC-USDT", channel=Channel.BOOK)
    start, end = T0 + 90 * SEC, T0 + 100 * SEC + SEC // 4  # ends between diff 100 and snap 100
    ts = whole.index.asi8
    expected = whole[(ts >= start) & (ts < end)]
    # the whole read: snapshot 100 is redundant (A's chain runs through it), diff 100 is kept
    assert 100 in expected["update_id"].tolist()
    assert not expected["snapshot"].any()
    ranged = store.read(
        exchange="binance", symbol="BTC-USDT", channel=Channel.BOOK, start=at(start), end=at(end)
    )
    # diff 100 (ts 100 s, inside the range) must be returned: no snapshot in the range holds it
    assert ranged["update_id"].tolist() == expected["update_id"].tolist()
    days = list(
        store.read_days(
            exchange="binance", symbol="BTC-USDT", channel=Channel.BOOK, start_ns=start, end_ns=end
        )
    )
    assert pa.concat_tables([t for _, t in days]).column("update_id").to_pylist() == list(
        range(90, 101)
    )


def test_book_at_between_a_diff_and_the_other_collectors_snapshot_holding_it(
    tmp_path: Path,
) -> None:
    from hundi.research.book import book_at

    store = a_pair_s_book(tmp_path)
    book = book_at(store, "binance", "BTC-USDT", at(T0 + 100 * SEC + SEC // 4),
                   checkpoint_rows=10, cache_dir=tmp_path / "cache")  # fmt: skip
    bid = book[book["side"] == BID]
    # diff 100 (exchange time 100 s) set bid 100 to size 100 before the asked time
    assert book.attrs["update_id"] == 100
    assert bid["size"].tolist() == [100.0]


def coinbase_level(ts: int, recv: int, size: float) -> BookChange:
    """A Coinbase-like L2 change: exchange time, no sequence id (update_id -1)."""
    return BookChange(
        exchange="coinbase", symbol="BTC-USD", native_symbol="BTC-USD", ts=ts, recv_ts=recv,
        side=BID, price=100.0, size=size, snapshot=False, first_update_id=-1, update_id=-1,
        prev_update_id=-1,
    )  # fmt: skip


def test_a_change_only_the_later_writer_holds_is_not_dropped(tmp_path: Path) -> None:
    """Level 100 is set (size 1) and deleted (size 0) within one exchange timestamp. A received
    the set first, then its connection dropped before the delete; B received both. The delete
    is a record only B holds: the merge must keep it (the book ends without the level)."""
    t = T0 + 5 * SEC
    a = [coinbase_level(t, t + 1_000, 1.0)]
    b = [coinbase_level(t, t + 2_000, 1.0), coinbase_level(t, t + 3_000, 0.0)]
    for records in (a, b):
        write(tmp_path, records)
    store = EmbeddedStore(str(tmp_path), read_only=True)
    frame = store.read(exchange="coinbase", symbol="BTC-USD", channel=Channel.BOOK)
    assert frame["size"].tolist()[-1] == 0.0  # the level's last change: deleted
    assert sorted(frame["size"].tolist()) == [0.0, 1.0]


def test_snapshot_copies_either_side_of_midnight_stay_one_writer_s(tmp_path: Path) -> None:
    """A key standing for a local ts keeps "earliest receive wins": A's snapshot 10 s before
    midnight, B's two copies after it (an idle book). With "most rows wins" the second day took
    B's and the first kept A's: the record read three times (found by review)."""
    write(tmp_path, snapshot(100, T0 - 10 * SEC))
    write(tmp_path, snapshot(100, T0 + 5 * SEC) + snapshot(100, T0 + 30 * SEC))
    store = EmbeddedStore(str(tmp_path), read_only=True)
    frame = store.read(exchange="binance", symbol="BTC-USDT", channel=Channel.BOOK)
    assert len(frame) == 2  # A's snapshot (two levels), the copy received first
    assert frame.index.max() == pd.Timestamp(T0 - 10 * SEC, tz="UTC")
