"""Binance spot, USD-M and COIN-M futures market data (sans-I/O venue protocol).

``BinanceVenue(config)`` is the ``hundi.exchanges`` entry point; ``config.market`` is ``spot``,
``usdm`` (aliases: ``futures``, ``usd-m``, ``um``) or ``coinm`` (``coin-m``, ``cm``,
``delivery``). Records carry ``exchange="binance"``; perpetuals are named ``BASE-QUOTE-PERP``
(COIN-M: ``BTC-USD-PERP``, inverse), deliveries ``BASE-QUOTE-YYYYMMDD``.
"""

from __future__ import annotations

import random

from hundi.exchanges.base import VenueConfig
from hundi.exchanges.binance.book import BOOK_RULE
from hundi.exchanges.binance.capture import infer_capture
from hundi.exchanges.binance.protocol import PRIVATE_CHANNELS, BinanceProtocol
from hundi.exchanges.binance.symbols import Market
from hundi.exchanges.credentials import Credentials, require_credentials
from hundi.exchanges.registry import Exchange


def BinanceVenue(
    config: VenueConfig,
    rng: random.Random | None = None,
    credentials: Credentials | None = None,
) -> BinanceProtocol:
    """Build the protocol for ``config``; raises ValueError on a bad configuration.

    The ``orders``/``fills`` channels need credentials: given, or else loaded from the
    environment / ``.secret.binance.env`` (:mod:`hundi.exchanges.credentials`).
    """
    private = PRIVATE_CHANNELS.intersection(config.channels)
    if credentials is None and private and config.authenticate:
        credentials = require_credentials("binance")
    return BinanceProtocol(config, rng=rng, credentials=credentials)


EXCHANGE = Exchange(
    name="binance",
    venue=BinanceVenue,
    book_rule=BOOK_RULE,
    infer_capture=infer_capture,
    simulator="hundi.simulator.binance.command:binance",
    recordings=("BINANCE", "BINANCE_FUTURES"),
    other_recordings=("BINANCE_DELIVERY",),  # COIN-M, as cryptofeed names it
)

__all__ = ["EXCHANGE", "BinanceProtocol", "BinanceVenue", "Market"]
