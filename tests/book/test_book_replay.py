"""Applying stored book rows: continuity rules, the walk, gap events and the top after each
message (``hundi.book.replay``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hundi.book import (
    UNCHECKED,
    Block,
    ContinuityRule,
    Levels,
    ReplayState,
    book_at,
    broken,
    continues,
    replay,
    tops,
    walk,
)
from hundi.exchanges.binance.book import BOOK_RULE
from hundi.records import ASK, BID, BookChange, Channel, to_arrow

S = 1_000_000_000


def row(at_s: float, side: int, price: float, size: float, u: int, *, first: int = -1,
        prev: int = -1, snapshot: bool = False) -> BookChange:  # fmt: skip
    ts = round(at_s * S)
    return BookChange(
        exchange="binance", symbol="X-Y", native_symbol="XY", ts=ts, recv_ts=ts, side=side,
        price=price, size=size, snapshot=snapshot, first_update_id=first, update_id=u,
        prev_update_id=prev,
    )  # fmt: skip


def block(rows: list[BookChange]) -> Block:
    return Block.from_table(to_arrow(Channel.BOOK, rows))


def spot(gap_at: int | None = None) -> list[BookChange]:
    """Snapshot 10 at 1 s, diffs 11..15 at 2..6 s (``gap_at``: that diff is missing)."""
    rows = [row(1, BID, 99.0, 1.0, 10, snapshot=True), row(1, ASK, 101.0, 1.0, 10, snapshot=True)]
    for i, u in enumerate(range(11, 16)):
        if u != gap_at:
            rows.append(row(2 + i, BID, 99.0 + 0.1 * (i + 1), 1.0, u, first=u))
    return rows


I64 = np.ndarray


def ids(
    first: list[int], u: list[int], prev: list[int], prev_u: list[int]
) -> tuple[I64, I64, I64, I64]:
    """Row-aligned id columns: first_update_id, update_id, prev_update_id, the previous u."""
    arrays = [np.asarray(v, np.int64) for v in (first, u, prev, prev_u)]
    return arrays[0], arrays[1], arrays[2], arrays[3]


def test_binance_rule_spot_and_usdm() -> None:
    rule: ContinuityRule = BOOK_RULE
    # spot: after a snapshot straddle U <= id + 1 <= u; after a diff U == previous u + 1
    first, u, prev, prev_u = ids([5, 12, 11, 11], [12, 14, 11, 12], [-1, -1, -1, -1], [10] * 4)
    assert rule.after_snapshot(first, u, prev, prev_u).tolist() == [True, False, True, True]
    assert rule.after_diff(first, u, prev, prev_u).tolist() == [False, False, True, True]
    # USD-M: after a snapshot U <= id <= u; after a diff pu == previous u
    first, u, prev, prev_u = ids([5, 11, 9], [12, 14, 10], [10, 9, 3], [10, 10, 10])
    assert rule.after_snapshot(first, u, prev, prev_u).tolist() == [True, False, True]
    assert rule.after_diff(first, u, prev, prev_u).tolist() == [True, False, False]


def test_rows_without_sequence_ids_or_a_predecessor_always_continue() -> None:
    first, u, prev, prev_u = ids([50, 50, 50], [-1, 60, 60], [-1, -1, -1], [10, -1, 10])
    snap = np.zeros(3, np.bool_)
    assert continues(BOOK_RULE, first, u, prev, prev_u, snap).tolist() == [True, True, False]
    assert continues(UNCHECKED, first, u, prev, prev_u, snap).tolist() == [True, True, True]


def test_a_continuous_stream_is_synced_and_a_missing_diff_breaks_it() -> None:
    start = ReplayState(Levels.empty())
    state = replay(block(spot()), start, BOOK_RULE)
    assert state.synced and state.update_id == 15 and state.snapshot_ts == S
    assert state.levels.key.tolist() == [-99.5, -99.4, -99.3, -99.2, -99.1, -99.0, 101.0]
    broken_state = replay(block(spot(gap_at=13)), start, BOOK_RULE)
    assert not broken_state.synced and broken_state.update_id == 12  # frozen at 12
    assert broken_state.levels.key.tolist() == [-99.2, -99.1, -99.0, 101.0]
    verdict = walk(block(spot(gap_at=13)), start, BOOK_RULE)
    assert verdict.applied.tolist() == [True, True, True, True, False, False]
    assert verdict.broken_from == 4
    # without a rule only snapshots matter
    assert replay(block(spot(gap_at=13)), start, UNCHECKED).synced


def test_a_gap_event_after_the_snapshot_unsyncs_the_book() -> None:
    state = replay(block(spot()), ReplayState(Levels.empty()), BOOK_RULE)
    gaps = np.asarray([S, 4 * S], np.int64)
    assert not broken(gaps, S, 3 * S)  # the gap at the snapshot's own time is repaired
    assert broken(gaps, S, 4 * S)
    assert book_at(state, gaps[:1], 7 * S).synced
    judged = book_at(state, gaps, 7 * S)
    assert not judged.synced and judged.levels is state.levels


def test_tops_follow_messages_and_gaps() -> None:
    rows = block(spot())
    start = ReplayState(Levels.empty())
    gaps = np.asarray([4 * S + S // 2], np.int64)
    stamps, values = tops(rows, start, BOOK_RULE, gaps, 0, 10 * S)
    assert stamps == [0, S, 2 * S, 3 * S, 4 * S, 4 * S + S // 2, 5 * S, 6 * S]
    assert math.isnan(values[0][0])  # before the snapshot
    assert values[1] == (99.0, 1.0, 101.0, 1.0)
    assert values[4][0] == pytest.approx(99.3)
    assert all(math.isnan(v[0]) for v in values[5:])  # from the gap on
    # a gap after the last row (up to until_ns) still gets its row; later ones do not
    stamps, values = tops(rows, start, BOOK_RULE, np.asarray([8 * S, 11 * S]), 0, 10 * S)
    assert stamps[-2:] == [6 * S, 8 * S] and math.isnan(values[-1][0])
    # no rows: the start state at first_ns
    state = replay(rows, start, BOOK_RULE)
    stamps, values = tops(block([]), state, BOOK_RULE, np.zeros(0, np.int64), 9 * S, 10 * S)
    assert stamps == [9 * S] and values[0][0] == pytest.approx(99.5)
