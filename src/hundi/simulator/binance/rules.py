"""Binance's documented rules the simulator enforces, per simulated variant (spot or USD-M).

Kept free of aiohttp so the configuration can use them without importing the server.
"""

from __future__ import annotations

import enum


class BinanceVariant(enum.StrEnum):
    """Which Binance the simulator is: the spot exchange or USDⓈ-M futures."""

    SPOT = "spot"
    USDM = "usdm"


# connections
PING_INTERVAL_S = {BinanceVariant.SPOT: 20.0, BinanceVariant.USDM: 180.0}
PONG_TIMEOUT_S = {BinanceVariant.SPOT: 60.0, BinanceVariant.USDM: 600.0}
INCOMING_MSGS_PER_S = {BinanceVariant.SPOT: 5, BinanceVariant.USDM: 10}
MAX_STREAMS_PER_CONNECTION = 1024
DAY_S = 24 * 3600.0  # a connection is closed at this age

# REST
REST_WEIGHT_PER_MIN = {BinanceVariant.SPOT: 6000, BinanceVariant.USDM: 2400}
USDM_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
AGG_TRADES_WEIGHT = {BinanceVariant.SPOT: 4, BinanceVariant.USDM: 20}
EXCHANGE_INFO_WEIGHT = {BinanceVariant.SPOT: 20, BinanceVariant.USDM: 1}


def depth_weight(variant: BinanceVariant, limit: int) -> int:
    """The request weight of ``GET depth`` with this ``limit``."""
    if variant is BinanceVariant.USDM:
        return {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10}.get(limit, 20)
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
