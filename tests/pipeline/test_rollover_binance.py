"""Proactive reconnects against the Binance simulator keep every book and trade stream whole."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

import hundi
from hundi.connection.client import PicowsClient
from hundi.connection.manager import ConnectionSettings
from hundi.exchanges.base import VenueConfig
from hundi.exchanges.binance import BinanceVenue
from hundi.pipeline.collector import Collector, CollectorSettings
from hundi.records import Channel
from hundi.simulator.process import SimulatorProcess
from hundi.stores.embedded import EmbeddedStore

pytestmark = pytest.mark.slow


async def test_lifetime_rollovers_lose_no_book_and_no_trade(tmp_path: Path) -> None:
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
        store = EmbeddedStore(str(tmp_path))
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
    for symbol in ("BTC-USDT", "ETH-USDT"):
        events = hundi.read(tmp_path, exchange="binance", symbol=symbol, channel="events")
        assert not events["kind"].isin(["gap", "resync"]).any(), symbol  # not even at the end
        assert events["kind"].iloc[-1] == "stopped", symbol  # the clean stop ends the book
        trades = hundi.read(tmp_path, exchange="binance", symbol=symbol, channel="trades")
        ids = trades["trade_id"].tolist()
        assert ids and all(b == a + 1 for a, b in pairwise(ids)), symbol
        book = hundi.read(tmp_path, exchange="binance", symbol=symbol, channel="book")
        diffs = book[~book["snapshot"]]
        spans = sorted(set(zip(diffs["first_update_id"], diffs["update_id"], strict=True)))
        assert spans, symbol
        assert all(b[0] == a[1] + 1 for a, b in pairwise(spans)), symbol  # U == previous u + 1
