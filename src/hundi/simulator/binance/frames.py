"""Binance JSON payloads, byte-exact in field order, names and types (spot and futures differ).

Shapes follow Binance's stream documentation and the real frames in ``../shared/recordings``
(``tests/simulator/test_frames.py`` compares them key by key). Built with f-strings: one
allocation per frame, no intermediate dicts.
"""

from __future__ import annotations

from hundi.simulator.binance.rules import FUTURES, BinanceVariant
from hundi.simulator.market import Kline, Rolling24h, SymbolSpec, TradeRow, fixed

SPOT_DECIMALS = 8  # spot prints every price and quantity with 8 decimals
TEXT_CACHE = 50_000  # formatted prices/quantities kept per symbol (bounded)


class FrameEncoder:
    """Formats one symbol's events for one Binance variant."""

    __slots__ = (
        "futures",
        "pad",
        "pd",
        "prices",
        "qd",
        "qtys",
        "quote_decimals",
        "quote_pad",
        "symbol",
    )

    def __init__(self, spec: SymbolSpec, variant: BinanceVariant) -> None:
        self.symbol = spec.symbol
        self.futures = variant in FUTURES
        self.pd = spec.price_decimals
        # COIN-M sizes are whole contracts: the market's lots are printed as contract counts
        self.qd = 0 if variant is BinanceVariant.COINM else spec.qty_decimals
        self.pad = 0 if self.futures else SPOT_DECIMALS
        # price * qty carries pd + qd decimals; spot shows 8 of them, futures all
        self.quote_decimals = spec.price_decimals + spec.qty_decimals
        self.quote_pad = 0 if self.futures else SPOT_DECIMALS
        # prices and sizes repeat a lot (the book lives near the touch): format each once
        self.prices: dict[int, str] = {}
        self.qtys: dict[int, str] = {}

    def price(self, ticks: int) -> str:
        text = self.prices.get(ticks)
        if text is None:
            text = fixed(ticks, self.pd, self.pad)
            if len(self.prices) < TEXT_CACHE:
                self.prices[ticks] = text
        return text

    def qty(self, lots: int) -> str:
        text = self.qtys.get(lots)
        if text is None:
            text = fixed(lots, self.qd, self.pad)
            if len(self.qtys) < TEXT_CACHE:
                self.qtys[lots] = text
        return text

    def quote(self, value: int) -> str:
        if not self.futures and self.quote_decimals > SPOT_DECIMALS:
            cut = self.quote_decimals - SPOT_DECIMALS
            return fixed(value // 10**cut, SPOT_DECIMALS)
        return fixed(value, self.quote_decimals, self.quote_pad)

    def levels(self, side: dict[int, int], descending: bool) -> str:
        p, q = self.price, self.qty
        return ",".join(f'["{p(k)}","{q(side[k])}"]' for k in sorted(side, reverse=descending))

    # -- streams --------------------------------------------------------------------------
    def agg_trade(
        self,
        event_ms: int,
        agg_id: int,
        price: int,
        qty: int,
        first: int,
        last: int,
        trade_ms: int,
        maker: bool,
    ) -> bytes:
        m = "true" if maker else "false"
        if self.futures:
            return (
                f'{{"e":"aggTrade","E":{event_ms},"a":{agg_id},"s":"{self.symbol}",'
                f'"p":"{self.price(price)}","q":"{self.qty(qty)}","f":{first},"l":{last},'
                f'"T":{trade_ms},"m":{m}}}'
            ).encode()
        return (
            f'{{"e":"aggTrade","E":{event_ms},"s":"{self.symbol}","a":{agg_id},'
            f'"p":"{self.price(price)}","q":"{self.qty(qty)}","f":{first},"l":{last},'
            f'"T":{trade_ms},"m":{m},"M":true}}'
        ).encode()

    def agg_trades_rest(self, rows: list[TradeRow]) -> bytes:
        """``GET /api/v3/aggTrades`` (with ``M``) or ``/fapi/v1/aggTrades`` (without)."""
        best = "" if self.futures else ',"M":true'
        p, q = self.price, self.qty
        return (
            "["
            + ",".join(
                f'{{"a":{a},"p":"{p(price)}","q":"{q(qty)}","f":{first},"l":{last},'
                f'"T":{trade_ms},"m":{"true" if maker else "false"}{best}}}'
                for a, price, qty, first, last, trade_ms, maker in rows
            )
            + "]"
        ).encode()

    def trade(
        self, event_ms: int, trade_id: int, price: int, qty: int, trade_ms: int, maker: bool
    ) -> bytes:
        m = "true" if maker else "false"
        if self.futures:
            return (
                f'{{"e":"trade","E":{event_ms},"T":{trade_ms},"s":"{self.symbol}",'
                f'"t":{trade_id},"p":"{self.price(price)}","q":"{self.qty(qty)}",'
                f'"X":"MARKET","m":{m}}}'
            ).encode()
        return (
            f'{{"e":"trade","E":{event_ms},"s":"{self.symbol}","t":{trade_id},'
            f'"p":"{self.price(price)}","q":"{self.qty(qty)}","T":{trade_ms},"m":{m},"M":true}}'
        ).encode()

    def book_ticker(
        self, event_ms: int, update_id: int, bid: int, bid_qty: int, ask: int, ask_qty: int
    ) -> bytes:
        body = (
            f'"u":{update_id},"s":"{self.symbol}","b":"{self.price(bid)}",'
            f'"B":"{self.qty(bid_qty)}","a":"{self.price(ask)}","A":"{self.qty(ask_qty)}"'
        )
        if self.futures:
            return f'{{"e":"bookTicker",{body},"T":{event_ms},"E":{event_ms}}}'.encode()
        return f"{{{body}}}".encode()

    def depth_update(
        self,
        event_ms: int,
        first: int,
        last: int,
        prev_last: int,
        bids: dict[int, int],
        asks: dict[int, int],
    ) -> bytes:
        b = self.levels(bids, descending=True)
        a = self.levels(asks, descending=False)
        if self.futures:
            return (
                f'{{"e":"depthUpdate","E":{event_ms},"T":{event_ms},"s":"{self.symbol}",'
                f'"U":{first},"u":{last},"pu":{prev_last},"b":[{b}],"a":[{a}]}}'
            ).encode()
        return (
            f'{{"e":"depthUpdate","E":{event_ms},"s":"{self.symbol}","U":{first},"u":{last},'
            f'"b":[{b}],"a":[{a}]}}'
        ).encode()

    def kline(self, event_ms: int, k: Kline, closed: bool) -> bytes:
        return (
            f'{{"e":"kline","E":{event_ms},"s":"{self.symbol}","k":{{"t":{k.open_ms},'
            f'"T":{k.close_ms},"s":"{self.symbol}","i":"{k.interval}","f":{k.first_id},'
            f'"L":{k.last_id},"o":"{self.price(k.open)}","c":"{self.price(k.close)}",'
            f'"h":"{self.price(k.high)}","l":"{self.price(k.low)}","v":"{self.qty(k.volume)}",'
            f'"n":{k.trades},"x":{"true" if closed else "false"},"q":"{self.quote(k.quote)}",'
            f'"V":"{self.qty(k.taker_buy_volume)}","Q":"{self.quote(k.taker_buy_quote)}",'
            f'"B":"0"}}}}'
        ).encode()

    def ticker(
        self, event_ms: int, s: Rolling24h, bid: int, bid_qty: int, ask: int, ask_qty: int
    ) -> bytes:
        change = s.last - s.open
        percent = f"{change * 100 / s.open:.3f}" if s.open else "0.000"
        weighted = s.quote // s.volume if s.volume else s.last  # in ticks: quote / lots
        count = s.trades
        first = s.first_id if count else -1
        last = s.last_id if count else -1
        head = (
            f'"e":"24hrTicker","E":{event_ms},"s":"{self.symbol}","p":"{self.price(change)}",'
            f'"P":"{percent}","w":"{self.price(weighted)}"'
        )
        tail = (
            f'"o":"{self.price(s.open)}","h":"{self.price(s.high)}","l":"{self.price(s.low)}",'
            f'"v":"{self.qty(s.volume)}","q":"{self.quote(s.quote)}","O":{s.open_ms},'
            f'"C":{event_ms},"F":{first},"L":{last},"n":{count}'
        )
        if self.futures:
            return (
                f'{{{head},"c":"{self.price(s.last)}","Q":"{self.qty(s.last_qty)}",{tail}}}'
            ).encode()
        return (
            f'{{{head},"x":"{self.price(s.open)}","c":"{self.price(s.last)}",'
            f'"Q":"{self.qty(s.last_qty)}","b":"{self.price(bid)}","B":"{self.qty(bid_qty)}",'
            f'"a":"{self.price(ask)}","A":"{self.qty(ask_qty)}",{tail}}}'
        ).encode()

    # -- REST -----------------------------------------------------------------------------
    def depth_snapshot(
        self,
        last_update_id: int,
        bids: dict[int, int],
        asks: dict[int, int],
        limit: int,
        now_ms: int,
    ) -> bytes:
        p, q = self.price, self.qty
        top_bids = sorted(bids, reverse=True)[:limit]
        top_asks = sorted(asks)[:limit]
        b = ",".join(f'["{p(k)}","{q(bids[k])}"]' for k in top_bids)
        a = ",".join(f'["{p(k)}","{q(asks[k])}"]' for k in top_asks)
        if self.futures:
            return (
                f'{{"lastUpdateId":{last_update_id},"E":{now_ms},"T":{now_ms},'
                f'"bids":[{b}],"asks":[{a}]}}'
            ).encode()
        return f'{{"lastUpdateId":{last_update_id},"bids":[{b}],"asks":[{a}]}}'.encode()


def server_shutdown(event_ms: int) -> bytes:
    return f'{{"e":"serverShutdown","E":{event_ms}}}'.encode()
