"""``bench/venue_coinbase_full.py`` runs and measures what it says: every generated frame
processed and stored once, no gap, the books synced throughout and equal to the model's."""

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
    result: dict[str, Any] = venue_coinbase_full.run(steps=1500, repeat=1)
    assert result["frames"] == result["records"] and result["records"] > 1500
    assert result["statuses"] == {"processed": result["frames"]}
    assert result["events"] == 0  # no gap, no resync while timed
    assert result["books_equal_model"] is True
    assert set(result["kinds"]) >= {"received", "open", "match", "change", "done"}
    assert result["frames_per_s_per_core"] > 0
