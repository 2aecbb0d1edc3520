"""``hundi store migrate`` against the real test node: closed days stored row per record move
into chunks and their rows go, every read (whole days, ranges, hourly tables, a second
collector's chunks beside the rows) the same before and after; a second run finds nothing; a
crash before the rows are deleted reads each record once and the next run finishes; rows that
change meanwhile stay; open days stay; the rows' TTL is kept; bbo and book stay in rows; the
command runs as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest
from cassandra.cluster import Session

from hundi.records import Channel, OrderEvent, Record, Trade
from hundi.stores.base import open_store
from hundi.stores.cassandra import CassandraStore, migration
from hundi.stores.cassandra.compaction import compact_partition
from hundi.stores.cassandra.migration import (
    is_migrated,
    migratable,
    migrate_partition,
    row_partitions,
)

pytestmark = pytest.mark.slow

T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z
DAY_NS = 86_400 * 10**9
DAY0 = T0 // DAY_NS
HOUR = 3_600 * 10**9
MS = 1_000_000
SYMBOL = "BTC-USDT"


def trade(exchange: str, i: int, recv_delay: int = 5 * MS, day: int = 0) -> Record:
    ts = T0 + day * DAY_NS + i * 700 * MS  # ~5,100 an hour
    return Trade(
        exchange=exchange, symbol=SYMBOL, native_symbol="BTCUSDT", ts=ts,
        recv_ts=ts + recv_delay, trade_id=day * 1_000_000 + i, price=100.0 + i % 13,
        size=0.5, side=1 if i % 2 else -1, first_trade_id=i, last_trade_id=i,
    )  # fmt: skip


def order_event(exchange: str, i: int) -> Record:
    ts = T0 + i * 900 * MS
    return OrderEvent(
        exchange=exchange, symbol=SYMBOL, native_symbol="BTC-USD", ts=ts, recv_ts=ts + 3 * MS,
        sequence=10_000 + i, kind="open", order_id=f"o{i}", side=1 if i % 2 else -1,
        price=100.0 + i % 7, size=1.0 + i % 3, other_order_id="", trade_id=0, reason="",
    )  # fmt: skip


@pytest.fixture
def rows_store(cassandra_keyspace: str) -> Iterator[CassandraStore]:
    """A collector of the old layout: every channel row per record."""
    store = open_store(cassandra_keyspace, chunked_channels=frozenset())
    assert isinstance(store, CassandraStore)
    yield store
    store.close()


@pytest.fixture
def store(cassandra_keyspace: str, rows_store: CassandraStore) -> Iterator[CassandraStore]:
    """Today's layout (the defaults: trades, bbo, book, book_l3 in chunks): what migrates."""
    opened = open_store(cassandra_keyspace)
    assert isinstance(opened, CassandraStore)
    yield opened
    opened.close()


def read(store: CassandraStore, exchange: str, channel: Channel, **bounds: Any) -> pd.DataFrame:
    frame: pd.DataFrame = store.read(exchange=exchange, symbol=SYMBOL, channel=channel, **bounds)
    return frame


def row_count(cql: Session, keyspace: str, table: str, exchange: str) -> int:
    found = cql.execute(
        f"SELECT count(*) FROM {keyspace}.{table} WHERE exchange = %s ALLOW FILTERING",
        (exchange,),
    ).one()
    return int(found[0])


def chunk_column(cql: Session, keyspace: str, exchange: str, column: str) -> list[int]:
    """``column`` of every trades chunk of ``exchange``."""
    return [
        value
        for (value,) in cql.execute(
            f"SELECT {column} FROM {keyspace}.trades_chunks WHERE exchange = %s ALLOW FILTERING",
            (exchange,),
        )
    ]


def chunk_writers(cql: Session, keyspace: str, exchange: str) -> set[int]:
    return set(chunk_column(cql, keyspace, exchange, "writer"))


def test_closed_days_move_into_chunks_and_every_read_stays_the_same(
    rows_store: CassandraStore, store: CassandraStore, cql: Session, exchange: str
) -> None:
    old = [trade(exchange, i) for i in range(6_000)]  # hours 0 and 1 of day 0
    old += [trade(exchange, i, day=1) for i in range(2_000)]
    rows_store.write({Channel.TRADES: old})
    # a second collector already on chunks stored part of day 0 too, received later
    store.write({Channel.TRADES: [trade(exchange, i, 9 * MS) for i in range(3_000, 4_000)]})
    l3 = [order_event(exchange, i) for i in range(5_000)]  # hourly partitions: hours 0 and 1
    rows_store.write({Channel.BOOK_L3: l3})
    before = read(store, exchange, Channel.TRADES)
    window = {
        "start": pd.Timestamp(T0 + HOUR - 60 * 10**9, tz="UTC"),
        "end": pd.Timestamp(T0 + HOUR + 90 * 10**9, tz="UTC"),
    }
    ranged = read(store, exchange, Channel.TRADES, **window)
    l3_before = read(store, exchange, Channel.BOOK_L3)
    assert len(before) == 8_000 and len(l3_before) == 5_000
    keyspace = store.settings.keyspace

    found = row_partitions(store, exchange=exchange)
    assert found == [
        (Channel.BOOK_L3, exchange, SYMBOL, DAY0),
        (Channel.TRADES, exchange, SYMBOL, DAY0),
        (Channel.TRADES, exchange, SYMBOL, DAY0 + 1),
    ]
    reports = [migrate_partition(store, *p, margin_s=60) for p in found]

    assert [(r.rows, r.moved, r.left) for r in reports] == [
        (5_000, True, ""), (6_000, True, ""), (2_000, True, "")
    ]  # fmt: skip
    assert all(r.chunks >= 1 for r in reports)
    assert row_count(cql, keyspace, "trades", exchange) == 0
    assert row_count(cql, keyspace, "book_l3", exchange) == 0
    writers = chunk_writers(cql, keyspace, exchange)
    assert len(writers) == 3 and sum(map(is_migrated, writers)) == 2  # a run a day, collector
    pd.testing.assert_frame_equal(read(store, exchange, Channel.TRADES), before)
    pd.testing.assert_frame_equal(read(store, exchange, Channel.TRADES, **window), ranged)
    pd.testing.assert_frame_equal(read(store, exchange, Channel.BOOK_L3), l3_before)
    # a reader of the old layout reads the same from the chunks
    pd.testing.assert_frame_equal(read(rows_store, exchange, Channel.TRADES), before)

    assert row_partitions(store, exchange=exchange) == []
    again = migrate_partition(store, Channel.TRADES, exchange, SYMBOL, DAY0, margin_s=60)
    assert (again.rows, again.chunks, again.moved, again.failed) == (0, 0, False, False)


def test_a_crash_before_the_rows_go_reads_each_record_once_and_the_next_run_finishes(
    rows_store: CassandraStore,
    store: CassandraStore,
    cql: Session,
    exchange: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows_store.write({Channel.TRADES: [trade(exchange, i) for i in range(3_000)]})
    before = read(store, exchange, Channel.TRADES)

    def crash(*_: object) -> None:
        raise RuntimeError("killed before deleting")

    with monkeypatch.context() as patched:
        patched.setattr(migration, "_delete_rows", crash)
        with pytest.raises(RuntimeError):
            migrate_partition(store, Channel.TRADES, exchange, SYMBOL, DAY0, margin_s=60)
    keyspace = store.settings.keyspace
    assert row_count(cql, keyspace, "trades", exchange) == 3_000  # rows and chunks both there
    pd.testing.assert_frame_equal(read(store, exchange, Channel.TRADES), before)

    report = migrate_partition(store, Channel.TRADES, exchange, SYMBOL, DAY0, margin_s=60)
    assert (report.rows, report.moved, report.failed) == (3_000, True, False)
    assert row_count(cql, keyspace, "trades", exchange) == 0
    pd.testing.assert_frame_equal(read(store, exchange, Channel.TRADES), before)


def migrate_with_a_late_row(
    store: CassandraStore, rows_store: CassandraStore, late: Record, stamp_us: int | None = None
) -> migration.MigrationReport:
    """Migrate day 0 while ``late`` (a spool draining into the closed day) is written between
    the chunks' check and the rows' recount; ``stamp_us``: its writer's clock (slow)."""
    checked = migration._stored_records
    cluster = rows_store._session.cluster

    def late_writer(*args: Any) -> int:
        if stamp_us is None:
            rows_store.write({Channel.TRADES: [late]})
        else:
            real = cluster.timestamp_generator
            cluster.timestamp_generator = lambda: stamp_us
            try:
                rows_store.write({Channel.TRADES: [late]})
            finally:
                cluster.timestamp_generator = real
        return int(checked(*args))

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(migration, "_stored_records", late_writer)
        return migrate_partition(
            store, Channel.TRADES, exchange_of(late), SYMBOL, DAY0, margin_s=60
        )


def exchange_of(record: Record) -> str:
    return str(record.exchange)


def test_a_row_written_meanwhile_stays_for_the_next_run(
    rows_store: CassandraStore, store: CassandraStore, cql: Session, exchange: str
) -> None:
    rows_store.write({Channel.TRADES: [trade(exchange, i) for i in range(2_000)]})
    report = migrate_with_a_late_row(store, rows_store, trade(exchange, 2_500))
    # the rows read went; the late one, stamped later, was spared by the tombstone
    assert report.moved and report.failed, report
    assert report.left == "1 row(s) written meanwhile stay in rows for the next run"
    keyspace = store.settings.keyspace
    assert row_count(cql, keyspace, "trades", exchange) == 1
    frame = read(store, exchange, Channel.TRADES)
    assert len(frame) == 2_001 and frame["trade_id"].is_unique

    report = migrate_partition(store, Channel.TRADES, exchange, SYMBOL, DAY0, margin_s=60)
    assert (report.rows, report.moved, report.failed) == (1, True, False)
    assert row_count(cql, keyspace, "trades", exchange) == 0
    pd.testing.assert_frame_equal(read(store, exchange, Channel.TRADES), frame)


def test_a_row_from_a_slow_clock_keeps_the_rows_until_the_next_run(
    rows_store: CassandraStore, store: CassandraStore, cql: Session, exchange: str
) -> None:
    """A row written meanwhile but stamped before the rows read would fall to the tombstone
    unread: the rows stay, and the next run (which reads it) moves them all."""
    rows_store.write({Channel.TRADES: [trade(exchange, i) for i in range(2_000)]})
    report = migrate_with_a_late_row(store, rows_store, trade(exchange, 2_500), stamp_us=1_000)
    assert not report.moved and report.failed
    assert report.left.startswith("1 row(s) written meanwhile stamped no later than")
    keyspace = store.settings.keyspace
    assert row_count(cql, keyspace, "trades", exchange) == 2_001
    assert len(read(store, exchange, Channel.TRADES)) == 2_001

    report = migrate_partition(store, Channel.TRADES, exchange, SYMBOL, DAY0, margin_s=60)
    assert (report.rows, report.moved, report.failed) == (2_001, True, False)
    assert row_count(cql, keyspace, "trades", exchange) == 0
    frame = read(store, exchange, Channel.TRADES)
    assert len(frame) == 2_001 and frame["trade_id"].is_unique
    # two runs' chunks (the first one's 2,000 records are copies): read once, and compaction
    # keeps one copy of each
    assert sum(map(is_migrated, chunk_writers(cql, keyspace, exchange))) == 2
    compact_partition(store, Channel.TRADES, exchange, SYMBOL, DAY0, margin_s=60)
    assert stored_chunk_records(cql, keyspace, exchange) == 2_001
    pd.testing.assert_frame_equal(read(store, exchange, Channel.TRADES), frame)


def test_a_late_row_after_a_finished_run_is_moved_by_the_next_one(
    rows_store: CassandraStore, store: CassandraStore, cql: Session, exchange: str
) -> None:
    rows_store.write({Channel.TRADES: [trade(exchange, i) for i in range(2_000)]})
    first = migrate_partition(store, Channel.TRADES, exchange, SYMBOL, DAY0, margin_s=60)
    assert (first.rows, first.moved, first.failed) == (2_000, True, False)
    rows_store.write({Channel.TRADES: [trade(exchange, 2_500)]})  # a spool drains late
    assert row_partitions(store, exchange=exchange) == [(Channel.TRADES, exchange, SYMBOL, DAY0)]
    second = migrate_partition(store, Channel.TRADES, exchange, SYMBOL, DAY0, margin_s=60)
    assert (second.rows, second.moved, second.failed) == (1, True, False)
    frame = read(store, exchange, Channel.TRADES)
    assert len(frame) == 2_001 and frame["trade_id"].is_unique
    assert stored_chunk_records(cql, store.settings.keyspace, exchange) == 2_001


def stored_chunk_records(cql: Session, keyspace: str, exchange: str) -> int:
    return sum(chunk_column(cql, keyspace, exchange, "records"))


def test_open_days_stay_in_rows(
    rows_store: CassandraStore, store: CassandraStore, cql: Session, exchange: str
) -> None:
    rows_store.write({Channel.TRADES: [trade(exchange, i) for i in range(100)]})
    # day 0 ended 30 s ago: within the 60 s clock margin a live writer may still be at it
    now = T0 + DAY_NS + 30 * 10**9
    report = migrate_partition(
        store, Channel.TRADES, exchange, SYMBOL, DAY0, now_ns=now, margin_s=60
    )
    assert report.rows == 0 and report.open_day
    assert not report.failed and not report.moved and report.left == ""
    assert row_count(cql, store.settings.keyspace, "trades", exchange) == 100


def test_the_rows_ttl_is_kept(cassandra_keyspace: str, cql: Session, exchange: str) -> None:
    rows = open_store(cassandra_keyspace, chunked_channels=frozenset(), ttl_s=3_600)
    assert isinstance(rows, CassandraStore)
    rows.write({Channel.TRADES: [trade(exchange, i) for i in range(500)]})
    # retention raised since: the chunk table's default (2 h) must not outlive the rows' 1 h
    chunked = open_store(cassandra_keyspace, ttl_s=7_200)
    assert isinstance(chunked, CassandraStore)
    try:
        report = migrate_partition(chunked, Channel.TRADES, exchange, SYMBOL, DAY0, margin_s=60)
        assert (report.rows, report.moved, report.failed) == (500, True, False)
        ttls = [
            t
            for (t,) in cql.execute(
                f"SELECT TTL(records) FROM {chunked.settings.keyspace}.trades_chunks "
                "WHERE exchange = %s ALLOW FILTERING",
                (exchange,),
            )
        ]
        assert ttls and all(t is not None and 3_000 < t <= 3_600 for t in ttls), ttls
    finally:
        rows.close()
        chunked.close()


def test_bbo_book_and_row_channels_are_not_migrated(
    store: CassandraStore, rows_store: CassandraStore
) -> None:
    assert "local receive time" in migratable(store, Channel.BBO)
    assert "local receive time" in migratable(store, Channel.BOOK)
    assert "row per record here" in migratable(store, Channel.CANDLES)
    assert migratable(store, Channel.TRADES) == ""
    assert "row per record here" in migratable(rows_store, Channel.TRADES)


def hundi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hundi", "store", "migrate", *args],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip


def test_the_command_moves_each_day_and_prints_it(
    rows_store: CassandraStore, store: CassandraStore, cql: Session, exchange: str
) -> None:
    rows_store.write({Channel.TRADES: [trade(exchange, i) for i in range(1_500)]})
    before = read(store, exchange, Channel.TRADES)
    done = hundi("--store", store.url, "--exchange", exchange)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"trades {exchange} {SYMBOL} 2024-05-01: 1500 rows -> 1 chunks")
    assert lines[-1] == "1 day(s) moved into chunks, 0 left in rows"
    assert row_count(cql, store.settings.keyspace, "trades", exchange) == 0
    pd.testing.assert_frame_equal(read(store, exchange, Channel.TRADES), before)
    again = hundi("--store", store.url, "--exchange", exchange, "--channel", "trades")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["0 day(s) moved into chunks, 0 left in rows"]


@pytest.mark.parametrize(
    "args",
    [
        ("--day", "2024-13-01"),
        ("--since", "2024-05-02", "--until", "2024-05-01"),
        ("--channel", "nope"),
        ("--channel", "bbo"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cassandra_keyspace: str, args: tuple[str, ...]) -> None:
    done = hundi("--store", cassandra_keyspace, *args)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_a_read_paging_through_rows_while_the_day_migrates_returns_every_record(
    rows_store: CassandraStore,
    store: CassandraStore,
    cassandra_keyspace: str,
    exchange: str,
    between_pages: Callable[..., list[object]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by review: a read took the chunks first, then paged through the rows; a migration
    in between deleted the rows after moving them into chunks already read: 20,000 of 45,000
    records came back without a word. Rows are read first now."""
    from hundi.stores.cassandra import store as store_module

    rows_store.write({Channel.TRADES: [trade(exchange, i) for i in range(2_000)]})
    monkeypatch.setattr(store_module, "_FETCH_SIZE", 300)  # pages of rows for the reader
    reader = open_store(cassandra_keyspace, read_only=True)
    assert isinstance(reader, CassandraStore)
    try:
        before = read(reader, exchange, Channel.TRADES)
        assert len(before) == 2_000
        ran = between_pages(
            lambda: migrate_partition(store, Channel.TRADES, exchange, SYMBOL, DAY0, margin_s=60)
        )
        during = read(reader, exchange, Channel.TRADES)
        assert ran and ran[0].moved  # type: ignore[attr-defined]
        pd.testing.assert_frame_equal(during, before)
    finally:
        reader.close()
