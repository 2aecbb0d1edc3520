"""Typed decoding of Bitstamp's WebSocket v2 frames and REST answers (msgspec).

Every WebSocket frame is an envelope ``{"event": ..., "channel": ..., "data": ...}``; the
envelope is decoded with ``data`` left raw, and the event and channel pick the payload type.
Payload decoders are non-strict so the decimal strings of the wire (``"3800.71"``, the
``microtimestamp`` ``"1641343691406478"``) become floats and ints while decoding, without a
Python-level conversion per level; implausible values (``nan``, ``0``) are judged afterwards by
:mod:`hundi.exchanges.validity`.
"""

from __future__ import annotations

import msgspec
from msgspec import Raw

Level = tuple[float, float]


class Envelope(msgspec.Struct, frozen=True):
    event: str
    channel: str = ""
    data: Raw = Raw(b"null")


class TradeMsg(msgspec.Struct, frozen=True):
    """``live_trades_<pair>``: one trade; ``type`` is the taker's side (0 buy, 1 sell)."""

    id: int
    price: float = msgspec.field(name="price_str")
    amount: float = msgspec.field(name="amount_str")
    type: int
    microtimestamp: int


class BookMsg(msgspec.Struct, frozen=True):
    """``diff_order_book_<pair>`` (changed levels, amount 0 deletes), ``order_book_<pair>``
    (the top 100 levels) and the REST ``order_book`` snapshot share this shape."""

    microtimestamp: int
    bids: list[Level]
    asks: list[Level]


class ErrorMsg(msgspec.Struct, frozen=True):
    """``bts:error``: a refused subscription or message."""

    code: int | None = None
    message: str = ""


class PairInfo(msgspec.Struct, frozen=True):
    """One row of REST ``trading-pairs-info``."""

    url_symbol: str
    name: str
    trading: str = "Enabled"


ENVELOPE_DECODER = msgspec.json.Decoder(Envelope)
TRADE_DECODER = msgspec.json.Decoder(TradeMsg, strict=False)
BOOK_DECODER = msgspec.json.Decoder(BookMsg, strict=False)
ERROR_DECODER = msgspec.json.Decoder(ErrorMsg, strict=False)
PAIRS_DECODER = msgspec.json.Decoder(list[PairInfo])


class TransactionMsg(msgspec.Struct, frozen=True):
    """One trade of REST ``/api/v2/transactions/<pair>/``: ``date`` in whole seconds, ``tid`` the
    same id as the WebSocket's, ``type`` the taker's side (0 buy, 1 sell)."""

    date: int
    tid: int
    price: float
    amount: float
    type: int


TRANSACTIONS_DECODER = msgspec.json.Decoder(list[TransactionMsg], strict=False)
