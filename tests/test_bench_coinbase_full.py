"""``bench/venue_coinbase_full.py`` runs and measures what it says: every generated frame
accepted and stored, the books synced throughout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).parents[1] / "bench"


def test_the_full_channel_microbench_accepts_every_frame() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import venue_coinbase_full
    finally:
        sys.path.remove(str(BENCH))
    result: dict[str, Any] = venue_coinbase_full.run(steps=300, repeat=1)
    assert result["frames"] == result["records"] and result["records"] > 300
    assert set(result["kinds"]) >= {"received", "open", "match", "done"}
    assert result["frames_per_s_per_core"] > 0
