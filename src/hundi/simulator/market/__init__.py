"""The venue-neutral synthetic market: order flow, books, trade and update ids from one seed.

A venue's simulator puts its own wire encoding and rules on top (``hundi.simulator.binance``).
"""

from hundi.simulator.market.book import (
    BookSnapshot,
    DepthChannel,
    DepthDiff,
    SymbolMarket,
    SymbolSpec,
)
from hundi.simulator.market.candles import INTERVAL_MS, Kline, Rolling24h
from hundi.simulator.market.synthetic import WARMUP_STEPS, SyntheticMarket, TradeRow
from hundi.simulator.market.units import fixed

__all__ = [
    "INTERVAL_MS",
    "WARMUP_STEPS",
    "BookSnapshot",
    "DepthChannel",
    "DepthDiff",
    "Kline",
    "Rolling24h",
    "SymbolMarket",
    "SymbolSpec",
    "SyntheticMarket",
    "TradeRow",
    "fixed",
]
