"""Two collectors' book rows on the real node: a time range keeps every change inside it, and
``read`` and ``iter_read`` (day by day) give the same stream (found by review)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pandas as pd
import pytest

from book_rows import SEC, at, diff, level, snapshot
from hundi.records import BID, BookChange, Channel
from hundi.stores.base import open_store
from hundi.stores.embedded import EmbeddedStore

pytestmark = pytest.mark.slow

T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z
ALL = frozenset(Channel)


@pytest.mark.parametrize("chunked", [ALL, frozenset()], ids=["chunks", "rows"])
def test_range_read_keeps_a_diff_absorbed_by_a_snapshot_cut_off_after_the_range(
    cassandra_keyspace: str, exchange: str, chunked: frozenset[Channel]
) -> None:
    a = snapshot(0, T0) + [diff(u, T0, 5_000_000) for u in range(1, 201)]
    b = snapshot(100, T0 + 100 * SEC + SEC // 2) + [diff(u, T0, 3_000_000) for u in range(101, 201)]
    for records in (a, b):  # two store instances: two writers
        store = open_store(cassandra_keyspace, chunked_channels=chunked)
        try:
            store.write({Channel.BOOK: [msgspec.structs.replace(r, exchange=exchange)
                                        for r in records]})  # fmt: skip
        finally:
            store.close()
    start, end = T0 + 90 * SEC, T0 + 100 * SEC + SEC // 4
    store = open_store(cassandra_keyspace, chunked_channels=chunked)
    try:
        whole = store.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.BOOK)
        ranged = store.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.BOOK,
                            start=at(start), end=at(end))  # fmt: skip
    finally:
        store.close()
    ts = whole.index.asi8
    expected = whole[(ts >= start) & (ts < end)]
    assert expected["update_id"].tolist() == list(range(90, 101))
    assert ranged["update_id"].tolist() == expected["update_id"].tolist()


def test_read_and_iter_read_agree_day_by_day_as_the_embedded_store(
    cassandra_keyspace: str, exchange: str, tmp_path: Path
) -> None:
    """iter_read's promise: concatenated, its chunks equal ``hundi.read``. A's chain runs from
    the day before; B's snapshot (id 300) comes 100 s after midnight: more than the merge
    margin after A's, so the second day's merge keeps it and drops diff 300 (in it). ``read``
    once merged the whole range instead (snapshot 300 dropped, diff 300 kept): two answers."""
    from hundi.research.streaming import iter_read

    base = T0 + 86_400 * SEC - 200 * SEC  # A's snapshot 200 s before midnight (day 1)

    def d(u: int, delay: int) -> BookChange:
        return level(u, base + u * SEC, base + u * SEC + delay, snapshot=False, side=BID,
                     price=100.0, size=float(u))  # fmt: skip

    def s(u: int, recv: int) -> list[BookChange]:
        return [level(u, recv, recv, snapshot=True, side=BID, price=100.0, size=float(u))]

    a = s(0, base) + [d(u, 5_000_000) for u in range(1, 401)]
    b = s(300, base + 300 * SEC + SEC // 2) + [d(u, 3_000_000) for u in range(301, 401)]
    embedded = tmp_path / "embedded"
    for records in (a, b):
        mine = [msgspec.structs.replace(r, exchange=exchange) for r in records]
        store = open_store(cassandra_keyspace, chunked_channels=ALL)
        try:
            store.write({Channel.BOOK: mine})
        finally:
            store.close()
        local = EmbeddedStore(str(embedded), fsync=False)  # one run each: two writers
        local.write({Channel.BOOK: mine})
        local.close()
    store = open_store(cassandra_keyspace, chunked_channels=ALL)
    try:
        whole = store.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.BOOK)
        chunks = list(iter_read(store, exchange=exchange, symbol="BTC-USDT", channel="book"))
    finally:
        store.close()
    local_whole = EmbeddedStore(str(embedded), read_only=True).read(
        exchange=exchange, symbol="BTC-USDT", channel=Channel.BOOK
    )

    def stream(frame: pd.DataFrame) -> list[tuple[int, bool]]:
        return list(zip(frame["update_id"].tolist(), frame["snapshot"].tolist(), strict=True))

    streamed = [row for chunk in chunks for row in stream(chunk)]
    assert stream(whole) == streamed == stream(local_whole)
    assert [u for u, snapshot in streamed if snapshot] == [0, 300]
    # every change is read, as a change or in the snapshot returned with its id
    assert {u for u, _ in streamed} == set(range(401))
