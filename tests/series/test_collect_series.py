"""Simulator → ``hundi collect --series`` → store; the stored series equal their offline
recomputation from the stored raw data, bit for bit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import hundi
from hundi.query import NotStored
from hundi.series import offline
from hundi.simulator.process import SimulatorProcess

pytestmark = pytest.mark.slow

SERIES = (
    "bars:1s,ticks:20,volume:5,book:5@1s,book:3@250ms,flow:3s@1s,"
    "basis:BTC-USDT/ETH-USDT@1s,grace:300ms"
)
SYMBOLS = ("BTC-USDT", "ETH-USDT")


def collect(tmp: Path, market: str, duration: float) -> dict[str, Any]:
    with SimulatorProcess(["--market", market, "--rate", "300", "--seed", "11"]) as sim:
        args = [
            sys.executable, "-m", "hundi", "collect", "binance", "--market", market,
            "--symbols", "BTCUSDT,ETHUSDT", "--channels", "trades,bbo,book",
            "--endpoint", sim.ws_url, "--rest-endpoint", sim.rest_url,
            "--store", str(tmp / "data"), "--flush-interval", "0.2",
            "--duration", str(duration), "--summary-json", str(tmp / "summary.json"),
            "--series", SERIES,
        ]  # fmt: skip
        done = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60, cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "series computed: bars=" in done.stdout
    summary: dict[str, Any] = json.loads((tmp / "summary.json").read_text())
    return summary


def read(store: Path, channel: str, symbol: str) -> pd.DataFrame:
    frame: pd.DataFrame = hundi.read(store, exchange="binance", symbol=symbol, channel=channel)
    return frame


def only(frame: pd.DataFrame, **where: object) -> pd.DataFrame:
    for column, value in where.items():
        frame = frame[frame[column] == value]
    return frame


def assert_equal(online: pd.DataFrame, recomputed: pd.DataFrame) -> None:
    assert len(online) > 0
    pd.testing.assert_frame_equal(online, recomputed, check_exact=True)


def test_online_series_equal_offline_recomputation(tmp_path: Path) -> None:
    summary = collect(tmp_path, "spot", duration=6)
    frames = summary["frames"]
    assert frames["received"] == frames["processed"] + frames["filtered"] + frames["rejected"]
    series = summary["series"]
    assert series["behind"] is False and series["errors"] == 0 and series["restarts"] == 0
    assert series["late_records"] == 0
    for channel, emitted in series["records"].items():
        assert summary["records"][channel] == emitted  # every series record stored
    store = tmp_path / "data"
    for symbol in SYMBOLS:
        trades = read(store, "trades", symbol)
        bars = read(store, "bars", symbol)
        seconds = only(bars, interval="1s")
        end = seconds["close_time"].iloc[-1]
        assert_equal(seconds, offline.time_bars(trades, "1s", grace="300ms", end=end))
        assert seconds["trade_count"].sum() <= len(trades)
        assert_equal(only(bars, interval="ticks:20"), offline.tick_bars(trades, 20))
        assert_equal(only(bars, interval="volume:5"), offline.volume_bars(trades, 5))
        flow = read(store, "flow", symbol)
        assert_equal(flow, offline.flow(trades, "3s", "1s", grace="300ms", end=end))
        book = read(store, "book", symbol)
        tops = read(store, "book_top", symbol)
        levels = read(store, "book_levels", symbol)
        for depth, interval in ((5, "1s"), (3, "250ms")):
            assert_equal(
                only(tops, depth=depth, interval=interval),
                offline.book_snapshots(book, depth, interval),
            )
            assert_equal(
                only(levels, depth=depth, interval=interval),
                offline.book_levels(book, depth, interval),
            )
    pair = hundi.read(store, exchange="binance", symbol="BTC-USDT_ETH-USDT", channel="basis")
    recomputed = offline.basis(
        read(store, "bbo", "BTC-USDT"),
        read(store, "bbo", "ETH-USDT"),
        "1s",
        grace="300ms",
        end=pair.index[-1],
    )
    assert_equal(pair, recomputed)


def test_basis_between_spot_and_perpetual_feeds_from_yaml(tmp_path: Path) -> None:
    """Two feeds (spot and USD-M simulators) in one YAML, sharing the store: the basis of
    BTC-USDT vs BTC-USDT-PERP on a common 1 s clock equals its offline recomputation."""
    with (
        SimulatorProcess(["--market", "spot", "--rate", "200", "--seed", "3"]) as spot,
        SimulatorProcess(["--market", "usdm", "--rate", "200", "--seed", "4"]) as perp,
    ):
        (tmp_path / "feeds.yaml").write_text(
            "settings:\n  store: data\n  flush_interval: 0.2\n"
            "feeds:\n"
            f"  - {{exchange: binance, market: spot, symbols: BTCUSDT, channels: [trades, bbo],\n"
            f"     endpoint: '{spot.ws_url}', rest_endpoint: '{spot.rest_url}',\n"
            "     series: ['basis:BTC-USDT/BTC-USDT-PERP@1s', 'bars:1s']}\n"
            f"  - {{exchange: binance, market: usdm, symbols: BTCUSDT, channels: [bbo],\n"
            f"     endpoint: '{perp.ws_url}', rest_endpoint: '{perp.rest_url}'}}\n"
        )
        done = subprocess.run(
            [sys.executable, "-m", "hundi", "collect", "--config", "feeds.yaml",
             "--duration", "5", "--summary-json", "summary.json"],
            capture_output=True, text=True, timeout=90, cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["series"]["records"]["basis"] > 0
    store = tmp_path / "data"
    pair = hundi.read(store, exchange="binance", symbol="BTC-USDT_BTC-USDT-PERP", channel="basis")
    assert set(pair["leg_b"]) == {"binance:BTC-USDT-PERP"}
    recomputed = offline.basis(
        read(store, "bbo", "BTC-USDT"), read(store, "bbo", "BTC-USDT-PERP"), "1s",
        end=pair.index[-1],
    )  # fmt: skip
    assert_equal(pair, recomputed)
    # bars are only for the feed that asked for them
    assert len(read(store, "bars", "BTC-USDT")) > 0
    with pytest.raises(NotStored, match="BTC-USDT-PERP"):
        read(store, "bars", "BTC-USDT-PERP")
