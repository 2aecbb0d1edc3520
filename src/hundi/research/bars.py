"""``bars``: time bars (OHLCV) of stored trades, streamed a day at a time.

The bar rule is the collector's (:class:`hundi.series.core.TimeBarBuilder`: a trade counts in
the bar of its effective time ``max(ts, recv_ts - grace)``, empty bars carry the previous
close), so bars computed here equal the ``--series bars:...`` the collector stores live. Only
the six columns the builder needs and ``native_symbol`` (the bars' name, taken from the same
read instead of reading a day again) are read, as Arrow, one UTC day at a time: a trade of a
later day can never land in an earlier day's bar, so each day's bars are final once the day is
fed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hundi.records import SCHEMAS, Channel
from hundi.research._source import (
    ResearchError,
    StoreLike,
    TimeLike,
    day_start_ns,
    native_symbol,
    stored_symbol,
)
from hundi.research.streaming import iter_day_tables
from hundi.series.core import Columns, TimeBarBuilder
from hundi.series.spec import DEFAULT_GRACE_NS, SeriesSpecError, duration_label, parse_duration
from hundi.stores.base import reading

NEEDED = ("ts", "recv_ts", "price", "size", "side", "trade_id")


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
    if ns % 1_000_000:  # the bar builder's unit, as the collector's series
        raise ResearchError(f"interval {interval!r}: bars are a whole number of milliseconds")
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

    Shaped like a store read of the collector's ``bars`` channel (``open high low close volume
    quote_volume vwap buy_volume sell_volume trade_count first_trade_id last_trade_id
    close_time recv_ts``, plus the names); empty bars carry the previous close. ``symbol`` may
    be the exchange's own name (``BTCUSDT``); one without stored trades raises
    :class:`hundi.query.NotStored`.
    ``grace`` (default the collector's, 500 ms) is how late a trade may arrive and still count
    in the bar of its exchange time.
    """
    step = interval_ns(interval)
    grace_ns = DEFAULT_GRACE_NS if grace is None else int(pd.Timedelta(grace).value)
    with reading(store) as opened:
        symbol = stored_symbol(opened, exchange, symbol, Channel.TRADES)
        builder = TimeBarBuilder(step, grace_ns)
        out: list[Columns] = []
        held: Columns | None = None  # trades not yet turned into bars (the latest day's)
        native: str | None = None  # the exchange's name, from the trades read (not a 2nd read)
        for day, table in iter_day_tables(
            opened, exchange=exchange, symbol=symbol, channel="trades", start=start, end=end,
            columns=(*NEEDED, "native_symbol"), ordered=False,
        ):  # fmt: skip
            native = native or _first_name(table.column("native_symbol"))
            trades = _columns(table, builder)
            if held is not None:
                # no trade of this day or later can be in a bar before this day: those are final
                limit = day_start_ns(day) // step
                later = held["bucket"] >= limit
                if later.any():
                    _close(builder, {n: v[~later] for n, v in held.items()}, limit, out)
                    trades = {n: np.concatenate([held[n][later], trades[n]]) for n in trades}
                else:
                    _close(builder, held, limit, out)
            held = trades
        if held is not None and len(held["bucket"]):
            # through the last trade's bar, like hundi.series.offline.time_bars
            _close(builder, held, int(held["bucket"].max()) + 1, out)
        names = {
            "exchange": exchange,
            "symbol": symbol,
            # the trades' own name; without trades there is no bar to name
            "native_symbol": native
            or (native_symbol(opened, exchange, Channel.TRADES, symbol) if out else symbol),
            "interval": duration_label(step),
        }
        return _frame(out, names)


def _columns(table: pa.Table, builder: TimeBarBuilder) -> Columns:
    """What the builder reads: ids, prices, sizes, sides and each trade's bucket. ``ts`` and
    ``recv_ts`` become the bucket batch by batch and are never copied out whole (a day of a
    store's chunks would be concatenated twice more: ~1/3 of this step's fresh memory)."""
    found: Columns = {}
    for name in ("trade_id", "price", "size", "side"):
        found[name] = table.column(name).to_numpy()
    # effective_time(ts, recv_ts, grace) // interval, in one buffer (10M rows: 80 MB, not 240)
    bucket = np.empty(table.num_rows, np.int64)
    at = 0
    for batch in table.select(["ts", "recv_ts"]).to_batches():  # zero-copy, aligned slices
        ts, recv = (np.asarray(c.cast(pa.int64()).to_numpy(), np.int64) for c in batch.columns)
        out = bucket[at : at + batch.num_rows]
        np.subtract(recv, builder.grace, out=out)
        np.maximum(ts, out, out=out)
        np.floor_divide(out, builder.interval, out=out)
        at += batch.num_rows
    found["bucket"] = bucket
    return found


def _first_name(column: pa.ChunkedArray) -> str | None:
    """The first non-empty name in ``column``, without a Python string per row."""
    for chunk in column.chunks:
        if len(chunk) and chunk[0].as_py():  # the usual case: every row holds it
            return str(chunk[0].as_py())
        named = chunk.filter(pc.not_equal(chunk, ""))
        if len(named):
            return str(named[0].as_py())
    return None


# Bars one call may build (empty ones between trades included): ~13 columns of 8 bytes, so
# ~1.3 GB. A 1 ns interval over a year asked numpy for 41.8 GiB and raised MemoryError.
MAX_BARS: Final = 12_500_000


def _close(builder: TimeBarBuilder, trades: Columns, limit: int, out: list[Columns]) -> None:
    """Every bar before ``limit`` (a bucket number) from trades that all lie before it."""
    first = builder.next_bucket
    if first is None and len(trades["bucket"]):
        first = int(trades["bucket"].min())
    built = sum(len(part["ts"]) for part in out)
    if first is not None and built + limit - first > MAX_BARS:
        raise ResearchError(
            f"{duration_label(builder.interval)} bars over these trades would be more than "
            f"{MAX_BARS:,} bars (empty ones included): use a longer interval or a shorter range"
        )
    bars = builder.emit(trades, limit)
    if bars is not None:
        out.append(bars)


def _frame(parts: list[Columns], constants: dict[str, str]) -> pd.DataFrame:
    """Bar columns → a frame shaped like a store read of the ``bars`` channel."""
    schema = SCHEMAS[Channel.BARS]
    merged = {
        f.name: np.concatenate([p[f.name] for p in parts]) if parts else np.empty(0)
        for f in schema
        if f.name not in constants
    }
    n = len(merged["ts"])
    arrays = []
    for f in schema:
        arrow_type = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        if n == 0:
            arrays.append(pa.array([], arrow_type))
            continue
        values = [constants[f.name]] * n if f.name in constants else merged[f.name]
        arrays.append(pa.array(values, arrow_type))
    frame: pd.DataFrame = pa.Table.from_arrays(arrays, names=schema.names).to_pandas()
    return frame.set_index("ts")


__all__ = ["bars", "interval_ns"]
