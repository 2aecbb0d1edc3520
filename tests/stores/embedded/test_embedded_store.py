"""The embedded Parquet store: exact round trips, atomic visibility, crash safety, restarts."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from hundi.records import (
    BUY,
    Bbo,
    BookChange,
    Candle,
    Channel,
    Event,
    OrderEvent,
    Record,
    Ticker,
    Trade,
    from_arrow,
)
from hundi.stores.base import StoreError, open_store
from hundi.stores.embedded import EmbeddedStore
from hundi.stores.embedded.layout import TMP_PREFIX, list_parts, part_name, split_live
from hundi.stores.embedded.store import _partitions

T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z
SECOND = 1_000_000_000
HEAD = {"exchange": "binance", "symbol": "BTC-USDT", "native_symbol": "BTCUSDT"}


def trade(i: int, *, ts: int | None = None, symbol: str = "BTC-USDT") -> Trade:
    stamp = T0 + i * 1_000 if ts is None else ts
    return Trade(
        exchange="binance",
        symbol=symbol,
        native_symbol=symbol.replace("-", ""),
        ts=stamp,
        recv_ts=stamp + 7,
        trade_id=i,
        price=60_000.5 + i * 0.01,
        size=0.001 * (i % 7 + 1),
        side=1 if i % 2 else -1,
        first_trade_id=i,
        last_trade_id=i,
    )


def log_disk_full(monkeypatch: pytest.MonkeyPatch, store: EmbeddedStore) -> None:
    """Writes to ``store``'s open log segment fail with ENOSPC from now on (``monkeypatch.undo``
    frees the space): a full disk aimed at one file, which a real tmpfs cannot do."""
    real = os.write

    def full(fd: int, data: Any) -> int:
        if fd == store._segment_fd:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", full)


def one_of_each() -> dict[Channel, list[Record]]:
    return {
        Channel.TRADES: [trade(1), trade(2)],
        Channel.BBO: [
            Bbo(**HEAD, ts=T0, recv_ts=T0 + 1, update_id=9, bid_price=1.5, bid_size=2.0,
                ask_price=1.6, ask_size=3.25),
        ],
        Channel.TICKER: [
            Ticker(**HEAD, ts=T0, recv_ts=T0 + 1, last_price=1.0, last_size=2.0,
                   open_price=0.9, high_price=1.1, low_price=0.8, volume=1e6,
                   quote_volume=1e6, vwap=0.95, price_change=0.1, price_change_pct=11.1,
                   trade_count=123, open_time=T0 - 86_400 * SECOND, close_time=T0,
                   first_trade_id=1, last_trade_id=123),
        ],
        Channel.BOOK: [
            BookChange(**HEAD, ts=T0, recv_ts=T0 + 1, side=1, price=10.0, size=1.0,
                       snapshot=True, first_update_id=-1, update_id=100, prev_update_id=-1),
            BookChange(**HEAD, ts=T0, recv_ts=T0 + 1, side=-1, price=11.0, size=0.0,
                       snapshot=False, first_update_id=101, update_id=102, prev_update_id=100),
        ],
        Channel.BOOK_L3: [  # a snapshot's rows share ts and sequence; a match names two orders
            OrderEvent(**HEAD, ts=T0, recv_ts=T0 + 1, order_id="a-1", side=1, price=10.0,
                       size=1.5, kind="snapshot", sequence=41, other_order_id="", trade_id=-1,
                       reason=""),
            OrderEvent(**HEAD, ts=T0, recv_ts=T0 + 1, order_id="b-2", side=-1, price=11.0,
                       size=2.0, kind="snapshot", sequence=41, other_order_id="", trade_id=-1,
                       reason=""),
            OrderEvent(**HEAD, ts=T0 + 5, recv_ts=T0 + 9, order_id="b-2", side=-1, price=11.0,
                       size=0.5, kind="match", sequence=42, other_order_id="c-3", trade_id=77,
                       reason=""),
            OrderEvent(**HEAD, ts=T0 + 6, recv_ts=T0 + 9, order_id="c-3", side=1, price=0.0,
                       size=0.0, kind="done", sequence=43, other_order_id="", trade_id=-1,
                       reason="filled"),
        ],
        Channel.CANDLES: [
            Candle(**HEAD, ts=T0, recv_ts=T0 + 1, interval="1m", open_time=T0,
                   close_time=T0 + 60 * SECOND - 1, open=1.0, high=2.0, low=0.5, close=1.5,
                   volume=10.0, quote_volume=15.0, taker_buy_volume=4.0, trade_count=7,
                   closed=False),
        ],
        Channel.EVENTS: [
            Event(**HEAD, ts=T0, recv_ts=T0, kind="gap", channel="book", expected=5,
                  received=9, detail="U > last+1"),
        ],
    }  # fmt: skip


def records_of(store: EmbeddedStore, channel: Channel, symbol: str | None = "BTC-USDT") -> list:
    frame = store.read(exchange="binance", symbol=symbol, channel=channel)
    table = pa.Table.from_pandas(frame.reset_index(), preserve_index=False)
    return from_arrow(channel, table)


def test_every_record_type_round_trips_exactly(tmp_path: Path) -> None:
    store = EmbeddedStore(str(tmp_path / "data"))
    batches = one_of_each()
    store.write(batches)
    store.flush()
    for channel, records in batches.items():
        assert records_of(store, channel) == records, channel


def test_read_frame_shape_and_empty_result(tmp_path: Path) -> None:
    store = open_store(f"file:{tmp_path / 'data'}")
    store.write({Channel.TRADES: [trade(2), trade(1)]})
    store.flush()
    frame = store.read(exchange="binance", symbol="BTC-USDT", channel=Channel.TRADES)
    assert frame.index.name == "ts"
    assert str(frame.index.tz) == "UTC"
    assert list(frame["trade_id"]) == [1, 2]  # sorted by ts
    assert frame["symbol"].iloc[0] == "BTC-USDT"
    empty = store.read(exchange="binance", symbol="ETH-USDT", channel=Channel.TRADES)
    assert empty.empty
    assert list(empty.columns) == list(frame.columns)
    assert empty.index.name == "ts"


def test_time_range_symbols_and_day_partitions(tmp_path: Path) -> None:
    store = EmbeddedStore(str(tmp_path))
    day = 86_400 * SECOND
    store.write(
        {
            Channel.TRADES: [
                trade(1, ts=T0 - 1),  # previous UTC day
                trade(2, ts=T0),
                trade(3, ts=T0 + day + 5, symbol="ETH-USDT"),
            ]
        }
    )
    store.flush()
    dates = sorted(p.name for p in tmp_path.glob("exchange=binance/channel=trades/*/*"))
    assert dates == ["date=2024-04-30", "date=2024-05-01", "date=2024-05-02"]
    everything = store.read(exchange="binance", symbol=None, channel=Channel.TRADES)
    assert list(everything["trade_id"]) == [1, 2, 3]
    window = store.read(
        exchange="binance",
        symbol=None,
        channel=Channel.TRADES,
        start=datetime(2024, 5, 1, tzinfo=UTC),
        end=datetime(2024, 5, 2, tzinfo=UTC),
    )
    assert list(window["trade_id"]) == [2]
    naive = store.read(
        exchange="binance", symbol="ETH-USDT", channel=Channel.TRADES, start=datetime(2024, 5, 2)
    )
    assert list(naive["trade_id"]) == [3]


def test_listing_and_reading_by_day(tmp_path: Path) -> None:
    """The widened contract: what is stored, and a day of a few columns at a time."""
    store = EmbeddedStore(str(tmp_path))
    day = 86_400 * SECOND
    late = trade(5, ts=T0 + 10)
    store.write({Channel.TRADES: [trade(1, ts=T0 - 1), late, trade(3, ts=T0 + day + 5)]})
    store.write({Channel.TRADES: [trade(4, ts=T0 + 2, symbol="ETH-USDT")]})
    store.flush()
    store.write({Channel.TRADES: [trade(2, ts=T0 + 1)]})  # a later file, earlier rows
    store.flush()
    (tmp_path / "exchange=binance" / "channel=trades" / "symbol=BTC-USDT" / "date=junk").mkdir()
    assert store.exchanges() == ["binance"]
    assert store.channels("binance") == [Channel.TRADES]
    assert store.symbols("binance", Channel.TRADES) == ["BTC-USDT", "ETH-USDT"]
    assert store.symbols("binance", Channel.BOOK) == [] and store.exchanges() != ["okx"]
    d = [datetime(2024, 4, 30).date(), datetime(2024, 5, 1).date(), datetime(2024, 5, 2).date()]
    assert store.days("binance", Channel.TRADES, "ETH-USDT") == [d[1]]
    assert store.days("binance", Channel.TRADES) == d

    def ids(**query: Any) -> list[tuple[Any, list[int]]]:
        return [
            (stored, table.column("trade_id").to_pylist())
            for stored, table in store.read_days(
                exchange="binance", channel=Channel.TRADES, **query
            )
        ]

    assert ids(symbol=None) == [(d[0], [1]), (d[1], [2, 4, 5]), (d[2], [3])]
    assert ids(symbol="BTC-USDT", start_ns=T0, end_ns=T0 + day) == [(d[1], [2, 5])]
    assert ids(symbol=None, start_ns=T0 + 2, end_ns=T0 + 3) == [(d[1], [4])]
    assert ids(symbol="SOL-USDT") == []
    unordered = ids(symbol=None, start_ns=T0, end_ns=T0 + day, ordered=False)
    assert sorted(unordered[0][1]) == [2, 4, 5]
    (_, table), *_ = store.read_days(
        exchange="binance", symbol=None, channel=Channel.TRADES, columns=["price", "symbol"]
    )
    assert table.column_names == ["price", "symbol"] and table.column("symbol").type == pa.string()
    # concatenated, the days are the read
    whole = store.read(exchange="binance", symbol=None, channel=Channel.TRADES)
    days = [t for _, t in store.read_days(exchange="binance", symbol=None, channel=Channel.TRADES)]
    assert pa.concat_tables(days).to_pandas().set_index("ts").equals(whole)


def scan_files_vanishing_once(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The store's file scan raises FileNotFoundError on its first call, as when a compaction
    deletes a listed file before it is read; the calls made are counted in the list returned."""
    import hundi.stores.embedded.store as module

    real, calls = module.scan_files, []

    def vanishing(*args: Any) -> pa.Table:
        calls.append(1)
        if len(calls) == 1:
            raise FileNotFoundError("compacted meanwhile")
        return real(*args)

    monkeypatch.setattr(module, "scan_files", vanishing)
    return calls


def test_a_file_compacted_away_mid_read_is_listed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hundi.stores.embedded.store as module

    store = EmbeddedStore(str(tmp_path), part_bytes=0)  # a part at every flush: a file to scan
    store.write({Channel.TRADES: [trade(1), trade(2)]})
    store.flush()
    calls = scan_files_vanishing_once(monkeypatch)
    (_, table), *_ = store.read_days(exchange="binance", symbol=None, channel=Channel.TRADES)
    assert table.column("trade_id").to_pylist() == [1, 2] and len(calls) == 2
    monkeypatch.setattr(module, "scan_files", lambda *_: (_ for _ in ()).throw(FileNotFoundError()))
    with pytest.raises(StoreError, match="changed too fast"):
        list(store.read_days(exchange="binance", symbol=None, channel=Channel.TRADES))
    position = store.last_position
    with pytest.raises(StoreError, match="changed too fast"):
        position("binance", "BTC-USDT", Channel.TRADES, T0 + 1_500)  # inside the part: read
    monkeypatch.setattr(
        module, "_footer_maxima", lambda *_: (_ for _ in ()).throw(FileNotFoundError())
    )
    with pytest.raises(StoreError, match="changed too fast"):
        position("binance", "BTC-USDT", Channel.TRADES, T0 + 10**6 * SECOND)  # footers only


def test_last_position_from_footers_equals_the_one_from_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart's look-up answers from the parts' footers (and the log's rows) when every part
    ends before the asked time, and gives what reading the rows gives; otherwise it reads."""
    import hundi.stores.embedded.store as module

    store = EmbeddedStore(str(tmp_path), part_bytes=0)
    store.write({Channel.TRADES: [trade(5), trade(3), trade(9)]})
    store.flush()  # a part
    store.part_bytes = 1 << 30
    store.write({Channel.TRADES: [trade(4)]})
    store.flush()  # in the log only
    reads: list[int] = []
    real = module.scan_files

    def counted(*args: Any) -> pa.Table:
        reads.append(1)
        return real(*args)

    monkeypatch.setattr(module, "scan_files", counted)
    footer_maxima = module._footer_maxima
    late = T0 + 10**6 * SECOND
    from_footers = store.last_position("binance", "BTC-USDT", Channel.TRADES, late)
    assert not reads  # no part read
    monkeypatch.setattr(module, "_footer_maxima", lambda *_: None)  # footers that cannot tell
    from_rows = store.last_position("binance", "BTC-USDT", Channel.TRADES, late)
    assert reads and from_footers == from_rows
    assert from_rows is not None and from_rows.last_id == 9
    # asked inside the part's span: the rows are read, and only those before count
    monkeypatch.setattr(module, "_footer_maxima", footer_maxima)
    reads.clear()
    inside = store.last_position("binance", "BTC-USDT", Channel.TRADES, T0 + 5_000)
    assert reads and inside is not None and (inside.ts, inside.last_id) == (T0 + 4_000, 4)


def test_a_day_read_with_its_version_and_only_what_was_stored_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``day_version`` changes with every flush and compaction; ``read_day`` gives the rows of
    exactly one version; ``read_day_since`` the rows added after a read, counting those a
    compaction merged in that were read before."""

    store = EmbeddedStore(str(tmp_path), part_bytes=0, compact_fanout=2, grace_s=0)
    day = datetime(2024, 5, 1, tzinfo=UTC).date()
    store.write({Channel.TRADES: [trade(1), trade(2)]})
    store.flush()
    version = store.day_version("binance", Channel.TRADES, "BTC-USDT", day)
    first = store.read_day("binance", Channel.TRADES, "BTC-USDT", day, columns=["trade_id"])
    assert first.version == version and first.table.column_names == ["trade_id"]
    assert sorted(first.table.column("trade_id").to_pylist()) == [1, 2]
    nothing = store.read_day_since("binance", Channel.TRADES, "BTC-USDT", day, first.manifest)
    assert nothing is not None and nothing.table.num_rows == 0 and nothing.version == version
    store.write({Channel.TRADES: [trade(3)]})
    store.flush()  # fanout 2: merged with the file read before
    assert len(split_live(list_parts(next(tmp_path.rglob("date=2024-05-01"))))[0]) == 1
    since = store.read_day_since(
        "binance", Channel.TRADES, "BTC-USDT", day, first.manifest, columns=["trade_id"]
    )
    assert since is not None and since.version != version
    assert since.version == store.day_version("binance", Channel.TRADES, "BTC-USDT", day)
    assert sorted(since.table.column("trade_id").to_pylist()) == [1, 2, 3]
    assert since.repeated == 2
    again = store.read_day_since("binance", Channel.TRADES, "BTC-USDT", day, since.manifest)
    assert again is not None and again.table.num_rows == 0 and again.repeated == 0
    # rows read before that are gone: not told apart, read the day again
    gone = json.dumps([[part_name("20240101T000000-abcdef", 1, 1, 0), 1, 1]])
    assert store.read_day_since("binance", Channel.TRADES, "BTC-USDT", day, gone) is None
    assert store.read_day_since("binance", Channel.TRADES, "BTC-USDT", day, "junk") is None
    # a file compacted away between listing and reading: listed again, in the store
    calls = scan_files_vanishing_once(monkeypatch)
    assert store.read_day("binance", Channel.TRADES, "BTC-USDT", day).table.num_rows == 3
    assert len(calls) == 2
    store.close()


def test_equal_timestamps_keep_write_order(tmp_path: Path) -> None:
    store = EmbeddedStore(str(tmp_path), part_bytes=0, compact_fanout=2)
    written = [trade(i, ts=T0) for i in range(10)]
    for record in written:
        store.write({Channel.TRADES: [record]})
        store.flush()
    assert max(p.level for d in tmp_path.glob("exchange=*/*/*/date=*") for p in list_parts(d)) > 0
    assert records_of(store, Channel.TRADES) == written  # through compactions
    store.write({Channel.TRADES: [trade(10, ts=T0)]})
    store.part_bytes = 1 << 40
    store.flush()  # in the log: after the parts
    assert records_of(store, Channel.TRADES) == [*written, trade(10, ts=T0)]


def test_compaction_merges_without_duplicates_and_deletes_after_grace(tmp_path: Path) -> None:
    store = EmbeddedStore(str(tmp_path), part_bytes=0, compact_fanout=4, grace_s=0.0)
    written = []
    for i in range(37):
        written.append(trade(i))
        store.write({Channel.TRADES: [written[-1]]})
        store.flush()
    (partition,) = tmp_path.glob("exchange=binance/channel=trades/symbol=BTC-USDT/date=*")
    live, superseded = split_live(list_parts(partition))
    assert superseded == []  # grace 0: deleted at the flush that compacted
    assert sorted(p.level for p in live) == [0, 1, 2, 2]  # 37 = 2*16 + 1*4 + 1
    assert records_of(store, Channel.TRADES) == written


def test_superseded_inputs_are_invisible_during_grace(tmp_path: Path) -> None:
    store = EmbeddedStore(str(tmp_path), part_bytes=0, compact_fanout=3, grace_s=3600)
    written = [trade(i) for i in range(7)]
    for record in written:
        store.write({Channel.TRADES: [record]})
        store.flush()
    files = list(tmp_path.rglob("*.parquet"))
    assert len(files) == 7 + 2  # every part is still on disk next to the two L1 files
    assert records_of(store, Channel.TRADES) == written


def test_restart_appends_without_name_collisions(tmp_path: Path) -> None:
    first = EmbeddedStore(str(tmp_path))
    first.write({Channel.TRADES: [trade(1)]})
    first.close()
    second = EmbeddedStore(str(tmp_path))
    assert second.run_id != first.run_id
    second.write({Channel.TRADES: [trade(2)]})
    second.close()
    assert [r.trade_id for r in records_of(second, Channel.TRADES)] == [1, 2]


def test_unwritable_paths_fail_at_open(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    with pytest.raises(StoreError, match="not writable"):
        EmbeddedStore(str(blocker))
    with pytest.raises(StoreError, match="not writable"):
        EmbeddedStore(str(blocker / "data"))
    with pytest.raises(StoreError, match="not writable"):
        EmbeddedStore("/proc/self/hundi-data")  # procfs refuses new entries, even for root


def test_temp_files_are_never_read(tmp_path: Path) -> None:
    store = EmbeddedStore(str(tmp_path))
    store.write({Channel.TRADES: [trade(1)]})
    store.flush()
    (partition,) = tmp_path.glob("exchange=binance/channel=trades/symbol=*/date=*")
    (partition / ".tmp-half-written.parquet.tmp").write_bytes(b"PAR1 garbage")
    (partition / "notes.txt").write_text("stray")
    assert [r.trade_id for r in records_of(store, Channel.TRADES)] == [1]


_WRITER = textwrap.dedent(
    """
    import sys
    from hundi.records import Channel, Trade
    from hundi.stores.embedded import EmbeddedStore

    root, fanout = sys.argv[1], int(sys.argv[2])
    # a part at every flush: readers and kill -9 race parting and compaction all the time
    store = EmbeddedStore(root, part_bytes=0, compact_fanout=fanout, grace_s=0.2)
    T0 = 1_714_521_600_000_000_000
    i = 0
    while True:
        batch = [
            Trade(exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT",
                  ts=T0 + (i + k) * 1000, recv_ts=T0 + (i + k) * 1000, trade_id=i + k,
                  price=1.0, size=1.0, side=1, first_trade_id=i + k, last_trade_id=i + k)
            for k in range(50)
        ]
        store.write({Channel.TRADES: batch})
        store.flush()
        i += 50
        print(i, flush=True)
    """
)


def _start_writer(root: Path, fanout: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(root), str(fanout)],
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_kill_9_mid_run_leaves_a_clean_store_with_everything_flushed(tmp_path: Path) -> None:
    writer = _start_writer(tmp_path, 3)
    assert writer.stdout is not None
    flushed = 0
    while flushed < 3000:
        flushed = int(writer.stdout.readline())
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    frame = EmbeddedStore(str(tmp_path)).read(
        exchange="binance", symbol="BTC-USDT", channel=Channel.TRADES
    )
    ids = list(frame["trade_id"])
    assert ids == list(range(len(ids)))  # no duplicates, no holes
    assert len(ids) >= flushed


@pytest.mark.slow
def test_concurrent_reader_never_errors_or_sees_duplicates(tmp_path: Path) -> None:
    writer = _start_writer(tmp_path, 3)
    assert writer.stdout is not None
    try:
        writer.stdout.readline()
        reader = EmbeddedStore(str(tmp_path))
        seen = 0
        deadline = time.monotonic() + 3.0
        reads = 0
        while time.monotonic() < deadline:
            frame = reader.read(exchange="binance", symbol="BTC-USDT", channel=Channel.TRADES)
            ids = list(frame["trade_id"])
            assert ids == list(range(len(ids)))
            assert len(ids) >= seen
            seen = len(ids)
            reads += 1
        assert seen > 0
        assert reads > 3
    finally:
        writer.kill()
        writer.wait()


def test_failed_parting_publishes_nothing_keeps_everything_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A disk that fills while parts are written from the log (ENOSPC injected at the second
    file): the flush still succeeds (its rows are durable in the log and read from there), no
    temp file stays, one warning says so, and the next flush writes the parts."""
    store = EmbeddedStore(str(tmp_path), part_bytes=0)
    store.write({Channel.TRADES: [trade(1), trade(2, symbol="ETH-USDT")]})
    real_open = Path.open
    calls = 0

    class FullDisk:
        """The part's temp file on a disk that fills halfway through writing it."""

        def __init__(self, file: Any) -> None:
            self.file = file

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, data: Any) -> int:
            self.file.write(bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def second_part_hits_a_full_disk(path: Path, mode: str = "r", *args: Any, **kw: Any) -> Any:
        nonlocal calls
        file = real_open(path, mode, *args, **kw)
        if path.name.startswith(TMP_PREFIX) and "w" in mode:
            calls += 1
            if calls == 2:
                return FullDisk(file)
        return file

    monkeypatch.setattr(Path, "open", second_part_hits_a_full_disk)
    with caplog.at_level("WARNING", logger="hundi.stores"):
        store.flush()
        store.write({Channel.TRADES: [trade(3)]})
        store.flush()  # still failing? no: only the second file failed; retried here
    assert sum("parts from the log failed" in r.getMessage() for r in caplog.records) == 1
    assert not list(tmp_path.rglob(".tmp-*"))
    assert [r.trade_id for r in records_of(store, Channel.TRADES)] == [1, 3]
    assert [r.trade_id for r in records_of(store, Channel.TRADES, "ETH-USDT")] == [2]
    assert not list((tmp_path / ".wal").iterdir())  # all parted, the log retired
    folders = tmp_path.glob("exchange=*/channel=*/symbol=*/date=*")
    parts = [part for folder in folders for part in list_parts(folder)]
    assert len(parts) == 3  # BTC flush 1, ETH flush 1, BTC flush 2: each row once

    store.write({Channel.TRADES: [trade(4)]})
    store.discard()  # given up on: a later flush must not store it after all
    store.flush()
    assert [r.trade_id for r in records_of(store, Channel.TRADES)] == [1, 3]


def test_day_stats_from_footers_match_the_rows(tmp_path: Path) -> None:
    """``day_stats`` (what ``hundi ls`` counts with) agrees with a read across flushes and
    compactions, counting no superseded file, and is None for a day with nothing stored."""
    store = EmbeddedStore(str(tmp_path), part_bytes=0, compact_fanout=2, grace_s=3600, fsync=False)
    for i in range(7):
        store.write({Channel.TRADES: [trade(i * 10 + j) for j in range(10)]})
        store.flush()
    store.close()
    reader = EmbeddedStore(str(tmp_path), read_only=True)
    (day,) = reader.days("binance", Channel.TRADES, "BTC-USDT")
    (partition,) = tmp_path.glob("exchange=binance/channel=trades/symbol=BTC-USDT/date=*")
    assert split_live(list_parts(partition))[1], "no superseded file: nothing was compacted"
    stats = reader.day_stats("binance", Channel.TRADES, "BTC-USDT", day)
    rows = reader.read(exchange="binance", symbol="BTC-USDT", channel=Channel.TRADES)
    assert stats is not None
    assert (stats.rows, stats.first_ns, stats.last_ns) == (
        70, rows.index[0].value, rows.index[-1].value
    )  # fmt: skip
    assert stats.native_symbols == ("BTCUSDT",)
    assert reader.day_stats("binance", Channel.TRADES, "ETH-USDT", day) is None


def test_a_flush_splits_by_exchange_symbol_and_day_keeping_arrival_order() -> None:
    """Interleaved records of 2 exchanges x 2 symbols over a midnight: one table per
    (exchange, symbol, UTC day), each holding exactly its records in arrival order."""
    midnight = 1_700_006_400 * 10**9  # 2023-11-15 00:00 UTC
    records = [
        Trade(
            exchange=("binance", "okx")[i % 2], symbol=("BTC-USDT", "ETH-USDT")[i // 2 % 2],
            native_symbol="x", ts=midnight + (i - 50) * 10**9, recv_ts=i, trade_id=i,
            price=1.0, size=1.0, side=BUY, first_trade_id=i, last_trade_id=i,
        )
        for i in range(100)
    ]  # fmt: skip
    found = {
        (key[0], key[2], str(key[3])): table.column("trade_id").to_pylist()
        for key, table in _partitions(Channel.TRADES, records)
    }
    expected: dict[tuple[str, str, str], list[int]] = {}
    for r in records:
        day = "2023-11-14" if r.ts < midnight else "2023-11-15"
        expected.setdefault((r.exchange, r.symbol, day), []).append(r.trade_id)
    assert found == expected
    assert len(found) == 8


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("file://mystore", "'mystore' is a host in a file:// URL; a folder is file:mystore"),
        ("", "no folder given"),
        ("file:", "no folder given"),
        ("file:{root}?part_age_s=abc", "option part_age_s: could not convert"),
        ("file:{root}?part_age_s=nan", "option part_age_s: 'nan' is not a finite number"),
        ("file:{root}?part_bytes=1e6", "option part_bytes: invalid literal"),
        ("file:{root}?compact_fanout=1", "option compact_fanout: '1' is below 2"),
        ("file:{root}?fsync=maybe", "option fsync: 'maybe' is not one of"),
        ("file:{root}?part_age=60", "unknown option(s) part_age; known: part_bytes, part_age_s"),
        ("{root}/exchange=binance/channel=trades", "is a folder inside the store at '{root}'"),
    ],
)
def test_a_bad_store_url_is_one_error_not_another_folder_or_a_traceback(
    tmp_path: Path, url: str, says: str
) -> None:
    """``file://mystore`` once wrote into the current directory, a bad option value was a
    traceback and an unknown one was ignored."""
    from click.testing import CliRunner

    from hundi.cli import main
    from hundi.stores.embedded import check

    url, says = url.format(root=tmp_path), says.format(root=tmp_path)
    with pytest.raises(StoreError, match=re.escape(says)):
        EmbeddedStore(url)
    listed = CliRunner().invoke(main, ["ls", url])
    assert listed.exit_code == 2 and says in listed.output, listed.output
    checked = CliRunner().invoke(check.store, ["check", url])
    assert checked.exit_code == 2 and says in checked.output, checked.output
    assert list(tmp_path.iterdir()) == []  # nothing created anywhere


def test_good_store_options_still_parse(tmp_path: Path) -> None:
    store = EmbeddedStore(f"file://{tmp_path}?part_bytes=0&part_age_s=7&fsync=off", grace_s=1)
    assert (store.part_bytes, store.part_age_s, store.fsync, store.grace_s) == (0, 7.0, False, 1.0)
    store.close()
    assert EmbeddedStore(f"file://localhost{tmp_path}", read_only=True).root == tmp_path
