"""Bybit v5 public market data (sans-I/O venue protocol): spot, linear and inverse.

``BybitVenue(config)`` is the ``hundi.exchanges`` entry point. Records carry
``exchange="bybit"``; symbols are passed as Bybit spells them (``BTCUSDT``, ``BTCPERP``,
``BTCUSD``, ``BTCUSDH26``) and normalized from the instrument list (``BTC-USDT``,
``BTC-USDT-PERP``, ``BTC-USD-PERP``, ``BTC-USD-20260327``). Options: ``depth`` (1, 50, 200 or
1000; default 50), ``kline_interval`` (Bybit's: 1, 3, 5, 15, 30, 60, 120, 240, 360, 720, D, W,
M; default 1) and ``instruments_interval_s`` (instrument list poll, default 3600).
"""

from __future__ import annotations

from hundi.exchanges.base import VenueConfig
from hundi.exchanges.bybit.book import BOOK_RULE
from hundi.exchanges.bybit.protocol import EXCHANGE as NAME
from hundi.exchanges.bybit.protocol import BybitProtocol
from hundi.exchanges.registry import Exchange


def BybitVenue(config: VenueConfig) -> BybitProtocol:
    """Build the protocol of one Bybit category; raises ValueError on a bad configuration."""
    return BybitProtocol(config)


EXCHANGE = Exchange(
    name=NAME,
    venue=BybitVenue,
    book_rule=BOOK_RULE,
    simulator="hundi.simulator.bybit.command:bybit",
)

__all__ = ["EXCHANGE", "BybitProtocol", "BybitVenue"]
