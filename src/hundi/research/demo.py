"""Sample data for notebooks: the Binance simulator and ``hundi collect``, spot and USD-M at once.

Both markets are collected concurrently (one simulator and one collector process per market)
into one embedded store, so spot and perpetual data overlap in time (what a basis needs).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from hundi.query import NotStored, read
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
    timeout: float = 180.0,
) -> Path:
    """Collect simulated ``markets`` into ``store`` until they hold ``seconds`` of trades that
    overlap in time; returns the store path.

    The collectors run until that is true and are then stopped cleanly (SIGTERM flushes), not for
    a fixed time each: on a loaded machine one collector can start seconds after the other, and
    two fixed windows then barely overlap (a basis or a common bar would have nothing to use).
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
                "--store", str(target), "--flush-interval", "0.5",
            ]  # fmt: skip
            if series:
                args += ["--series", series]
            # stderr to a file: a pipe read only at the end could fill up and stall the collector
            errors = stack.enter_context(tempfile.TemporaryFile("w+"))
            process = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=errors, text=True, cwd=target.parent
            )
            stack.callback(_stop, process)
            collectors.append((market, process, errors))
        deadline = time.monotonic() + timeout
        while _overlap_s(target, markets) < seconds:
            for market, process, errors in collectors:
                if process.poll() is not None:
                    raise ResearchError(_failure(market, process, errors))
            if time.monotonic() > deadline:
                raise ResearchError(
                    f"collecting simulated {', '.join(markets)}: no {seconds:g} s of overlapping "
                    f"trades within {timeout:g} s"
                )
            time.sleep(0.5)
        for _, process, _ in collectors:
            process.send_signal(signal.SIGTERM)
        for market, process, errors in collectors:
            process.wait(timeout=60)
            if process.returncode != 0:
                raise ResearchError(_failure(market, process, errors))
    return target


def _overlap_s(store: Path, markets: tuple[str, ...]) -> float:
    """Seconds during which every market has stored trades (0 until each has some)."""
    if not store.exists():
        return 0.0
    try:  # flushed rows are in the store's log before any Parquet part is written
        trades = read(store, exchange="binance", channel="trades", fields=["symbol"])
    except NotStored:
        return 0.0
    if trades.empty:
        return 0.0
    perpetual = trades["symbol"].astype(str).str.endswith("-PERP")
    spans = []
    for market in markets:
        times = trades.index[perpetual] if market == "usdm" else trades.index[~perpetual]
        if times.empty:
            return 0.0
        spans.append((times.min(), times.max()))
    first = max(lo for lo, _ in spans)
    last = min(hi for _, hi in spans)
    return max(0.0, float((last - first).total_seconds()))


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def _failure(market: str, process: subprocess.Popen[str], errors: IO[str]) -> str:
    errors.flush()
    errors.seek(0)
    said = errors.read().strip()[-2000:]
    return f"collecting simulated {market} failed ({process.returncode}): {said}"
