"""Bitstamp WebSocket v2 (sans-I/O venue protocol): trades, the L2 book and the top-100 BBO.

``BitstampVenue(config)`` is the ``hundi.exchanges`` entry point. Records carry
``exchange="bitstamp"``; pairs are normalized ``btcusd`` → ``BTC-USD``. See
``docs/venue-bitstamp.md``.
"""

from __future__ import annotations

from hundi.exchanges.base import VenueConfig
from hundi.exchanges.bitstamp.book import BOOK_RULE
from hundi.exchanges.bitstamp.capture import infer_capture
from hundi.exchanges.bitstamp.protocol import EXCHANGE as NAME
from hundi.exchanges.bitstamp.protocol import BitstampProtocol
from hundi.exchanges.registry import Exchange


def BitstampVenue(config: VenueConfig) -> BitstampProtocol:
    """Build the protocol for ``config``; raises ValueError (one line) on a bad configuration."""
    return BitstampProtocol(config)


EXCHANGE = Exchange(
    name=NAME,
    venue=BitstampVenue,
    book_rule=BOOK_RULE,
    infer_capture=infer_capture,
    simulator="hundi.simulator.bitstamp.command:bitstamp",
    recordings=("BITSTAMP",),
)

__all__ = ["EXCHANGE", "BitstampProtocol", "BitstampVenue"]
