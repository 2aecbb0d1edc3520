"""Bitfinex v2 (sans-I/O venue protocol): authenticated own orders and fills for now.

``BitfinexVenue(config)`` is the ``hundi.exchanges`` entry point. Records carry
``exchange="bitfinex"``; symbols are normalized ``tBTCUSD`` → ``BTC-USD``. Credentials come from
``BITFINEX_API_KEY``/``BITFINEX_API_SECRET`` (environment or ``.secret.bitfinex.env``).
"""

from __future__ import annotations

from hundi.exchanges.base import VenueConfig
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
    simulator="hundi.simulator.bitfinex.command:bitfinex",
)

__all__ = ["EXCHANGE", "BitfinexProtocol", "BitfinexVenue"]
