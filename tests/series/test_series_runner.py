"""The series thread never blocks collection: when it is behind it skips input, restarts its
series and says so, rather than stalling the drain or computing from a hole."""

from __future__ import annotations

import threading
import time

from seriesdata import T0, S, trade

from hundi.records import BUY, Channel, Record
from hundi.series.engine import Batch, SeriesEngine, SeriesRunner
from hundi.series.spec import parse_series


class GatedEngine(SeriesEngine):
    """A real engine that waits for a gate before each batch (a slow computation)."""

    def __init__(self) -> None:
        super().__init__([(None, parse_series("bars:1s,grace:0ms"))])
        self.gate = threading.Event()
        self.started = threading.Event()

    def process(self, batch: Batch, now_ns: int) -> dict[Channel, list[Record]]:
        self.started.set()
        assert self.gate.wait(10)
        return super().process(batch, now_ns)


def test_a_busy_engine_skips_input_and_reports_it() -> None:
    engine = GatedEngine()
    runner = SeriesRunner(engine, max_batches=1)
    first = {Channel.TRADES: [trade(1, 0.1, 10.0, 1.0, BUY)]}
    assert runner.offer(first, T0 + S // 2)
    assert engine.started.wait(5)  # the thread holds batch 1
    assert runner.offer({}, T0 + S)  # batch 2 waits in the queue
    started = time.monotonic()
    assert not runner.offer({Channel.TRADES: [trade(2, 1.1, 11.0, 1.0, BUY)]}, T0 + 2 * S)
    assert time.monotonic() - started < 0.5  # never blocks the caller
    summary = runner.summary()
    assert summary["behind"] is True
    assert (summary["dropped_batches"], summary["dropped_records"]) == (1, 1)
    engine.gate.set()
    assert runner.offer({}, T0 + 5 * S) or runner.queue.full()
    runner.finish({}, T0 + 6 * S, timeout_s=5)
    summary = runner.summary()
    assert summary["restarts"] == 1  # the batch after the hole restarted every series
    assert summary["errors"] == 0
    # the bar of trade 1 closed before the hole; nothing from after it pretends continuity
    bars = runner.take().get(Channel.BARS, [])
    assert [b.ts for b in bars] == [T0]
