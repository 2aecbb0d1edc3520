"""The chunked layout against the real test node: exact round trips of every channel, re-sent
chunks and two collectors with other chunk boundaries read back once, damaged chunks are
errors, reads prune by chunk bounds, both layouts are read together, the TTL is set."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
import pyarrow as pa
import pyarrow.compute
import pytest
from cassandra.cluster import Session

from hundi.pipeline.resume import RestartGaps
from hundi.records import RECORD_TYPES, Bbo, Candle, Channel, Record, Trade, from_arrow
from hundi.stores.base import StoreError, StreamPosition, open_store
from hundi.stores.cassandra import CassandraStore
from hundi.stores.cassandra.chunks import DamagedChunk
from hundi.stores.embedded import EmbeddedStore

pytestmark = pytest.mark.slow

T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z
HOUR = 3_600 * 1_000_000_000
DAY = 24 * HOUR
ALL = frozenset(Channel)


def trades(
    exchange: str, ids: range, *, recv_delay: int = 5, step: int = 1_000_000
) -> list[Record]:
    return [
        Trade(
            exchange=exchange, symbol="BTC-USDT", native_symbol="BTCUSDT", ts=T0 + i * step,
            recv_ts=T0 + i * step + recv_delay, trade_id=i, price=100.0 + i, size=float("nan")
            if i % 7 == 0 else 0.5, side=1 if i % 2 else -1, first_trade_id=i, last_trade_id=i,
        )
        for i in ids
    ]  # fmt: skip


def sample(record_type: type[Record], i: int, *, exchange: str, symbol: str, ts: int) -> Record:
    """A record of any type whose every field differs with ``i``; floats include NaN."""
    values: dict[str, Any] = {
        "exchange": exchange, "symbol": symbol, "native_symbol": symbol.replace("-", ""),
        "ts": ts, "recv_ts": ts + 1_234 + i,
    }  # fmt: skip
    for field in msgspec.structs.fields(record_type):
        if field.name in values:
            continue
        if field.name == "side":
            values[field.name] = 1 if i % 2 else -1
        elif field.type is int:
            values[field.name] = i * 1_000_003 - 1
        elif field.type is float:
            values[field.name] = float("nan") if i == 3 else i + 1 / 3
        elif field.type is bool:
            values[field.name] = i % 2 == 0
        else:
            values[field.name] = f"{field.name}-{i}-ü"
    return record_type(**values)


def records_of(frame: pd.DataFrame, channel: Channel) -> list[Record]:
    return from_arrow(channel, pa.Table.from_pandas(frame.reset_index(), preserve_index=False))


def same(records: list[Record]) -> list[bytes]:
    """Comparable forms (NaN != NaN as floats; as JSON ``null`` twice, equal), in order."""
    return sorted(msgspec.json.encode(r) for r in records)


def chunk_rows(cql: Session, keyspace: str, table: str, exchange: str) -> list[Any]:
    return list(
        cql.execute(
            f"SELECT ts_day, first_ts, chunk_id, last_ts, first_id, last_id, records, "
            f"TTL(data) FROM {keyspace}.{table} WHERE exchange = %s ALLOW FILTERING",
            (exchange,),
        )
    )


def keyspace_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


@pytest.fixture
def chunked(cassandra_keyspace: str) -> Iterator[CassandraStore]:
    """A fresh keyspace whose store writes every channel in chunks."""
    store = open_store(cassandra_keyspace, chunked_channels=ALL)
    assert isinstance(store, CassandraStore)
    yield store
    store.close()


def test_every_channel_round_trips_exactly_in_chunks_with_nan(
    chunked: CassandraStore, cql: Session, exchange: str
) -> None:
    batches: dict[Channel, list[Record]] = {
        channel: [
            sample(record_type, i, exchange=exchange, symbol="ETH-USDT", ts=T0 + i * 1_000)
            for i in range(5)
        ]
        for channel, record_type in RECORD_TYPES.items()
    }
    batches[Channel.TRADES] += trades(exchange, range(100, 110))  # NaN sizes among them
    chunked.write(batches)
    keyspace = chunked.settings.keyspace
    for channel, records in batches.items():
        frame = chunked.read(exchange=exchange, symbol=None, channel=channel)
        assert same(records_of(frame, channel)) == same(records), channel
        assert frame.index.is_monotonic_increasing, channel
        stored = chunk_rows(cql, keyspace, f"{channel.value}_chunks", exchange)
        assert sum(row[6] for row in stored) == len(records), channel
        rows = cql.execute(
            f"SELECT count(*) FROM {keyspace}.{channel.value} WHERE exchange = %s ALLOW FILTERING",
            (exchange,),
        ).one()
        assert rows[0] == 0, channel  # nothing went to the row table
    nan_sizes = [
        size
        for size in chunked.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES)[
            "size"
        ]
        if size != size
    ]
    assert len(nan_sizes) == 1  # trade 105
    ((_, table),) = chunked.read_days(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES)
    sizes = table.column("size")
    assert sizes.null_count == 0 and pa.compute.sum(pa.compute.is_nan(sizes)).as_py() == 1


def test_a_re_sent_chunk_replaces_itself(
    chunked: CassandraStore, cql: Session, exchange: str
) -> None:
    batch = {Channel.TRADES: trades(exchange, range(50))}
    chunked.write(batch)
    before = chunk_rows(cql, chunked.settings.keyspace, "trades_chunks", exchange)
    chunked.write(batch)  # the writer retrying after a timeout, the spool draining
    after = chunk_rows(cql, chunked.settings.keyspace, "trades_chunks", exchange)
    assert len(before) == len(after) == 1
    frame = chunked.read(exchange=exchange, symbol=None, channel=Channel.TRADES)
    assert list(frame["trade_id"]) == list(range(50))


def test_two_collectors_with_other_chunk_boundaries_read_back_once(
    chunked: CassandraStore, cassandra_keyspace: str, cql: Session, exchange: str
) -> None:
    first = trades(exchange, range(0, 100), recv_delay=7)
    second = trades(exchange, range(0, 100), recv_delay=3)  # the other collector got them first
    for start in range(0, 100, 30):
        chunked.write({Channel.TRADES: first[start : start + 30]})
    other = open_store(cassandra_keyspace, chunked_channels=ALL)
    try:
        for start in range(0, 100, 45):
            other.write({Channel.TRADES: second[start : start + 45]})
    finally:
        other.close()
    stored = chunk_rows(cql, chunked.settings.keyspace, "trades_chunks", exchange)
    assert len(stored) == 4 + 3
    frame = chunked.read(exchange=exchange, symbol=None, channel=Channel.TRADES)
    assert list(frame["trade_id"]) == list(range(100))
    assert (frame["recv_ts"] - frame.index).dt.components.nanoseconds.eq(3).all()  # earliest
    days = list(chunked.read_days(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES))
    assert [table.num_rows for _, table in days] == [100]


def stored_then_damaged(
    chunked: CassandraStore, cql: Session, exchange: str, data: bytes | None
) -> None:
    """Trades 0..19 stored in one chunk, whose ``data`` cell is then replaced."""
    chunked.write({Channel.TRADES: trades(exchange, range(20))})
    day, first_ts, chunk_id = chunk_rows(cql, chunked.settings.keyspace, "trades_chunks", exchange)[
        0
    ][:3]
    cql.execute(
        f"UPDATE {chunked.settings.keyspace}.trades_chunks SET data = %s WHERE exchange = %s "
        "AND symbol = 'BTC-USDT' AND ts_day = %s AND first_ts = %s AND chunk_id = %s",
        (data, exchange, day, first_ts, chunk_id),
    )


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"not an arrow stream", "checksum does not match"),
        # found by review: a null cell (nulled outside hundi) was a TypeError traceback
        (None, "its data or record count is missing"),
    ],
    ids=["garbled", "null"],
)
def test_a_damaged_chunk_is_an_error_naming_it(
    chunked: CassandraStore, cql: Session, exchange: str, data: bytes | None, why: str
) -> None:
    stored_then_damaged(chunked, cql, exchange, data)
    with pytest.raises(DamagedChunk, match=f"damaged trades chunk of {exchange} BTC-USDT") as err:
        chunked.read(exchange=exchange, symbol=None, channel=Channel.TRADES)
    assert why in str(err.value)
    assert isinstance(err.value, StoreError)  # the CLI and API report it as a store error


def test_a_restart_over_a_damaged_chunk_stores_a_gap_of_unknown_start(
    chunked: CassandraStore, cql: Session, exchange: str
) -> None:
    """Where the stream ended cannot be read (its newest chunk is damaged): asking again will
    not mend it, so the restart's gap has an unknown start at once (it was no gap at all)."""
    stored_then_damaged(chunked, cql, exchange, b"not an arrow stream")
    later = trades(exchange, range(100, 101))
    # started while the damaged chunk's records were being stamped: it must be decoded
    gaps = RestartGaps([chunked], started_ns=T0 + 10 * 1_000_000)
    try:
        gaps.note({Channel.TRADES: later})
        found = gaps.take(wait_s=30)
    finally:
        gaps.close()
    assert [(e.expected, e.received) for e in found] == [(-1, -1)], found
    assert "unknown" in found[0].detail and "damaged trades chunk" in found[0].detail


def test_range_reads_prune_by_chunk_bounds(
    chunked: CassandraStore, exchange: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One trade every 10 minutes over two days: chunks per hour, a day boundary in between.
    records = trades(exchange, range(0, 288), step=10 * 60 * 1_000_000_000)
    chunked.write({Channel.TRADES: records})
    decoded: list[int] = []
    from hundi.stores.cassandra import store as store_module

    real = store_module.read_chunk

    def counting(*args: Any, **kwargs: Any) -> Any:
        decoded.append(kwargs["first_ts"])
        return real(*args, **kwargs)

    monkeypatch.setattr(store_module, "read_chunk", counting)
    start = datetime.fromtimestamp((T0 + 25 * HOUR + 15 * 60 * 10**9) / 1e9, tz=UTC)
    end = datetime.fromtimestamp((T0 + 27 * HOUR) / 1e9, tz=UTC)
    frame = chunked.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES,
                         start=start, end=end)  # fmt: skip
    assert list(frame["trade_id"]) == list(range(152, 162))  # 25:20 .. 26:50
    assert sorted(decoded) == [T0 + 25 * HOUR, T0 + 26 * HOUR]  # two hour-chunks, no more


def test_a_chunk_of_the_first_hour_that_ends_before_the_range_is_not_read(
    chunked: CassandraStore, exchange: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pruning inside an hour (``last_ts >= low``): three flushes of one hour, one trade a
    minute; a read from 00:25 decodes the chunks reaching it, not the one ending at 00:19."""
    records = trades(exchange, range(60), step=60 * 1_000_000_000)
    for first in (0, 20, 40):
        chunked.write({Channel.TRADES: records[first : first + 20]})
    decoded: list[int] = []
    from hundi.stores.cassandra import store as store_module

    real = store_module.read_chunk

    def counting(*args: Any, **kwargs: Any) -> Any:
        decoded.append(kwargs["first_ts"])
        return real(*args, **kwargs)

    monkeypatch.setattr(store_module, "read_chunk", counting)
    start = datetime.fromtimestamp((T0 + 25 * 60 * 10**9) / 1e9, tz=UTC)
    end = datetime.fromtimestamp((T0 + 40 * 60 * 10**9) / 1e9, tz=UTC)  # a chunk's first_ts
    frame = chunked.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES,
                         start=start, end=end)  # fmt: skip
    assert list(frame["trade_id"]) == list(range(25, 40))
    assert decoded == [T0 + 20 * 60 * 10**9]  # not 00:00-00:19, not the one starting at end


def test_rows_and_chunks_are_read_together_without_duplicates(
    cassandra_keyspace: str, exchange: str
) -> None:
    """An older keyspace written one row per record keeps reading after the switch to chunks:
    records in both layouts (a collector upgraded mid-day, another one not yet) come back once."""
    rows = open_store(cassandra_keyspace, chunked_channels=frozenset())
    try:
        rows.write({Channel.TRADES: trades(exchange, range(0, 60))})
    finally:
        rows.close()
    chunks = open_store(cassandra_keyspace)  # the default: trades in chunks
    try:
        chunks.write({Channel.TRADES: trades(exchange, range(40, 100), recv_delay=9)})
        frame = chunks.read(exchange=exchange, symbol=None, channel=Channel.TRADES)
        assert list(frame["trade_id"]) == list(range(100))
        days = list(
            chunks.read_days(exchange=exchange, symbol=None, channel=Channel.TRADES,
                             columns=["trade_id"])
        )  # fmt: skip
        assert days[0][1].column("trade_id").to_pylist() == list(range(100))
        assert chunks.last_position(exchange, "BTC-USDT", Channel.TRADES, T0 + DAY) == (
            StreamPosition(T0 + 99 * 1_000_000, 99)
        )
        assert chunks.last_position(exchange, "BTC-USDT", Channel.TRADES, T0 + 50 * 1_000_000) == (
            StreamPosition(T0 + 49 * 1_000_000, 49)
        )
    finally:
        chunks.close()
    reader = open_store(cassandra_keyspace, read_only=True)
    try:
        frame = reader.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES)
        assert list(frame["trade_id"]) == list(range(100))
    finally:
        reader.close()


def test_chunk_tables_get_the_ttl_and_twcs(
    cassandra_keyspace: str, cql: Session, exchange: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASSANDRA_TTL", "7200")
    store = open_store(cassandra_keyspace)
    try:
        store.write({Channel.BOOK: [sample(RECORD_TYPES[Channel.BOOK], 1, exchange=exchange,
                                           symbol="BTC-USDT", ts=T0)]})  # fmt: skip
    finally:
        store.close()
    keyspace = keyspace_of(cassandra_keyspace)
    options = cql.execute(
        "SELECT default_time_to_live, compaction FROM system_schema.tables "
        "WHERE keyspace_name = %s AND table_name = 'book_chunks'",
        (keyspace,),
    ).one()
    assert options[0] == 7200
    assert options[1]["class"].endswith("TimeWindowCompactionStrategy")
    ttl = chunk_rows(cql, keyspace, "book_chunks", exchange)[0][7]
    assert 7000 < ttl <= 7200


def test_an_unstorable_record_is_refused_and_the_chunk_keeps_the_others(
    chunked: CassandraStore, exchange: str
) -> None:
    """The refusal goes to the writer (counted lost, a gap event: tests/pipeline/
    test_unstorable.py), naming the field."""
    good = trades(exchange, range(3))
    bad = msgspec.structs.replace(good[0], trade_id=2**64)
    chunked.write({Channel.TRADES: [good[0], bad, *good[1:]]})
    frame = chunked.read(exchange=exchange, symbol=None, channel=Channel.TRADES)
    assert list(frame["trade_id"]) == [0, 1, 2]
    (refused,) = chunked.take_refused()
    assert refused.record == bad and refused.channel is Channel.TRADES
    assert "trades: field trade_id=18446744073709551616 cannot be stored" in refused.reason
    assert chunked.take_refused() == []


def test_a_reader_opened_before_the_chunk_table_existed_reads_it(
    cassandra_keyspace: str, exchange: str
) -> None:
    """``hundi serve`` keeps one read-only store open: a collector upgraded to chunks after it
    started creates the chunk table then, and its records must not be missing from answers."""
    rows = open_store(cassandra_keyspace, chunked_channels=frozenset())
    try:
        rows.write({Channel.TRADES: trades(exchange, range(0, 10))})
    finally:
        rows.close()
    reader = open_store(cassandra_keyspace, read_only=True)
    try:
        first = reader.read(exchange=exchange, symbol=None, channel=Channel.TRADES)
        assert list(first["trade_id"]) == list(range(10))
        chunks = open_store(cassandra_keyspace)  # the default: creates trades_chunks now
        try:
            chunks.write({Channel.TRADES: trades(exchange, range(10, 30))})
        finally:
            chunks.close()
        frame = reader.read(exchange=exchange, symbol=None, channel=Channel.TRADES)
        assert list(frame["trade_id"]) == list(range(30))
        assert reader.last_position(exchange, "BTC-USDT", Channel.TRADES, T0 + DAY) == (
            StreamPosition(T0 + 29 * 1_000_000, 29)
        )
    finally:
        reader.close()


def okx_candle(exchange: str, recv: int, close: float, closed: bool) -> Candle:
    """OKX stamps every update of a candle with the candle's start: one key for all of them."""
    return Candle(
        exchange=exchange, symbol="BTC-USDT", native_symbol="BTC-USDT", ts=T0, recv_ts=recv,
        interval="1m", open_time=T0, close_time=T0 + 59_999_000_000, open=100.0,
        high=max(100.0, close), low=min(100.0, close), close=close, volume=1.0,
        quote_volume=100.0, taker_buy_volume=0.0, trade_count=-1, closed=closed,
    )  # fmt: skip


def test_one_writers_records_sharing_a_key_all_stay_another_writers_copies_go(
    chunked: CassandraStore, cassandra_keyspace: str, cql: Session, exchange: str
) -> None:
    """As the embedded store: the rows of the writer that received a key first all stay."""
    closes = [100.0, 101.0, 99.0, 102.5]
    mine = [okx_candle(exchange, T0 + (i + 1) * 1_000_000, c, i == 3) for i, c in enumerate(closes)]
    theirs = [msgspec.structs.replace(c, recv_ts=c.recv_ts + 5) for c in mine]
    chunked.write({Channel.CANDLES: mine[:2]})  # two flushes of one collector: two chunks
    chunked.write({Channel.CANDLES: mine[2:]})
    other = open_store(cassandra_keyspace, chunked_channels=ALL)
    try:
        other.write({Channel.CANDLES: theirs})  # received each later
    finally:
        other.close()
    writers = {
        row[0]
        for row in cql.execute(
            f"SELECT writer FROM {chunked.settings.keyspace}.candles_chunks "
            "WHERE exchange = %s ALLOW FILTERING",
            (exchange,),
        )
    }
    assert len(writers) == 2 and None not in writers
    frame = chunked.read(exchange=exchange, symbol=None, channel=Channel.CANDLES)
    assert list(frame["close"]) == closes
    assert list(frame["recv_ts"].astype("int64")) == [c.recv_ts for c in mine]


def test_a_time_range_read_returns_the_winning_copy_once(
    chunked: CassandraStore, cassandra_keyspace: str, exchange: str
) -> None:
    """Two collectors' spot bookTickers (ts = local receive time): A's copy of update 1 came
    first and lies just before a range's start, B's just after. The range from there must not
    return B's copy; the range before it returns A's; together they are the whole read."""
    bound = T0 + 10_000_000_000

    def bbo(update_id: int, recv: int) -> Bbo:
        return Bbo(
            exchange=exchange, symbol="BTC-USDT", native_symbol="BTCUSDT", ts=recv,
            recv_ts=recv, update_id=update_id, bid_price=100.0, bid_size=1.0, ask_price=101.0,
            ask_size=1.0,
        )  # fmt: skip

    chunked.write(
        {Channel.BBO: [bbo(0, bound - 5_000), bbo(1, bound - 1_000), bbo(2, bound + 9_000)]}
    )
    other = open_store(cassandra_keyspace, chunked_channels=ALL)
    try:
        other.write(
            {Channel.BBO: [bbo(1, bound + 1_000), bbo(2, bound + 8_000), bbo(3, bound + 20_000)]}
        )
    finally:
        other.close()

    def updates(start: int | None, end: int | None) -> list[int]:
        days = chunked.read_days(
            exchange=exchange, symbol="BTC-USDT", channel=Channel.BBO,
            start_ns=start, end_ns=end, columns=["update_id"],
        )  # fmt: skip
        return [u for _, table in days for u in table.column("update_id").to_pylist()]

    assert updates(None, None) == [0, 1, 2, 3]
    assert updates(None, bound) == [0, 1]
    assert updates(bound, None) == [2, 3]  # not B's copy of 1
    frame = chunked.read(
        exchange=exchange, symbol="BTC-USDT", channel=Channel.BBO,
        start=datetime.fromtimestamp(bound / 1e9, UTC),
    )  # fmt: skip
    assert frame["update_id"].tolist() == [2, 3]
    recv = frame.set_index("update_id")["recv_ts"].astype("int64")
    assert recv.loc[2] == bound + 8_000  # B's copy of 2 came first


def test_a_read_of_many_chunks_equals_the_embedded_frame_and_stops_its_decoders(
    cassandra_keyspace: str, exchange: str, tmp_path: Path
) -> None:
    """Chunks decoded by the store's threads come back in order, as the embedded store's
    frame (same dtypes, writable), and ``close`` stops those threads."""
    records = trades(exchange, range(3_000), step=HOUR // 1_000)  # 3 hours, many chunks
    store = open_store(cassandra_keyspace, chunked_channels=ALL)
    embedded = EmbeddedStore(str(tmp_path / "data"), fsync=False)
    try:
        for first in range(0, len(records), 100):
            store.write({Channel.TRADES: records[first : first + 100]})
        embedded.write({Channel.TRADES: records})
        embedded.flush()
        frame = store.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES)
        expected = embedded.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES)
        pd.testing.assert_frame_equal(frame, expected)
        frame.iloc[0, frame.columns.get_loc("price")] = -1.0
        assert any(t.name.startswith("hundi-chunks") for t in threading.enumerate())
    finally:
        store.close()
        embedded.close()
    assert not any(t.name.startswith("hundi-chunks") for t in threading.enumerate())


def test_writer_threads_sharing_one_store_keep_their_own_writer_and_refusals(
    chunked: CassandraStore, exchange: str, cql: Session
) -> None:
    """One store object in two feeds' store sets serves two writer threads: one draining an
    earlier run's spool (``writing_as``) must not stamp the other's live chunks with that run's
    writer, and a refusal belongs to the thread whose ``write`` made it."""
    draining, inside, done = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def drain() -> None:
        with chunked.writing_as("4242"):
            inside.set()
            draining.wait(30)
            chunked.write({Channel.TRADES: trades(exchange, range(0, 3))})
        seen["drain_refused"] = chunked.take_refused()
        done.set()

    thread = threading.Thread(target=drain)
    thread.start()
    assert inside.wait(30)
    live = trades(exchange, range(10, 13))
    chunked.write({Channel.TRADES: [*live, msgspec.structs.replace(live[0], trade_id=2**64)]})
    draining.set()
    assert done.wait(30)
    thread.join(30)
    writers = {
        row[0]: row[1]
        for row in cql.execute(
            f"SELECT first_id, writer FROM {chunked.settings.keyspace}.trades_chunks "
            "WHERE exchange = %s AND symbol = %s AND ts_day = %s",
            (exchange, "BTC-USDT", T0 // 86_400_000_000_000),
        )
    }
    assert writers == {0: 4242, 10: int(chunked.writer_id())}
    assert seen["drain_refused"] == []
    (refused,) = chunked.take_refused()
    assert refused.record.trade_id == 2**64
