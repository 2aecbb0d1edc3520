"""OKX instrument ids ↔ hundi's normalized symbols.

OKX spells spot ``BTC-USDT``, perpetual swaps ``BTC-USDT-SWAP`` (linear) and ``BTC-USD-SWAP``
(inverse), dated futures ``BTC-USD-261225`` (YYMMDD). hundi writes ``BTC-USDT``,
``BTC-USDT-PERP``, ``BTC-USD-PERP`` and ``BTC-USD-20261225``, so queries line up across venues;
records keep the OKX spelling in ``native_symbol``. Options and spreads are not served.
"""

from __future__ import annotations

from typing import Final

SPOT: Final = "spot"
SWAP: Final = "swap"
FUTURES: Final = "futures"
MARKETS: Final = (SPOT, SWAP, FUTURES)
# OKX ``instType`` of each market (subscriptions and REST queries name it)
INST_TYPE: Final = {SPOT: "SPOT", SWAP: "SWAP", FUTURES: "FUTURES"}


def market_of(native: str) -> str:
    """The market of an OKX instrument id; ValueError for anything else (options...)."""
    parts = native.split("-")
    if len(parts) == 2 and all(_asset(p) for p in parts):
        return SPOT
    if len(parts) == 3 and _asset(parts[0]) and _asset(parts[1]):
        if parts[2] == "SWAP":
            return SWAP
        if len(parts[2]) == 6 and parts[2].isdigit():
            return FUTURES
    raise ValueError(
        f"not an OKX spot, swap or futures instrument: {native!r} "
        "(expected BTC-USDT, BTC-USDT-SWAP or BTC-USD-261225)"
    )


def normalize(native: str) -> str:
    """``BTC-USDT-SWAP`` → ``BTC-USDT-PERP``, ``BTC-USD-261225`` → ``BTC-USD-20261225``."""
    market = market_of(native)
    if market == SPOT:
        return native
    base, quote, suffix = native.split("-")
    if market == SWAP:
        return f"{base}-{quote}-PERP"
    return f"{base}-{quote}-20{suffix}"


def native(symbol: str) -> str:
    """The inverse of :func:`normalize`."""
    parts = symbol.split("-")
    if len(parts) == 3 and parts[2] == "PERP":
        return f"{parts[0]}-{parts[1]}-SWAP"
    if len(parts) == 3 and len(parts[2]) == 8 and parts[2].isdigit():
        return f"{parts[0]}-{parts[1]}-{parts[2][2:]}"
    return symbol


def underlying(native: str) -> str:
    """The index a derivative tracks (``index-tickers``): ``BTC-USDT-SWAP`` → ``BTC-USDT``."""
    base, quote = native.split("-")[:2]
    return f"{base}-{quote}"


def _asset(text: str) -> bool:
    return bool(text) and text.isalnum() and text == text.upper()
