"""Bitfinex symbols: ``tBTCUSD`` ↔ ``BTC-USD``, ``tTESTBTC:TESTUSD`` ↔ ``TESTBTC-TESTUSD``.

Trading pairs are ``t`` + base + quote, each three letters, or ``t`` + base ``:`` quote when a
code is longer. Bitfinex spells some currencies its own way; its ``pub:map:currency:sym`` list
(REST ``/v2/conf/pub:map:currency:sym``) names the common symbol. :data:`CURRENCY_MAP` is the
part of that list for currencies that trade under another name elsewhere (``UST`` is Tether
USDt, ``UDC`` USD Coin...). It is a fixed table rather than a REST fetch at every start: the
normalized symbol of stored data must not change with a listing fetched on a given day.
"""

from __future__ import annotations

from typing import Final

# Bitfinex code → the common code (from Bitfinex's ``pub:map:currency:sym``).
CURRENCY_MAP: Final = {
    "UST": "USDT",
    "UDC": "USDC",
    "TSD": "TUSD",
    "EUT": "EURT",
    "DSH": "DASH",
    "IOT": "IOTA",
    "QTM": "QTUM",
    "MNA": "MANA",
    "ALG": "ALGO",
    "ATO": "ATOM",
    "DAT": "DATA",
    "QSH": "QASH",
}
_REVERSE: Final = {common: code for code, common in CURRENCY_MAP.items()}


def split(native: str) -> tuple[str, str]:
    """``tBTCUSD`` → ``("BTC", "USD")`` in Bitfinex's own codes; ValueError if not a pair."""
    body = native[1:] if native[:1] in ("t", "f") else native
    if ":" in body:
        base, _, quote = body.partition(":")
    elif len(body) == 6:
        base, quote = body[:3], body[3:]
    else:
        raise ValueError(
            f"not a Bitfinex trading pair: {native!r} (expected tBTCUSD or tBASE:QUOTE)"
        )
    if not base or not quote:
        raise ValueError(f"not a Bitfinex trading pair: {native!r}")
    return base, quote


def normalize(native: str) -> str:
    """``tBTCUSD`` → ``BTC-USD``, ``tBTCUST`` → ``BTC-USDT``, ``tTESTBTC:TESTUSD`` →
    ``TESTBTC-TESTUSD``; a spelling that is no pair is returned without its prefix."""
    try:
        base, quote = split(native)
    except ValueError:
        return native[1:] if native[:1] in ("t", "f") else native
    return f"{CURRENCY_MAP.get(base, base)}-{CURRENCY_MAP.get(quote, quote)}"


def check_pair(native: str) -> str:
    """A configured symbol as Bitfinex spells it: ``tBTCUSD``. hundi's config upper-cases
    symbols (``TBTCUSD``), so the prefix is taken in either case."""
    if native[:1] == "T":
        native = "t" + native[1:]
    if not native.startswith("t") or native[1:] != native[1:].upper():
        raise ValueError(
            f"not a Bitfinex trading pair: {native!r} (expected tBTCUSD or tBASE:QUOTE)"
        )
    split(native)
    return native


def native(symbol: str) -> str:
    """``BTC-USDT`` → ``tBTCUST`` (the inverse of :func:`normalize`)."""
    base, _, quote = symbol.partition("-")
    base, quote = _REVERSE.get(base, base), _REVERSE.get(quote, quote)
    if len(base) == 3 and len(quote) == 3:
        return f"t{base}{quote}"
    return f"t{base}:{quote}"
