"""Bitstamp symbols: the lower-case ``url_symbol`` (``btcusd``) ↔ normalized ``BTC-USD``.

Bitstamp spells a pair as base and counter currency run together in lower case (its REST
``trading-pairs-info`` lists ``url_symbol: "btcusd"`` with ``name: "BTC/USD"``). The split is
found by the counter currency, the suffix: Bitstamp quotes in a small set of currencies, and the
longest matching suffix wins (``usdtusd`` is USDT/USD, ``btcusdt`` would be BTC/USDT). A
spelling that is not lower-case letters and digits, or ends in no known counter currency, is a
configuration error. The listing fetched at start (``protocol.py``) then confirms each pair.
"""

from __future__ import annotations

import re
from typing import Final

#: Counter currencies of Bitstamp's pairs (``trading-pairs-info``), longest first so that a
#: four-letter quote is tried before its three-letter prefix.
QUOTES: Final = ("usdt", "usdc", "pyusd", "rlusd", "pax", "usd", "eur", "gbp", "btc", "eth", "chf")
_QUOTES_LONGEST_FIRST: Final = tuple(sorted(QUOTES, key=len, reverse=True))
_SPELLING: Final = re.compile(r"[a-z0-9]+")


def split(native: str) -> tuple[str, str]:
    """``btcusd`` → ``("btc", "usd")``; ValueError (one line) for anything else."""
    if not _SPELLING.fullmatch(native):
        raise ValueError(
            f"not a Bitstamp pair: {native!r} (expected lower-case base and counter currency "
            "run together, e.g. btcusd)"
        )
    for quote in _QUOTES_LONGEST_FIRST:
        if native.endswith(quote) and len(native) > len(quote):
            return native[: -len(quote)], quote
    raise ValueError(
        f"not a Bitstamp pair: {native!r} (no known counter currency at its end: "
        f"{', '.join(QUOTES)})"
    )


def normalize(native: str) -> str:
    """``btcusd`` → ``BTC-USD``, ``etheur`` → ``ETH-EUR``."""
    base, quote = split(native)
    return f"{base.upper()}-{quote.upper()}"


def native(symbol: str) -> str:
    """``BTC-USD`` → ``btcusd`` (the inverse of :func:`normalize`)."""
    base, _, quote = symbol.partition("-")
    return f"{base}{quote}".lower()


def listed_name(native: str) -> str:
    """The listing's ``name`` of a pair we normalize: ``btcusd`` → ``BTC/USD``."""
    base, quote = split(native)
    return f"{base.upper()}/{quote.upper()}"
