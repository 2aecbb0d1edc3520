"""Collect a few seconds from the real simulator into an embedded store (research and notebook
tests share it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hundi.simulator.process import SimulatorProcess

CHANNELS = "trades,bbo,ticker,book,candles"


def collect(
    market: str, store: Path, *, seconds: float = 3, seed: int = 5, fault: str = ""
) -> None:
    """``hundi collect`` against a simulator of ``market`` (BTCUSDT, ETHUSDT) into ``store``."""
    args = ["--market", market, "--rate", "400", "--seed", str(seed)]
    if fault:
        args += ["--fault", fault]
    with SimulatorProcess(args) as sim:
        done = subprocess.run(
            [sys.executable, "-m", "hundi", "collect", "binance", "--market", market,
             "--symbols", "BTCUSDT,ETHUSDT", "--channels", CHANNELS, "--endpoint", sim.ws_url,
             "--rest-endpoint", sim.rest_url, "--store", str(store), "--flush-interval", "0.2",
             "--duration", str(seconds)],
            capture_output=True, text=True, timeout=seconds + 60, cwd=store.parent,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
