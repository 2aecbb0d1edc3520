"""Kraken trades fetched back over REST against the simulator, over real sockets: trades
withheld from the WebSocket (``skip_trade``) are trade-id gaps the collector fetches back from
the simulator's REST ``Trades`` (through ``EGeneral:Too many requests`` refusals), so the store
holds exactly the simulator's trades, each once, with a ``backfilled`` event per gap."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from hundi.accounting import Accounting
from hundi.capture.infer import infer_config
from hundi.capture.reader import read_capture
from hundi.capture.replay import replay_events
from hundi.connection.manager import ConnectionSettings
from hundi.exchanges.base import VenueConfig
from hundi.exchanges.kraken import KrakenProtocol, KrakenVenue
from hundi.pipeline.collector import Collector, CollectorSettings
from hundi.records import BUY, SELL, Channel
from hundi.simulator import SimulatorProcess
from hundi.simulator.kraken.server import KrakenSimConfig, KrakenSimulator
from hundi.stores.embedded import EmbeddedStore

pytestmark = pytest.mark.slow

PAIRS = ("BTC/USD", "ETH/USD")


async def until(condition: Callable[[], bool], within: float = 90.0) -> None:
    """Wait for ``condition`` with a deadline generous for a loaded machine."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def sim() -> AsyncIterator[KrakenSimulator]:
    faults = {"skip_trade": 0.3, "rate_limit": 1.5}
    simulator = KrakenSimulator(KrakenSimConfig(symbols=PAIRS, rate=300, faults=faults))
    simulator.faults_on = False  # on once subscribed: a trade withheld before is in the snapshot
    await simulator.start()
    yield simulator
    await simulator.stop()


def skipped(sim: KrakenSimulator) -> list[tuple[str, int]]:
    return [(f["symbol"], f["trade_id"]) for f in sim.fault_log if f["kind"] == "skip_trade"]


async def test_withheld_trades_are_fetched_back_and_the_store_equals_the_venue(
    sim: KrakenSimulator, tmp_path: Path
) -> None:
    config = VenueConfig(
        "spot", PAIRS, (Channel.TRADES, Channel.EVENTS), endpoint=f"{sim.ws_url}/v2",
        rest_endpoint=sim.rest_url, options={"rest_interval_ms": "100"},
    )  # fmt: skip
    venue = KrakenVenue(config)
    assert isinstance(venue, KrakenProtocol)
    store = EmbeddedStore(str(tmp_path))
    settings = CollectorSettings(
        flush_interval=0.2, max_batch_records=20_000, queue_batches=16, shutdown_timeout_s=20.0,
        connection=ConnectionSettings(backoff_initial_s=0.05, stale_after_s=10.0, tick_s=0.02),
    )  # fmt: skip
    collector = Collector([venue], [store], settings=settings)
    task = asyncio.ensure_future(collector.run())

    def seen(pair: str, trade_id: int) -> bool:
        return venue.last_trade_id.get(pair, -1) > trade_id  # a later trade showed the jump

    try:
        await until(lambda: len(venue.last_trade_id) == len(PAIRS))
        sim.faults_on = True
        await until(
            lambda: (
                sum(seen(p, t) for p, t in skipped(sim)) >= 6
                and any(f["kind"] == "rate_limit" for f in sim.fault_log)
            )
        )
        sim.faults_on = False  # every withheld trade is followed by others: all are gaps
        await until(lambda: all(seen(p, t) for p, t in skipped(sim)))
        sim.paused = True
        await until(
            lambda: (
                venue.owed_ids() == 0
                and all(venue.last_trade_id.get(p) == sim.trade_ids[p][-1] for p in PAIRS)
            )
        )
    finally:
        collector.stop("test done")
        summary = await asyncio.wait_for(task, 60)
    assert summary["balanced"] and summary["frames"]["rejected"] == 0
    trades = store.read(exchange="kraken", symbol=None, channel=Channel.TRADES)
    events = store.read(exchange="kraken", symbol=None, channel=Channel.EVENTS)
    rows = [tuple(r) for r in events[["kind", "native_symbol", "expected", "received"]]
            .itertuples(index=False)]  # fmt: skip
    assert not [r for r in rows if r[0] == "unrecoverable"]
    for pair in PAIRS:
        mine = trades[trades["native_symbol"] == pair].reset_index().sort_values("trade_id")
        mine["ts"] = mine["ts"].astype("int64")  # the index: a time
        ids = [int(i) for i in mine["trade_id"]]
        assert len(ids) == len(set(ids)), "a trade stored twice"
        generated = sim.trade_ids[pair]
        assert ids == generated[generated.index(ids[0]) :]  # every trade since the first
        # each stored trade is the venue's: price, size, side and time as the REST history
        history = sim.history[pair]
        by_id = {row[6]: (row, ns) for row, ns in zip(history.rows, history.times, strict=True)}
        for trade_id, price, size, side, ts in mine[
            ["trade_id", "price", "size", "side", "ts"]
        ].itertuples(index=False):
            row, ns = by_id[int(trade_id)]
            assert (price, size, ts) == (float(row[0]), float(row[1]), ns)
            assert side == (BUY if row[3] == "b" else SELL)
        gaps = [(lo, hi) for kind, p, lo, hi in rows if kind == "gap" and p == pair]
        backfilled = [(lo, hi) for kind, p, lo, hi in rows if kind == "backfilled" and p == pair]
        withheld = [t for p, t in skipped(sim) if p == pair]
        assert withheld and gaps
        for trade_id in withheld:  # a gap, then fetched back
            assert any(lo <= trade_id < hi for lo, hi in gaps)
            assert any(lo <= trade_id < hi for lo, hi in backfilled)
    assert sim.stats()["rest_trades_requests"] >= len(backfilled)


def test_hundi_collect_fetches_withheld_trades_back(tmp_path: Path) -> None:
    """The CLI end to end: ``--rest-endpoint`` points the backfill at the simulator; the raw
    capture (REST answers included) replays into the same trades and backfilled events."""
    args = ["--rate", "100", "--seed", "5", "--fault", "skip_trade:0.5"]
    with SimulatorProcess(args, venue="kraken") as simulator:
        summary_path = tmp_path / "summary.json"
        done = subprocess.run(
            [sys.executable, "-m", "hundi", "collect", "kraken",
             "--symbols", "BTC/USD,ETH/USD", "--channels", "trades",
             "--endpoint", f"{simulator.ws_url}/v2", "--rest-endpoint", simulator.rest_url,
             "--store", str(tmp_path / "data"), "--option", "rest_interval_ms=100",
             "--flush-interval", "0.2", "--duration", "5", "--summary-json", str(summary_path),
             "--raw", str(tmp_path / "raw")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["balanced"] and summary["gaps"] >= 1
    events = EmbeddedStore(str(tmp_path / "data")).read(
        exchange="kraken", symbol=None, channel=Channel.EVENTS
    )
    kinds = [str(k) for k in events["kind"]]
    assert "backfilled" in kinds
    # every trades gap is fetched back, or said not to be (a stop before its answer)
    gaps = events[(events["kind"] == "gap") & (events["channel"] == "trades")]
    settled = events[events["kind"].isin(["backfilled", "unrecoverable"])]
    for pair, lo, hi in gaps[["native_symbol", "expected", "received"]].itertuples(index=False):
        mine = settled[settled["native_symbol"] == pair]
        for trade_id in range(int(lo), int(hi)):
            assert ((mine["expected"] <= trade_id) & (trade_id < mine["received"])).any()
    # the replay answers each backfill request with the captured page: the same records
    files = sorted((tmp_path / "raw").iterdir())
    protocol = KrakenVenue(infer_config(files, "kraken", None))
    accounting = Accounting()
    replayed: list[Any] = []

    def keep(batch: Mapping[Channel, Sequence[Any]]) -> None:
        replayed.extend(batch.get(Channel.EVENTS, ()))

    replay_events(read_capture(files), protocol, keep, accounting)
    assert accounting.received == summary["frames"]["received"]
    assert accounting.rejected_total == 0
    assert accounting.records["trades"] == summary["records"]["trades"]
    assert sorted(
        (e.kind, e.expected, e.received) for e in replayed if e.kind == "backfilled"
    ) == sorted(
        (str(k), int(lo), int(hi))
        for k, lo, hi in events[events["kind"] == "backfilled"][
            ["kind", "expected", "received"]
        ].itertuples(index=False)
    )


async def test_trades_missed_between_two_runs_are_fetched_back(tmp_path: Path) -> None:
    """A second run on the same store: the trades made while no collector ran (more than the
    subscribe snapshot's 50) are a restart gap, searched back and fetched over REST."""
    simulator = KrakenSimulator(KrakenSimConfig(symbols=PAIRS, rate=300))
    await simulator.start()
    settings = CollectorSettings(
        flush_interval=0.2, max_batch_records=20_000, queue_batches=16, shutdown_timeout_s=20.0,
        connection=ConnectionSettings(backoff_initial_s=0.05, stale_after_s=10.0, tick_s=0.02),
    )  # fmt: skip
    config = VenueConfig(
        "spot", PAIRS, (Channel.TRADES, Channel.EVENTS), endpoint=f"{simulator.ws_url}/v2",
        rest_endpoint=simulator.rest_url, options={"rest_interval_ms": "100"},
    )  # fmt: skip

    async def run(until_done: Callable[[KrakenProtocol], bool]) -> KrakenProtocol:
        venue = KrakenVenue(config)
        assert isinstance(venue, KrakenProtocol)
        collector = Collector([venue], [EmbeddedStore(str(tmp_path))], settings=settings)
        task = asyncio.ensure_future(collector.run())
        try:
            await until(lambda: until_done(venue))
        finally:
            collector.stop("test done")
            summary = await asyncio.wait_for(task, 60)
        assert summary["balanced"]
        return venue

    try:
        first = await run(lambda v: all(len(v.trade_ids[p].holes) == 0 and v.trade_ids[p].last
                                        > 0 for p in PAIRS))  # fmt: skip
        stored_up_to = {p: first.trade_ids[p].last for p in PAIRS}
        await until(lambda: all(simulator.trade_ids[p][-1] > stored_up_to[p] + 80 for p in PAIRS))

        def caught_up(v: KrakenProtocol) -> bool:
            return v.owed_ids() == 0 and all(
                v.trade_ids[p].first == stored_up_to[p] + 1 for p in PAIRS
            )

        await run(caught_up)
    finally:
        await simulator.stop()
    store = EmbeddedStore(str(tmp_path))
    trades = store.read(exchange="kraken", symbol=None, channel=Channel.TRADES)
    events = store.read(exchange="kraken", symbol=None, channel=Channel.EVENTS)
    details = [str(d) for d in events[events["kind"] == "gap"]["detail"]]
    assert sum(d.startswith("restart:") for d in details) == len(PAIRS)
    assert (events["kind"] == "backfilled").sum() >= len(PAIRS)
    assert not (events["kind"] == "unrecoverable").any()
    for pair in PAIRS:
        ids = sorted(int(i) for i in trades[trades["native_symbol"] == pair]["trade_id"])
        generated = simulator.trade_ids[pair]
        assert ids == generated[generated.index(ids[0]) : generated.index(ids[-1]) + 1]
