"""The chunk read path's merge, without a server: a fake session answers the store's CQL from
chunks held in memory (encoded as the store encodes them). One writer's records that share a
key (OKX stamps every update of a candle with its start) all stay, as in the embedded store;
only another writer's copies go; two writers with other chunk boundaries read back once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from hundi.records import Candle, Channel, Record, Trade, to_arrow
from hundi.stores.cassandra import CassandraStore
from hundi.stores.cassandra import chunks as chunks_module
from hundi.stores.cassandra.chunks import chunk_table_spec, encode_chunks

MS = 1_000_000
T0 = 1_714_608_000_000_000_000  # 2024-05-02
START = T0 - T0 % (60_000 * MS)
KEYSPACE = "ks"


class Result:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.current_rows = rows
        self.has_more_pages = False

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.current_rows)

    def one(self) -> tuple[Any, ...] | None:
        return self.current_rows[0] if self.current_rows else None

    def result(self) -> Result:
        return self


class Prepared:
    def __init__(self, cql: str) -> None:
        self.cql = cql

    def bind(self, values: tuple[Any, ...]) -> Bound:
        return Bound(self, values)


class Bound:
    def __init__(self, prepared: Prepared, values: tuple[Any, ...]) -> None:
        self.prepared, self.values = prepared, values
        self.fetch_size = 0


class FakeSession:
    """Chunk rows of one table (dicts of its columns) and the CQL the read path sends."""

    def __init__(self, table: str, rows: list[dict[str, Any]], ttl_s: int = 0) -> None:
        self.table, self.rows, self.ttl_s = table, rows, ttl_s
        self.default_fetch_size = 0
        self.ddl: list[str] = []  # CREATE/ALTER statements run

    def prepare(self, cql: str) -> Prepared:
        return Prepared(cql)

    def execute(self, query: Any, params: tuple[Any, ...] = ()) -> Result:
        cql = query.cql if isinstance(query, Prepared) else str(query)
        if "system_schema.keyspaces" in cql:
            return Result([(KEYSPACE,)])
        if "system_schema.columns" in cql and "column_name, type" in cql:
            columns = chunks_module.CHUNK_COLUMNS
            keys = {"exchange": ("partition_key", 0), "symbol": ("partition_key", 1)}
            keys |= {"ts_day": ("partition_key", 2), "first_ts": ("clustering", 0)}
            keys |= {"chunk_id": ("clustering", 1)}
            return Result(
                [
                    (self.table, name, cql_type, *keys.get(name, ("regular", -1)))
                    for name, cql_type in columns.items()
                ]
            )
        if "system_schema.tables" in cql:
            return Result([(self.table, self.ttl_s)])
        if cql.startswith(("CREATE", "ALTER")):
            self.ddl.append(cql)
            return Result([])
        if "hundi_partitions" in cql:  # the partition index: (symbol, day)
            exchange, _, *symbol = params
            found = {
                (r["symbol"], r["ts_day"])
                for r in self.rows
                if r["exchange"] == exchange and (not symbol or r["symbol"] == symbol[0])
            }
            return Result(sorted(found))
        raise AssertionError(f"unexpected CQL {cql}")

    def execute_async(self, bound: Bound) -> Result:
        selected = re.search(r"SELECT (.*?) FROM", bound.prepared.cql)
        assert selected is not None
        names = [name.strip() for name in selected[1].split(",")]
        exchange, symbol, day, lo, hi, low = bound.values
        chosen = [
            r
            for r in self.rows
            if (r["exchange"], r["symbol"], r["ts_day"]) == (exchange, symbol, day)
            and lo <= r["first_ts"] < hi
            and r["last_ts"] >= low
        ]
        chosen.sort(key=lambda r: (r["first_ts"], r["chunk_id"]))
        return Result([tuple(r.get(n) for n in names) for r in chosen])


class FakeCluster:
    def shutdown(self) -> None:
        pass


def stored_chunks(
    channel: Channel, writes: list[tuple[int | None, list[Record]]]
) -> list[dict[str, Any]]:
    """Each write (writer, records) as the store encodes it: its chunks' rows (a re-sent chunk
    replaces itself: same key)."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for writer, records in writes:
        for chunk in encode_chunks(channel, to_arrow(channel, records)):
            values = {
                "exchange": chunk.exchange, "symbol": chunk.symbol, "ts_day": chunk.day,
                "first_ts": chunk.first_ts, "chunk_id": chunk.chunk_id,
                "last_ts": chunk.last_ts, "first_id": chunk.first_id, "last_id": chunk.last_id,
                "records": chunk.records, "data": chunk.data, "writer": writer,
            }  # fmt: skip
            rows[chunk.exchange, chunk.symbol, chunk.day, chunk.first_ts, chunk.chunk_id] = values
    return list(rows.values())


def reader(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, channel: Channel,
           rows: list[dict[str, Any]]) -> CassandraStore:  # fmt: skip
    session = FakeSession(chunk_table_spec(channel).name, rows)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(CassandraStore, "_connect", lambda self: (FakeCluster(), session))
    return CassandraStore(f"cassandra://127.0.0.1/{KEYSPACE}", read_only=True)


def okx_candle(recv: int, close: float, closed: bool) -> Candle:
    return Candle(
        exchange="okx", symbol="BTC-USDT", native_symbol="BTC-USDT", ts=START, recv_ts=recv,
        interval="1m", open_time=START, close_time=START + 60_000 * MS - MS, open=100.0,
        high=max(100.0, close), low=min(100.0, close), close=close, volume=1.0,
        quote_volume=100.0, taker_buy_volume=0.0, trade_count=-1, closed=closed,
    )  # fmt: skip


def updates(shift: int) -> list[Record]:
    closes = [100.0, 101.0, 99.0, 102.5]
    return [okx_candle(START + (i + 1) * MS + shift, c, i == 3) for i, c in enumerate(closes)]


def read(store: CassandraStore, channel: Channel, exchange: str) -> pa.Table:
    try:
        frame = store.read(exchange=exchange, symbol=None, channel=channel)
    finally:
        store.close()
    return pa.Table.from_pandas(frame.reset_index(), preserve_index=False)


def test_one_writers_updates_sharing_a_key_all_stay_across_its_chunks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two flushes of one collector, each a chunk (the first re-sent): the candle's four
    updates, the closed one last, read back as the embedded store reads them (not the first
    update alone)."""
    mine = updates(0)
    rows = stored_chunks(Channel.CANDLES, [(7, mine[:2]), (7, mine[2:]), (7, mine[:2])])
    store = reader(monkeypatch, tmp_path, Channel.CANDLES, rows)
    table = read(store, Channel.CANDLES, "okx")
    assert table.column("close").to_pylist() == [100.0, 101.0, 99.0, 102.5]
    assert table.column("closed").to_pylist()[-1] is True


def test_another_writers_copies_go_the_first_receivers_rows_stay(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    a, b = updates(7), updates(3)  # B receives each update first
    rows = stored_chunks(Channel.CANDLES, [(1, a[:3]), (2, b[:1]), (2, b[1:]), (1, a[3:])])
    store = reader(monkeypatch, tmp_path, Channel.CANDLES, rows)
    table = read(store, Channel.CANDLES, "okx")
    assert table.column("close").to_pylist() == [100.0, 101.0, 99.0, 102.5]
    assert table.column("recv_ts").cast(pa.int64()).to_pylist() == [c.recv_ts for c in b]


def test_chunks_without_a_writer_are_each_a_writer_of_their_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A table written before the ``writer`` column: updates inside one chunk all stay."""
    rows = stored_chunks(Channel.CANDLES, [(None, updates(0))])
    store = reader(monkeypatch, tmp_path, Channel.CANDLES, rows)
    assert read(store, Channel.CANDLES, "okx").num_rows == 4


def trades(ids: range, delay: int) -> list[Record]:
    return [
        Trade(
            exchange="x", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=T0 + i * MS,
            recv_ts=T0 + i * MS + delay, trade_id=i, price=100.0 + i, size=0.5, side=1,
            first_trade_id=i, last_trade_id=i,
        )
        for i in ids
    ]  # fmt: skip


def test_two_writers_with_other_chunk_boundaries_and_a_re_sent_chunk_read_back_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first, second = trades(range(100), 7), trades(range(100), 3)
    writes: list[tuple[int | None, list[Record]]] = [
        (1, first[i : i + 30]) for i in range(0, 100, 30)
    ]
    writes += [(2, second[i : i + 45]) for i in range(0, 100, 45)]
    writes += [(1, first[30:60])]  # a retry: the same chunk again
    store = reader(monkeypatch, tmp_path, Channel.TRADES, stored_chunks(Channel.TRADES, writes))
    table = read(store, Channel.TRADES, "x")
    assert table.column("trade_id").to_pylist() == list(range(100))
    recv = table.column("recv_ts").cast(pa.int64()).to_pylist()
    assert recv == [t.recv_ts for t in second]


def test_a_chunk_table_no_longer_written_still_gets_the_ttl(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Retention: a channel switched back to rows keeps its chunk table (reads still read
    it); a changed CASSANDRA_TTL applies to it as to every other table."""
    session = FakeSession("trades_chunks", [], ttl_s=0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CASSANDRA_TTL", "3600")
    monkeypatch.setattr(CassandraStore, "_connect", lambda self: (FakeCluster(), session))
    store = CassandraStore(f"cassandra://127.0.0.1/{KEYSPACE}", chunked_channels=frozenset())
    store.close()
    altered = [cql for cql in session.ddl if '"trades_chunks"' in cql]
    assert altered == [f'ALTER TABLE "{KEYSPACE}"."trades_chunks" WITH default_time_to_live = 3600']
