"""Proactive reconnects against the Binance simulator keep every book and trade stream whole."""

from __future__ import annotations

from itertools import pairwise

from memstore import MemoryStore

from hundi.connection.client import PicowsClient
from hundi.connection.manager import ConnectionSettings
from hundi.exchanges.base import VenueConfig
from hundi.exchanges.binance import BinanceVenue
from hundi.pipeline.collector import Collector, CollectorSettings
from hundi.records import BookChange, Channel, Event, Trade
from hundi.simulator.process import SimulatorProcess


async def test_lifetime_rollovers_lose_no_book_and_no_trade() -> None:
    with SimulatorProcess(["--rate", "400", "--symbols", "BTCUSDT,ETHUSDT"]) as sim:
        venue = BinanceVenue(
            VenueConfig(
                "spot",
                ("BTCUSDT", "ETHUSDT"),
                (Channel.TRADES, Channel.BOOK),
                sim.ws_url,
                sim.rest_url,
            )
        )
        store = MemoryStore()
        settings = CollectorSettings(
            flush_interval=0.1,
            connection=ConnectionSettings(lifetime_s=0.8, overlap_s=0.2, tick_s=0.05),
        )
        collector = Collector([venue], [store], settings=settings, client=PicowsClient())
        summary = await collector.run(duration=3.5)
    stream = next(iter(summary["streams"].values()))
    assert stream["rollovers"] >= 2 and stream["connects"] == stream["rollovers"] + 1
    assert summary["gaps"] == 0 and summary["resyncs"] == 0  # the books never broke
    assert all(book["synced"] for book in summary["books"])
    events = [r for r in store.durable if isinstance(r, Event)]
    assert [e.kind for e in events if e.kind in ("gap", "resync")] == ["gap", "resync"] * 2
    assert all("disconnect" in e.detail for e in events if e.kind == "gap")  # only at the end
    for symbol in ("BTC-USDT", "ETH-USDT"):
        trades = [r.trade_id for r in store.durable if isinstance(r, Trade) and r.symbol == symbol]
        assert trades and all(b == a + 1 for a, b in pairwise(trades)), symbol
        diffs = [
            (r.first_update_id, r.update_id)
            for r in store.durable
            if isinstance(r, BookChange) and r.symbol == symbol and not r.snapshot
        ]
        ids = sorted({d for d in diffs})
        assert all(b[0] == a[1] + 1 for a, b in pairwise(ids)), symbol  # U == previous u + 1
