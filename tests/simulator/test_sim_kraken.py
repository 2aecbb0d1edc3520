"""The collector against the Kraken v2 simulator over real WebSockets, checked against the
simulator's ground truth: every trade stored once, final books equal to the venue's, and under
faults (corrupted book levels, dropped connections) every break a stored gap event followed by
an in-place re-subscribe and a fresh snapshot, with the frame accounting balanced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from hundi.connection.manager import ConnectionSettings
from hundi.exchanges.base import VenueConfig
from hundi.exchanges.kraken import KrakenProtocol, KrakenV1Protocol, KrakenVenue
from hundi.pipeline.collector import Collector, CollectorSettings
from hundi.records import Channel
from hundi.simulator.kraken.server import KrakenSimConfig, KrakenSimulator
from hundi.stores.embedded import EmbeddedStore

pytestmark = pytest.mark.slow

PAIRS = ("BTC/USD", "ETH/USD")
DEPTH = 10
CHANNELS = (Channel.TRADES, Channel.BBO, Channel.BOOK, Channel.CANDLES, Channel.EVENTS)


async def until(condition: Callable[[], bool], within: float = 60.0) -> None:
    """Wait for ``condition`` with a deadline generous for a loaded machine."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
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


@pytest.fixture
async def start_sim() -> AsyncIterator[Callable[..., Any]]:
    started: list[KrakenSimulator] = []

    async def factory(**options: Any) -> KrakenSimulator:
        sim = KrakenSimulator(KrakenSimConfig(symbols=PAIRS, **options))
        await sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.stop()


def books_equal(venue: KrakenProtocol | KrakenV1Protocol, sim: KrakenSimulator) -> bool:
    """The venue's books are the simulator's true top ``DEPTH`` levels (v1 spells BTC XBT)."""
    for pair in PAIRS:
        book = venue.book[pair if pair in venue.book else pair.replace("BTC", "XBT")]
        if not book.synced:
            return False
        spec = sim.market.symbols[pair].spec
        bids, asks = sim.true_book(pair, DEPTH)
        want_bids = [(p / 10**spec.price_decimals, q / 10**spec.qty_decimals)
                     for p, q in sorted(bids.items(), reverse=True)]  # fmt: skip
        want_asks = [(p / 10**spec.price_decimals, q / 10**spec.qty_decimals)
                     for p, q in sorted(asks.items())]  # fmt: skip
        if book.bids.levels() != want_bids or book.asks.levels() != want_asks:
            return False
    return True


async def collect(
    sim: KrakenSimulator, tmp_path: Path, ready: Callable[[KrakenProtocol], bool]
) -> tuple[KrakenProtocol, EmbeddedStore, dict[str, Any]]:
    """Collect until ``ready``, then pause the market and stop once the books caught up."""
    config = VenueConfig(
        "spot", PAIRS, CHANNELS, endpoint=f"{sim.ws_url}/v2", rest_endpoint=sim.rest_url,
        options={"depth": str(DEPTH), "rest_interval_ms": "100"},
    )  # fmt: skip
    venue = KrakenVenue(config)
    assert isinstance(venue, KrakenProtocol)
    store = EmbeddedStore(str(tmp_path))
    collector = Collector([venue], [store], settings=settings())
    task = asyncio.ensure_future(collector.run())
    try:
        await until(lambda: ready(venue))
        sim.paused = True
        await until(lambda: books_equal(venue, sim))
        # the last trades reach the collector before it stops
        await until(
            lambda: (
                all(venue.last_trade_id.get(p) == sim.trade_ids[p][-1] for p in PAIRS)
                and venue.owed_ids() == 0
            )  # trades gaps fetched back over REST
        )
    finally:
        collector.stop("test done")
        summary = await asyncio.wait_for(task, 60)
    return venue, store, summary


def stored(store: EmbeddedStore, channel: Channel) -> Any:
    return store.read(exchange="kraken", symbol=None, channel=channel)


def trade_ids(store: EmbeddedStore, pair: str) -> list[int]:
    trades = stored(store, Channel.TRADES)
    return [int(i) for i in trades[trades["native_symbol"] == pair]["trade_id"]]


async def test_collector_stores_every_trade_once_and_ends_with_the_venues_books(
    start_sim: Callable[..., Any], tmp_path: Path
) -> None:
    sim = await start_sim(rate=300)
    venue, store, summary = await collect(
        sim, tmp_path, lambda v: v.checksums_verified >= 100 and len(v.last_trade_id) == 2
    )
    assert summary["balanced"]
    assert venue.checksum_mismatches == 0
    for pair in PAIRS:
        ids = trade_ids(store, pair)
        generated = sim.trade_ids[pair]
        assert len(ids) == len(set(ids)), "a trade stored twice"
        first = min(ids)  # the subscribe snapshot's oldest trade
        assert sorted(ids) == generated[generated.index(first) :]
    events = stored(store, Channel.EVENTS)
    kinds = [str(k) for k in events["kind"]]
    assert "gap" not in kinds and kinds.count("synced") == 2
    book = stored(store, Channel.BOOK)
    assert {str(s) for s in book["symbol"]} == {"BTC-USD", "ETH-USD"}
    assert set(book["update_id"].tolist()) == {-1}
    assert len(stored(store, Channel.BBO)) > 0 and len(stored(store, Channel.CANDLES)) > 0


async def test_corrupted_levels_and_disconnects_are_gaps_resynced_in_place(
    start_sim: Callable[..., Any], tmp_path: Path
) -> None:
    sim = await start_sim(rate=300, faults={"checksum": 0.4, "disconnect": 2.0})

    def faults(kind: str) -> list[dict[str, Any]]:
        return [f for f in sim.fault_log if f["kind"] == kind]

    def ready(venue: KrakenProtocol) -> bool:
        return venue.checksum_mismatches >= 3 and len(faults("disconnect")) >= 1

    venue, store, summary = await collect(sim, tmp_path, ready)
    assert summary["balanced"]
    events = stored(store, Channel.EVENTS)
    columns = ["kind", "channel", "detail", "native_symbol"]
    rows = [tuple(row) for row in events[columns].itertuples(index=False)]
    mismatches = [r for r in rows if r[0] == "gap" and r[2].startswith("checksum mismatch")]
    assert len(mismatches) == venue.checksum_mismatches >= 3
    # each corrupted level hit a connection: one stored mismatch per fault delivered
    assert len(mismatches) <= len(faults("checksum"))
    resyncs = [r for r in rows if r[0] == "resync"]
    assert len(resyncs) == len(mismatches)
    # in place: the same connection subscribed the book of a pair again
    async with aiohttp.ClientSession() as session, session.get(f"{sim.rest_url}/sim/stats") as r:
        truth = msgspec.json.decode(await r.read())
    assert any(
        len(c["book_subscriptions"]) > len(set(c["book_subscriptions"]))
        for c in truth["connections"]
    )
    # a dropped connection is a gap of every synced book
    assert any(r[0] == "gap" and "closed" in r[2] for r in rows)
    assert not [r for r in rows if r[0] == "unrecoverable"]
    for pair in PAIRS:  # every trade stored once: those a reconnect missed fetched back
        ids = trade_ids(store, pair)
        assert len(ids) == len(set(ids))
        generated = sim.trade_ids[pair]
        assert sorted(ids) == generated[generated.index(min(ids)) :]


async def test_v1_books_with_republished_levels_and_a_corrupted_level(
    start_sim: Callable[..., Any], tmp_path: Path
) -> None:
    """WebSocket v1 (the bare host): legacy pair names, republished ("r") levels applied like
    updates, every checksum verified, a corrupted level resynced on the same connection."""
    sim = await start_sim(rate=300, faults={"checksum": 0.5})
    config = VenueConfig(
        "spot", ("XBT/USD", "ETH/USD"), (Channel.BOOK, Channel.EVENTS), endpoint=sim.ws_url,
        rest_endpoint=sim.rest_url, options={"depth": str(DEPTH), "api": "v1"},
    )  # fmt: skip
    venue = KrakenVenue(config)
    assert isinstance(venue, KrakenV1Protocol)
    collector = Collector([venue], [EmbeddedStore(str(tmp_path))], settings=settings())
    task = asyncio.ensure_future(collector.run())
    try:
        await until(lambda: venue.checksum_mismatches >= 2 and sim.republished >= 5)
        sim.paused = True
        await until(lambda: books_equal(venue, sim))
    finally:
        collector.stop("test done")
        summary = await asyncio.wait_for(task, 60)
    assert summary["balanced"] and summary["frames"]["rejected"] == 0
    assert venue.checksums_verified > 20
    assert venue.checksum_mismatches <= len([f for f in sim.fault_log if f["kind"] == "checksum"])
    resubscribed = [c["book_subscriptions"] for c in sim.stats()["connections"]]
    assert any(len(pairs) > len(set(pairs)) for pairs in resubscribed)
    assert {b.symbol for b in venue.books()} == {"BTC-USD", "ETH-USD"}
    assert venue.invalid_symbols == []  # both listed by the simulator's AssetPairs


@pytest.mark.slow
async def test_a_refused_resubscribe_is_an_event_and_the_book_resyncs_anyway(
    start_sim: Callable[..., Any], tmp_path: Path
) -> None:
    """Kraken refusing an in-place re-subscribe (busy): a stored ``resync`` event saying so,
    the re-subscribe sent again with the back-off, and the book synced and true at the end."""
    sim = await start_sim(rate=300, faults={"checksum": 0.4, "refuse_resubscribe": 1.0})

    def refusals() -> list[dict[str, Any]]:
        return [f for f in sim.fault_log if f["kind"] == "refuse_resubscribe"]

    def ready(venue: KrakenProtocol) -> bool:
        if len(refusals()) >= 2 and venue.checksum_mismatches >= 3:
            sim.faults_on = False  # no more refusals: the retries land
            return True
        return False

    venue, store, summary = await collect(sim, tmp_path, ready)
    assert summary["balanced"] and venue.checksum_mismatches >= 3
    events = stored(store, Channel.EVENTS)
    columns = ["kind", "detail", "native_symbol", "recv_ts"]
    rows = [tuple(r) for r in events[columns].itertuples(index=False)]
    refused = [r for r in rows if r[0] == "resync" and r[1].startswith("re-subscribe refused")]
    # every refusal delivered was one of our re-subscribes: one event each, naming the pair
    assert sorted((r[2], r[1].split(";")[0]) for r in refused) == sorted(
        (f["symbol"], "re-subscribe refused: EService:Busy") for f in refusals()
    )
    assert len(refused) >= 2
    for _, _, pair, at in refused:  # each refused book synced again (and ``collect`` waited
        # for every book to equal the simulator's before stopping)
        assert any(r[0] == "synced" and r[2] == pair and r[3] > at for r in rows)
