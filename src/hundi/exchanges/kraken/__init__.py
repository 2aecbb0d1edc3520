"""Kraken spot market data (sans-I/O venue protocol): WebSocket v2 by default, v1 books.

``KrakenVenue(config)`` is the ``hundi.exchanges`` entry point. Records carry
``exchange="kraken"``; pairs are passed as Kraken spells them (``BTC/USD`` on v2, ``XBT/USD`` on
v1) and normalized to ``BTC-USD``. Options: ``api`` (``v2``, default, or ``v1``), ``depth``
(book levels a side: 10, 25, 100, 500 or 1000; default 100), ``ohlc_interval`` (minutes),
``backfill_requests_per_gap`` and ``rest_interval_ms`` (trades fetched back over REST, v2).
"""

from __future__ import annotations

from hundi.exchanges.base import VenueConfig, VenueProtocol
from hundi.exchanges.kraken.book import BOOK_RULE
from hundi.exchanges.kraken.capture import infer_capture
from hundi.exchanges.kraken.common import EXCHANGE as NAME
from hundi.exchanges.kraken.protocol import KrakenProtocol
from hundi.exchanges.kraken.protocol_v1 import KrakenV1Protocol
from hundi.exchanges.registry import Exchange

APIS = ("v2", "v1")
TRADE_OPTIONS = ("backfill_requests_per_gap", "rest_interval_ms")  # trades fetched back (v2)


def KrakenVenue(config: VenueConfig) -> VenueProtocol:
    """Build the protocol of ``config``'s API; raises ValueError on a bad configuration."""
    if config.market != "spot":
        raise ValueError(f"kraken serves the spot market only, not {config.market!r}")
    api = config.options.get("api", "v2")
    if api not in APIS:
        raise ValueError(f"option api must be v2 or v1, got {api!r}")
    unknown = set(config.options) - {"api", "depth", "ohlc_interval", *TRADE_OPTIONS}
    if unknown:
        raise ValueError(f"unknown kraken option(s): {', '.join(sorted(unknown))}")
    if api == "v1":
        v2_only = sorted(set(config.options) & set(TRADE_OPTIONS))
        if v2_only:
            raise ValueError(f"option {v2_only[0]} is for v2 trades (v1 serves books only)")
        return KrakenV1Protocol(config)
    return KrakenProtocol(config)


EXCHANGE = Exchange(
    name=NAME,
    venue=KrakenVenue,
    book_rule=BOOK_RULE,
    infer_capture=infer_capture,
    simulator="hundi.simulator.kraken.command:kraken",
    recordings=("KRAKEN",),
)

__all__ = ["EXCHANGE", "KrakenProtocol", "KrakenV1Protocol", "KrakenVenue"]
