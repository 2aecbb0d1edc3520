"""Schema creation is idempotent; a record type that grew a field gets its column added."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
import pytest
from cassandra.cluster import Session

from hundi.records import SCHEMAS, Channel, Trade
from hundi.stores.base import StoreError, open_store
from hundi.stores.cassandra.schema import index_create_cql, index_insert_cql, table_spec

pytestmark = pytest.mark.slow

KEYSPACE = "hundi_test_migrate"
T0 = 1_714_521_600_000_000_000
DAY0 = T0 // 86_400_000_000_000  # the ts_day column


def keyspace_url(cassandra_url: str, keyspace: str) -> str:
    return cassandra_url.rsplit("/", 1)[0] + f"/{keyspace}"


def columns(cql: Session, table: str) -> dict[str, str]:
    rows = cql.execute(
        "SELECT column_name, type FROM system_schema.columns "
        "WHERE keyspace_name = %s AND table_name = %s",
        (KEYSPACE, table),
    )
    return dict(rows)


def table_ttl(cql: Session, table: str) -> int:
    row = cql.execute(
        "SELECT default_time_to_live FROM system_schema.tables "
        "WHERE keyspace_name = %s AND table_name = %s",
        (KEYSPACE, table),
    ).one()
    return int(row[0])


@pytest.fixture
def keyspace(cql: Session) -> Iterator[str]:
    cql.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")
    cql.execute(
        f"CREATE KEYSPACE {KEYSPACE} "
        "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    yield KEYSPACE
    cql.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")


def without(schema: pa.Schema, name: str) -> pa.Schema:
    return schema.remove(schema.get_field_index(name))


def test_older_tables_are_readable_then_migrated_and_reopening_changes_nothing(
    cql: Session, keyspace: str, cassandra_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The table as an older hundi made it: Trade had no last_trade_id yet; one row in it.
    old = table_spec(Channel.TRADES, without(SCHEMAS[Channel.TRADES], "last_trade_id"))
    cql.execute(old.create_cql(keyspace, ttl_s=0))
    cql.execute(
        cql.prepare(old.insert_cql(keyspace)),
        ("binance", "BTC-USDT", "BTCUSDT", T0, T0 + 1, 1, 10.0, 1.0, 1, 1, DAY0),
    )
    cql.execute(index_create_cql(keyspace))
    cql.execute(cql.prepare(index_insert_cql(keyspace)), ("binance", "trades", "BTC-USDT", DAY0))
    assert "last_trade_id" not in columns(cql, "trades")
    url = keyspace_url(cassandra_url, keyspace)
    reader = open_store(url, read_only=True)  # reads, never migrates: the new field is null
    try:
        frame = reader.read(exchange="binance", symbol=None, channel=Channel.TRADES)
    finally:
        reader.close()
    assert list(frame["trade_id"]) == [1] and pd.isna(frame["last_trade_id"].iloc[0])
    assert list(frame.columns) == [n for n in SCHEMAS[Channel.TRADES].names if n != "ts"]
    assert "last_trade_id" not in columns(cql, "trades")

    monkeypatch.setenv("CASSANDRA_TTL", "3600")
    store = open_store(url)
    try:
        assert columns(cql, "trades")["last_trade_id"] == "bigint"
        assert table_ttl(cql, "trades") == 3600  # changed TTL applied to existing tables
        assert table_ttl(cql, "book") == 3600  # and given to new ones
        new = Trade(
            exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=T0 + 5,
            recv_ts=T0 + 6, trade_id=2, price=11.0, size=2.0, side=-1, first_trade_id=2,
            last_trade_id=2,
        )  # fmt: skip
        store.write({Channel.TRADES: [new]})
    finally:
        store.close()

    before = {t: columns(cql, t) for t in ("trades", "book", "events", "hundi_partitions")}
    again = open_store(url)  # idempotent: nothing to create, nothing to alter
    try:
        assert {t: columns(cql, t) for t in before} == before
        frame = again.read(exchange="binance", symbol="BTC-USDT", channel=Channel.TRADES)
    finally:
        again.close()
    assert list(frame["trade_id"]) == [1, 2]
    assert pd.isna(frame["last_trade_id"].iloc[0])  # the old row never had the field
    assert frame["last_trade_id"].iloc[1] == 2


def test_a_column_of_another_type_is_a_clear_error(
    cql: Session, keyspace: str, cassandra_url: str
) -> None:
    schema = SCHEMAS[Channel.CANDLES]
    index = schema.get_field_index("closed")
    wrong = schema.set(index, pa.field("closed", pa.string()))
    cql.execute(table_spec(Channel.CANDLES, wrong).create_cql(keyspace, ttl_s=0))
    with pytest.raises(StoreError, match=r"candles\.closed is text but records need boolean"):
        open_store(keyspace_url(cassandra_url, keyspace))
