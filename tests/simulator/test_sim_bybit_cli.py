"""``hundi simulate bybit`` as a process and ``hundi collect bybit`` against it, end to end on
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
def test_hundi_collect_bybit_linear_against_the_simulator(tmp_path: Path) -> None:
    args = ["--rate", "100", "--seed", "4", "--fault", "skip:1", "--fault", "restart:1.5"]
    with SimulatorProcess(args, venue="bybit") as sim:
        summary_path = tmp_path / "summary.json"
        done = subprocess.run(
            [sys.executable, "-m", "hundi", "collect", "bybit", "--market", "linear",
             "--symbols", "BTCUSDT,ETHUSDT",
             "--channels", "trades,bbo,book,ticker,derivative_ticker,liquidations,instruments",
             "--endpoint", f"{sim.ws_url}/v5/public/linear", "--rest-endpoint", sim.rest_url,
             "--store", str(tmp_path / "data"),
             "--option", "depth=50", "--flush-interval", "0.2", "--duration", "4",
             "--summary-json", str(summary_path)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        with urllib.request.urlopen(f"{sim.rest_url}/sim/stats", timeout=5) as r:
            truth = json.loads(r.read())
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    assert summary["balanced"]
    records = summary["records"]
    assert records["trades"] > 0 and records["book"] > 0 and records["derivative_ticker"] > 0
    assert records["instruments"] == 2
    assert [f for f in truth["faults"] if f["kind"] == "skip"] and summary["gaps"] >= 1
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_hundi_collect_bybit_inverse_against_the_simulator(tmp_path: Path) -> None:
    with SimulatorProcess(["--rate", "100", "--symbols", "BTCUSD"], venue="bybit") as sim:
        summary_path = tmp_path / "summary.json"
        done = subprocess.run(
            [sys.executable, "-m", "hundi", "collect", "bybit", "--market", "inverse",
             "--symbols", "BTCUSD", "--channels", "trades,book,derivative_ticker",
             "--endpoint", f"{sim.ws_url}/v5/public/inverse", "--rest-endpoint", sim.rest_url,
             "--store", str(tmp_path / "data"), "--flush-interval", "0.2", "--duration", "3",
             "--summary-json", str(summary_path)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    assert summary["balanced"] and summary["records"]["trades"] > 0


def test_simulator_bad_options_are_clean_errors() -> None:
    runner = CliRunner()
    for args, message in (
        (["bybit", "--fault", "gap:1"], "unknown fault 'gap:1'"),
        (["bybit", "--fault", "drop"], "unknown fault 'drop'"),
        (["bybit", "--symbols", "BTC/USD"], "not a USDT, USDC or USD symbol"),
        (["bybit", "--rate", "0"], "must be > 0"),
    ):
        result = runner.invoke(simulate, args)
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbols", "btc/usdt"], "is not a Bybit symbol"),
        (["--symbols", "BTCUSDT", "--market", "linear", "--option", "depth=25"],
         "depth must be one of"),
        (["--symbols", "BTCUSDT", "--market", "usdm"], "bybit market must be"),
        (["--symbols", "BTCUSDT", "--market", "spot", "--channels", "liquidations"],
         "bybit spot has no liquidations"),
    ],
)  # fmt: skip
def test_collect_config_errors_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hundi", "collect", "bybit", *args, "--duration", "1",
         "--store", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
