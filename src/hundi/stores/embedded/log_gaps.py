"""Gap events for damaged log bytes: every hole in the stored data is a stored event.

Log bytes that fail their checksum are cut out of the store (copied to quarantine, never read),
so the rows they held are a hole, like those of a quarantined part. Why the event is made here,
when the damage is found, and not later from the quarantined copy: the hole's edges (the
partition's last row before it and first row after it) are known only from the log's sound
entries around it. Once parted, a part's flush range spans the hole and those edges are gone.

What the damage held:

* When the entry's header verified and only its payload failed its checksum: exactly one
  partition, one flush, a known number of rows.
* Otherwise, a partition may have lost rows when it has no sound entry of its own in one of
  the flushes the damaged bytes fall between. A damaged tail (nothing sound after it) may be a
  crash's unfinished write, zero-filled, so there only partitions named by a header inside the
  damaged bytes count (read without its checksum; kept only if the store has that partition).
  A trade partition whose ids run on without a hole across the damage lost nothing.

The event carries the hole's window ("between A and B", as a restart gap's) and, for trades
and books, the ids on either side, so ``hundi.coverage`` shows it and counts it covered where
another collector stored those rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from hundi.records import Channel, Event, EventKind
from hundi.stores.base import day_start_ns
from hundi.stores.embedded import wal
from hundi.stores.embedded.layout import partition_dir

# the column whose values on either side of a hole say which ids it held
_IDS = {Channel.TRADES: "trade_id", Channel.BOOK: "update_id"}


def gap_events(
    root: Path, segment: Path, damage: wal.Damage, entries: Sequence[wal.Entry]
) -> list[Event]:
    """The gap events of ``damage`` in ``segment``, whose sound entries (of every partition,
    in file order) are ``entries``."""
    before = [e for e in entries if e.offset < damage.start]
    after = [e for e in entries if e.offset >= damage.end]
    if damage.entry is not None:
        keys = [damage.entry.key]
    else:
        named = [
            key
            for key in wal.keys_named_in(wal.damaged_bytes(segment, damage))
            if partition_dir(root, key[0], key[1].value, key[2], key[3]).is_dir()
        ]
        unseen = [] if damage.tail else _unseen(entries, before, after)
        keys = list(dict.fromkeys([*named, *unseen]))
    events = []
    for key in keys:
        prev = _edge(segment, [e for e in reversed(before) if e.key == key], last=True)
        nxt = _edge(segment, [e for e in after if e.key == key], last=False)
        event = _event(segment, damage, key, prev, nxt)
        if event is not None:
            events.append(event)
    return events


def _unseen(
    entries: Sequence[wal.Entry], before: Sequence[wal.Entry], after: Sequence[wal.Entry]
) -> list[wal.PartitionKey]:
    """The partitions of the segment without a sound entry of their own in some flush the
    damaged bytes fall between (each flush writes a partition at most once)."""
    low = before[-1].seq if before else None
    high = after[0].seq if after else None
    found: dict[wal.PartitionKey, set[int]] = {}
    for entry in entries:
        found.setdefault(entry.key, set()).add(entry.seq)
    if low is None or high is None:
        return list(found)
    flushes = high - low + 1
    return [key for key, seqs in found.items() if sum(low <= s <= high for s in seqs) < flushes]


# (ts, id) of the partition's row next to the hole: its last before, or its first after
_Edge = tuple[int, int | None]


def _edge(segment: Path, nearest: Sequence[wal.Entry], *, last: bool) -> _Edge | None:
    """The row next to the hole from the nearest sound entry (one whose payload is damaged too
    is passed over: the window then spans both holes)."""
    for entry in nearest:
        table = wal.payload(segment, entry)
        if table is None or table.num_rows == 0:
            continue
        pick = pc.max if last else pc.min
        ts = pick(table.column("ts").cast(pa.int64())).as_py()
        name = _IDS.get(entry.key[1])
        ident = pick(table.column(name)).as_py() if name in table.column_names else None
        return int(ts), None if ident is None else int(ident)
    return None


def _event(
    segment: Path,
    damage: wal.Damage,
    key: wal.PartitionKey,
    prev: _Edge | None,
    nxt: _Edge | None,
) -> Event | None:
    exchange, channel, symbol, day = key
    expected = received = -1
    before_id = prev[1] if prev is not None else None
    after_id = nxt[1] if nxt is not None else None
    if channel in _IDS and before_id is not None and after_id is not None:
        expected, received = before_id + 1, after_id
    counted = expected >= 0
    if damage.entry is None and channel is Channel.TRADES and counted and expected == received:
        return None  # its trade ids run on: it held none of this stream's rows
    where = f"log {segment.name} bytes {damage.start}-{damage.end} ({damage.why})"
    if damage.entry is not None:
        held = f"{damage.entry.rows} rows of flush {damage.entry.seq} in {where}"
    else:
        held = f"rows this stream may have had in {where}"
    if prev is not None and nxt is not None:
        window = f"nothing stored between {_iso(prev[0])} and {_iso(nxt[0])}"
    elif prev is not None:
        window = f"nothing stored after {_iso(prev[0])} in that log"
    elif nxt is not None:
        window = f"nothing stored before {_iso(nxt[0])} in that log"
    else:
        window = "its time is unknown"
    named = ""
    if counted and channel is Channel.TRADES:
        named = f"; ids {expected}..{received - 1}"
    elif counted:
        named = f"; updates after {expected - 1} up to {received}"
    # at the hole: rows up to its start are before it, the rest after (coverage's ranges)
    ts = prev[0] + 1 if prev else nxt[0] - 1 if nxt else day_start_ns(day)
    return Event(
        exchange=exchange, symbol=symbol, native_symbol="", ts=ts, recv_ts=time.time_ns(),
        kind=EventKind.GAP.value, channel=channel.value, expected=expected, received=received,
        detail=f"log damage: {held} held in quarantine, not read; {window}{named}",
    )  # fmt: skip


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")
