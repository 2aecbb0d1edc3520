"""Bybit v5 wire messages (msgspec structs: typed decoding on the hot path).

Every public frame is either a control answer (``op``: ``subscribe``/``unsubscribe``/``ping``
acks, ``pong``) or a push ``{"topic", "type", "ts", "data", "cts"?}``; ``data`` is decoded by
the decoder of its topic (:data:`TRADES`, :data:`BOOK`...). Unknown fields are ignored.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec


class Envelope(msgspec.Struct, frozen=True):
    topic: str = ""
    type: str = ""
    ts: int = 0
    cts: int = 0
    data: msgspec.Raw = msgspec.Raw(b"null")
    op: str = ""
    success: bool | None = None
    ret_msg: str = ""
    req_id: str = ""


class TradeMsg(msgspec.Struct, frozen=True):
    T: int
    s: str
    S: str
    v: str
    p: str
    i: str
    BT: bool = False
    seq: int = -1


class BookMsg(msgspec.Struct, frozen=True):
    s: str
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    u: int
    seq: int = -1


class KlineMsg(msgspec.Struct, frozen=True):
    start: int
    end: int
    interval: str
    open: str
    close: str
    high: str
    low: str
    volume: str
    turnover: str
    confirm: bool
    timestamp: int = 0


class LiquidationMsg(msgspec.Struct, frozen=True):
    T: int
    s: str
    S: str
    v: str
    p: str


class PriceFilter(msgspec.Struct, frozen=True):
    tickSize: str = ""


class LotSizeFilter(msgspec.Struct, frozen=True):
    qtyStep: str = ""  # derivatives
    basePrecision: str = ""  # spot


class InstrumentInfo(msgspec.Struct, frozen=True):
    symbol: str
    status: str = ""
    baseCoin: str = ""
    quoteCoin: str = ""
    settleCoin: str = ""
    contractType: str = ""
    deliveryTime: str = "0"
    priceFilter: PriceFilter = PriceFilter()
    lotSizeFilter: LotSizeFilter = LotSizeFilter()


class InstrumentsResult(msgspec.Struct, frozen=True):
    entries: list[InstrumentInfo] = msgspec.field(default_factory=list, name="list")
    nextPageCursor: str = ""


class InstrumentsResponse(msgspec.Struct, frozen=True):
    retCode: int
    retMsg: str = ""
    result: InstrumentsResult = InstrumentsResult()


class BookSnapshot(msgspec.Struct, frozen=True):
    s: str
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    u: int
    ts: int = 0
    seq: int = -1


class SnapshotResponse(msgspec.Struct, frozen=True):
    retCode: int
    retMsg: str = ""
    result: BookSnapshot | None = None


ENVELOPE: Final = msgspec.json.Decoder(Envelope)
TRADES: Final = msgspec.json.Decoder(list[TradeMsg])
BOOK: Final = msgspec.json.Decoder(BookMsg)
KLINES: Final = msgspec.json.Decoder(list[KlineMsg])
LIQUIDATIONS: Final = msgspec.json.Decoder(list[LiquidationMsg])
TICKER: Final = msgspec.json.Decoder(dict[str, Any])
INSTRUMENTS: Final = msgspec.json.Decoder(InstrumentsResponse)
SNAPSHOT: Final = msgspec.json.Decoder(SnapshotResponse)
