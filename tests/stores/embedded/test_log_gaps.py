"""Damaged log bytes leave stored gap events: every hole in the stored data is a stored event.

Real stores in tmp dirs; their logs damaged on disk the way disks do (a flipped byte in a
payload or a header, a zero-filled tail), then recovered by the next writer, or found damaged
by the live writer itself when it parts its log.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from test_embedded_store import T0, trade
from test_integrity import bbo, run_check

import hundi
from hundi.records import BookChange, Channel, Record
from hundi.stores.embedded import EmbeddedStore, wal
from hundi.stores.embedded import store as store_module

BIG = 1 << 40  # a threshold never reached


def die(store: EmbeddedStore) -> None:
    """What ``kill -9`` does to a writer: its files close (the log's lock goes), nothing else."""
    assert store._segment_fd is not None
    os.close(store._segment_fd)
    store._segment_fd = None


def flip(segment: Path, at: int) -> None:
    data = bytearray(segment.read_bytes())
    data[at] ^= 0xFF
    segment.write_bytes(bytes(data))


def written(root: Path, flushes: list[dict[Channel, list[Record]]]) -> EmbeddedStore:
    """A writer that flushed each of ``flushes`` into its (un-parted) log."""
    store = EmbeddedStore(str(root), part_bytes=BIG, part_age_s=BIG)
    for batch in flushes:
        store.write(batch)
        store.flush()
    return store


def entry(segment: Path, channel: Channel, seq: int, symbol: str = "BTC-USDT") -> wal.Entry:
    (found,) = [
        e
        for e in wal.scan(segment)[0]
        if e.key[1] is channel and e.key[2] == symbol and e.seq == seq
    ]
    return found


def damage(segment: Path, found: wal.Entry, where: str) -> None:
    """A byte flipped in the entry's payload (its header still verifies) or its header."""
    flip(segment, found.offset + found.length // 2 if where == "payload" else found.offset - 20)


def gaps(root: Path, symbol: str = "BTC-USDT") -> pd.DataFrame:
    events = hundi.read(root, exchange="binance", symbol=symbol, channel="events")
    return events[events["kind"] == "gap"]


def trade_flushes(symbol: str = "BTC-USDT") -> list[dict[Channel, list[Record]]]:
    return [
        {Channel.TRADES: [trade(f * 10 + i, symbol=symbol) for i in range(10)]} for f in range(3)
    ]


def iso(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").isoformat(timespec="milliseconds")


@pytest.mark.parametrize("where", ["payload", "header"])
def test_a_damaged_entry_of_a_dead_log_is_a_stored_gap_with_its_ids_and_window(
    tmp_path: Path, where: str
) -> None:
    store = written(tmp_path, trade_flushes())
    (segment,) = wal.segments(tmp_path)
    damage(segment, entry(segment, Channel.TRADES, 2), where)
    die(store)
    EmbeddedStore(str(tmp_path)).close()  # the next collector's start recovers the log
    EmbeddedStore(str(tmp_path)).close()  # and again: reported once
    (gap,) = gaps(tmp_path).itertuples()
    assert (gap.channel, gap.expected, gap.received) == ("trades", 10, 20)
    held = (
        f"(payload checksum mismatch): 10 rows of flush 2 in log {segment.name} held"
        if where == "payload"
        else f"(header checksum mismatch): rows this stream may have had in log {segment.name} "
    )
    assert gap.detail.startswith(f"log damage {held}"), gap.detail
    window = f"nothing stored between {iso(T0 + 9_000)} and {iso(T0 + 20_000)}; ids 10..19"
    assert gap.detail.endswith(window), gap.detail
    assert gap.Index == pd.Timestamp(T0 + 9_000 + 1, tz="UTC")  # right after the last row before
    ranges = hundi.coverage(tmp_path, "binance", symbol="BTC-USDT", channel="trades")
    assert ranges["ended_by"].tolist() == ["gap", ""]
    assert ranges["missing_ids"].tolist()[0] == 10
    assert ranges["rows"].tolist() == [10, 10]
    checked = run_check(str(tmp_path))
    assert checked.returncode == 1  # the quarantined bytes stay for review
    assert "a gap event in the store describes it" in checked.stdout, checked.stdout


def test_another_collector_s_rows_cover_the_hole(tmp_path: Path) -> None:
    other = written(tmp_path, [{Channel.TRADES: [trade(i) for i in range(30)]}])
    other.close()
    store = written(tmp_path, trade_flushes())
    (segment,) = wal.segments(tmp_path)
    damage(segment, entry(segment, Channel.TRADES, 2), "payload")
    die(store)
    EmbeddedStore(str(tmp_path)).close()
    assert len(gaps(tmp_path)) == 1
    frame = hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT", channel="trades")
    assert frame["trade_id"].tolist() == list(range(30))  # once each
    ranges = hundi.coverage(tmp_path, "binance", symbol="BTC-USDT", channel="trades")
    assert ranges["ended_by"].tolist() == [""]
    assert ranges["covered"].tolist() == [1]
    assert "10 rows of flush 2" in ranges["covered_detail"].tolist()[0]


def mixed_flushes() -> list[dict[Channel, list[Record]]]:
    """Three flushes of BTC trades and quotes; ETH trades in the first and last only (their ids
    run on: 0..9, then 10..19)."""
    flushes: list[dict[Channel, list[Record]]] = []
    for f in range(3):
        batch: dict[Channel, list[Record]] = {
            Channel.TRADES: [trade(f * 10 + i) for i in range(10)],
            Channel.BBO: [bbo(f * 10 + i) for i in range(10)],
        }
        if f != 1:
            eth = [trade(f // 2 * 10 + i, ts=T0 + (f * 10 + i) * 1_000, symbol="ETH-USDT")
                   for i in range(10)]  # fmt: skip
            batch[Channel.TRADES] = [*batch[Channel.TRADES], *eth]
        flushes.append(batch)
    return flushes


def test_a_damaged_header_is_charged_only_to_streams_that_may_have_lost_rows(
    tmp_path: Path,
) -> None:
    """The damaged quotes' header names nothing verifiable: BTC trades have their own entry in
    that flush (nothing lost), ETH trades have none but their ids run on (nothing lost), the
    quotes have none: a gap over their silent window, which coverage judges by time."""
    store = written(tmp_path, mixed_flushes())
    (segment,) = wal.segments(tmp_path)
    damage(segment, entry(segment, Channel.BBO, 2), "header")
    die(store)
    EmbeddedStore(str(tmp_path)).close()
    (gap,) = gaps(tmp_path).itertuples()
    assert (gap.channel, gap.expected, gap.received) == ("bbo", -1, -1)
    assert gap.detail.endswith(f"between {iso(T0 + 9_000)} and {iso(T0 + 20_000)}"), gap.detail
    with pytest.raises(hundi.query.NotStored):
        hundi.read(tmp_path, exchange="binance", symbol="ETH-USDT", channel="events")
    eth = hundi.read(tmp_path, exchange="binance", symbol="ETH-USDT", channel="trades")
    assert eth["trade_id"].tolist() == list(range(20))
    ranges = hundi.coverage(tmp_path, "binance", symbol="BTC-USDT", channel="bbo")
    assert ranges["ended_by"].tolist() == ["gap", ""]
    assert ranges["covered"].tolist() == [0, 0]


def book_diff(update: int) -> BookChange:
    stamp = T0 + update * 1_000
    head: dict[str, Any] = {"exchange": "binance", "symbol": "BTC-USDT", "native_symbol": "BTCUSDT"}
    return BookChange(**head, ts=stamp, recv_ts=stamp + 1, side=1, price=10.0 + update,
                      size=1.0, snapshot=False, first_update_id=update, update_id=update,
                      prev_update_id=update - 1)  # fmt: skip


def test_a_book_hole_names_the_updates_on_either_side(tmp_path: Path) -> None:
    store = written(
        tmp_path, [{Channel.BOOK: [book_diff(f * 10 + i) for i in range(10)]} for f in range(3)]
    )
    (segment,) = wal.segments(tmp_path)
    damage(segment, entry(segment, Channel.BOOK, 2), "payload")
    die(store)
    EmbeddedStore(str(tmp_path)).close()
    (gap,) = gaps(tmp_path).itertuples()
    assert (gap.channel, gap.expected, gap.received) == ("book", 10, 20)
    assert gap.detail.endswith("; updates after 9 up to 20"), gap.detail


def test_the_live_writer_reports_its_own_log_damaged_when_it_parts_it(tmp_path: Path) -> None:
    """The disk changed bytes the writer appended: parting finds them, stores the gap event in
    the log before retiring it, and parts the rest."""
    store = written(tmp_path, trade_flushes())
    (segment,) = wal.segments(tmp_path)
    damage(segment, entry(segment, Channel.TRADES, 2), "payload")
    store.part()
    assert not segment.exists()
    (gap,) = gaps(tmp_path).itertuples()  # parted with the rest, before the close
    assert (gap.expected, gap.received) == (10, 20)
    assert "10 rows of flush 2" in gap.detail, gap.detail
    store.close()
    assert len(gaps(tmp_path)) == 1
    frame = hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT", channel="trades")
    assert frame["trade_id"].tolist() == [*range(10), *range(20, 30)]
    (bad,) = (tmp_path / ".quarantine" / ".wal").glob("*.bad")
    assert bad.with_name(bad.name + ".reported").exists()


def test_a_zero_filled_tail_names_no_stream_and_stores_no_gap(tmp_path: Path) -> None:
    """What a crash can leave after the last acknowledged flush (the file grown, its bytes
    never written): kept for review, but no stream is charged with a hole."""
    store = written(tmp_path, trade_flushes())
    (segment,) = wal.segments(tmp_path)
    with segment.open("ab") as f:
        f.write(bytes(4096))
    die(store)
    EmbeddedStore(str(tmp_path)).close()
    with pytest.raises(hundi.query.NotStored):
        hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT", channel="events")
    frame = hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT", channel="trades")
    assert frame["trade_id"].tolist() == list(range(30))
    assert len(list((tmp_path / ".quarantine" / ".wal").glob("*.bad"))) == 1


def test_a_damaged_tail_whose_header_still_names_its_stream_is_a_gap(tmp_path: Path) -> None:
    """The last entry's header damaged (nothing sound after it): read without its checksum,
    the header still names the stream, which gets a gap after its last stored row."""
    store = written(tmp_path, trade_flushes())
    (segment,) = wal.segments(tmp_path)
    last = entry(segment, Channel.TRADES, 3)
    header = segment.read_bytes().rfind(wal.MAGIC, 0, last.offset)
    flip(segment, header + wal.HEADER_SIZE - 1)  # its header's checksum; the meta reads
    die(store)
    EmbeddedStore(str(tmp_path)).close()
    (gap,) = gaps(tmp_path).itertuples()
    assert (gap.expected, gap.received) == (-1, -1)
    assert gap.detail.endswith(f"nothing stored after {iso(T0 + 19_000)} in that log"), gap.detail


class Crash(BaseException):
    """The process dying at that point (nothing after it runs)."""


def crash(*_: object, **__: object) -> None:
    raise Crash


@pytest.mark.parametrize("at", ["before the copy", "before the log goes"])
def test_a_live_writer_killed_while_cutting_out_leaves_one_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at: str
) -> None:
    """The live writer and the next writer's recovery describe the same damaged entry with
    the same event (found by review: byte offsets in the detail made two) and copy it to the
    same quarantine file."""
    store = written(tmp_path, trade_flushes())
    (segment,) = wal.segments(tmp_path)
    damage(segment, entry(segment, Channel.TRADES, 2), "payload")
    monkeypatch.setattr(wal, "quarantine_bytes" if at == "before the copy" else "remove", crash)
    with pytest.raises(Crash):
        store.part()
    monkeypatch.undo()
    die(store)
    EmbeddedStore(str(tmp_path)).close()  # recovers the segment the crash left
    assert len(gaps(tmp_path)) == 1
    # and one copy of its bytes (they were copied twice, named by different byte ranges)
    assert len(list((tmp_path / ".quarantine" / ".wal").glob("*.bad"))) == 1
    frame = hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT", channel="trades")
    assert frame["trade_id"].tolist() == [*range(10), *range(20, 30)]


def recovery_killed_after_publishing(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next writer's recovery of ``root``'s dead log, killed right after it published its
    first part (its files closed, as by ``kill -9``)."""
    recovering: list[EmbeddedStore] = []
    publish = EmbeddedStore._publish

    def publish_then_die(self: EmbeddedStore, *args: Any, **kwargs: Any) -> Any:
        publish(self, *args, **kwargs)
        recovering.append(self)
        raise Crash

    with monkeypatch.context() as patched:
        patched.setattr(EmbeddedStore, "_publish", publish_then_die)
        with pytest.raises(Crash):
            EmbeddedStore(str(root))
    if recovering[0]._segment_fd is not None:  # it had stored events in its own log
        die(recovering[0])


def test_recovery_killed_after_publishing_the_part_still_stores_the_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after recovery published the partition's part, before it cut the damaged entry
    out: the next recovery's scan of the log finds the damage again and stores its event,
    though the entry's flush is inside the part's range (taken as parted)."""
    store = written(tmp_path, trade_flushes())
    (segment,) = wal.segments(tmp_path)
    damage(segment, entry(segment, Channel.TRADES, 2), "payload")
    die(store)
    recovery_killed_after_publishing(tmp_path, monkeypatch)
    EmbeddedStore(str(tmp_path)).close()
    (gap,) = gaps(tmp_path).itertuples()
    assert (gap.expected, gap.received) == (10, 20), gap.detail
    frame = hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT", channel="trades")
    assert frame["trade_id"].tolist() == [*range(10), *range(20, 30)]


@pytest.mark.parametrize("failing", ["the copy", "the part"])
def test_a_parting_retried_after_a_full_disk_stores_the_event_and_the_copy_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """One run's rows are never merged on read, so a retry must not store its events again
    (found by review: two events, two copies)."""
    store = written(tmp_path, trade_flushes())
    (segment,) = wal.segments(tmp_path)
    damage(segment, entry(segment, Channel.TRADES, 2), "payload")
    target: Any = wal if failing == "the copy" else store
    name = "quarantine_bytes" if failing == "the copy" else "_publish"
    real = getattr(target, name)
    calls: list[int] = []

    def full_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, full_once)
    store._part_quietly()  # fails: logged, retried at the next flush
    store._part_quietly()
    store.close()
    assert len(gaps(tmp_path)) == 1
    assert len(list((tmp_path / ".quarantine" / ".wal").glob("*.bad"))) == 1


def test_a_damaged_first_header_of_a_log_charges_only_the_stream_it_held(
    tmp_path: Path,
) -> None:
    """Nothing sound before it to bound its flushes: the stream is read off the damaged bytes
    (here its payload, the meta's JSON being damaged too), not every stream of the log
    (found by review: three streams charged)."""
    store = written(tmp_path, mixed_flushes())
    (segment,) = wal.segments(tmp_path)
    first = wal.scan(segment)[0][0]
    assert (first.key[1], first.key[2], first.seq) == (Channel.TRADES, "BTC-USDT", 1)
    damage(segment, first, "header")
    die(store)
    EmbeddedStore(str(tmp_path)).close()
    (gap,) = gaps(tmp_path).itertuples()
    assert (gap.channel, gap.expected, gap.received) == ("trades", -1, -1)  # no edge before it
    with pytest.raises(hundi.query.NotStored):  # ETH's trades kept their own flush-1 entry
        hundi.read(tmp_path, exchange="binance", symbol="ETH-USDT", channel="events")


def test_a_day_rollover_at_the_damage_charges_only_the_new_day(tmp_path: Path) -> None:
    """The finished day has no entry after the damage (found by review: it was charged a
    hole after its last row, so coverage ended its day with a gap)."""
    day = 86_400 * 10**9
    flushes: list[dict[Channel, list[Record]]] = []
    for f in range(5):  # 23:59:58, 23:59:59, then the next day
        base = T0 + day - 2 * 10**9 + f * 10**9
        flushes.append(
            {Channel.TRADES: [trade(f * 10 + i, ts=base + i * 1_000) for i in range(10)]}
        )
    store = written(tmp_path, flushes)
    (segment,) = wal.segments(tmp_path)
    damage(segment, entry(segment, Channel.TRADES, 4), "header")
    die(store)
    EmbeddedStore(str(tmp_path)).close()
    (gap,) = gaps(tmp_path).itertuples()
    assert (gap.expected, gap.received) == (30, 40)
    assert gap.Index.date() == pd.Timestamp(T0 + day).date()
    ranges = hundi.coverage(tmp_path, "binance", symbol="BTC-USDT", channel="trades")
    assert ranges["ended_by"].tolist() == ["gap", ""]
    assert ranges["rows"].tolist() == [30, 10]


@pytest.mark.parametrize("byte", ["magic", "meta length"])
def test_an_acknowledged_last_entry_damaged_is_a_gap_not_a_torn_write(
    tmp_path: Path, byte: str
) -> None:
    """A flipped magic or a flipped high byte of the meta's length in the last entry is damage
    to acknowledged rows: quarantined as .bad with a gap event (found by review: no event; a
    huge length read as a torn write)."""
    store = written(tmp_path, trade_flushes())
    (segment,) = wal.segments(tmp_path)
    last = entry(segment, Channel.TRADES, 3)
    header = segment.read_bytes().rfind(wal.MAGIC, 0, last.offset)
    flip(segment, header if byte == "magic" else header + 5)
    die(store)
    EmbeddedStore(str(tmp_path)).close()
    (gap,) = gaps(tmp_path).itertuples()
    assert gap.detail.endswith(f"nothing stored after {iso(T0 + 19_000)} in that log")
    assert len(list((tmp_path / ".quarantine" / ".wal").glob("*.bad"))) == 1
    frame = hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT", channel="trades")
    assert frame["trade_id"].tolist() == list(range(20))


@pytest.mark.parametrize("where", ["payload", "header"])
def test_a_hole_at_the_start_of_a_later_log_takes_its_edge_from_the_run_s_parts(
    tmp_path: Path, where: str
) -> None:
    """The stream's last row before the hole was parted with the previous log: its ids come
    from that part, so another collector's rows cover the hole (found by review: no ids, so
    never covered; a damaged header had no flush to bound the parts by)."""
    written(tmp_path, [{Channel.TRADES: [trade(i) for i in range(30)]}]).close()
    flushes = trade_flushes()
    store = written(tmp_path, flushes[:1])
    store.part()  # flush 1 into a part, a new log for flushes 2 and 3
    for batch in flushes[1:]:
        store.write(batch)
        store.flush()
    (segment,) = wal.segments(tmp_path)
    damage(segment, entry(segment, Channel.TRADES, 2), where)
    die(store)
    EmbeddedStore(str(tmp_path)).close()
    (gap,) = gaps(tmp_path).itertuples()
    assert (gap.expected, gap.received) == (10, 20)
    ranges = hundi.coverage(tmp_path, "binance", symbol="BTC-USDT", channel="trades")
    assert ranges["ended_by"].tolist() == [""] and ranges["covered"].tolist() == [1]


def test_a_flipped_letter_of_the_symbol_in_a_header_is_read_off_the_payload(
    tmp_path: Path,
) -> None:
    """The meta still parses but names a stream the store does not have: the payload's rows
    name the real one (found by review: rows lost without an event)."""
    store = written(tmp_path, trade_flushes())
    (segment,) = wal.segments(tmp_path)
    last = entry(segment, Channel.TRADES, 3)
    data = segment.read_bytes()
    flip(segment, data.rfind(b"BTC-USDT", 0, last.offset))
    die(store)
    EmbeddedStore(str(tmp_path)).close()
    (gap,) = gaps(tmp_path).itertuples()
    assert gap.detail.endswith(f"nothing stored after {iso(T0 + 19_000)} in that log")


def odd_flushes(root: Path) -> EmbeddedStore:
    """Flush 1 sound, flushes 2 and 3 of a schema no cast fits (a log of an older version),
    flush 4 sound."""
    store = EmbeddedStore(str(root), part_bytes=BIG, part_age_s=BIG)
    store.write({Channel.TRADES: [trade(i) for i in range(10)]})
    store.flush()
    for f in (1, 2):
        rows = [trade(i) for i in range(10 * f, 10 * f + 10)]
        ((key, table),) = store_module._partitions(Channel.TRADES, rows)
        text = pa.array([f"t{i}" for i in range(10)])
        store._append([(key, table.set_column(5, "trade_id", text))])
    store.write({Channel.TRADES: [trade(i) for i in range(30, 40)]})
    store.flush()
    return store


@pytest.mark.parametrize("found_by", ["the live writer", "recovery"])
def test_two_neighbouring_entries_no_cast_fits_are_two_holes(tmp_path: Path, found_by: str) -> None:
    """Found by review: a hole's edge was read off the neighbouring entry, itself of the odd
    schema, and int('t0') raised out of close() and every later open for writing (the log was
    never retired, no collector could start). Such a neighbour is passed over now."""
    store = odd_flushes(tmp_path)
    if found_by == "the live writer":
        store.close()
    else:
        die(store)
        EmbeddedStore(str(tmp_path)).close()
    EmbeddedStore(str(tmp_path)).close()  # the next collector's start
    assert wal.segments(tmp_path) == []
    frame = hundi.read(tmp_path, exchange="binance", symbol="BTC-USDT", channel="trades")
    assert frame["trade_id"].tolist() == [*range(10), *range(30, 40)]
    holes = gaps(tmp_path)
    assert len(holes) == 2
    assert {(e, r) for e, r in zip(holes["expected"], holes["received"], strict=True)} == {
        (10, 30)
    }, holes["detail"].tolist()


def test_a_copy_a_dead_writer_left_unsynced_is_synced_not_copied_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review: the dead writer renamed its copy into place and died before syncing its
    folder; recovery found the same bytes there and retired the log without syncing the copy,
    so a power loss could keep the log's removal and lose the copy."""
    store = written(tmp_path, trade_flushes())
    (segment,) = wal.segments(tmp_path)
    damage(segment, entry(segment, Channel.TRADES, 2), "payload")
    quarantine = tmp_path / ".quarantine" / ".wal"
    real = wal.fsync_dir

    def die_syncing_the_copy(directory: Path) -> None:
        if Path(directory) == quarantine:
            raise Crash
        real(directory)

    monkeypatch.setattr(wal, "fsync_dir", die_syncing_the_copy)
    with pytest.raises(Crash):
        store.part()
    die(store)
    synced: list[Path] = []

    def traced(directory: Path) -> None:
        synced.append(Path(directory))
        real(directory)

    monkeypatch.setattr(wal, "fsync_dir", traced)
    EmbeddedStore(str(tmp_path)).close()
    assert wal.segments(tmp_path) == []
    assert len(list(quarantine.glob("*.bad"))) == 1
    assert quarantine in synced, synced


def test_bytes_that_rotted_further_are_copied_once_more_not_at_every_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review: only NAME.bad was compared, so bytes that changed after their first
    copy were copied again (NAME.bad.<ns>) by every recovery a crash cut short."""
    store = written(tmp_path, trade_flushes())
    (segment,) = wal.segments(tmp_path)
    found = entry(segment, Channel.TRADES, 2)
    damage(segment, found, "payload")
    monkeypatch.setattr(wal, "remove", crash)
    with pytest.raises(Crash):
        store.part()  # copies NAME.bad, dies before retiring the log
    die(store)
    data = bytearray(segment.read_bytes())
    data[found.offset + 3] ^= 0xFF  # more rot in the same entry
    segment.write_bytes(bytes(data))
    for _ in range(2):  # two recoveries killed before retiring the log
        with pytest.raises(Crash):
            EmbeddedStore(str(tmp_path))
        for fd in os.listdir("/proc/self/fd"):  # kill -9: the dead writers' files close
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path)):
                    os.close(int(fd))
    monkeypatch.undo()
    EmbeddedStore(str(tmp_path)).close()
    assert wal.segments(tmp_path) == []
    copies = [p for p in (tmp_path / ".quarantine" / ".wal").iterdir() if ".bad" in p.name]
    assert len([p for p in copies if not p.name.endswith(".reported")]) == 2, copies


def test_a_copy_deleted_while_recovery_compares_it_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person deletes a reviewed quarantine copy just as recovery compares it with the bytes
    it is about to copy: recovery copies them again instead of failing the cut-out (which kept
    the log, and the store from opening, until the next try)."""
    store = written(tmp_path, trade_flushes())
    (segment,) = wal.segments(tmp_path)
    damage(segment, entry(segment, Channel.TRADES, 2), "payload")
    monkeypatch.setattr(wal, "remove", crash)
    with pytest.raises(Crash):
        store.part()  # copies NAME.bad, dies before retiring the log
    die(store)
    monkeypatch.undo()
    quarantine = tmp_path / ".quarantine" / ".wal"
    (made,) = quarantine.glob("*.bad")
    real = Path.read_bytes

    def deleted_meanwhile(path: Path) -> bytes:
        if path == made and path.exists():
            path.unlink()  # the person's rm, between the listing and the read
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", deleted_meanwhile)
    EmbeddedStore(str(tmp_path)).close()
    assert wal.segments(tmp_path) == []
    assert [p.name for p in quarantine.glob("*.bad")] == [made.name]
    assert len(gaps(tmp_path)) == 1  # the hole, stored once
