"""Damaged part files of the embedded store: detected, quarantined once, the rest still readable.

Real stores in tmp dirs, damaged the way disks and people damage them: truncated, emptied,
overwritten in the middle, replaced by a non-Parquet file, a file of another channel copied in.
"""

from __future__ import annotations

import errno
import logging
import os
import pty
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_embedded_store import T0, log_disk_full, trade

import hundi
from disks import KIB, fill
from hundi.records import Bbo, Channel
from hundi.stores.base import StoreError
from hundi.stores.embedded import EmbeddedStore, wal
from hundi.stores.embedded.check import check_store
from hundi.stores.embedded.layout import list_parts, parse_part, partition_dirs, split_live

HUNDI = Path(sys.executable).with_name("hundi")


def bbo(i: int) -> Bbo:
    stamp = T0 + i * 1_000
    return Bbo(
        exchange="binance",
        symbol="BTC-USDT",
        native_symbol="BTCUSDT",
        ts=stamp,
        recv_ts=stamp + 1,
        update_id=i,
        bid_price=1.5,
        bid_size=2.0,
        ask_price=1.6,
        ask_size=3.0,
    )


def three_trade_parts(root: Path) -> list[Path]:
    """A store with three flushes of trades (100 rows each): the three part files."""
    store = EmbeddedStore(str(root), part_bytes=0)
    for flush in range(3):
        store.write({Channel.TRADES: [trade(flush * 100 + i) for i in range(100)]})
        store.flush()
    store.write({Channel.BBO: [bbo(i) for i in range(10)]})
    store.close()
    (partition,) = root.glob("exchange=binance/channel=trades/symbol=BTC-USDT/date=*")
    return sorted(p.path for p in list_parts(partition))


def trade_ids(root: Path) -> list[int]:
    frame = EmbeddedStore(str(root), read_only=True).read(
        exchange="binance", symbol="BTC-USDT", channel=Channel.TRADES
    )
    return sorted(int(i) for i in frame["trade_id"])


def damage_middle(path: Path) -> None:
    """Garbage (4 KiB, a quarter of a small file) in the middle, its size and footer intact."""
    data = bytearray(path.read_bytes())
    size = min(4096, len(data) // 4)
    middle = len(data) // 2 - size // 2
    data[middle : middle + size] = os.urandom(size)
    path.write_bytes(bytes(data))


def damage_truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def damage_empty(path: Path) -> None:
    os.truncate(path, 0)


def damage_not_parquet(path: Path) -> None:
    path.write_text("this is not a parquet file\n" * 100)


def damage_footer(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-12:-4] = b"\xff" * 8  # footer length and the end of the footer
    path.write_bytes(bytes(data))


DAMAGES = {
    "middle": damage_middle,
    "truncated": damage_truncate,
    "empty": damage_empty,
    "not_parquet": damage_not_parquet,
    "bad_footer": damage_footer,
}


@pytest.mark.parametrize("how", sorted(DAMAGES))
def test_a_damaged_part_is_quarantined_and_the_rest_stays_readable(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    parts = three_trade_parts(root)
    victim = parts[1]
    DAMAGES[how](victim)
    with caplog.at_level(logging.WARNING, logger="hundi.stores"):
        assert trade_ids(root) == list(range(100)) + list(range(200, 300))
        assert trade_ids(root) == list(range(100)) + list(range(200, 300))
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert victim.name in warnings[0]
    assert not victim.exists()
    moved = root / ".quarantine" / victim.relative_to(root)
    assert moved.is_file()


def test_a_file_of_another_channel_copied_in_is_quarantined(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    parts = three_trade_parts(root)
    (bbo_dir,) = root.glob("exchange=binance/channel=bbo/symbol=BTC-USDT/date=*")
    # A trades file (its own name) in the bbo folder: it must not read as rows of NaN bbo values.
    stray = bbo_dir / parts[0].name
    shutil.copy(parts[0], stray)
    with caplog.at_level(logging.WARNING, logger="hundi.stores"):
        frame = EmbeddedStore(str(root), read_only=True).read(
            exchange="binance", symbol="BTC-USDT", channel=Channel.BBO
        )
    assert len(frame) == 10
    assert not frame["bid_price"].isna().any()
    assert any(stray.name in r.getMessage() and "schema" in r.getMessage() for r in caplog.records)
    assert not stray.exists()


def test_research_listing_skips_damaged_parts(tmp_path: Path) -> None:
    root = tmp_path / "data"
    parts = three_trade_parts(root)
    damage_middle(parts[2])
    live, _ = split_live(list_parts(parts[2].parent))
    assert [p.path for p in live] == parts[:2]


def test_parts_carry_a_checksum_in_their_name(tmp_path: Path) -> None:
    parts = three_trade_parts(tmp_path / "data")
    for path in parts:
        part = parse_part(path)
        assert part is not None and part.crc is not None


def test_parts_written_before_checksums_are_still_read(tmp_path: Path) -> None:
    root = tmp_path / "data"
    parts = three_trade_parts(root)
    for path in parts:  # the names older versions wrote: no checksum
        part = parse_part(path)
        assert part is not None
        path.rename(path.with_name(path.name.rsplit("-", 1)[0] + ".parquet"))
    assert trade_ids(root) == list(range(300))


def test_superseded_files_do_not_outlive_the_grace_period_across_restarts(tmp_path: Path) -> None:
    root = tmp_path / "data"
    store = EmbeddedStore(str(root), part_bytes=0, compact_fanout=2, grace_s=3600)
    for i in range(4):
        store.write({Channel.TRADES: [trade(i)]})
        store.flush()
    store.close()
    (partition,) = root.glob("exchange=binance/channel=trades/symbol=BTC-USDT/date=*")
    _, superseded = split_live(list_parts(partition))
    assert len(superseded) == 6  # within the grace period: kept
    long_ago = time.time() - 2 * 3600
    for path in partition.iterdir():
        os.utime(path, (long_ago, long_ago))
    EmbeddedStore(str(root), grace_s=3600).close()  # a restart that writes nothing
    live, superseded = split_live(list_parts(partition))
    assert superseded == []
    assert len(live) == 1
    # so a plain reader of the folder sees every row once
    table = pq.read_table(partition)
    assert sorted(table.column("trade_id").to_pylist()) == [0, 1, 2, 3]


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HUNDI), "store", "check", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_store_check_reports_and_repairs(tmp_path: Path) -> None:
    root = tmp_path / "data"
    store = EmbeddedStore(str(root), part_bytes=0, compact_fanout=2, grace_s=3600)
    for i in range(3):
        store.write({Channel.TRADES: [trade(i)]})
        store.flush()
    store.close()
    (partition,) = root.glob("exchange=binance/channel=trades/symbol=BTC-USDT/date=*")
    live, superseded = split_live(list_parts(partition), verify=False)
    damage_middle(live[-1].path)
    stale = partition / ".tmp-stale.parquet.tmp"
    stale.write_bytes(b"half")
    long_ago = time.time() - 3600
    os.utime(stale, (long_ago, long_ago))

    clean = run_check(str(tmp_path / "nothing-here"))
    assert clean.returncode == 2
    assert len(clean.stderr.strip().splitlines()) == 1, clean.stderr
    assert "Traceback" not in clean.stderr

    found = run_check(str(root))
    assert found.returncode == 1, found.stdout + found.stderr
    lines = found.stdout.strip().splitlines()
    assert sum("damaged" in line for line in lines) == 1
    assert sum("superseded" in line for line in lines) == len(superseded) == 2
    assert sum("temp" in line for line in lines) == 1
    assert live[-1].path.name in found.stdout

    repaired = run_check(str(root), "--repair")
    assert repaired.returncode == 1
    assert (root / ".quarantine" / live[-1].path.relative_to(root)).is_file()
    assert not stale.exists()
    assert all(not p.path.exists() for p in superseded)

    # the quarantined part's rows are not read: a problem until someone looks at it
    held = run_check(str(root))
    assert held.returncode == 1, held.stdout + held.stderr
    (line, summary) = held.stdout.strip().splitlines()
    assert line.startswith(f"quarantined: {root / '.quarantine'}") and live[-1].path.name in line
    assert summary.startswith("1 problem(s) found; 1 quarantined file(s) to review")
    assert trade_ids(root) == [0, 1]
    shutil.rmtree(root / ".quarantine")  # looked at, accounted for
    again = run_check(str(root))
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.startswith("clean: ")


def test_compaction_merges_the_rest_when_an_input_was_quarantined(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    store = EmbeddedStore(str(root), part_bytes=0, compact_fanout=3, grace_s=0)
    for i in range(2):
        store.write({Channel.TRADES: [trade(i)]})
        store.flush()
    (partition,) = root.glob("exchange=binance/channel=trades/symbol=BTC-USDT/date=*")
    first = min(p.path for p in list_parts(partition))
    damage_empty(first)
    assert trade_ids(root) == [1]  # a reader quarantined it
    with caplog.at_level(logging.WARNING, logger="hundi.stores"):
        store.write({Channel.TRADES: [trade(2)]})
        store.flush()  # compacts the two parts left
        store.write({Channel.TRADES: [trade(3)]})
        store.flush()
    assert not [r for r in caplog.records if "compacting" in r.getMessage()]
    assert sorted(p.level for p in list_parts(partition)) == [0, 1]
    assert trade_ids(root) == [1, 2, 3]


@pytest.mark.slow
def test_store_check_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    root = tmp_path / "data"
    three_trade_parts(root)  # two partitions: trades and bbo
    piped = run_check(str(root))
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr  # quiet in logs and pipes
    main, sub = pty.openpty()
    try:
        with subprocess.Popen(
            [str(HUNDI), "store", "check", str(root)], stdout=subprocess.PIPE, stderr=sub
        ) as child:
            os.close(sub)
            shown = b""
            while True:
                try:
                    chunk = os.read(main, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            assert child.wait(timeout=120) == 0
            assert child.stdout is not None
            out = child.stdout.read().decode()
    finally:
        os.close(main)
    assert b"checking partitions" in shown and b"2/2" in shown, shown
    assert out.startswith("clean: "), out  # the result itself stays on stdout


def test_check_repair_keeps_the_inputs_of_a_damaged_compaction(tmp_path: Path) -> None:
    """A damaged compacted file does not supersede its inputs: ``--repair`` quarantines it and
    keeps them (it once deleted them as superseded in the same pass: every row gone)."""
    store = EmbeddedStore(str(tmp_path), part_bytes=0, compact_fanout=2, grace_s=3600)
    for flush in range(2):
        store.write({Channel.TRADES: [trade(flush * 10 + i) for i in range(10)]})
        store.flush()  # one level-0 part per flush; the second flush compacts them
    store.close()  # within the grace period: the two inputs stay on disk
    (partition,) = partition_dirs(tmp_path)
    live, superseded = split_live(list_parts(partition), verify=False)
    assert [p.level for p in live] == [1] and len(superseded) == 2
    damage_middle(live[0].path)

    lines, _, checked = check_store(tmp_path, repair=True)
    assert sum(line.startswith("damaged:") for line in lines) == 1, lines
    assert not any(line.startswith("superseded:") for line in lines), lines
    assert checked == 3  # the compacted file, then its two inputs, live again
    assert all(p.path.exists() for p in superseded)
    assert trade_ids(tmp_path) == list(range(20))


@pytest.mark.slow
def test_check_repair_says_quarantined_only_when_the_damaged_log_bytes_were_kept(
    tmpfs: Callable[[str, str], Path],
) -> None:
    """A damaged log entry on a disk too full to copy it: the segment stays, check says it
    could not be parted and exits 1 (it once said "quarantined" and deleted the log); once
    space returns, the next repair keeps the whole entry."""
    root = tmpfs("disk", "20m") / "data"
    store = EmbeddedStore(str(root), part_bytes=1 << 40, part_age_s=1 << 40)
    store.write({Channel.TRADES: [trade(i) for i in range(10)]})
    store.flush()
    store.write({Channel.TRADES: [trade(10 + i) for i in range(40_000)]})
    store.flush()  # acknowledged: durable in the log
    store.write({Channel.TRADES: [trade(50_000 + i) for i in range(10)]})
    store.flush()
    (segment,) = wal.segments(root)
    assert store._segment_fd is not None
    os.close(store._segment_fd)  # kill -9: the lock goes, the log stays
    store._segment_fd = None
    entries, _ = wal.scan(segment)
    middle = entries[1]
    with segment.open("r+b") as f:  # one rotten byte in the big entry's payload
        f.seek(middle.offset + middle.length // 2)
        byte = f.read(1)
        f.seek(middle.offset + middle.length // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    ballast = fill(root.parent, leave_bytes=512 * KIB)  # room for small parts, not the entry

    full = run_check(str(root), "--repair")
    assert full.returncode == 1, full.stdout + full.stderr
    damaged = [line for line in full.stdout.splitlines() if line.startswith("damaged entry:")]
    assert damaged and damaged[0].endswith("could not be parted (see the warning above)"), damaged
    assert wal.segments(root) == [segment]
    assert not [p for p in (root / ".quarantine").rglob("*") if p.is_file()]  # no torn copy

    ballast.unlink()
    repaired = run_check(str(root), "--repair")
    assert repaired.returncode == 1, repaired.stdout + repaired.stderr  # it did find damage
    assert "-> quarantined" in repaired.stdout
    assert wal.segments(root) == []
    (kept,) = (root / ".quarantine" / ".wal").glob("*.bad")
    assert kept.stat().st_size >= middle.length
    assert trade_ids(root) == [*range(10), *range(50_000, 50_010)]


@pytest.mark.slow
def test_a_part_a_reader_may_not_read_is_an_error_not_damage(tmp_path: Path) -> None:
    """A user without read permission on a part gets one error line and exit 2; the part stays
    where it is (it was once moved to quarantine as damaged: every later read lost its rows
    and ``store check`` said clean)."""
    part = three_trade_parts(tmp_path)[0]
    part.chmod(0)
    try:
        query = subprocess.run(
            [
                "setpriv", "--bounding-set=-dac_override,-dac_read_search", "--",
                str(HUNDI), "query", "--store", str(tmp_path), "--exchange", "binance",
                "--symbol", "BTC-USDT", "--format", "csv",
            ],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        part.chmod(0o644)
    assert query.returncode == 2, query.stdout + query.stderr
    assert query.stderr.count("\n") == 1 and "Permission denied" in query.stderr, query.stderr
    assert part.exists() and not (tmp_path / ".quarantine").exists()
    assert trade_ids(tmp_path) == list(range(300))
    part.chmod(0)
    try:  # nor does check --repair take it for damage (found by a second review)
        check = subprocess.run(
            ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--",
             str(HUNDI), "store", "check", "--repair", str(tmp_path)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        part.chmod(0o644)
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"unreadable: {part}: Permission denied -> could not be checked" in check.stdout
    assert part.exists() and not (tmp_path / ".quarantine").exists()
    assert trade_ids(tmp_path) == list(range(300))


def test_a_quarantined_part_leaves_a_stored_gap_event(tmp_path: Path) -> None:
    """Every hole in the stored data is a stored event: a part a reader quarantined (its rows
    no longer read) is described by a gap event the next writer stores, once, with its rows,
    time range and trade ids from the footer; coverage shows the hole (found by review: the
    rows vanished with a warning only and check said clean)."""
    parts = three_trade_parts(tmp_path)
    data = bytearray(parts[1].read_bytes())  # trades 100..199: a rotten byte in a data page,
    data[64] ^= 0xFF  # the footer still readable
    parts[1].write_bytes(data)
    damage_middle(parts[2])  # trades 200..299, the footer gone too
    assert trade_ids(tmp_path) == list(range(100))  # the reader quarantined both
    EmbeddedStore(str(tmp_path)).close()  # a collector's start (or stop) reports them
    EmbeddedStore(str(tmp_path)).close()  # once
    events = hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT", channel="events")
    second, first = events.itertuples()  # in time order: the day's start, then trade 100
    assert (first.kind, first.channel, first.expected, first.received) == (
        "gap", "trades", 100, 200,
    )  # fmt: skip
    assert first.detail.startswith(f"100 rows of part {parts[1].name} held in quarantine")
    assert first.Index == pd.Timestamp(T0 + 100 * 1_000, tz="UTC")  # its first trade
    # no footer: the day it held, no ids (never counted as covered)
    assert (second.kind, second.expected, second.received) == ("gap", -1, -1)
    assert second.detail.startswith(f"its rows of part {parts[2].name} held in quarantine")
    assert second.Index == pd.Timestamp(T0 - T0 % 86_400_000_000_000, tz="UTC")
    ranges = hundi.coverage(tmp_path, "binance", symbol="BTC-USDT", channel="trades")
    assert "gap" in ranges["ended_by"].tolist()
    held = run_check(str(tmp_path))
    assert held.returncode == 1
    assert "a gap event in the store describes it" in held.stdout, held.stdout


def test_no_gap_is_stored_for_a_quarantined_file_whose_rows_are_still_read(
    tmp_path: Path,
) -> None:
    """A damaged compacted file whose inputs are live again lost nothing: no gap event, no
    hole in coverage (found by a second review: one was stored)."""
    EmbeddedStore(str(tmp_path)).close()
    store = EmbeddedStore(str(tmp_path), part_bytes=0, compact_fanout=2, grace_s=3600)
    for flush in range(2):  # two flushes compacted into one level-1 file
        store.write({Channel.TRADES: [trade(flush * 10 + i) for i in range(10)]})
        store.flush()
    store.close()  # within the grace period: both inputs stay on disk
    (partition,) = partition_dirs(tmp_path)
    (compacted,) = [p for p in list_parts(partition) if p.level == 1]
    data = bytearray(compacted.path.read_bytes())
    data[64] ^= 0xFF
    compacted.path.write_bytes(data)
    assert trade_ids(tmp_path) == list(range(20))  # quarantined; its inputs read
    EmbeddedStore(str(tmp_path)).close()  # the next collector start
    assert trade_ids(tmp_path) == list(range(20))
    with pytest.raises(hundi.query.NotStored):  # no events at all
        hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT", channel="events")
    held = run_check(str(tmp_path))
    assert held.returncode == 1 and "gap event" not in held.stdout  # still for review


def test_a_quarantined_part_s_gap_is_stored_once_when_its_first_flush_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's flush fails at a collector's start (a full disk): its event stays pending,
    the next flush stores it and marks the part; close does not write it again (it did)."""
    parts = three_trade_parts(tmp_path)
    damage_middle(parts[1])
    assert trade_ids(tmp_path) == [*range(100), *range(200, 300)]
    real = EmbeddedStore._append
    calls = []

    def failing_once(self: EmbeddedStore, pending: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        real(self, pending)

    monkeypatch.setattr(EmbeddedStore, "_append", failing_once)
    store = EmbeddedStore(str(tmp_path))  # the start: the report's flush fails
    store.write({Channel.TRADES: [trade(300 + i) for i in range(10)]})
    store.flush()  # space again
    store.close()
    EmbeddedStore(str(tmp_path)).close()
    events = hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT", channel="events")
    assert events["detail"].str.contains(parts[1].name).sum() == 1


def _gap_details(root: Path) -> list[str]:
    try:
        events = hundi.read(root, exchange="binance", symbol="BTC-USDT", channel="events")
    except hundi.query.NotStored:
        return []
    return [d for k, d in zip(events["kind"], events["detail"], strict=True) if k == "gap"]


def test_a_damaged_input_a_later_compaction_merged_around_is_still_a_gap(
    tmp_path: Path,
) -> None:
    """Compaction quarantines a damaged middle input and merges the others into a file whose
    flush range spans it: that file does not hold its rows, so a gap is stored (a third
    review: none was, the span was taken for the rows)."""
    store = EmbeddedStore(str(tmp_path), part_bytes=0, compact_fanout=3, grace_s=0)
    for flush in range(2):
        store.write({Channel.TRADES: [trade(flush * 100 + i) for i in range(100)]})
        store.flush()
    (partition,) = partition_dirs(tmp_path)
    damage_middle(max(p.path for p in list_parts(partition)))  # flush 2
    store.write({Channel.TRADES: [trade(200 + i) for i in range(100)]})
    store.flush()  # flush 3 parted; compaction quarantines flush 2, merges 1 and 3
    store.close()
    EmbeddedStore(str(tmp_path)).close()
    assert trade_ids(tmp_path) == [*range(100), *range(200, 300)]
    assert len(_gap_details(tmp_path)) == 1


def test_close_on_a_full_disk_with_a_quarantined_part_to_report_still_lets_go_of_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reporting a quarantined part must never stand in a close's way (a third review: its
    write raised inside close, which then kept the log's lock for the process's life)."""
    store = EmbeddedStore(str(tmp_path), part_bytes=0, compact_fanout=1 << 40,
                          max_pending_bytes=1)  # fmt: skip
    for flush in range(2):
        store.write({Channel.TRADES: [trade(flush * 10 + i) for i in range(10)]})
        store.flush()
    (partition,) = partition_dirs(tmp_path)
    first = min(p.path for p in list_parts(partition))
    os.truncate(first, first.stat().st_size // 2)
    assert trade_ids(tmp_path) == list(range(10, 20))  # a reader quarantined it
    store.part_bytes = 1 << 40
    store.write({Channel.TRADES: [trade(20)]})
    store.flush()
    segment = store._segment_path
    log_disk_full(monkeypatch, store)
    store.write({Channel.TRADES: [trade(21)]})
    with pytest.raises(StoreError):
        store.flush()
    with pytest.raises(StoreError):
        store.close()  # the flush of trade 21 still fails: said, as before
    monkeypatch.undo()
    assert store._segment_fd is None and segment is not None and not segment.exists()
    EmbeddedStore(str(tmp_path)).close()  # space again: the next open reports it
    assert len(_gap_details(tmp_path)) == 1


def test_repair_keeps_the_inputs_of_a_compacted_file_it_could_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error reading a compacted file says nothing about its rows: its inputs are not
    deleted as superseded (a third review: they were, the only readable copies)."""
    from hundi.stores.embedded import check

    store = EmbeddedStore(str(tmp_path), part_bytes=0, compact_fanout=2, grace_s=3600)
    for flush in range(2):
        store.write({Channel.TRADES: [trade(flush * 10 + i) for i in range(10)]})
        store.flush()
    store.close()  # within the grace period: both inputs stay on disk
    (partition,) = partition_dirs(tmp_path)
    (compacted,) = [p for p in list_parts(partition) if p.level == 1]
    real = check.problem

    def eio(path: Path, crc: Any) -> Any:
        if path == compacted.path:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(path, crc)

    monkeypatch.setattr(check, "problem", eio)
    lines, _, _ = check.check_store(tmp_path, repair=True)
    assert any(line.startswith("unreadable: ") for line in lines)
    assert sum("kept: the compacted file holding its rows" in line for line in lines) == 2
    assert len([p for p in list_parts(partition) if p.level == 0]) == 2


@pytest.mark.slow
def test_a_folder_that_is_no_store_is_an_error_for_check_and_ls(tmp_path: Path) -> None:
    """Found by review: the parent of a store (a mistyped path) checked "clean" and listed as
    "nothing stored", exit 0. An empty folder (or a fresh volume's) is still an empty store."""
    three_trade_parts(tmp_path / "data")
    (tmp_path / "notes.txt").write_text("not a store")
    for command in (["store", "check"], ["ls"]):
        done = subprocess.run(
            [str(HUNDI), *command, str(tmp_path)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.count("\n") == 1 and "no store at" in done.stderr, done.stderr
        assert done.stdout == ""
    (tmp_path / "empty" / "lost+found").mkdir(parents=True)  # a fresh volume: a store yet
    assert run_check(str(tmp_path / "empty")).returncode == 0
    assert run_check(str(tmp_path / "data")).returncode == 0


@pytest.mark.slow
def test_a_query_of_a_stream_with_a_part_in_quarantine_says_it_is_incomplete(
    tmp_path: Path,
) -> None:
    """Found by review: once a damaged part was moved to quarantine, ``hundi query`` printed
    what was left (nothing, for a one-part stream) with exit 0, as for a quiet stream; the
    warning came once, at the move. Every query of that range now names the part, exit 1."""
    parts = three_trade_parts(tmp_path)
    with parts[1].open("r+b") as damaged:
        damaged.truncate(100)
    args = ["query", "--store", str(tmp_path), "--exchange", "binance", "--symbol", "BTC-USDT"]
    for _ in range(2):  # the read that moves it, and every one after
        done = subprocess.run(
            [str(HUNDI), *args, "--format", "csv"], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 1, done.stderr
        assert "a damaged part in quarantine; its rows are not read" in done.stderr
        assert len(done.stdout.splitlines()) == 1 + 200  # the other two parts' rows
    for bounds in (["--start", "2024-05-02"], ["--end", "2024-05-01"]):  # the end is exclusive
        other_day = subprocess.run(
            [str(HUNDI), *args, *bounds, "--format", "csv"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert other_day.returncode == 0, other_day.stderr  # the quarantined day: not in range
    frame = hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT")
    assert len(frame) == 200 and len(frame.attrs["withheld"]) == 1
    # a second quarantined copy of one name (NAME.parquet.<ns>) is named too (review)
    (held,) = (tmp_path / ".quarantine").rglob("*.parquet")
    held.rename(held.with_name(f"{held.name}.{time.time_ns()}"))
    frame = hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT")
    assert len(frame.attrs["withheld"]) == 1


def test_a_damaged_compacted_part_whose_inputs_are_live_withholds_nothing(
    tmp_path: Path,
) -> None:
    """Found by review: its rows are still read (its inputs are live again), yet every query
    of the day said they were not and exited 1."""
    EmbeddedStore(str(tmp_path)).close()
    store = EmbeddedStore(str(tmp_path), part_bytes=0, compact_fanout=2, grace_s=3600)
    for flush in range(2):
        store.write({Channel.TRADES: [trade(flush * 10 + i) for i in range(10)]})
        store.flush()
    store.close()
    (partition,) = partition_dirs(tmp_path)
    (compacted,) = [p for p in list_parts(partition) if p.level == 1]
    data = bytearray(compacted.path.read_bytes())
    data[64] ^= 0xFF
    compacted.path.write_bytes(bytes(data))
    frame = hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT")
    assert len(frame) == 20 and "withheld" not in frame.attrs
    assert list((tmp_path / ".quarantine").rglob("*.parquet"))  # it was moved, all the same


def test_a_compaction_over_a_quarantined_middle_part_holds_its_live_inputs(
    tmp_path: Path,
) -> None:
    """Found by a third review: a reader quarantined a damaged level-1 part in the middle of a
    level; the writer's next merge of that level left it out but still spanned its flushes, so
    its inputs (live again on disk) fell under the new file unread (30 of 90 rows gone)."""
    EmbeddedStore(str(tmp_path)).close()
    store = EmbeddedStore(str(tmp_path), part_bytes=0, compact_fanout=3, grace_s=3600)
    for flush in range(6):  # two level-1 parts of three flushes each
        store.write({Channel.TRADES: [trade(flush * 10 + i) for i in range(10)]})
        store.flush()
    (partition,) = partition_dirs(tmp_path)
    middle = sorted((p for p in list_parts(partition) if p.level == 1), key=lambda p: p.first)[1]
    data = bytearray(middle.path.read_bytes())
    data[64] ^= 0xFF
    middle.path.write_bytes(bytes(data))
    assert len(hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT")) == 60  # moved
    for flush in range(6, 9):  # a third level-1 part: the level is merged
        store.write({Channel.TRADES: [trade(flush * 10 + i) for i in range(10)]})
        store.flush()
    store._pending_deletes = [(0.0, paths, held) for _, paths, held in store._pending_deletes]
    store.close()  # every superseded file due: deleted now
    after = hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT")
    assert sorted(after["trade_id"]) == list(range(90)) and "withheld" not in after.attrs
    assert [p.level for p in list_parts(partition) if p.level == 2]  # it was merged


def test_the_inputs_of_a_part_quarantined_later_are_not_deleted(tmp_path: Path) -> None:
    """Found by a third review: a merged part quarantined by a reader during its inputs' grace
    period; the writer deleted the inputs when due all the same, and their rows with them."""
    EmbeddedStore(str(tmp_path)).close()
    store = EmbeddedStore(str(tmp_path), part_bytes=0, compact_fanout=3, grace_s=3600)
    for flush in range(3):
        store.write({Channel.TRADES: [trade(flush * 10 + i) for i in range(10)]})
        store.flush()
    (partition,) = partition_dirs(tmp_path)
    (merged,) = [p for p in list_parts(partition) if p.level == 1]
    merged.path.write_bytes(merged.path.read_bytes()[:100])
    assert len(hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT")) == 30  # moved
    store._pending_deletes = [(0.0, paths, held) for _, paths, held in store._pending_deletes]
    store.close()
    after = hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT")
    assert sorted(after["trade_id"]) == list(range(30)) and "withheld" not in after.attrs
