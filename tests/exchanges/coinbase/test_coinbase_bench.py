"""``bench/venue_coinbase.py`` must produce figures, on frames the protocol accepts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).parents[3] / "bench"


def test_the_coinbase_microbench_runs_on_accepted_frames(recordings_dir: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import venue_coinbase
    finally:
        sys.path.remove(str(BENCH))
    results = venue_coinbase.main(0.02)
    cases = {r["case"] for r in results}
    assert {"recording COINBASE.ws.28.0", "generated l2update", "generated match"} <= cases
    assert all(r["frames_per_s"] > 0 for r in results)
    assert results[0]["rejected"] == 0 and results[0]["records"] > 0
