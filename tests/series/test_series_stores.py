"""``--series`` into the embedded store, Cassandra and KairosDB at once (the real servers):
every store gets the series, and Cassandra's equal their recomputation from Cassandra's raw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

import hundi
from hundi.records import SERIES_CHANNELS
from hundi.series import offline
from hundi.simulator.process import SimulatorProcess

pytestmark = pytest.mark.slow


def test_series_in_every_store(cassandra_keyspace: str, kairosdb_url: str, tmp_path: Path) -> None:
    kairos = f"{kairosdb_url}?prefix=series{uuid.uuid4().hex[:8]}"
    embedded = str(tmp_path / "data")
    with SimulatorProcess(["--market", "spot", "--rate", "300", "--seed", "7"]) as sim:
        args = [
            sys.executable, "-m", "hundi", "collect", "binance", "--symbols", "BTCUSDT,ETHUSDT",
            "--channels", "trades,bbo,book", "--endpoint", sim.ws_url,
            "--rest-endpoint", sim.rest_url, "--store", embedded, "--store", cassandra_keyspace,
            "--store", kairos, "--flush-interval", "0.2", "--duration", "5",
            "--summary-json", str(tmp_path / "summary.json"),
            "--series", "bars:1s,book:5@1s,flow:3s@1s,basis:BTC-USDT/ETH-USDT@1s",
        ]  # fmt: skip
        env = {**os.environ, "HUNDI_SPOOL_DIR": str(tmp_path / "spool")}
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
        )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["series"]["behind"] is False
    for store in summary["stores"]:
        assert store["lost"] == {}
        for channel in SERIES_CHANNELS:
            assert store["records"].get(channel.value) == summary["series"]["records"][channel]
    for channel in SERIES_CHANNELS:
        mine = hundi.read(embedded, exchange="binance", channel=channel)
        theirs = hundi.read(cassandra_keyspace, exchange="binance", channel=channel)
        assert len(mine) == len(theirs) > 0, channel
    trades = hundi.read(cassandra_keyspace, exchange="binance", symbol="BTC-USDT", channel="trades")
    bars = hundi.read(cassandra_keyspace, exchange="binance", symbol="BTC-USDT", channel="bars")
    again = offline.time_bars(trades, "1s", end=bars["close_time"].iloc[-1])
    pd.testing.assert_frame_equal(bars, again, check_exact=True)
    book = hundi.read(cassandra_keyspace, exchange="binance", symbol="BTC-USDT", channel="book")
    tops = hundi.read(cassandra_keyspace, exchange="binance", symbol="BTC-USDT", channel="book_top")
    pd.testing.assert_frame_equal(tops, offline.book_snapshots(book, 5, "1s"), check_exact=True)
    # KairosDB keeps the last value per ms and series: one point per 1s bar
    points = hundi.read(kairos, exchange="binance", symbol="BTC-USDT", channel="bars")
    assert len(points) == len(bars)
    assert list(points["close"]) == list(bars["close"])
