"""Coarser intervals from the collector's stored series, so a dashboard never re-reads trades.

A time bar of ``step`` holds the trades whose effective time lies in ``[t, t + step)``
(:mod:`hundi.series.core`); when ``step`` is a multiple of a stored bar interval, that bar is
exactly the union of the stored bars inside it, so it is rebuilt from them: high/low over the
bars with trades, open of the first trade id and close of the last, sums of the volumes and
counts, ``vwap = quote_volume / volume``. Sums are added bar by bar instead of trade by trade,
so they can differ from a computation over the trades in the last bit, nothing else does.

A ``book_top`` row at ``T`` is the book after every change in effect at ``T``, sampled on a
grid of multiples of its interval; a coarser grid's points are a subset of it, so the coarser
series is the stored rows at multiples of the coarser step (a point without a stored row has
none either: the book was unknown there).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import pandas as pd

from hundi.series.spec import SeriesSpecError, parse_duration

_NO_ID = np.iinfo(np.int64).max


def time_intervals(labels: Iterable[str]) -> dict[str, int]:
    """Stored ``interval`` labels that are durations (not ``ticks:N``/``volume:V``) → ns."""
    found = {}
    for label in set(labels):
        try:
            found[label] = parse_duration(label).ns
        except SeriesSpecError:
            continue
    return found


def finest_source(intervals: dict[str, int], step: int) -> str | None:
    """The stored interval to answer ``step`` from: itself, else the coarsest one dividing it
    (fewest rows to combine); None when none does."""
    usable = {label: ns for label, ns in intervals.items() if step % ns == 0}
    if not usable:
        return None
    return max(usable, key=lambda label: usable[label])


def _segments(
    ts: npt.NDArray[np.int64], step: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64]]:
    """(first row of each ``step`` bucket, bucket start ns) for rows sorted by time."""
    bucket = ts // step
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    return starts, bucket[starts] * step


def _pick(
    rows: npt.NDArray[np.bool_], segment: npt.NDArray[np.intp], last: bool
) -> npt.NDArray[np.intp]:
    """Per segment, the first (or last) row where ``rows`` holds; every segment has one."""
    chosen = np.flatnonzero(rows)
    if last:
        chosen = chosen[::-1]
    _, first = np.unique(segment[chosen], return_index=True)
    return np.sort(chosen[first])


def one_bar_per_time(bars: pd.DataFrame) -> pd.DataFrame:
    """One stored bar per start time (two writers of one bar, e.g. overlapping collector runs,
    leave two rows with different first trade ids): the one with the most trades."""
    if bars.index.is_unique:
        return bars
    ts = pd.DatetimeIndex(bars.index).asi8
    order = np.lexsort((bars["trade_count"].to_numpy(np.int64), ts))
    keep = order[np.r_[ts[order][1:] != ts[order][:-1], True]]
    return bars.iloc[keep]


def roll_up_bars(bars: pd.DataFrame, step: int) -> pd.DataFrame:
    """Bars of one finer interval (sorted by start, one per start) → bars of ``step`` ns,
    labelled by their start; an interval with no stored bar has no row."""
    if bars.empty:
        return bars
    ts = pd.DatetimeIndex(bars.index).asi8
    starts, labels = _segments(ts, step)
    count = len(starts)
    segment = np.repeat(np.arange(count), np.diff(np.append(starts, len(ts))))
    trades = bars["trade_count"].to_numpy(np.int64)
    traded = trades > 0
    first_id = np.where(traded, bars["first_trade_id"].to_numpy(np.int64), _NO_ID)
    last_id = np.where(traded, bars["last_trade_id"].to_numpy(np.int64), -1)
    lowest_first = np.minimum.reduceat(first_id, starts)
    highest_last = np.maximum.reduceat(last_id, starts)
    opens = _pick(first_id == lowest_first[segment], segment, last=False)
    closes = _pick(last_id == highest_last[segment], segment, last=True)
    sums = {
        name: np.add.reduceat(bars[name].to_numpy(np.float64), starts)
        for name in ("volume", "quote_volume", "buy_volume", "sell_volume")
    }
    filled = np.add.reduceat(trades, starts) > 0
    # a bar without trades carries the previous bar's close (its stored bars carry the same)
    close = bars["close"].to_numpy(np.float64)[closes]
    source = np.maximum.accumulate(np.where(filled, np.arange(count), -1))
    carried = np.where(source >= 0, close[np.maximum(source, 0)], close)
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = np.where(filled, sums["quote_volume"] / sums["volume"], np.nan)
    high = np.maximum.reduceat(np.where(traded, bars["high"].to_numpy(np.float64), -np.inf), starts)
    low = np.minimum.reduceat(np.where(traded, bars["low"].to_numpy(np.float64), np.inf), starts)
    frame = pd.DataFrame(
        {
            "open": np.where(filled, bars["open"].to_numpy(np.float64)[opens], carried),
            "high": np.where(filled, high, carried),
            "low": np.where(filled, low, carried),
            "close": carried,
            **sums,
            "vwap": vwap,
            "trade_count": np.add.reduceat(trades, starts),
            "first_trade_id": np.where(filled, lowest_first, -1),
            "last_trade_id": highest_last,
        },
        index=pd.to_datetime(labels, unit="ns", utc=True),
    )
    frame.index.name = "ts"
    return frame


def sample_book(tops: pd.DataFrame, step: int) -> pd.DataFrame:
    """``book_top`` rows of one finer interval and depth → the rows at multiples of ``step``."""
    ts = pd.DatetimeIndex(tops.index).asi8
    sampled: pd.DataFrame = tops[ts % step == 0]
    return sampled
