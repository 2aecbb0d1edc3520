"""The normalized record model shared by every venue, the pipeline and every store.

Records are msgspec Structs: typed, cheap to build on the hot path (no dict per message, no
Decimal), and turned into columns only in batches (:func:`to_arrow`). Every record carries
``ts`` (the exchange's event time) and ``recv_ts`` (local receive time), both int ns UTC.
Where an exchange sends no event time (Binance spot ``bookTicker``), ``ts`` is the receive time
and the venue documents it.
"""

from __future__ import annotations

import enum
import inspect
import logging
import operator
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any, ClassVar, Final

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa

try:  # built by every install; a checkout mounted over an editable install may lack it
    from hundi import _columns
except ImportError:  # pragma: no cover - tests/test_records_arrow.py imports it unguarded
    _columns = None  # type: ignore[assignment]
    logging.getLogger("hundi").warning(
        "hundi._columns is not built here: records convert to Arrow in Python, ~5-10 times "
        "slower (reinstall hundi, e.g. scripts/install.sh, to build it)"
    )


class Channel(enum.StrEnum):
    """Normalized channel names; they are also the store's partition names."""

    TRADES = "trades"
    BBO = "bbo"
    TICKER = "ticker"
    BOOK = "book"
    BOOK_L3 = "book_l3"  # order-level book events (a venue's full order feed)
    CANDLES = "candles"
    DERIVATIVE_TICKER = "derivative_ticker"  # mark/index price, funding, open interest
    LIQUIDATIONS = "liquidations"  # forced orders (complete feeds or samples: see the record)
    INSTRUMENTS = "instruments"  # contract metadata: type, size, settlement, expiry
    EVENTS = "events"
    ORDERS = "orders"  # own order updates (authenticated streams)
    FILLS = "fills"  # own trades (authenticated streams)
    BARS = "bars"  # derived (hundi.series): OHLCV bars
    BOOK_TOP = "book_top"  # derived: top-N book snapshot metrics
    BOOK_LEVELS = "book_levels"  # derived: top-N book snapshot levels, one row per level
    FLOW = "flow"  # derived: trade-flow imbalance and realized volatility, rolling
    BASIS = "basis"  # derived: spread and basis between two streams


# Sides, stored as int8: a trade's taker side (BUY/SELL) and a book level's side (BID/ASK).
BUY: Final = 1
SELL: Final = -1
BID: Final = 1
ASK: Final = -1


class Record(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """Common head of every record.

    ``IDENTITY`` names the fields that, together with ``exchange``, ``symbol`` and ``ts``,
    identify one record uniquely: stores key rows by them so that writing a record again (a
    retried batch, a second collector on the same feed) replaces it instead of duplicating it.
    Every record type declares it; choose fields the exchange sends, not local ones like
    ``recv_ts``, so two collectors agree.
    """

    CHANNEL: ClassVar[Channel]
    IDENTITY: ClassVar[tuple[str, ...]]

    exchange: str
    symbol: str  # normalized, e.g. BTC-USDT, BTC-USDT-PERP
    native_symbol: str  # as the exchange spells it, e.g. BTCUSDT
    ts: int  # exchange event time, ns UTC
    recv_ts: int  # local receive time, ns UTC


class Trade(Record, frozen=True, gc=False, kw_only=True):
    """One (aggregate) trade. ``side`` is the taker's side: 1 buy, -1 sell."""

    CHANNEL: ClassVar[Channel] = Channel.TRADES
    # Trade ids (aggregate or plain) are unique per symbol; trades sharing a millisecond differ.
    IDENTITY: ClassVar[tuple[str, ...]] = ("trade_id",)

    trade_id: int  # aggregate trade id for aggTrade streams, trade id for trade streams
    price: float
    size: float
    side: int
    first_trade_id: int  # aggTrade covers [first_trade_id, last_trade_id]; equal for plain trades
    last_trade_id: int


class Bbo(Record, frozen=True, gc=False, kw_only=True):
    """Best bid and offer (top of book)."""

    CHANNEL: ClassVar[Channel] = Channel.BBO
    # Binance spot and USD-M ``u`` is the order-book update id that moved the top of book: one
    # per update, unique per symbol. On spot ``ts`` is the local receive time, so two collectors
    # write the same update at two different ``ts`` (retries still match).
    IDENTITY: ClassVar[tuple[str, ...]] = ("update_id",)

    update_id: int
    bid_price: float
    bid_size: float
    ask_price: float
    ask_size: float


class Ticker(Record, frozen=True, gc=False, kw_only=True):
    """Rolling 24 h statistics."""

    CHANNEL: ClassVar[Channel] = Channel.TICKER
    # One push per event time; the window end and last trade id tell apart two pushes that
    # might share a millisecond.
    IDENTITY: ClassVar[tuple[str, ...]] = ("close_time", "last_trade_id")

    last_price: float
    last_size: float
    open_price: float
    high_price: float
    low_price: float
    volume: float  # base asset
    quote_volume: float
    vwap: float
    price_change: float
    price_change_pct: float
    trade_count: int
    open_time: int  # ns
    close_time: int  # ns
    first_trade_id: int
    last_trade_id: int


class BookChange(Record, frozen=True, gc=False, kw_only=True):
    """One L2 level set (size > 0) or delete (size == 0).

    ``snapshot`` is True for the levels of a REST snapshot that (re)starts the book; a snapshot
    replaces the whole side state for the symbol. ``first_update_id``/``update_id``/
    ``prev_update_id`` are the exchange's sequence ids of the message the level came from
    (Binance ``U``/``u``/``pu``; -1 where the exchange sends none).
    """

    CHANNEL: ClassVar[Channel] = Channel.BOOK
    # One message holds one row per (side, price); ``update_id`` tells messages of one
    # millisecond apart, and ``snapshot`` a snapshot level from a diff with the same id.
    IDENTITY: ClassVar[tuple[str, ...]] = ("update_id", "side", "price", "snapshot")

    side: int  # 1 bid, -1 ask
    price: float
    size: float
    snapshot: bool
    first_update_id: int
    update_id: int
    prev_update_id: int


class OrderEvent(Record, frozen=True, gc=False, kw_only=True):
    """One order-level (L3) book event, from a venue's full order feed (e.g. Coinbase ``full``).

    The rows of one symbol, in ``sequence`` order, rebuild the order book at any time: the L2
    book (sizes summed per price) and every order's queue position (arrival order per level).
    ``kind``: ``snapshot`` (one row per resting order of a REST level-3 snapshot; all rows of
    one snapshot share its ``sequence`` and restart the book), ``received``, ``open``,
    ``match``, ``change``, ``done`` (the venue's message types). ``size`` is the resting size
    for ``snapshot``/``open``, the new size for ``change``, the matched size for ``match``, the
    remaining size for ``done`` and the order size for ``received`` (0 if the venue sends none).
    """

    CHANNEL: ClassVar[Channel] = Channel.BOOK_L3
    # Each live message has its own sequence; a snapshot's rows share one and differ by order.
    IDENTITY: ClassVar[tuple[str, ...]] = ("sequence", "order_id", "kind")

    order_id: str  # for ``match``: the resting (maker) order
    side: int  # 1 bid (buy order), -1 ask (sell order)
    price: float  # the order's limit price; 0 where the venue sends none (market orders)
    size: float
    kind: str
    sequence: int  # the venue's per-symbol sequence number
    other_order_id: str  # ``match``: the taker order; "" otherwise
    # ``match``: the trade id; ``snapshot``: the order's place in the snapshot (0, 1, ...: what
    # restores each queue, since a store may return one snapshot's rows in any order); -1 else
    trade_id: int
    reason: str  # ``done``: filled / canceled; "" otherwise


class Candle(Record, frozen=True, gc=False, kw_only=True):
    """A kline update; ``closed`` marks the final update of the interval."""

    CHANNEL: ClassVar[Channel] = Channel.CANDLES
    # Updates of several intervals (and, at a boundary, of two klines) share event times.
    IDENTITY: ClassVar[tuple[str, ...]] = ("interval", "open_time")

    interval: str
    open_time: int  # ns
    close_time: int  # ns
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    taker_buy_volume: float
    trade_count: int
    closed: bool


# Units of an amount (``size_unit``): what one unit of ``size``/``open_interest`` is.
BASE: Final = "base"  # the base asset (BTC of BTC-USDT)
CONTRACTS: Final = "contracts"  # contracts of ``Instrument.contract_size`` each
QUOTE: Final = "quote"  # the quote currency (USD of an inverse BTC-USD contract on Bybit)
SIZE_UNITS: Final = (BASE, CONTRACTS, QUOTE)

# ``Liquidation.completeness``
COMPLETE: Final = "complete"  # the venue sends every liquidation
SAMPLED: Final = "sampled"  # the venue sends a sample (Binance: at most one per symbol a second)


class DerivativeTicker(Record, frozen=True, gc=False, kw_only=True):
    """Mark and index price, funding and open interest of a derivative, as one full record.

    Venues publish these fields in pieces (Bybit ``tickers`` deltas, OKX one channel per field,
    Binance ``markPrice`` plus REST open interest); the venue's protocol merges them, so every
    record holds the latest value of every field: a field a message does not carry is the
    previous value, not zero. A field not known yet (nothing received since the start, or one the
    venue does not publish for this contract) is NaN; ``next_funding_time`` is 0 where there is
    none (dated futures). ``source`` names the message that brought this update.
    """

    CHANNEL: ClassVar[Channel] = Channel.DERIVATIVE_TICKER
    # Two messages of one venue (mark price, funding) may share a millisecond: the source tells
    # them apart, and two collectors name the same message alike.
    IDENTITY: ClassVar[tuple[str, ...]] = ("source",)

    source: str  # e.g. markPrice, open_interest (REST), tickers, mark-price, funding-rate
    mark_price: float
    index_price: float
    funding_rate: float  # of the current funding period, settled at next_funding_time
    predicted_funding_rate: float  # the venue's estimate for the period after; NaN if none
    next_funding_time: int  # ns; 0 = no funding (dated futures)
    open_interest: float  # in size_unit
    open_interest_value: float  # in the quote currency (USD for inverse contracts); NaN if unknown
    size_unit: str  # a SIZE_UNITS value


class Liquidation(Record, frozen=True, gc=False, kw_only=True):
    """One forced (liquidation) order, as the venue reports it.

    ``side`` is the liquidation order's side: -1 sell (a long position was closed), 1 buy (a
    short was). ``completeness`` says whether the feed is every liquidation (``complete``) or a
    sample (``sampled``: Binance ``forceOrder`` pushes at most one per symbol per second, the
    latest, so counting rows undercounts liquidations).
    """

    CHANNEL: ClassVar[Channel] = Channel.LIQUIDATIONS
    # No venue sends a liquidation id; side, price and size tell apart two at one instant, and
    # ``position`` two identical ones of one message (a cascade), which two collectors number alike.
    IDENTITY: ClassVar[tuple[str, ...]] = ("side", "price", "size", "position")

    side: int
    price: float  # the order's price (bankruptcy price where the venue sends that)
    size: float  # in size_unit
    size_unit: str
    completeness: str  # COMPLETE or SAMPLED
    detail: str  # what else the venue said (order status, filled size...), compact
    position: int  # its place among the liquidations of one venue message: 0, 1, ...


class Instrument(Record, frozen=True, gc=False, kw_only=True):
    """What one contract is, so amounts can be converted: stored when a collector starts and
    whenever the venue's instrument list changes. ``ts`` is when hundi read it.

    ``contract_type``: ``spot``, ``perpetual`` or ``future`` (dated). ``size_unit`` is the unit
    of ``size`` in this instrument's trades, books, liquidations and open interest. A contract is
    worth ``contract_size`` of the base asset (linear) or of the quote currency (``inverse``:
    Binance COIN-M BTCUSD is 100 USD a contract), so in base units: linear ``size *
    contract_size``, inverse ``size * contract_size / price``.
    """

    CHANNEL: ClassVar[Channel] = Channel.INSTRUMENTS
    IDENTITY: ClassVar[tuple[str, ...]] = ("contract_type",)

    contract_type: str  # spot | perpetual | future
    inverse: bool  # margined and settled in the base asset, sized in the quote currency
    base_asset: str
    quote_asset: str
    settle_asset: str
    contract_size: float  # 1 for spot and for venues that size in base units
    size_unit: str  # a SIZE_UNITS value
    tick_size: float  # NaN if the venue does not say
    lot_size: float  # NaN if the venue does not say
    expiry: int  # ns; 0 for spot and perpetuals
    status: str  # the venue's own listing status (TRADING, live, Trading...)


class EventKind(enum.StrEnum):
    GAP = "gap"  # sequence break detected; data between expected and received is missing
    RESYNC = "resync"  # a fresh snapshot was requested to rebuild the book
    SYNCED = "synced"  # book rebuilt and consistent again
    RECONNECT = "reconnect"
    STALE = "stale"  # no data within the watchdog window
    SHUTDOWN = "shutdown"  # the exchange announced a server shutdown
    INVALID_SYMBOL = "invalid_symbol"  # configured, but the exchange does not list/trade it
    AUTH_FAILED = "auth_failed"  # the venue refused our credentials; retried with a capped backoff
    BACKFILLED = "backfilled"  # ids expected..received-1 of a gap were fetched again over REST
    UNRECOVERABLE = "unrecoverable"  # ids expected..received-1 of a gap cannot be fetched again
    STOPPED = "stopped"  # the collector stopped cleanly (--duration, SIGTERM): the data ends here


class Event(Record, frozen=True, gc=False, kw_only=True):
    """Integrity events: gaps, resyncs, reconnects. Stored so every hole is explained."""

    CHANNEL: ClassVar[Channel] = Channel.EVENTS
    # ``detail`` names the connection or id range, so two events of one kind at one instant
    # (two connections dropping together) stay two rows; a re-written event matches itself.
    IDENTITY: ClassVar[tuple[str, ...]] = ("kind", "channel", "expected", "received", "detail")

    kind: str  # an EventKind value
    channel: str  # the channel affected
    expected: int  # expected sequence id (-1 if not applicable)
    received: int  # received sequence id (-1 if not applicable)
    detail: str


# What a clean stop says: the raw capture's CLOSE data and the ``stopped`` events' detail start
# with it, so a replay tells a clean stop from a dropped connection.
STOP_DETAIL: Final = "collector stopping"


def stopped_event(exchange: str, conn_key: str, ts: int, detail: str) -> Event:
    """The connection-wide ``stopped`` event of a clean stop (live and replay make the same)."""
    return Event(
        exchange=exchange,
        symbol="",
        native_symbol="",
        ts=ts,
        recv_ts=ts,
        kind=EventKind.STOPPED.value,
        channel="",
        expected=-1,
        received=-1,
        detail=f"{conn_key}: {detail}",
    )


def as_stopped(events: Sequence[Event], detail: str) -> list[Event]:
    """The events a venue reports when its socket closes, for a clean stop: a ``gap`` becomes
    ``stopped`` (the data ends by choice, nothing after it was missed; its ``expected`` still
    says where the stream was), a ``resync`` is dropped (no book is rebuilt after a stop), any
    other event is kept. Why here: the live collector and the replay must store the same."""
    kept: list[Event] = []
    for event in events:
        if event.kind == EventKind.GAP:
            kept.append(msgspec.structs.replace(event, kind=EventKind.STOPPED.value, detail=detail))
        elif event.kind != EventKind.RESYNC:
            kept.append(event)
    return kept


class Order(Record, frozen=True, gc=False, kw_only=True):
    """One update of one of our own orders (authenticated streams).

    ``status`` is normalized (:data:`ORDER_STATUSES`); ``execution`` is what the venue says
    happened (Binance execution type ``x``, Bitfinex ``on``/``ou``/``oc``/``os``) and
    ``venue_status`` its own status text, kept so nothing the venue said is lost. ``filled`` is
    cumulative; ``last_fill_*`` describe this update's fill (0 when it is not a fill) and
    ``fee``/``fee_asset`` that fill's fee.
    """

    CHANNEL: ClassVar[Channel] = Channel.ORDERS
    # Cumulative ``filled`` grows with every fill, so (order, execution, filled) at ``ts`` names
    # one update even when several share a millisecond.
    IDENTITY: ClassVar[tuple[str, ...]] = ("order_id", "execution", "filled")

    order_id: str  # the exchange's id
    client_order_id: str
    side: int  # 1 buy, -1 sell
    order_type: str  # venue spelling, e.g. LIMIT, MARKET, EXCHANGE LIMIT
    time_in_force: str  # GTC, IOC, FOK, GTX... ("" where the venue has none)
    status: str  # an ORDER_STATUSES value
    venue_status: str
    execution: str
    price: float  # limit price, 0 for market orders
    stop_price: float  # 0 when not a conditional order
    quantity: float  # original quantity (positive)
    filled: float  # cumulative filled quantity
    average_price: float  # of the filled part, 0 before the first fill
    last_fill_price: float
    last_fill_quantity: float
    fee: float  # of this update's fill
    fee_asset: str
    trade_id: int  # this update's fill, -1 if none
    reject_reason: str
    created_ts: int  # order creation time, ns (-1 if the venue does not say)


class Fill(Record, frozen=True, gc=False, kw_only=True):
    """One execution of one of our own orders (authenticated streams)."""

    CHANNEL: ClassVar[Channel] = Channel.FILLS
    IDENTITY: ClassVar[tuple[str, ...]] = ("trade_id", "order_id")

    trade_id: int
    order_id: str
    client_order_id: str
    side: int  # 1 buy, -1 sell
    order_type: str
    price: float
    quantity: float
    fee: float  # positive = paid, negative = rebate (Bitfinex reports fees negative: flipped)
    fee_asset: str
    maker: bool


# Normalized order statuses (``Order.status``).
ORDER_STATUSES: Final = (
    "new",
    "partially_filled",
    "filled",
    "canceled",
    "pending_cancel",
    "rejected",
    "expired",
)


# --- derived series (hundi.series): computed by the collector, recomputable offline ----------


class Bar(Record, frozen=True, gc=False, kw_only=True):
    """An OHLCV bar. ``interval`` names the bar kind: ``1m`` (time), ``ticks:100``,
    ``volume:2.5``.

    Time bars: ``ts`` is the bar's start, ``close_time`` its (exclusive) end; an empty bar has
    ``open = high = low = close`` = the previous close, zero volume and trade ids -1. Tick and
    volume bars: ``ts``/``close_time`` are the first/last trade's times. ``recv_ts`` is when the
    bar became final by the rule in :mod:`hundi.series` (so online and offline agree).
    """

    CHANNEL: ClassVar[Channel] = Channel.BARS
    IDENTITY: ClassVar[tuple[str, ...]] = ("interval", "first_trade_id")

    interval: str
    close_time: int  # ns
    open: float
    high: float
    low: float
    close: float
    volume: float  # base asset
    quote_volume: float
    vwap: float  # quote_volume / volume; NaN for an empty bar
    buy_volume: float  # taker buys
    sell_volume: float  # taker sells
    trade_count: int
    first_trade_id: int  # -1 for an empty bar
    last_trade_id: int


class BookTop(Record, frozen=True, gc=False, kw_only=True):
    """Top-``depth`` book metrics sampled at ``ts`` (every ``interval``), NaN where a side is
    empty. ``imbalance`` = (bid_volume - ask_volume) / (bid_volume + ask_volume) over the
    top ``depth`` levels; ``microprice`` weights the best prices by the opposite best size."""

    CHANNEL: ClassVar[Channel] = Channel.BOOK_TOP
    IDENTITY: ClassVar[tuple[str, ...]] = ("interval", "depth")

    interval: str
    depth: int
    bid_price: float
    bid_size: float
    ask_price: float
    ask_size: float
    mid: float
    spread: float
    microprice: float
    imbalance: float
    bid_volume: float  # summed size of the top ``depth`` bid levels
    ask_volume: float
    bid_levels: int  # levels present, <= depth
    ask_levels: int
    update_id: int  # exchange sequence id of the last change applied (-1 if none)


class BookLevel(Record, frozen=True, gc=False, kw_only=True):
    """One level of a top-``depth`` snapshot (level 0 is the best), one row per level."""

    CHANNEL: ClassVar[Channel] = Channel.BOOK_LEVELS
    IDENTITY: ClassVar[tuple[str, ...]] = ("interval", "depth", "side", "level")

    interval: str
    depth: int
    side: int  # 1 bid, -1 ask
    level: int
    price: float
    size: float


class Flow(Record, frozen=True, gc=False, kw_only=True):
    """Rolling trade flow and risk at the end ``ts`` of each ``interval`` bar, over the last
    ``window`` (its ``returns`` bars). ``flow_imbalance`` = (buy - sell) / (buy + sell) taker
    volume, NaN without volume; ``realized_vol`` = sqrt(sum of squared log returns of the bar
    closes), not annualized."""

    CHANNEL: ClassVar[Channel] = Channel.FLOW
    IDENTITY: ClassVar[tuple[str, ...]] = ("interval", "window")

    interval: str
    window: str
    buy_volume: float
    sell_volume: float
    flow_imbalance: float
    realized_vol: float
    returns: int


class Basis(Record, frozen=True, gc=False, kw_only=True):
    """Two streams on a common clock: each leg's last BBO mid as of ``ts``.

    ``symbol`` is ``A_B``; ``spread`` = mid_b - mid_a, ``basis`` = spread / mid_a.
    ``ts_a``/``ts_b`` are the exchange times (ns) of the quotes used.
    """

    CHANNEL: ClassVar[Channel] = Channel.BASIS
    IDENTITY: ClassVar[tuple[str, ...]] = ("interval",)

    interval: str
    leg_a: str
    leg_b: str
    mid_a: float
    mid_b: float
    spread: float
    basis: float
    ts_a: int
    ts_b: int


# Channels the pipeline derives itself (never subscribed from a venue).
SERIES_CHANNELS: Final = frozenset(
    {Channel.BARS, Channel.BOOK_TOP, Channel.BOOK_LEVELS, Channel.FLOW, Channel.BASIS}
)


# The field that numbers a channel's records contiguously (per stream) where the exchange sends
# one: what proves continuity, and what a hole is measured in.
SEQUENCE_FIELDS: dict[Channel, str] = {
    Channel.TRADES: "trade_id",
    Channel.BOOK: "update_id",
    Channel.BOOK_L3: "sequence",
}

RECORD_TYPES: Final[dict[Channel, type[Record]]] = {
    Channel.TRADES: Trade,
    Channel.BBO: Bbo,
    Channel.TICKER: Ticker,
    Channel.BOOK: BookChange,
    Channel.BOOK_L3: OrderEvent,
    Channel.CANDLES: Candle,
    Channel.DERIVATIVE_TICKER: DerivativeTicker,
    Channel.LIQUIDATIONS: Liquidation,
    Channel.INSTRUMENTS: Instrument,
    Channel.EVENTS: Event,
    Channel.ORDERS: Order,
    Channel.FILLS: Fill,
    Channel.BARS: Bar,
    Channel.BOOK_TOP: BookTop,
    Channel.BOOK_LEVELS: BookLevel,
    Channel.FLOW: Flow,
    Channel.BASIS: Basis,
}

_ARROW_TYPES: Final[dict[Any, pa.DataType]] = {
    int: pa.int64(),
    float: pa.float64(),
    str: pa.string(),
    bool: pa.bool_(),
}


def _schema_for(record_type: type[Record]) -> pa.Schema:
    hints = msgspec.structs.fields(record_type)
    fields = []
    for f in hints:
        arrow_type = _ARROW_TYPES[f.type]
        if f.name in ("ts", "recv_ts", "open_time", "close_time", "next_funding_time", "expiry"):
            arrow_type = pa.timestamp("ns", tz="UTC")
        elif f.name == "side":
            arrow_type = pa.int8()
        elif f.name in ("exchange", "symbol", "native_symbol", "kind", "channel", "interval"):
            arrow_type = pa.dictionary(pa.int32(), pa.string())
        fields.append(pa.field(f.name, arrow_type, nullable=False))
    return pa.schema(fields)


SCHEMAS: Final[dict[Channel, pa.Schema]] = {c: _schema_for(t) for c, t in RECORD_TYPES.items()}
FIELD_NAMES: Final[dict[Channel, tuple[str, ...]]] = {c: tuple(s.names) for c, s in SCHEMAS.items()}


_GETTERS: Final[dict[Channel, tuple[tuple[Any, pa.DataType], ...]]] = {
    c: tuple((attrgetter(f.name), f.type) for f in SCHEMAS[c]) for c in RECORD_TYPES
}


def _column_kind(arrow_type: pa.DataType) -> int | None:
    """``hundi._columns``' code for a column type; None for plain strings (Python's part)."""
    if pa.types.is_dictionary(arrow_type):
        return 5
    if pa.types.is_timestamp(arrow_type):
        return 0
    if pa.types.is_string(arrow_type):
        return None
    kinds = {pa.int64(): 0, pa.int32(): 1, pa.int8(): 2, pa.float64(): 3, pa.bool_(): 4}
    if arrow_type not in kinds:  # a new record schema type: teach both paths first
        raise TypeError(f"no column extraction for {arrow_type}")
    return kinds[arrow_type]


def _extract_plan(
    channel: Channel,
) -> tuple[type[Record], tuple[tuple[Any, int], ...], tuple[bool, ...]]:
    """Per channel: its record type, (field slot, kind) of the columns ``_columns`` extracts,
    and which columns are plain strings (built in Python)."""
    record_type = RECORD_TYPES[channel]
    fields = []
    strings = []
    for f in SCHEMAS[channel]:
        kind = _column_kind(f.type)
        strings.append(kind is None)
        if kind is not None:
            fields.append((inspect.getattr_static(record_type, f.name), kind))
    return record_type, tuple(fields), tuple(strings)


_EXTRACT: Final = {c: _extract_plan(c) for c in RECORD_TYPES}


# Arrays are built from numpy buffers, not with ``pa.array``: pyarrow's conversion of any
# Python or numpy object loads pandas first (its pandas shim checks every input), ~45 MB of a
# collector's memory for nothing; ``np.fromiter`` over the same getter is as fast.
_NUMPY_TYPES: Final[dict[pa.DataType, Any]] = {
    pa.int64(): np.int64,
    pa.int32(): np.int32,
    pa.int8(): np.int8,
    pa.float64(): np.float64,
    pa.timestamp("ns", tz="UTC"): np.int64,
}


_BOOL_TYPES: Final = frozenset({bool, np.bool_})


def numbers_array(values: Iterable[Any], n: int, arrow_type: pa.DataType) -> pa.Array:
    """``n`` numbers (or bools) as an Arrow array of ``arrow_type``, without nulls. A value the
    type cannot hold raises OverflowError, TypeError or ValueError, as ``pa.array`` would:
    numpy alone would truncate a float into an int column and parse a str into a float one,
    so each value passes ``operator.index`` (ints) or unary ``+`` (floats) first (~10 ns), and
    a bool column takes bools only. Stricter than ``pa.array`` where that coerced: an int-valued
    float (``7.0``) in an int column and ``None`` anywhere are refused (the record types say
    neither can be there), so such a record is counted lost with a gap event, never stored
    altered."""
    if pa.types.is_boolean(arrow_type):
        flags = list(values)
        if not set(map(type, flags)) <= _BOOL_TYPES:  # numpy would take 2, "no" or None
            wrong = next(v for v in flags if type(v) not in _BOOL_TYPES)
            raise TypeError(f"expected bool, got {type(wrong).__name__} {wrong!r}")
        bits = np.packbits(np.fromiter(flags, np.bool_, count=n), bitorder="little")
        return pa.Array.from_buffers(arrow_type, n, [None, pa.py_buffer(bits)])
    dtype = _NUMPY_TYPES[arrow_type]
    strict = map(operator.pos if dtype is np.float64 else operator.index, values)
    return numpy_array(np.fromiter(strict, dtype, count=n), arrow_type)


def numpy_array(data: npt.NDArray[Any], arrow_type: pa.DataType) -> pa.Array:
    """A 1-d numpy array of ``arrow_type``'s width as that Arrow array (zero copy)."""
    data = np.ascontiguousarray(data)
    if data.dtype.itemsize * 8 != arrow_type.bit_width:
        raise TypeError(f"{data.dtype} values cannot be {arrow_type} ({arrow_type.bit_width} bits)")
    return pa.Array.from_buffers(arrow_type, len(data), [None, pa.py_buffer(data)])


def numpy_view(column: pa.Array | pa.ChunkedArray, dtype: Any) -> npt.NDArray[Any]:
    """A fixed-width column without nulls as numpy ``dtype`` values (a view of its data buffer
    for one chunk). Not ``to_numpy``: that loads pandas too."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    width = np.dtype(dtype).itemsize
    views = [
        np.frombuffer(chunk.buffers()[1], dtype, count=len(chunk), offset=chunk.offset * width)
        for chunk in chunks
        if len(chunk)
    ]
    if len(views) == 1:
        return views[0]
    return np.concatenate(views) if views else np.empty(0, dtype)


def strings_array(values: Sequence[str]) -> pa.Array:
    """Python strings as an Arrow ``string`` array (UTF-8 data and int32 offsets)."""
    try:
        encoded = [value.encode() for value in values]
    except AttributeError as exc:  # not a str: the error a conversion gives
        raise TypeError(f"expected str, got {exc}") from None
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, encoded), np.int64, count=len(encoded)), out=offsets[1:])
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError(f"{offsets[-1]} bytes of strings do not fit one string array")
    return pa.Array.from_buffers(
        pa.string(),
        len(encoded),
        [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(encoded))],
    )


def _dictionary_column(values: list[Any]) -> pa.Array:
    """Names (exchange, symbol...) are usually one value per batch: build that without hashing."""
    first = values[0]
    if values.count(first) == len(values):  # identity compare first: one C loop, no allocation
        codes = np.zeros(len(values), np.int32)
        return pa.DictionaryArray.from_arrays(
            numpy_array(codes, pa.int32()), strings_array([first])
        )
    seen: dict[Any, int] = {}
    codes = np.fromiter(
        (seen.setdefault(value, len(seen)) for value in values), np.int32, count=len(values)
    )
    return pa.DictionaryArray.from_arrays(numpy_array(codes, pa.int32()), strings_array(list(seen)))


def to_arrow(channel: Channel, records: Sequence[Record]) -> pa.Table:
    """Records of one channel → an Arrow table with the channel's schema (columnar, batched).

    A list of records of exactly the channel's type with values of exactly their columns' types
    (what every venue builds) goes through ``hundi._columns``, one C pass per column (~10 times the
    Python path's speed, ``bench/micro.py``); anything else through :func:`python_columns`,
    which coerces or refuses each value. Both give the same table for what both take
    (tests/test_records_arrow.py).
    """
    schema = SCHEMAS[channel]
    if not records:
        return empty_table_of(schema)
    record_type, fields, strings = _EXTRACT[channel]
    extracted = (
        _columns.extract(records, record_type, fields)
        if _columns is not None and type(records) is list
        else None
    )
    if extracted is None:
        return python_columns(channel, records)
    n = len(records)
    arrays: list[pa.Array] = []
    columns = iter(extracted)
    for (get, kind), is_string in zip(_GETTERS[channel], strings, strict=True):
        if is_string:
            arrays.append(strings_array(list(map(get, records))))
        else:
            arrays.append(_extracted_array(next(columns), n, kind))
    return pa.Table.from_arrays(arrays, schema=schema)


def python_columns(channel: Channel, records: Sequence[Record]) -> pa.Table:
    """:func:`to_arrow` in Python: any sequence of objects with the channel's fields. One
    ``attrgetter`` pass per column straight into the column's buffer: no tuple per record (50k
    short-lived tuples per batch trigger garbage collections that cost more than the conversion
    itself) and no intermediate Python lists for numbers."""
    schema = SCHEMAS[channel]
    if not records:
        return empty_table_of(schema)
    n = len(records)
    arrays = [column_array(map(get, records), n, kind) for get, kind in _GETTERS[channel]]
    return pa.Table.from_arrays(arrays, schema=schema)


def _extracted_array(column: Any, n: int, arrow_type: pa.DataType) -> pa.Array:
    """One column of ``_columns.extract`` as the Arrow array of ``arrow_type`` (zero copy but
    for bools, which Arrow packs into bits)."""
    if pa.types.is_dictionary(arrow_type):
        codes, distinct = column
        indices = pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(codes)])
        return pa.DictionaryArray.from_arrays(indices, strings_array(distinct))
    if pa.types.is_boolean(arrow_type):
        flags = np.frombuffer(column, np.uint8, count=n)
        bits = np.packbits(flags, bitorder="little")
        return pa.Array.from_buffers(arrow_type, n, [None, pa.py_buffer(bits)])
    return pa.Array.from_buffers(arrow_type, n, [None, pa.py_buffer(column)])


def column_array(values: Iterable[Any], n: int, arrow_type: pa.DataType) -> pa.Array:
    """``n`` values of one column as an array of one of the record schemas' types."""
    if pa.types.is_dictionary(arrow_type):
        return _dictionary_column(list(values))
    if pa.types.is_string(arrow_type):
        return strings_array(list(values))
    return numbers_array(values, n, arrow_type)  # numbers straight from the iterator


def empty_table_of(schema: pa.Schema) -> pa.Table:
    """No rows of ``schema``. Not ``schema.empty_table()``: that loads pandas."""
    return pa.Table.from_batches([], schema=schema)


_EXCHANGE: Final = attrgetter("exchange")


_TALLIED: Final = {
    t: (inspect.getattr_static(t, "exchange"), inspect.getattr_static(t, "symbol"))
    for t in RECORD_TYPES.values()
}

# (the one exchange, its symbols in first-seen order, records per symbol, last record of each)
Tally = tuple[str, list[str], list[int], list[Record]]


def stream_tally(records: Sequence[Record]) -> Tally | None:
    """A batch's streams in one C pass (``hundi._columns.tally``), for the collector's
    bookkeeping of every batch; None when it cannot (not one exchange, odd records, no
    extension): the caller then takes its Python path."""
    if _columns is None or type(records) is not list or not records:
        return None
    record_type = type(records[0])
    fields = _TALLIED.get(record_type)
    if fields is None:
        return None
    return _columns.tally(records, record_type, *fields)


def one_exchange(records: Sequence[Record]) -> str | None:
    """The exchange of all ``records`` when they share one (nearly every batch), else None.
    Per-stream bookkeeping then keys by symbol alone: one attribute per record instead of an
    (exchange, symbol) tuple built and hashed for each (measured ~110 vs ~25 ns a record)."""
    exchanges = set(map(_EXCHANGE, records))
    return next(iter(exchanges)) if len(exchanges) == 1 else None


def from_arrow(channel: Channel, table: pa.Table) -> list[Record]:
    """Arrow table → records (tests and replays; not the hot path)."""
    record_type = RECORD_TYPES[channel]
    names = FIELD_NAMES[channel]
    columns = []
    for name in names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        elif pa.types.is_dictionary(col.type):
            col = col.cast(pa.string())
        columns.append(col.to_pylist())
    return [record_type(**dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]
