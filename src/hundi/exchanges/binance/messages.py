"""Typed msgspec shapes of Binance stream payloads and REST depth snapshots.

Decoders run in lax mode (``strict=False``) so Binance's quoted decimals (``"0.35130000"``)
become floats during decoding: no Decimal, no intermediate dict per message. Field names are the
exchange's one-letter keys (case matters: ``E`` event time vs ``e`` event type).
"""

from __future__ import annotations

import sys
from typing import Annotated, Final

import msgspec
from msgspec import Meta, Raw, Struct, field

# Constrained numbers: a NaN/inf/negative price or an id/time that would overflow int64 columns
# is rejected at decode time (one bad frame), instead of poisoning a book or a whole batch.
Num = Annotated[float, Meta(ge=0.0, le=sys.float_info.max)]
Signed = Annotated[float, Meta(ge=-sys.float_info.max, le=sys.float_info.max)]  # changes
Id = Annotated[int, Meta(ge=-1, le=2**63 - 1)]
Millis = Annotated[int, Meta(ge=0, le=(2**63 - 1) // 1_000_000)]  # fits int64 ns

Level = tuple[Num, Num]
EMPTY: Final = Raw(b"")


class Frame(Struct, gc=False):
    """Everything that can arrive on a combined-stream connection, decoded shallowly.

    Market data is ``{"stream":..., "data":...}``; ``data`` stays raw until the stream name picks
    its typed decoder. The other fields catch subscribe acks (``result``/``id``), errors
    (``code``/``msg`` or ``error``) and bare events such as ``serverShutdown``.
    """

    stream: str | None = None
    data: Raw = EMPTY  # EMPTY (zero length) = field absent
    result: Raw = EMPTY  # ``null`` for a subscribe ack, a list for LIST_SUBSCRIPTIONS
    id: int | str | None = None
    code: int | None = None
    msg: str | None = None
    error: Raw = EMPTY
    e: str | None = None
    event: Raw = EMPTY


class StreamEventType(Struct, gc=False):
    """Just the event type (``e``) of a market-data payload, read only to explain why it did not
    fit its stream's shape (spot ``bookTicker`` payloads carry none: None)."""

    e: str | None = None


class ShutdownMsg(Struct, gc=False):
    """``serverShutdown``: the server will close the connection soon."""

    e: str | None = None
    event_time: Millis = field(name="E", default=-1)


class AggTrade(Struct, gc=False):
    """One aggregate trade: an entry of REST ``aggTrades`` (spot ``/api/v3``, USD-M
    ``/fapi/v1``), and the body of the ``aggTrade`` stream event."""

    agg_id: Id = field(name="a")
    price: Num = field(name="p")
    qty: Num = field(name="q")
    first_id: Id = field(name="f")
    last_id: Id = field(name="l")
    trade_time: Millis = field(name="T")
    buyer_is_maker: bool = field(name="m")


class AggTradeMsg(AggTrade, gc=False):
    event_time: Millis = field(name="E")


class TradeMsg(Struct, gc=False):
    event_time: Millis = field(name="E")
    trade_id: Id = field(name="t")
    price: Num = field(name="p")
    qty: Num = field(name="q")
    trade_time: Millis = field(name="T")
    buyer_is_maker: bool = field(name="m")


class BookTickerMsg(Struct, gc=False):
    """Spot sends no ``e``/``E``; USD-M adds both plus ``T``. -1 marks "not sent"."""

    update_id: Id = field(name="u")
    bid: Num = field(name="b")
    bid_qty: Num = field(name="B")
    ask: Num = field(name="a")
    ask_qty: Num = field(name="A")
    event_time: Millis = field(name="E", default=-1)


class TickerMsg(Struct, gc=False):
    event_time: Millis = field(name="E")
    price_change: Signed = field(name="p")
    price_change_pct: Signed = field(name="P")
    vwap: Num = field(name="w")
    last: Num = field(name="c")
    last_qty: Num = field(name="Q")
    open: Num = field(name="o")
    high: Num = field(name="h")
    low: Num = field(name="l")
    volume: Num = field(name="v")
    quote_volume: Num = field(name="q")
    open_time: Millis = field(name="O")
    close_time: Millis = field(name="C")
    first_id: Id = field(name="F")
    last_id: Id = field(name="L")
    count: Id = field(name="n")


class Kline(Struct, gc=False):
    open_time: Millis = field(name="t")
    close_time: Millis = field(name="T")
    interval: str = field(name="i")
    open: Num = field(name="o")
    close: Num = field(name="c")
    high: Num = field(name="h")
    low: Num = field(name="l")
    volume: Num = field(name="v")
    count: Id = field(name="n")
    closed: bool = field(name="x")
    quote_volume: Num = field(name="q")
    taker_buy_volume: Num = field(name="V")


class KlineMsg(Struct, gc=False):
    event_time: Millis = field(name="E")
    k: Kline


class DepthUpdateMsg(Struct, gc=False):
    """Diff depth. ``pu`` (previous final id) exists on USD-M only."""

    event_time: Millis = field(name="E")
    first_id: Id = field(name="U")
    final_id: Id = field(name="u")
    bids: list[Level] = field(name="b")
    asks: list[Level] = field(name="a")
    prev_final_id: Id = field(name="pu", default=-1)


class DepthSnapshotMsg(Struct, gc=False):
    """REST ``/api/v3/depth`` and ``/fapi/v1/depth`` (the latter adds ``E``/``T``)."""

    last_update_id: Id = field(name="lastUpdateId")
    bids: list[Level]
    asks: list[Level]
    event_time: Millis = field(name="E", default=-1)


class MarkPriceMsg(Struct, gc=False):
    """``<symbol>@markPrice[@1s]`` (futures). ``r`` is ``""`` for COIN-M deliveries (no
    funding) and ``T`` is 0 there; ``P`` is the estimated settle price."""

    event_time: Millis = field(name="E")
    mark: Num = field(name="p")
    index: Num = field(name="i")
    settle_estimate: Num = field(name="P", default=0.0)
    funding_rate: str = field(name="r", default="")
    next_funding_time: Millis = field(name="T", default=0)


class ForceOrder(Struct, gc=False):
    symbol: str = field(name="s")
    side: str = field(name="S")
    order_type: str = field(name="o")
    time_in_force: str = field(name="f")
    qty: Num = field(name="q")
    price: Num = field(name="p")
    avg_price: Num = field(name="ap")
    status: str = field(name="X")
    last_filled: Num = field(name="l")
    filled: Num = field(name="z")
    trade_time: Millis = field(name="T")


class ForceOrderMsg(Struct, gc=False):
    """``<symbol>@forceOrder``: the latest liquidation order of the symbol in the last 1000 ms."""

    event_time: Millis = field(name="E")
    o: ForceOrder


class OpenInterestMsg(Struct, gc=False):
    """REST ``GET openInterest`` (``/fapi/v1``: base units; ``/dapi/v1``: contracts)."""

    symbol: str
    open_interest: Num = field(name="openInterest")
    time: Millis


class SymbolFilter(Struct, gc=False):
    """An ``exchangeInfo`` filter; only PRICE_FILTER's ``tickSize`` and LOT_SIZE's ``stepSize``
    are read."""

    filter_type: str = field(name="filterType")
    tick_size: str | None = field(name="tickSize", default=None)
    step_size: str | None = field(name="stepSize", default=None)


class ListedSymbol(Struct, gc=False):
    """One ``exchangeInfo`` symbol: whether we can collect it as configured, and what it is
    (the ``instruments`` channel)."""

    symbol: str
    base: str = field(name="baseAsset")
    quote: str = field(name="quoteAsset")
    status: str = ""  # COIN-M says ``contractStatus`` instead
    contract_type: str | None = field(name="contractType", default=None)  # futures only
    contract_status: str | None = field(name="contractStatus", default=None)  # COIN-M
    delivery_date: int = field(name="deliveryDate", default=0)  # ms; perpetuals: year 2100
    contract_size: float | None = field(name="contractSize", default=None)  # COIN-M, in USD
    margin_asset: str | None = field(name="marginAsset", default=None)
    filters: list[SymbolFilter] = []

    @property
    def listing_status(self) -> str:
        return self.status or self.contract_status or ""


class ExchangeInfoMsg(Struct, gc=False):
    """``GET /api/v3/exchangeInfo``, ``/fapi/v1/exchangeInfo`` or ``/dapi/v1/exchangeInfo``."""

    symbols: list[ListedSymbol]


FRAME_DECODER: Final = msgspec.json.Decoder(Frame)
STREAM_EVENT_TYPE_DECODER: Final = msgspec.json.Decoder(StreamEventType)
SHUTDOWN_DECODER: Final = msgspec.json.Decoder(ShutdownMsg)
AGG_TRADE_DECODER: Final = msgspec.json.Decoder(AggTradeMsg, strict=False)
TRADE_DECODER: Final = msgspec.json.Decoder(TradeMsg, strict=False)
BOOK_TICKER_DECODER: Final = msgspec.json.Decoder(BookTickerMsg, strict=False)
TICKER_DECODER: Final = msgspec.json.Decoder(TickerMsg, strict=False)
KLINE_DECODER: Final = msgspec.json.Decoder(KlineMsg, strict=False)
DEPTH_DECODER: Final = msgspec.json.Decoder(DepthUpdateMsg, strict=False)
SNAPSHOT_DECODER: Final = msgspec.json.Decoder(DepthSnapshotMsg, strict=False)
EXCHANGE_INFO_DECODER: Final = msgspec.json.Decoder(ExchangeInfoMsg)
MARK_PRICE_DECODER: Final = msgspec.json.Decoder(MarkPriceMsg, strict=False)
FORCE_ORDER_DECODER: Final = msgspec.json.Decoder(ForceOrderMsg, strict=False)
OPEN_INTEREST_DECODER: Final = msgspec.json.Decoder(OpenInterestMsg, strict=False)
