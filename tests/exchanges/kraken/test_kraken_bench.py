"""The Kraken microbenchmark's harness runs the recording cleanly (``bench/venue_kraken.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # loops the recording

BENCH = Path(__file__).parents[3] / "bench"


def test_the_kraken_bench_replays_the_recording_without_rejections(recordings_dir: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import venue_kraken
    finally:
        sys.path.remove(str(BENCH))
    make, frames = venue_kraken.recording_source()
    result = venue_kraken.run(make, frames, 0.01)
    assert result["frames"] == len(frames) == 4321
    assert result["rejected"] == 0 and result["checksum_mismatches"] == 0
    assert result["checksums_verified"] == 4269 and result["frames_per_s_per_core"] > 0


def test_the_kraken_bench_times_backfill_pages() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import venue_kraken
    finally:
        sys.path.remove(str(BENCH))
    result = venue_kraken.backfill_pages(0.01)
    assert result["pages"] >= 1 and result["trades_per_s_per_core"] > 0
