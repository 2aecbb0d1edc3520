"""``bench/book_l3_replay.py`` measures what it says: both sessions end with the same book (the
one the generator kept), one replayed from the first snapshot, the other from the last hourly
checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).parents[1] / "bench"


def test_the_replay_bench_compares_equal_books_replayed_from_different_snapshots(
    tmp_path: Path,
) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import book_l3_replay as bench
    finally:
        sys.path.remove(str(BENCH))
    at = bench.T0 + 3 * bench.HOUR - 1
    found = {}
    for name, checkpoints in (("once", False), ("hourly", True)):
        rows, resting = bench.write_session(tmp_path / name, 3, 2_000, checkpoints)
        assert rows > 6_000
        found[name] = bench.timed(tmp_path / name, at, resting)  # asserts the book's size
    assert found["once"]["orders"] == found["hourly"]["orders"]
    assert found["once"]["replayed_from_hours_back"] == 3.0
    assert found["hourly"]["replayed_from_hours_back"] == 1.0
    assert found["once"]["synced"] and found["hourly"]["synced"]
