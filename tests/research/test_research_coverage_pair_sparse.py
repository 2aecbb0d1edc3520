"""A restart beside a running collector on a stream sparser than the 250 ms floor is covered.

A ticker pushes once a second. A collector (X) restarted beside its running pair member (W)
stores a restart gap from the stream's last stored row to its own first row: nothing is stored
inside (W's next row is X's first), and the window is far longer than any collector's restart
floor, so the rows alone cannot tell it from a lone collector's hole. The writers can: W's run
holds the rows on both sides (docs/guarantees.md, "Two collectors on one stream"). Each writer
here is its own store instance, as each collector run is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from hundi.pipeline.resume import gap_event
from hundi.records import Candle, Channel, Event, EventKind, Record, Ticker
from hundi.research import coverage
from hundi.stores.base import StreamPosition, open_store
from hundi.stores.embedded import EmbeddedStore
from hundi.stores.merge import ran_through

S = 1_000_000_000
T0 = 1_714_608_000 * S  # 2024-05-02T00:00:00Z
SYMBOL = "BTC-USDT"


def ticker(second: int, recv_delay: int) -> Ticker:
    ts = T0 + second * S
    return Ticker(
        exchange="binance", symbol=SYMBOL, native_symbol="BTCUSDT", ts=ts,
        recv_ts=ts + recv_delay, last_price=100.0 + second, last_size=1.0, open_price=100.0,
        high_price=200.0, low_price=90.0, volume=10.0, quote_volume=1000.0, vwap=100.0,
        price_change=1.0, price_change_pct=1.0, trade_count=10, open_time=ts - 86_400 * S,
        close_time=ts, first_trade_id=1, last_trade_id=second,
    )  # fmt: skip


def pushes(first: int, last: int, recv_delay: int) -> list[Ticker]:
    return [ticker(second, recv_delay) for second in range(first, last + 1)]


def restart_gap(first: Ticker, last_stored: Ticker) -> Event:
    event = gap_event(Channel.TICKER, first, StreamPosition(last_stored.ts))
    assert event is not None and event.detail.startswith("restart: nothing received between")
    return event


def reconnect(second: float) -> Event:
    at = T0 + int(second * S)
    return Event(
        exchange="binance", symbol="", native_symbol="", ts=at, recv_ts=at,
        kind=EventKind.RECONNECT.value, channel="", expected=-1, received=-1,
        detail="connection public closed",
    )  # fmt: skip


def write_runs(url: str, *runs: Sequence[Record]) -> None:
    """Each run through its own store instance: its own writer, as each collector process."""
    for records in runs:
        store = open_store(url, fsync="no")
        try:
            by_channel: dict[Channel, list[Record]] = {}
            for record in records:
                by_channel.setdefault(record.CHANNEL, []).append(record)
            store.write(by_channel)
        finally:
            store.close()


def judged(url: str) -> tuple[list[str], int]:
    ranges = coverage(url, "binance", channel="ticker")
    return list(ranges["ended_by"]), int(ranges["covered"].sum())


def test_a_restart_beside_a_running_collector_is_covered(tmp_path: Path) -> None:
    """W pushes 0..120 s; X ran 0..40 s, and its restarted run's first push is at 50 s. Its
    look-up found W's push at 49 s: a 1 s window (no collector restarts within 250 ms) with
    nothing inside, which W's run has on both sides. Before: a hole."""
    url = str(tmp_path / "data")
    running = pushes(0, 120, recv_delay=2_000_000)
    first_run = pushes(0, 40, recv_delay=1_000_000)
    again = pushes(50, 120, recv_delay=1_000_000)
    write_runs(url, running, first_run, [restart_gap(again[0], running[49]), *again])
    assert judged(url) == ([""], 1)


def test_a_lone_collector_s_restart_stays_a_hole(tmp_path: Path) -> None:
    """Every push of the stream on both sides, but from two runs of one collector."""
    url = str(tmp_path / "data")
    first_run = pushes(0, 49, recv_delay=1_000_000)
    again = pushes(50, 120, recv_delay=1_000_000)
    write_runs(url, first_run, [restart_gap(again[0], first_run[-1]), *again])
    assert judged(url) == (["gap", ""], 0)


def test_both_restarted_over_the_window_is_a_hole(tmp_path: Path) -> None:
    """W restarted too (a new run, first push at 48 s): W's window (42..48 s) is a hole both
    had; X's (its look-up found W's new run's push at 49 s) is covered by that run."""
    url = str(tmp_path / "data")
    w_first, w_again = pushes(0, 42, 2_000_000), pushes(48, 120, 2_000_000)
    x_first, x_again = pushes(0, 40, 1_000_000), pushes(50, 120, 1_000_000)
    w_gap = restart_gap(w_again[0], w_first[-1])
    x_gap = restart_gap(x_again[0], w_again[1])
    write_runs(url, w_first, x_first, [w_gap, *w_again], [x_gap, *x_again])
    ranges = coverage(url, "binance", channel="ticker")
    assert list(ranges["ended_by"]) == ["gap", ""]
    assert "00:00:42.000" in ranges["gap_detail"].iloc[0]
    assert "00:00:49.000" in ranges["covered_detail"].iloc[1]


def test_a_reconnect_of_the_running_collector_within_the_window_leaves_the_hole(
    tmp_path: Path,
) -> None:
    """W's connection dropped within X's window: W ran, but did not surely receive
    throughout, so the window stays a hole."""
    url = str(tmp_path / "data")
    running = [*pushes(0, 49, 2_000_000), reconnect(49.5), *pushes(50, 120, 2_000_000)]
    first_run = pushes(0, 40, 1_000_000)
    again = pushes(50, 120, 1_000_000)
    write_runs(url, running, first_run, [restart_gap(again[0], running[49]), *again])
    assert judged(url) == (["gap", ""], 0)


def table(ts: list[float], writer: list[int]) -> pa.Table:
    return pa.table({"ts": [int(t * S) for t in ts], "writer": pa.array(writer, pa.int64())})


NONE = np.zeros(0, np.int64)


@pytest.mark.parametrize(
    ("ts", "writer", "through"),
    [
        ([40, 51], [0, 0], True),  # one writer on both sides
        ([40, 51], [0, 1], False),  # a run ended at 40 s, another began after 50 s
        ([39, 40, 50, 51], [0, 1, 2, 0], True),  # a compacted hour: W's nearest rows
        ([45, 51], [0, 0], True),  # a row inside, of a writer that runs on past the end
        ([40, 45, 51], [0, 0, 1], False),  # rows inside of a run that ended there
        ([40, 50.0005], [0, 0], False),  # not after the end's millisecond: a dead run's
        ([40, 50], [0, 0], False),  # candle stamped with the candle's start (review)
        ([], [], False),
    ],
)
def test_ran_through(ts: list[float], writer: list[int], through: bool) -> None:
    assert ran_through(table(ts, writer), 50 * S, NONE) is through


def test_ran_through_not_across_an_interruption() -> None:
    copies = table([39, 51], [0, 0])
    assert ran_through(copies, 50 * S, np.array([45 * S], np.int64)) is False
    assert ran_through(copies, 50 * S, np.array([38 * S, 52 * S], np.int64)) is True
    assert ran_through(copies, 50 * S, np.array([51 * S], np.int64)) is False


def test_a_dead_run_s_rows_stored_after_the_restart_looked_cover_nothing(
    tmp_path: Path,
) -> None:
    """The restarted collector's look-up found the push at 30 s: the pushes 31..40 s its dead
    run received were still in its outage spool (drained by the new run afterwards). They lie
    inside the window, but nobody received 41..49 s: a hole (it read covered before)."""
    url = str(tmp_path / "data")
    first_run = pushes(0, 40, recv_delay=1_000_000)
    again = pushes(50, 120, recv_delay=1_000_000)
    write_runs(url, first_run, [restart_gap(again[0], first_run[30]), *again])
    assert judged(url) == (["gap", ""], 0)


def candle(minute: int, second: int) -> Candle:
    """OKX stamps every update of a candle with the candle's start."""
    start = T0 + minute * 60 * S
    return Candle(
        exchange="okx", symbol=SYMBOL, native_symbol="BTC-USDT", ts=start,
        recv_ts=start + second * S, interval="1m", open_time=start,
        close_time=start + 60 * S - 1, open=100.0, high=100.0 + second, low=99.0,
        close=100.0 + second, volume=float(second), quote_volume=100.0 * second,
        taker_buy_volume=0.0, trade_count=second, closed=second >= 58,
    )  # fmt: skip


def test_a_lone_restart_within_a_candle_stamped_with_its_start_stays_a_hole(
    tmp_path: Path,
) -> None:
    """X pushes candles every 2 s and is killed at 5:30; its restart's first update of the
    same candle comes at 5:41 (found by review: X's own rows stamped 5:00, the window's end,
    passed as another collector's after the window). Updates 5:32..5:40 nobody stored."""
    url = str(tmp_path / "data")
    x = [candle(m, sec) for m in range(5) for sec in range(0, 60, 2)]
    x += [candle(5, sec) for sec in range(0, 31, 2)]
    again = [candle(5, sec) for sec in range(41, 60, 2)]
    again += [candle(m, sec) for m in range(6, 9) for sec in range(0, 60, 2)]
    write_runs(url, x)
    store = open_store(url, fsync="no")
    try:
        began = T0 + 5 * 60 * S + 40 * S
        last = store.last_position("okx", SYMBOL, Channel.CANDLES, min(again[0].ts, began))
        gap = gap_event(Channel.CANDLES, again[0], last)
        assert gap is not None
        store.write({Channel.CANDLES: again, Channel.EVENTS: [gap]})
    finally:
        store.close()
    ranges = coverage(url, "okx", channel="candles")
    assert list(ranges["ended_by"]) == ["gap", ""]
    assert int(ranges["covered"].sum()) == 0


def test_a_reconnect_before_the_report_s_start_still_interrupts(tmp_path: Path) -> None:
    """W's connection dropped just before midnight and X's restart window crosses it: a report
    of the day after (found by review) judges it as the report of both days does, a hole."""
    url = str(tmp_path / "data")
    running = [*pushes(-60, -5, 2_000_000), reconnect(-0.2), *pushes(2, 120, 2_000_000)]
    first_run = pushes(-60, -20, 1_000_000)
    again = pushes(1, 120, 1_000_000)
    write_runs(url, running, first_run, [restart_gap(again[0], running[55]), *again])
    assert judged(url) == (["gap", ""], 0)
    # the day's report starts at the gap (no range before it to end), and covers nothing
    day = coverage(url, "binance", channel="ticker", start="2024-05-02", end="2024-05-03")
    assert list(day["ended_by"]) == [""] and int(day["covered"].sum()) == 0


def test_a_restart_loop_reads_the_copies_once_per_stretch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """X restarts every 2 minutes beside W for an hour: 29 windows judged with one read of
    copies (per gap, a collector in a restart loop made coverage quadratic: review)."""
    url = str(tmp_path / "data")
    running = pushes(0, 3600, recv_delay=2_000_000)
    runs: list[Sequence[Record]] = [running]
    for start in range(0, 3480, 120):
        run = pushes(start + 10, start + 120, recv_delay=1_000_000)
        runs.append([restart_gap(run[0], running[start + 9]), *run] if start else run)
    write_runs(url, *runs)
    calls: list[tuple[int, int]] = []
    copies = EmbeddedStore.copies

    def counted(self: EmbeddedStore, **kwargs: Any) -> pa.Table | None:
        calls.append((kwargs["start_ns"], kwargs["end_ns"]))
        return copies(self, **kwargs)

    monkeypatch.setattr(EmbeddedStore, "copies", counted)
    assert judged(url) == ([""], 28)
    assert len(calls) == 1
