"""The streaming series as pure functions over stored raw data (pandas in, pandas out).

Inputs are DataFrames as :func:`hundi.read` returns them (UTC ``DatetimeIndex`` named ``ts``,
a ``recv_ts`` column, one or many symbols). Outputs have exactly the columns, dtypes and row
order of the collector's stored series (``hundi.read(..., channel="bars")`` etc.), and for the
same input they are **equal** to what the collector computed online: both run the code of
:mod:`hundi.series.core`, whose rules (effective time, grace, when a bar is final) are
documented there.

Online bars start at the collector's first trade and stop at the last bar closed before it
stopped; offline bars start at the first trade given and, by default, end with the last
trade's bar. Pass ``end`` to extend them (trailing empty bars) to when the collector stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from hundi.exchanges.registry import book_rule
from hundi.records import SCHEMAS, Channel
from hundi.series.core import (
    BasisCalculator,
    BookSampler,
    Columns,
    CountBarBuilder,
    FlowCalculator,
    TimeBarBuilder,
    book_order,
)
from hundi.series.engine import BBO_COLUMNS, BOOK_COLUMNS, TRADE_COLUMNS, mid_quotes
from hundi.series.spec import (
    DEFAULT_GRACE_NS,
    Duration,
    SeriesSpecError,
    TickBars,
    VolumeBars,
    duration_label,
    parse_duration,
)

IntervalLike = str | pd.Timedelta
TimeLike = str | datetime | pd.Timestamp | None


# --- conversions --------------------------------------------------------------------------------


def _duration(value: IntervalLike, name: str, *, allow_zero: bool = False) -> Duration:
    if isinstance(value, pd.Timedelta):
        ns = int(value.value)
        if ns < 0 or (ns == 0 and not allow_zero) or ns % 1_000_000:
            raise SeriesSpecError(f"{name}: {value} must be a positive whole number of ms")
        return Duration(ns, duration_label(ns))
    try:
        return parse_duration(value, allow_zero=allow_zero)
    except SeriesSpecError as exc:
        raise SeriesSpecError(f"{name}: {exc}") from None


def _grace_ns(grace: IntervalLike | None) -> int:
    return DEFAULT_GRACE_NS if grace is None else _duration(grace, "grace", allow_zero=True).ns


def _time_ns(value: TimeLike, name: str) -> int | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    if pd.isna(stamp):
        raise SeriesSpecError(f"{name}: {value!r} is not a time")
    return int(stamp.as_unit("ns").value)


def _ns(values: Any) -> np.ndarray:
    return np.asarray(pd.DatetimeIndex(values).as_unit("ns").asi8, dtype=np.int64)


def _columns(frame: pd.DataFrame, fields: Mapping[str, Any]) -> Columns:
    """A :func:`hundi.read` frame → the numpy columns the computations take."""
    columns: Columns = {}
    for name, dtype in fields.items():
        if name == "ts":
            source = frame["ts"] if "ts" in frame.columns else frame.index
            columns[name] = _ns(source)
        elif name == "recv_ts":
            columns[name] = _ns(frame["recv_ts"])
        else:
            if name not in frame.columns:
                raise SeriesSpecError(f"input has no {name!r} column (is it the right channel?)")
            columns[name] = frame[name].to_numpy(dtype=dtype)
    return columns


def _symbols(frame: pd.DataFrame) -> Iterator[tuple[str, str, str, pd.DataFrame]]:
    """(exchange, symbol, native_symbol, rows) per symbol, sorted like a store read."""
    if frame.empty:
        return
    exchanges, symbols = frame["exchange"], frame["symbol"]
    if bool((exchanges == exchanges.iloc[0]).all()) and bool((symbols == symbols.iloc[0]).all()):
        yield (
            str(exchanges.iloc[0]),
            str(symbols.iloc[0]),
            str(frame["native_symbol"].iloc[0]),
            frame,
        )
        return
    for (exchange, symbol), rows in frame.groupby(["exchange", "symbol"], sort=True):
        yield str(exchange), str(symbol), str(rows["native_symbol"].iloc[0]), rows


def _frame(channel: Channel, parts: list[tuple[Mapping[str, Any], Columns]]) -> pd.DataFrame:
    """Computed columns (+ constants) → a frame shaped exactly like a store read of
    ``channel``: record field order and dtypes, ``ts`` index, sorted stably by (ts, recv_ts)."""
    schema = SCHEMAS[channel]
    tables = []
    for constants, columns in parts:
        n = len(next(iter(columns.values()))) if columns else 0
        if n == 0:
            continue
        arrays = []
        for field in schema:
            if field.name in constants:
                arrays.append(pa.array([constants[field.name]] * n, _plain(field.type)))
            else:
                arrays.append(pa.array(columns[field.name], _plain(field.type)))
        tables.append(pa.Table.from_arrays(arrays, names=schema.names))
    plain = pa.schema([pa.field(f.name, _plain(f.type), nullable=False) for f in schema])
    table = pa.concat_tables(tables) if tables else plain.empty_table()
    frame: pd.DataFrame = table.to_pandas().set_index("ts")
    if len(tables) > 1:
        order = np.lexsort((_ns(frame["recv_ts"]), _ns(frame.index)))
        frame = frame.iloc[order]
    return frame


def _plain(arrow_type: pa.DataType) -> pa.DataType:
    return arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type


def _names(exchange: str, symbol: str, native: str, **more: Any) -> dict[str, Any]:
    return {"exchange": exchange, "symbol": symbol, "native_symbol": native, **more}


# --- bars ---------------------------------------------------------------------------------------


def _closed_time_bars(
    trades: pd.DataFrame, interval: Duration, grace_ns: int, end_ns: int | None
) -> Iterator[tuple[str, str, str, Columns]]:
    for exchange, symbol, native, rows in _symbols(trades):
        builder = TimeBarBuilder(interval.ns, grace_ns)
        builder.add(_columns(rows, TRADE_COLUMNS))
        if end_ns is None:
            assert builder.pending
            last = int(builder.pending[0]["bucket"].max()) + 1
            horizon = last * interval.ns + grace_ns
        else:
            horizon = end_ns + grace_ns
        bars = builder.close(horizon)
        if bars is not None:
            yield exchange, symbol, native, bars


def time_bars(
    trades: pd.DataFrame,
    interval: IntervalLike,
    *,
    grace: IntervalLike | None = None,
    end: TimeLike = None,
) -> pd.DataFrame:
    """OHLCV time bars (``bars`` channel rows) from stored trades, as the collector makes them.

    ``interval``: ``"1s"``, ``"1m"``... or a Timedelta. ``grace``: the collector's grace for
    late trades (default 500ms). ``end``: emit bars ending at or before it (trailing empty bars
    included); default: through the last trade's bar.
    """
    duration = _duration(interval, "interval")
    end_ns = _time_ns(end, "end")
    parts: list[tuple[Mapping[str, Any], Columns]] = [
        (_names(e, s, n, interval=duration.label), bars)
        for e, s, n, bars in _closed_time_bars(trades, duration, _grace_ns(grace), end_ns)
    ]
    return _frame(Channel.BARS, parts)


def _count_bars(trades: pd.DataFrame, label: str, make: Callable[[], CountBarBuilder]) -> Any:
    parts: list[tuple[Mapping[str, Any], Columns]] = []
    for exchange, symbol, native, rows in _symbols(trades):
        builder = make()
        builder.add(_columns(rows, TRADE_COLUMNS))
        bars = builder.close()
        if bars is not None:
            parts.append((_names(exchange, symbol, native, interval=label), bars))
    return _frame(Channel.BARS, parts)


def tick_bars(trades: pd.DataFrame, count: int) -> pd.DataFrame:
    """A bar every ``count`` trades (in trade-id order); an unfinished last bar is left out."""
    if count <= 0:
        raise SeriesSpecError(f"count must be positive, got {count}")
    result: pd.DataFrame = _count_bars(
        trades, TickBars(count).label, lambda: CountBarBuilder(count=count)
    )
    return result


def volume_bars(trades: pd.DataFrame, volume: float) -> pd.DataFrame:
    """A bar every ``volume`` units of base volume: trade i belongs to bar
    floor(cumulative size before i / volume). An unfinished last bar is left out."""
    if not volume > 0:
        raise SeriesSpecError(f"volume must be positive, got {volume}")
    result: pd.DataFrame = _count_bars(
        trades, VolumeBars(volume).label, lambda: CountBarBuilder(volume=volume)
    )
    return result


# --- book ---------------------------------------------------------------------------------------


def _book_samples(
    book: pd.DataFrame, depth: int, interval: IntervalLike
) -> tuple[list[tuple[Mapping[str, Any], Columns]], list[tuple[Mapping[str, Any], Columns]]]:
    if depth <= 0:
        raise SeriesSpecError(f"depth must be positive, got {depth}")
    duration = _duration(interval, "interval")
    tops: list[tuple[Mapping[str, Any], Columns]] = []
    levels: list[tuple[Mapping[str, Any], Columns]] = []
    for exchange, symbol, native, rows in _symbols(book):
        columns = _columns(rows, BOOK_COLUMNS)
        order = book_order(columns["update_id"], columns["snapshot"])
        if order is not None:
            columns = {name: values[order] for name, values in columns.items()}
        sampler = BookSampler([(duration.ns, depth)], book_rule(exchange))
        samples = sampler.add(columns).get((duration.ns, depth))
        if samples is None:
            continue
        names = _names(exchange, symbol, native, interval=duration.label, depth=depth)
        tops.append((names, samples.top))
        levels.append((names, samples.levels))
    return tops, levels


def book_snapshots(book: pd.DataFrame, depth: int, interval: IntervalLike) -> pd.DataFrame:
    """Top-``depth`` metrics every ``interval`` (``book_top`` rows) from stored book changes.

    The snapshot at T is the book after every change in effect at T (exchange clock; see
    :mod:`hundi.series.core`), for every T from the first change to the last one.
    """
    tops, _ = _book_samples(book, depth, interval)
    return _frame(Channel.BOOK_TOP, tops)


def book_levels(book: pd.DataFrame, depth: int, interval: IntervalLike) -> pd.DataFrame:
    """The levels of the same snapshots (``book_levels`` rows: one per side and level)."""
    _, levels = _book_samples(book, depth, interval)
    return _frame(Channel.BOOK_LEVELS, levels)


# --- flow and risk ------------------------------------------------------------------------------


def flow(
    trades: pd.DataFrame,
    window: IntervalLike,
    step: IntervalLike,
    *,
    grace: IntervalLike | None = None,
    end: TimeLike = None,
) -> pd.DataFrame:
    """Rolling flow imbalance and realized volatility (``flow`` rows): at the end of each
    ``step`` time bar, over the last ``window`` of them."""
    window_d = _duration(window, "window")
    step_d = _duration(step, "step")
    if window_d.ns % step_d.ns or window_d.ns < 2 * step_d.ns:
        raise SeriesSpecError("window must be a whole multiple (>= 2) of step")
    parts: list[tuple[Mapping[str, Any], Columns]] = []
    for exchange, symbol, native, bars in _closed_time_bars(
        trades, step_d, _grace_ns(grace), _time_ns(end, "end")
    ):
        values = FlowCalculator(window_d.ns // step_d.ns).add(bars)
        if values is not None:
            names = _names(exchange, symbol, native, interval=step_d.label, window=window_d.label)
            parts.append((names, values))
    return _frame(Channel.FLOW, parts)


def flow_imbalance(
    trades: pd.DataFrame,
    window: IntervalLike,
    step: IntervalLike,
    *,
    grace: IntervalLike | None = None,
    end: TimeLike = None,
) -> pd.Series:
    """(buy - sell) / (buy + sell) taker volume over a rolling window; see :func:`flow`."""
    series: pd.Series = flow(trades, window, step, grace=grace, end=end)["flow_imbalance"]
    return series


def realized_volatility(
    trades: pd.DataFrame,
    window: IntervalLike,
    step: IntervalLike,
    *,
    grace: IntervalLike | None = None,
    end: TimeLike = None,
) -> pd.Series:
    """sqrt(sum of squared log returns of ``step`` bar closes) over a rolling window."""
    series: pd.Series = flow(trades, window, step, grace=grace, end=end)["realized_vol"]
    return series


# --- cross-market -------------------------------------------------------------------------------


def basis(
    bbo_a: pd.DataFrame,
    bbo_b: pd.DataFrame,
    interval: IntervalLike,
    *,
    grace: IntervalLike | None = None,
    end: TimeLike = None,
) -> pd.DataFrame:
    """Spread and basis of two BBO streams (one symbol each) on a common clock (``basis``
    rows): each leg's last mid as of every multiple of ``interval``, from the first time both
    have one to ``end`` (default: the last quote)."""
    duration = _duration(interval, "interval")
    grace_ns = _grace_ns(grace)
    legs = []
    for name, frame in (("bbo_a", bbo_a), ("bbo_b", bbo_b)):
        found = list(_symbols(frame))
        if len(found) != 1:
            raise SeriesSpecError(f"{name} must hold exactly one symbol, got {len(found)}")
        legs.append(found[0])
    (ex_a, sym_a, _, rows_a), (ex_b, sym_b, _, rows_b) = legs
    calculator = BasisCalculator(duration.ns, grace_ns)
    quotes_a = mid_quotes(_columns(rows_a, BBO_COLUMNS))
    quotes_b = mid_quotes(_columns(rows_b, BBO_COLUMNS))
    calculator.add(quotes_a, quotes_b)
    end_ns = _time_ns(end, "end")
    if end_ns is None:
        last_e = max(
            int(np.max(np.maximum(q["ts"], q["recv_ts"] - grace_ns))) for q in (quotes_a, quotes_b)
        )
        end_ns = last_e
    values = calculator.close(end_ns + grace_ns)
    parts: list[tuple[Mapping[str, Any], Columns]] = []
    if values is not None:
        pair = f"{sym_a}_{sym_b}"
        names = _names(ex_a, pair, pair, interval=duration.label)
        parts.append(({**names, "leg_a": f"{ex_a}:{sym_a}", "leg_b": f"{ex_b}:{sym_b}"}, values))
    return _frame(Channel.BASIS, parts)


__all__ = [
    "basis",
    "book_levels",
    "book_snapshots",
    "flow",
    "flow_imbalance",
    "realized_volatility",
    "tick_bars",
    "time_bars",
    "volume_bars",
]
