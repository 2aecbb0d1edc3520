"""Trade-id continuity: gaps are reported once, duplicates dropped, late ids fill holes."""

from __future__ import annotations

from hypothesis import given
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
