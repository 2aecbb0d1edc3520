"""How records become KairosDB series, and which channels go to KairosDB at all.

KairosDB keeps one double per (metric, tags, millisecond): a second point with the same key
*overwrites* the first. Every rule here is about never letting that overwrite lose data
silently. The full scheme (also in docs/kairosdb-store.md):

* metric ``<prefix>.<series>.<field>`` (prefix ``hundi`` by default), tags ``exchange`` and
  ``symbol`` plus, where a channel needs it, a few low-cardinality tags (``interval`` for
  candles, ``kind``/``channel`` for events). Never ids or prices in tags: KairosDB looks up
  row keys by tag, and that lookup is its slow phase.
* an empty tag value (connection-level events have no symbol or channel) is stored as
  ``none``: KairosDB rejects empty tag values.
* timestamp: ``ts // 1_000_000`` (floor of the ns time to ms; candles use ``open_time``).
* trades → ``trades_ms``: one aggregate per ms (count, volumes, vwap, first/high/low/last
  price), because several trades often share a millisecond. The latest buckets of each series
  stay open across batches, so trades of one ms split over two batches are merged and the
  merged aggregate re-sent (its overwrite is then correct); a re-delivered trade (same
  ``IDENTITY``) is counted once.
* bbo, ticker: last value per ms; several top-of-book updates in one ms keep the last one. A
  deliberate downsample: the raw updates stay in the lossless stores.
* candles: one point per candle at its ``open_time``; each update overwrites, so the series
  holds the latest state of each candle (the closed one once it closed).
* events: ``events.count`` per ms, tagged by kind and affected channel.
* book changes, order-level book events (``book_l3``), own orders and fills: not sent
  (lossless stores only). Book levels would need the price as a tag (unbounded cardinality)
  and collide by the thousand per ms; order events would need the order id as a tag and only
  rebuild a book complete and in sequence order; orders and fills are account data.
* derivative_ticker → ``derivative_ticker``: last record per ms of mark/index price, funding
  and predicted funding rate, open interest and its value. The venue protocols emit full
  merged records (every field its latest value), so the last of a ms loses nothing even when
  two messages (``source``) share it; ``source`` is therefore not a tag. A record merged after
  a newer one but stamped earlier by the venue (each piece has its own time) is written at the
  newest ms so far: it is the state then, and written back in time it would put newer values
  before older ones. A NaN field (not
  known yet, or not published for the contract) is no point, silently: expected, not a fault.
  ``next_funding_time`` (a time) is not sent; the lossless stores have it.
* liquidations → ``liquidations_ms``: one aggregate per ms and order side (tag ``side``:
  ``buy``/``sell``; ``sell`` = a long was liquidated): count, summed size, size-weighted
  average price and high/low price, merged across batches like trades (several liquidations
  often share a ms on a cascade); a re-delivered liquidation (same ``ts`` and ``IDENTITY``) is
  counted once. Sizes are in the symbol's ``size_unit`` (its instrument says which).
* instruments: not sent (contract metadata, not a time series; see :data:`EXCLUDED`).
* derived series (bars, book_top, book_levels, flow, basis): last value per ms, with the
  variant fields of their ``IDENTITY`` as tags (``interval``, ``depth``, ``side``/``level``,
  ``window``), so e.g. the 20 levels of one book snapshot never overwrite each other.
* any other channel (new record types): every numeric field becomes a metric (last per ms),
  the schema's dictionary-encoded strings and the ``IDENTITY`` strings become tags, so new
  channels work without edits here; :data:`OVERRIDES` may replace that per channel.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import attrgetter
from typing import Any, Final

import msgspec
import pyarrow as pa

from hundi.records import RECORD_TYPES, SCHEMAS, Channel, Liquidation, Record

log = logging.getLogger("hundi.stores.kairosdb")

NS_PER_MS: Final = 1_000_000
BASE_TAGS: Final = ("exchange", "symbol")
# KairosDB rejects an empty tag value (HTTP 400, the whole body); connection-level events have
# no symbol or channel, so an empty value is stored as this.
EMPTY_TAG: Final = "none"

TagValues = tuple[str, ...]  # in the order of a rule's ``tag_names``
# Pending points: (series name, tag values) → {ms: one value per field of the rule}.
Rows = dict[int, tuple[float, ...]]
Pending = dict[tuple[str, TagValues], Rows]


def ms_of_ns(ts_ns: int) -> int:
    """Exact floor of a ns timestamp to ms (also for times before 1970)."""
    return ts_ns // NS_PER_MS


def _tuple_getter(names: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    getter = attrgetter(*names)
    if len(names) == 1:
        return lambda record: (getter(record),)
    return getter


class ChannelRule(ABC):
    """Turns one channel's records into rows of one KairosDB series family."""

    def __init__(self, series: str, fields: Sequence[str], extra_tags: Sequence[str] = ()):
        self.series = series
        self.fields = tuple(fields)
        self.tag_names = (*BASE_TAGS, *extra_tags)
        self._tags = _tuple_getter(self.tag_names)

    def metric(self, prefix: str, field: str) -> str:
        return f"{prefix}.{self.series}.{field}"

    @abstractmethod
    def add(self, records: Sequence[Record], out: Pending) -> None:
        """Add the rows these records produce to ``out`` (later rows overwrite earlier ones)."""

    def commit(self) -> None:
        """What was added so far is confirmed stored (rules with state keep an undo log)."""
        return None  # a stateless rule has nothing to confirm

    def rollback(self) -> None:
        """Back to the state of the last :meth:`commit`: the records added since will be
        delivered again (the writer re-sends them from its outage spool)."""
        return None  # a stateless rule has nothing to undo


class LastPerMs(ChannelRule):
    """The last record of each ms wins; re-sending it later is the same overwrite.

    ``full_state``: each record holds the latest value of every field (a venue protocol merged
    the pieces), so records of one ms differing in an ``IDENTITY`` variant need no tag of their
    own: the last one is the state at the end of the ms. A venue stamps each piece with its own
    time, so a piece merged after a newer one may carry an earlier ``ts``; its record is the
    state at the newest time merged so far (it holds values that new), so it is written at
    that ms, never back in time where it would put newer values before older ones (state kept
    per series, undone by :meth:`rollback` for a re-delivery). ``nan_expected``: fields whose
    NaN means "not known" by design (skipped without a warning).
    """

    def __init__(
        self,
        series: str,
        fields: Sequence[str],
        extra_tags: Sequence[str] = (),
        time_field: str = "ts",
        *,
        full_state: bool = False,
        nan_expected: Sequence[str] = (),
    ) -> None:
        super().__init__(series, fields, extra_tags)
        self.full_state = full_state
        self.nan_expected = frozenset(nan_expected)
        self.time_field = time_field
        self._values = _tuple_getter(self.fields)
        self._time = attrgetter(time_field)
        # full_state: the newest ms written per series, and its value at the last commit
        self._newest: dict[TagValues, int] = {}
        self._undo_newest: dict[TagValues, int | None] = {}

    def commit(self) -> None:
        self._undo_newest.clear()

    def rollback(self) -> None:
        for key, mark in self._undo_newest.items():
            if mark is None:
                self._newest.pop(key, None)
            else:
                self._newest[key] = mark
        self._undo_newest.clear()

    def add(self, records: Sequence[Record], out: Pending) -> None:
        if self.full_state:
            self._add_states(records, out)
            return
        tags, values, time = self._tags, self._values, self._time
        series = self.series
        current_key: TagValues | None = None
        rows: Rows = {}
        for record in records:
            key = tags(record)
            if key != current_key:
                rows = out.setdefault((series, key), {})
                current_key = key
            rows[time(record) // NS_PER_MS] = values(record)

    def _add_states(self, records: Sequence[Record], out: Pending) -> None:
        tags, values, time = self._tags, self._values, self._time
        newest, undo = self._newest, self._undo_newest
        for record in records:
            key = tags(record)
            ms = time(record) // NS_PER_MS
            before = newest.get(key)
            if before is not None and before >= ms:
                ms = before  # merged after a newer piece: the state at that newer time
            else:
                if key not in undo:
                    undo[key] = before
                newest[key] = ms
            out.setdefault((self.series, key), {})[ms] = values(record)


class _Bucket:
    """Base of per-ms aggregates: remembers which records it holds (re-delivery is a no-op)."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen: set[Any] = set()

    def copy(self) -> Any:
        """An independent copy (for the undo log)."""
        twin = object.__new__(type(self))
        for cls in type(self).__mro__:
            for name in getattr(cls, "__slots__", ()):
                setattr(twin, name, getattr(self, name))
        twin.seen = set(self.seen)
        return twin


class PerMsAggregate(ChannelRule):
    """One aggregate per ms, merged across batches while the ms is within the merge horizon.

    A bucket stays open until the series' newest ms is more than ``horizon_ms`` ahead; a record
    arriving for an already evicted ms is *not* sent (its partial aggregate would overwrite the
    complete one in KairosDB) but counted in :attr:`late` and logged once per series — the
    lossless stores still have it.
    """

    def __init__(
        self,
        series: str,
        fields: Sequence[str],
        extra_tags: Sequence[str] = (),
        *,
        horizon_ms: int,
        identity: Sequence[str],
    ) -> None:
        super().__init__(series, fields, extra_tags)
        self.horizon_ms = horizon_ms
        self._identity = attrgetter(*identity) if identity else None
        self._open: dict[TagValues, dict[int, Any]] = {}
        self._evicted_through: dict[TagValues, int] = {}
        self.late: Counter[TagValues] = Counter()
        # Undo log since the last commit: each touched or evicted bucket's earlier state
        # (None: it did not exist), and each series' earlier eviction mark.
        self._undo: dict[tuple[TagValues, int], Any] = {}
        self._undo_evicted: dict[TagValues, int | None] = {}

    def commit(self) -> None:
        """What was added so far is confirmed stored: forget the undo log."""
        self._undo.clear()
        self._undo_evicted.clear()

    def rollback(self) -> None:
        """Back to the state of the last :meth:`commit`: the records added since will be
        delivered again (the writer re-sends them from its outage spool)."""
        for (key, ms), before in self._undo.items():
            buckets = self._open.setdefault(key, {})
            if before is None:
                buckets.pop(ms, None)
            else:
                buckets[ms] = before
        for key, mark in self._undo_evicted.items():
            if mark is None:
                self._evicted_through.pop(key, None)
            else:
                self._evicted_through[key] = mark
        self.commit()

    @abstractmethod
    def new_bucket(self, record: Any) -> _Bucket: ...

    @abstractmethod
    def merge(self, bucket: Any, record: Any) -> None: ...

    @abstractmethod
    def values(self, bucket: Any) -> tuple[float, ...]: ...

    def add(self, records: Sequence[Record], out: Pending) -> None:
        tags, identity = self._tags, self._identity
        touched: dict[TagValues, set[int]] = {}
        for record in records:
            key = tags(record)
            ms = record.ts // NS_PER_MS
            buckets = self._open.get(key)
            if buckets is None:
                buckets = self._open[key] = {}
            bucket = buckets.get(ms)
            if bucket is None:
                if ms <= self._evicted_through.get(key, -(1 << 62)):
                    self._late(key, ms)
                    continue
                bucket = buckets[ms] = self.new_bucket(record)
                self._undo.setdefault((key, ms), None)
            ident = identity(record) if identity is not None else record
            if ident in bucket.seen:
                continue
            if (key, ms) not in self._undo:
                self._undo[(key, ms)] = bucket.copy()
            bucket.seen.add(ident)
            self.merge(bucket, record)
            touched.setdefault(key, set()).add(ms)
        for key, changed in touched.items():
            buckets = self._open[key]
            rows = out.setdefault((self.series, key), {})
            for ms in changed:
                rows[ms] = self.values(buckets[ms])
            self._evict(key, buckets)

    def _evict(self, key: TagValues, buckets: dict[int, Any]) -> None:
        oldest_kept = max(buckets) - self.horizon_ms
        old = [ms for ms in buckets if ms < oldest_kept]
        if old:
            for ms in old:
                # Evicted untouched since the commit: its current state is the one to restore.
                self._undo.setdefault((key, ms), buckets.pop(ms))
            if key not in self._undo_evicted:
                self._undo_evicted[key] = self._evicted_through.get(key)
            self._evicted_through[key] = max(self._evicted_through.get(key, -(1 << 62)), *old)

    def _late(self, key: TagValues, ms: int) -> None:
        if not self.late[key]:
            log.warning(
                "kairosdb %s %s: a record for ms %d arrived after that ms left the %d ms merge "
                "horizon (out of order by more than that, or a re-delivery); not re-sent to "
                "KairosDB, whose aggregate for that ms it would overwrite (the lossless stores "
                "have it)",
                self.series, "/".join(key), ms, self.horizon_ms,
            )  # fmt: skip
        self.late[key] += 1


class _TradeBucket(_Bucket):
    __slots__ = (
        "buy_volume", "count", "first", "first_price", "high", "last", "last_price", "low",
        "quote_volume", "sell_volume", "volume",
    )  # fmt: skip

    def __init__(self, first: tuple[int, int], price: float) -> None:
        super().__init__()
        self.count = 0
        self.volume = 0.0
        self.quote_volume = 0.0
        self.buy_volume = 0.0
        self.sell_volume = 0.0
        self.first = first
        self.first_price = price
        self.last = first
        self.last_price = price
        self.high = price
        self.low = price


TRADE_FIELDS: Final = (
    "count", "volume", "quote_volume", "buy_volume", "sell_volume", "vwap",
    "first_price", "high_price", "low_price", "last_price",
)  # fmt: skip


class TradesPerMs(PerMsAggregate):
    """Trades of one ms → count, volumes, vwap and first/high/low/last price.

    First and last are by (ts, trade_id), not by arrival, so the aggregate does not depend on
    how the trades were split into batches. ``vwap`` is quote_volume / volume (omitted for a
    zero volume).
    """

    def __init__(self, *, horizon_ms: int) -> None:
        super().__init__("trades_ms", TRADE_FIELDS, horizon_ms=horizon_ms, identity=("trade_id",))

    def new_bucket(self, record: Any) -> _TradeBucket:
        return _TradeBucket((record.ts, record.trade_id), record.price)

    def merge(self, bucket: _TradeBucket, trade: Any) -> None:
        price, size = trade.price, trade.size
        bucket.count += 1
        bucket.volume += size
        bucket.quote_volume += price * size
        if trade.side > 0:
            bucket.buy_volume += size
        else:
            bucket.sell_volume += size
        if price > bucket.high:
            bucket.high = price
        if price < bucket.low:
            bucket.low = price
        order = (trade.ts, trade.trade_id)
        if order < bucket.first:
            bucket.first, bucket.first_price = order, price
        if order >= bucket.last:
            bucket.last, bucket.last_price = order, price

    def values(self, bucket: _TradeBucket) -> tuple[float, ...]:
        volume = bucket.volume
        vwap = bucket.quote_volume / volume if volume > 0 else math.nan
        return (
            bucket.count, volume, bucket.quote_volume, bucket.buy_volume, bucket.sell_volume,
            vwap, bucket.first_price, bucket.high, bucket.low, bucket.last_price,
        )  # fmt: skip


class _CountBucket(_Bucket):
    __slots__ = ("count",)

    def __init__(self) -> None:
        super().__init__()
        self.count = 0


class CountPerMs(PerMsAggregate):
    """How many records fell into each ms (integrity events: gaps, resyncs...)."""

    def new_bucket(self, record: Any) -> _CountBucket:
        return _CountBucket()

    def merge(self, bucket: _CountBucket, record: Any) -> None:
        bucket.count += 1

    def values(self, bucket: _CountBucket) -> tuple[float, ...]:
        return (bucket.count,)


class _LiquidationBucket(_Bucket):
    __slots__ = ("count", "high", "low", "notional", "size")

    def __init__(self, price: float) -> None:
        super().__init__()
        self.count = 0
        self.size = 0.0
        self.notional = 0.0
        self.high = price
        self.low = price


LIQUIDATION_FIELDS: Final = ("count", "size", "avg_price", "high_price", "low_price")


def _liquidation_tags(record: Any) -> TagValues:
    return (record.exchange, record.symbol, "buy" if record.side > 0 else "sell")


class LiquidationsPerMs(PerMsAggregate):
    """Liquidations of one ms and order side → count, summed size, size-weighted average price
    (``avg_price``; omitted for a zero size) and high/low price.

    Several liquidations share a ms in a cascade (and a venue may send them in one message), so
    last-per-ms would lose all but one; the aggregate counts each once, also when a batch is
    delivered again (identity: ``ts`` and the record type's ``IDENTITY``, so two identical
    liquidations of one venue message, told apart by ``position`` only, count twice).
    """

    def __init__(self, *, horizon_ms: int) -> None:
        super().__init__(
            "liquidations_ms", LIQUIDATION_FIELDS, extra_tags=("side",), horizon_ms=horizon_ms,
            identity=("ts", *Liquidation.IDENTITY),
        )  # fmt: skip
        self._tags = _liquidation_tags

    def new_bucket(self, record: Any) -> _LiquidationBucket:
        return _LiquidationBucket(record.price)

    def merge(self, bucket: _LiquidationBucket, record: Any) -> None:
        price, size = record.price, record.size
        bucket.count += 1
        bucket.size += size
        bucket.notional += price * size
        if price > bucket.high:
            bucket.high = price
        if price < bucket.low:
            bucket.low = price

    def values(self, bucket: _LiquidationBucket) -> tuple[float, ...]:
        size = bucket.size
        average = bucket.notional / size if size > 0 else math.nan
        return (bucket.count, size, average, bucket.high, bucket.low)


DERIVATIVE_TICKER_FIELDS: Final = (
    "mark_price", "index_price", "funding_rate", "predicted_funding_rate", "open_interest",
    "open_interest_value",
)  # fmt: skip


# Channels kept out of KairosDB, and why (shown by ``hundi`` when someone asks to read them).
EXCLUDED: Final[dict[str, str]] = {
    "book": "book changes would need the price as a tag and collide by the thousand per ms",
    "book_l3": "order-level events are identified by order id (unbounded cardinality as a tag) "
    "and collide by the hundred per ms; only their sequence rebuilds a book, which a "
    "last-value-per-ms series cannot keep",
    "orders": "own orders are account data, kept in the lossless stores only",
    "fills": "own fills are account data, kept in the lossless stores only",
    "instruments": "contract metadata (type, assets, contract size, expiry), not a time series: "
    "its strings would be tags and its numbers change only when a listing changes",
}

RuleFactory = Callable[[int], ChannelRule]  # merge horizon (ms) → a fresh rule

OVERRIDES: Final[dict[str, RuleFactory]] = {
    "trades": lambda horizon: TradesPerMs(horizon_ms=horizon),
    "bbo": lambda _: LastPerMs("bbo", ("bid_price", "bid_size", "ask_price", "ask_size")),
    "ticker": lambda _: LastPerMs(
        "ticker",
        (
            "last_price", "last_size", "open_price", "high_price", "low_price", "volume",
            "quote_volume", "vwap", "price_change", "price_change_pct", "trade_count",
        ),
    ),
    "candles": lambda _: LastPerMs(
        "candles",
        (
            "open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume",
            "trade_count", "closed",
        ),
        extra_tags=("interval",),
        time_field="open_time",
    ),
    "events": lambda horizon: CountPerMs(
        "events", ("count",), extra_tags=("kind", "channel"), horizon_ms=horizon,
        identity=("kind", "channel", "expected", "received", "detail"),
    ),
    "derivative_ticker": lambda _: LastPerMs(
        "derivative_ticker", DERIVATIVE_TICKER_FIELDS, full_state=True,
        nan_expected=DERIVATIVE_TICKER_FIELDS,
    ),
    "liquidations": lambda horizon: LiquidationsPerMs(horizon_ms=horizon),
    # Derived series (hundi.series): the variant fields of their IDENTITY are tags, so bars of
    # different intervals or book levels of one snapshot never overwrite each other.
    "bars": lambda _: LastPerMs(
        "bars",
        (
            "open", "high", "low", "close", "volume", "quote_volume", "vwap", "buy_volume",
            "sell_volume", "trade_count",
        ),
        extra_tags=("interval",),
    ),
    "book_top": lambda _: LastPerMs(
        "book_top",
        (
            "bid_price", "bid_size", "ask_price", "ask_size", "mid", "spread", "microprice",
            "imbalance", "bid_volume", "ask_volume", "bid_levels", "ask_levels",
        ),
        extra_tags=("interval", "depth"),
    ),
    "book_levels": lambda _: LastPerMs(
        "book_levels", ("price", "size"), extra_tags=("interval", "depth", "side", "level")
    ),
    "flow": lambda _: LastPerMs(
        "flow",
        ("buy_volume", "sell_volume", "flow_imbalance", "realized_vol", "returns"),
        extra_tags=("interval", "window"),
    ),
    "basis": lambda _: LastPerMs(
        "basis", ("mid_a", "mid_b", "spread", "basis"), extra_tags=("interval",)
    ),
}  # fmt: skip

_NUMERIC = (int, float, bool)


def generic_rule(channel: str) -> ChannelRule | None:
    """Last-per-ms of every numeric, non-time field of a channel's record type.

    Tags: the schema's dictionary-encoded strings (``interval``, ``kind``...) and the string
    fields of the type's ``IDENTITY`` (variants such as a rolling ``window``). Integer fields
    that hold times (``*_ts``, ``ts_*``, ``*_time``) are left out: ns do not fit a double.
    """
    known = {c.value: c for c in RECORD_TYPES}
    if channel not in known:
        return None
    record_type = RECORD_TYPES[known[channel]]
    schema: pa.Schema | None = SCHEMAS.get(known[channel])
    identity = getattr(record_type, "IDENTITY", ())
    fields: list[str] = []
    tags: list[str] = []
    for f in msgspec.structs.fields(record_type):
        arrow_type = schema.field(f.name).type if schema is not None else None
        is_time = arrow_type is not None and pa.types.is_timestamp(arrow_type)
        name = f.name
        if is_time or name == "ts" or name.endswith(("_ts", "_time")) or name.startswith("ts_"):
            continue
        if f.type in _NUMERIC:
            fields.append(name)
        elif f.type is str and name not in (*BASE_TAGS, "native_symbol"):
            dictionary = arrow_type is not None and pa.types.is_dictionary(arrow_type)
            if dictionary or name in identity:
                tags.append(name)
    if not fields:
        return None
    return LastPerMs(channel, fields, extra_tags=tags)


def rule_for(channel: Channel | str, horizon_ms: int = 2000) -> ChannelRule | None:
    """The rule for a channel, or None when the channel does not go to KairosDB."""
    name = channel.value if isinstance(channel, Channel) else str(channel)
    if name in EXCLUDED:
        return None
    factory = OVERRIDES.get(name)
    if factory is not None:
        return factory(horizon_ms)
    return generic_rule(name)


class Converter:
    """Stateful records → :data:`Pending` (state: the open per-ms aggregates)."""

    def __init__(self, *, horizon_ms: int = 2000) -> None:
        self.horizon_ms = horizon_ms
        self._rules: dict[str, ChannelRule | None] = {}
        self._by_series: dict[str, ChannelRule] = {}

    def rule(self, channel: Channel | str) -> ChannelRule | None:
        name = channel.value if isinstance(channel, Channel) else str(channel)
        if name not in self._rules:
            rule = self._rules[name] = rule_for(name, self.horizon_ms)
            if rule is not None:
                self._by_series[rule.series] = rule
        return self._rules[name]

    def series_rule(self, series: str) -> ChannelRule:
        """The rule that produced rows of ``series`` (a key of :data:`Pending`)."""
        return self._by_series[series]

    def rules(self) -> Iterable[ChannelRule]:
        return self._by_series.values()

    def add(self, batches: Mapping[Channel, Sequence[Record]], out: Pending) -> int:
        """Add every channel's rows to ``out``; returns how many records were sent nowhere."""
        skipped = 0
        for channel, records in batches.items():
            if not records:
                continue
            rule = self.rule(channel)
            if rule is None:
                skipped += len(records)
                continue
            rule.add(records, out)
        return skipped

    def commit(self) -> None:
        for rule in self.rules():
            rule.commit()

    def rollback(self) -> None:
        for rule in self.rules():
            rule.rollback()

    def convert(self, batches: Mapping[Channel, Sequence[Record]]) -> Pending:
        out: Pending = {}
        self.add(batches, out)
        return out
