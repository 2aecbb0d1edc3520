"""Simulator → ``hundi collect`` → a real 3-node Cassandra cluster at LOCAL_QUORUM, with nodes
crashing under it (``kill -9``), compared with an embedded store the same collector writes and
with the simulator's ground truth (every trade id it sent).

One node down: QUORUM still holds, the collector goes on; after the node comes back nothing is
lost or duplicated. Two nodes down: QUORUM is impossible, the writes spool, and after recovery
the spool drains and the data is exact.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest
from test_end_to_end import SYMBOLS, collect_args, normalized, sent_trade_ids, sim_stats
from test_production_stores import COUNTED, assert_same_rows, trades_stored
from test_production_stores import wait_for as wait_while_alive

import hundi
from children import Child, spawn
from hundi.records import RECORD_TYPES, Channel
from hundi.simulator.process import SimulatorProcess
from hundi.stores.base import StoreError
from stored import read_channel

# Node restarts and a spool drain on a loaded 2-core box take minutes: beyond the default 300 s.
pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(900)]

RATE = "300"  # frames/s per stream: real work for three nodes on 2 cores, not a flood


def start_collector(sim: SimulatorProcess, tmp: Path, url: str, env: dict[str, str]) -> Child:
    args = collect_args(sim, "spot", tmp / "data", "--store", url)
    args += ["--summary-json", str(tmp / "summary.json")]
    return spawn(args, cwd=tmp, env=env)


def cassandra_stored(url: str) -> bool:
    try:
        return not hundi.read(url, exchange="binance", channel="trades").empty
    except Exception:  # keyspace or table not created yet, or a node just died
        return False


def keep_collecting(collector: Child, seconds: float) -> None:
    """The scenario's time: the collector must stay alive through it."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        assert collector.poll() is None, "the collector died"
        time.sleep(0.5)


def stop_collector(collector: Child, tmp: Path) -> dict[str, Any]:
    collector.send_signal(signal.SIGINT)
    collector.wait(timeout=180)
    stderr = collector.stderr_text()
    assert collector.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    summary: dict[str, Any] = json.loads((tmp / "summary.json").read_text())
    return summary


def cassandra_key(channel: Channel) -> list[str]:
    """The columns of a row's Cassandra primary key (schema.py): partition (exchange, symbol,
    day of ``ts``) and clustering (``ts``, then the record type's IDENTITY)."""
    identity = [name for name in RECORD_TYPES[channel].IDENTITY if name not in ("exchange", "ts")]
    return ["exchange", "symbol", "ts", *identity]


def differing_rows(embedded: pd.DataFrame, cassandra: pd.DataFrame, channel: Channel) -> str:
    """What tells a lost write from a key collision: embedded rows that share a Cassandra key
    (Cassandra keeps one of them), and rows on one side only."""
    key = cassandra_key(channel)
    left, right = embedded.reset_index(), cassandra.reset_index()
    for frame in (left, right):
        for name in frame.columns:
            if isinstance(frame[name].dtype, pd.CategoricalDtype):
                frame[name] = frame[name].astype(str)
    shared = left[left.duplicated(key, keep=False)]
    merged = left.merge(right[key], on=key, how="outer", indicator=True)
    only = merged[merged["_merge"] != "both"]
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        return (
            f"{channel.value}: {len(left)} embedded rows, {len(right)} in Cassandra; "
            f"{len(shared)} embedded rows share a Cassandra key:\n{shared.head(40)}\n"
            f"{len(only)} rows on one side only (left_only: embedded only):\n{only.head(40)}"
        )


def keep_evidence(tmp: Path, url: str, report_text: str | None = None) -> Path:
    """A failed run's embedded store, summary, spool and collector log, kept outside pytest's
    rotating temporary folders (the keyspace is kept by the ``cluster_url`` fixture)."""
    keyspace = url.rsplit("/", 1)[-1]
    kept = Path(os.environ.get("HUNDI_CLUSTER_EVIDENCE", str(Path.cwd() / ".cluster-failures")))
    kept = kept / keyspace
    kept.mkdir(parents=True, exist_ok=True)
    for name in ("data", "spool", "summary.json"):
        source = tmp / name
        if source.is_dir():
            shutil.copytree(source, kept / name, dirs_exist_ok=True)
        elif source.exists():
            shutil.copy2(source, kept / name)
    if report_text is not None:
        (kept / "differences.txt").write_text(report_text)
    return kept


def check_exact(summary: dict[str, Any], tmp: Path, url: str, stats: dict[str, Any]) -> None:
    """Nothing lost, nothing duplicated: the accounting balances, Cassandra holds exactly the
    embedded store's rows in every channel, and the trades are exactly the simulator's. On a
    difference the rows that differ are printed and the evidence kept (``keep_evidence``)."""
    embedded = tmp / "data"
    assert summary["balanced"] and summary["frames"]["received"] > 0
    for entry in summary["stores"]:
        assert entry["lost"] == {} and entry["spooled"] == {}, entry
    differences = []
    for channel in COUNTED:
        mine = read_channel(embedded, "binance", channel.value)  # empty when none stored
        theirs = read_channel(url, "binance", channel.value)
        # an empty channel's frame may lack the columns: nothing can collide there
        collisions = len(mine) > 0 and mine.reset_index().duplicated(cassandra_key(channel)).any()
        if len(mine) != len(theirs) or len(mine) != summary["records"][channel.value] or collisions:
            differences.append(differing_rows(mine, theirs, channel))
    if differences:
        text = f"summary records {summary['records']}\n" + "\n\n".join(differences)
        kept = keep_evidence(tmp, url, text)
        pytest.fail(f"Cassandra differs from the embedded store (evidence in {kept}):\n{text}")
    for channel in COUNTED:
        if summary["records"][channel.value]:
            assert_same_rows(
                hundi.read(embedded, exchange="binance", channel=channel.value),
                hundi.read(url, exchange="binance", channel=channel.value),
                channel,
            )
    events = hundi.read(embedded, exchange="binance", channel="events")
    assert not (events["kind"] == "gap").any(), "the simulator stream had no holes to record"
    for native in SYMBOLS:
        symbol = normalized(native, "spot")
        stored = hundi.read(url, exchange="binance", symbol=symbol, channel="trades")
        ids = stored["trade_id"].tolist()
        assert len(ids) == len(set(ids)), f"{symbol}: duplicate trades in Cassandra"
        sent = sent_trade_ids(stats, native)
        # ground truth: every id the simulator sent up to the newest stored (the rest was in
        # flight when the collector stopped), each once
        assert sorted(ids) == sorted(i for i in set(sent) if i <= max(ids)), symbol


def trade_count(url: str, timeout_s: float = 120) -> int:
    """Trades stored so far, read at LOCAL_QUORUM. Until the coordinators' failure detector
    marks a killed node down (seconds), requests sent to it time out: retry until a deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return len(hundi.read(url, exchange="binance", channel="trades"))
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def report(scenario: str, summary: dict[str, Any], **extra: int) -> None:
    """The figures docs/cassandra-store.md quotes (shown with ``-s``)."""
    stores = {
        e["store"]: (e["records"], e["outages"], e["spooled_total"]) for e in summary["stores"]
    }
    print(
        f"\n[cluster] {scenario}: records {summary['records']}, "
        f"stores (records, outages, spooled) {stores}, {extra}"
    )


def collector_env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HUNDI_SPOOL_DIR": str(tmp / "spool"),
        "HUNDI_SPILL_AFTER": "2",
        "CASSANDRA_REQUEST_TIMEOUT": "5",
        "CASSANDRA_CONNECT_TIMEOUT": "5",
    }


def test_kill_9_one_node_mid_collection_loses_and_duplicates_nothing(
    manage: ModuleType, cluster_url: str, tmp_path: Path
) -> None:
    victim = 1  # a seed and the driver's first contact point: the hardest one to lose
    killed = False
    with SimulatorProcess(["--market", "spot", "--rate", RATE, "--seed", "21"]) as sim:
        collector = start_collector(sim, tmp_path, cluster_url, collector_env(tmp_path))
        try:
            wait_while_alive(
                lambda: trades_stored(tmp_path / "data") and cassandra_stored(cluster_url),
                collector,
                180,
                "first trades in both stores",
            )
            down_from = trade_count(cluster_url)
            manage.kill_node(victim)
            killed = True
            keep_collecting(collector, 20)
            during = trade_count(cluster_url)  # read at LOCAL_QUORUM from the two left
            manage.restart_nodes([victim])
            killed = False
            keep_collecting(collector, 5)
            summary = stop_collector(collector, tmp_path)
            stats = sim_stats(sim)
        finally:
            if collector.poll() is None:
                collector.kill()
            if killed:
                manage.restart_nodes([victim])
    # QUORUM held with one node down: the collector went on writing into Cassandra
    assert during > down_from + 100, (down_from, during)
    report("one node killed", summary, trades_during_outage=during - down_from)
    check_exact(summary, tmp_path, cluster_url, stats)


def test_two_nodes_down_spools_and_drains_exactly_after_recovery(
    manage: ModuleType, cluster_url: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    victims = [2, 3]
    killed: list[int] = []
    with SimulatorProcess(["--market", "spot", "--rate", RATE, "--seed", "22"]) as sim:
        collector = start_collector(sim, tmp_path, cluster_url, collector_env(tmp_path))
        try:
            wait_while_alive(
                lambda: trades_stored(tmp_path / "data") and cassandra_stored(cluster_url),
                collector,
                180,
                "first trades in both stores",
            )
            for victim in victims:
                manage.kill_node(victim)
                killed.append(victim)
            wait_while_alive(lambda: bool(list(spool.rglob("*.batch"))), collector, 120, "spooling")
            keep_collecting(collector, 15)
            assert list(spool.rglob("*.batch")), "nothing spooled with QUORUM impossible"
            manage.restart_nodes(victims)
            killed.clear()
            wait_while_alive(
                lambda: not list(spool.rglob("*.batch")), collector, 240, "spool drained"
            )
            summary = stop_collector(collector, tmp_path)
            stats = sim_stats(sim)
        finally:
            if collector.poll() is None:
                collector.kill()
            if killed:
                manage.restart_nodes(killed)
    entry = next(e for e in summary["stores"] if e["store"].startswith("cassandra"))
    assert entry["outages"] >= 1 and entry["spooled_total"] > 0, entry
    report("two nodes killed", summary)
    check_exact(summary, tmp_path, cluster_url, stats)
