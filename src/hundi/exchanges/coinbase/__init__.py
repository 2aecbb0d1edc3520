"""Coinbase Exchange public market data (sans-I/O venue protocol): matches, ticker, level2_batch.

``CoinbaseVenue(config)`` is the ``hundi.exchanges`` entry point. Records carry
``exchange="coinbase"``; product ids such as ``BTC-USD`` are both the native and the normalized
symbol. ``docs/venue-coinbase.md`` describes the channels, the integrity rules and the limits.
"""

from __future__ import annotations

from hundi.exchanges.base import VenueConfig
from hundi.exchanges.coinbase.capture import infer_capture
from hundi.exchanges.coinbase.protocol import EXCHANGE as NAME
from hundi.exchanges.coinbase.protocol import CoinbaseProtocol
from hundi.exchanges.registry import Exchange


def CoinbaseVenue(config: VenueConfig) -> CoinbaseProtocol:
    """Build the protocol for ``config``; raises ValueError (one line) on a bad configuration."""
    return CoinbaseProtocol(config)


EXCHANGE = Exchange(
    name=NAME,
    venue=CoinbaseVenue,
    # level2_batch has no sequence ids: only snapshots restart a stored book (breaks are stored
    # as gap events), so no continuity rule is registered.
    book_rule=None,
    infer_capture=infer_capture,
    simulator="hundi.simulator.coinbase.command:coinbase",
    recordings=("COINBASE",),
)

__all__ = ["EXCHANGE", "CoinbaseProtocol", "CoinbaseVenue"]
