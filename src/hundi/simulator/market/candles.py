"""Statistics derived from the trades: candles per interval and the rolling 24 h ticker."""

from __future__ import annotations

from dataclasses import dataclass

# candle intervals by name (Binance's set; a venue's stream parser decides which it serves)
INTERVAL_MS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}


@dataclass(slots=True)
class Kline:
    """The open candle of one interval, built from the trades (Binance semantics)."""

    interval: str
    open_ms: int
    close_ms: int
    first_id: int = -1
    last_id: int = -1
    open: int = 0
    high: int = 0
    low: int = 0
    close: int = 0
    volume: int = 0  # lots
    quote: int = 0  # ticks * lots
    trades: int = 0
    taker_buy_volume: int = 0
    taker_buy_quote: int = 0

    @classmethod
    def starting(cls, interval: str, now_ms: int, last_price: int) -> Kline:
        span = INTERVAL_MS[interval]
        start = now_ms - now_ms % span
        p = last_price
        return cls(interval, start, start + span - 1, open=p, high=p, low=p, close=p)


@dataclass(slots=True)
class Rolling24h:
    """Ticker statistics since the simulator started (a run is shorter than the 24 h window)."""

    open_ms: int
    open: int
    high: int
    low: int
    last: int
    last_qty: int = 0
    volume: int = 0
    quote: int = 0
    first_id: int = -1
    last_id: int = -1
    trades: int = 0
