"""The Coinbase Exchange ws-feed and REST messages the protocol reads, as msgspec Structs.

One tagged union on ``type`` decodes every feed frame in one pass (no dicts on the hot path).
Numbers arrive as decimal strings; the decoders are lax (``strict=False``) so msgspec reads them
straight into floats. Unknown fields are ignored, so a field Coinbase adds rejects nothing.
"""

from __future__ import annotations

from typing import Final

import msgspec


class Snapshot(msgspec.Struct, tag="snapshot", frozen=True):
    """``level2``/``level2_batch``: the product's whole L2 book, once per subscribe."""

    product_id: str
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    time: str = ""


class L2Update(msgspec.Struct, tag="l2update", frozen=True):
    """Level changes ``[side, price, size]``; size 0 removes the level."""

    product_id: str
    changes: list[tuple[str, float, float]]
    time: str


class Match(msgspec.Struct, tag="match", frozen=True):
    """One trade. ``side`` is the MAKER order's side (Coinbase docs): the taker is opposite."""

    product_id: str
    trade_id: int
    side: str
    size: float
    price: float
    time: str
    sequence: int = -1


class LastMatch(Match, tag="last_match", frozen=True):
    """The product's latest trade, sent once right after subscribing to ``matches``."""


class TickerMsg(msgspec.Struct, tag="ticker", frozen=True):
    """Sent on every match: last trade, 24 h statistics and (since 2022) the BBO with sizes."""

    product_id: str
    price: float
    sequence: int = -1
    open_24h: float = 0.0
    volume_24h: float = 0.0
    low_24h: float = 0.0
    high_24h: float = 0.0
    best_bid: float = 0.0
    best_ask: float = 0.0
    best_bid_size: float | None = None
    best_ask_size: float | None = None
    side: str = ""
    time: str = ""
    trade_id: int = -1
    last_size: float = 0.0


class Heartbeat(msgspec.Struct, tag="heartbeat", frozen=True):
    """Once a second per product: the feed's ``sequence`` and the product's ``last_trade_id``."""

    product_id: str
    sequence: int
    last_trade_id: int
    time: str = ""


class Subscriptions(msgspec.Struct, tag="subscriptions", frozen=True):
    """The acknowledgement of a (un)subscribe: what the connection now receives."""


class ErrorMsg(msgspec.Struct, tag="error", frozen=True):
    message: str = ""
    reason: str = ""


Message = Snapshot | L2Update | Match | LastMatch | TickerMsg | Heartbeat | Subscriptions | ErrorMsg
FEED_DECODER: Final = msgspec.json.Decoder(Message, strict=False)
TYPES: Final = frozenset(
    ("snapshot", "l2update", "match", "last_match", "ticker", "heartbeat", "subscriptions", "error")
)


class TypeOnly(msgspec.Struct, frozen=True):
    """What a frame the union refused says it is (only read on the rejection path)."""

    type: str = ""


TYPE_DECODER: Final = msgspec.json.Decoder(TypeOnly)


class Product(msgspec.Struct, frozen=True):
    """One entry of REST ``GET /products``."""

    id: str
    base_currency: str = ""
    quote_currency: str = ""
    status: str = "online"
    trading_disabled: bool = False


PRODUCTS_DECODER: Final = msgspec.json.Decoder(list[Product])


class RestTrade(msgspec.Struct, frozen=True):
    """One entry of REST ``GET /products/{id}/trades`` (newest first); ``side`` = maker side."""

    trade_id: int
    price: float
    size: float
    side: str
    time: str


REST_TRADES_DECODER: Final = msgspec.json.Decoder(list[RestTrade], strict=False)
