"""Prices and quantities are integers: ticks of ``10**-price_decimals`` and lots of
``10**-qty_decimals``. No floats, no Decimal on the hot path, and every string a venue's wire
format prints from them is exact."""

from __future__ import annotations


def fixed(value: int, decimals: int, pad_to: int = 0) -> str:
    """Integer in units of ``10**-decimals`` → exact decimal text, right-padded with zeros."""
    sign = "-" if value < 0 else ""
    value = -value if value < 0 else value
    if decimals == 0:
        text = f"{sign}{value}"
        return f"{text}.{'0' * pad_to}" if pad_to else text
    scale = 10**decimals
    whole, frac = divmod(value, scale)
    return f"{sign}{whole}.{frac:0{decimals}d}{'0' * (pad_to - decimals)}"
