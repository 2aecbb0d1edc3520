"""The collector in-process against the COIN-M simulator over real WebSockets: once the market
is paused, every book equals the simulator's published book level for level (sizes in whole
contracts), and every aggTrade id the simulator sent is stored exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from simharness import MakeSim

from hundi.connection.manager import ConnectionSettings
from hundi.exchanges.base import VenueConfig
from hundi.exchanges.binance import BinanceVenue
from hundi.exchanges.binance.protocol import BinanceProtocol
from hundi.pipeline.collector import Collector, CollectorSettings
from hundi.records import Channel
from hundi.simulator.binance.server import BinanceSimulator
from hundi.stores.embedded import EmbeddedStore

pytestmark = pytest.mark.slow

SYMBOLS = ("BTCUSD_PERP", "ETHUSD_260626")
CHANNELS = (
    Channel.TRADES, Channel.BOOK, Channel.DERIVATIVE_TICKER, Channel.LIQUIDATIONS,
    Channel.INSTRUMENTS, Channel.EVENTS,
)  # fmt: skip


async def until(
    condition: Callable[[], bool], within: float = 60.0, what: str = "condition"
) -> None:
    """Wait for ``condition`` with a deadline generous for a loaded machine."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within:g} s: {what}"
        await asyncio.sleep(0.02)


def settings() -> CollectorSettings:
    return CollectorSettings(
        flush_interval=0.2,
        max_batch_records=20_000,
        queue_batches=16,
        shutdown_timeout_s=20.0,
        connection=ConnectionSettings(
            backoff_initial_s=0.05, stale_after_s=10.0, check_every_frames=8, tick_s=0.02
        ),
    )


def books_equal(venue: BinanceProtocol, sim: BinanceSimulator) -> bool:
    for native in SYMBOLS:
        book = venue.book(native)
        update_id, bids, asks = sim.true_book(native)
        if not book.synced or book.last_update_id != update_id:
            return False
        if book.bids.levels != bids or book.asks.levels != asks:
            return False
    return True


def last_trade_ids(venue: BinanceProtocol) -> dict[str, int]:
    routes = venue.market_data._routes  # the trade routes' id sequences
    return {n: routes[f"{n.lower()}@aggTrade"].ids.last for n in SYMBOLS}  # type: ignore[attr-defined]


async def test_coinm_books_equal_the_venues_and_trades_stored_once(
    make_sim: MakeSim, tmp_path: Path
) -> None:
    sim = await make_sim(market="coinm", symbols=SYMBOLS, rate=300, seed=8)
    config = VenueConfig(
        "coinm", SYMBOLS, CHANNELS, endpoint=sim.ws_url, rest_endpoint=sim.rest_url
    )
    venue = BinanceVenue(config)
    store = EmbeddedStore(str(tmp_path))
    collector = Collector([venue], [store], settings=settings())
    task = asyncio.ensure_future(collector.run())
    try:
        await until(lambda: all(venue.book(n).synced for n in SYMBOLS), what="both books synced")
        synced_at = {n: venue.book(n).last_update_id for n in SYMBOLS}
        # some diffs on the synced books: each one's update id moves past where it synced
        await until(
            lambda: all(
                venue.book(n).synced and venue.book(n).last_update_id > synced_at[n]
                for n in SYMBOLS
            ),
            what=f"diffs applied on both synced books (synced at update ids {synced_at})",
        )
        sim.pause()
        await until(lambda: books_equal(venue, sim), what="the books equal the simulator's")
        await until(
            lambda: (
                last_trade_ids(venue)
                == {n: sim.stats()["symbols"][n]["last_agg_id"] for n in SYMBOLS}
            ),
            what="the simulator's last trades received",
        )
    finally:
        collector.stop("test done")
        summary = await asyncio.wait_for(task, 60)
    assert summary["balanced"]
    truth = sim.stats()
    trades = store.read(exchange="binance", symbol=None, channel=Channel.TRADES)
    for native in SYMBOLS:
        ids = [int(i) for i in trades[trades["native_symbol"] == native]["trade_id"]]
        sent = [
            i
            for conn in truth["connections"]
            for first, last in conn["streams"][f"{native.lower()}@aggTrade"]["ranges"]
            for i in range(first, last + 1)
        ]
        assert ids == sent  # each once, in order, none missing
    events = store.read(exchange="binance", symbol=None, channel=Channel.EVENTS)
    assert "gap" not in {str(k) for k in events["kind"]}
    instruments = store.read(exchange="binance", symbol=None, channel=Channel.INSTRUMENTS)
    assert sorted(instruments["contract_type"]) == ["future", "perpetual"]
