"""Per-stream handlers: one typed decode, one record per payload (or book rows).

A route is built once per subscribed stream, holding the decoder and the symbol names it needs,
so the hot path is: decode envelope → dict lookup by stream name → typed decode → plausibility
checks (:mod:`hundi.exchanges.validity`: an impossible value rejects the frame as
``invalid_value``) → record.
"""

from __future__ import annotations

from typing import ClassVar

from msgspec import Raw

from hundi.exchanges.base import RecordSink, RejectedFrame
from hundi.exchanges.binance.backfill import SymbolBackfill
from hundi.exchanges.binance.book import MS, OrderBook
from hundi.exchanges.binance.messages import (
    AGG_TRADE_DECODER,
    BOOK_TICKER_DECODER,
    DEPTH_DECODER,
    KLINE_DECODER,
    TICKER_DECODER,
    TRADE_DECODER,
    AggTradeMsg,
    BookTickerMsg,
    DepthUpdateMsg,
    KlineMsg,
    TickerMsg,
    TradeMsg,
)
from hundi.exchanges.sequence import IdSequence, IdVerdict
from hundi.exchanges.validity import (
    check_bbo,
    check_candle,
    check_levels,
    check_ticker,
    check_time,
    check_trade,
)
from hundi.records import BUY, SELL, Bbo, Candle, Channel, Event, EventKind, Ticker, Trade


class Route:
    """Base: the names every record of one stream carries."""

    __slots__ = ("exchange", "native", "symbol")

    EVENT_TYPE: ClassVar[str | None] = None  # the ``e`` this stream's payloads carry

    def __init__(self, exchange: str, symbol: str, native: str) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.native = native

    def handle(self, raw: Raw, recv_ns: int, out: RecordSink) -> None:
        raise NotImplementedError


class TradeIdRoute(Route):
    """Trade streams: ids are contiguous per symbol, so holes and duplicates are detectable."""

    __slots__ = ("backfill", "ids")

    def __init__(self, exchange: str, symbol: str, native: str) -> None:
        super().__init__(exchange, symbol, native)
        self.ids = IdSequence()
        self.backfill: SymbolBackfill | None = None  # set when missed ids are fetched again

    def _admit(self, trade_id: int, ts: int, recv_ns: int, out: RecordSink) -> None:
        """Raise on a duplicate or an expired id; record a gap event when ids were skipped."""
        ids = self.ids
        if trade_id == ids.last + 1 and ids.last >= 0:  # the common case, kept cheap
            ids.last = trade_id
            return
        expected = ids.expected()
        verdict = ids.check(trade_id, trade_id)
        if verdict is IdVerdict.NEXT or verdict is IdVerdict.LATE:
            return
        if verdict is IdVerdict.DUPLICATE:
            raise RejectedFrame("duplicate_trade", f"{self.native} trade id {trade_id}")
        if verdict is IdVerdict.EXPIRED:
            raise RejectedFrame(
                "expired_trade",
                f"{self.native} trade id {trade_id}: ids up to {ids.first - 1} are settled "
                f"(seen, or in a hole declared final after {ids.max_holes} newer holes)",
            )
        out.events.append(Event(
            exchange=self.exchange, symbol=self.symbol, native_symbol=self.native, ts=ts,
            recv_ts=recv_ns, kind=EventKind.GAP.value, channel=Channel.TRADES.value,
            expected=expected, received=trade_id,
            detail=f"trade ids {expected}..{trade_id - 1} never received",
        ))  # fmt: skip
        if self.backfill is not None:
            self.backfill.want(expected, trade_id, recv_ns, out)


class AggTradeRoute(TradeIdRoute):
    """``aggTrade``: ``m`` (buyer is maker) means the taker sold. ``ts`` is the trade time."""

    __slots__ = ()
    EVENT_TYPE = "aggTrade"
    decode = AGG_TRADE_DECODER.decode

    def handle(self, raw: Raw, recv_ns: int, out: RecordSink) -> None:
        m: AggTradeMsg = self.decode(raw)
        ts = m.trade_time * MS
        check_trade(m.price, m.qty, ts, recv_ns)  # before ``_admit``: a refused id stays a hole
        self._admit(m.agg_id, ts, recv_ns, out)
        out.trades.append(Trade(
            exchange=self.exchange, symbol=self.symbol, native_symbol=self.native,
            ts=ts, recv_ts=recv_ns, trade_id=m.agg_id, price=m.price,
            size=m.qty, side=SELL if m.buyer_is_maker else BUY, first_trade_id=m.first_id,
            last_trade_id=m.last_id,
        ))  # fmt: skip


class TradeRoute(TradeIdRoute):
    """``trade`` (option ``trade_stream=trade``): one exchange trade per record."""

    __slots__ = ()
    EVENT_TYPE = "trade"
    decode = TRADE_DECODER.decode

    def handle(self, raw: Raw, recv_ns: int, out: RecordSink) -> None:
        m: TradeMsg = self.decode(raw)
        ts = m.trade_time * MS
        check_trade(m.price, m.qty, ts, recv_ns)
        self._admit(m.trade_id, ts, recv_ns, out)
        out.trades.append(Trade(
            exchange=self.exchange, symbol=self.symbol, native_symbol=self.native,
            ts=ts, recv_ts=recv_ns, trade_id=m.trade_id, price=m.price,
            size=m.qty, side=SELL if m.buyer_is_maker else BUY, first_trade_id=m.trade_id,
            last_trade_id=m.trade_id,
        ))  # fmt: skip


class BookTickerRoute(Route):
    """``bookTicker``. Spot sends no event time: there ``ts`` is the receive time."""

    __slots__ = ()
    EVENT_TYPE = "bookTicker"
    decode = BOOK_TICKER_DECODER.decode

    def handle(self, raw: Raw, recv_ns: int, out: RecordSink) -> None:
        m: BookTickerMsg = self.decode(raw)
        ts = m.event_time * MS if m.event_time >= 0 else recv_ns
        check_bbo(m.bid, m.bid_qty, m.ask, m.ask_qty, ts, recv_ns)
        out.bbo.append(Bbo(
            exchange=self.exchange, symbol=self.symbol, native_symbol=self.native,
            ts=ts, recv_ts=recv_ns,
            update_id=m.update_id, bid_price=m.bid, bid_size=m.bid_qty, ask_price=m.ask,
            ask_size=m.ask_qty,
        ))  # fmt: skip


class TickerRoute(Route):
    __slots__ = ()
    EVENT_TYPE = "24hrTicker"
    decode = TICKER_DECODER.decode

    def handle(self, raw: Raw, recv_ns: int, out: RecordSink) -> None:
        m: TickerMsg = self.decode(raw)
        ts = m.event_time * MS
        check_ticker(
            m.last, m.last_qty, m.open, m.high, m.low, m.vwap, m.volume, m.quote_volume,
            m.price_change, m.price_change_pct, ts, recv_ns,
        )  # fmt: skip
        out.ticker.append(Ticker(
            exchange=self.exchange, symbol=self.symbol, native_symbol=self.native,
            ts=ts, recv_ts=recv_ns, last_price=m.last, last_size=m.last_qty,
            open_price=m.open, high_price=m.high, low_price=m.low, volume=m.volume,
            quote_volume=m.quote_volume, vwap=m.vwap, price_change=m.price_change,
            price_change_pct=m.price_change_pct, trade_count=m.count,
            open_time=m.open_time * MS, close_time=m.close_time * MS, first_trade_id=m.first_id,
            last_trade_id=m.last_id,
        ))  # fmt: skip


class KlineRoute(Route):
    __slots__ = ()
    EVENT_TYPE = "kline"
    decode = KLINE_DECODER.decode

    def handle(self, raw: Raw, recv_ns: int, out: RecordSink) -> None:
        m: KlineMsg = self.decode(raw)
        k = m.k
        ts = m.event_time * MS
        check_candle(
            k.open, k.high, k.low, k.close, k.volume, k.quote_volume, k.taker_buy_volume, ts,
            recv_ns,
        )  # fmt: skip
        out.candles.append(Candle(
            exchange=self.exchange, symbol=self.symbol, native_symbol=self.native,
            ts=ts, recv_ts=recv_ns, interval=k.interval,
            open_time=k.open_time * MS, close_time=k.close_time * MS, open=k.open, high=k.high,
            low=k.low, close=k.close, volume=k.volume, quote_volume=k.quote_volume,
            taker_buy_volume=k.taker_buy_volume, trade_count=k.count, closed=k.closed,
        ))  # fmt: skip


class DepthRoute(Route):
    """``depth@100ms`` diffs go to the symbol's book state machine."""

    __slots__ = ("book",)
    EVENT_TYPE = "depthUpdate"
    decode = DEPTH_DECODER.decode

    def __init__(self, exchange: str, symbol: str, native: str, book: OrderBook) -> None:
        super().__init__(exchange, symbol, native)
        self.book = book

    def handle(self, raw: Raw, recv_ns: int, out: RecordSink) -> None:
        m: DepthUpdateMsg = self.decode(raw)
        check_levels("bid", m.bids)
        check_levels("ask", m.asks)
        check_time("event time", m.event_time * MS, recv_ns)
        self.book.on_diff(m, recv_ns, out)  # a refused diff is a sequence break for the book


ROUTE_TYPES: dict[str, type[Route]] = {
    "aggTrade": AggTradeRoute,
    "trade": TradeRoute,
    "bookTicker": BookTickerRoute,
    "ticker": TickerRoute,
    "kline": KlineRoute,
}
