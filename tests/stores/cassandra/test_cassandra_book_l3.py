"""Order-level book events (``book_l3``) in Cassandra: a snapshot's rows share one ``ts`` and
``sequence`` and stay apart by order id, rewrites add no duplicates, rows of several UTC hours
(hourly partitions) read back whole, and the L3 research reader rebuilds the same queues from
Cassandra (which returns a snapshot's rows sorted by order id) as from the embedded store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from cassandra.cluster import Session

from hundi.records import ASK, BID, Channel, OrderEvent, Record
from hundi.research import book_at, book_l3_at
from hundi.stores.base import Store, open_store
from hundi.stores.cassandra import CassandraStore
from hundi.stores.embedded import EmbeddedStore

T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z
MS = 1_000_000
HOUR_MS = 3_600_000
# UUID-like ids whose sort order is not the queue order: the queue comes from each snapshot
# row's place (``trade_id``), never from the order ids
B1, B2, A1 = (
    "f0e1d2c3-0000-4000-8000-000000000001",
    "0a1b2c3d-0000-4000-8000-000000000002",
    ("77777777-0000-4000-8000-000000000003"),
)
B3 = "c4c4c4c4-0000-4000-8000-000000000004"


def events(exchange: str) -> list[Record]:
    def event(ms: int, kind: str, seq: int, order_id: str, side: int, price: float,
              size: float, *, other: str = "", trade_id: int = -1) -> OrderEvent:  # fmt: skip
        return OrderEvent(
            exchange=exchange, symbol="BTC-USD", native_symbol="BTC-USD", ts=T0 + ms * MS,
            recv_ts=T0 + ms * MS + 7, order_id=order_id, side=side, price=price, size=size,
            kind=kind, sequence=seq, other_order_id=other, trade_id=trade_id, reason="",
        )  # fmt: skip

    return [
        event(0, "snapshot", 10, B1, BID, 99.0, 1.0, trade_id=0),  # place 0 in the snapshot
        event(0, "snapshot", 10, B2, BID, 99.0, 2.0, trade_id=1),  # same ts and sequence
        event(0, "snapshot", 10, A1, ASK, 101.0, 1.5, trade_id=2),
        event(1, "open", 11, B3, BID, 99.0, 0.5),
        event(1, "match", 12, B1, BID, 99.0, 0.25, other="t", trade_id=4),  # same ms
        event(HOUR_MS + 2, "change", 13, A1, ASK, 101.0, 1.0),  # the next hour's partition
    ]


@pytest.fixture(scope="module")
def store(cassandra_url: str) -> Iterator[Store]:
    opened = open_store(cassandra_url)
    assert isinstance(opened, CassandraStore)
    yield opened
    opened.close()


def test_order_events_round_trip_once_and_rebuild_the_same_book(
    store: Store, exchange: str, tmp_path: Path
) -> None:
    rows = events(exchange)
    store.write({Channel.BOOK_L3: rows})
    store.write({Channel.BOOK_L3: rows})  # a retried batch
    store.flush()
    frame = store.read(exchange=exchange, symbol="BTC-USD", channel=Channel.BOOK_L3)
    assert len(frame) == len(rows)
    assert sorted(frame["order_id"].astype(str)) == sorted(r.order_id for r in rows)  # type: ignore[attr-defined]
    embedded = EmbeddedStore(str(tmp_path))
    embedded.write({Channel.BOOK_L3: rows})
    embedded.flush()
    at = pd.Timestamp(T0 + (HOUR_MS + 5) * MS, unit="ns", tz="UTC")
    from_cassandra = book_l3_at(store, exchange, "BTC-USD", at)
    pd.testing.assert_frame_equal(from_cassandra, book_l3_at(embedded, exchange, "BTC-USD", at))
    assert from_cassandra["order_id"].tolist() == [B1, B2, B3, A1]
    assert from_cassandra.attrs["synced"] is True
    l2 = book_at(store, exchange, "BTC-USD", at)
    assert l2[["price", "size"]].values.tolist() == [[99.0, 3.25], [101.0, 1.0]]


def test_the_table_is_partitioned_by_symbol_day_and_hour(store: Store, cql: Session) -> None:
    assert isinstance(store, CassandraStore)
    store.write({Channel.BOOK_L3: events("cassandra-l3-key")})
    rows = cql.execute(
        "SELECT column_name, kind, position FROM system_schema.columns "
        "WHERE keyspace_name = %s AND table_name = 'book_l3'",
        (store.settings.keyspace,),
    )
    partition = [
        name for name, kind, _ in sorted(rows, key=lambda r: r[2]) if kind == "partition_key"
    ]
    assert partition == ["exchange", "symbol", "ts_day", "ts_hour"]
