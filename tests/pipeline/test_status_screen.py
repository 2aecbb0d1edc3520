"""``hundi collect``'s status as a user sees it: piped (a slow plain line) and on a terminal
(a pseudo-terminal: prices at the symbol's precision, a final screen without ``nan``)."""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import struct
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from children import Child, spawn
from hundi.exchanges.base import RecordSink, VenueConfig
from hundi.exchanges.binance import BinanceVenue
from hundi.pipeline.collector import Collector
from hundi.pipeline.status import StatusReporter, decimals_of, format_price
from hundi.records import Channel
from hundi.simulator.process import SimulatorProcess

HUNDI = str(Path(sys.executable).parent / "hundi")
STATUS_LINE = re.compile(r"^\d\d:\d\d:\d\d frames \d+ ", re.MULTILINE)
# a screen's first line; a redraw starts after cursor moves, not on a new line
SCREEN_TOP = re.compile(r"\d\d:\d\d:\d\d frames \d+ ")
ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07|[()][0-9A-Za-z])")


@pytest.fixture(scope="module")
def simulator() -> Any:
    # BTCUSDT: ticks of 0.01 near 60 000, where ``:g`` (6 digits) hid the spread
    with SimulatorProcess(["--rate", "400", "--symbols", "BTCUSDT,ETHUSDT"]) as sim:
        yield sim


def collect(
    sim: SimulatorProcess, tmp: Path, duration: float, env: dict[str, str], **popen: Any
) -> Child:
    return spawn(
        [
            HUNDI,
            "collect",
            "binance",
            "--symbols",
            "BTCUSDT,ETHUSDT",
            "--channels",
            "trades,bbo,book",
            "--endpoint",
            sim.ws_url,
            "--rest-endpoint",
            sim.rest_url,
            "--store",
            tmp / "data",
            "--duration",
            str(duration),
        ],
        env={
            **os.environ,
            "HUNDI_LOG_PATH": str(tmp / "logs" / "hundi.log"),
            "HUNDI_LOG_UPDATE_INTERVAL": "0.2",  # the screen's (and the health file's) pace
            **env,
        },
        cwd=tmp,
        **popen,
    )


def test_decimals_follow_the_exchange_prices_not_float_noise() -> None:
    assert decimals_of(59999.62) == 2
    assert decimals_of(60000.0) == 0
    assert decimals_of(0.00012345) == 8
    assert decimals_of((59999.61 + 59999.63) / 2) == 2  # a mid's float noise is no precision
    assert decimals_of(0.1 + 0.2) == 1
    assert (format_price(59999.62, 2), format_price(59999.6, 2)) == ("59999.62", "59999.60")
    assert format_price(float("nan"), 2) == "-"  # an empty side, never "nan"


def test_a_book_without_data_shows_why_it_is_not_synced() -> None:
    """Before any frame: the book's row is there (it was missing: no symbol view yet), says
    what it waits for, and shows no ``nan``."""
    venue = BinanceVenue(VenueConfig("spot", ("BTCUSDT",), (Channel.TRADES, Channel.BOOK)))
    reporter = StatusReporter(Collector([venue], []), interval=1.0, live=False)
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(reporter.render())
    row = next(line for line in console.export_text().splitlines() if "BTC-USDT" in line)
    assert "not synced: waiting for the first diff" in row, row
    assert not re.search(r"\bnan\b", row), row


@pytest.mark.slow
def test_piped_status_is_one_line_per_status_interval(
    simulator: SimulatorProcess, tmp_path: Path
) -> None:
    """Piped, the screen's 0.2 s pace no longer applies: 7 s at a 2 s line interval is 3 lines
    (the old reporter printed one per refresh: 35); at the default (60 s) a short run prints
    none, only the summary."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    timed = collect(simulator, tmp_path / "a", 7, {"HUNDI_STATUS_LINE_INTERVAL": "2"})
    default = collect(simulator, tmp_path / "b", 3, {})
    for proc in (timed, default):
        proc.wait(timeout=120)
        assert proc.returncode == 0, proc.stderr_text()
    out = timed.stdout_text()
    lines = STATUS_LINE.findall(out)
    assert 2 <= len(lines) <= 3, out  # at 2, 4, 6 s; a loaded machine may lose the last
    assert "books 2/2 synced" in out and "collected for" in out
    assert not STATUS_LINE.search(default.stdout_text()), default.stdout_text()
    assert "collected for" in default.stdout_text()


def read_terminal(master: int, proc: Child, timeout: float) -> str:
    """Everything the child writes to the pseudo-terminal until it exits (read as it comes:
    a full terminal buffer would block the child)."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    text = b"".join(chunks).decode("utf-8", "replace")
    return ANSI.sub("", text).replace("\r", "")


@pytest.mark.slow
def test_terminal_screen_shows_the_spread_and_the_books_as_at_stop(
    simulator: SimulatorProcess, tmp_path: Path
) -> None:
    master, terminal = os.openpty()
    rows, columns = 60, 180
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    try:
        proc = collect(
            simulator,
            tmp_path,
            5,
            {"TERM": "xterm", "COLUMNS": str(columns), "LINES": str(rows)},
            stdout=terminal,
        )
        os.close(terminal)  # the child holds it now; EOF once it exits
        screen = read_terminal(master, proc, timeout=120)
    finally:
        os.close(master)
    assert proc.returncode == 0, proc.stderr_text()
    # On a terminal the screen keeps the fast pace: 5 s at 0.2 s is many frames, not 1 line.
    frames = [m.start() for m in SCREEN_TOP.finditer(screen)]
    assert len(frames) >= 5, screen[-3000:]
    final = screen[frames[-1] : screen.index("collected for")]
    assert not re.search(r"\bnan\b", final), final  # (binance has "nan" in it)
    for symbol in ("BTC-USDT", "ETH-USDT"):
        row = next(line for line in final.splitlines() if f"binance:{symbol}" in line)
        # synced, and bid / ask at the tick's two decimals, the spread visible
        assert "synced" in row and "not synced" not in row, row
        bid, ask = map(float, re.findall(r"(\d+\.\d{2}) / (\d+\.\d{2})", row)[0])
        assert bid < ask, row


def test_the_status_line_shows_a_backfill_in_progress() -> None:
    venue = BinanceVenue(VenueConfig("spot", ("BTCUSDT",), (Channel.TRADES,)))
    reporter = StatusReporter(Collector([venue], []), interval=1.0, live=False)
    assert "backfilling" not in reporter.line()
    key = venue.connections()[0].key
    now = time.time_ns()
    for agg_id in (100, 105):  # ids 101..104 missed: fetched back over REST
        frame = (
            f'{{"stream":"btcusdt@aggTrade","data":{{"e":"aggTrade","E":{now // 1_000_000},'
            f'"s":"BTCUSDT","a":{agg_id},"p":"100.5","q":"0.25","f":{agg_id},"l":{agg_id},'
            f'"T":{now // 1_000_000},"m":true,"M":true}}}}'
        ).encode()
        venue.receive(key, frame, now, RecordSink())
    assert reporter.line().endswith(" backfilling 4 trade ids"), reporter.line()
