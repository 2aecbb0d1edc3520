"""The collector against the Coinbase simulator over real WebSockets, under faults.

The simulator withholds matches (``skip_match``), sends updates that cross a book
(``cross_book``) and drops every connection (``disconnect``). The collector must store every
trade exactly once with the values the simulator generated (missed ones fetched back over REST
``/products/{id}/trades``), store each break as a ``gap`` event followed by a resync, and end,
once the market is paused, with exactly the simulator's books, live and as rebuilt from the
store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import hundi
from hundi.connection.client import PicowsClient
from hundi.connection.sockets import ConnectionSettings
from hundi.exchanges.base import VenueConfig
from hundi.exchanges.coinbase import CoinbaseVenue
from hundi.exchanges.coinbase.protocol import CoinbaseProtocol
from hundi.pipeline.collector import Collector, CollectorSettings
from hundi.records import Channel
from hundi.simulator.coinbase.server import CoinbaseSimConfig, CoinbaseSimulator
from hundi.stores.embedded import EmbeddedStore

pytestmark = pytest.mark.slow

PRODUCTS = ("BTC-USD", "ETH-EUR")
CHANNELS = (Channel.TRADES, Channel.TICKER, Channel.BBO, Channel.BOOK, Channel.EVENTS)


async def until(condition: Callable[[], bool], within: float, what: str) -> None:
    """Poll ``condition``; fail after ``within`` seconds (generous: the machine is shared)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not reached in {within} s: {what}"
        await asyncio.sleep(0.02)


def settings(lifetime_s: float | None = None) -> CollectorSettings:
    return CollectorSettings(
        flush_interval=0.1,
        shutdown_timeout_s=20.0,
        connection=ConnectionSettings(
            backoff_initial_s=0.05,
            healthy_after_s=0.5,
            stale_after_s=10.0,
            tick_s=0.02,
            overlap_s=0.3,
            lifetime_s=lifetime_s,
        ),
    )


def live_book(protocol: CoinbaseProtocol, product: str) -> tuple[dict[float, float], ...]:
    book = protocol.book[product]
    return dict(book.bids.levels), dict(book.asks.levels)


def caught_up(sim: CoinbaseSimulator, protocol: CoinbaseProtocol) -> bool:
    return protocol.owed_ids() == 0 and all(
        protocol.book[p].synced
        and live_book(protocol, p) == sim.book(p)
        and protocol.ids[p].last == sim.last_trade_id[p]
        for p in PRODUCTS
    )


async def collect(
    tmp_path: Path, faults: dict[str, float], lifetime_s: float | None = None, rollovers: int = 0
) -> tuple[Any, ...]:
    config = CoinbaseSimConfig(symbols=PRODUCTS, rate=300, heartbeat_s=0.5, faults=faults, seed=5)
    async with CoinbaseSimulator(config) as sim:
        protocol = CoinbaseVenue(
            VenueConfig(market="spot", symbols=PRODUCTS, channels=CHANNELS,
                        endpoint=sim.ws_url, rest_endpoint=sim.rest_url)
        )  # fmt: skip
        store = EmbeddedStore(str(tmp_path / "data"))
        collector = Collector(
            [protocol], [store], settings=settings(lifetime_s), client=PicowsClient()
        )
        running = asyncio.create_task(collector.run())
        try:
            await until(
                lambda: (
                    all(sim.fault_counts[k] >= 2 for k in faults)
                    and ("skip_match" not in faults or sum(map(len, sim.withheld.values())) >= 2)
                    and len(sim.stats()["connections"]) >= 2 + rollovers
                ),
                within=90,
                what="every fault injected twice",
            )
            sim.pause()
            await until(lambda: caught_up(sim, protocol), 60, "books and trades caught up")
            books = {p: sim.book(p) for p in PRODUCTS}
            history = {p: list(sim.history[p]) for p in PRODUCTS}
            stats = sim.stats()
        finally:
            collector.stop("test done")
            summary = await running
    return summary, stats, books, history, tmp_path / "data"


def stored(store: Path, channel: str, symbol: str | None = None) -> pd.DataFrame:
    frame: pd.DataFrame = hundi.read(store, exchange="coinbase", symbol=symbol, channel=channel)
    return frame


def check_trades(sim_history: dict[str, list[Any]], stats: dict[str, Any], store: Path) -> None:
    events = stored(store, "events")
    for product in PRODUCTS:
        trades = stored(store, "trades", product)
        ids = trades["trade_id"].tolist()
        assert len(ids) == len(set(ids)), f"{product}: a trade stored twice"
        assert ids and set(ids) == set(range(min(ids), max(ids) + 1)), f"{product}: ids missing"
        assert max(ids) == stats["last_trade_id"][product]
        by_id = trades.set_index("trade_id")
        for tid, price, size, maker_side, _ in sim_history[product]:
            if tid < min(ids):
                continue
            row = by_id.loc[tid]
            assert (row["price"], row["size"]) == (float(price), float(size)), tid
            assert row["side"] == (1 if maker_side == "sell" else -1), tid
        mine = events[(events["symbol"] == product) & (events["channel"] == "trades")]
        withheld = [t for t in stats["withheld"][product] if min(ids) < t <= max(ids)]
        backfilled = mine[mine["kind"] == "backfilled"]
        ranges = zip(backfilled["expected"], backfilled["received"], strict=True)
        recovered = {i for lo, hi in ranges for i in range(lo, hi)}
        assert set(withheld) <= recovered, (product, withheld, sorted(recovered)[:10])
        assert (mine["kind"] != "unrecoverable").all()


def levels(book: pd.DataFrame, side: int) -> dict[float, float]:
    mine = book[book["side"] == side]
    return dict(zip(mine["price"], mine["size"], strict=True))


def check_books(books: dict[str, Any], store: Path, *, crossed: bool) -> None:
    events = stored(store, "events")
    for product in PRODUCTS:
        bids, asks = books[product]
        at = stored(store, "book", product).index.max()
        rebuilt = hundi.book_at(store, "coinbase", product, at)
        assert (levels(rebuilt, 1), levels(rebuilt, -1)) == (bids, asks), product
        mine = events[(events["symbol"] == product) & (events["channel"] == "book")]
        kinds = [k for k in mine["kind"] if k != "stopped"]  # the clean stop closes the run
        assert kinds[-1] == "synced"
        for index, kind in enumerate(kinds):  # every break is followed by a resync
            if kind == "gap":
                assert "synced" in kinds[index + 1 :], kinds
    if crossed:
        gaps = events[(events["channel"] == "book") & (events["kind"] == "gap")]
        assert gaps["detail"].str.contains("crossed").any()
        assert (events["kind"] == "resync").any()


async def test_skipped_matches_and_crossed_books_are_recovered(tmp_path: Path) -> None:
    faults = {"skip_match": 0.6, "cross_book": 0.9}
    summary, stats, books, history, store = await collect(tmp_path, faults)
    frames = summary["frames"]
    assert frames["received"] == frames["processed"] + frames["filtered"] + frames["rejected"]
    assert frames["rejected"] == 0, frames
    assert summary["records"]["trades"] > 0 and summary["records"]["bbo"] > 0
    assert summary["records"]["ticker"] > 0
    check_trades(history, stats, store)
    check_books(books, store, crossed=True)


async def test_disconnects_lose_no_trade_and_resync_books(tmp_path: Path) -> None:
    summary, stats, books, history, store = await collect(tmp_path, {"disconnect": 2.0})
    assert summary["frames"]["rejected"] == 0
    assert len(stats["connections"]) >= 4  # two per run, reopened after each drop
    check_trades(history, stats, store)
    check_books(books, store, crossed=False)
    events = stored(store, "events")
    assert ((events["channel"] == "book") & (events["kind"] == "gap")).any()


async def test_lifetime_rollovers_keep_books_continuous(tmp_path: Path) -> None:
    """Make-before-break switches with per-connection ``level2_batch`` cuts: the new socket's
    frames are no byte copies, so its older batches must be dropped by time, not re-applied
    (they would move levels back or cross the book): no gap at all, exact books and trades."""
    summary, stats, books, history, store = await collect(tmp_path, {}, lifetime_s=1.0, rollovers=6)
    assert summary["frames"]["rejected"] == 0
    check_trades(history, stats, store)
    check_books(books, store, crossed=False)
    events = stored(store, "events")
    assert not (events["kind"] == "gap").any(), events[events["kind"] == "gap"]
