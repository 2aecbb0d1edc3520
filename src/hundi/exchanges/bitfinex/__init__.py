"""Bitfinex v2 (sans-I/O venue protocol): public market data (trades, books with checksums and
sequence numbers, ticker, candles) and authenticated own orders and fills.

``BitfinexVenue(config)`` is the ``hundi.exchanges`` entry point. Records carry
``exchange="bitfinex"``; symbols are normalized ``tBTCUSD`` → ``BTC-USD``, ``tBTCUST`` →
``BTC-USDT`` (:mod:`hundi.exchanges.bitfinex.symbols`). Credentials (private channels only) from
``BITFINEX_API_KEY``/``BITFINEX_API_SECRET`` (environment or ``.secret.bitfinex.env``).
"""

from __future__ import annotations

from hundi.exchanges.base import VenueConfig
from hundi.exchanges.bitfinex.book import BOOK_RULE
from hundi.exchanges.bitfinex.capture import infer_capture
from hundi.exchanges.bitfinex.protocol import PRIVATE_CHANNELS, BitfinexProtocol
from hundi.exchanges.credentials import Credentials, require_credentials
from hundi.exchanges.registry import Exchange


def BitfinexVenue(config: VenueConfig, credentials: Credentials | None = None) -> BitfinexProtocol:
    """Build the protocol for ``config``; raises ValueError on a bad configuration."""
    private = PRIVATE_CHANNELS.intersection(config.channels)
    if credentials is None and private and config.authenticate:
        credentials = require_credentials("bitfinex")
    return BitfinexProtocol(config, credentials)


EXCHANGE = Exchange(
    name="bitfinex",
    venue=BitfinexVenue,
    book_rule=BOOK_RULE,
    infer_capture=infer_capture,
    recordings=("BITFINEX",),
    simulator="hundi.simulator.bitfinex.command:bitfinex",
)

__all__ = ["EXCHANGE", "BitfinexProtocol", "BitfinexVenue"]
