"""The Bybit microbenchmark's harness (``bench/venue_bybit.py``) measures what it claims: every
captured simulator frame is accepted, and the books it builds are synced."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from hundi.exchanges.base import RecordSink

pytestmark = pytest.mark.slow  # serves the simulator for a second

BENCH = Path(__file__).parents[3] / "bench"


def test_the_bybit_bench_runs_simulator_frames_without_rejections() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import venue_bybit
    finally:
        sys.path.remove(str(BENCH))
    listing, frames = asyncio.run(venue_bybit.capture(1.0))
    kinds = {data.split(b'"', 4)[3].split(b".")[0] for _, data in frames if b'"topic"' in data}
    assert {b"publicTrade", b"orderbook", b"tickers"} <= kinds
    result = venue_bybit.run(listing, frames, 0.01)
    assert result["frames"] >= len(frames) > 0 and result["rejected"] == 0
    assert result["records"] > 0 and result["frames_per_s_per_core"] > 0
    protocol = venue_bybit.make(listing)
    sink = RecordSink()
    for recv_ns, data in frames:
        protocol.receive("public", data, recv_ns, sink)
    assert [b.synced for b in protocol.books()] == [True] * 6  # 3 symbols: depth 50 and 1
    assert not [e for e in sink.events if e.kind == "gap"]
