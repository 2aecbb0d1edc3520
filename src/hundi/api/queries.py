"""What each API endpoint computes: stored data → flat rows (dicts) for Grafana.

Everything goes through the store contract (``Store.read``, ``Store.read_days``,
``Store.symbols``) and :func:`hundi.bars`, so the API shows what a notebook would. Exchange
and symbol are checked by :func:`hundi.query.resolve`, as ``hundi.read`` checks them: a native
symbol (``BTCUSDT``) is read as the stored one, a name the store does not hold raises
:class:`hundi.query.NotStored` (HTTP 404, listing what it holds).
Times in rows are epoch milliseconds (Infinity parses ``timestamp_epoch`` as ms); a bucket
is labelled by its start. Work is bounded by :class:`Limits`: the range, the number of
buckets and the raw rows read are checked before or while reading, never after the fact.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hundi.api.rollup import (
    finest_source,
    one_bar_per_time,
    roll_up_bars,
    sample_book,
    time_intervals,
)
from hundi.query import resolve
from hundi.records import Channel, EventKind
from hundi.research import bars as research_bars
from hundi.series.spec import duration_label
from hundi.stores.base import Store, Unsupported

Row = dict[str, Any]
NS_PER_MS = 1_000_000

#: channels the symbol list looks in (a symbol with any of them stored is listed): market data
#: a panel plots. Derivative tickers and liquidations count (funding and open interest panels
#: work for a symbol whose trades are not collected); instruments do not (metadata only).
SYMBOL_CHANNELS = (
    Channel.TRADES,
    Channel.BBO,
    Channel.BOOK,
    Channel.BOOK_L3,
    Channel.BARS,
    Channel.BOOK_TOP,
    Channel.DERIVATIVE_TICKER,
    Channel.LIQUIDATIONS,
)
#: where bars and book rows come from (a symbol needs one of them stored)
BAR_SOURCES = (Channel.BARS, Channel.TRADES)
BOOK_SOURCES = (Channel.BOOK_TOP, Channel.BBO)


def _stored(store: Store, exchange: str, symbol: str, channels: Sequence[Channel]) -> str:
    """``symbol`` as the store holds it in one of ``channels`` (:func:`hundi.query.resolve`)."""
    found = resolve(store, exchange, symbol, channels)
    assert found is not None
    return found


EVENT_KINDS = tuple(kind.value for kind in EventKind)


DEFAULT_MAX_RANGE_NS = 24 * 3600 * 10**9
DEFAULT_MAX_POINTS = 20_000
DEFAULT_MAX_ROWS = 5_000_000


class BadRequest(ValueError):
    """A request the API will not answer as asked (HTTP 400); the message says why."""


class TooMuchData(BadRequest):
    """The request would read more than the limits allow (HTTP 413)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one request, so one dashboard refresh cannot read a year of ticks."""

    max_range_ns: int = DEFAULT_MAX_RANGE_NS  # from..to
    max_points: int = DEFAULT_MAX_POINTS  # buckets per series
    max_rows: int = DEFAULT_MAX_ROWS  # raw rows read (trades, quotes, events) per request


@dataclass(frozen=True, slots=True)
class Window:
    """A validated request: ``start <= ts < end`` (ns) cut into buckets of ``step`` ns."""

    start: int
    end: int
    step: int

    @property
    def label(self) -> str:
        return duration_label(self.step)

    def first_bucket(self) -> int:
        return self.start // self.step

    def buckets(self) -> npt.NDArray[np.int64]:
        """Bucket numbers overlapping the range."""
        return np.arange(self.first_bucket(), -(-self.end // self.step), dtype=np.int64)

    def timestamps(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        return ns_to_timestamp(self.start), ns_to_timestamp(self.end)


def ns_to_timestamp(ns: int) -> pd.Timestamp:
    return pd.Timestamp(ns, unit="ns", tz="UTC")


def window(start_ms: int, end_ms: int, step_ns: int, limits: Limits) -> Window:
    """Check a requested range and step against the limits."""
    if end_ms <= start_ms:
        raise BadRequest(f"to ({end_ms}) must be after from ({start_ms})")
    span = (end_ms - start_ms) * NS_PER_MS
    if span > limits.max_range_ns:
        raise TooMuchData(
            f"range of {span / 3.6e12:.1f} h exceeds the limit of "
            f"{duration_label(limits.max_range_ns)} (hundi serve --max-range)"
        )
    if step_ns % NS_PER_MS:
        raise BadRequest("interval must be a whole number of milliseconds")
    if -(-span // step_ns) > limits.max_points:
        raise TooMuchData(
            f"{-(-span // step_ns)} intervals of {duration_label(step_ns)} exceed the limit of "
            f"{limits.max_points} (a larger interval, or hundi serve --max-points)"
        )
    return Window(start_ms * NS_PER_MS, end_ms * NS_PER_MS, step_ns)


def _ms(ns: Any) -> int:
    return int(ns) // NS_PER_MS


def _number(value: Any) -> float | int | None:
    """JSON-safe number: NaN and infinities become null (Grafana shows a gap)."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def _rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[Row]:
    """Frame indexed by UTC ts → rows with ``time`` in epoch ms and the named columns."""
    times = pd.DatetimeIndex(frame.index).asi8 // NS_PER_MS
    values = [frame[c].to_numpy() for c in columns]
    return [
        {"time": int(t), **{c: _number(v[i]) for c, v in zip(columns, values, strict=True)}}
        for i, t in enumerate(times.tolist())
    ]


def _day_tables(
    store: Store,
    limits: Limits,
    *,
    exchange: str,
    symbol: str | None,
    channel: Channel,
    span: Window,
    columns: Sequence[str],
    ordered: bool = False,
) -> Iterator[pa.Table]:
    """Stored rows of the window a day at a time (``ordered``: by (ts, recv_ts) as
    ``hundi.read`` sorts them), stopping at ``max_rows``."""
    seen = 0
    for _, table in store.read_days(
        exchange=exchange, symbol=symbol, channel=channel, start_ns=span.start, end_ns=span.end,
        columns=columns, ordered=ordered,
    ):  # fmt: skip
        seen += table.num_rows
        if seen > limits.max_rows:
            raise TooMuchData(
                f"more than {limits.max_rows} {channel.value} rows in the range; narrow it "
                "(or hundi serve --max-rows)"
            )
        yield table


def _ns_column(table: pa.Table, name: str) -> npt.NDArray[np.int64]:
    column = table.column(name)
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return np.asarray(column.to_numpy(), np.int64)


# --- symbols ---------------------------------------------------------------------------------


def stored_symbols(store: Store, exchange: str) -> list[Row]:
    """(exchange, symbol) pairs with market data stored, sorted.

    ``Store.symbols``: the embedded store lists its partition folders, Cassandra asks its
    partition index (one small query per channel). Other stores (KairosDB) cannot list without
    reading data. An exchange the store does not hold raises :class:`hundi.query.NotStored`.
    """
    resolve(store, exchange, None)
    names: set[str] = set()
    try:
        for channel in SYMBOL_CHANNELS:
            names.update(store.symbols(exchange, channel))
    except Unsupported:
        raise BadRequest(
            f"{store.describe()} cannot list its symbols; type the symbol instead"
        ) from None
    return [{"exchange": exchange, "symbol": name} for name in sorted(names)]


# --- bars ------------------------------------------------------------------------------------

BAR_COLUMNS = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "vwap",
    "buy_volume",
    "sell_volume",
    "trade_count",
)


def _aligned(span: Window) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The window widened to whole intervals: the first and last bar are complete."""
    first = span.start // span.step * span.step
    return ns_to_timestamp(first), ns_to_timestamp(-(-span.end // span.step) * span.step)


def source_label(kind: str, stored: str, step: int, at: str = ":") -> str:
    """``X-Hundi-Source`` of an answer from a stored series: ``bars`` when it is of the asked
    interval, ``bars:1m->5m`` (``book_top:10@10s->1m``) when derived from a finer one (ASCII:
    HTTP header values are)."""
    asked = duration_label(step)
    return kind if stored == asked else f"{kind}{at}{stored}->{asked}"


def bar_rows(store: Store, *, exchange: str, symbol: str, span: Window) -> tuple[str, list[Row]]:
    """OHLCV bars of ``span``'s intervals, from the cheapest source that has them exactly.

    The collector's stored ``bars`` series of this interval; else one of a finer interval that
    divides it, rolled up (:func:`hundi.api.rollup.roll_up_bars`: the same bars, from a
    stored bar per interval instead of every trade); else computed from stored trades by
    :func:`hundi.bars` (the collector's own builder). Returns (source, rows).
    """
    symbol = _stored(store, exchange, symbol, BAR_SOURCES)
    start, end = _aligned(span)
    stored = store.read(
        exchange=exchange, symbol=symbol, channel=Channel.BARS, start=start, end=end
    )
    chosen = finest_source(time_intervals(stored["interval"]), span.step) if len(stored) else None
    if chosen is not None:
        bars = one_bar_per_time(stored[stored["interval"] == chosen])
        if chosen != span.label:
            bars = roll_up_bars(bars, span.step)
        return source_label("bars", chosen, span.step), _rows(bars, BAR_COLUMNS)
    start, end = span.timestamps()
    # bounded by the range limit: hundi.bars streams a day of six trade columns at a time
    computed = research_bars(
        store, exchange, symbol, pd.Timedelta(span.step, unit="ns"), start=start, end=end
    )
    return "trades", _rows(computed, BAR_COLUMNS)


# --- book ------------------------------------------------------------------------------------

BOOK_COLUMNS = (
    "mid",
    "spread",
    "imbalance",
    "microprice",
    "bid_price",
    "bid_size",
    "ask_price",
    "ask_size",
)
_BBO_COLUMNS = ("ts", "bid_price", "bid_size", "ask_price", "ask_size")


def book_rows(
    store: Store,
    limits: Limits,
    *,
    exchange: str,
    symbol: str,
    span: Window,
    depth: int | None = None,
) -> tuple[str, list[Row]]:
    """Mid, spread, imbalance and microprice per interval. Returns (source, rows).

    From the stored ``book_top`` series of this interval when the collector kept one, else of
    a finer interval dividing it, sampled at the coarser step (``rollup.sample_book``); its
    imbalance is over ``depth`` levels (the smallest stored depth unless ``depth`` is given),
    and a row at T is the book at T. Otherwise from stored BBO quotes: the row of an interval
    (labelled by its start, like a bar) is its last quote, the top of book at the interval's
    end as of the last update; an interval without quotes has no row (a quiet book or a
    collector outage: the events say which). Imbalance there is over the best level only,
    ``(bid_size - ask_size) / (bid_size + ask_size)``, and microprice uses the best level.
    """
    symbol = _stored(store, exchange, symbol, BOOK_SOURCES)
    start, end = span.timestamps()
    stored = store.read(
        exchange=exchange, symbol=symbol, channel=Channel.BOOK_TOP, start=start, end=end
    )
    if len(stored) and depth is not None:
        stored = stored[stored["depth"] == depth]
    chosen = finest_source(time_intervals(stored["interval"]), span.step) if len(stored) else None
    if chosen is not None:
        stored = stored[stored["interval"] == chosen]
        levels = int(stored["depth"].min()) if depth is None else depth
        tops = sample_book(stored[stored["depth"] == levels], span.step)
        label = source_label(f"book_top:{levels}", chosen, span.step, at="@")
        return label, _rows(tops, BOOK_COLUMNS)
    parts = list(
        _day_tables(
            store, limits, exchange=exchange, symbol=symbol, channel=Channel.BBO, span=span,
            columns=_BBO_COLUMNS, ordered=True,
        )
    )  # fmt: skip
    if not parts:
        return "bbo", []
    table = pa.concat_tables(parts)
    ts = _ns_column(table, "ts")
    quotes = pd.DataFrame({name: table.column(name).to_numpy() for name in _BBO_COLUMNS[1:]})
    quotes["label"] = ts // span.step * span.step  # rows in (ts, recv_ts) order: last = latest
    last = quotes.groupby("label", sort=True).last()
    bid, ask = last["bid_price"].to_numpy(), last["ask_price"].to_numpy()
    bid_size, ask_size = last["bid_size"].to_numpy(), last["ask_size"].to_numpy()
    sizes = bid_size + ask_size
    frame = pd.DataFrame(
        {
            "mid": (bid + ask) / 2,
            "spread": ask - bid,
            "imbalance": (bid_size - ask_size) / sizes,
            "microprice": (bid * ask_size + ask * bid_size) / sizes,
            "bid_price": bid,
            "bid_size": bid_size,
            "ask_price": ask,
            "ask_size": ask_size,
        },
        index=pd.to_datetime(last.index.to_numpy(), unit="ns", utc=True),
    )
    return "bbo", _rows(frame, BOOK_COLUMNS)


# --- derivatives -----------------------------------------------------------------------------

DERIVATIVE_FIELDS = (
    "mark_price",
    "index_price",
    "funding_rate",
    "predicted_funding_rate",
    "open_interest",
    "open_interest_value",
)
DERIVATIVE_COLUMNS = (*DERIVATIVE_FIELDS, "next_funding_time")


def derivative_rows(
    store: Store, limits: Limits, *, exchange: str, symbol: str, span: Window
) -> list[Row]:
    """Mark and index price, funding rates and open interest per interval: the state at the
    interval's end as of its stored derivative tickers (labelled by the interval's start).

    Each stored record is a full merged state (a field a message lacked holds its previous
    value), merged in the order the collector received the messages (``recv_ts``). A venue
    stamps each piece (mark price, index, open interest...) with its own time, so a piece merged
    later may carry an earlier ``ts`` than the state before it; the merged state then holds
    values as new as the newest ``ts`` merged so far. So the rows are taken in receive order,
    each at the newest ``ts`` up to it, and the last one of each interval is its state. A field
    not known is null (NaN in the store); ``next_funding_time`` is epoch ms, 0 without funding
    (dated futures). An interval without records has no row, and a symbol stored without
    derivative tickers (spot) has none at all (a dashboard row of a spot symbol shows an empty
    panel, not an error). Columnar: numpy picks the rows."""
    symbol = _stored(store, exchange, symbol, SYMBOL_CHANNELS)
    parts = list(
        _day_tables(
            store, limits, exchange=exchange, symbol=symbol, channel=Channel.DERIVATIVE_TICKER,
            span=span, columns=("ts", "recv_ts", "next_funding_time", *DERIVATIVE_FIELDS),
            ordered=True,
        )
    )  # fmt: skip
    if not parts:
        return []
    table = pa.concat_tables(parts)  # days in order, each by (ts, recv_ts)
    # receive order (stable: equal receive times keep the ts order), each at the newest ts so far
    order = np.argsort(_ns_column(table, "recv_ts"), kind="stable")
    labels = np.maximum.accumulate(_ns_column(table, "ts")[order]) // span.step
    ends = np.flatnonzero(np.append(labels[1:] != labels[:-1], True))
    last = order[ends]
    frame = pd.DataFrame(
        {name: table.column(name).to_numpy()[last] for name in DERIVATIVE_FIELDS},
        index=pd.to_datetime(labels[ends] * span.step, unit="ns", utc=True),
    )
    frame["next_funding_time"] = _ns_column(table, "next_funding_time")[last] // NS_PER_MS
    return _rows(frame, DERIVATIVE_COLUMNS)


LIQUIDATION_COLUMNS = ("sell_count", "sell_size", "buy_count", "buy_size")


def liquidation_rows(
    store: Store, limits: Limits, *, exchange: str, symbol: str, span: Window
) -> tuple[str, list[Row]]:
    """Liquidations per interval, by the liquidation order's side (``sell``: longs liquidated,
    ``buy``: shorts), count and summed size in the symbol's size unit, every interval of the
    range (0 without any), each whole (also where the range starts or ends inside it). Source
    ``liquidations:sampled`` when any stored row is from a feed that sends samples (the counts
    are then lower bounds), ``liquidations:complete`` when all are from complete feeds, and
    ``liquidations:none`` when the range holds none (the zeros then cannot tell a quiet market
    from a feed not collected). A symbol stored without liquidations (spot) has zeros. Returns
    (source, rows)."""
    symbol = _stored(store, exchange, symbol, SYMBOL_CHANNELS)
    buckets = span.buckets()
    first, count = int(buckets[0]), len(buckets)
    # whole intervals, as bars: a range starting or ending inside one would sum part of it
    whole = Window(first * span.step, (first + count) * span.step, span.step)
    totals = {name: np.zeros(count, np.float64) for name in LIQUIDATION_COLUMNS}
    kinds: set[str] = set()
    for table in _day_tables(
        store, limits, exchange=exchange, symbol=symbol, channel=Channel.LIQUIDATIONS,
        span=whole, columns=("ts", "side", "size", "completeness"),
    ):  # fmt: skip
        index = _ns_column(table, "ts") // span.step - first
        side = np.asarray(table.column("side").to_numpy())
        size = np.asarray(table.column("size").to_numpy(), np.float64)
        kinds.update(str(k) for k in pc.unique(table.column("completeness")).to_pylist())
        for sign, name in ((-1, "sell"), (1, "buy")):
            mine = side == sign
            totals[f"{name}_count"] += np.bincount(index[mine], minlength=count)[:count]
            totals[f"{name}_size"] += np.bincount(index[mine], weights=size[mine], minlength=count)[
                :count
            ]
    # nothing stored in the range: the zeros say nothing about a feed (maybe not collected)
    source = (
        "liquidations:sampled" if "sampled" in kinds
        else "liquidations:complete" if kinds
        else "liquidations:none"
    )  # fmt: skip
    columns: dict[str, list[Any]] = {
        name: (totals[name].astype(np.int64) if name.endswith("_count") else totals[name]).tolist()
        for name in LIQUIDATION_COLUMNS
    }
    rows = [
        {
            "time": _ms(b * span.step),
            # JSON-safe: a NaN size (never a valid one) is null, not the invalid token NaN
            **{name: _number(values[i]) for name, values in columns.items()},
        }
        for i, b in enumerate(buckets.tolist())
    ]
    return source, rows


# --- collector health ------------------------------------------------------------------------


def coverage_rows(
    store: Store,
    limits: Limits,
    *,
    exchange: str,
    symbol: str | None,
    channels: Sequence[Channel],
    span: Window,
) -> list[Row]:
    """Records stored per interval, one column per channel, every interval of the range
    (zero where nothing was stored: a hole shows as a drop to 0)."""
    symbol = resolve(store, exchange, symbol)
    buckets = span.buckets()
    first = int(buckets[0])
    counts = {}
    for channel in channels:
        total = np.zeros(len(buckets), np.int64)
        for table in _day_tables(
            store, limits, exchange=exchange, symbol=symbol, channel=channel, span=span,
            columns=("ts",),
        ):  # fmt: skip
            index = _ns_column(table, "ts") // span.step - first
            total += np.bincount(index, minlength=len(buckets))[: len(buckets)]
        counts[channel.value] = total.tolist()
    return [
        {"time": _ms(b * span.step), **{name: values[i] for name, values in counts.items()}}
        for i, b in enumerate(buckets.tolist())
    ]


LAG_QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "max": 1.0}


def lag_rows(
    store: Store,
    limits: Limits,
    *,
    exchange: str,
    symbol: str | None,
    channel: Channel,
    span: Window,
) -> list[Row]:
    """Receive lag ``recv_ts - ts`` in ms per interval: p50, p90, p99, max and the count,
    for intervals with records. Negative lags mean the exchange clock is ahead of ours (or,
    Binance spot BBO, ``ts`` is the receive time itself: lag 0)."""
    symbol = resolve(store, exchange, symbol, channel)
    parts = [
        (_ns_column(t, "ts"), _ns_column(t, "recv_ts"))
        for t in _day_tables(
            store, limits, exchange=exchange, symbol=symbol, channel=channel, span=span,
            columns=("ts", "recv_ts"),
        )
    ]  # fmt: skip
    if not parts:
        return []
    ts = np.concatenate([p[0] for p in parts])
    lag = pd.Series((np.concatenate([p[1] for p in parts]) - ts) / NS_PER_MS)
    grouped = lag.groupby(ts // span.step, sort=True)
    stats = pd.DataFrame({name: grouped.quantile(q) for name, q in LAG_QUANTILES.items()})
    stats["count"] = grouped.size()
    stats.index = pd.to_datetime(stats.index.to_numpy(np.int64) * span.step, unit="ns", utc=True)
    return _rows(stats, (*LAG_QUANTILES, "count"))


def event_rows(
    store: Store, limits: Limits, *, exchange: str, symbol: str | None, span: Window
) -> list[Row]:
    """Integrity events per interval, one column per kind (gap, resync, reconnect...),
    every interval of the range. With a symbol: its events plus the connection-wide ones
    (reconnects and stale connections name no symbol)."""
    symbol = resolve(store, exchange, symbol)
    buckets = span.buckets()
    first = int(buckets[0])
    counts = {kind: np.zeros(len(buckets), np.int64) for kind in EVENT_KINDS}
    for table in _day_tables(
        store, limits, exchange=exchange, symbol=None, channel=Channel.EVENTS, span=span,
        columns=("ts", "symbol", "kind"),
    ):  # fmt: skip
        names = np.asarray(table.column("symbol").to_pylist(), object)
        kinds = np.asarray(table.column("kind").to_pylist(), object)
        index = _ns_column(table, "ts") // span.step - first
        mine = np.ones(len(index), bool) if symbol is None else (names == symbol) | (names == "")
        for kind, total in counts.items():
            chosen = index[mine & (kinds == kind)]
            total += np.bincount(chosen, minlength=len(buckets))[: len(buckets)]
    return [
        {"time": _ms(b * span.step), **{k: int(v[i]) for k, v in counts.items()}}
        for i, b in enumerate(buckets.tolist())
    ]
