"""``hundi simulate kraken`` as a process and ``hundi collect kraken`` against it, end to end on
the command line; bad options and bad symbols are one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from hundi.simulator import SimulatorProcess
from hundi.simulator.cli import simulate


@pytest.mark.slow
def test_hundi_collect_kraken_against_the_simulator(tmp_path: Path) -> None:
    args = ["--rate", "100", "--seed", "4", "--fault", "checksum:1"]
    with SimulatorProcess(args, venue="kraken") as sim:
        summary_path = tmp_path / "summary.json"
        done = subprocess.run(
            [sys.executable, "-m", "hundi", "collect", "kraken",
             "--symbols", "BTC/USD,ETH/USD", "--channels", "trades,bbo,book,candles",
             "--endpoint", f"{sim.ws_url}/v2", "--rest-endpoint", sim.rest_url,
             "--store", str(tmp_path / "data"),
             "--option", "depth=25", "--flush-interval", "0.2", "--duration", "4",
             "--summary-json", str(summary_path)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        with urllib.request.urlopen(f"{sim.rest_url}/sim/stats", timeout=5) as r:
            truth = json.loads(r.read())
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    assert summary["balanced"]
    assert summary["records"]["trades"] > 0 and summary["records"]["book"] > 0
    # every corrupted level that reached the collector was a gap, resynced on the connection
    delivered = [f for f in truth["faults"] if f["kind"] == "checksum"]
    assert delivered and summary["gaps"] >= 1
    assert any(
        len(c["book_subscriptions"]) > len(set(c["book_subscriptions"]))
        for c in truth["connections"]
    )
    assert "Traceback" not in done.stderr


def test_simulator_bad_options_are_clean_errors() -> None:
    runner = CliRunner()
    for args, message in (
        (["kraken", "--fault", "gap:1"], "unknown fault 'gap:1'"),
        (["kraken", "--fault", "checksum"], "unknown fault 'checksum'"),
        (["kraken", "--symbols", "BTCUSD"], "Kraken pairs"),
        (["kraken", "--rate", "0"], "must be > 0"),
    ):
        result = runner.invoke(simulate, args)
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbols", "BTCUSD"], "not a Kraken pair"),
        (["--symbols", "BTC/USD", "--option", "depth=50"], "depth must be one of"),
        (["--symbols", "BTC/USD", "--market", "usdm"], "spot market only"),
    ],
)
def test_collect_config_errors_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hundi", "collect", "kraken", *args, "--duration", "1",
         "--store", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
