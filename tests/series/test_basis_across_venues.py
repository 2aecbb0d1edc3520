"""One collector process, two venues from one YAML config: Binance spot and an OKX perpetual
(each venue's simulator), sharing one store. The basis between the venues is computed live and
equals its offline recomputation from the stored quotes of both venues."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import hundi
from hundi.series import offline
from hundi.simulator.process import SimulatorProcess

pytestmark = pytest.mark.slow


def test_basis_between_binance_spot_and_okx_perpetual_in_one_collector(tmp_path: Path) -> None:
    with (
        SimulatorProcess(["--market", "spot", "--rate", "200", "--seed", "5"]) as spot,
        SimulatorProcess(
            ["--symbols", "BTC-USDT-SWAP", "--rate", "200", "--seed", "6"], venue="okx"
        ) as okx,
    ):
        (tmp_path / "feeds.yaml").write_text(
            "settings:\n  store: data\n  flush_interval: 0.2\n"
            "feeds:\n"
            "  - {exchange: binance, market: spot, symbols: BTCUSDT, channels: [trades, bbo],\n"
            f"     endpoint: '{spot.ws_url}', rest_endpoint: '{spot.rest_url}',\n"
            "     series: ['basis:binance:BTC-USDT/okx:BTC-USDT-PERP@1s']}\n"
            "  - {exchange: okx, market: swap, symbols: BTC-USDT-SWAP,\n"
            "     channels: [trades, bbo, derivative_ticker],\n"
            f"     endpoint: '{okx.ws_url}/ws/v5/public', rest_endpoint: '{okx.rest_url}'}}\n"
        )
        done = subprocess.run(
            [sys.executable, "-m", "hundi", "collect", "--config", "feeds.yaml",
             "--duration", "6", "--summary-json", "summary.json"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["series"]["records"]["basis"] > 0
    store = tmp_path / "data"
    pair = hundi.read(store, exchange="binance", symbol="BTC-USDT_BTC-USDT-PERP", channel="basis")
    assert set(pair["leg_a"]) == {"binance:BTC-USDT"}
    assert set(pair["leg_b"]) == {"okx:BTC-USDT-PERP"}
    quotes_a: pd.DataFrame = hundi.read(store, exchange="binance", symbol="BTC-USDT", channel="bbo")
    quotes_b: pd.DataFrame = hundi.read(
        store, exchange="okx", symbol="BTC-USDT-PERP", channel="bbo"
    )
    recomputed = offline.basis(quotes_a, quotes_b, "1s", end=pair.index[-1])
    assert len(pair) > 0
    pd.testing.assert_frame_equal(pair, recomputed, check_exact=True)
    # the OKX feed's own derivatives data went to the same store
    tickers = hundi.read(store, exchange="okx", symbol="BTC-USDT-PERP", channel="derivative_ticker")
    assert len(tickers) > 0 and tickers["mark_price"].notna().any()
