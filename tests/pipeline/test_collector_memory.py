"""What a collecting process holds: pandas is never loaded by ``hundi collect`` (~45 MB of its
memory, for nothing it does), though every part of a store's write path runs: for the
embedded store the log, Parquet parts at every flush, compaction of parts and the parting at
the stop; for Cassandra the chunk encoding (several streams per flush) and the restart
look-up; for KairosDB its points; for both the outage spool."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import hundi
from hundi.simulator.process import SimulatorProcess
from hundi.stores.embedded.layout import parse_part
from stored import read_channel

pytestmark = pytest.mark.slow

# Runs ``hundi collect`` in this interpreter, then says which heavy modules it loaded.
CHILD = """
import json, sys
from hundi.cli import main
try:
    main(sys.argv[1:], prog_name="hundi")
except SystemExit as stop:
    code = stop.code
print(json.dumps({"exit": code, "pandas": "pandas" in sys.modules,
                  "dataset": "pyarrow.dataset" in sys.modules}))
"""


def _collect(
    sim: SimulatorProcess, store_url: str, symbols: str, channels: str, duration: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """One ``hundi collect`` in a child that reports the heavy modules it loaded."""
    return subprocess.run([
        sys.executable, "-c", CHILD, "collect", "binance", "--market", "spot",
        "--symbols", symbols, "--channels", channels, "--endpoint", sim.ws_url,
        "--rest-endpoint", sim.rest_url, "--store", store_url, "--flush-interval", "0.2",
        "--duration", duration,
    ], capture_output=True, text=True, timeout=120, cwd=cwd)  # fmt: skip


def collect_twice(store_url: str, cwd: Path) -> None:
    """``hundi collect`` twice into one store (the second run's restart look-up, the newest
    stored position of every stream, is the read a collector does); neither loads pandas or
    pyarrow.dataset."""
    with SimulatorProcess(["--market", "spot", "--rate", "2000", "--seed", "5"]) as sim:
        for run in ("first", "restart"):
            done = _collect(sim, store_url, "BTCUSDT,ETHUSDT", "trades,bbo,book", "4", cwd)
            assert done.returncode == 0, done.stderr[-3000:]
            loaded = json.loads(done.stdout.strip().splitlines()[-1])
            assert loaded == {"exit": 0, "pandas": False, "dataset": False}, (run, done.stderr)


def test_collect_never_loads_pandas(tmp_path: Path) -> None:
    store = tmp_path / "data"
    # parts at every flush and a merge every 2 parts: compaction runs within seconds
    collect_twice(f"file://{store}?part_bytes=0&compact_fanout=2", tmp_path)
    trades = read_channel(store, "binance", "trades")
    assert len(trades) > 0  # it did collect (read here, in the test's process, with pandas)
    events = read_channel(store, "binance", "events")
    restart_gaps = events[events["detail"].str.startswith("restart:", na=False)]
    assert len(restart_gaps) > 0, "the restart look-up did not run: " + str(events["detail"])
    parts = [part for path in store.rglob("*.parquet") if (part := parse_part(path))]
    merged = [part for part in parts if part.level > 0]
    assert merged, "no compaction ran: the test did not cover the merge path"


def test_collect_into_cassandra_never_loads_pandas(tmp_path: Path, cassandra_keyspace: str) -> None:
    """Two streams a flush: the chunk split by stream and hour is the columnar one, not Arrow's
    group-by (it loads pyarrow.dataset and pandas)."""
    collect_twice(cassandra_keyspace, tmp_path)
    trades = hundi.read(cassandra_keyspace, exchange="binance", channel="trades")
    assert set(trades["symbol"]) == {"BTC-USDT", "ETH-USDT"}


def test_collect_into_cassandra_spools_without_pandas(tmp_path: Path) -> None:
    """The store down all along: every flush goes to the outage spool."""
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        url = f"cassandra://127.0.0.1:{bound.getsockname()[1]}/hundi_down"
        with SimulatorProcess(["--market", "spot", "--rate", "2000", "--seed", "5"]) as sim:
            done = _collect(sim, url, "BTCUSDT", "trades,bbo", "3", tmp_path)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == {"exit": 1, "pandas": False, "dataset": False}, done.stderr[-3000:]
    assert "records spooled" in done.stderr or "spooling to" in done.stderr, done.stderr[-3000:]
    assert any((tmp_path / "spool").rglob("*")), "nothing was spooled"


def test_collect_into_kairosdb_never_loads_pandas(tmp_path: Path, kairosdb_url: str) -> None:
    prefix = f"mem{uuid.uuid4().hex[:12]}"
    collect_twice(f"{kairosdb_url}?prefix={prefix}", tmp_path)
    trades = hundi.read(f"{kairosdb_url}?prefix={prefix}", exchange="binance", channel="trades")
    assert len(trades) > 0
