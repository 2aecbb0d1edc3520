"""Symbols: the venue's native spelling ↔ hundi's normalized ``BASE-QUOTE`` (copy and adapt).

Records carry both: ``native_symbol`` exactly as the venue spells it (what users pass to
``hundi collect <venue> --symbols``, and what the wire carries) and ``symbol``, normalized, so
queries across venues line up (``BTC-USDT``; derivatives add a suffix, e.g. ``BTC-USDT-PERP``).
Keep this module pure: no I/O, no network listing of instruments (a venue's instrument list is a
REST request the protocol makes, see ``protocol.py``).

This template's imaginary venue spells symbols ``BTC/USDT``.
"""

from __future__ import annotations


def normalize(native: str) -> str:
    """``BTC/USDT`` → ``BTC-USDT``; ValueError for a spelling that is not a symbol."""
    base, sep, quote = native.partition("/")
    if not sep or not base or not quote:
        raise ValueError(f"not a symbol of this venue: {native!r} (expected BASE/QUOTE)")
    return f"{base.upper()}-{quote.upper()}"


def native(symbol: str) -> str:
    """``BTC-USDT`` → ``BTC/USDT`` (the inverse of :func:`normalize`)."""
    base, _, quote = symbol.partition("-")
    return f"{base}/{quote}"
