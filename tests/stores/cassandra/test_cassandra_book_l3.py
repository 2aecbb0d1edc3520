"""Order-level book events (``book_l3``) in Cassandra: a snapshot's rows share one ``ts`` and
``sequence`` and stay apart by order id, rewrites add no duplicates, and the L3 research reader
rebuilds the same book from Cassandra as from the embedded store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from hundi.records import ASK, BID, Channel, OrderEvent, Record
from hundi.research import book_at, book_l3_at
from hundi.stores.base import Store, open_store
from hundi.stores.cassandra import CassandraStore
from hundi.stores.embedded import EmbeddedStore

T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z
MS = 1_000_000


def events(exchange: str) -> list[Record]:
    def event(ms: int, kind: str, seq: int, order_id: str, side: int, price: float,
              size: float, *, other: str = "", trade_id: int = -1) -> OrderEvent:  # fmt: skip
        return OrderEvent(
            exchange=exchange, symbol="BTC-USD", native_symbol="BTC-USD", ts=T0 + ms * MS,
            recv_ts=T0 + ms * MS + 7, order_id=order_id, side=side, price=price, size=size,
            kind=kind, sequence=seq, other_order_id=other, trade_id=trade_id, reason="",
        )  # fmt: skip

    return [
        event(0, "snapshot", 10, "b1", BID, 99.0, 1.0),
        event(0, "snapshot", 10, "b2", BID, 99.0, 2.0),  # same ts and sequence as b1
        event(0, "snapshot", 10, "a1", ASK, 101.0, 1.5),
        event(1, "open", 11, "b3", BID, 99.0, 0.5),
        event(1, "match", 12, "b1", BID, 99.0, 0.25, other="t", trade_id=4),  # same ms
        event(2, "change", 13, "a1", ASK, 101.0, 1.0),
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
    at = pd.Timestamp(T0 + 5 * MS, unit="ns", tz="UTC")
    from_cassandra = book_l3_at(store, exchange, "BTC-USD", at)
    pd.testing.assert_frame_equal(from_cassandra, book_l3_at(embedded, exchange, "BTC-USD", at))
    assert from_cassandra["order_id"].tolist() == ["b1", "b2", "b3", "a1"]
    assert from_cassandra.attrs["synced"] is True
    l2 = book_at(store, exchange, "BTC-USD", at)
    assert l2[["price", "size"]].values.tolist() == [[99.0, 3.25], [101.0, 1.0]]
