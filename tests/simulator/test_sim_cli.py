"""The command line: URLs first on stdout, clean stop on SIGTERM or --duration, clean errors."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest
from click.testing import CliRunner

from hundi.simulator import SimulatorProcess
from hundi.simulator.cli import simulate


def test_subprocess_prints_urls_serves_and_stops_on_sigterm() -> None:
    with SimulatorProcess(["--rate", "100", "--symbols", "BTCUSDT", "--seed", "3"]) as sim:
        assert sim.ws_url.startswith("ws://127.0.0.1:")
        assert sim.rest_url == sim.ws_url.replace("ws://", "http://")
        with urllib.request.urlopen(f"{sim.rest_url}/api/v3/ping", timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"{sim.rest_url}/sim/stats", timeout=5) as r:
            assert b'"seed":3' in r.read()
    assert sim.proc is not None and sim.proc.returncode == 0


@pytest.mark.slow
def test_duration_ends_the_run_and_urls_come_first() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hundi.simulator",
            "binance",
            "--market",
            "usdm",
            "--duration",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = out.stdout.splitlines()
    assert lines[0].startswith("ws_url=ws://127.0.0.1:")
    assert lines[1].startswith("rest_url=http://127.0.0.1:")
    assert "market=usdm" in lines
    assert "messages generated" in out.stderr


def test_bad_options_are_clean_errors() -> None:
    runner = CliRunner()
    result = runner.invoke(simulate, ["binance", "--fault", "gapp:1"])
    assert result.exit_code == 2 and "unknown fault 'gapp'" in result.output
    result = runner.invoke(simulate, ["binance", "--fault", "gap"])
    assert result.exit_code == 2 and "needs a parameter" in result.output
    result = runner.invoke(simulate, ["binance", "--rate", "-5"])
    assert result.exit_code == 2 and "rate" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "venue", ["binance", "bitfinex", "bitstamp", "bybit", "coinbase", "kraken", "okx"]
)
def test_a_port_beyond_65535_is_bad_input_for_every_venue(venue: str) -> None:
    result = CliRunner().invoke(simulate, [venue, "--port", "99999"])  # was bind()'s traceback
    assert result.exit_code == 2 and "99999 is not in the range 0<=x<=65535" in result.output
