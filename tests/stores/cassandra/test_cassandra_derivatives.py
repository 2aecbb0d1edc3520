"""Derivative tickers, liquidations and instruments in the real Cassandra: exact round trips
(NaN fields, no funding time, expiry), idempotent re-delivery, the same frames as the embedded
store, and an existing keyspace gaining their tables."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from cassandra.cluster import Session

from derivative_samples import EXPIRY, T0, derivative_batches, liquidation, same_records
from hundi.query import read as hundi_read
from hundi.records import Channel, Record, from_arrow
from hundi.stores.base import Store, open_store
from hundi.stores.cassandra import CassandraStore
from hundi.stores.cassandra.schema import index_create_cql, table_spec
from hundi.stores.embedded import EmbeddedStore

NEW = (Channel.DERIVATIVE_TICKER, Channel.LIQUIDATIONS, Channel.INSTRUMENTS)
KEYSPACE = "hundi_test_migrate_derivatives"


@pytest.fixture(scope="module")
def store(cassandra_url: str) -> Iterator[Store]:
    opened = open_store(cassandra_url)
    assert isinstance(opened, CassandraStore)
    yield opened
    opened.close()


def records_of(frame: pd.DataFrame, channel: Channel) -> list[Record]:
    """Frame → records; pandas' NaN becomes an Arrow null on the way, so floats get it back."""
    table = pa.Table.from_pandas(frame.reset_index(), preserve_index=False)
    for i, field in enumerate(table.schema):
        if pa.types.is_floating(field.type):
            table = table.set_column(i, field, pc.fill_null(table.column(i), math.nan))
    return from_arrow(channel, table)


def test_the_new_record_types_round_trip_exactly_with_nan_and_zero_times(
    store: Store, exchange: str, tmp_path: Path
) -> None:
    batches = derivative_batches(exchange)
    store.write(batches)
    store.flush()
    embedded = EmbeddedStore(str(tmp_path))
    embedded.write(batches)
    embedded.flush()
    for channel in NEW:
        frame = store.read(exchange=exchange, symbol=None, channel=channel)
        assert same_records(records_of(frame, channel), batches[channel]), channel
        reference = embedded.read(exchange=exchange, symbol=None, channel=channel)
        columns = list(frame.reset_index().columns)
        pd.testing.assert_frame_equal(
            frame.reset_index().sort_values(columns, kind="stable").reset_index(drop=True),
            reference.reset_index().sort_values(columns, kind="stable").reset_index(drop=True),
            check_exact=True,
        )
    tickers = store.read(exchange=exchange, symbol="BTC-USDT-PERP",
                         channel=Channel.DERIVATIVE_TICKER)  # fmt: skip
    assert math.isnan(tickers["predicted_funding_rate"].iloc[0])
    assert math.isnan(tickers["open_interest"].iloc[0])
    dated = store.read(exchange=exchange, symbol="BTC-USD-20261225",
                       channel=Channel.DERIVATIVE_TICKER)  # fmt: skip
    assert dated["next_funding_time"].iloc[0] == pd.Timestamp(0, tz="UTC")  # no funding
    instruments = store.read(exchange=exchange, symbol="BTC-USD-20261225",
                             channel=Channel.INSTRUMENTS)  # fmt: skip
    assert instruments["expiry"].iloc[0] == pd.Timestamp(EXPIRY, tz="UTC")
    assert instruments["contract_size"].iloc[0] == 100.0
    assert bool(instruments["inverse"].iloc[0])


def test_re_delivery_and_a_second_collector_add_no_rows(
    store: Store, cassandra_url: str, exchange: str
) -> None:
    batches = derivative_batches(exchange)
    store.write(batches)
    store.write(batches)  # a retried batch
    second = open_store(cassandra_url)  # another collector on the same feed
    try:
        second.write(batches)
    finally:
        second.close()
    for channel in NEW:
        frame = store.read(exchange=exchange, symbol=None, channel=channel)
        assert len(frame) == len(batches[channel]), channel
        assert same_records(records_of(frame, channel), batches[channel]), channel


def test_identical_liquidations_of_one_message_stay_two_rows(store: Store, exchange: str) -> None:
    """``position`` is in the key: a cascade message listing two liquidations alike in side,
    price and size keeps both; re-delivering the message still adds none."""
    first = liquidation(T0, -1, 59_990.0, 0.5, exchange=exchange)
    pair: list[Record] = [first, msgspec.structs.replace(first, position=1)]
    store.write({Channel.LIQUIDATIONS: pair})
    store.write({Channel.LIQUIDATIONS: pair})
    store.flush()
    frame = store.read(exchange=exchange, symbol=None, channel=Channel.LIQUIDATIONS)
    assert sorted(frame["position"].tolist()) == [0, 1]
    assert same_records(records_of(frame, Channel.LIQUIDATIONS), pair)


def test_hundi_read_returns_them_from_cassandra(
    store: Store, cassandra_url: str, exchange: str
) -> None:
    store.write(derivative_batches(exchange))
    store.flush()
    frame = hundi_read(cassandra_url, exchange=exchange, symbol="BTCUSDT",
                       channel="derivative_ticker")  # fmt: skip
    assert frame["mark_price"].tolist() == [60_000.5, 60_000.5, 60_010.0]
    liquidations = hundi_read(cassandra_url, exchange=exchange, symbol=None,
                              channel="liquidations")  # fmt: skip
    assert liquidations["side"].tolist() == [-1, -1, 1, 1]


@pytest.fixture
def old_keyspace(cql: Session) -> Iterator[str]:
    cql.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")
    cql.execute(
        f"CREATE KEYSPACE {KEYSPACE} "
        "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    yield KEYSPACE
    cql.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")


def tables(cql: Session, keyspace: str) -> set[str]:
    rows = cql.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
    )
    return {row[0] for row in rows}


@pytest.mark.slow
def test_an_existing_keyspace_gains_the_new_tables(
    cql: Session, old_keyspace: str, cassandra_url: str
) -> None:
    # A keyspace as hundi made it before these channels existed: trades and the index only.
    cql.execute(table_spec(Channel.TRADES).create_cql(old_keyspace, ttl_s=0))
    cql.execute(index_create_cql(old_keyspace))
    assert not {c.value for c in NEW} & tables(cql, old_keyspace)
    url = cassandra_url.rsplit("/", 1)[0] + f"/{old_keyspace}"
    opened = open_store(url)
    try:
        assert {c.value for c in NEW} <= tables(cql, old_keyspace)
        batches: dict[Channel, Any] = derivative_batches("binance")
        opened.write(batches)
        opened.flush()
        frame = opened.read(exchange="binance", symbol=None, channel=Channel.LIQUIDATIONS)
        assert same_records(records_of(frame, Channel.LIQUIDATIONS), batches[Channel.LIQUIDATIONS])
        assert frame.index.min() == pd.Timestamp(T0, tz="UTC") + pd.Timedelta(5, "ms")
    finally:
        opened.close()
