"""Sample data for notebooks: the Binance simulator and ``hundi collect``, spot and USD-M at once.

Both markets are collected concurrently (one simulator and one collector process per market)
into one embedded store, so spot and perpetual data overlap in time (what a basis needs).
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from hundi.research._source import ResearchError
from hundi.simulator.process import SimulatorProcess

CHANNELS = "trades,bbo,ticker,book,candles"


def collect_simulated(
    store: str | os.PathLike[str],
    *,
    markets: tuple[str, ...] = ("spot", "usdm"),
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    seconds: float = 5.0,
    rate: int = 400,
    seed: int = 7,
    series: str | None = "bars:1s,book:10@1s",
) -> Path:
    """Collect ``seconds`` of simulated ``markets`` into ``store``; returns the store path.

    ``series``: derived series the collectors compute live and store (``--series``).
    """
    target = Path(store).resolve()
    target.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        collectors = []
        for market in markets:
            sim = stack.enter_context(
                SimulatorProcess(["--market", market, "--rate", str(rate), "--seed", str(seed)])
            )
            args = [
                sys.executable, "-m", "hundi", "collect", "binance", "--market", market,
                "--symbols", ",".join(symbols), "--channels", CHANNELS,
                "--endpoint", sim.ws_url, "--rest-endpoint", sim.rest_url,
                "--store", str(target), "--flush-interval", "0.5", "--duration", str(seconds),
            ]  # fmt: skip
            if series:
                args += ["--series", series]
            collectors.append(
                (
                    market,
                    subprocess.Popen(
                        args,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        text=True,
                        cwd=target.parent,
                    ),
                )
            )
        for market, process in collectors:
            _, errors = process.communicate(timeout=seconds + 60)
            if process.returncode != 0:
                raise ResearchError(
                    f"collecting simulated {market} failed ({process.returncode}): "
                    f"{errors.strip()[-500:]}"
                )
    return target
