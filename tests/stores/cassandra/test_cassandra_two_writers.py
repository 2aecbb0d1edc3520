"""Two collectors' rows of one stream on the real test node: a restart in the middle of an
OKX candle (both layouts), copies of one update on either side of midnight UTC, and a
restart of a sparse stream beside a running collector, covered before and after compaction."""

from __future__ import annotations

from datetime import UTC, date, datetime

import msgspec
import pytest

import hundi
from hundi.pipeline.resume import gap_event
from hundi.records import Bbo, Candle, Channel, Record, Ticker
from hundi.research import coverage
from hundi.stores.base import StreamPosition, open_store
from hundi.stores.cassandra import CassandraStore
from hundi.stores.cassandra.chunks import chunk_table_spec
from hundi.stores.cassandra.compaction import compact_partition

pytestmark = pytest.mark.slow

T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z
S = 1_000_000_000
ALL = frozenset(Channel)


def okx_candle(exchange: str, recv: int, close: float, closed: bool) -> Candle:
    """OKX stamps every update of a candle with the candle's start: one identity for all."""
    return Candle(
        exchange=exchange, symbol="BTC-USDT", native_symbol="BTC-USDT", ts=T0, recv_ts=recv,
        interval="1m", open_time=T0, close_time=T0 + 60 * S - 1_000_000, open=100.0,
        high=max(100.0, close), low=min(100.0, close), close=close, volume=1.0,
        quote_volume=100.0, taker_buy_volume=0.0, trade_count=-1, closed=closed,
    )  # fmt: skip


def candle_updates(exchange: str, shift: int) -> list[Candle]:
    closes = [100.0, 101.0, 99.0, 102.5]
    return [okx_candle(exchange, T0 + (i + 1) * S + shift, c, i == 3) for i, c in enumerate(closes)]


def write_as_writers(url: str, chunked: frozenset[Channel], *writes: list[Record]) -> None:
    """Each list written by its own store instance: its own writer (collector run)."""
    for records in writes:
        store = open_store(url, chunked_channels=chunked)
        try:
            store.write({records[0].CHANNEL: records})
        finally:
            store.close()


@pytest.mark.parametrize("chunked", [ALL, frozenset()], ids=["chunks", "rows"])
def test_a_restart_mid_candle_reads_the_final_state_once(
    cassandra_keyspace: str, exchange: str, chunked: frozenset[Channel]
) -> None:
    """A received the candle first and was killed after two updates, then restarted (a new
    writer); B ran throughout. Chunks: each update once, from the writer that received it
    first, the closed one last (old code: A's first run won the candle and the closed update
    was lost). Row tables keep one row per key (the last write): the closed candle, once."""
    a, b, again = (candle_updates(exchange, shift) for shift in (1, 4, 9))
    write_as_writers(cassandra_keyspace, chunked, a[:2], b, again[1:])
    store = open_store(cassandra_keyspace, chunked_channels=chunked)
    try:
        frame = store.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.CANDLES)
    finally:
        store.close()
    assert frame["closed"].tolist().count(True) == 1
    assert bool(frame["closed"].iloc[-1]) and frame["close"].iloc[-1] == 102.5
    if chunked:
        assert frame["close"].tolist() == [100.0, 101.0, 99.0, 102.5]
        winners = [a[0], a[1], b[2], b[3]]
        assert frame["recv_ts"].astype("int64").tolist() == [c.recv_ts for c in winners]
    else:
        assert len(frame) == 1


def test_copies_received_with_other_values_stay_apart(
    cassandra_keyspace: str, exchange: str
) -> None:
    """Merge by value: a copy whose exchange-sent values differ (another update) is kept."""
    a = candle_updates(exchange, 1)[:1]
    b = [msgspec.structs.replace(a[0], recv_ts=a[0].recv_ts + 3, close=100.5, high=100.5)]
    write_as_writers(cassandra_keyspace, ALL, a, b)
    store = open_store(cassandra_keyspace, chunked_channels=ALL)
    try:
        frame = store.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.CANDLES)
    finally:
        store.close()
    assert frame["close"].tolist() == [100.0, 100.5]


@pytest.mark.parametrize("chunked", [ALL, frozenset()], ids=["chunks", "rows"])
def test_copies_on_either_side_of_midnight_read_back_once(
    cassandra_keyspace: str, exchange: str, chunked: frozenset[Channel]
) -> None:
    """A's copy of spot bookTicker 1 was received at 23:59:59.999, B's at 00:00:00.001: two
    day partitions. Every read returns it once, A's copy: the whole stream, a range spanning
    midnight, the second day alone. Old code: a day's read merged only its own partition."""
    midnight = T0 + 86_400 * S
    ms = 1_000_000

    def bbo(update_id: int, recv: int) -> Bbo:
        return Bbo(
            exchange=exchange, symbol="BTC-USDT", native_symbol="BTCUSDT", ts=recv,
            recv_ts=recv, update_id=update_id, bid_price=100.0, bid_size=1.0, ask_price=101.0,
            ask_size=1.0,
        )  # fmt: skip

    a = [bbo(0, midnight - 5 * ms), bbo(1, midnight - ms), bbo(2, midnight + 9 * ms)]
    b = [bbo(1, midnight + ms), bbo(2, midnight + 8 * ms), bbo(3, midnight + 20 * ms)]
    write_as_writers(cassandra_keyspace, chunked, a, b)
    store = open_store(cassandra_keyspace, chunked_channels=chunked)

    def utc(ns: int) -> datetime:
        return datetime.fromtimestamp(ns / 1e9, UTC)

    def updates(start: int | None, end: int | None) -> list[int]:
        days = store.read_days(
            exchange=exchange, symbol="BTC-USDT", channel=Channel.BBO,
            start_ns=start, end_ns=end, columns=["update_id"],
        )  # fmt: skip
        return [u for _, table in days for u in table.column("update_id").to_pylist()]

    try:
        whole = store.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.BBO)
        assert whole["update_id"].tolist() == [0, 1, 2, 3]
        assert whole.set_index("update_id")["recv_ts"].astype("int64").loc[1] == midnight - ms
        spanning = store.read(
            exchange=exchange, symbol="BTC-USDT", channel=Channel.BBO,
            start=utc(midnight - S), end=utc(midnight + S),
        )  # fmt: skip
        assert spanning["update_id"].tolist() == [0, 1, 2, 3]
        second = store.read(
            exchange=exchange, symbol="BTC-USDT", channel=Channel.BBO, start=utc(midnight)
        )
        assert second["update_id"].tolist() == [2, 3]  # not B's losing copy of 1
        assert updates(None, None) == [0, 1, 2, 3]
        assert updates(midnight - S, midnight + S) == [0, 1, 2, 3]
        assert updates(midnight, None) == [2, 3]
        assert updates(None, midnight) == [0, 1]
        day = store.read_day(exchange, Channel.BBO, "BTC-USDT", date(2024, 5, 2))
        assert day.table.column("update_id").to_pylist() == [2, 3]
    finally:
        store.close()


def ticker(exchange: str, second: int, recv_delay: int) -> Ticker:
    ts = T0 + second * S
    return Ticker(
        exchange=exchange, symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts,
        recv_ts=ts + recv_delay, last_price=100.0 + second, last_size=1.0, open_price=100.0,
        high_price=200.0, low_price=90.0, volume=10.0, quote_volume=1000.0, vwap=100.0,
        price_change=1.0, price_change_pct=1.0, trade_count=10, open_time=ts - 86_400 * S,
        close_time=ts, first_trade_id=1, last_trade_id=second,
    )  # fmt: skip


def pushes(exchange: str, first: int, last: int, recv_delay: int) -> list[Record]:
    return [ticker(exchange, second, recv_delay) for second in range(first, last + 1)]


@pytest.mark.parametrize("running", [True, False], ids=["beside-a-running-one", "lone"])
def test_a_restart_of_a_sparse_stream_is_covered_by_the_run_on_both_sides(
    cassandra_keyspace: str, exchange: str, running: bool
) -> None:
    """Ticker pushes once a second: X restarted (first push at 50 s, its look-up found the
    push at 49 s) beside W, which ran throughout, or alone. Covered only beside W, also after
    the hour was compacted (W's copies at the window's ends may have gone to X's runs, which
    received them first: W's nearest rows still lie on both sides)."""
    w = pushes(exchange, 0, 120, recv_delay=2_000_000)
    x_first = pushes(exchange, 0, 49 if not running else 40, recv_delay=1_000_000)
    x_again = pushes(exchange, 50, 120, recv_delay=1_000_000)
    gap = gap_event(Channel.TICKER, x_again[0], StreamPosition(T0 + 49 * S))
    assert gap is not None
    runs = [w, x_first, x_again, [gap]] if running else [x_first, x_again, [gap]]
    write_as_writers(cassandra_keyspace, ALL, *runs)
    expected = ([""], 1) if running else (["gap", ""], 0)

    def judged() -> tuple[list[str], int]:
        ranges = coverage(cassandra_keyspace, exchange, channel="ticker")
        return list(ranges["ended_by"]), int(ranges["covered"].sum())

    def read() -> list[tuple[int, int]]:
        frame = hundi.read(cassandra_keyspace, exchange=exchange, symbol="BTC-USDT",
                           channel="ticker")  # fmt: skip
        return list(zip(frame["last_trade_id"], frame["recv_ts"].astype("int64"), strict=True))

    assert judged() == expected
    merged = read()
    assert [i for i, _ in merged] == list(range(121))  # each push once
    store = open_store(cassandra_keyspace, chunked_channels=ALL)
    try:
        assert isinstance(store, CassandraStore)
        day = T0 // (86_400 * S)
        report = compact_partition(store, Channel.TICKER, exchange, "BTC-USDT", day, margin_s=60)
        assert report.hours == 1
    finally:
        store.close()
    assert judged() == expected
    assert read() == merged  # the rows kept for presence are copies every read merges away


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy-chunks", "writers"])
def test_compacting_a_pair_s_hour_reads_the_same(
    cassandra_keyspace: str, exchange: str, legacy: bool
) -> None:
    """Two writers' copies of every push, compacted. Chunks written before the ``writer``
    column compact into one writer a read never merges within: rows kept for presence there
    came back twice (found by review: 185 rows for 181)."""
    write_as_writers(
        cassandra_keyspace, ALL, pushes(exchange, 0, 180, 1_000_000), pushes(exchange, 0, 180, 2)
    )
    day = T0 // (86_400 * S)
    store = open_store(cassandra_keyspace, chunked_channels=ALL)
    try:
        assert isinstance(store, CassandraStore)
        if legacy:
            name = f"{store.settings.keyspace}.{chunk_table_spec(Channel.TICKER).name}"
            where = "WHERE exchange = %s AND symbol = %s AND ts_day = %s"
            keys = list(
                store._session.execute(
                    f"SELECT first_ts, chunk_id FROM {name} {where}", (exchange, "BTC-USDT", day)
                )
            )
            assert len(keys) == 2
            for first_ts, chunk_id in keys:
                store._session.execute(
                    f"DELETE writer FROM {name} {where} AND first_ts = %s AND chunk_id = %s",
                    (exchange, "BTC-USDT", day, first_ts, chunk_id),
                )

        def read() -> list[int]:
            frame = hundi.read(cassandra_keyspace, exchange=exchange, symbol="BTC-USDT",
                               channel="ticker")  # fmt: skip
            return list(frame["last_trade_id"])

        assert read() == list(range(181))
        compact_partition(store, Channel.TICKER, exchange, "BTC-USDT", day, margin_s=60)
        assert read() == list(range(181))
    finally:
        store.close()
