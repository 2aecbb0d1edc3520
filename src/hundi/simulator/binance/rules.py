"""Binance's documented rules the simulator enforces, per simulated variant (spot, USD-M or
COIN-M).

Kept free of aiohttp so the configuration can use them without importing the server.
"""

from __future__ import annotations

import enum


class BinanceVariant(enum.StrEnum):
    """Which Binance the simulator is: the spot exchange, USDⓈ-M or COIN-M futures."""

    SPOT = "spot"
    USDM = "usdm"
    COINM = "coinm"  # dstream / dapi: inverse contracts


FUTURES = frozenset((BinanceVariant.USDM, BinanceVariant.COINM))

# connections
PING_INTERVAL_S = {
    BinanceVariant.SPOT: 20.0, BinanceVariant.USDM: 180.0, BinanceVariant.COINM: 180.0
}  # fmt: skip
PONG_TIMEOUT_S = {
    BinanceVariant.SPOT: 60.0, BinanceVariant.USDM: 600.0, BinanceVariant.COINM: 600.0
}  # fmt: skip
INCOMING_MSGS_PER_S = {BinanceVariant.SPOT: 5, BinanceVariant.USDM: 10, BinanceVariant.COINM: 10}
MAX_STREAMS_PER_CONNECTION = 1024
# COIN-M: "A single connection can listen to a maximum of 200 streams."
MAX_STREAMS = {
    BinanceVariant.SPOT: 1024, BinanceVariant.USDM: 1024, BinanceVariant.COINM: 200
}  # fmt: skip
DAY_S = 24 * 3600.0  # a connection is closed at this age

# REST
REST_WEIGHT_PER_MIN = {
    BinanceVariant.SPOT: 6000, BinanceVariant.USDM: 2400, BinanceVariant.COINM: 2400
}  # fmt: skip
USDM_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)  # COIN-M's too
AGG_TRADES_WEIGHT = {BinanceVariant.SPOT: 4, BinanceVariant.USDM: 20, BinanceVariant.COINM: 20}
EXCHANGE_INFO_WEIGHT = {BinanceVariant.SPOT: 20, BinanceVariant.USDM: 1, BinanceVariant.COINM: 1}
OPEN_INTEREST_WEIGHT = 1  # GET /fapi/v1/openInterest, /dapi/v1/openInterest
REST_ROOTS = {
    BinanceVariant.SPOT: "/api/v3", BinanceVariant.USDM: "/fapi/v1",
    BinanceVariant.COINM: "/dapi/v1",
}  # fmt: skip


def depth_weight(variant: BinanceVariant, limit: int) -> int:
    """The request weight of ``GET depth`` with this ``limit``."""
    if variant in FUTURES:
        return {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10}.get(limit, 20)
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
