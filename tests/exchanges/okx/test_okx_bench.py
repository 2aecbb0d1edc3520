"""The OKX microbenchmark's harness measures what it claims (``bench/venue_okx.py``): the
recording's frames with every checksum verified, and 2026 pushes applied to a synced book."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow  # loops the recording

BENCH = Path(__file__).parents[3] / "bench"


def bench() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        import venue_okx
    finally:
        sys.path.remove(str(BENCH))
    return venue_okx


def test_the_okx_bench_replays_the_recording(recordings_dir: Path) -> None:
    venue_okx = bench()
    make, frames = venue_okx.recording()
    result = venue_okx.run(make, frames, 0.01)
    assert result["frames"] == len(frames) == 410
    assert result["rejected"] == 0 and result["checksum_mismatches"] == 0
    assert result["checksums_verified"] == 290 and result["frames_per_s_per_core"] > 0


def test_the_okx_bench_keeps_its_synthetic_book_synced() -> None:
    venue_okx = bench()
    make, frames = venue_okx.synthetic(2000, mix=True)
    protocol = make()
    from hundi.exchanges.base import RecordSink

    sink = RecordSink()
    for recv_ns, data in frames:
        protocol.receive("public", data, recv_ns, sink)
    assert protocol.book_of[venue_okx.INST].synced
    assert sink.events == [] and len(sink.book) > 0 and len(sink.trades) > 0
    assert venue_okx.run(make, frames, 0.01)["rejected"] == 0
