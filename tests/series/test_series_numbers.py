"""The series' numbers against hand-computed small cases, online and offline alike."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from seriesdata import BOOK, MS, T0, S, at, change, frame, quote, trade

from hundi.records import ASK, BID, BUY, SELL, Bar, BookTop, Channel, Record
from hundi.series import offline
from hundi.series.core import window_sums
from hundi.series.engine import SeriesEngine
from hundi.series.spec import parse_series


def bars_of(out: dict[Channel, list[Record]], interval: str) -> list[Bar]:
    return [b for b in out.get(Channel.BARS, []) if isinstance(b, Bar) and b.interval == interval]


TRADES = [
    trade(1, 0.1, 10.0, 1.0, BUY),
    trade(2, 0.5, 12.0, 2.0, SELL),
    trade(3, 2.2, 11.0, 1.0, BUY),
]


def test_time_bars_ohlcv_and_the_empty_bar_carries_the_close() -> None:
    bars = offline.time_bars(frame(Channel.TRADES, TRADES), "1s", grace="0ms")
    assert list(bars.index) == [at(0), at(1), at(2)]
    first, empty, last = (bars.iloc[i] for i in range(3))
    assert (first.open, first.high, first.low, first.close) == (10.0, 12.0, 10.0, 12.0)
    assert (first.volume, first.quote_volume, first.trade_count) == (3.0, 34.0, 2)
    assert first.vwap == pytest.approx(34.0 / 3)
    assert (first.buy_volume, first.sell_volume) == (1.0, 2.0)
    assert (first.first_trade_id, first.last_trade_id) == (1, 2)
    assert first.close_time == at(1)
    assert (empty.open, empty.high, empty.low, empty.close) == (12.0, 12.0, 12.0, 12.0)
    assert (empty.volume, empty.trade_count, empty.first_trade_id) == (0.0, 0, -1)
    assert math.isnan(empty.vwap)
    assert (last.open, last.close, last.volume) == (11.0, 11.0, 1.0)
    # trailing empty bars up to ``end``
    longer = offline.time_bars(frame(Channel.TRADES, TRADES), "1s", grace="0ms", end=at(5))
    assert len(longer) == 5 and list(longer["close"].iloc[3:]) == [11.0, 11.0]


def test_online_bars_close_on_the_clock_without_trades() -> None:
    engine = SeriesEngine([(None, parse_series("bars:1s,grace:200ms"))])
    assert engine.process({Channel.TRADES: TRADES[:2]}, T0 + 900 * MS) == {}
    # 1.2 s: bar [0, 1) is final (1 s + 200 ms grace) although no trade came since
    first = bars_of(engine.process({}, T0 + 1200 * MS), "1s")
    assert [(b.ts, b.close, b.volume) for b in first] == [(T0, 12.0, 3.0)]
    assert first[0].recv_ts == T0 + 1200 * MS
    assert engine.process({}, T0 + 2100 * MS) == {}
    empty = bars_of(engine.process({}, T0 + 2200 * MS), "1s")
    assert [(b.ts, b.open, b.close, b.volume, b.trade_count) for b in empty] == [
        (T0 + S, 12.0, 12.0, 0.0, 0)
    ]


def test_grace_decides_the_bar_of_a_late_trade() -> None:
    """ts 0.9 s: received at 1.2 s it still counts in [0, 1) (grace 500ms); at 1.6 s, in [1, 2)."""
    for recv_s, bar_start in ((1.2, 0), (1.6, 1)):
        late = [trade(1, 0.9, 10.0, 1.0, BUY, recv_s=recv_s)]
        bars = offline.time_bars(frame(Channel.TRADES, late), "1s", grace="500ms")
        assert bars.index[0] == at(bar_start) and bars["volume"].iloc[0] == 1.0
        engine = SeriesEngine([(None, parse_series("bars:1s,grace:500ms"))])
        engine.process({Channel.TRADES: late}, T0 + round(recv_s * S))
        online = bars_of(engine.process({}, T0 + 3 * S), "1s")
        assert online[0].ts == T0 + bar_start * S and online[0].volume == 1.0
        assert engine.late == 0


def test_a_trade_for_an_emitted_bar_is_counted_late_and_kept() -> None:
    engine = SeriesEngine([(None, parse_series("bars:1s,grace:0ms"))])
    engine.process({Channel.TRADES: TRADES[:1]}, T0 + 1500 * MS)
    # received "before" the last drain: only a clock stepping back can do that
    stray = trade(2, 0.5, 12.0, 2.0, SELL, recv_s=0.6)
    out = engine.process({Channel.TRADES: [stray]}, T0 + 2500 * MS)
    assert engine.late == 1
    assert [(b.ts, b.volume) for b in bars_of(out, "1s")] == [(T0 + S, 2.0)]


def test_tick_and_volume_bars() -> None:
    trades = [
        trade(i + 1, i * 0.1, 10.0 + i, size, BUY if i % 2 else SELL)
        for i, size in enumerate([1.0, 2.0, 1.0, 3.0, 1.0])
    ]
    ticks = offline.tick_bars(frame(Channel.TRADES, trades), 2)
    assert list(ticks["trade_count"]) == [2, 2]  # the fifth trade waits for a second one
    assert list(ticks["open"]) == [10.0, 12.0] and list(ticks["close"]) == [11.0, 13.0]
    assert list(ticks.index) == [at(0), at(0.2)] and list(ticks["close_time"]) == [at(0.1), at(0.3)]
    # cumulative size before each trade: 0 1 3 4 7 → bars 0 0 1 1 2; bar 2 is unfinished (8 < 9)
    volume = offline.volume_bars(frame(Channel.TRADES, trades), 3.0)
    assert list(volume["volume"]) == [3.0, 4.0] and list(volume["last_trade_id"]) == [2, 4]
    assert list(volume["interval"]) == ["volume:3", "volume:3"]


def test_book_snapshots_metrics_and_levels() -> None:
    book = frame(Channel.BOOK, BOOK)
    tops = offline.book_snapshots(book, 2, "1s")
    # at 1 s: the snapshot; at 2 s: after the 1.5 s diff; 3 s would need a change after it
    assert list(tops.index) == [at(1), at(2)]
    one, two = tops.iloc[0], tops.iloc[1]
    assert (one.bid_price, one.bid_size, one.ask_price, one.ask_size) == (100.0, 1.0, 101.0, 3.0)
    assert (one.mid, one.spread) == (100.5, 1.0)
    assert one.microprice == pytest.approx((100 * 3 + 101 * 1) / 4)
    assert one.imbalance == pytest.approx((3 - 4) / 7)
    assert (one.bid_volume, one.ask_volume, one.update_id) == (3.0, 4.0, 10)
    assert (two.bid_price, two.ask_price, two.ask_size, two.spread) == (99.0, 101.0, 1.0, 2.0)
    assert two.microprice == pytest.approx((99 * 1 + 101 * 2) / 3)
    assert (two.imbalance, two.update_id) == (0.0, 11)
    levels = offline.book_levels(book, 2, "1s")
    first = levels.loc[at(1)]
    assert list(zip(first["side"], first["level"], first["price"], first["size"], strict=True)) == [
        (BID, 0, 100.0, 1.0), (BID, 1, 99.0, 2.0), (ASK, 0, 101.0, 3.0), (ASK, 1, 102.0, 1.0),
    ]  # fmt: skip


def test_buffered_diffs_take_effect_with_the_snapshot_they_follow() -> None:
    """Spot: a REST snapshot has no exchange time (ts = its receive time), and the diffs
    buffered before it carry earlier times but apply after it. Stored rows sort by ts, so the
    offline side must restore sequence order: the 1 s snapshot includes the 0.8 s diff."""
    rows = [
        change(1.0, BID, 100.0, 1.0, 10, snapshot=True),
        change(1.0, ASK, 101.0, 1.0, 10, snapshot=True),
        change(0.8, BID, 100.0, 5.0, 11),
        change(1.7, ASK, 101.0, 2.0, 12),
    ]
    tops = offline.book_snapshots(frame(Channel.BOOK, rows), 1, "1s")
    assert list(tops.index) == [at(1)] and tops["bid_size"].iloc[0] == 5.0
    engine = SeriesEngine([(None, parse_series("book:1@1s"))])
    out = engine.process({Channel.BOOK: rows}, T0 + 2 * S)
    online = [r for r in out[Channel.BOOK_TOP] if isinstance(r, BookTop)]
    assert [(r.ts, r.bid_size) for r in online] == [(T0 + S, 5.0)]


def test_flow_imbalance_and_realized_volatility() -> None:
    trades = [
        trade(1, 0.5, 100.0, 1.0, BUY),
        trade(2, 1.5, 110.0, 3.0, SELL),
        trade(3, 2.5, 99.0, 2.0, BUY),
        trade(4, 3.5, 99.0, 1.0, BUY),
    ]
    flow = offline.flow(frame(Channel.TRADES, trades), "2s", "1s", grace="0ms")
    # first value at the end of the third bar: two returns, the last two bars' volumes
    assert list(flow.index) == [at(3), at(4)]
    first = flow.iloc[0]
    assert (first.buy_volume, first.sell_volume, first.returns) == (2.0, 3.0, 2)
    assert first.flow_imbalance == pytest.approx((2 - 3) / 5)
    expected = math.sqrt(math.log(110 / 100) ** 2 + math.log(99 / 110) ** 2)
    assert first.realized_vol == pytest.approx(expected)
    assert flow["realized_vol"].iloc[1] == pytest.approx(abs(math.log(99 / 110)))
    imbalance = offline.flow_imbalance(frame(Channel.TRADES, trades), "2s", "1s", grace="0ms")
    pd.testing.assert_series_equal(imbalance, flow["flow_imbalance"])


def test_basis_uses_each_legs_last_quote_as_of_the_tick() -> None:
    a = [quote("BTC-USDT", 0.2, 99.0, 101.0, 1), quote("BTC-USDT", 1.3, 100.0, 102.0, 2)]
    b = [quote("BTC-PERP", 0.5, 101.0, 103.0, 1), quote("BTC-PERP", 2.1, 103.0, 105.0, 2)]
    result = offline.basis(
        frame(Channel.BBO, a), frame(Channel.BBO, b), "1s", grace="0ms", end=at(3)
    )
    assert list(result.index) == [at(1), at(2), at(3)]
    assert list(result["mid_a"]) == [100.0, 101.0, 101.0]
    assert list(result["mid_b"]) == [102.0, 102.0, 104.0]
    assert list(result["spread"]) == [2.0, 1.0, 3.0]
    assert result["basis"].iloc[0] == pytest.approx(0.02)
    assert list(result["ts_a"]) == [T0 + 200 * MS, T0 + 1300 * MS, T0 + 1300 * MS]
    assert set(result["symbol"]) == {"BTC-USDT_BTC-PERP"}
    assert set(result["leg_a"]) == {"binance:BTC-USDT"}


def test_window_sums_do_not_depend_on_where_the_array_starts() -> None:
    values = np.random.default_rng(3).random(500) * 1e6
    whole = window_sums(values, 60)
    tail = window_sums(values[300:], 60)
    assert np.array_equal(whole[300:], tail)
    assert window_sums(values[:10], 60).size == 0


def test_a_resync_leaves_no_stale_snapshots() -> None:
    """Changes until 1.5 s, then a gap: the next snapshot run (at 4.2 s) restarts the book; the
    2, 3 and 4 s samples would show a book nobody knew, so there are none."""
    rows = [
        *BOOK[:6],
        change(4.2, BID, 90.0, 1.0, 50, snapshot=True),
        change(4.2, ASK, 91.0, 1.0, 50, snapshot=True),
        change(5.5, ASK, 91.0, 2.0, 51),
    ]
    tops = offline.book_snapshots(frame(Channel.BOOK, rows), 1, "1s")
    assert list(tops.index) == [at(1), at(5)]
    assert (tops["bid_price"].iloc[1], tops["ask_size"].iloc[1]) == (90.0, 1.0)


def test_a_broken_sequence_leaves_no_samples_until_the_next_snapshot() -> None:
    """Diff 12 is missing: 13 (2.5 s) does not continue 11 under Binance's rule (the one
    ``book_at`` applies), so the book is unknown from 2.5 s until the snapshot at 4.2 s. The
    2 s sample is the book before the break; there are no 3 and 4 s samples; online, fed in
    any batches, equals offline."""
    rows = [
        *BOOK[:6],
        change(2.5, BID, 100.5, 4.0, 13),
        change(3.5, BID, 100.7, 4.0, 14),
        change(4.2, BID, 90.0, 1.0, 50, snapshot=True),
        change(4.2, ASK, 91.0, 1.0, 50, snapshot=True),
        change(5.5, ASK, 91.0, 2.0, 51),
        change(6.5, ASK, 91.0, 3.0, 52),
    ]
    tops = offline.book_snapshots(frame(Channel.BOOK, rows), 1, "1s")
    assert list(tops.index) == [at(1), at(2), at(5), at(6)]
    assert tops["bid_price"].iloc[1] == 99.0 and list(tops["update_id"]) == [10, 11, 50, 51]
    for size in (1, 2, 3, len(rows)):
        engine = SeriesEngine([(None, parse_series("book:1@1s"))])
        online: list[BookTop] = []
        for begin in range(0, len(rows), size):
            out = engine.process({Channel.BOOK: rows[begin : begin + size]}, T0 + 10 * S)
            online += [r for r in out.get(Channel.BOOK_TOP, []) if isinstance(r, BookTop)]
        assert [(r.ts, r.bid_price, r.update_id) for r in online] == [
            (T0 + k * S, p, u)
            for k, p, u in zip((1, 2, 5, 6), tops["bid_price"], tops["update_id"], strict=True)
        ], size
