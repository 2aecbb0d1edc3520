"""A lone collector's restart hole is a hole, however short next to the stream's spacing.

``hundi.coverage`` may only call a stored gap *covered* on evidence that another collector
received data across it (docs/guarantees.md, "Two collectors on one stream"). A collector
restarted within the stream's usual (99th percentile) spacing still missed whatever was sent
while it was down: with one collector nobody stored it.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from hundi.pipeline.resume import gap_event
from hundi.records import Bbo, Channel, to_arrow
from hundi.research import coverage
from hundi.stores.base import StreamPosition
from hundi.stores.embedded import EmbeddedStore
from hundi.stores.merge import covered_gaps

S = 1_000_000_000
T0 = 1_714_608_000 * S  # 2024-05-02


def bbo(ts: int, update_id: int) -> Bbo:
    return Bbo(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=ts,
        update_id=update_id, bid_price=100.0, bid_size=1.0, ask_price=101.0, ask_size=1.0,
    )  # fmt: skip


def quiet_stream() -> tuple[list[Bbo], list[Bbo]]:
    """Updates every second with a 30 s lull every 50 (p99 spacing 30 s); the collector dies
    after update 300 and its first update after the restart comes 12 s later (the seconds in
    between sent updates, as every second before did)."""
    before, t = [], T0
    for i in range(300):
        t += 30 * S if i % 50 == 49 else S
        before.append(bbo(t, i))
    after = [bbo(t + 12 * S + i * S, 400 + i) for i in range(20)]
    return before, after


def test_the_spacing_does_not_cover_a_lone_collectors_restart(tmp_path: Path) -> None:
    before, after = quiet_stream()
    event = gap_event(Channel.BBO, after[0], StreamPosition(before[-1].ts))
    assert event is not None and "between" in event.detail
    events = to_arrow(Channel.EVENTS, [event])
    data = to_arrow(Channel.BBO, before + after)
    assert covered_gaps(events, Channel.BBO, data).tolist() == [False]

    # the restart is a new process: another run (writer) of the store
    store = EmbeddedStore(str(tmp_path / "data"), fsync=False)
    store.write({Channel.BBO: before})
    store.close()
    store = EmbeddedStore(str(tmp_path / "data"), fsync=False)
    store.write({Channel.BBO: after, Channel.EVENTS: [event]})
    store.close()
    ranges = coverage(str(tmp_path / "data"), "binance", channel="bbo")
    assert list(ranges["ended_by"]) == ["gap", ""], ranges
    assert int(ranges["covered"].sum()) == 0


def test_another_collectors_row_inside_the_window_covers_it() -> None:
    before, after = quiet_stream()
    event = gap_event(Channel.BBO, after[0], StreamPosition(before[-1].ts))
    assert event is not None
    other = bbo(before[-1].ts + 5 * S, 350)  # B received one while A was down
    data = to_arrow(Channel.BBO, [*before, other, *after])
    events = to_arrow(Channel.EVENTS, [event])
    assert covered_gaps(events, Channel.BBO, data).tolist() == [True]
    assert isinstance(data, pa.Table)


def test_a_lone_restart_shorter_than_the_spacing_but_not_instant_is_a_hole() -> None:
    """2 s down on a stream whose 99th percentile spacing is 30 s: still a hole."""
    before, _ = quiet_stream()
    first = bbo(before[-1].ts + 2 * S, 999)
    event = gap_event(Channel.BBO, first, StreamPosition(before[-1].ts))
    assert event is not None
    data = to_arrow(Channel.BBO, [*before, first])
    assert covered_gaps(to_arrow(Channel.EVENTS, [event]), Channel.BBO, data).tolist() == [False]
