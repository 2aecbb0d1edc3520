"""Coinbase Exchange product ids: native ``BTC-USD`` is already hundi's normalized form.

Records still carry both (``native_symbol`` and ``symbol``) so queries across venues look the
same. Only the spelling is checked here (pure, no I/O); whether Coinbase lists a product is
asked of REST ``/products`` by the protocol.
"""

from __future__ import annotations

import re

_PRODUCT = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")


def normalize(native: str) -> str:
    """``BTC-USD`` → ``BTC-USD``; ValueError (one line) for a spelling that is no product id."""
    if not _PRODUCT.match(native):
        hint = f" (did you mean {native.upper()!r}?)" if _PRODUCT.match(native.upper()) else ""
        raise ValueError(
            f"not a Coinbase product id: {native!r}; expected BASE-QUOTE in capitals, "
            f"e.g. BTC-USD{hint}"
        )
    return native
