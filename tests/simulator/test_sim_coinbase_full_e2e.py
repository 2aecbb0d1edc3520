"""The collector with :class:`CoinbaseFullProtocol` over real sockets against the simulator's
``full`` feed: signed subscribe, level-3 REST snapshots and periodic checks, a lost message, a
stale snapshot and a dropped connection, each stored as gap/resync events and repaired in
place, and two swapped messages that are not a gap; at the end the live book, the stored rows
(``book_l3_at``) and the model's book are the same, every frame counted."""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hundi.connection.client import PicowsClient
from hundi.connection.manager import ConnectionSettings
from hundi.exchanges.base import VenueConfig
from hundi.exchanges.coinbase.full import CoinbaseFullProtocol
from hundi.exchanges.coinbase.full_auth import CoinbaseCredentials
from hundi.exchanges.credentials import Secret
from hundi.pipeline.collector import Collector, CollectorSettings
from hundi.records import ASK, BID, Channel
from hundi.research import book_l3_at
from hundi.simulator.coinbase.full_server import CoinbaseFullSimulator, FullSimConfig
from hundi.stores.embedded import EmbeddedStore

pytestmark = pytest.mark.slow

PRODUCTS = ("BTC-USD", "ETH-EUR")
SECRET = base64.b64encode(b"e2e secret").decode()
KEYS = ("e2e-key", SECRET, "e2e-pass")
CREDS = CoinbaseCredentials(Secret(KEYS[0]), Secret(KEYS[1]), Secret(KEYS[2]), "test")
DEADLINE_S = 60.0  # generous: the machine is shared


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def same(rebuilt: list[tuple[float, str, float]], truth: list[tuple[float, str, float]]) -> bool:
    return len(rebuilt) == len(truth) and all(
        (p, o) == (tp, to) and math.isclose(z, tz, rel_tol=1e-9, abs_tol=1e-12)
        for (p, o, z), (tp, to, tz) in zip(rebuilt, truth, strict=True)
    )


async def test_collector_rebuilds_the_models_l3_book_through_faults(tmp_path: Path) -> None:
    async with CoinbaseFullSimulator(FullSimConfig(PRODUCTS, seed=5, credentials=KEYS)) as sim:
        config = VenueConfig(
            market="spot", symbols=PRODUCTS, channels=(Channel.BOOK_L3,), endpoint=sim.ws_url,
            rest_endpoint=sim.rest_url,
            options={"full_snapshot_retry_ms": "50", "full_snapshot_interval_s": "1"},
        )  # fmt: skip
        protocol = CoinbaseFullProtocol(config, credentials=CREDS)
        store = EmbeddedStore(str(tmp_path))
        settings = CollectorSettings(
            flush_interval=0.05,
            shutdown_timeout_s=20.0,
            connection=ConnectionSettings(backoff_initial_s=0.05, stale_after_s=30.0, tick_s=0.02),
        )
        collector = Collector([protocol], [store], settings=settings, client=PicowsClient())
        running = asyncio.create_task(collector.run())
        state = protocol.state

        def synced(used: int) -> bool:
            return all(s.synced and s.snapshots_used >= used for s in state.values())

        await until(lambda: synced(1), "the first sync")
        await until(lambda: sim.steps >= 1500, "market activity")
        # The stale snapshot is meant for the resync: a periodic check asked for meanwhile
        # would take it instead (and rightly only ask again), so checks wait for the resync.
        interval_ns, protocol.check_interval_ns = protocol.check_interval_ns, 0
        btc = state["BTC-USD"]
        await until(lambda: not (btc.in_flight or btc.checking), "the open check")
        btc.check_at_ns = 0
        sim.skip_sequence("BTC-USD")
        sim.stale_snapshot("BTC-USD")
        await until(lambda: btc.snapshots_used >= 2 and synced(1), "the resync")
        assert btc.snapshots_stale == 1
        protocol.check_interval_ns = interval_ns  # the reconnect's syncs schedule checks again
        await until(lambda: sim.steps >= 3000, "more market activity")
        assert sim.drop_connections() == 1
        await until(lambda: synced(2) and state["ETH-EUR"].snapshots_used >= 2, "a reconnect")
        sim.reorder("ETH-EUR")  # two messages swapped: within the reorder window, no gap
        checked = {p: state[p].snapshots_checked for p in PRODUCTS}
        await until(
            lambda: all(state[p].snapshots_checked >= checked[p] + 2 for p in PRODUCTS),
            "periodic snapshot checks",
        )
        sim.pause()
        await until(
            lambda: all(state[p].sequence == sim.feed.sequence(p) for p in PRODUCTS) and synced(2),
            "the collector to catch up",
        )
        for product in PRODUCTS:
            book = state[product].book
            truth = sim.book(product)
            for side in (BID, ASK):
                rebuilt = [
                    (p, o.order_id, o.size) for p in book.prices(side) for o in book.queue(side, p)
                ]
                assert same(rebuilt, truth[side]), (product, side)
        collector.stop("test done")
        summary = await running

    assert summary["balanced"], summary["frames"]
    assert summary["frames"]["rejected"] == 0
    events = store.read(exchange="coinbase", symbol=None, channel=Channel.EVENTS)
    btc = events[events["symbol"] == "BTC-USD"]
    kinds = btc["kind"].astype(str).tolist()
    assert kinds.count("gap") == 2  # the lost message and the dropped connection
    eth = events[events["symbol"] == "ETH-EUR"]["kind"].astype(str).tolist()
    assert eth.count("gap") == 1  # the dropped connection only: the swap and the checks agree
    details = btc[btc["kind"] == "resync"]["detail"].astype(str).tolist()
    assert any(d.startswith("stale snapshot") for d in details)
    at = max(s.last_break_ts for s in state.values()) + 10**12
    for product in PRODUCTS:
        stored = book_l3_at(store, "coinbase", product, at)
        assert stored.attrs["update_id"] == sim.feed.sequence(product)
        truth = sim.book(product)
        for side in (BID, ASK):
            mine = stored[stored["side"] == side]
            rows = list(zip(mine["price"], mine["order_id"], mine["size"], strict=True))
            assert same(rows, truth[side]), (product, side)
