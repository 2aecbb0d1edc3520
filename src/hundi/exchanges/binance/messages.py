"""Typed msgspec shapes of Binance stream payloads and REST depth snapshots.

Decoders run in lax mode (``strict=False``) so Binance's quoted decimals (``"0.35130000"``)
become floats during decoding: no Decimal, no intermediate dict per message. Field names are the
exchange's one-letter keys (case matters: ``E`` event time vs ``e`` event type).
"""

from __future__ import annotations

from typing import Final

import msgspec
from msgspec import Raw, Struct, field

Level = tuple[float, float]
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


class EventHead(Struct, gc=False):
    """Just the event type, to explain why a payload did not fit its stream's shape."""

    e: str | None = None


class AggTradeMsg(Struct, gc=False):
    event_time: int = field(name="E")
    agg_id: int = field(name="a")
    price: float = field(name="p")
    qty: float = field(name="q")
    first_id: int = field(name="f")
    last_id: int = field(name="l")
    trade_time: int = field(name="T")
    buyer_is_maker: bool = field(name="m")


class TradeMsg(Struct, gc=False):
    event_time: int = field(name="E")
    trade_id: int = field(name="t")
    price: float = field(name="p")
    qty: float = field(name="q")
    trade_time: int = field(name="T")
    buyer_is_maker: bool = field(name="m")


class BookTickerMsg(Struct, gc=False):
    """Spot sends no ``e``/``E``; USD-M adds both plus ``T``. -1 marks "not sent"."""

    update_id: int = field(name="u")
    bid: float = field(name="b")
    bid_qty: float = field(name="B")
    ask: float = field(name="a")
    ask_qty: float = field(name="A")
    event_time: int = field(name="E", default=-1)


class TickerMsg(Struct, gc=False):
    event_time: int = field(name="E")
    price_change: float = field(name="p")
    price_change_pct: float = field(name="P")
    vwap: float = field(name="w")
    last: float = field(name="c")
    last_qty: float = field(name="Q")
    open: float = field(name="o")
    high: float = field(name="h")
    low: float = field(name="l")
    volume: float = field(name="v")
    quote_volume: float = field(name="q")
    open_time: int = field(name="O")
    close_time: int = field(name="C")
    first_id: int = field(name="F")
    last_id: int = field(name="L")
    count: int = field(name="n")


class Kline(Struct, gc=False):
    open_time: int = field(name="t")
    close_time: int = field(name="T")
    interval: str = field(name="i")
    open: float = field(name="o")
    close: float = field(name="c")
    high: float = field(name="h")
    low: float = field(name="l")
    volume: float = field(name="v")
    count: int = field(name="n")
    closed: bool = field(name="x")
    quote_volume: float = field(name="q")
    taker_buy_volume: float = field(name="V")


class KlineMsg(Struct, gc=False):
    event_time: int = field(name="E")
    k: Kline


class DepthUpdateMsg(Struct, gc=False):
    """Diff depth. ``pu`` (previous final id) exists on USD-M only."""

    event_time: int = field(name="E")
    first_id: int = field(name="U")
    final_id: int = field(name="u")
    bids: list[Level] = field(name="b")
    asks: list[Level] = field(name="a")
    prev_final_id: int = field(name="pu", default=-1)


class DepthSnapshotMsg(Struct, gc=False):
    """REST ``/api/v3/depth`` and ``/fapi/v1/depth`` (the latter adds ``E``/``T``)."""

    last_update_id: int = field(name="lastUpdateId")
    bids: list[Level]
    asks: list[Level]
    event_time: int = field(name="E", default=-1)


FRAME_DECODER: Final = msgspec.json.Decoder(Frame)
EVENT_HEAD_DECODER: Final = msgspec.json.Decoder(EventHead)
AGG_TRADE_DECODER: Final = msgspec.json.Decoder(AggTradeMsg, strict=False)
TRADE_DECODER: Final = msgspec.json.Decoder(TradeMsg, strict=False)
BOOK_TICKER_DECODER: Final = msgspec.json.Decoder(BookTickerMsg, strict=False)
TICKER_DECODER: Final = msgspec.json.Decoder(TickerMsg, strict=False)
KLINE_DECODER: Final = msgspec.json.Decoder(KlineMsg, strict=False)
DEPTH_DECODER: Final = msgspec.json.Decoder(DepthUpdateMsg, strict=False)
SNAPSHOT_DECODER: Final = msgspec.json.Decoder(DepthSnapshotMsg, strict=False)
