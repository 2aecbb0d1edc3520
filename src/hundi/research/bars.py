"""``bars``: time bars (OHLCV) of stored trades, streamed a day at a time.

The bar rule is the collector's (:class:`hundi.series.core.TimeBarBuilder`: a trade counts in
the bar of its effective time ``max(ts, recv_ts - grace)``, empty bars carry the previous
close), so bars computed here equal the ``--series bars:...`` the collector stores live. Only
the six columns the builder needs are read, as Arrow, one UTC day at a time: a trade of a later
day can never land in an earlier day's bar, so each day's bars are final once the day is fed.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from hundi.research._source import ResearchError, StoreLike, TimeLike
from hundi.research.streaming import iter_batches
from hundi.series.core import BAR_FIELDS, Columns, TimeBarBuilder
from hundi.series.spec import DEFAULT_GRACE_NS, SeriesSpecError, parse_duration

NEEDED = ("ts", "recv_ts", "price", "size", "side", "trade_id")
DAY_NS = 86_400 * 1_000_000_000


def interval_ns(interval: str | timedelta | pd.Timedelta) -> int:
    """``"1m"``/``"250ms"`` (series spec), ``"1min"`` (pandas) or a timedelta → ns."""
    if isinstance(interval, str):
        try:
            return parse_duration(interval).ns
        except SeriesSpecError:
            try:
                ns = int(pd.Timedelta(interval).value)
            except ValueError:
                raise ResearchError(f"interval {interval!r}: expected e.g. 1m, 5s, 1min") from None
    else:
        ns = int(pd.Timedelta(interval).value)
    if ns <= 0:
        raise ResearchError(f"interval {interval!r} must be positive")
    return ns


def bars(
    store: StoreLike,
    exchange: str,
    symbol: str,
    interval: str | timedelta | pd.Timedelta = "1m",
    *,
    start: TimeLike = None,
    end: TimeLike = None,
    grace: timedelta | None = None,
) -> pd.DataFrame:
    """Time bars of the trades with ``start <= ts < end``, indexed by bar open time (UTC).

    Columns as the collector's bar series: ``open high low close volume quote_volume vwap
    buy_volume sell_volume trade_count first_trade_id last_trade_id close_time recv_ts``.
    ``grace`` (default the collector's, 500 ms) is how late a trade may arrive and still count
    in the bar of its exchange time.
    """
    step = interval_ns(interval)
    grace_ns = DEFAULT_GRACE_NS if grace is None else int(pd.Timedelta(grace).value)
    builder = TimeBarBuilder(step, grace_ns)
    out: list[Columns] = []
    day: int | None = None
    last_e = 0
    for batch in iter_batches(
        store,
        exchange=exchange,
        symbol=symbol,
        channel="trades",
        start=start,
        end=end,
        columns=NEEDED,
        chunk_rows=1 << 62,
    ):
        columns = _columns(batch)
        if not len(columns["ts"]):
            continue
        batch_day = int(columns["ts"][0] // DAY_NS)
        if day is not None and batch_day != day:
            _emit(builder, (day + 1) * DAY_NS + grace_ns, out)
        day = batch_day
        builder.add(columns)
        last_e = max(last_e, int(np.maximum(columns["ts"], columns["recv_ts"] - grace_ns).max()))
    if day is not None:
        _emit(builder, (last_e // step + 1) * step + grace_ns, out)
    return _frame(out)


def _columns(batch: pa.RecordBatch) -> Columns:
    found: Columns = {}
    for name in NEEDED:
        column = batch.column(name)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        found[name] = column.to_numpy(zero_copy_only=False)
    return found


def _emit(builder: TimeBarBuilder, now_ns: int, out: list[Columns]) -> None:
    done = builder.close(now_ns)
    if done is not None:
        out.append(done)


def _frame(parts: list[Columns]) -> pd.DataFrame:
    names = [n for n in BAR_FIELDS if n != "ts"]
    if not parts:
        empty = pd.DataFrame({n: pd.Series(dtype="float64") for n in names})
        empty.index = pd.DatetimeIndex([], tz="UTC", name="ts")
        return empty
    merged = {n: np.concatenate([p[n] for p in parts]) for n in BAR_FIELDS}
    index = pd.DatetimeIndex(pd.to_datetime(merged["ts"], unit="ns", utc=True), name="ts")
    frame = pd.DataFrame({n: merged[n] for n in names}, index=index)
    for name in ("close_time", "recv_ts"):
        frame[name] = pd.to_datetime(frame[name], unit="ns", utc=True)
    return frame


__all__ = ["bars", "interval_ns"]
