"""``bench/venue_bitstamp.py`` produces figures: its frames are accepted, its books stay synced."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # reads the recording and generates a market

BENCH = Path(__file__).parents[3] / "bench"


def test_the_bitstamp_bench_runs_on_the_recording_and_simulator_frames(
    recordings_dir: Path,
) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import venue_bitstamp
    finally:
        sys.path.remove(str(BENCH))
    # the bench times exactly what ``hundi replay BITSTAMP.*`` parses (it asserts 0 rejected)
    recording = venue_bitstamp.recording_bench(2)
    assert recording["frames"] == 2 * 747 and recording["records"] == 2 * 10_641
    simulated = venue_bitstamp.simulator_bench(2_000, 1)
    # every simulator frame carries a trade or book change once the books are synced
    assert simulated["frames"] > 1_000 and simulated["records"] >= simulated["frames"]
