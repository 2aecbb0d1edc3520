"""Streaming reads: chunks that concatenate to exactly ``hundi.read``, never spanning a day."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from researchrows import MIDNIGHT, MS, trade, write

import hundi
from hundi.records import Channel
from hundi.research import NotStored, ResearchError, iter_batches, iter_read
from hundi.research.streaming import iter_day_tables
from hundi.stores.base import Store, open_store


@pytest.mark.parametrize("symbol", [None, "ETH-USDT"])
def test_chunks_concatenate_to_read(sim_stores: dict[str, Path], symbol: str | None) -> None:
    store = sim_stores["spot"]
    for channel in ("trades", "book", "events"):
        whole = hundi.read(store, exchange="binance", symbol=symbol, channel=channel)
        chunks = list(
            iter_read(store, exchange="binance", symbol=symbol, channel=channel, chunk_rows=50)
        )
        assert all(len(c) <= 50 for c in chunks)
        pd.testing.assert_frame_equal(pd.concat(chunks), whole)
    whole = hundi.read(store, exchange="binance", channel="trades")
    start, end = whole.index[10], whole.index[-10]
    window = pd.concat(
        iter_read(store, exchange="binance", start=start, end=end, columns=["price"])
    )
    expected = whole[(whole.index >= start) & (whole.index < end)][["price"]]
    pd.testing.assert_frame_equal(window, expected)


def test_days_are_never_mixed_and_batches_are_arrow(tmp_path: Path) -> None:
    trades = [trade(MIDNIGHT + (i - 5) * 100 * MS, i, 100.0 + i) for i in range(10)]
    store = write(tmp_path / "data", {Channel.TRADES: trades[::2]}, {Channel.TRADES: trades[1::2]})
    days = [(day, table.num_rows) for day, table in iter_day_tables(store, exchange="binance")]
    assert [n for _, n in days] == [5, 5] and days[0][0] < days[1][0]
    batches = list(iter_batches(store, exchange="binance", columns=["trade_id"], chunk_rows=3))
    assert all(isinstance(b, pa.RecordBatch) and b.num_rows <= 3 for b in batches)
    assert [i for b in batches for i in b.column("trade_id").to_pylist()] == list(range(10))
    assert batches[0].schema.names == ["ts", "trade_id"]
    # two writes out of time order still come back sorted by (ts, recv_ts)
    ids = [i for c in iter_read(store, exchange="binance") for i in c["trade_id"]]
    assert ids == list(range(10))


def test_bad_arguments_are_clear(sim_stores: dict[str, Path]) -> None:
    store = sim_stores["spot"]
    with pytest.raises(ResearchError, match="unknown column"):
        next(iter_read(store, exchange="binance", columns=["pricee"]))
    with pytest.raises(ResearchError, match="end is before start"):
        next(iter_read(store, exchange="binance", start="2024-01-02", end="2024-01-01"))
    # a symbol or exchange the store does not hold is an error listing what it holds (it was
    # an empty read); a stored one in a range without rows stays an empty read
    with pytest.raises(NotStored, match="holds no trades of binance 'NOPE-USDT'"):
        next(iter_read(store, exchange="binance", symbol="NOPE-USDT"))
    with pytest.raises(NotStored, match="holds no exchange 'binanse'; it holds: binance"):
        next(iter_read(store, exchange="binanse"))
    assert list(iter_read(store, exchange="binance", symbol="BTC-USDT", end="2000-01-01")) == []
    native = pd.concat(iter_read(store, exchange="binance", symbol="BTCUSDT"))
    pd.testing.assert_frame_equal(native, hundi.read(store, exchange="binance", symbol="BTC-USDT"))


@pytest.mark.slow
def test_a_network_store_streams_day_by_day(cassandra_keyspace: str) -> None:
    trades = [trade(MIDNIGHT + (i - 5) * 100 * MS, i, 100.0 + i) for i in range(10)]
    target = open_store(cassandra_keyspace)
    target.write({Channel.TRADES: trades})
    target.close()
    start = pd.Timestamp(MIDNIGHT - 10_000 * MS, tz="UTC").to_pydatetime()
    end = pd.Timestamp(MIDNIGHT + 10_000 * MS, tz="UTC").to_pydatetime()
    days = list(iter_day_tables(cassandra_keyspace, exchange="binance", start=start, end=end))
    assert [table.num_rows for _, table in days] == [5, 5] and days[0][0] < days[1][0]
    chunks = list(iter_read(cassandra_keyspace, exchange="binance", start=start, end=end))
    whole = hundi.read(cassandra_keyspace, exchange="binance", start=start, end=end)
    pd.testing.assert_frame_equal(pd.concat(chunks), whole)
    # the partition index lists the days: no range needed
    everything = pd.concat(iter_read(cassandra_keyspace, exchange="binance"))
    pd.testing.assert_frame_equal(everything, hundi.read(cassandra_keyspace, exchange="binance"))
    prices = pd.concat(iter_read(cassandra_keyspace, exchange="binance", columns=["price"]))
    assert (
        prices.columns.tolist() == ["price"] and prices["price"].tolist() == whole["price"].tolist()
    )


class _Unlisted(Store):
    """A store that can read but not list: the contract's defaults."""

    def __init__(self, inner: Store) -> None:
        super().__init__("unlisted://")
        self.inner = inner

    def write(self, batches: Any) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        pass

    def read(self, **query: Any) -> pd.DataFrame:
        return self.inner.read(**query)


def test_a_store_that_cannot_list_its_days_streams_between_start_and_end(
    tmp_path: Path,
) -> None:
    trades = [trade(MIDNIGHT + (i - 5) * 100 * MS, i, 100.0 + i) for i in range(10)]
    store = _Unlisted(open_store(str(write(tmp_path / "data", {Channel.TRADES: trades}))))
    start, end = MIDNIGHT - 10_000 * MS, MIDNIGHT + 10_000 * MS
    days = list(iter_day_tables(store, exchange="binance", start=start, end=end))
    assert [table.num_rows for _, table in days] == [5, 5] and days[0][0] < days[1][0]
    chunks = list(iter_read(store, exchange="binance", start=start, end=end, columns=["price"]))
    assert pd.concat(chunks)["price"].tolist() == [100.0 + i for i in range(10)]
    with pytest.raises(ResearchError, match="needs start and end"):
        next(iter_read(store, exchange="binance"))


def test_an_aggregating_store_is_refused_with_a_reason(kairosdb_url: str) -> None:
    """KairosDB keeps per-ms aggregates: bars from it would look right and be wrong."""
    with pytest.raises(ResearchError, match="per-millisecond aggregates"):
        hundi.bars(
            kairosdb_url,
            exchange="binance",
            symbol="BTC-USDT",
            interval="1m",
            start="2026-11-27",
            end="2026-11-28",
        )
