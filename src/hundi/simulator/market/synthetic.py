"""The market every synthetic venue simulator serves: all symbols, one seeded order of actions.

A venue simulator drives it (``step``, ``take_depth``) and turns what comes out into its own
wire format; everything here is venue-neutral: the books and tapes (:mod:`.book`), which symbol
acts next (one ``random.Random`` from the seed), the book as the diff stream has published it,
the book from before the warm-up (a provably stale snapshot) and the recent trades a venue's
REST history answers from.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Iterator

from hundi.simulator.market.book import BookSnapshot, DepthDiff, SymbolMarket, SymbolSpec

WARMUP_STEPS = 500  # market actions before serving, so a pre-warm-up book is provably stale

# one aggregated trade as published: (agg id, price ticks, qty lots, first trade id,
# last trade id, trade ms, buyer is maker)
TradeRow = tuple[int, int, int, int, int, int, bool]


class SyntheticMarket:
    """``symbols`` in a seeded market; the same seed gives the same actions, ids and books."""

    def __init__(self, symbols: Iterable[str], seed: int, now_ms: int, trade_history: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)  # which symbol acts next
        self.symbols: dict[str, SymbolMarket] = {}
        self.pre_warmup: dict[str, BookSnapshot] = {}
        self.published: dict[str, BookSnapshot] = {}
        self.trades: dict[str, deque[TradeRow]] = {}  # the newest trades, as published
        self.depth_speeds: list[int] = []
        for symbol in symbols:
            spec = SymbolSpec.derive(symbol, random.Random(f"{seed}:{symbol}:spec"))
            market = SymbolMarket(spec, seed, now_ms)
            self.pre_warmup[symbol] = market.snapshot()
            for _ in range(WARMUP_STEPS):
                market.step()
            market.events.clear()
            s = market.stats  # the ticker starts with the serving, not with the warm-up
            s.open = s.high = s.low = s.last = market.best_ask
            s.volume = s.quote = s.trades = s.last_qty = 0
            s.first_id = s.last_id = -1
            self.symbols[symbol] = market
            self.published[symbol] = market.snapshot()
            self.trades[symbol] = deque(maxlen=trade_history)
        self.order = list(self.symbols)

    def step(self) -> SymbolMarket:
        """One action of a randomly chosen symbol; its output is in that market's ``events``."""
        order = self.order
        market = self.symbols[order[self.rng.randrange(len(order))]]
        market.step()
        return market

    def add_depth_speed(self, interval_ms: int) -> bool:
        """Start folding book changes for diffs every ``interval_ms``; ``False`` if already."""
        if interval_ms in self.depth_speeds:
            return False
        self.depth_speeds.append(interval_ms)
        for market in self.symbols.values():
            market.add_channel(interval_ms)
        return True

    def take_depth(self, interval_ms: int) -> Iterator[tuple[str, DepthDiff]]:
        """Each symbol's diff for the interval just ended (symbols without changes are left out)."""
        for symbol, market in self.symbols.items():
            channel = next(c for c in market.channels if c.interval_ms == interval_ms)
            taken = channel.take()
            if taken is not None:
                yield symbol, taken

    def publish_depth(self, symbol: str, diff: DepthDiff) -> None:
        """Apply a diff to the published book (what REST snapshots answer from)."""
        _, last, _, bids, asks = diff
        _, pub_bids, pub_asks = self.published[symbol]
        for price, qty in bids.items():
            if qty:
                pub_bids[price] = qty
            else:
                pub_bids.pop(price, None)
        for price, qty in asks.items():
            if qty:
                pub_asks[price] = qty
            else:
                pub_asks.pop(price, None)
        self.published[symbol] = (last, pub_bids, pub_asks)
