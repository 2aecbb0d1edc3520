"""Compaction of chunk tables against the real test node: two writers' small chunks with other
boundaries (and re-sent ones) read back the same before and after, in fewer chunks; a second
run changes nothing; open hours are left alone; a crash between writing and deleting reads each
record once; an hour with a damaged chunk is left and reported; ``hundi store compact`` runs
as a real subprocess."""

from __future__ import annotations

import dataclasses
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence

import msgspec
import pandas as pd
import pytest
from cassandra.cluster import Session

from hundi.records import BookChange, Candle, Channel, Record, Trade, to_arrow
from hundi.stores.base import open_store
from hundi.stores.cassandra import CassandraStore
from hundi.stores.cassandra.chunks import chunk_table_spec, encode_chunks
from hundi.stores.cassandra.compaction import (
    closed_hours,
    compact_partition,
    compacted_writer,
    delete_replaced,
    insert_chunks,
    plan_hour,
    write_compacted,
)

pytestmark = pytest.mark.slow

T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z
DAY0 = T0 // (86_400 * 10**9)
HOUR = 3_600 * 10**9
MS = 1_000_000
SYMBOL = "BTC-USDT"
CHANNELS = (Channel.TRADES, Channel.CANDLES, Channel.BBO)


def trade(exchange: str, i: int, recv_delay: int) -> Record:
    ts = T0 + i * 700 * MS  # ~5,100 an hour: hours 0 and 1
    return Trade(
        exchange=exchange, symbol=SYMBOL, native_symbol="BTCUSDT", ts=ts,
        recv_ts=ts + recv_delay, trade_id=i, price=100.0 + i % 13, size=0.5,
        side=1 if i % 2 else -1, first_trade_id=i, last_trade_id=i,
    )  # fmt: skip


def candle(exchange: str, i: int, recv_delay: int) -> Record:
    """OKX-like: every update of a 1-minute candle is stamped with its start (one writer's
    rows share the key (ts, interval, open_time))."""
    start = T0 + (i // 10) * 7_000 * MS  # squeezed: ~5,100 updates an hour, as trades
    recv = start + (i % 10) * 500 * MS + recv_delay
    return Candle(
        exchange=exchange, symbol=SYMBOL, native_symbol="BTC-USDT", ts=start, recv_ts=recv,
        interval="1m", open_time=start, close_time=start + 60_000 * MS - 1, open=1.0,
        high=1.0 + i % 10, low=0.5, close=1.0 + i % 10, volume=float(i), quote_volume=2.0 * i,
        taker_buy_volume=0.0, trade_count=i % 10, closed=i % 10 == 9,
    )  # fmt: skip


def bbo(exchange: str, i: int, recv_delay: int) -> Record:
    from hundi.records import Bbo

    ts = T0 + i * 700 * MS + recv_delay  # Binance spot: ts is the local receive time
    return Bbo(
        exchange=exchange, symbol=SYMBOL, native_symbol="BTCUSDT", ts=ts,
        recv_ts=ts, update_id=i, bid_price=1.0, bid_size=2.0 + i,
        ask_price=1.5, ask_size=3.0,
    )  # fmt: skip


MAKERS = {Channel.TRADES: trade, Channel.CANDLES: candle, Channel.BBO: bbo}


def write_in_pieces(
    store: CassandraStore, channel: Channel, records: Sequence[Record], size: int
) -> None:
    """One write call (one chunk per stream-hour) per ``size`` records, as live flushes."""
    for first in range(0, len(records), size):
        store.write({channel: list(records[first : first + size])})


def chunk_count(cql: Session, keyspace: str, channel: Channel, exchange: str, hour: int) -> int:
    start = T0 + hour * HOUR
    rows = cql.execute(
        f"SELECT chunk_id FROM {keyspace}.{channel.value}_chunks WHERE exchange = %s "
        "AND symbol = %s AND ts_day = %s AND first_ts >= %s AND first_ts < %s",
        (exchange, SYMBOL, DAY0, start, start + HOUR),
    )
    return sum(1 for _ in rows)


def read(store: CassandraStore, exchange: str, channel: Channel) -> pd.DataFrame:
    return store.read(exchange=exchange, symbol=SYMBOL, channel=channel)


@pytest.fixture
def stores(cassandra_keyspace: str) -> Iterator[tuple[CassandraStore, CassandraStore]]:
    """Two collectors (writers) on one keyspace, every channel in chunks."""
    opened = []
    for _ in range(2):
        store = open_store(cassandra_keyspace, chunked_channels=frozenset(Channel))
        assert isinstance(store, CassandraStore)
        opened.append(store)
    yield opened[0], opened[1]
    for store in opened:
        store.close()


def fill(
    a: CassandraStore, b: CassandraStore, channel: Channel, exchange: str, count: int = 6_000
) -> None:
    """Writer A has everything in chunks of 20, re-sends a stretch (same chunks); writer B has
    an overlapping stretch in chunks of 33, received later (its copies go on read)."""
    make = MAKERS[channel]
    mine = [make(exchange, i, 5 * MS) for i in range(count)]
    write_in_pieces(a, channel, mine, 20)
    write_in_pieces(a, channel, mine[400:800], 20)  # re-sent: the same chunks
    theirs = [make(exchange, i, 9 * MS) for i in range(300, 4_000)]
    write_in_pieces(b, channel, theirs, 33)


@pytest.mark.parametrize("channel", CHANNELS, ids=lambda c: c.value)
def test_compaction_keeps_every_read_the_same_in_fewer_chunks(
    stores: tuple[CassandraStore, CassandraStore], cql: Session, exchange: str, channel: Channel
) -> None:
    a, b = stores
    fill(a, b, channel, exchange)
    keyspace = a.settings.keyspace
    before = read(a, exchange, channel)
    window = (
        pd.Timestamp(T0 + HOUR - 5 * 60 * 10**9, tz="UTC"),
        pd.Timestamp(T0 + HOUR + 10**9 * 90, tz="UTC"),
    )
    ranged = a.read(
        exchange=exchange, symbol=SYMBOL, channel=channel, start=window[0], end=window[1]
    )
    counts = [chunk_count(cql, keyspace, channel, exchange, h) for h in (0, 1)]
    assert min(counts) > 30
    if channel is Channel.CANDLES:  # one writer's rows sharing a key are all there
        assert before.index.duplicated().sum() > 1_000

    report = compact_partition(a, channel, exchange, SYMBOL, DAY0, margin_s=60)

    assert not report.damaged
    assert report.chunks_before == sum(counts)
    assert report.hours == 2
    after_counts = [chunk_count(cql, keyspace, channel, exchange, h) for h in (0, 1)]
    assert report.chunks_after == sum(after_counts)
    assert max(after_counts) <= 2  # one per surviving writer (bbo: regrouped, both stay)
    pd.testing.assert_frame_equal(read(a, exchange, channel), before)
    again = a.read(
        exchange=exchange, symbol=SYMBOL, channel=channel, start=window[0], end=window[1]
    )
    pd.testing.assert_frame_equal(again, ranged)

    second = compact_partition(a, channel, exchange, SYMBOL, DAY0, margin_s=60)
    assert second.hours == 0
    assert second.chunks_before == second.chunks_after == report.chunks_after
    pd.testing.assert_frame_equal(read(b, exchange, channel), before)


def test_open_hours_are_left_alone(
    stores: tuple[CassandraStore, CassandraStore], cql: Session, exchange: str
) -> None:
    a, b = stores
    fill(a, b, Channel.TRADES, exchange)
    keyspace = a.settings.keyspace
    counts = [chunk_count(cql, keyspace, Channel.TRADES, exchange, h) for h in (0, 1)]
    # hour 1 ended 30 s ago: within the 60 s margin, a live writer may still be at it
    now = T0 + 2 * HOUR + 30 * 10**9
    assert closed_hours(DAY0, now, 60) == [0]
    report = compact_partition(a, Channel.TRADES, exchange, SYMBOL, DAY0, now_ns=now, margin_s=60)
    assert report.hours == 1
    assert chunk_count(cql, keyspace, Channel.TRADES, exchange, 1) == counts[1]
    assert chunk_count(cql, keyspace, Channel.TRADES, exchange, 0) < counts[0]
    # the hour being written now, by the real clock and the default margin
    now_ns = time.time_ns()
    live = [trade(exchange, i, 5 * MS) for i in range(100)]
    live = [
        msgspec.structs.replace(r, ts=now_ns - 1_000 + i, recv_ts=now_ns + i)
        for i, r in enumerate(live)
    ]
    write_in_pieces(a, Channel.TRADES, live, 20)
    today = now_ns // (86_400 * 10**9)
    current = compact_partition(a, Channel.TRADES, exchange, SYMBOL, today)
    assert current.hours == 0 and current.records == 0
    frame = a.read(
        exchange=exchange,
        symbol=SYMBOL,
        channel=Channel.TRADES,
        start=pd.Timestamp(now_ns - 10**9, tz="UTC"),
    )
    assert len(frame) == 100


def test_a_crash_between_writing_and_deleting_reads_each_record_once(
    stores: tuple[CassandraStore, CassandraStore], cql: Session, exchange: str
) -> None:
    a, b = stores
    keyspace = a.settings.keyspace
    for channel in (Channel.TRADES, Channel.CANDLES):
        fill(a, b, channel, exchange, count=2_000)
        before = read(a, exchange, channel)
        plan = plan_hour(a, channel, exchange, SYMBOL, DAY0, 0)
        old = chunk_count(cql, keyspace, channel, exchange, 0)
        write_compacted(a, plan)  # ... and the compactor dies here
        assert chunk_count(cql, keyspace, channel, exchange, 0) == old + len(plan.new)
        assert {w for _, w in plan.new} <= {
            compacted_writer(a._writer),
            compacted_writer(b._writer),
        }
        pd.testing.assert_frame_equal(read(a, exchange, channel), before)
        delete_replaced(a, plan)
        assert chunk_count(cql, keyspace, channel, exchange, 0) == len(plan.new)
        pd.testing.assert_frame_equal(read(a, exchange, channel), before)


@pytest.mark.parametrize("channel", CHANNELS, ids=lambda c: c.value)
def test_compacting_an_hour_again_after_a_crash_or_a_late_copy_reads_each_record_once(
    stores: tuple[CassandraStore, CassandraStore], cql: Session, exchange: str, channel: Channel
) -> None:
    """A second pass over an hour holding a writer's chunks *and* their compacted copies (a
    compactor that died before deleting; the writer re-sending a stretch after the hour was
    compacted) merges them: bbo and book, only regrouped per writer, once doubled them."""
    a, b = stores
    keyspace = a.settings.keyspace
    fill(a, b, channel, exchange, count=2_000)
    before = read(a, exchange, channel)
    write_compacted(a, plan_hour(a, channel, exchange, SYMBOL, DAY0, 0))  # ... and dies
    report = compact_partition(a, channel, exchange, SYMBOL, DAY0, margin_s=60)
    assert report.hours == 1  # 2,000 records: hour 0 only
    pd.testing.assert_frame_equal(read(a, exchange, channel), before)
    assert chunk_count(cql, keyspace, channel, exchange, 0) <= 2
    make = MAKERS[channel]
    resent = [make(exchange, i, 5 * MS) for i in range(100, 125)]  # A's records again
    write_in_pieces(a, channel, resent, 25)
    pd.testing.assert_frame_equal(read(a, exchange, channel), before)
    report = compact_partition(a, channel, exchange, SYMBOL, DAY0, margin_s=60)
    assert report.hours == 1
    pd.testing.assert_frame_equal(read(a, exchange, channel), before)
    assert chunk_count(cql, keyspace, channel, exchange, 0) <= 2


def test_a_re_sent_chunk_of_a_key_a_writer_repeats_keeps_every_update(
    stores: tuple[CassandraStore, CassandraStore], exchange: str
) -> None:
    """OKX-like: an unchanged candle pushed 40 times (one key, the same values, 40 receive
    times), stored in chunks of 10. After the hour was compacted the writer re-sends its
    first chunk (its spool): the second pass keeps all 40, not the 10 re-sent. As two sources
    tied on the first recv_ts, chunk order used to pick the winner, a coin flip: six
    partitions, so the old merge lost rows in ~98 % of runs."""
    a, _ = stores
    for n in range(6):
        name = f"{exchange}{n}"
        pushes = [
            Candle(
                exchange=name, symbol=SYMBOL, native_symbol="BTC-USDT", ts=T0,
                recv_ts=T0 + i * 500 * MS + n, interval="1m", open_time=T0,
                close_time=T0 + 60_000 * MS - 1, open=1.0, high=1.0, low=1.0, close=1.0,
                volume=1.0, quote_volume=1.0, taker_buy_volume=0.0, trade_count=1, closed=False,
            )
            for i in range(40)
        ]  # fmt: skip
        write_in_pieces(a, Channel.CANDLES, pushes, 10)
        compact_partition(a, Channel.CANDLES, name, SYMBOL, DAY0, margin_s=60)
        before = read(a, name, Channel.CANDLES)
        assert len(before) == 40
        write_in_pieces(a, Channel.CANDLES, pushes[:10], 10)
        report = compact_partition(a, Channel.CANDLES, name, SYMBOL, DAY0, margin_s=60)
        assert report.hours == 1
        pd.testing.assert_frame_equal(read(a, name, Channel.CANDLES), before)


def test_book_rows_one_writer_holds_twice_survive_crashes_and_re_sends(
    stores: tuple[CassandraStore, CassandraStore], exchange: str
) -> None:
    """Kraken-like book rows (``update_id`` -1: one message's equal rows are distinct
    records), a second writer with rows equal in every column: regrouped, a crash between
    writing and deleting, re-sent stretches, a compactor stopped halfway through writing;
    every read equal to the first."""
    a, b = stores
    rows: list[Record] = []
    for i in range(2_000):
        ts = T0 + i * 700 * MS
        row = BookChange(
            exchange=exchange, symbol=SYMBOL, native_symbol="XBT/USD", ts=ts,
            recv_ts=ts + 5 * MS, side=1, price=100.0 + i % 7, size=1.0 + i % 3,
            snapshot=False, first_update_id=-1, update_id=-1, prev_update_id=-1,
        )  # fmt: skip
        rows += [row, row]
    write_in_pieces(a, Channel.BOOK, rows, 21)  # odd: a message's pair split over chunks
    write_in_pieces(b, Channel.BOOK, rows[1_000:1_600], 33)
    before = read(a, exchange, Channel.BOOK)
    write_compacted(a, plan_hour(a, Channel.BOOK, exchange, SYMBOL, DAY0, 0))  # ... dies
    pd.testing.assert_frame_equal(read(a, exchange, Channel.BOOK), before)
    assert compact_partition(a, Channel.BOOK, exchange, SYMBOL, DAY0, margin_s=60).hours == 1
    pd.testing.assert_frame_equal(read(a, exchange, Channel.BOOK), before)
    write_in_pieces(a, Channel.BOOK, rows[:210], 21)
    write_in_pieces(b, Channel.BOOK, rows[1_000:1_099], 33)
    compact_partition(a, Channel.BOOK, exchange, SYMBOL, DAY0, margin_s=60)
    pd.testing.assert_frame_equal(read(a, exchange, Channel.BOOK), before)
    write_in_pieces(a, Channel.BOOK, rows[:420], 21)
    plan = plan_hour(a, Channel.BOOK, exchange, SYMBOL, DAY0, 0)
    insert_chunks(a, Channel.BOOK, plan.new[: len(plan.new) // 2], 0, plan.newest_us + 1)
    pd.testing.assert_frame_equal(read(a, exchange, Channel.BOOK), before)
    compact_partition(a, Channel.BOOK, exchange, SYMBOL, DAY0, margin_s=60)
    pd.testing.assert_frame_equal(read(a, exchange, Channel.BOOK), before)


def test_an_hour_with_a_damaged_chunk_is_left_and_reported(
    stores: tuple[CassandraStore, CassandraStore], cql: Session, exchange: str
) -> None:
    a, b = stores
    fill(a, b, Channel.TRADES, exchange)
    keyspace = a.settings.keyspace
    table = f"{keyspace}.trades_chunks"
    first_ts, chunk_id, data = cql.execute(
        f"SELECT first_ts, chunk_id, data FROM {table} WHERE exchange = %s AND symbol = %s "
        "AND ts_day = %s LIMIT 1",
        (exchange, SYMBOL, DAY0),
    ).one()
    broken = data[:-9] + bytes([data[-9] ^ 0xFF]) + data[-8:]
    cql.execute(
        f"UPDATE {table} SET data = %s WHERE exchange = %s AND symbol = %s AND ts_day = %s "
        "AND first_ts = %s AND chunk_id = %s",
        (broken, exchange, SYMBOL, DAY0, first_ts, chunk_id),
    )
    counts = [chunk_count(cql, keyspace, Channel.TRADES, exchange, h) for h in (0, 1)]
    report = compact_partition(a, Channel.TRADES, exchange, SYMBOL, DAY0, margin_s=60)
    assert report.failed
    assert len(report.damaged) == 1
    assert "hour 00" in report.damaged[0] and "checksum" in report.damaged[0]
    assert chunk_count(cql, keyspace, Channel.TRADES, exchange, 0) == counts[0]
    assert chunk_count(cql, keyspace, Channel.TRADES, exchange, 1) < counts[1]
    # the command says so and exits 1; the hour stays as it is
    done = hundi("--store", a.url, "--exchange", exchange, "--channel", "trades")
    assert done.returncode == 1, done.stderr
    assert f"trades {exchange} {SYMBOL} 2024-05-01: hour 00 left as it is: damaged" in done.stderr
    assert done.stdout.splitlines()[-1] == "1 partition(s), 1 failed"
    assert "Traceback" not in done.stderr
    assert chunk_count(cql, keyspace, Channel.TRADES, exchange, 0) == counts[0]


def hundi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hundi", "store", "compact", *args],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip


def test_the_command_compacts_and_prints_each_partition(
    stores: tuple[CassandraStore, CassandraStore], cql: Session, exchange: str
) -> None:
    a, b = stores
    fill(a, b, Channel.TRADES, exchange)
    fill(a, b, Channel.CANDLES, exchange, count=1_000)
    url = a.url
    done = hundi("--store", url, "--exchange", exchange, "--day", "2024-05-01")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    trades_line = next(line for line in lines if line.startswith(f"trades {exchange} {SYMBOL}"))
    assert "2024-05-01: chunks " in trades_line and "2 hour(s) rewritten" in trades_line
    assert any(line.startswith(f"candles {exchange} {SYMBOL} 2024-05-01") for line in lines)
    assert lines[-1] == "2 partition(s), 0 failed"
    keyspace = a.settings.keyspace
    assert chunk_count(cql, keyspace, Channel.TRADES, exchange, 0) <= 2
    again = hundi("--store", url, "--exchange", exchange, "--channel", "trades")
    assert again.returncode == 0, again.stderr
    assert "0 hour(s) rewritten" in again.stdout
    # the exchange's own name of the symbol resolves to the stored one, as in hundi query
    native = hundi("--store", url, "--exchange", exchange, "--symbol", "BTCUSDT")
    assert native.returncode == 0, native.stderr
    assert native.stdout.splitlines()[-1] == "2 partition(s), 0 failed"
    # names the store does not hold are bad input (they were "0 partition(s)", exit 0)
    for args in (("--exchange", "nope"), ("--exchange", exchange, "--symbol", "FOO-BAR"),
                 ("--symbol", "FOO-BAR")):  # fmt: skip
        for command in ("compact", "migrate"):
            refused = subprocess.run(
                [sys.executable, "-m", "hundi", "store", command, "--store", url, *args],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert refused.returncode == 2, (command, args, refused.stdout, refused.stderr)
            assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
            assert "holds no" in refused.stderr and refused.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ("--day", "2024-13-01"),
        ("--day", "yesterday"),
        ("--since", "2024-05-02", "--until", "2024-05-01"),
        ("--channel", "nope"),
        (),  # CASSANDRA_COMPACT_CLOCK_MARGIN=soon
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    cassandra_url: str, args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not args:
        monkeypatch.setenv("CASSANDRA_COMPACT_CLOCK_MARGIN", "soon")
    done = hundi("--store", cassandra_url, *args)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_an_unreachable_cassandra_is_exit_1_not_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CronJob or script tells an outage (1) from a typo (2)."""
    monkeypatch.setenv("CASSANDRA_CONNECT_TIMEOUT", "2")
    done = hundi("--store", "cassandra://127.0.0.1:1/ks", "--day", "2024-05-01")
    assert done.returncode == 1, done.stderr
    # one line: not also "writes wait until it answers", meant for a collector (review)
    assert done.stderr.strip().splitlines() == ["Cassandra 127.0.0.1:1/ks is not reachable"]
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_a_chunk_arriving_meanwhile_stamped_before_the_tombstone_survives(
    stores: tuple[CassandraStore, CassandraStore], cql: Session, exchange: str
) -> None:
    """The clock assumption broken on purpose: a writer whose clock lags stores a chunk into
    the hour between the read and the delete, stamped before the newest chunk read. The
    compactor sees it and deletes the old chunks by their keys instead of the range."""
    a, b = stores
    fill(a, b, Channel.TRADES, exchange, count=2_000)
    keyspace = a.settings.keyspace
    stored = len(read(a, exchange, Channel.TRADES))
    plan = plan_hour(a, Channel.TRADES, exchange, SYMBOL, DAY0, 0)
    write_compacted(a, plan)
    late = [trade(exchange, i, 5 * MS) for i in range(50_000, 50_020)]
    late = [msgspec.structs.replace(r, ts=T0 + 10 * MS + i, recv_ts=T0 + 20 * MS + i)
            for i, r in enumerate(late)]  # fmt: skip
    (chunk,) = encode_chunks(Channel.TRADES, to_arrow(Channel.TRADES, late))
    spec = chunk_table_spec(Channel.TRADES)
    cql.execute(
        spec.insert_cql(keyspace).replace("?", "%s") + " USING TIMESTAMP %s",
        (*chunk.values(777), plan.newest_us - 1_000_000),
    )
    expected = read(a, exchange, Channel.TRADES)
    assert len(expected) == stored + 20
    delete_replaced(a, plan)
    assert chunk_count(cql, keyspace, Channel.TRADES, exchange, 0) == len(plan.new) + 1
    pd.testing.assert_frame_equal(read(a, exchange, Channel.TRADES), expected)


def test_a_crash_in_the_middle_of_writing_loses_no_row_of_a_key(
    stores: tuple[CassandraStore, CassandraStore], cql: Session, exchange: str
) -> None:
    """Chunks of 25 candle updates, 10 updates per key: a compactor that stopped after writing
    every other new chunk must not have left any key's rows half in a compacted chunk (the
    compacted writer could then win the key on read, with half its rows)."""
    a, b = stores
    fill(a, b, Channel.CANDLES, exchange, count=2_000)
    before = read(a, exchange, Channel.CANDLES)
    small = open_store(a.url, chunked_channels=frozenset(Channel), chunk_rows=25)
    assert isinstance(small, CassandraStore)
    try:
        plan = plan_hour(small, Channel.CANDLES, exchange, SYMBOL, DAY0, 0)
        assert len(plan.new) > 20
        assert max(c.records for c, _ in plan.new) <= 25
        write_compacted(small, dataclasses.replace(plan, new=plan.new[::2]))  # then it died
        pd.testing.assert_frame_equal(read(a, exchange, Channel.CANDLES), before)
        report = compact_partition(small, Channel.CANDLES, exchange, SYMBOL, DAY0, margin_s=60)
        assert report.hours == 1 and not report.damaged
    finally:
        small.close()
    pd.testing.assert_frame_equal(read(a, exchange, Channel.CANDLES), before)


@pytest.mark.parametrize("channel", CHANNELS, ids=lambda c: c.value)
def test_a_read_paging_through_an_hour_while_it_is_compacted_returns_every_record(
    stores: tuple[CassandraStore, CassandraStore],
    exchange: str,
    channel: Channel,
    between_pages: Callable[..., list[object]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by review: paging resumes after the last key read, so the compacted chunk, written
    at the hour's first ts, was passed over and the chunks it replaced were gone: the read
    returned 160 of 1,000 records without a word."""
    a, b = stores
    make = MAKERS[channel]
    write_in_pieces(a, channel, [make(exchange, i, 5 * MS) for i in range(1_000)], 5)
    before = read(b, exchange, channel)
    assert len(before) == 1_000 if channel is not Channel.CANDLES else len(before) > 0
    ran = between_pages(lambda: compact_partition(a, channel, exchange, SYMBOL, DAY0, margin_s=60))
    during = read(b, exchange, channel)
    assert ran and ran[0].hours == 1  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(during, before)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(read(b, exchange, channel), before)


def test_a_compactor_that_sees_the_hour_change_while_it_reads_leaves_it(
    stores: tuple[CassandraStore, CassandraStore],
    cql: Session,
    exchange: str,
    between_pages: Callable[..., list[object]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by review: compactor B planned the hour from the part it read before compactor A
    rewrote it, and stored that part again under the same compacted writer: 160 trades read
    twice, for good (the next pass kept them as one writer's distinct rows)."""
    a, b = stores
    channel = Channel.TRADES
    write_in_pieces(a, channel, [trade(exchange, i, 5 * MS) for i in range(1_000)], 5)
    before = read(a, exchange, channel)
    ran = between_pages(
        lambda: compact_partition(a, channel, exchange, SYMBOL, DAY0, margin_s=60),
        reading=", data FROM",  # B's read of the chunks' data, after it listed them
    )
    report = compact_partition(b, channel, exchange, SYMBOL, DAY0, margin_s=60)
    monkeypatch.undo()
    assert ran and ran[0].hours == 1  # type: ignore[attr-defined]
    assert (report.hours, report.changed) == (0, 1)
    pd.testing.assert_frame_equal(read(a, exchange, channel), before)
    again = compact_partition(b, channel, exchange, SYMBOL, DAY0, margin_s=60)
    assert again.changed == 0
    after = read(a, exchange, channel)
    pd.testing.assert_frame_equal(after, before)
    keyspace = a.settings.keyspace
    stored = cql.execute(
        f"SELECT records FROM {keyspace}.trades_chunks WHERE exchange = %s AND symbol = %s "
        "AND ts_day = %s",
        (exchange, SYMBOL, DAY0),
    )
    assert sum(r[0] for r in stored) == 1_000  # no copy left in the table either


def test_a_keyspace_compact_or_migrate_does_not_know_is_an_error_not_created(
    cassandra_url: str, cql: Session
) -> None:
    """Found by review: a mistyped keyspace was created, with every table, and the command
    said 0 partitions and exit 0."""
    typo = f"typo_{secrets.token_hex(4)}"
    url = cassandra_url.rsplit("/", 1)[0] + f"/{typo}"
    for command in ("compact", "migrate"):
        done = subprocess.run(
            [sys.executable, "-m", "hundi", "store", command, "--store", url],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        (line,) = done.stderr.strip().splitlines()
        assert line.endswith(f"/{typo}: no keyspace {typo!r}") and done.stdout == "", line
    names = cql.execute("SELECT keyspace_name FROM system_schema.keyspaces")
    assert typo not in {r[0] for r in names}
