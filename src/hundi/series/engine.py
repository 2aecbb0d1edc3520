"""The online series engine: the collector's drained batches in, derived records out.

:class:`SeriesEngine` is deterministic: ``process(batch, now_ns)`` depends only on the batches
and the receive clock it is given, so tests can drive it with recorded batches and clocks.
Each batch's records become numpy columns once (one C-level ``map`` per field), are grouped by
(exchange, symbol) with a hash factorization, and go to the per-symbol computations of
:mod:`hundi.series.core` — the same ones the offline functions use.

:class:`SeriesRunner` runs an engine on its own thread behind a bounded queue, so a slow
computation never stalls collection: if the queue is full the batch is not computed, the
engine restarts its state (open bars are dropped, books wait for the next snapshot) and the
summary says so.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np

from hundi.book.rule import UNCHECKED, ContinuityRule
from hundi.exchanges.registry import book_rule
from hundi.records import (
    Bar,
    Basis,
    BookLevel,
    BookTop,
    Channel,
    Flow,
    Record,
)
from hundi.series.core import (
    BasisCalculator,
    BookSampler,
    Columns,
    CountBarBuilder,
    FlowCalculator,
    TimeBarBuilder,
)
from hundi.series.spec import (
    BasisSpec,
    BookTopSpec,
    FlowSpec,
    SeriesPlan,
    TickBars,
    TimeBars,
    VolumeBars,
    duration_label,
)

log = logging.getLogger("hundi.series")

Batch = Mapping[Channel, Sequence[Record]]
Scope = frozenset[tuple[str, str]] | None  # (exchange, normalized symbol) pairs; None = all

TRADE_COLUMNS: dict[str, Any] = {
    "trade_id": np.int64,
    "price": np.float64,
    "size": np.float64,
    "side": np.int8,
    "ts": np.int64,
    "recv_ts": np.int64,
}
BOOK_COLUMNS: dict[str, Any] = {
    "side": np.int8,
    "price": np.float64,
    "size": np.float64,
    "snapshot": np.bool_,
    "first_update_id": np.int64,
    "update_id": np.int64,
    "prev_update_id": np.int64,
    "ts": np.int64,
    "recv_ts": np.int64,
}
BBO_COLUMNS: dict[str, Any] = {
    "bid_price": np.float64,
    "ask_price": np.float64,
    "ts": np.int64,
    "recv_ts": np.int64,
}


def columns_of(records: Sequence[Record], fields: Mapping[str, Any]) -> Columns:
    """Records → numpy columns, one C-level pass per field."""
    n = len(records)
    return {
        name: np.fromiter(map(attrgetter(name), records), dtype, count=n)
        for name, dtype in fields.items()
    }


def group_by_symbol(records: Sequence[Record]) -> Iterator[tuple[str, str, str, np.ndarray]]:
    """(exchange, symbol, native_symbol, indices) per symbol present, first-seen order."""
    if not records:
        return
    import pandas as pd  # here, not at import: a collector without series never loads pandas

    symbols = list(map(attrgetter("symbol"), records))
    exchanges = list(map(attrgetter("exchange"), records))
    sym_codes, sym_names = pd.factorize(np.array(symbols, dtype=object))
    ex_codes, ex_names = pd.factorize(np.array(exchanges, dtype=object))
    codes = ex_codes.astype(np.int64) * len(sym_names) + sym_codes
    if len(sym_names) == 1 and len(ex_names) == 1:
        yield exchanges[0], symbols[0], records[0].native_symbol, np.arange(len(records))
        return
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    for start, indices in zip(starts, np.split(order, starts[1:]), strict=True):
        code = int(sorted_codes[start])
        first = records[int(indices[0])]
        yield (
            str(ex_names[code // len(sym_names)]),
            str(sym_names[code % len(sym_names)]),
            first.native_symbol,
            indices,
        )


def _take(columns: Columns, indices: np.ndarray) -> Columns:
    return {name: values[indices] for name, values in columns.items()}


def to_records(
    record_type: type[Record], constants: Mapping[str, Any], columns: Columns
) -> list[Record]:
    """Computed columns (+ constant fields) → records of ``record_type``."""
    if not columns:
        return []
    names = list(columns)
    values = [columns[name].tolist() for name in names]
    fixed = dict(constants)
    return [
        record_type(**fixed, **dict(zip(names, row, strict=True)))
        for row in zip(*values, strict=True)
    ]


@dataclass(slots=True)
class _TimeSeries:
    builder: TimeBarBuilder
    emit: bool
    flows: list[tuple[FlowSpec, FlowCalculator]] = field(default_factory=list)


class _SymbolSeries:
    """Everything computed for one (exchange, symbol)."""

    def __init__(self, plan: SeriesPlan, native: str, rule: ContinuityRule = UNCHECKED) -> None:
        self.native = native
        self.times: dict[int, _TimeSeries] = {}
        self.counts: list[tuple[str, CountBarBuilder]] = []
        grids: list[tuple[int, int]] = []
        self.book_labels: dict[tuple[int, int], str] = {}
        for spec in plan.specs:
            if isinstance(spec, TimeBars):
                self._time(spec.interval.ns, plan.grace_ns).emit = True
            elif isinstance(spec, FlowSpec):
                series = self._time(spec.step.ns, plan.grace_ns)
                series.flows.append((spec, FlowCalculator(spec.bars_per_window)))
            elif isinstance(spec, TickBars):
                self.counts.append((spec.label, CountBarBuilder(count=spec.count)))
            elif isinstance(spec, VolumeBars):
                self.counts.append((spec.label, CountBarBuilder(volume=spec.volume)))
            elif isinstance(spec, BookTopSpec):
                grids.append((spec.interval.ns, spec.depth))
                self.book_labels[(spec.interval.ns, spec.depth)] = spec.interval.label
        self.book = BookSampler(grids, rule) if grids else None

    def _time(self, interval_ns: int, grace_ns: int) -> _TimeSeries:
        series = self.times.get(interval_ns)
        if series is None:
            series = self.times[interval_ns] = _TimeSeries(
                TimeBarBuilder(interval_ns, grace_ns), emit=False
            )
        return series

    @property
    def late(self) -> int:
        return sum(s.builder.late for s in self.times.values())


class SeriesEngine:
    """Computes the configured series from drained batches. See the module docstring."""

    def __init__(self, plans: Sequence[tuple[Scope, SeriesPlan]]) -> None:
        self.plans = [(scope, plan) for scope, plan in plans if plan]
        self._symbols: dict[tuple[str, str], _SymbolSeries | None] = {}
        self._basis: list[tuple[BasisSpec, BasisCalculator]] = [
            (spec, BasisCalculator(spec.interval.ns, plan.grace_ns))
            for _, plan in self.plans
            for spec in plan.specs
            if isinstance(spec, BasisSpec)
        ]
        kinds = {type(spec) for _, plan in self.plans for spec in plan.specs}
        # channels not needed are not even converted to columns
        self._wants_trades = bool(kinds & {TimeBars, TickBars, VolumeBars, FlowSpec})
        self._wants_book = BookTopSpec in kinds
        # the exchange each basis leg was first seen on: (leg a, leg b) per pair
        self._leg_exchanges: dict[int, list[str]] = {}
        self.emitted: Counter[str] = Counter()
        self.resets = 0
        self._late_before_reset = 0

    def __bool__(self) -> bool:
        return bool(self.plans)

    def reset(self) -> None:
        """Input was lost: start every computation over (nothing half-known is emitted)."""
        self.resets += 1
        self._late_before_reset = self.late
        self._symbols = {}
        for _, calculator in self._basis:
            calculator.reset()

    @property
    def late(self) -> int:
        """Records that arrived after their interval was already emitted (see core)."""
        symbols = sum(s.late for s in self._symbols.values() if s is not None)
        legs = sum(c.a.late + c.b.late for _, c in self._basis)
        return symbols + legs + self._late_before_reset

    def _series_for(self, exchange: str, symbol: str, native: str) -> _SymbolSeries | None:
        key = (exchange, symbol)
        if key not in self._symbols:
            series = None
            for scope, plan in self.plans:
                if scope is None or key in scope:
                    series = _SymbolSeries(plan, native, book_rule(exchange))
                    break
            self._symbols[key] = series
        return self._symbols[key]

    def process(self, batch: Batch, now_ns: int) -> dict[Channel, list[Record]]:
        """One drained batch at receive-clock ``now_ns`` → the series records now final."""
        out: dict[Channel, list[Record]] = {}
        trades = batch.get(Channel.TRADES) if self._wants_trades else None
        if trades:
            columns = columns_of(trades, TRADE_COLUMNS)
            for exchange, symbol, native, index in group_by_symbol(trades):
                series = self._series_for(exchange, symbol, native)
                if series is None:
                    continue
                mine = _take(columns, index)
                for time_series in series.times.values():
                    time_series.builder.add(mine)
                for _, builder in series.counts:
                    builder.add(mine)
        book = batch.get(Channel.BOOK) if self._wants_book else None
        if book:
            columns = columns_of(book, BOOK_COLUMNS)
            for exchange, symbol, native, index in group_by_symbol(book):
                series = self._series_for(exchange, symbol, native)
                if series is None or series.book is None:
                    continue
                samples = series.book.add(_take(columns, index))
                names = {"exchange": exchange, "symbol": symbol, "native_symbol": native}
                for (interval, depth), sample in samples.items():
                    label = series.book_labels[(interval, depth)]
                    fixed = {**names, "interval": label, "depth": depth}
                    self._emit(out, BookTop, fixed, sample.top)
                    self._emit(out, BookLevel, fixed, sample.levels)
        if self._basis:
            self._feed_basis(batch.get(Channel.BBO) or ())
        for (exchange, symbol), series in self._symbols.items():
            if series is None:
                continue
            names = {"exchange": exchange, "symbol": symbol, "native_symbol": series.native}
            for interval_ns, time_series in series.times.items():
                bars = time_series.builder.close(now_ns)
                if bars is None:
                    continue
                label = duration_label(interval_ns)
                if time_series.emit:
                    self._emit(out, Bar, {**names, "interval": label}, bars)
                for spec, flow in time_series.flows:
                    values = flow.add(bars)
                    if values is not None:
                        fixed = {**names, "interval": label, "window": spec.window.label}
                        self._emit(out, Flow, fixed, values)
            for label, builder in series.counts:
                bars = builder.close()
                if bars is not None:
                    self._emit(out, Bar, {**names, "interval": label}, bars)
        for i, (pair_spec, calculator) in enumerate(self._basis):
            values = calculator.close(now_ns)
            if values is not None:
                ex_a, ex_b = self._leg_exchanges[i]
                pair = pair_spec.pair_symbol
                fixed = {
                    "exchange": ex_a,
                    "symbol": pair,
                    "native_symbol": pair,
                    "interval": pair_spec.interval.label,
                    "leg_a": f"{ex_a}:{pair_spec.leg_a.symbol}",
                    "leg_b": f"{ex_b}:{pair_spec.leg_b.symbol}",
                }
                self._emit(out, Basis, fixed, values)
        return out

    def _feed_basis(self, quotes: Sequence[Record]) -> None:
        empty = {name: np.empty(0, dtype) for name, dtype in BBO_COLUMNS.items()}
        per_symbol: dict[tuple[str, str], Columns] = {}
        if quotes:
            columns = columns_of(quotes, BBO_COLUMNS)
            for exchange, symbol, _, index in group_by_symbol(quotes):
                per_symbol[(exchange, symbol)] = _take(columns, index)
        for i, (spec, calculator) in enumerate(self._basis):
            legs = []
            exchanges = self._leg_exchanges.setdefault(i, ["", ""])
            for side, leg in enumerate((spec.leg_a, spec.leg_b)):
                found = [(k, v) for k, v in per_symbol.items() if leg.matches(*k)]
                if found and not exchanges[side]:
                    exchanges[side] = found[0][0][0]
                legs.append(mid_quotes(found[0][1] if found else empty))
            calculator.add(legs[0], legs[1])

    def _emit(
        self,
        out: dict[Channel, list[Record]],
        record_type: type[Record],
        fixed: Mapping[str, Any],
        columns: Columns,
    ) -> None:
        records = to_records(record_type, fixed, columns)
        if records:
            out.setdefault(record_type.CHANNEL, []).extend(records)
            self.emitted[record_type.CHANNEL.value] += len(records)


def mid_quotes(bbo: Columns) -> Columns:
    """BBO columns → the (ts, recv_ts, mid) a basis leg needs."""
    return {
        "ts": bbo["ts"],
        "recv_ts": bbo["recv_ts"],
        "mid": (bbo["bid_price"] + bbo["ask_price"]) / 2,
    }


# --- the thread ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    batch: Batch
    now_ns: int
    reset: bool


class SeriesRunner:
    """An engine on its own thread behind a bounded queue (see the module docstring)."""

    def __init__(self, engine: SeriesEngine, *, max_batches: int = 64) -> None:
        self.engine = engine
        self.queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_batches)
        self._lock = threading.Lock()
        self._output: dict[Channel, list[Record]] = {}
        self._emitted: Counter[str] = Counter()  # per channel, read by summaries any time
        self._lost_pending = False
        self.dropped_batches = 0
        self.dropped_records = 0
        self.processed_batches = 0
        self.busy_s = 0.0
        self.errors = 0
        self.last_error = ""
        self._thread = threading.Thread(target=self._run, name="series", daemon=True)
        self._thread.start()

    def offer(self, batch: Batch, now_ns: int) -> bool:
        """Queue a batch without blocking; if the engine is behind, skip it (and say so)."""
        try:
            self.queue.put_nowait(_Item(batch, now_ns, self._lost_pending))
        except queue.Full:
            if not self._lost_pending:
                log.warning("series engine is behind: skipping input, its series restart")
            self._lost_pending = True
            self.dropped_batches += 1
            self.dropped_records += sum(len(r) for r in batch.values())
            return False
        self._lost_pending = False
        return True

    def take(self) -> dict[Channel, list[Record]]:
        """Series records computed since the last call."""
        with self._lock:
            output, self._output = self._output, {}
        return output

    def finish(self, batch: Batch, now_ns: int, timeout_s: float) -> None:
        """The last batch (waited for, up to ``timeout_s``), then :meth:`close`."""
        deadline = time.monotonic() + timeout_s
        try:
            self.queue.put(_Item(batch, now_ns, self._lost_pending), timeout=timeout_s)
        except queue.Full:
            self.dropped_batches += 1
            self.dropped_records += sum(len(r) for r in batch.values())
            log.error("series engine still behind at shutdown: its last batch is not computed")
        self.close(max(0.0, deadline - time.monotonic()))

    def close(self, timeout_s: float) -> None:
        """Compute everything queued (up to ``timeout_s``), then stop the thread."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.queue.put(None, timeout=0.1)
                break
            except queue.Full:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    break
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            started = time.perf_counter()
            try:
                if item.reset:
                    self.engine.reset()
                result = self.engine.process(item.batch, item.now_ns)
            except Exception as exc:  # a bug here must not kill collection; it is reported
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("series engine failed on a batch; its series restart")
                self.engine.reset()
                continue
            finally:
                self.busy_s += time.perf_counter() - started
                self.processed_batches += 1
            if result:
                with self._lock:
                    for channel, records in result.items():
                        self._output.setdefault(channel, []).extend(records)
                        self._emitted[channel.value] += len(records)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            emitted = dict(sorted(self._emitted.items()))
        return {
            "records": emitted,
            "batches": self.processed_batches,
            "busy_s": round(self.busy_s, 3),
            "behind": self.dropped_batches > 0,
            "dropped_batches": self.dropped_batches,
            "dropped_records": self.dropped_records,
            "late_records": self.engine.late,
            "restarts": self.engine.resets,
            "errors": self.errors,
            "last_error": self.last_error,
        }
