"""Typed shapes of Bitfinex v2 WebSocket messages (arrays decoded positionally).

Channel messages are JSON arrays ``[CHAN_ID, TYPE, PAYLOAD]`` (``[CHAN_ID, "hb"]`` for
heartbeats); control messages are objects with an ``event``. Orders and trades are arrays in the
documented field order; msgspec ``array_like`` structs decode them without a dict per message,
and trailing fields Bitfinex may add later are ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta, Raw, Struct, field

Num = Annotated[float, Meta(ge=-1e300, le=1e300)]
Millis = Annotated[int, Meta(ge=0, le=(2**63 - 1) // 1_000_000)]
EMPTY: Final = Raw(b"")


class ControlMsg(Struct, gc=False):
    """``info``, ``auth``, ``error``, ``conf``... events."""

    event: str
    status: str = ""
    code: int | None = None
    msg: str = ""
    version: int | None = None
    chan_id: int | None = field(name="chanId", default=None)


class ChannelMsg(Struct, array_like=True, gc=False):
    chan_id: int
    kind: str = ""
    payload: Raw = EMPTY


class OrderArray(Struct, array_like=True, gc=False):
    """A v2 order: ``[ID, GID, CID, SYMBOL, MTS_CREATE, MTS_UPDATE, AMOUNT, AMOUNT_ORIG,
    ORDER_TYPE, TYPE_PREV, MTS_TIF, _, FLAGS, ORDER_STATUS, _, _, PRICE, PRICE_AVG,
    PRICE_TRAILING, PRICE_AUX_LIMIT, _, _, _, NOTIFY, HIDDEN, PLACED_ID, _, _, ROUTING, _, _,
    META]``. ``AMOUNT`` is what remains (negative: sell), ``AMOUNT_ORIG`` the original."""

    id: int | None
    gid: int | None
    cid: int | None
    symbol: str
    mts_create: Millis | None
    mts_update: Millis | None
    amount: Num
    amount_orig: Num
    order_type: str
    type_prev: str | None = None
    mts_tif: int | None = None
    _placeholder1: Any = None
    flags: int | None = None
    status: str | None = None
    _placeholder2: Any = None
    _placeholder3: Any = None
    price: Num | None = None
    price_avg: Num | None = None
    price_trailing: Num | None = None
    price_aux_limit: Num | None = None


class TradeArray(Struct, array_like=True, gc=False):
    """``te``/``tu``: ``[ID, SYMBOL, MTS_CREATE, ORDER_ID, EXEC_AMOUNT, EXEC_PRICE, ORDER_TYPE,
    ORDER_PRICE, MAKER, FEE, FEE_CURRENCY, CID]`` (fee fields null on ``te``)."""

    id: int
    symbol: str
    mts_create: Millis
    order_id: int
    exec_amount: Num
    exec_price: Num
    order_type: str | None = None
    order_price: Num | None = None
    maker: int | None = None
    fee: Num | None = None
    fee_currency: str | None = None
    cid: int | None = None


class Notification(Struct, array_like=True, gc=False):
    """``n``: ``[MTS, TYPE, MESSAGE_ID, _, NOTIFY_INFO, CODE, STATUS, TEXT]``."""

    mts: Millis
    type: str
    message_id: int | None = None
    _placeholder: Any = None
    info: Raw = EMPTY
    code: int | None = None
    status: str = ""
    text: str = ""


CONTROL_DECODER: Final = msgspec.json.Decoder(ControlMsg)
CHANNEL_DECODER: Final = msgspec.json.Decoder(ChannelMsg)
ORDER_DECODER: Final = msgspec.json.Decoder(OrderArray)
ORDERS_DECODER: Final = msgspec.json.Decoder(list[OrderArray])
TRADE_DECODER: Final = msgspec.json.Decoder(TradeArray)
NOTIFICATION_DECODER: Final = msgspec.json.Decoder(Notification)


# -- public market data ---------------------------------------------------------------------


class PublicEvent(Struct, gc=False):
    """Control events of a public connection: ``info``, ``conf``, ``subscribed``, ``error``..."""

    event: str
    code: int | None = None
    msg: str = ""
    version: int | None = None
    flags: int | None = None
    status: str = ""
    channel: str = ""
    chan_id: int | None = field(name="chanId", default=None)
    symbol: str = ""
    key: str = ""
    prec: str = ""


class PublicFrame(Struct, array_like=True, gc=False):
    """``[CHAN_ID, BODY, ...]``: BODY is a kind string (``hb``, ``te``, ``tu``, ``cs``) with its
    payload and sequence after it, or the payload itself followed by the sequence."""

    chan_id: int
    body: Raw
    second: Raw = EMPTY
    third: Raw = EMPTY


class BookEntry(Struct, array_like=True, gc=False):
    """A P0-P4 book level: ``[PRICE, COUNT, AMOUNT]`` (count 0: delete; amount < 0: ask)."""

    price: Num
    count: int
    amount: Num


class PublicTrade(Struct, array_like=True, gc=False):
    """``[ID, MTS, AMOUNT, PRICE]`` (amount < 0: the taker sold)."""

    id: int
    mts: Millis
    amount: Num
    price: Num


class TickerArray(Struct, array_like=True, gc=False):
    """``[BID, BID_SIZE, ASK, ASK_SIZE, DAILY_CHANGE, DAILY_CHANGE_RELATIVE, LAST_PRICE,
    VOLUME, HIGH, LOW]``."""

    bid: Num
    bid_size: Num
    ask: Num
    ask_size: Num
    daily_change: Num
    daily_change_relative: Num
    last_price: Num
    volume: Num
    high: Num
    low: Num


class CandleArray(Struct, array_like=True, gc=False):
    """``[MTS, OPEN, CLOSE, HIGH, LOW, VOLUME]``."""

    mts: Millis
    open: Num
    close: Num
    high: Num
    low: Num
    volume: Num


PUBLIC_EVENT_DECODER: Final = msgspec.json.Decoder(PublicEvent)
PUBLIC_FRAME_DECODER: Final = msgspec.json.Decoder(PublicFrame)
KIND_DECODER: Final = msgspec.json.Decoder(str)
INT_DECODER: Final = msgspec.json.Decoder(int)
BOOK_ENTRY_DECODER: Final = msgspec.json.Decoder(BookEntry)
BOOK_SNAPSHOT_DECODER: Final = msgspec.json.Decoder(list[BookEntry])
PUBLIC_TRADE_DECODER: Final = msgspec.json.Decoder(PublicTrade)
PUBLIC_TRADES_DECODER: Final = msgspec.json.Decoder(list[PublicTrade])
TICKER_DECODER: Final = msgspec.json.Decoder(TickerArray)
CANDLE_DECODER: Final = msgspec.json.Decoder(CandleArray)
CANDLES_DECODER: Final = msgspec.json.Decoder(list[CandleArray])
