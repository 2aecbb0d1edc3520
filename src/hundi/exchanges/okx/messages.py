"""msgspec types of the OKX v5 public frames (decoded once per frame, typed, no dicts).

Every push is ``{"arg": {"channel", "instId" | "instType"}, "action"?, "data": [...]}``; acks
and errors are ``{"event": "subscribe" | "unsubscribe" | "error" | "notice", "code", "msg",
"arg"?}``; the heartbeat answer is the text ``pong``. ``data`` stays raw in the envelope and is
decoded by the channel's own decoder. OKX sends numbers as strings; unknown fields are ignored.
"""

from __future__ import annotations

import msgspec


class Arg(msgspec.Struct, frozen=True):
    channel: str = ""
    instId: str = ""  # OKX's field names
    instType: str = ""


class Envelope(msgspec.Struct, frozen=True):
    arg: Arg = msgspec.field(default_factory=Arg)
    action: str = ""
    data: msgspec.Raw = msgspec.Raw(b"")
    event: str = ""
    code: str = ""
    msg: str = ""


class TradeMsg(msgspec.Struct, frozen=True):
    instId: str
    tradeId: str
    px: str
    sz: str
    side: str
    ts: str
    count: str = "1"  # trades aggregated into this push (tradeId is the last of them)


# A book level: [price, size, "0" (deprecated), order count]
Level = list[str]


class BookMsg(msgspec.Struct, frozen=True):
    asks: list[Level]
    bids: list[Level]
    ts: str
    checksum: int = 0  # CRC32 of the top 25 levels; 0 = not sent (from June 2026)
    seqId: int = -1  # absent (-1) in pre-2022 traffic
    prevSeqId: int = -2  # -1 on a snapshot; -2: absent


class RestBooks(msgspec.Struct, frozen=True):
    code: str
    msg: str = ""
    data: list[BookMsg] = msgspec.field(default_factory=list)


class RestTrade(msgspec.Struct, frozen=True):
    """One row of ``GET /api/v5/market/history-trades``: a single fill (no ``count``)."""

    tradeId: str
    px: str
    sz: str
    side: str  # the taker's
    ts: str
    instId: str = ""


class RestTrades(msgspec.Struct, frozen=True):
    code: str
    msg: str = ""
    data: list[RestTrade] = msgspec.field(default_factory=list)


class TickerMsg(msgspec.Struct, frozen=True):
    instId: str
    last: str
    lastSz: str
    askPx: str
    askSz: str
    bidPx: str
    bidSz: str
    open24h: str
    high24h: str
    low24h: str
    volCcy24h: str
    vol24h: str
    ts: str
    instType: str = ""


# A candle: [ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]
CandleRow = list[str]


class MarkPriceMsg(msgspec.Struct, frozen=True):
    instId: str
    markPx: str
    ts: str


class IndexMsg(msgspec.Struct, frozen=True):
    instId: str
    idxPx: str
    ts: str


class FundingMsg(msgspec.Struct, frozen=True):
    instId: str
    fundingRate: str
    fundingTime: str
    nextFundingRate: str = ""  # "" when OKX publishes no forecast
    nextFundingTime: str = ""
    ts: str = ""


class OpenInterestMsg(msgspec.Struct, frozen=True):
    instId: str
    oi: str
    oiCcy: str = ""
    oiUsd: str = ""
    ts: str = ""


class LiquidationDetail(msgspec.Struct, frozen=True):
    side: str
    bkPx: str
    sz: str
    ts: str
    posSide: str = ""
    bkLoss: str = ""
    ccy: str = ""


class LiquidationMsg(msgspec.Struct, frozen=True):
    instId: str
    details: list[LiquidationDetail]
    instType: str = ""


class InstrumentMsg(msgspec.Struct, frozen=True):
    instId: str
    instType: str
    tickSz: str = ""
    lotSz: str = ""
    state: str = ""
    baseCcy: str = ""
    quoteCcy: str = ""
    settleCcy: str = ""
    ctVal: str = ""
    ctMult: str = ""
    ctValCcy: str = ""
    ctType: str = ""
    expTime: str = ""
    uly: str = ""


class RestInstruments(msgspec.Struct, frozen=True):
    code: str
    msg: str = ""
    data: list[InstrumentMsg] = msgspec.field(default_factory=list)


ENVELOPE = msgspec.json.Decoder(Envelope)
TRADES = msgspec.json.Decoder(list[TradeMsg])
BOOKS = msgspec.json.Decoder(list[BookMsg])
TICKERS = msgspec.json.Decoder(list[TickerMsg])
CANDLES = msgspec.json.Decoder(list[CandleRow])
MARK = msgspec.json.Decoder(list[MarkPriceMsg])
INDEX = msgspec.json.Decoder(list[IndexMsg])
FUNDING = msgspec.json.Decoder(list[FundingMsg])
OPEN_INTEREST = msgspec.json.Decoder(list[OpenInterestMsg])
LIQUIDATIONS = msgspec.json.Decoder(list[LiquidationMsg])
REST_BOOKS = msgspec.json.Decoder(RestBooks)
REST_INSTRUMENTS = msgspec.json.Decoder(RestInstruments)
REST_TRADES = msgspec.json.Decoder(RestTrades)
