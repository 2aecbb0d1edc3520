"""Binance stream names: which exist per variant and which endpoint may carry them."""

from __future__ import annotations

from dataclasses import dataclass

from hundi.simulator.binance.rules import FUTURES, BinanceVariant
from hundi.simulator.market import INTERVAL_MS

DEPTH_SPEEDS_MS = {
    BinanceVariant.SPOT: (1000, 100), BinanceVariant.USDM: (250, 500, 100),
    BinanceVariant.COINM: (250, 500, 100),
}  # fmt: skip
DEFAULT_DEPTH_MS = {BinanceVariant.SPOT: 1000, BinanceVariant.USDM: 250, BinanceVariant.COINM: 250}
# futures only: mark price (3 s, or 1 s with ``@1s``) and liquidation snapshots
DERIVATIVE_KINDS = {
    "markPrice": "markPrice",
    "markPrice@1s": "markPrice",
    "forceOrder": "forceOrder",
}

# USD-M's 2026 endpoint split: /public carries the book streams, /market the trade-driven ones;
# the legacy paths carry everything.
PUBLIC_KINDS = frozenset({"depth", "bookTicker"})
MARKET_KINDS = frozenset({"aggTrade", "trade", "kline", "ticker", "markPrice", "forceOrder"})


@dataclass(frozen=True, slots=True)
class StreamName:
    name: str  # canonical: lowercase symbol, as Binance echoes it in combined envelopes
    symbol: str  # upper case
    kind: str  # aggTrade | trade | bookTicker | ticker | kline | depth | markPrice | forceOrder
    interval: str = ""  # kline interval
    depth_ms: int = 0  # diff-depth speed


def parse_stream(text: str, variant: BinanceVariant) -> StreamName | None:
    """A stream this variant publishes, or ``None`` (Binance accepts those and sends nothing)."""
    symbol, sep, rest = text.partition("@")
    if not sep or not symbol:
        return None
    name = f"{symbol.lower()}@{rest}"
    upper = symbol.upper()
    if rest in ("aggTrade", "bookTicker", "ticker"):
        return StreamName(name, upper, rest)
    if rest == "trade" and variant is BinanceVariant.SPOT:
        return StreamName(name, upper, rest)
    if rest in DERIVATIVE_KINDS and variant in FUTURES:
        return StreamName(name, upper, DERIVATIVE_KINDS[rest], interval=rest)
    if rest.startswith("kline_") and rest[6:] in INTERVAL_MS:
        if rest[6:] == "1s" and variant is not BinanceVariant.SPOT:
            return None
        return StreamName(name, upper, "kline", interval=rest[6:])
    if rest == "depth":
        return StreamName(name, upper, "depth", depth_ms=DEFAULT_DEPTH_MS[variant])
    if rest.startswith("depth@") and rest.endswith("ms"):
        try:
            speed = int(rest[6:-2])
        except ValueError:
            return None
        if speed in DEPTH_SPEEDS_MS[variant]:
            return StreamName(name, upper, "depth", depth_ms=speed)
    return None


def allowed_on(path_prefix: str, stream: StreamName) -> bool:
    """Whether a USD-M split endpoint (``/public``, ``/market``) carries this stream."""
    if path_prefix == "/public":
        return stream.kind in PUBLIC_KINDS
    if path_prefix == "/market":
        return stream.kind in MARKET_KINDS
    return True
