"""A writing store compacts the hours it wrote once they closed (``CASSANDRA_COMPACT=hourly``),
against the real node: two writers of one stream (an A/B pair) compacting the same hours read
back every record once, a chunk arriving after an hour was compacted is merged in by a second
pass, and an open hour is left alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from cassandra.cluster import Session

from hundi.records import Bbo, Channel, Record, Trade
from hundi.stores.base import StoreError, open_store
from hundi.stores.cassandra import CassandraStore
from hundi.stores.cassandra.settings import load_settings
from tcprelay import TcpRelay

pytestmark = pytest.mark.slow

HOUR = 3_600 * 10**9
T0 = 1_714_521_600_000_000_000 + 5 * HOUR  # 2024-05-01T05:00:00Z
DAY0 = T0 // (24 * HOUR)
MS = 1_000_000
SYMBOL = "BTC-USDT"
END = datetime.fromtimestamp((T0 + HOUR) // 10**9, UTC)  # the hour's end


def trades(first: int, count: int, *, at: int = T0, delay: int = 5 * MS) -> list[Record]:
    return [
        Trade(
            exchange="xauto", symbol=SYMBOL, native_symbol="BTCUSDT", ts=at + i * 1_500 * MS,
            recv_ts=at + i * 1_500 * MS + delay, trade_id=i, price=100.0 + i % 7, size=0.5,
            side=1, first_trade_id=i, last_trade_id=i,
        )
        for i in range(first, first + count)
    ]  # fmt: skip


def quotes(count: int) -> list[Record]:
    return [
        Bbo(
            exchange="xauto", symbol=SYMBOL, native_symbol="BTCUSDT", ts=T0 + i * 1_500 * MS,
            recv_ts=T0 + i * 1_500 * MS, update_id=i, bid_price=1.0, bid_size=1.0 + i,
            ask_price=2.0, ask_size=3.0,
        )
        for i in range(count)
    ]  # fmt: skip


def in_pieces(store: CassandraStore, channel: Channel, records: list[Record], size: int) -> None:
    """One write (one chunk) per ``size`` records, as a live collector's flushes."""
    for first in range(0, len(records), size):
        store.write({channel: records[first : first + size]})


def chunks_of_hour(cql: Session, keyspace: str, channel: Channel, start: int = T0) -> int:
    rows = cql.execute(
        f"SELECT chunk_id FROM {keyspace}.{channel.value}_chunks WHERE exchange = 'xauto' "
        "AND symbol = %s AND ts_day = %s AND first_ts >= %s AND first_ts < %s",
        (SYMBOL, start // (24 * HOUR), start, start + HOUR),
    )
    return sum(1 for _ in rows)


def wait_for(done: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def settled(store: CassandraStore) -> bool:
    """No hour before the current one waits for compaction."""
    assert store.compactor is not None
    now_hour = time.time_ns() // HOUR
    return all(hour[3] >= now_hour for hour in store.compactor.pending())


@pytest.fixture
def pair(
    writer_pair: Callable[..., tuple[CassandraStore, CassandraStore]],
) -> tuple[CassandraStore, CassandraStore]:
    """Two writers on one keyspace compacting closed hours at once (margin 0)."""
    return writer_pair(compact_hourly=True, compact_margin_s=0.0)


def test_an_ab_pair_compacts_closed_hours_and_reads_every_record_once(
    pair: tuple[CassandraStore, CassandraStore], cql: Session, cassandra_keyspace: str
) -> None:
    a, b = pair
    keyspace = cassandra_keyspace.rsplit("/", 1)[1]
    mine = trades(0, 2_000)  # 50 min of hour 5
    in_pieces(a, Channel.TRADES, mine, 20)  # 100 chunks
    in_pieces(b, Channel.TRADES, trades(500, 1_000, delay=9 * MS), 33)  # its copies, later
    in_pieces(a, Channel.BBO, quotes(600), 10)
    live = trades(0, 3, at=time.time_ns() // HOUR * HOUR)  # the current hour: left alone
    a.write({Channel.TRADES: live})
    wait_for(lambda: settled(a) and settled(b), "the closed hour's compaction")
    assert a.compactor is not None and b.compactor is not None
    assert a.compactor.hours_compacted + b.compactor.hours_compacted >= 2  # trades and bbo
    assert a.compactor.failures == b.compactor.failures == 0, a.compactor.last_error
    assert chunks_of_hour(cql, keyspace, Channel.TRADES) <= 2
    assert chunks_of_hour(cql, keyspace, Channel.BBO) <= 2
    got = a.read(exchange="xauto", symbol=SYMBOL, channel=Channel.TRADES, end=END)
    assert got["trade_id"].tolist() == list(range(2_000))
    assert got["recv_ts"].astype("int64").tolist() == [t.recv_ts for t in mine]  # A's rows
    quoted = a.read(exchange="xauto", symbol=SYMBOL, channel=Channel.BBO)
    assert quoted["update_id"].tolist() == list(range(600))
    now_hour = time.time_ns() // HOUR
    assert (Channel.TRADES, "xauto", SYMBOL, now_hour) in a.compactor.pending() or (
        time.time_ns() // HOUR != now_hour  # the hour turned during the test
    )

    # a late chunk into the compacted hour (new ids and a re-sent stretch): merged in again
    a.write({Channel.TRADES: trades(2_000, 20) + mine[:20]})
    wait_for(lambda: settled(a) and settled(b), "the second pass")
    assert chunks_of_hour(cql, keyspace, Channel.TRADES) <= 2
    got = a.read(exchange="xauto", symbol=SYMBOL, channel=Channel.TRADES, end=END)
    assert got["trade_id"].tolist() == list(range(2_020))
    a.close()
    assert a.compactor._thread is not None and not a.compactor._thread.is_alive()


def test_an_hour_whose_compaction_failed_is_compacted_once_cassandra_is_back(
    cassandra_keyspace: str, cql: Session
) -> None:
    parts = urlsplit(cassandra_keyspace)
    keyspace = parts.path.strip("/")
    relay = TcpRelay((parts.hostname or "127.0.0.1", parts.port or 9042))
    store = open_store(
        f"cassandra://127.0.0.1:{relay.port}/{keyspace}",
        compact_hourly=True, compact_margin_s=1.0, request_timeout_s=2.0,
    )  # fmt: skip
    assert isinstance(store, CassandraStore) and store.compactor is not None
    try:
        store.compactor.retry_s = 0.5
        in_pieces(store, Channel.TRADES, trades(0, 200), 20)
        relay.cut()  # before the margin has passed: the compaction fails
        wait_for(lambda: store.compactor is not None and store.compactor.failures > 0, "a failure")
        assert chunks_of_hour(cql, keyspace, Channel.TRADES) == 10
        relay.restore()
        wait_for(lambda: settled(store), "the retry")
        assert chunks_of_hour(cql, keyspace, Channel.TRADES) == 1
        got = store.read(exchange="xauto", symbol=SYMBOL, channel=Channel.TRADES)
        assert got["trade_id"].tolist() == list(range(200))
    finally:
        store.close()
        relay.cut()


def test_off_compacts_nothing_and_a_bad_value_is_one_clear_error(
    cassandra_keyspace: str, cql: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(cassandra_keyspace, compact_hourly=False)
    assert isinstance(store, CassandraStore)
    try:
        assert store.compactor is None
        in_pieces(store, Channel.TRADES, trades(0, 200), 20)
        keyspace = cassandra_keyspace.rsplit("/", 1)[1]
        assert chunks_of_hour(cql, keyspace, Channel.TRADES) == 10
    finally:
        store.close()
    monkeypatch.setenv("CASSANDRA_COMPACT", "daily")
    with pytest.raises(StoreError, match="CASSANDRA_COMPACT must be hourly or off"):
        load_settings(cassandra_keyspace)
    monkeypatch.setenv("CASSANDRA_COMPACT", "hourly")
    monkeypatch.setenv("CASSANDRA_COMPACT_CLOCK_MARGIN", "-1")
    with pytest.raises(StoreError, match="CASSANDRA_COMPACT_CLOCK_MARGIN must be seconds"):
        load_settings(cassandra_keyspace)
