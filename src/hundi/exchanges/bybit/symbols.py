"""Bybit v5 symbols: native spelling ↔ normalized, from ``/v5/market/instruments-info``.

Bybit spells one name in several categories (``BTCUSDT`` is both a spot pair and a linear
perpetual), and dated futures carry their expiry only in the instrument list
(``BTCUSDH26``: ``deliveryTime``), so the instrument list is the source of truth
(:func:`from_instrument`). :func:`guess` splits a name without it, for replays and when the
list cannot be fetched: it knows the documented spellings of perpetuals and linear dated
futures, and gives up (None) on inverse dated futures, whose expiry day it cannot know.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Final

from hundi.records import BASE, QUOTE

MARKETS: Final = ("spot", "linear", "inverse")
# Quote assets tried longest first when a name must be split without the instrument list.
QUOTES: Final = ("USDT", "USDC", "USDE", "FDUSD", "EUR", "BRL", "TRY", "BTC", "ETH", "DAI")
NATIVE: Final = re.compile(r"^[A-Z0-9]+(-[0-9]{1,2}[A-Z]{3}[0-9]{2})?$")
_DATED: Final = re.compile(r"^([A-Z0-9]+)-([0-9]{1,2})([A-Z]{3})([0-9]{2})$")
_MONTHS: Final = (
    "JAN",
    "FEB",
    "MAR",
    "APR",
    "MAY",
    "JUN",
    "JUL",
    "AUG",
    "SEP",
    "OCT",
    "NOV",
    "DEC",
)
MS: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class Contract:
    """What one native name is in one category: its normalized name and units."""

    symbol: str  # normalized
    contract_type: str  # spot | perpetual | future
    inverse: bool
    base: str
    quote: str
    settle: str
    size_unit: str  # BASE (spot, linear) or QUOTE (inverse: sized in USD)
    expiry_ns: int  # 0: none


def expiry_suffix(expiry_ns: int) -> str:
    """``20261225`` for an expiry (UTC date)."""
    return datetime.datetime.fromtimestamp(expiry_ns / 1e9, datetime.UTC).strftime("%Y%m%d")


def from_instrument(
    market: str, base: str, quote: str, settle: str, contract_type: str, delivery_ms: int
) -> Contract:
    """The contract of one ``instruments-info`` entry (``contractType``: ``LinearPerpetual``,
    ``LinearFutures``, ``InversePerpetual``, ``InverseFutures``; spot has none)."""
    if market == "spot":
        return Contract(f"{base}-{quote}", "spot", False, base, quote, settle or quote, BASE, 0)
    inverse = market == "inverse" or contract_type.startswith("Inverse")
    unit = QUOTE if inverse else BASE
    settle = settle or (base if inverse else quote)
    if contract_type.endswith("Futures") and delivery_ms > 0:
        expiry = delivery_ms * MS
        name = f"{base}-{quote}-{expiry_suffix(expiry)}"
        return Contract(name, "future", inverse, base, quote, settle, unit, expiry)
    return Contract(f"{base}-{quote}-PERP", "perpetual", inverse, base, quote, settle, unit, 0)


def _split_quote(name: str) -> tuple[str, str] | None:
    for quote in QUOTES:
        if name.endswith(quote) and len(name) > len(quote):
            return name[: -len(quote)], quote
    return None


def guess(market: str, native: str) -> Contract | None:
    """The contract ``native`` names by its spelling alone; None when the spelling does not say
    (inverse dated futures, unknown quote assets): the instrument list must."""
    if market == "spot":
        split = _split_quote(native)
        if split is None:
            return None
        return from_instrument("spot", split[0], split[1], split[1], "", 0)
    if market == "inverse":
        if native.endswith("USD") and len(native) > 3:
            return from_instrument(
                "inverse", native[:-3], "USD", native[:-3], "InversePerpetual", 0
            )
        return None  # BTCUSDH26: the expiry day is in the instrument list only
    dated = _DATED.match(native)
    if dated is not None:
        head, day, month, year = dated.groups()
        if month not in _MONTHS:
            return None
        split = _split_quote(head)
        base, quote = split if split is not None else (head, "USDC")  # BTC-26DEC25: USDC
        when = datetime.datetime(
            2000 + int(year), _MONTHS.index(month) + 1, int(day), 8, tzinfo=datetime.UTC
        )
        delivery_ms = int(when.timestamp() * 1000)
        return from_instrument("linear", base, quote, quote, "LinearFutures", delivery_ms)
    if native.endswith("PERP") and len(native) > 4:  # BTCPERP: the USDC perpetual
        return from_instrument("linear", native[:-4], "USDC", "USDC", "LinearPerpetual", 0)
    split = _split_quote(native)
    if split is None:
        return None
    return from_instrument("linear", split[0], split[1], split[1], "LinearPerpetual", 0)
