"""Gap events for damaged log bytes: every hole in the stored data is a stored event.

Log bytes that fail their checksum are cut out of the store (copied to quarantine, never read),
so the rows they held are a hole, like those of a quarantined part. Why the event is made here,
when the damage is found, and not later from the quarantined copy: the hole's edges (the
partition's last row before it and first row after it) are known only from the log's sound
entries around it and the run's parts on either side. Once this log is parted, a part's flush
range spans the hole and those edges are gone.

Which streams the damage charged:

* When the entry's header verified and only its payload failed its checksum: exactly one
  partition, one flush, a known number of rows.
* Otherwise, a stream named by a header inside the damaged bytes (read without its checksum;
  kept only if the store has that partition), and, in the middle of a log, a stream with sound
  entries on both sides of the damage but none of its own in a flush the damage falls between,
  when that is evidence: trades whose ids do not run on across it, or another stream that has
  an entry in every other flush of the log. A stream that starts or ends at the damage (a new
  day, a sparse stream) is not charged on a guess.

The event carries the hole's window ("between A and B", as a restart gap's) and, for trades
and books, the ids on either side, so ``hundi.coverage`` shows it and counts it covered where
another collector stored those rows. Its detail names the log and the flush (not byte offsets:
the live writer and a later recovery see the same entry at different offsets), so the events a
retry after a crash stores again are the same rows, which reads merge.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hundi.records import Channel, Event, EventKind
from hundi.stores.base import NS_PER_DAY, day_start_ns
from hundi.stores.embedded import wal
from hundi.stores.embedded.layout import list_parts, partition_dir, split_live
from hundi.stores.merge import window_time

# the column whose values on either side of a hole say which ids it held
_IDS = {Channel.TRADES: "trade_id", Channel.BOOK: "update_id"}

# (ts, id) of the partition's row next to the hole: its last before, or its first after
_Edge = tuple[int, int | None]
_Flushes = Callable[[int, int], bool]  # which parts (by flush range) are on the hole's side


def gap_events(
    root: Path, segment: Path, damage: wal.Damage, entries: Sequence[wal.Entry]
) -> list[Event]:
    """The gap events of ``damage`` in ``segment``, whose sound entries (of every partition,
    in file order) are ``entries``. Call it before this segment's rows are parted: the run's
    parts then hold only rows of other segments."""
    split = bisect.bisect_left([e.offset for e in entries], damage.start)
    before, after = entries[:split], [e for e in entries[split:] if e.offset >= damage.end]
    if damage.entry is not None:
        low = high = damage.entry.seq
        keys = [damage.entry.key]
    else:
        # the flushes the damage may hold: between the sound entries around it, else bounded
        # by the run's parts (a log's flushes follow the parted ones)
        low = before[-1].seq if before else -1
        high = after[0].seq if after else -1

        def known(key: wal.PartitionKey) -> bool:
            return _directory(root, key).is_dir()

        named = wal.keys_named_in(wal.damaged_bytes(segment, damage), known)
        keys = list(dict.fromkeys([*named, *_missing(entries, before, after)]))
    # the partition's parts on the hole's side hold only flushes before (after) these
    parted_before = low if low >= 0 else high
    parted_after = high if high >= 0 else low
    by_key: dict[wal.PartitionKey, tuple[list[wal.Entry], list[wal.Entry]]] = {}
    for key in keys:
        by_key[key] = ([], [])
    for entry in before:
        if entry.key in by_key:
            by_key[entry.key][0].append(entry)
    for entry in after:
        if entry.key in by_key:
            by_key[entry.key][1].append(entry)
    run = wal.run_of(segment) or ""
    events = []
    for key, (ahead, behind) in by_key.items():
        prev = _edge(segment, ahead[::-1], last=True)
        nxt = _edge(segment, behind, last=False)
        if prev is None and parted_before >= 0:
            prev = _part_edge(_directory(root, key), run, key[1], last=True,
                              wanted=lambda first, last: last < parted_before)  # fmt: skip
        if nxt is None and parted_after >= 0:
            nxt = _part_edge(_directory(root, key), run, key[1], last=False,
                             wanted=lambda first, last: first > parted_after)  # fmt: skip
        event = _event(segment, damage, key, prev, nxt, named=damage.entry is not None)
        if event is not None:
            events.append(event)
    return events


def _directory(root: Path, key: wal.PartitionKey) -> Path:
    return partition_dir(root, key[0], key[1].value, key[2], key[3])


def _missing(
    entries: Sequence[wal.Entry], before: Sequence[wal.Entry], after: Sequence[wal.Entry]
) -> list[wal.PartitionKey]:
    """Streams with sound entries on both sides of the damage but none of their own in one of
    the flushes it falls between (a flush writes a partition at most once, and a log's flushes
    are numbered without holes). Trades are judged by their ids later; another stream only if
    it has an entry in every other flush of the log (a sparse one's absence says nothing)."""
    if not before or not after:
        return []
    low, high = before[-1].seq, after[0].seq
    sides = {e.key for e in before} & {e.key for e in after}
    seqs: dict[wal.PartitionKey, set[int]] = {}
    for entry in entries:
        if entry.key in sides:
            seqs.setdefault(entry.key, set()).add(entry.seq)
    found = []
    for key, flushes in seqs.items():
        if all(s in flushes for s in range(low, high + 1)):
            continue
        dense = all(s in flushes or low <= s <= high for s in range(min(flushes), max(flushes)))
        if key[1] is Channel.TRADES or dense:
            found.append(key)
    return found


def _edge(segment: Path, nearest: Sequence[wal.Entry], *, last: bool) -> _Edge | None:
    """The row next to the hole from the nearest sound entry (one whose payload is damaged too
    is passed over: the window then spans both holes)."""
    for entry in nearest:
        table = wal.payload(segment, entry)
        if table is not None:  # no cast fits: cut out too, passed over like a damaged one
            table = wal.conformed(table, entry.key[1])
        if table is not None and table.num_rows:
            return _edge_of(table, entry.key[1], last=last)
    return None


def _part_edge(
    directory: Path, run: str, channel: Channel, wanted: _Flushes, *, last: bool
) -> _Edge | None:
    """The row next to the hole from the run's nearest live part on that side (the hole is
    the first or last entry of its stream in this log: its edge was parted before, or, after a
    crash in the middle of parting, after)."""
    try:
        live, _ = split_live(list_parts(directory), verify=False)
    except OSError:
        return None
    side = [p for p in live if p.run == run and wanted(p.first, p.last)]
    if not side:
        return None
    nearest = max(side, key=lambda p: p.last) if last else min(side, key=lambda p: p.first)
    columns = ["ts", *([_IDS[channel]] if channel in _IDS else [])]
    try:
        table = pq.read_table(nearest.path, columns=columns)
    except (OSError, pa.ArrowException):
        return None  # damaged: its own quarantine tells of it
    return _edge_of(table, channel, last=last) if table.num_rows else None


def _edge_of(table: pa.Table, channel: Channel, *, last: bool) -> _Edge:
    pick = pc.max if last else pc.min
    ts = pick(table.column("ts").cast(pa.int64())).as_py()
    name = _IDS.get(channel)
    ident = pick(table.column(name)).as_py() if name in table.column_names else None
    return int(ts), None if ident is None else int(ident)


def _event(
    segment: Path,
    damage: wal.Damage,
    key: wal.PartitionKey,
    prev: _Edge | None,
    nxt: _Edge | None,
    *,
    named: bool,
) -> Event | None:
    exchange, channel, symbol, day = key
    expected = received = -1
    before_id = prev[1] if prev is not None else None
    after_id = nxt[1] if nxt is not None else None
    if channel in _IDS and before_id is not None and after_id is not None:
        expected, received = before_id + 1, after_id
    counted = expected >= 0
    if not named and channel is Channel.TRADES and counted and expected >= received:
        return None  # its trade ids run on: it held none of this stream's rows
    if damage.entry is not None:
        held = f"{damage.entry.rows} rows of flush {damage.entry.seq} in log {segment.name}"
    else:
        held = (
            f"rows this stream may have had in log {segment.name} bytes {damage.start}-{damage.end}"
        )
    if prev is not None and nxt is not None:
        window = f"nothing stored between {window_time(prev[0])} and {window_time(nxt[0])}"
    elif prev is not None:
        window = f"nothing stored after {window_time(prev[0])} in that log"
    elif nxt is not None:
        window = f"nothing stored before {window_time(nxt[0])} in that log"
    else:
        window = "its time is unknown"
    ids = ""
    if counted and channel is Channel.TRADES:
        ids = f"; ids {expected}..{received - 1}"
    elif counted:
        ids = f"; updates after {expected - 1} up to {received}"
    # at the hole (rows up to its start are before it, the rest after: coverage's ranges),
    # within the partition's day
    start = day_start_ns(day)
    ts = prev[0] + 1 if prev else nxt[0] - 1 if nxt else start
    ts = min(max(ts, start), start + NS_PER_DAY - 1)
    return Event(
        exchange=exchange, symbol=symbol, native_symbol="", ts=ts, recv_ts=time.time_ns(),
        kind=EventKind.GAP.value, channel=channel.value, expected=expected, received=received,
        detail=f"log damage ({damage.why}): {held} held in quarantine, not read; {window}{ids}",
    )  # fmt: skip
