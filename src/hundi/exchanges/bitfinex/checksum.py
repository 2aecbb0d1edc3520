"""Bitfinex book checksums (``conf`` flag 131072): CRC32 over the top 25 levels of each side.

The checked string joins, for i = 0..24, the i-th best bid's ``price:amount`` then the i-th best
ask's ``price:amount`` (asks with their negative amount) with ``:``; the numbers are spelled as
JavaScript's ``Number.prototype.toString`` spells them (Bitfinex computes the checksum in
JavaScript): shortest round-trip digits, integers without ``.0``, fixed notation from 1e-7 to
1e21 and ``1e-7``/``1.5e+21`` outside. The venue sends the CRC32 as a signed 32-bit integer.
"""

from __future__ import annotations

import heapq
import zlib
from decimal import Decimal
from functools import lru_cache
from typing import Final

DEPTH: Final = 25


@lru_cache(maxsize=1 << 16)  # book prices and amounts recur from one checksum to the next
def js_number(value: float) -> str:
    """``value`` as JavaScript's ``String(value)`` (Python's ``repr`` differs in notation)."""
    if value == int(value) and abs(value) < 2**53:  # exact integers: no ".0"
        return str(int(value))
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if not e:
        return text
    power = int(exponent)
    if -7 < power <= 20:
        return format(Decimal(text), "f")
    return f"{mantissa}e{'+' if power > 0 else '-'}{abs(power)}"


def signed32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


def book_checksum(bids: dict[float, float], asks: dict[float, float]) -> int:
    """The signed CRC32 of a P0-P4 book whose sides map price → positive amount."""
    best_bids = heapq.nlargest(DEPTH, bids)
    best_asks = heapq.nsmallest(DEPTH, asks)
    parts: list[str] = []
    for i in range(max(len(best_bids), len(best_asks))):
        if i < len(best_bids):
            price = best_bids[i]
            parts += (js_number(price), js_number(bids[price]))
        if i < len(best_asks):
            price = best_asks[i]
            parts += (js_number(price), js_number(-asks[price]))
    return signed32(zlib.crc32(":".join(parts).encode()))
