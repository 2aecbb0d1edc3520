"""One symbol's synthetic market: an L2 book, makers that add and cancel, takers that eat it, and
the trade and update ids that result.

All randomness comes from one ``random.Random`` seeded from the simulator seed and the symbol, so
the same seed gives the same trades, ids and book changes (only wall-clock timestamps and how
changes are grouped into diff frames differ between runs). Nothing here knows a venue's wire
format: ``events`` and :class:`DepthChannel` are what a venue's encoder turns into frames.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from hundi.simulator.market.candles import Kline, Rolling24h

BookSnapshot = tuple[int, dict[int, int], dict[int, int]]  # (last update id, bids, asks)
# (first update id, last update id, last id of the previous diff, bids, asks)
DepthDiff = tuple[int, int, int, dict[int, int], dict[int, int]]

# Known symbols get a realistic price scale; others are drawn from the seed.
_KNOWN = {
    "BTCUSDT": (60_000.0, 2, 5),
    "ETHUSDT": (3_000.0, 2, 4),
    "BNBUSDT": (600.0, 2, 3),
    "SOLUSDT": (150.0, 2, 3),
}

BOOK_LEVELS = 60  # levels per side at start; the book stays near this size
MAX_LEVELS = 300  # a side is pruned from its far end beyond this
NEAR = 20  # new orders and cancels land within this many ticks of the best price


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    symbol: str
    price_decimals: int  # tick size = 10**-price_decimals
    qty_decimals: int  # lot size = 10**-qty_decimals
    start_price: int  # ticks

    @classmethod
    def derive(cls, symbol: str, rng: random.Random) -> SymbolSpec:
        if symbol in _KNOWN:
            price, pd, qd = _KNOWN[symbol]
        else:
            price = 10 ** rng.uniform(-1, 3)
            magnitude = math.floor(math.log10(price))
            pd = max(0, min(8, 4 - magnitude))  # >= 10_000 ticks: a walk never reaches zero
            qd = max(0, min(8, magnitude + 2))
        return cls(symbol, pd, qd, round(price * 10**pd))


class DepthChannel:
    """Book changes accumulated for one diff-depth stream speed (100 ms, 1000 ms...).

    Per interval: the final quantity of every level that changed, the first and last update id
    folded in and the last id of the previous interval (Binance's ``U``, ``u`` and ``pu``).
    """

    __slots__ = ("asks", "bids", "first_id", "interval_ms", "last_id", "prev_final_id")

    def __init__(self, interval_ms: int, last_update_id: int) -> None:
        self.interval_ms = interval_ms
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.first_id = 0  # 0 = nothing pending
        self.last_id = 0
        self.prev_final_id = last_update_id

    def take(self) -> DepthDiff | None:
        """``(U, u, pu, bids, asks)`` of the interval just ended, or ``None`` if nothing changed."""
        if not self.first_id:
            return None
        out = (self.first_id, self.last_id, self.prev_final_id, self.bids, self.asks)
        self.prev_final_id = self.last_id
        self.bids, self.asks, self.first_id = {}, {}, 0
        return out


class SymbolMarket:
    """One symbol's book and tape. ``step()`` performs one random market action.

    Output, in the order things happened, goes to ``events`` as tuples a venue's feed turns into
    frames: ``("A", agg_id, price, qty, first_trade_id, last_trade_id, buyer_is_maker, fills)``
    (``fills`` = [(trade_id, qty)]) and ``("B", update_id, bid, bid_qty, ask, ask_qty)`` when the
    top of book changed.
    """

    def __init__(self, spec: SymbolSpec, seed: int, now_ms: int) -> None:
        self.spec = spec
        self.rng = random.Random(f"{seed}:{spec.symbol}")
        rng = self.rng
        self.update_id = rng.randrange(1_000_000_000, 5_000_000_000)
        self.agg_id = rng.randrange(100_000_000, 900_000_000)
        self.trade_id = self.agg_id * 2 + rng.randrange(1_000_000)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        mid = spec.start_price
        self.best_bid = mid - 1
        self.best_ask = mid
        for i in range(BOOK_LEVELS):
            self.bids[mid - 1 - i] = self._order_size()
            self.asks[mid + i] = self._order_size()
        self.channels: list[DepthChannel] = []
        # ("A", ...) / ("B", ...) tuples, see the class docstring; tuples keep the hot path cheap
        self.events: list[tuple[Any, ...]] = []
        self.klines: dict[str, Kline] = {}
        self.stats = Rolling24h(now_ms, mid, mid, mid, mid)
        self.now_ms = now_ms
        self._top = self._top_of_book()

    # -- book primitives ------------------------------------------------------------------
    def _order_size(self) -> int:
        """A maker order size in lots: mostly small, sometimes large (long tail)."""
        lots: int = 10**self.spec.qty_decimals  # one whole unit of the base asset
        base = max(1, lots // 100)
        return base * (1 + int(self.rng.expovariate(1.0) * 20))

    def _set_level(self, is_bid: bool, price: int, qty: int) -> None:
        side = self.bids if is_bid else self.asks
        if qty > 0:
            side[price] = qty
        else:
            side.pop(price, None)
        self.update_id += 1
        uid = self.update_id
        for ch in self.channels:
            (ch.bids if is_bid else ch.asks)[price] = qty
            if not ch.first_id:
                ch.first_id = uid
            ch.last_id = uid

    def _top_of_book(self) -> tuple[int, int, int, int]:
        return (self.best_bid, self.bids[self.best_bid], self.best_ask, self.asks[self.best_ask])

    @property
    def top(self) -> tuple[int, int, int, int]:
        """``(bid, bid_qty, ask, ask_qty)`` as last reported."""
        return self._top

    def _refresh_best(self, is_bid: bool) -> None:
        if is_bid:
            self.best_bid = max(self.bids)
        else:
            self.best_ask = min(self.asks)

    def add_channel(self, interval_ms: int) -> DepthChannel:
        channel = DepthChannel(interval_ms, self.update_id)
        self.channels.append(channel)
        return channel

    def snapshot(self) -> BookSnapshot:
        return self.update_id, dict(self.bids), dict(self.asks)

    # -- one market action -----------------------------------------------------------------
    def step(self) -> None:
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            self._take(rng.random() < 0.5)
        elif r < 0.8:
            self._add(rng.random() < 0.5)
        else:
            self._cancel(rng.random() < 0.5)
        top = self._top_of_book()
        if top != self._top:
            self._top = top
            self.events.append(("B", self.update_id, *top))

    def _add(self, is_bid: bool) -> None:
        rng = self.rng
        spread = self.best_ask - self.best_bid
        if spread > 1 and rng.random() < 0.3:  # improve the price inside the spread
            inside = rng.randrange(1, spread)
            price = self.best_bid + inside if is_bid else self.best_ask - inside
        else:
            offset = int(rng.expovariate(0.25)) % NEAR
            price = max(1, self.best_bid - offset) if is_bid else self.best_ask + offset
        side = self.bids if is_bid else self.asks
        self._set_level(is_bid, price, side.get(price, 0) + self._order_size())
        if is_bid and price > self.best_bid:
            self.best_bid = price
        elif not is_bid and price < self.best_ask:
            self.best_ask = price
        if len(side) > MAX_LEVELS:
            far = min(side) if is_bid else max(side)
            self._set_level(is_bid, far, 0)

    def _cancel(self, is_bid: bool) -> None:
        side = self.bids if is_bid else self.asks
        if len(side) <= 5:
            return self._add(is_bid)
        offset = int(self.rng.expovariate(0.2)) % NEAR
        price = self.best_bid - offset if is_bid else self.best_ask + offset
        qty = side.get(price)
        if qty is None:
            return self._add(is_bid)
        keep = qty * self.rng.randrange(0, 4) // 4
        self._set_level(is_bid, price, keep)
        if keep == 0 and price == (self.best_bid if is_bid else self.best_ask):
            self._refresh_best(is_bid)
        return None

    def _take(self, taker_buys: bool) -> None:
        """A taker order sweeping up to three levels; one aggTrade per level it touches."""
        rng = self.rng
        book = self.asks if taker_buys else self.bids
        best = self.best_ask if taker_buys else self.best_bid
        wanted = max(1, int(book[best] * rng.uniform(0.1, 1.6)))
        for _ in range(3):
            price = self.best_ask if taker_buys else self.best_bid
            level = book[price]
            qty = min(wanted, level)
            fills = self._split(qty)
            first = self.trade_id + 1
            self.trade_id += len(fills)
            self.agg_id += 1
            self.events.append(
                ("A", self.agg_id, price, qty, first, self.trade_id, not taker_buys, fills)
            )
            self._record_trade(price, qty, first, self.trade_id, len(fills), taker_buys)
            if len(book) <= 5 and qty == level:  # never empty a side: refill behind
                behind = price + 5 if taker_buys else max(1, price - 5)
                self._set_level(not taker_buys, behind, self._order_size())
            self._set_level(not taker_buys, price, level - qty)
            if qty == level:
                self._refresh_best(not taker_buys)
            wanted -= qty
            if wanted <= 0:
                break

    def _split(self, qty: int) -> list[tuple[int, int]]:
        """Split an aggTrade into 1-3 maker fills (trade ids assigned consecutively)."""
        parts = 1 if qty < 3 else self.rng.randrange(1, 4)
        sizes = [qty // parts] * parts
        sizes[0] += qty - sum(sizes)
        tid = self.trade_id
        return [(tid + i + 1, size) for i, size in enumerate(sizes)]

    def _record_trade(
        self, price: int, qty: int, first: int, last: int, count: int, taker_buys: bool
    ) -> None:
        quote = price * qty
        s = self.stats
        if s.first_id < 0:
            s.first_id, s.open = first, price
        s.last_id, s.last, s.last_qty = last, price, qty
        s.high, s.low = max(s.high, price), min(s.low, price)
        s.volume += qty
        s.quote += quote
        s.trades += count
        for k in self.klines.values():
            if k.first_id < 0:
                k.first_id, k.open, k.high, k.low = first, price, price, price
            k.last_id, k.close = last, price
            k.high, k.low = max(k.high, price), min(k.low, price)
            k.volume += qty
            k.quote += quote
            k.trades += count
            if taker_buys:
                k.taker_buy_volume += qty
                k.taker_buy_quote += quote

    # -- klines ---------------------------------------------------------------------------
    def kline(self, interval: str) -> Kline:
        k = self.klines.get(interval)
        if k is None:
            k = self.klines[interval] = Kline.starting(interval, self.now_ms, self.stats.last)
        return k

    def roll_klines(self, now_ms: int) -> list[Kline]:
        """Close candles whose interval ended; returns the closed ones (sent with ``x: true``)."""
        closed = []
        for interval, k in self.klines.items():
            if now_ms > k.close_ms:
                closed.append(k)
                self.klines[interval] = Kline.starting(interval, now_ms, self.stats.last)
        return closed
