"""Binance spot and USD-M futures market data (sans-I/O venue protocol).

``BinanceVenue(config)`` is the ``hundi.exchanges`` entry point; ``config.market`` is ``spot``
or ``usdm`` (aliases: ``futures``, ``usd-m``, ``um``). Records carry ``exchange="binance"``;
USD-M perpetuals are named ``BASE-QUOTE-PERP``.
"""

from __future__ import annotations

import random

from hundi.exchanges.base import VenueConfig
from hundi.exchanges.binance.protocol import BinanceProtocol
from hundi.exchanges.binance.symbols import Market


def BinanceVenue(config: VenueConfig, rng: random.Random | None = None) -> BinanceProtocol:
    """Build the protocol for ``config``; raises ValueError on a bad configuration."""
    return BinanceProtocol(config, rng=rng)


__all__ = ["BinanceProtocol", "BinanceVenue", "Market"]
