"""Applying stored book rows: the book after any prefix of them, vectorized.

What "the book" after a run of stored rows means (the collector's own rules, applied to what it
stored):

* A symbol's book rows are put in exchange sequence order: ``update_id``, a snapshot's rows
  before the diffs with the same id. (Time order is not the application order: a spot snapshot
  is stamped with its receive time, after the diffs buffered while it was fetched.)
* A run of ``snapshot`` rows restarts the book; a diff that continues the sequence (the
  exchange's :class:`~hundi.book.rule.ContinuityRule`) is applied, level by level, last write
  wins; a diff that does not continue it leaves the book unsynced (frozen) until the next
  snapshot.
* A stored ``gap`` event of the book after the snapshot the book was restarted from also leaves
  it unsynced: after a gap the collector stores no change until a new snapshot, so the rows
  alone would show the frozen pre-gap book as synced (:func:`broken`). A gap whose hole lies
  inside the ids the replay applied since its snapshot breaks nothing: another collector's rows
  filled it (:func:`holes_applied`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from hundi.book.rule import ContinuityRule, continues
from hundi.book.side import BookSide
from hundi.records import BID

BOOK_COLUMNS: Final = (
    "ts",
    "recv_ts",
    "side",
    "price",
    "size",
    "snapshot",
    "first_update_id",
    "update_id",
    "prev_update_id",
)
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(slots=True)
class Levels:
    """A full book: ``key`` is -price for bids and +price for asks, so sorted keys list each
    side best first; ``ts`` is when each level got its size."""

    key: F64
    size: F64
    ts: I64

    @staticmethod
    def empty() -> Levels:
        return Levels(np.empty(0), np.empty(0), np.empty(0, np.int64))

    def merge(self, key: F64, size: F64, ts: I64) -> Levels:
        """Apply level writes in order: last write per level wins, size 0 deletes."""
        if len(key) == 0:
            return self
        keys = np.concatenate([self.key, key])[::-1]
        sizes = np.concatenate([self.size, size])[::-1]
        stamps = np.concatenate([self.ts, ts])[::-1]
        unique, first = np.unique(keys, return_index=True)  # first in reversed = last written
        kept_sizes = sizes[first]
        keep = kept_sizes > 0.0
        return Levels(unique[keep], kept_sizes[keep], stamps[first][keep])


@dataclass(slots=True)
class ReplayState:
    """A stored book replayed up to some row: the levels plus what the next diff must continue."""

    levels: Levels
    synced: bool = False
    last_u: int = -1  # update_id of the last row seen (applied or not)
    last_snapshot: bool = False  # the last row seen was a snapshot row
    snapshot_ts: int = -1  # ts of the snapshot the book was restarted from
    update_id: int = -1  # update_id of the last applied row
    snapshot_id: int = -1  # update_id of the snapshot the book was restarted from


@dataclass(slots=True)
class Block:
    """Book rows as numpy columns, in exchange sequence order."""

    ts: I64
    side: npt.NDArray[np.int8]
    price: F64
    size: F64
    snapshot: Bools
    first_id: I64
    update_id: I64
    prev_id: I64
    carried: Bools = field(default_factory=lambda: np.zeros(0, np.bool_))

    def __len__(self) -> int:
        return len(self.ts)

    @staticmethod
    def from_table(table: pa.Table, carried: pa.Table | None = None) -> Block:
        """Rows of ``table`` (plus rows ``carried`` over from the day before), sequence-ordered.

        Rows first get the stable (ts, recv_ts) order a store read gives; then, when every row
        has an exchange sequence id, the stable sort by (update_id, not snapshot).
        """
        parts = [table] if carried is None or carried.num_rows == 0 else [carried, table]
        carry_flags = [np.zeros(table.num_rows, np.bool_)]
        if len(parts) == 2:
            assert carried is not None
            carry_flags.insert(0, np.ones(carried.num_rows, np.bool_))
        merged = pa.concat_tables(parts)

        def column(name: str) -> npt.NDArray[np.generic]:
            col = merged.column(name)
            if pa.types.is_timestamp(col.type):
                col = col.cast(pa.int64())
            values: npt.NDArray[np.generic] = np.asarray(col.to_numpy())
            return values

        ts = column("ts").astype(np.int64)
        recv = column("recv_ts").astype(np.int64)
        update_id = column("update_id").astype(np.int64)
        snapshot = column("snapshot").astype(np.bool_)
        order = np.lexsort((recv, ts))
        if len(update_id) and (update_id >= 0).all():
            order = order[np.lexsort((~snapshot[order], update_id[order]))]
        return Block(
            ts=ts[order],
            side=column("side").astype(np.int8)[order],
            price=column("price").astype(np.float64)[order],
            size=column("size").astype(np.float64)[order],
            snapshot=snapshot[order],
            first_id=column("first_update_id").astype(np.int64)[order],
            update_id=update_id[order],
            prev_id=column("prev_update_id").astype(np.int64)[order],
            carried=np.concatenate(carry_flags)[order],
        )

    def take(self, mask: Bools) -> pa.Table:
        """Selected rows as a table (the rows carried to the next day). Their order is already
        settled, so ``recv_ts`` (only a tie-breaker before the sequence sort) repeats ``ts``."""
        return pa.table(
            {
                "ts": pa.array(self.ts[mask], pa.timestamp("ns", tz="UTC")),
                "recv_ts": pa.array(self.ts[mask], pa.timestamp("ns", tz="UTC")),
                "side": self.side[mask],
                "price": self.price[mask],
                "size": self.size[mask],
                "snapshot": self.snapshot[mask],
                "first_update_id": self.first_id[mask],
                "update_id": self.update_id[mask],
                "prev_update_id": self.prev_id[mask],
            }
        )


def empty_rows() -> pa.Table:
    """A table of no book rows (the columns :meth:`Block.from_table` reads)."""
    return pa.table(
        {
            "ts": pa.array([], pa.timestamp("ns", tz="UTC")),
            "recv_ts": pa.array([], pa.timestamp("ns", tz="UTC")),
            "side": pa.array([], pa.int8()),
            "price": pa.array([], pa.float64()),
            "size": pa.array([], pa.float64()),
            "snapshot": pa.array([], pa.bool_()),
            "first_update_id": pa.array([], pa.int64()),
            "update_id": pa.array([], pa.int64()),
            "prev_update_id": pa.array([], pa.int64()),
        }
    )


@dataclass(slots=True)
class Sequence:
    """Where messages start, snapshot runs restart the book, and diffs break the sequence."""

    message_start: Bools
    resets: Bools
    breaks: Bools


def sequence(
    rule: ContinuityRule,
    snapshot: Bools,
    first_id: I64,
    update_id: I64,
    prev_id: I64,
    last_u: int,
    last_snapshot: bool,
) -> Sequence:
    """Judge sequence-ordered rows (``last_u``, ``last_snapshot``: the row before them, -1 and
    False for none).

    A message is a run of rows with one ``update_id`` and ``snapshot`` flag (it may go on from
    the row before the batch); a snapshot message restarts the book, a diff message that does
    not continue the row before it breaks it."""
    n = len(update_id)
    u, snap = update_id, snapshot
    prev_u = np.empty(n, np.int64)
    prev_u[:1] = last_u
    prev_u[1:] = u[:-1]
    prev_snap = np.empty(n, np.bool_)
    prev_snap[:1] = last_snapshot
    prev_snap[1:] = snap[:-1]
    # the first row too: a batch may begin inside a message
    message_start = (u != prev_u) | (snap != prev_snap)
    resets = message_start & snap
    ok = continues(rule, first_id, u, prev_id, prev_u, prev_snap)
    return Sequence(message_start, resets, message_start & ~snap & ~ok)


@dataclass(slots=True)
class Walk:
    """Per-row verdicts of one pass over a block from a start state (all vectorized)."""

    applied: Bools  # the row is part of a synced stretch (snapshot rows included)
    resets: I64  # positions where a snapshot run starts
    broken_from: int  # first row of the final unsynced stretch (len(block) if synced at end)


def walk(block: Block, start: ReplayState, rule: ContinuityRule) -> Walk:
    """Which rows of ``block`` are applied when replayed from ``start`` under ``rule``."""
    n = len(block)
    if n == 0:
        return Walk(np.zeros(0, np.bool_), np.zeros(0, np.int64), 0)
    judged = sequence(
        rule,
        block.snapshot,
        block.first_id,
        block.update_id,
        block.prev_id,
        start.last_u,
        start.last_snapshot,
    )
    snap = block.snapshot
    events = judged.resets | judged.breaks
    last_event = np.maximum.accumulate(np.where(events, np.arange(n), -1))
    applied = np.where(last_event >= 0, snap[np.maximum(last_event, 0)], start.synced)
    applied_rows = np.flatnonzero(applied)
    broken_from = int(applied_rows[-1]) + 1 if len(applied_rows) else 0
    return Walk(applied, np.flatnonzero(judged.resets), broken_from)


def advance(block: Block, start: ReplayState, verdict: Walk, stops: I64) -> list[ReplayState]:
    """States after the first ``p`` rows for each ``p`` in ``stops`` (ascending)."""
    states: list[ReplayState] = []
    state = start
    position = 0
    key_all = np.where(block.side == BID, -block.price, block.price)
    positions = np.arange(len(block))
    last_applied = np.maximum.accumulate(np.where(verdict.applied, positions, -1))
    for stop in stops.tolist():
        if stop > position:
            resets = verdict.resets[(verdict.resets >= position) & (verdict.resets < stop)]
            levels, snapshot_ts = state.levels, state.snapshot_ts
            snapshot_id = state.snapshot_id
            begin = position
            if len(resets):
                begin = int(resets[-1])
                levels, snapshot_ts = Levels.empty(), int(block.ts[begin])
                snapshot_id = int(block.update_id[begin])
            chosen = np.flatnonzero(verdict.applied[begin:stop]) + begin
            levels = levels.merge(key_all[chosen], block.size[chosen], block.ts[chosen])
            last = stop - 1
            applied_last = int(last_applied[last])
            state = ReplayState(
                levels=levels,
                synced=bool(verdict.applied[last]),
                last_u=int(block.update_id[last]),
                last_snapshot=bool(block.snapshot[last]),
                snapshot_ts=snapshot_ts,
                update_id=(
                    int(block.update_id[applied_last]) if applied_last >= 0 else state.update_id
                ),
                snapshot_id=snapshot_id,
            )
            position = stop
        states.append(state)
    return states


def replay(block: Block, start: ReplayState, rule: ContinuityRule) -> ReplayState:
    """The state after every row of ``block``, replayed from ``start``."""
    verdict = walk(block, start, rule)
    (state,) = advance(block, start, verdict, np.array([len(block)], np.int64))
    return state


def broken(gaps: I64, since_ns: int, at_ns: int) -> bool:
    """Whether a book ``gap`` event (sorted times ``gaps``) lies in ``(since_ns, at_ns]``: the
    stream broke after the snapshot at ``since_ns`` (a gap at the snapshot's own time is the one
    that snapshot repaired)."""
    return bool(
        np.searchsorted(gaps, at_ns, side="right") > np.searchsorted(gaps, since_ns, side="right")
    )


def book_at(state: ReplayState, gaps: I64, at_ns: int) -> ReplayState:
    """``state`` (the rows with ``ts <= at_ns`` replayed) judged against the book's stored gap
    events (sorted times): unsynced when the stream broke after its snapshot."""
    if state.synced and broken(gaps, state.snapshot_ts, at_ns):
        return ReplayState(
            state.levels,
            False,
            state.last_u,
            state.last_snapshot,
            state.snapshot_ts,
            state.update_id,
            state.snapshot_id,
        )
    return state


def holes_applied(state: ReplayState, expected: I64, received: I64) -> Bools:
    """Per book gap (its hole: ids ``expected`` up to ``received``): whether the synced replay
    ``state`` already applied every id of it, so it breaks nothing. Another collector's rows
    filled it (an A/B pair, or one restarted next to a running one): the replay is one unbroken
    chain from its snapshot to ``state.update_id``, so a hole that ends between the snapshot's
    id and that id is inside it, or, where it starts before the snapshot (both collectors of a
    pair restarted together: the other's restart gap starts where the old chain ended), is
    before the book the replay restarted and inside it after. ``received`` itself must be
    applied (USD-M names the last missed message's ``u`` there); a gap without such ids (a
    disconnect: -1; a checksum mismatch: checksums, not ids) is not judged so, unless such a
    value falls inside the applied ids by chance."""
    if not state.synced or state.snapshot_id < 0 or state.update_id < 0:
        return np.zeros(len(expected), np.bool_)
    inside: Bools = (
        (expected >= 0)
        & (received > expected)
        & (received >= state.snapshot_id)
        & (received <= state.update_id)
    )
    return inside


Top = tuple[float, float, float, float]  # bid price, bid size, ask price, ask size
NO_TOP: Final[Top] = (math.nan, math.nan, math.nan, math.nan)


def tops(
    block: Block,
    start: ReplayState,
    rule: ContinuityRule,
    gaps: I64,
    first_ns: int,
    until_ns: int,
) -> tuple[list[int], list[Top]]:
    """Top of book after every message of ``block`` replayed from ``start``, with a heap per
    side: (times, tops), times nondecreasing; :data:`NO_TOP` while unsynced.

    Messages before ``first_ns`` only build state; one row at ``first_ns`` gives the state
    there. Times are the running maximum of ``ts``, the moment a top became known (a spot
    snapshot's buffered diffs take effect at the snapshot). A book ``gap`` event (sorted times
    ``gaps``) after the book's snapshot unsyncs it, as in :func:`book_at`: the top turns
    unknown at the gap's time (a row for each gap in ``[first_ns, until_ns]``; ``block`` holds
    every row up to ``until_ns``), until the next snapshot run.
    """
    verdict = walk(block, start, rule)
    bids, asks = BookSide(-1), BookSide(1)
    for key, size in zip(start.levels.key.tolist(), start.levels.size.tolist(), strict=True):
        (bids if key < 0 else asks).set(abs(key), size)
    n = len(block)
    message_end = np.ones(n, np.bool_)
    if n:
        message_end[:-1] = (block.update_id[1:] != block.update_id[:-1]) | (
            block.snapshot[1:] != block.snapshot[:-1]
        )
    resets = np.zeros(n, np.bool_)
    resets[verdict.resets] = True
    effective = np.maximum.accumulate(block.ts) if n else block.ts
    gap_list = gaps.tolist()
    next_gap = int(np.searchsorted(gaps, first_ns, side="left"))  # gaps before first_ns: no row
    stamps: list[int] = []
    rows: list[Top] = []
    synced = start.synced
    snapshot_ts = start.snapshot_ts
    emitted_start = False

    def top(at_ns: int) -> Top:
        if not synced or broken(gaps, snapshot_ts, at_ns):
            return NO_TOP
        bid, ask = bids.best(), asks.best()
        return (
            math.nan if bid is None else bid,
            math.nan if bid is None else bids.levels[bid],
            math.nan if ask is None else ask,
            math.nan if ask is None else asks.levels[ask],
        )

    side, price, size, ts, applied = (
        block.side.tolist(),
        block.price.tolist(),
        block.size.tolist(),
        block.ts.tolist(),
        verdict.applied.tolist(),
    )
    ends, reset_list, eff = message_end.tolist(), resets.tolist(), effective.tolist()
    for i in range(n):
        if eff[i] >= first_ns and not emitted_start:
            stamps.append(first_ns)
            rows.append(top(first_ns))
            emitted_start = True
        while next_gap < len(gap_list) and gap_list[next_gap] < eff[i]:
            if emitted_start:  # the book turns unknown at the gap (if it was synced)
                stamps.append(gap_list[next_gap])
                rows.append(top(gap_list[next_gap]))
            next_gap += 1
        if reset_list[i]:
            bids.clear()
            asks.clear()
            snapshot_ts = ts[i]
        synced = applied[i]
        if synced:
            (bids if side[i] == BID else asks).set(price[i], size[i])
        if ends[i] and eff[i] >= first_ns:
            stamps.append(eff[i])
            rows.append(top(eff[i]))
    if not emitted_start:
        stamps.insert(0, first_ns)
        rows.insert(0, top(first_ns))
    for gap in gap_list[next_gap:]:
        if gap > until_ns:
            break
        stamps.append(gap)
        rows.append(top(gap))
    return stamps, rows
