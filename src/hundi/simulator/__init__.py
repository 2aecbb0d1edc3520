"""Exchange simulators for tests and benchmarks: the real wire protocol over real sockets.

``BinanceSimulator`` (in-process, ``async with``) and ``SimulatorProcess`` (a subprocess) serve
Binance spot or USD-M streams and REST from a seeded synthetic market or from captures, inject
faults on request, and report the ground truth of what they sent::

    async with BinanceSimulator(SimulatorConfig(symbols=("BTCUSDT",))) as sim:
        sim.ws_url, sim.rest_url, sim.stats()

``stats()`` (also ``GET /sim/stats``) is JSON: ``connections[]`` each with ``id``, ``path``,
``opened_ns``, ``closed_ns``, ``close_reason``, ``subscriptions``, ``frames_sent``, ``bytes_sent``
and ``streams`` = {stream name: {``frames``, ``first``, ``last``, ``count``, ``ranges`` (ids in
send order, ``[[first, last], ...]``), ``truncated``}} (ids: aggTrade ``a``, trade ``t``, depth
``U``..``u``); ``symbols`` {SYMBOL: last ids, ``oldest_kept_agg_id`` (the oldest id REST
``aggTrades`` still answers: the last ``trade_history`` aggTrades are kept, older ids answer
``[]``)}; ``faults[]`` each ``{kind, at_ns, conn, symbol,
stream, first_id, last_id, detail}``; totals ``messages_generated``, ``messages_per_s``,
``frames_sent``, ``bytes_sent``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hundi.simulator.config import FaultKind, FaultSpec, Market, SimulatorConfig
from hundi.simulator.process import SimulatorProcess

if TYPE_CHECKING:
    from hundi.simulator.binance.server import BinanceSimulator

__all__ = [
    "BinanceSimulator",
    "FaultKind",
    "FaultSpec",
    "Market",
    "SimulatorConfig",
    "SimulatorProcess",
]


def __getattr__(name: str) -> Any:
    # the server pulls in aiohttp; importing the config alone should stay cheap
    if name == "BinanceSimulator":
        from hundi.simulator.binance.server import BinanceSimulator

        return BinanceSimulator
    raise AttributeError(name)
