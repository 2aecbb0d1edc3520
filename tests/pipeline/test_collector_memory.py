"""What a collecting process holds: pandas is never loaded by ``hundi collect`` (~45 MB of its
memory, for nothing it does), though every part of the embedded store's write path runs:
the log, Parquet parts at every flush, compaction of parts and the parting at the stop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_collect_never_loads_pandas(tmp_path: Path) -> None:
    """Twice into one store: the second run's restart look-up (the newest stored position of
    every stream, to describe the hole between the runs) is the read a collector does."""
    store = tmp_path / "data"
    # parts at every flush and a merge every 2 parts: compaction runs within seconds
    url = f"file://{store}?part_bytes=0&compact_fanout=2"
    with SimulatorProcess(["--market", "spot", "--rate", "2000", "--seed", "5"]) as sim:
        args = [
            sys.executable, "-c", CHILD, "collect", "binance", "--market", "spot",
            "--symbols", "BTCUSDT,ETHUSDT", "--channels", "trades,bbo,book",
            "--endpoint", sim.ws_url, "--rest-endpoint", sim.rest_url, "--store", url,
            "--flush-interval", "0.2", "--duration", "4",
        ]  # fmt: skip
        for run in ("first", "restart"):
            done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=tmp_path)
            assert done.returncode == 0, done.stderr[-3000:]
            loaded = json.loads(done.stdout.strip().splitlines()[-1])
            assert loaded == {"exit": 0, "pandas": False, "dataset": False}, (run, done.stderr)
    trades = read_channel(store, "binance", "trades")
    assert len(trades) > 0  # it did collect (read here, in the test's process, with pandas)
    events = read_channel(store, "binance", "events")
    restart_gaps = events[events["detail"].str.startswith("restart:", na=False)]
    assert len(restart_gaps) > 0, "the restart look-up did not run: " + str(events["detail"])
    parts = [part for path in store.rglob("*.parquet") if (part := parse_part(path))]
    merged = [part for part in parts if part.level > 0]
    assert merged, "no compaction ran: the test did not cover the merge path"
