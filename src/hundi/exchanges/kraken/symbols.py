"""Kraken symbols: ``BTC/USD`` (WebSocket v2) and ``XBT/USD`` (v1 ``wsname``) ↔ ``BTC-USD``.

Kraken spells pairs ``BASE/QUOTE``. WebSocket v1 and the REST ``AssetPairs`` ``wsname`` keep the
exchange's legacy asset codes (``XBT`` for bitcoin, ``XDG`` for dogecoin); v2 uses the common
codes (``BTC``, ``DOGE``). Records carry the pair exactly as the connection spells it in
``native_symbol`` and the common codes in ``symbol``, so both APIs store the same ``BTC-USD``.
"""

from __future__ import annotations

from typing import Final

#: Kraken's legacy asset codes (v1, REST ``wsname``) → the common codes (documented aliases).
LEGACY_ASSETS: Final = {"XBT": "BTC", "XDG": "DOGE"}
#: The common codes → the v1 spelling (the inverse of :data:`LEGACY_ASSETS`).
V1_ASSETS: Final = {common: legacy for legacy, common in LEGACY_ASSETS.items()}


def split(native: str) -> tuple[str, str]:
    """``XBT/USD`` → ``("XBT", "USD")``; ValueError for a spelling that is not a Kraken pair."""
    base, sep, quote = native.partition("/")
    if not sep or not base or not quote or "/" in quote or native != native.strip():
        raise ValueError(f"not a Kraken pair: {native!r} (expected BASE/QUOTE, e.g. BTC/USD)")
    return base, quote


def normalize(native: str) -> str:
    """``XBT/USD`` or ``BTC/USD`` → ``BTC-USD``; ``XDG/EUR`` → ``DOGE-EUR``."""
    base, quote = split(native)
    base, quote = base.upper(), quote.upper()
    return f"{LEGACY_ASSETS.get(base, base)}-{LEGACY_ASSETS.get(quote, quote)}"


def native_v2(symbol: str) -> str:
    """``BTC-USD`` → ``BTC/USD`` (the v2 spelling)."""
    base, _, quote = symbol.partition("-")
    return f"{base}/{quote}"


def native_v1(symbol: str) -> str:
    """``BTC-USD`` → ``XBT/USD`` (the v1 spelling, legacy asset codes)."""
    base, _, quote = symbol.partition("-")
    return f"{V1_ASSETS.get(base, base)}/{V1_ASSETS.get(quote, quote)}"
