"""OKX v5 public market data (sans-I/O venue protocol): spot, perpetual swaps, dated futures.

``OkxVenue(config)`` is the ``hundi.exchanges`` entry point. Records carry ``exchange="okx"``;
instruments are passed as OKX spells them (``BTC-USDT``, ``BTC-USDT-SWAP``, ``BTC-USD-SWAP``,
``BTC-USD-261225``) and normalized to ``BTC-USDT``, ``BTC-USDT-PERP``, ``BTC-USD-PERP``,
``BTC-USD-20261225``. ``--market`` is ``spot``, ``swap`` or ``futures`` (a comma list serves
several on one connection). Options: ``candle_interval`` (OKX bar, default ``1m``),
``instruments_interval_s`` (default 3600), ``business_endpoint`` (candles' WebSocket),
``max_buffer`` (book pushes buffered while waiting for a snapshot),
``backfill_requests_per_gap`` (REST history-trades pages per trade gap, default 10; 0: off).
See ``docs/venue-okx.md``.
"""

from __future__ import annotations

from hundi.exchanges.base import VenueConfig
from hundi.exchanges.okx.book import BOOK_RULE
from hundi.exchanges.okx.capture import infer_capture
from hundi.exchanges.okx.protocol import EXCHANGE as NAME
from hundi.exchanges.okx.protocol import OkxProtocol
from hundi.exchanges.registry import Exchange


def OkxVenue(config: VenueConfig) -> OkxProtocol:
    """Build the protocol for ``config``; raises ValueError on a bad configuration."""
    return OkxProtocol(config)


EXCHANGE = Exchange(
    name=NAME,
    venue=OkxVenue,
    book_rule=BOOK_RULE,
    infer_capture=infer_capture,
    simulator="hundi.simulator.okx.command:okx",
    recordings=("OKX",),
)

__all__ = ["EXCHANGE", "OkxProtocol", "OkxVenue"]
