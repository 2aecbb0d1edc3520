"""Trade-id continuity: gaps are reported once, duplicates dropped, late ids fill holes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hundi.exchanges.sequence import IdSequence, IdVerdict


def test_contiguous_ids_are_next() -> None:
    seq = IdSequence()
    assert [seq.check(i, i) for i in range(5, 9)] == [IdVerdict.NEXT] * 4
    assert seq.expected() == 9


def test_skip_then_late_fill_then_duplicate() -> None:
    seq = IdSequence()
    seq.check(1, 1)
    assert seq.check(5, 5) is IdVerdict.AHEAD  # 2..4 missing
    assert list(map(list, seq.holes)) == [[2, 4]]
    assert seq.check(3, 3) is IdVerdict.LATE
    assert list(map(list, seq.holes)) == [[2, 2], [4, 4]]
    assert seq.check(3, 3) is IdVerdict.DUPLICATE
    assert seq.check(5, 5) is IdVerdict.DUPLICATE
    assert seq.check(2, 2) is IdVerdict.LATE
    assert seq.check(4, 4) is IdVerdict.LATE
    assert not seq.holes


def test_hole_memory_is_bounded() -> None:
    seq = IdSequence(max_holes=3)
    seq.check(0, 0)
    for i in range(1, 20):
        seq.check(i * 10, i * 10)
    assert len(seq.holes) == 3


@given(st.permutations(list(range(30))), st.sets(st.integers(0, 29)))
def test_every_id_is_stored_once_and_every_missing_id_is_in_a_hole(
    order: list[int], dropped: set[int]
) -> None:
    """Any arrival order with drops and resends: each received id is admitted exactly once."""
    seq = IdSequence(max_holes=100)
    arrivals = [i for i in order if i not in dropped]
    arrivals += arrivals[: len(arrivals) // 3]  # resends
    admitted: list[int] = []
    for i in arrivals:
        if seq.check(i, i) is not IdVerdict.DUPLICATE:
            admitted.append(i)
    assert sorted(admitted) == sorted(set(arrivals))
    if admitted:
        first = min(admitted)
        holes = {i for lo, hi in seq.holes for i in range(lo, hi + 1)}
        for missing in set(range(first, seq.last + 1)) - set(admitted):
            assert missing in holes


def test_late_ids_fill_holes_when_many_holes_are_recorded() -> None:
    """64 recorded holes used to fill the deque: a late id splitting one raised IndexError,
    and the oldest holes were silently forgotten (their late ids called duplicates)."""
    seq = IdSequence()
    seq.check(0, 0)
    for i in range(1, 65):
        assert seq.check(i * 10, i * 10) is IdVerdict.AHEAD  # holes i*10-9 .. i*10-1
    assert len(seq.holes) == 64
    assert seq.check(5, 5) is IdVerdict.LATE  # splits the oldest hole in two
    assert seq.check(1, 1) is IdVerdict.LATE
    assert seq.check(635, 635) is IdVerdict.LATE  # the newest hole
    assert seq.check(5, 5) is IdVerdict.DUPLICATE
    assert seq.check(10, 10) is IdVerdict.DUPLICATE
    assert seq.check(100, 100) is IdVerdict.DUPLICATE
    assert seq.check(4, 4) is IdVerdict.LATE


def test_holes_past_the_bound_are_declared_final_oldest_first() -> None:
    """With more holes than ``max_holes`` the oldest is settled: ids up to its end are final
    (``EXPIRED``: seen, or lost for good), never misnamed, while newer holes still fill."""
    seq = IdSequence(max_holes=2)
    seq.check(0, 0)
    seq.check(10, 10)  # hole 1..9
    seq.check(20, 20)  # hole 11..19
    seq.check(30, 30)  # hole 21..29: 1..9 is settled
    assert [tuple(h) for h in seq.holes] == [(11, 19), (21, 29)]
    assert seq.check(5, 5) is IdVerdict.EXPIRED  # in the settled hole
    assert seq.check(0, 0) is IdVerdict.EXPIRED  # seen, but below the settled point
    assert seq.check(15, 15) is IdVerdict.LATE  # splits 11..19: three holes, 11..14 settled
    assert [tuple(h) for h in seq.holes] == [(16, 19), (21, 29)]
    assert seq.check(15, 15) is IdVerdict.DUPLICATE
    assert seq.check(20, 20) is IdVerdict.DUPLICATE
    assert seq.check(12, 12) is IdVerdict.EXPIRED
    assert seq.check(16, 16) is IdVerdict.LATE
    assert seq.check(16, 16) is IdVerdict.DUPLICATE
    assert seq.check(25, 25) is IdVerdict.LATE  # splits 21..29: 17..19 settled
    assert [tuple(h) for h in seq.holes] == [(21, 24), (26, 29)]
    assert seq.check(18, 18) is IdVerdict.EXPIRED


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 300), min_size=1, max_size=400),
    st.integers(1, 12),
)
def test_any_arrival_order_is_classified_exactly(arrivals: list[int], max_holes: int) -> None:
    """Many holes (more than remembered), late ids, resends, in any order: never an exception,
    a new id is stored unless it is below the settled point, a seen id is never stored again,
    ``DUPLICATE`` only for ids really seen, and the holes are exactly the unseen tracked ids."""
    seq = IdSequence(max_holes=max_holes)
    seen: set[int] = set()
    for i in arrivals:
        holes_before = {j for lo, hi in seq.holes for j in range(lo, hi + 1)}
        settled_below = seq.first
        verdict = seq.check(i, i)
        if verdict is IdVerdict.DUPLICATE:
            assert i in seen
        elif verdict is IdVerdict.EXPIRED:
            assert seen and i < settled_below  # only what the bound declared final
        else:
            assert i not in seen  # stored: never twice
            seen.add(i)
        if i in holes_before:
            assert verdict is IdVerdict.LATE
        if i not in seen:  # not stored: only possible below the settled point
            assert i < settled_below
        assert len(seq.holes) <= max_holes
        bounds = [b for hole in seq.holes for b in hole]
        assert bounds == sorted(bounds) and len(set(bounds[1::2])) == len(seq.holes)
        holes = {j for lo, hi in seq.holes for j in range(lo, hi + 1)}
        tracked = set(range(seq.first, seq.last + 1))
        assert holes == tracked - seen  # every unseen tracked id is a hole, and only those
