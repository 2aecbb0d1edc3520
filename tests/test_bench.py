"""The benchmark's own harness: ``make bench`` must produce figures, not crash."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # reads the recordings and loops the venue

BENCH = Path(__file__).parents[1] / "bench"


def test_the_recording_microbench_feeds_frames_the_venue_accepts(recordings_dir: Path) -> None:
    # The venue checks each frame's event time against its receive time; the bench once passed
    # today's clock for 2021 frames, so every frame was rejected and `make bench` crashed.
    sys.path.insert(0, str(BENCH))
    try:
        import micro
    finally:
        sys.path.remove(str(BENCH))
    results = micro.recordings_bench(0.01)
    assert {r["source"] for r in results} >= {"recording BINANCE.ws.1.0"}
    assert all(r["rejected"] == 0 and r["records"] > 0 for r in results), results
