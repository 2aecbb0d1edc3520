"""The Cassandra store against the real test node: exact round trips, idempotent rewrites,
partition pruning by symbol and time, read-only use and clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
import pyarrow as pa
import pytest

from hundi.query import read as hundi_read
from hundi.records import RECORD_TYPES, BookChange, Channel, Record, Trade, from_arrow
from hundi.stores.base import Store, StoreError, open_store
from hundi.stores.cassandra import CassandraStore
from hundi.stores.embedded import EmbeddedStore

T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z
MS = 1_000_000
DAY = 86_400 * 1_000_000_000


def sample(record_type: type[Record], i: int, *, exchange: str, symbol: str, ts: int) -> Record:
    """A record of any type (new channels included) whose every field differs with ``i``."""
    values: dict[str, Any] = {
        "exchange": exchange,
        "symbol": symbol,
        "native_symbol": symbol.replace("-", ""),
        "ts": ts,
        "recv_ts": ts + 1_234 + i,
    }
    for field in msgspec.structs.fields(record_type):
        if field.name in values:
            continue
        if field.name == "side":
            values[field.name] = 1 if i % 2 else -1
        elif field.type is int:
            values[field.name] = i * 1_000_003 - 1
        elif field.type is float:
            values[field.name] = i + 1 / 3
        elif field.type is bool:
            values[field.name] = i % 2 == 0
        else:
            values[field.name] = f"{field.name}-{i}-ü"
    return record_type(**values)


def tricky_trades(exchange: str) -> list[Record]:
    """Trades sharing a millisecond and a nanosecond, extreme ids and awkward floats."""

    def trade(trade_id: int, ts: int, price: float, recv_ts: int) -> Trade:
        return Trade(
            exchange=exchange, symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts,
            recv_ts=recv_ts, trade_id=trade_id, price=price, size=0.1 + 0.2,
            side=-1 if trade_id % 2 else 1, first_trade_id=trade_id, last_trade_id=trade_id,
        )  # fmt: skip

    return [
        trade(10, T0 + 5 * MS, 60_000.01, T0 + 6 * MS),
        trade(11, T0 + 5 * MS, 60_000.02, T0 + 6 * MS),  # same millisecond
        trade(12, T0 + 5 * MS, 1e-300, T0 + 6 * MS),
        trade(2**62, T0 + 5 * MS + 1, 5e300, T0 + 6 * MS + 1),  # same ns as the next two
        trade(2**62 + 1, T0 + 5 * MS + 1, -0.5, T0 + 6 * MS + 1),
        trade(-1, T0 + 5 * MS + 1, 0.0, T0 + 6 * MS + 2),
        trade(9, T0 - 1, 1.0, T0),  # the previous UTC day
    ]


def every_channel(exchange: str, count: int = 3) -> dict[Channel, list[Record]]:
    batches: dict[Channel, list[Record]] = {}
    for channel, record_type in RECORD_TYPES.items():
        batches[channel] = [
            sample(record_type, i, exchange=exchange, symbol="ETH-USDT", ts=T0 + i * MS)
            for i in range(count)
        ]
    batches[Channel.TRADES] += tricky_trades(exchange)
    return batches


def records_of(frame: pd.DataFrame, channel: Channel) -> list[Record]:
    table = pa.Table.from_pandas(frame.reset_index(), preserve_index=False)
    return from_arrow(channel, table)


def sort_key(record: Record) -> tuple[Any, ...]:
    return (record.ts, record.recv_ts, msgspec.json.encode(record))


@pytest.fixture(scope="module")
def store(cassandra_url: str) -> Any:
    opened = open_store(cassandra_url)
    assert isinstance(opened, CassandraStore)
    yield opened
    opened.close()


def test_every_record_type_round_trips_exactly_like_the_embedded_store(
    store: Store, exchange: str, tmp_path: Path
) -> None:
    batches = every_channel(exchange)
    store.write(batches)
    store.flush()
    embedded = EmbeddedStore(str(tmp_path))
    embedded.write(batches)
    embedded.flush()
    for channel, records in batches.items():
        frame = store.read(exchange=exchange, symbol=None, channel=channel)
        expected = sorted(records, key=sort_key)
        assert sorted(records_of(frame, channel), key=sort_key) == expected, channel
        reference = embedded.read(exchange=exchange, symbol=None, channel=channel)
        # Same columns, dtypes, index; rows tied on (ts, recv_ts) may come in another order.
        pd.testing.assert_frame_equal(
            frame.reset_index().sort_values(list(frame.reset_index().columns), kind="stable")
            .reset_index(drop=True),
            reference.reset_index().sort_values(list(frame.reset_index().columns), kind="stable")
            .reset_index(drop=True),
            check_exact=True,
        )  # fmt: skip
        assert frame.index.name == "ts" and str(frame.index.dtype) == "datetime64[ns, UTC]"
        assert frame.index.is_monotonic_increasing


def test_trades_sharing_a_timestamp_come_back_in_trade_id_order(
    store: Store, exchange: str
) -> None:
    trades = tricky_trades(exchange)
    store.write({Channel.TRADES: list(reversed(trades))})
    frame = store.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES)
    assert list(frame["trade_id"]) == [9, 10, 11, 12, 2**62, 2**62 + 1, -1]
    assert frame.index[1] == frame.index[2] == pd.Timestamp(T0 + 5 * MS, tz="UTC")


def test_rewriting_a_batch_or_a_second_collector_adds_no_duplicates(
    store: Store, cassandra_url: str, exchange: str
) -> None:
    batches = every_channel(exchange, count=4)
    store.write(batches)
    store.write(batches)  # the writer retrying after a timeout
    second = open_store(cassandra_url)  # another collector recording the same feed
    try:
        second.write(batches)
    finally:
        second.close()
    for channel, records in batches.items():
        frame = store.read(exchange=exchange, symbol=None, channel=channel)
        assert len(frame) == len(records), channel
        assert sorted(records_of(frame, channel), key=sort_key) == sorted(records, key=sort_key)


def test_symbol_and_time_range_select_partitions(store: Store, exchange: str) -> None:
    def trade(i: int, ts: int, symbol: str) -> Record:
        return sample(Trade, i, exchange=exchange, symbol=symbol, ts=ts)

    store.write(
        {
            Channel.TRADES: [
                trade(1, T0 - 1, "BTC-USDT"),
                trade(2, T0, "BTC-USDT"),
                trade(3, T0 + DAY - 1, "ETH-USDT"),
                trade(4, T0 + DAY, "ETH-USDT"),
                trade(5, T0 + 3 * DAY, "BTC-USDT"),
            ]
        }
    )

    def ids(symbol: str | None, start: datetime | None, end: datetime | None) -> list[int]:
        frame = store.read(
            exchange=exchange, symbol=symbol, channel=Channel.TRADES, start=start, end=end
        )
        return [(int(i) + 1) // 1_000_003 for i in frame["trade_id"]]

    day1 = datetime(2024, 5, 1, tzinfo=UTC)
    assert ids(None, None, None) == [1, 2, 3, 4, 5]
    assert ids("BTC-USDT", None, None) == [1, 2, 5]
    assert ids(None, day1, day1 + timedelta(days=1)) == [2, 3]  # end exclusive
    assert ids("ETH-USDT", day1 + timedelta(days=1), None) == [4]
    assert ids(None, None, day1) == [1]
    assert ids("SOL-USDT", None, None) == []
    assert ids(None, day1 + timedelta(days=10), None) == []


def test_listing_and_reading_by_day_like_the_embedded_store(
    store: Store, exchange: str, tmp_path: Path
) -> None:
    def trade(i: int, ts: int, symbol: str) -> Record:
        return sample(Trade, i, exchange=exchange, symbol=symbol, ts=ts)

    trades: list[Record] = [
        trade(1, T0 - 1, "BTC-USDT"),
        trade(3, T0 + 5, "BTC-USDT"),
        trade(2, T0, "ETH-USDT"),
        trade(4, T0 + DAY, "ETH-USDT"),
    ]
    store.write({Channel.TRADES: trades})
    embedded = EmbeddedStore(str(tmp_path))
    embedded.write({Channel.TRADES: trades})
    embedded.flush()
    for either in (store, embedded):
        assert exchange in either.exchanges()
        assert either.channels(exchange) == [Channel.TRADES]
        assert either.channels("nobody") == []
        assert either.symbols(exchange, Channel.TRADES) == ["BTC-USDT", "ETH-USDT"]
        assert either.symbols(exchange, Channel.BOOK) == []
        day = datetime(2024, 5, 1).date()
        assert either.days(exchange, Channel.TRADES, "ETH-USDT") == [day, day + timedelta(1)]
        assert either.days(exchange, Channel.TRADES) == [
            day - timedelta(1),
            day,
            day + timedelta(1),
        ]
    for query in (
        {"symbol": None},
        {"symbol": "ETH-USDT", "columns": ["price", "trade_id"]},
        {"symbol": None, "start_ns": T0, "end_ns": T0 + DAY, "columns": ["ts", "symbol"]},
        {"symbol": None, "start_ns": T0 + 1, "ordered": False, "columns": ["ts"]},
    ):
        ours = list(store.read_days(exchange=exchange, channel=Channel.TRADES, **query))
        theirs = list(embedded.read_days(exchange=exchange, channel=Channel.TRADES, **query))
        assert [d for d, _ in ours] == [d for d, _ in theirs], query
        for (_, mine), (_, reference) in zip(ours, theirs, strict=True):
            if not query.get("ordered", True):
                mine, reference = mine.sort_by("ts"), reference.sort_by("ts")
            assert mine.equals(reference), query


def test_empty_reads_have_the_embedded_shape(store: Store, tmp_path: Path) -> None:
    embedded = EmbeddedStore(str(tmp_path))
    for channel in (Channel.TRADES, Channel.BOOK):
        ours = store.read(exchange="nobody", symbol=None, channel=channel)
        theirs = embedded.read(exchange="nobody", symbol=None, channel=channel)
        pd.testing.assert_frame_equal(ours, theirs)


def test_hundi_read_and_read_only_store(store: Store, cassandra_url: str, exchange: str) -> None:
    book = [
        BookChange(
            exchange=exchange, symbol="BTC-USDT", native_symbol="BTCUSDT", ts=T0, recv_ts=T0 + 1,
            side=side, price=price, size=1.0, snapshot=True, first_update_id=-1, update_id=7,
            prev_update_id=-1,
        )
        for side, price in ((1, 10.0), (1, 9.5), (-1, 10.5))
    ]  # fmt: skip
    store.write({Channel.BOOK: book})
    frame = hundi_read(cassandra_url, exchange=exchange, channel="book")
    assert len(frame) == 3
    reader = open_store(cassandra_url, read_only=True)
    try:
        with pytest.raises(StoreError, match="read-only"):
            reader.write({Channel.BOOK: book})
    finally:
        reader.close()


def test_read_only_on_a_missing_keyspace_is_a_clear_error(cassandra_url: str) -> None:
    url = cassandra_url.rsplit("/", 1)[0] + "/hundi_test_absent"
    with pytest.raises(StoreError, match="no keyspace 'hundi_test_absent'"):
        open_store(url, read_only=True)


def test_a_record_that_cannot_be_stored_is_refused_and_does_not_block_the_others(
    store: Store, exchange: str
) -> None:
    """The refusal goes to the writer (counted lost, a gap event: tests/pipeline/
    test_unstorable.py), naming the field."""
    good = [sample(Trade, i, exchange=exchange, symbol="BTC-USDT", ts=T0 + i) for i in (1, 2)]
    bad = msgspec.structs.replace(good[0], trade_id=2**64, ts=T0 + 5)
    store.write({Channel.TRADES: [good[0], bad, good[1]]})
    frame = store.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES)
    assert records_of(frame, Channel.TRADES) == good
    (refused,) = store.take_refused()
    assert refused.record == bad
    assert "trades: field trade_id=18446744073709551616 cannot be stored" in refused.reason


def test_last_position_is_the_newest_row_before_a_time(cassandra_url: str, exchange: str) -> None:
    """Where a stream ended, for the restart gap of a collector that writes only to Cassandra:
    the newest day first, one row per query."""
    from hundi.stores.base import StreamPosition

    day = 86_400 * 1_000_000_000
    trades = [
        Trade(
            exchange=exchange, symbol="BTC-USDT", native_symbol="BTCUSDT", ts=T0 + i * day // 4,
            recv_ts=T0 + i * day // 4, trade_id=100 + i, price=1.0, size=1.0, side=1,
            first_trade_id=100 + i, last_trade_id=100 + i,
        )
        for i in range(10)  # 2.5 days
    ]  # fmt: skip
    store = open_store(cassandra_url)
    try:
        store.write({Channel.TRADES: trades})
        store.flush()
        end = T0 + 100 * day
        assert store.last_position(exchange, "BTC-USDT", Channel.TRADES, end) == StreamPosition(
            trades[-1].ts, 109
        )
        middle = trades[5].ts  # rows strictly before it: trade 104, a day earlier partition
        assert store.last_position(exchange, "BTC-USDT", Channel.TRADES, middle) == (
            StreamPosition(trades[4].ts, 104)
        )
        assert store.last_position(exchange, "BTC-USDT", Channel.TRADES, T0) is None
        assert store.last_position(exchange, "ETH-USDT", Channel.TRADES, end) is None
        bbo = store.last_position(exchange, "BTC-USDT", Channel.BBO, end)
        assert bbo is None
    finally:
        store.close()
