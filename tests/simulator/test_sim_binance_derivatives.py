"""Simulator → ``hundi collect binance`` → embedded store over real sockets, COIN-M and USD-M
derivatives: stored derivative tickers, liquidations, open interest and instruments are what
the simulator sent (its ``stats()["derivatives"]`` ground truth), trades exactly the ids sent,
books synced, and the accounting invariant holds under the simulator's faults on COIN-M."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import hundi
from hundi.capture.events import CaptureKind
from hundi.capture.reader import read_capture
from hundi.query import NotStored
from hundi.simulator.process import SimulatorProcess

pytestmark = pytest.mark.slow

HUNDI = [sys.executable, "-m", "hundi"]
CHANNELS = "trades,bbo,book,derivative_ticker,liquidations,instruments"
MARKETS = {
    "coinm": {"BTCUSD_PERP": "BTC-USD-PERP", "ETHUSD_260626": "ETH-USD-20260626"},
    "usdm": {"BTCUSDT": "BTC-USDT-PERP", "ETHUSDT": "ETH-USDT-PERP"},
}
CONTRACT_SIZE = {"BTCUSD_PERP": 100, "ETHUSD_260626": 10}


def collect(sim: SimulatorProcess, market: str, tmp: Path, duration: float) -> dict[str, Any]:
    summary_path = tmp / "summary.json"
    args = [
        *HUNDI, "collect", "binance", "--market", market, "--symbols", ",".join(MARKETS[market]),
        "--channels", CHANNELS, "--endpoint", sim.ws_url, "--rest-endpoint", sim.rest_url,
        "--store", str(tmp / "data"), "--flush-interval", "0.2", "--duration", str(duration),
        "--summary-json", str(summary_path), "--raw", str(tmp / "raw"),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60, cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    summary: dict[str, Any] = json.loads(summary_path.read_text())
    return summary


def stats(sim: SimulatorProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{sim.rest_url}/sim/stats", timeout=10) as answer:
        result: dict[str, Any] = json.load(answer)
    return result


def read(store: Path, channel: str, symbol: str) -> pd.DataFrame:
    return hundi.read(store, exchange="binance", symbol=symbol, channel=channel)


def ms(index: pd.Index) -> list[int]:
    return [int(t.value // 1_000_000) for t in index]


def prefix_of(stored: list[Any], sent: list[Any]) -> None:
    """What was stored is what was sent, in order; at most the last one sent as the collector
    stopped may be missing."""
    assert stored == sent[: len(stored)]
    assert len(sent) - len(stored) <= 1, (len(sent), len(stored))


def sent_trade_ids(truth: dict[str, Any], native: str) -> list[int]:
    ids: list[int] = []
    for conn in truth["connections"]:
        ranges = conn["streams"].get(f"{native.lower()}@aggTrade")
        if ranges:
            for first, last in ranges["ranges"]:
                ids.extend(range(first, last + 1))
    return ids


def received_trade_ids(tmp: Path) -> dict[str, list[int]]:
    """The aggTrade ids of every frame the collector received (its raw capture), by symbol."""
    ids: dict[str, list[int]] = {}
    for event in read_capture(sorted((tmp / "raw").iterdir())):
        if event.kind is not CaptureKind.RECV:
            continue
        data = json.loads(event.data).get("data") or {}
        if data.get("e") == "aggTrade":
            ids.setdefault(data["s"], []).append(data["a"])
    return ids


def check_accounting(summary: dict[str, Any]) -> None:
    frames = summary["frames"]
    assert frames["received"] > 0
    assert frames["received"] == frames["processed"] + frames["filtered"] + frames["rejected"]
    assert frames["rejected"] == sum(frames["rejected_reasons"].values())


@pytest.mark.parametrize("market", ["coinm", "usdm"])
def test_derivatives_stored_as_sent(market: str, tmp_path: Path) -> None:
    symbols = ",".join(MARKETS[market])
    args = ["--market", market, "--symbols", symbols, "--rate", "300", "--seed", "4"]
    with SimulatorProcess(args) as sim:
        summary = collect(sim, market, tmp_path, duration=5)
        truth = stats(sim)
    store = tmp_path / "data"
    received = received_trade_ids(tmp_path)
    check_accounting(summary)
    assert summary["gaps"] == 0 and summary["resyncs"] == 0 and summary["frames"]["rejected"] == 0
    assert all(book["synced"] for book in summary["books"]), summary["books"]
    unit = "contracts" if market == "coinm" else "base"
    for native, symbol in MARKETS[market].items():
        sent = truth["derivatives"][native]
        trades = read(store, "trades", symbol)
        # every trade the collector received is stored, exactly once, in order; only those the
        # simulator sent after the collector stopped reading (never received) may be absent
        stored = trades["trade_id"].tolist()
        sent_ids = sent_trade_ids(truth, native)
        received_ids = received[native]
        assert stored == received_ids and len(stored) > 0
        assert received_ids == sent_ids[: len(received_ids)]

        tickers = read(store, "derivative_ticker", symbol)
        assert set(tickers["size_unit"]) == {unit}
        marks = tickers[tickers["source"] == "markPrice"]
        perpetual = native.endswith(("USDT", "_PERP"))
        rows = [
            [t, float(p), float(i), r, nft]
            for t, p, i, r, nft in zip(
                ms(marks.index), marks["mark_price"], marks["index_price"],
                marks["funding_rate"], marks["next_funding_time"], strict=True,
            )
        ]  # fmt: skip
        expected = [[t, float(p), float(i), float(r) if r else math.nan, 0] for t, p, i, r, _ in
                    sent["mark_prices"]]  # fmt: skip
        assert len(rows) >= 3
        for got, want, raw in zip(rows, expected, sent["mark_prices"], strict=False):
            assert got[:3] == want[:3]
            assert (got[3] == want[3]) if perpetual else math.isnan(got[3])
            nft = got[4]
            assert (nft.value // 1_000_000 if perpetual else nft.value) == raw[4]
        assert len(expected) - len(rows) <= 1

        interest = tickers[tickers["source"] == "openInterest"]
        prefix_of([float(v) for v in interest["open_interest"]],
                  [float(v) for _, v in sent["open_interest"]])  # fmt: skip
        value = interest["open_interest_value"].iloc[0]
        oi = interest["open_interest"].iloc[0]
        if market == "coinm":
            assert value == oi * CONTRACT_SIZE[native]  # contracts of 100 / 10 USD
        else:  # base units times the latest mark price (NaN before the first one)
            assert math.isnan(value) or value > 0

        if not sent["liquidations"]:
            with pytest.raises(NotStored):  # none sent (a random chance each second)
                read(store, "liquidations", symbol)
            continue
        liquidations = read(store, "liquidations", symbol)
        prefix_of(
            [[t, "SELL" if s < 0 else "BUY", p, q] for t, s, p, q in zip(
                ms(liquidations.index), liquidations["side"], liquidations["price"],
                liquidations["size"], strict=True)],
            [[t, s, float(p), float(q)] for t, s, p, q in sent["liquidations"]],
        )  # fmt: skip
        assert set(liquidations["completeness"]) <= {"sampled"}
    for native, symbol in MARKETS[market].items():
        perpetual = native.endswith(("USDT", "_PERP"))
        [instrument] = read(store, "instruments", symbol).to_dict("records")
        assert bool(instrument["inverse"]) == (market == "coinm")
        assert instrument["size_unit"] == unit
        if market == "coinm":
            assert instrument["contract_size"] == CONTRACT_SIZE[native]
            kind = "perpetual" if perpetual else "future"
            assert instrument["contract_type"] == kind


@pytest.mark.parametrize(
    "fault",
    ["disconnect:1.5", "gap:1", "malformed:1", "stale-snapshot", "duplicate:0.5", "reorder:0.5",
     "rest-429:2", "shutdown:1"],
)  # fmt: skip
def test_coinm_accounting_holds_under_faults(fault: str, tmp_path: Path) -> None:
    symbols = ",".join(MARKETS["coinm"])
    args = ["--market", "coinm", "--symbols", symbols, "--rate", "300", "--seed", "6"]
    with SimulatorProcess([*args, "--fault", fault]) as sim:
        summary = collect(sim, "coinm", tmp_path, duration=4)
        truth = stats(sim)
    kind = fault.split(":")[0]
    assert any(f["kind"] == kind for f in truth["faults"]), truth["faults"][:3]
    check_accounting(summary)
    store = tmp_path / "data"
    for channel, count in summary["records"].items():
        if count == 0:
            continue
        assert len(hundi.read(store, exchange="binance", channel=channel)) == count, channel
    if kind == "disconnect":
        assert summary["reconnects"] >= 1
    elif kind == "gap":
        assert summary["gaps"] >= 1 and summary["resyncs"] >= 1
    elif kind == "malformed":
        assert summary["frames"]["rejected_reasons"].get("malformed_json", 0) >= 1
    elif kind == "stale-snapshot":
        assert summary["resyncs"] >= 1 and all(b["synced"] for b in summary["books"])
    elif kind == "duplicate":
        assert summary["frames"]["rejected_reasons"].get("duplicate_trade", 0) >= 1
        assert summary["gaps"] == 0
    elif kind == "reorder":
        assert summary["gaps"] >= 1 and summary["resyncs"] >= 1
    elif kind == "rest-429":
        assert summary["rest"]["failures"] == 2 and all(b["synced"] for b in summary["books"])
    else:  # serverShutdown: make-before-break, nothing lost
        assert summary["reconnects"] >= 1 and summary["gaps"] == 0
    events = hundi.read(store, exchange="binance", channel="events")
    for native, symbol in MARKETS["coinm"].items():
        stored = read(store, "trades", symbol)["trade_id"].tolist()
        assert len(stored) == len(set(stored))
        mine = events[(events["symbol"] == symbol) & (events["channel"] == "trades")]
        refetched = mine[mine["kind"] == "backfilled"]  # fetched again over REST aggTrades
        sent = set(sent_trade_ids(truth, native)) | {
            i
            for lo, hi in zip(refetched["expected"], refetched["received"], strict=True)
            for i in range(lo, hi)
        }
        assert set(stored) <= sent
        explained = {
            i for lo, hi in zip(mine["expected"], mine["received"], strict=True)
            for i in range(lo, hi)
        }  # fmt: skip
        missing = {i for i in sent if i <= max(stored)} - set(stored)
        assert missing <= explained, sorted(missing - explained)[:10]
