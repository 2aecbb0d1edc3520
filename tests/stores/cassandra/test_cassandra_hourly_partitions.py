"""The order-level channel (``book_l3``) is partitioned by symbol, day and UTC hour; every other
channel keeps one partition per symbol-day. Pure: the CQL and the hour arithmetic, no server."""

from __future__ import annotations

from hundi.records import Channel
from hundi.stores.cassandra.schema import (
    NS_PER_DAY,
    NS_PER_HOUR,
    hour_of,
    hours_within,
    table_spec,
)
from hundi.stores.cassandra.store import _partition_keys

DAY = 19_844  # 2024-05-01
START = DAY * NS_PER_DAY


def test_book_l3_tables_add_the_hour_to_the_partition_key() -> None:
    spec = table_spec(Channel.BOOK_L3)
    assert spec.partition_key == ("exchange", "symbol", "ts_day", "ts_hour")
    create = spec.create_cql("ks", 0)
    assert 'PRIMARY KEY (("exchange", "symbol", "ts_day", "ts_hour"), "ts", "sequence"' in create
    assert spec.columns["ts_hour"] == "int"
    insert = spec.insert_cql("ks")
    assert insert.endswith('"ts_day", "ts_hour") VALUES (' + ", ".join("?" * 16) + ")")
    where = '"exchange" = ? AND "symbol" = ? AND "ts_day" = ? AND "ts_hour" = ? AND "ts"'
    assert where in spec.select_cql("ks", ("ts",))
    assert where in spec.last_row_cql("ks", ("ts",))


def test_other_channels_keep_one_partition_per_symbol_day() -> None:
    for channel in (Channel.TRADES, Channel.BOOK, Channel.EVENTS):
        spec = table_spec(channel)
        assert spec.partition_key == ("exchange", "symbol", "ts_day")
        assert "ts_hour" not in spec.columns
        assert "ts_hour" not in spec.create_cql("ks", 0)
        assert _partition_keys(spec, "x", "BTC-USD", DAY, 0, 2**62) == [("x", "BTC-USD", DAY)]


def test_hours_are_utc_hours_of_the_day() -> None:
    assert hour_of(START) == 0
    assert hour_of(START + NS_PER_HOUR - 1) == 0
    assert hour_of(START + 13 * NS_PER_HOUR + 5) == 13
    assert hour_of(START + NS_PER_DAY - 1) == 23


def test_a_read_asks_only_for_the_hours_its_range_covers() -> None:
    assert hours_within(DAY, -(2**63), 2**63 - 1) == range(24)
    assert list(hours_within(DAY, START + 2 * NS_PER_HOUR + 1, START + 4 * NS_PER_HOUR)) == [2, 3]
    assert list(hours_within(DAY, START + 2 * NS_PER_HOUR, START + 4 * NS_PER_HOUR + 1)) == [
        2,
        3,
        4,
    ]
    assert list(hours_within(DAY, START - 5, START + 1)) == [0]  # from the day before
    assert list(hours_within(DAY, START + NS_PER_DAY - 1, START + 3 * NS_PER_DAY)) == [23]
    assert list(hours_within(DAY, START + NS_PER_DAY, START + 2 * NS_PER_DAY)) == []
    assert list(hours_within(DAY, START - NS_PER_DAY, START)) == []
    spec = table_spec(Channel.BOOK_L3)
    low, high = START + 22 * NS_PER_HOUR, START + NS_PER_DAY + 1
    assert _partition_keys(spec, "x", "BTC-USD", DAY, low, high) == [
        ("x", "BTC-USD", DAY, 22),
        ("x", "BTC-USD", DAY, 23),
    ]
