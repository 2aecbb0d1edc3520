"""Simulator → ``hundi collect`` → embedded + Cassandra + KairosDB at once, on the real servers.

The outage test stops both real servers for ~20 s in the middle of a collection and starts them
again: the collector must keep reading, spool, drain after recovery, and end with every record in
every store and the accounting balanced.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest
from test_end_to_end import SYMBOLS, collect_args, normalized

import hundi
from children import Child, spawn
from hundi.records import Channel
from hundi.simulator.process import SimulatorProcess
from stored import anything_stored, read_channel

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
COUNTED = [c for c in Channel if c is not Channel.EVENTS]


def services() -> ModuleType:
    """``services/manage.py``: how the tests stop and restart the real servers."""
    spec = importlib.util.spec_from_file_location("hundi_services", REPO / "services" / "manage.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def stored_counts(store: str, exchange: str = "binance") -> dict[str, int]:
    return {c.value: len(read_channel(store, exchange, c.value)) for c in COUNTED}


def assert_same_rows(expected: pd.DataFrame, actual: pd.DataFrame, channel: Channel) -> None:
    """Cassandra gives back exactly what the embedded store holds (values, not just counts)."""
    key = ["symbol", *[f for f in _identity(channel)]]
    left = _plain(expected).reset_index().sort_values(["ts", *key]).reset_index(drop=True)
    right = _plain(actual).reset_index().sort_values(["ts", *key]).reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right[left.columns], check_dtype=False, obj=channel.value)


def _identity(channel: Channel) -> tuple[str, ...]:
    from hundi.records import RECORD_TYPES

    return tuple(RECORD_TYPES[channel].IDENTITY)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as strings, so dtype choices of the two stores do not matter."""
    out = frame.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.CategoricalDtype):
            out[name] = out[name].astype(str)
    return out


def kairos_trade_count(kairosdb_url: str, symbol: str, start: datetime) -> int:
    """Trades KairosDB holds for a symbol, from its per-millisecond trade aggregates."""
    aggregates = hundi.read(
        kairosdb_url, exchange="binance", symbol=symbol, channel="trades", start=start
    )
    return int(aggregates["count"].sum())


def trades_stored(store: Path) -> bool:
    return (
        anything_stored(store) and not hundi.read(store, exchange="binance", channel="trades").empty
    )


def wait_for(condition: Callable[[], bool], child: Child, timeout_s: float, what: str) -> None:
    """Poll ``condition`` until true; fail naming ``what`` on timeout or if ``child`` exits."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert child.poll() is None, f"the collector exited ({child.returncode}) waiting for {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:g}s"
        time.sleep(0.2)


def run_collect(
    args: list[str], tmp: Path, env: dict[str, str], timeout: float
) -> tuple[dict[str, Any], str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=tmp, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    summary: dict[str, Any] = json.loads((tmp / "summary.json").read_text())
    return summary, done.stderr


def check_all_stores(summary: dict[str, Any], stores: list[str], kairosdb_url: str) -> None:
    frames = summary["frames"]
    assert summary["balanced"] and frames["received"] > 0
    for entry in summary["stores"]:
        assert entry["lost"] == {} and entry["spooled"] == {}, entry
    embedded, cassandra = stores
    per_store = [stored_counts(store) for store in stores]
    assert per_store[0] == per_store[1], per_store
    for channel in COUNTED:
        assert per_store[0][channel.value] == summary["records"][channel.value], channel
        if not per_store[0][channel.value]:
            continue  # neither store holds it (orders, fills: not collected here)
        assert_same_rows(
            hundi.read(embedded, exchange="binance", channel=channel.value),
            hundi.read(cassandra, exchange="binance", channel=channel.value),
            channel,
        )
    start = hundi.read(embedded, exchange="binance", channel="trades").index.min()
    for native in SYMBOLS:
        symbol = normalized(native, "spot")
        trades = hundi.read(embedded, exchange="binance", symbol=symbol, channel="trades")
        # HTTP 204 means queued: give KairosDB's ingest queue a bounded time to catch up.
        deadline = time.monotonic() + 30
        while (seen := kairos_trade_count(kairosdb_url, symbol, start.to_pydatetime())) != len(
            trades
        ):
            assert seen < len(trades), f"{symbol}: KairosDB counts {seen} > {len(trades)} trades"
            assert time.monotonic() < deadline, f"{symbol}: KairosDB has {seen} of {len(trades)}"
            time.sleep(0.5)


def test_collect_into_embedded_cassandra_and_kairosdb_at_once(
    cassandra_keyspace: str, kairosdb_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "HUNDI_SPOOL_DIR": str(tmp_path / "spool")}
    with SimulatorProcess(["--market", "spot", "--rate", "300", "--seed", "11"]) as sim:
        args = collect_args(sim, "spot", tmp_path / "data", "--store", cassandra_keyspace)
        args += ["--store", kairosdb_url, "--duration", "5"]
        args += ["--summary-json", str(tmp_path / "summary.json")]
        summary, _ = run_collect(args, tmp_path, env, timeout=120)
    records = [entry["records"] for entry in summary["stores"]]
    assert records[0] == records[1] == records[2], records  # every store took every record
    assert all(entry["outages"] == 0 for entry in summary["stores"])
    check_all_stores(summary, [str(tmp_path / "data"), cassandra_keyspace], kairosdb_url)


def test_both_servers_down_for_20s_mid_collection_loses_nothing(
    cassandra_keyspace: str, kairosdb_url: str, tmp_path: Path
) -> None:
    manage = services()
    spool = tmp_path / "spool"
    env = {**os.environ, "HUNDI_SPOOL_DIR": str(spool), "HUNDI_SPILL_AFTER": "2"}
    with SimulatorProcess(["--market", "spot", "--rate", "300", "--seed", "12"]) as sim:
        args = collect_args(sim, "spot", tmp_path / "data", "--store", cassandra_keyspace)
        args += ["--store", kairosdb_url, "--summary-json", str(tmp_path / "summary.json")]
        collector = spawn(args, cwd=tmp_path, env=env)
        try:
            # The outage starts once the collector is storing (its stores are open): on a loaded
            # box that can take well over the few seconds it takes on a quiet one.
            wait_for(
                lambda: trades_stored(tmp_path / "data"), collector, 120, "first trades stored"
            )
            down_at = datetime.now(UTC)
            manage.stop("kairosdb")  # first, so it hands its queue to Cassandra
            manage.stop("cassandra")
            outage_ends = time.monotonic() + 20
            wait_for(lambda: bool(list(spool.rglob("*.batch"))), collector, 60, "spooling")
            while time.monotonic() < outage_ends:  # the scenario: both servers down for 20 s
                assert collector.poll() is None, "the collector died during the outage"
                time.sleep(0.5)
            assert list(spool.rglob("*.batch")), "nothing was spooled during the outage"
            manage.start("cassandra")
            manage.start("kairosdb")
            wait_for(lambda: not list(spool.rglob("*.batch")), collector, 180, "spool drained")
            collector.send_signal(signal.SIGINT)
            collector.wait(timeout=120)
        finally:
            if collector.poll() is None:
                collector.kill()
            manage.start("cassandra")
            manage.start("kairosdb")
    stderr = collector.stderr_text()
    assert collector.returncode == 0, stderr
    assert "Traceback" not in stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    outages = {entry["store"]: entry["outages"] for entry in summary["stores"]}
    assert sum(1 for n in outages.values() if n >= 1) == 2, outages  # both network stores
    assert all(entry["spooled_total"] > 0 for entry in summary["stores"] if entry["outages"])
    trades = hundi.read(tmp_path / "data", exchange="binance", channel="trades")
    assert (trades.index > pd.Timestamp(down_at) + pd.Timedelta(seconds=5)).sum() > 100
    check_all_stores(summary, [str(tmp_path / "data"), cassandra_keyspace], kairosdb_url)
