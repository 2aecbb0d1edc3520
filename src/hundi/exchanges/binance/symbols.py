"""Native ↔ normalized Binance symbol names (the markets: :mod:`.markets`).

Binance spells symbols as one glued word (``BTCUSDT``), so the quote asset is found by suffix
against a list of known quote assets, longest first (``FDUSD`` before ``USD``...). Unknown
symbols fail at configuration time, not on the hot path; ``options`` can add quote assets or
spell a symbol out explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hundi.exchanges.binance.markets import MARKETS, Market, parse_market

__all__ = [
    "KNOWN_QUOTE_ASSETS",
    "Market",
    "SymbolInfo",
    "normalize",
    "parse_market",
    "parse_symbol_map",
    "split_native",
]


# Quote assets seen on Binance spot and USD-M; matched longest first so that e.g. ``USDT`` wins
# over ``USD`` and ``FDUSD`` over ``USD``.
KNOWN_QUOTE_ASSETS: tuple[str, ...] = (
    "USDT", "USDC", "FDUSD", "TUSD", "BUSD", "USDP", "USD1", "DAI", "UST", "PAX", "VAI",
    "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE", "DOT", "SOL",
    "EUR", "EURI", "AEUR", "GBP", "TRY", "BRL", "AUD", "RUB", "UAH", "BIDR", "IDRT", "NGN",
    "ZAR", "PLN", "RON", "ARS", "JPY", "MXN", "COP", "CZK", "BKRW",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    native: str  # BTCUSDT, as Binance spells it in REST and in the ``s`` field
    normalized: str  # BTC-USDT, BTC-USDT-PERP, BTC-USDT-20260626, BTC-USD-PERP (COIN-M)
    stream: str  # lower-case native, as used in stream names


def split_native(native: str, quote_assets: Iterable[str]) -> tuple[str, str]:
    """``BTCUSDT`` → (``BTC``, ``USDT``) by the longest known quote-asset suffix."""
    for quote in sorted(set(quote_assets), key=len, reverse=True):
        if native.endswith(quote) and len(native) > len(quote):
            return native[: -len(quote)], quote
    raise ValueError(
        f"cannot split Binance symbol {native!r} into base and quote; add its quote asset with "
        f"options['quote_assets'] or spell it out with options['symbol_map'] (NATIVE=BASE-QUOTE)"
    )


def normalize(
    native: str,
    market: Market,
    quote_assets: Iterable[str] = KNOWN_QUOTE_ASSETS,
    overrides: Mapping[str, str] | None = None,
) -> SymbolInfo:
    """One native symbol → its names. Perpetual futures get ``-PERP``, deliveries their date
    as ``YYYYMMDD`` (Binance's ``_211231`` suffix is ``YYMMDD``): ``LINKUSD_211231`` →
    ``LINK-USD-20211231``, the issue-14 rule shared by every venue."""
    native = native.strip().upper()
    if not native or not native.replace("_", "").isalnum():
        raise ValueError(f"invalid Binance symbol {native!r}")
    if overrides and native in overrides:
        return SymbolInfo(native, overrides[native], native.lower())
    if not MARKETS[market].futures:
        base, quote = split_native(native, quote_assets)
        return SymbolInfo(native, f"{base}-{quote}", native.lower())
    pair, _, delivery = native.partition("_")  # BTCUSDT_260626; COIN-M: BTCUSD_PERP
    # COIN-M pairs all end in USD: its own list alone, or DOTUSD would split as DO/TUSD
    base, quote = split_native(pair, MARKETS[market].quote_assets or quote_assets)
    return SymbolInfo(native, f"{base}-{quote}-{contract_suffix(native, delivery)}", native.lower())


def contract_suffix(native: str, delivery: str) -> str:
    """``""``/``PERP`` → ``PERP``; ``YYMMDD`` → ``20YYMMDD``; anything else is an error."""
    if delivery in ("", "PERP"):
        return "PERP"
    if len(delivery) == 6 and delivery.isdigit():
        return f"20{delivery}"
    raise ValueError(
        f"Binance futures symbol {native!r}: expected PAIR, PAIR_PERP or PAIR_YYMMDD; spell it "
        "out with options['symbol_map'] (NATIVE=BASE-QUOTE-SUFFIX)"
    )


def parse_symbol_map(text: str) -> dict[str, str]:
    """``"BTCUSDT=BTC-USDT,ABCXYZ=ABC-XYZ"`` → dict (the ``symbol_map`` option)."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        native, sep, normalized = item.partition("=")
        if not sep or not native.strip() or not normalized.strip():
            raise ValueError(f"symbol_map entries look like NATIVE=BASE-QUOTE, got {item!r}")
        mapping[native.strip().upper()] = normalized.strip()
    return mapping
