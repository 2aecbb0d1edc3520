"""Simulator → ``hundi collect`` → embedded store → ``hundi.read``/``query``, over real sockets.

Once per market without faults and once per simulator fault kind. Every run checks the
accounting invariant, that what the summary says was stored is what reads back, and that the
stored trade ids are exactly the ids the simulator sent, minus only what a stored gap explains.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import hundi
from children import spawn
from hundi.records import Channel
from hundi.simulator.process import SimulatorProcess
from stored import anything_stored, read_channel

pytestmark = pytest.mark.slow

SYMBOLS = ("BTCUSDT", "ETHUSDT")
CHANNELS = "trades,bbo,ticker,book,candles"
HUNDI = [sys.executable, "-m", "hundi"]


def normalized(native: str, market: str) -> str:
    return f"{native[:-4]}-USDT" + ("-PERP" if market == "usdm" else "")


def collect_args(sim: SimulatorProcess, market: str, store: Path, *extra: str) -> list[str]:
    return [
        *HUNDI, "collect", "binance", "--market", market, "--symbols", ",".join(SYMBOLS),
        "--channels", CHANNELS, "--endpoint", sim.ws_url, "--rest-endpoint", sim.rest_url,
        "--store", str(store), "--flush-interval", "0.2", *extra,
    ]  # fmt: skip


def run_collect(sim: SimulatorProcess, market: str, tmp: Path, duration: float) -> dict[str, Any]:
    summary_path = tmp / "summary.json"
    args = collect_args(sim, market, tmp / "data", "--duration", str(duration))
    args += ["--summary-json", str(summary_path), "--raw", str(tmp / "raw")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60, cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    summary: dict[str, Any] = json.loads(summary_path.read_text())
    return summary


def sim_stats(sim: SimulatorProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{sim.rest_url}/sim/stats", timeout=10) as answer:
        stats: dict[str, Any] = json.load(answer)
    return stats


def sent_trade_ids(stats: dict[str, Any], native: str) -> list[int]:
    """Every aggTrade id the simulator handed to any of our connections, in send order."""
    ids: list[int] = []
    for conn in stats["connections"]:
        ranges = conn["streams"].get(f"{native.lower()}@aggTrade")
        if ranges:
            assert not ranges["truncated"]
            for first, last in ranges["ranges"]:
                ids.extend(range(first, last + 1))
    return ids


def check_run(summary: dict[str, Any], stats: dict[str, Any], market: str, store: Path) -> None:
    frames = summary["frames"]
    assert frames["received"] > 0
    assert frames["received"] == frames["processed"] + frames["filtered"] + frames["rejected"]
    assert frames["rejected"] == sum(frames["rejected_reasons"].values())
    for channel in Channel:
        stored = read_channel(store, "binance", channel.value)
        assert len(stored) == summary["records"][channel.value], channel
        if channel in (Channel.TRADES, Channel.BBO, Channel.BOOK):
            assert len(stored) > 0, channel
    assert_no_silent_loss(store, stats, market)
    events = hundi.read(store, exchange="binance", channel="events")
    # a book left unsynced at the end is explained: its last book event before the stop (a
    # ``stopped`` one) is a gap or resync
    running = events[events["kind"] != "stopped"]
    for book in summary["books"]:
        if not book["synced"]:
            mine = running[(running["symbol"] == book["symbol"]) & (running["channel"] == "book")]
            assert len(mine) and mine["kind"].iloc[-1] in ("gap", "resync"), book


def assert_no_silent_loss(store: Path, stats: dict[str, Any], market: str = "spot") -> None:
    """Every trade id the simulator sent to any of our connections (or over REST, as a stored
    ``backfilled`` event says), up to the newest stored, is stored or lies inside a stored
    trades gap event; none is stored twice."""
    events = hundi.read(store, exchange="binance", channel="events")
    for native in SYMBOLS:
        symbol = normalized(native, market)
        trades = hundi.read(store, exchange="binance", symbol=symbol, channel="trades")
        stored = trades["trade_id"].tolist()
        assert len(stored) == len(set(stored)), f"{symbol}: duplicate trade ids stored"
        gaps = events[(events["symbol"] == symbol) & (events["channel"] == "trades")]
        refetched = gaps[gaps["kind"] == "backfilled"]  # fetched over REST aggTrades
        sent = set(sent_trade_ids(stats, native)) | {
            i
            for lo, hi in zip(refetched["expected"], refetched["received"], strict=True)
            for i in range(lo, hi)
        }
        assert set(stored) <= sent, f"{symbol}: stored ids the simulator never sent"
        explained = {
            i
            for lo, hi in zip(gaps["expected"], gaps["received"], strict=True)
            for i in range(lo, hi)
        }
        newest = max(stored)
        missing = {i for i in sent if i <= newest} - set(stored)
        assert missing <= explained, f"{symbol}: {sorted(missing - explained)[:10]} lost silently"
        assert trades.index.is_monotonic_increasing
        assert trades.index.tz is not None


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_collect_query_and_replay(market: str, tmp_path: Path) -> None:
    with SimulatorProcess(["--market", market, "--rate", "400", "--seed", "5"]) as sim:
        summary = run_collect(sim, market, tmp_path, duration=4)
        stats = sim_stats(sim)
    store = tmp_path / "data"
    check_run(summary, stats, market, store)
    assert summary["gaps"] == 0 and summary["resyncs"] == 0 and summary["frames"]["rejected"] == 0
    assert all(book["synced"] for book in summary["books"]), summary["books"]

    symbol = normalized(SYMBOLS[0], market)
    query = subprocess.run(
        [*HUNDI, "query", "--store", str(store), "--exchange", "binance", "--symbol", symbol,
         "--channel", "trades", "--format", "csv"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert query.returncode == 0, query.stderr
    lines = query.stdout.strip().splitlines()
    assert "trade_id" in lines[0]
    expected = len(hundi.read(store, exchange="binance", symbol=symbol, channel="trades"))
    assert len(lines) - 1 == expected > 0

    # the raw capture replays into exactly the records that live collection stored, events
    # included: the clean stop is a ``stopped`` event in both, never a gap + resync
    replayed = tmp_path / "replayed"
    raw_files = sorted(str(p) for p in (tmp_path / "raw").glob("*.hcap.gz"))
    done = subprocess.run(
        [*HUNDI, "replay", *raw_files, "--store", str(replayed),
         "--summary-json", str(tmp_path / "replayed.json")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "replaying" not in done.stderr  # no progress line in a pipe
    for channel in ("trades", "bbo", "ticker", "book", "candles", "events"):
        live = hundi.read(store, exchange="binance", channel=channel)
        again = hundi.read(replayed, exchange="binance", channel=channel)
        pd.testing.assert_frame_equal(live.reset_index(), again.reset_index(), check_like=True)
    events = hundi.read(store, exchange="binance", channel="events")
    kinds = set(events["kind"])
    assert "stopped" in kinds and not kinds & {"gap", "resync"}, events
    stops = events[events["kind"] == "stopped"]
    assert all("collector stopping: duration 4s reached" in d for d in stops["detail"])
    # the same summary shape, counts and outcome as collect's, printed by the same printer
    again_summary = json.loads((tmp_path / "replayed.json").read_text())
    assert again_summary.keys() >= summary.keys() - {"ws_client", "log_path", "log_dropped",
                                                     "raw", "streams", "rest", "backpressure",
                                                     "restart_gaps", "stop_reason",
                                                     "stopping_s"}  # fmt: skip
    for key in ("gaps", "resyncs", "frames", "records"):
        assert again_summary[key] == summary[key], key
    assert again_summary["outcome"] == summary["outcome"] == {
        "result": "ok", "exit_code": 0, "reasons": []
    }  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "outcome: ok (exit 0)"


FAULTS = {
    "disconnect:1.5": lambda s: s["reconnects"] >= 1,
    "gap:1": lambda s: s["gaps"] >= 1 and s["resyncs"] >= 1,
    "malformed:1": lambda s: (
        s["frames"]["rejected_reasons"].get("malformed_json", 0) >= 1
        and s["quarantine"]["frames"] == s["frames"]["rejected"]
    ),
    # a resent frame is recognised as such, never mistaken for a hole
    "duplicate:0.5": lambda s: (
        s["frames"]["rejected_reasons"].get("duplicate_trade", 0) >= 1 and s["gaps"] == 0
    ),
    "reorder:0.5": lambda s: s["gaps"] >= 1 and s["resyncs"] >= 1,
    # a snapshot older than the buffered diffs is refused and refetched, never built on
    "stale-snapshot": lambda s: (
        s["resyncs"] >= 1 and s["gaps"] == 0 and all(book["synced"] for book in s["books"])
    ),
    "rest-429:2": lambda s: (
        s["rest"]["failures"] == 2
        and s["rest"]["requests"] >= 4
        and all(book["synced"] for book in s["books"])
    ),
    # the server drops a client that lags by more than 64 KiB; whether ours lags is up to the
    # machine, so the check is: either it kept up, or it was dropped and reconnected
    "slow-reader:65536": lambda s: s["reconnects"] >= 1 or s["frames"]["received"] > 1000,
    # serverShutdown → make-before-break reconnect: no gap, no resync, books intact
    "shutdown:1": lambda s: (
        s["reconnects"] >= 1
        and s["gaps"] == 0
        and s["resyncs"] == 0
        and all(book["synced"] for book in s["books"])
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_collect_under_fault(fault: str, tmp_path: Path) -> None:
    rate = "0" if fault.startswith("slow-reader") else "400"
    with SimulatorProcess(["--rate", rate, "--seed", "9", "--fault", fault]) as sim:
        summary = run_collect(sim, "spot", tmp_path, duration=4)
        stats = sim_stats(sim)
    kind = fault.split(":")[0]
    if kind != "slow-reader":
        assert any(f["kind"] == kind for f in stats["faults"]), stats["faults"][:3]
    check_run(summary, stats, "spot", tmp_path / "data")
    assert FAULTS[fault](summary), {k: summary[k] for k in ("frames", "gaps", "resyncs", "rest")}


def test_kill_9_then_restart_continues_the_same_store(tmp_path: Path) -> None:
    store = tmp_path / "data"
    with SimulatorProcess(["--rate", "400", "--seed", "11"]) as sim:
        proc = spawn(collect_args(sim, "spot", store), cwd=tmp_path)
        # killed once every symbol's trades are stored: each stream's restart gap is then
        # judged against what the killed run stored
        wanted = {normalized(native, "spot") for native in SYMBOLS}
        deadline = time.monotonic() + 60
        while not trade_symbols(store) >= wanted:
            assert proc.poll() is None, f"the collector exited\n{proc.stderr_text()[-3000:]}"
            assert time.monotonic() < deadline, (
                f"not every symbol's trades stored within 60 s (stored: {trade_symbols(store)})\n"
                + proc.stderr_text()[-3000:]
            )
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        after_crash = hundi.read(store, exchange="binance", channel="trades")
        assert len(after_crash) > 0  # the half-written temp files of the killed run are ignored
        crash_leftovers = set(store.rglob(".tmp-*"))
        summary = run_collect(sim, "spot", tmp_path, duration=2)
        stats = sim_stats(sim)
    everything = hundi.read(store, exchange="binance", channel="trades")
    assert len(everything) == len(after_crash) + summary["records"]["trades"]
    for _, trades in everything.groupby("symbol"):
        assert trades["trade_id"].is_unique
    # what the killed run received but had not stored, and what nobody received between the
    # runs, is one stored gap per stream, checked against what the simulator sent
    assert summary["restart_gaps"] >= len(SYMBOLS)
    assert_no_silent_loss(store, stats)
    coverage = hundi.coverage(store, "binance", channel="trades", by="stream")
    assert (coverage["gaps"] >= 1).all(), coverage
    # a clean run leaves no temp file (the killed run's are removed once surely stale, 60 s)
    assert set(store.rglob(".tmp-*")) <= crash_leftovers


def test_sigterm_then_restart_loses_nothing_received_and_explains_the_rest(
    tmp_path: Path,
) -> None:
    """A clean stop stores everything it received (the ids of its connection form an unbroken
    prefix of what was sent to it); the restart records the hole between the runs."""
    store = tmp_path / "data"
    with SimulatorProcess(["--rate", "400", "--seed", "13"]) as sim:
        proc = spawn(collect_args(sim, "spot", store), cwd=tmp_path)
        deadline = time.monotonic() + 60
        while not anything_stored(store):
            assert proc.poll() is None, "the collector exited"
            assert time.monotonic() < deadline, "nothing stored within 60 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.stderr_text()
        first_run = hundi.read(store, exchange="binance", channel="trades")
        sent_first = sim_stats(sim)["connections"]
        # the restart's hole is fetched back over REST: run until every symbol's is
        summary_path = tmp_path / "summary.json"
        second = spawn(
            [*collect_args(sim, "spot", store), "--summary-json", str(summary_path)], cwd=tmp_path
        )
        deadline = time.monotonic() + 90
        while not backfilled_after_restart(store):
            assert second.poll() is None, "the restarted collector exited"
            assert time.monotonic() < deadline, "the hole between the runs was not fetched back"
            time.sleep(0.5)
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, second.stderr_text()
        summary = json.loads(summary_path.read_text())
        stats = sim_stats(sim)
    for native in SYMBOLS:
        symbol = normalized(native, "spot")
        stored = set(first_run[first_run["symbol"] == symbol]["trade_id"])
        sent = sent_trade_ids({"connections": sent_first}, native)
        kept = [i for i in sent if i in stored]
        assert kept == sent[: len(kept)], f"{symbol}: a hole inside what the stopped run received"
    assert summary["restart_gaps"] >= len(SYMBOLS)
    assert_no_silent_loss(store, stats)
    # and nothing is missing at all: every id from the first stored to the newest is stored
    for native in SYMBOLS:
        symbol = normalized(native, "spot")
        ids = hundi.read(store, exchange="binance", symbol=symbol, channel="trades")["trade_id"]
        assert sorted(ids) == list(range(ids.min(), ids.max() + 1)), f"{symbol}: ids missing"


def trade_symbols(store: Path) -> set[str]:
    """The symbols with trades in the store so far."""
    if not anything_stored(store):
        return set()
    return set(read_channel(store, "binance", "trades").get("symbol", []))


def backfilled_after_restart(store: Path) -> bool:
    """Every symbol's restart gap of trades has a ``backfilled`` event covering its end."""
    events = hundi.read(store, exchange="binance", channel="events")
    trades = events[events["channel"] == "trades"]
    for native in SYMBOLS:
        mine = trades[trades["symbol"] == normalized(native, "spot")]
        restart = mine[(mine["kind"] == "gap") & mine["detail"].str.startswith("restart:")]
        refetched = mine[mine["kind"].isin(["backfilled", "unrecoverable"])]
        if restart.empty or refetched.empty:
            return False
        if refetched["received"].max() < restart["received"].max():
            return False
    return True


def test_symbol_the_exchange_does_not_list_is_reported_not_silent(tmp_path: Path) -> None:
    """Binance accepts streams of unknown symbols and sends nothing: exchangeInfo tells us."""
    store, summary_path = tmp_path / "data", tmp_path / "summary.json"
    log_path = tmp_path / "logs" / "hundi.log"
    with SimulatorProcess(["--symbols", "BTCUSDT", "--rate", "200", "--seed", "3"]) as sim:
        done = subprocess.run(
            [*HUNDI, "collect", "binance", "--market", "spot", "--symbols", "XYZUSDT,BTCUSDT",
             "--channels", CHANNELS, "--endpoint", sim.ws_url, "--rest-endpoint", sim.rest_url,
             "--store", str(store), "--flush-interval", "0.2", "--duration", "3",
             "--summary-json", str(summary_path)],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
            env={**os.environ, "HUNDI_LOG_PATH": str(log_path)},
        )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]  # a symbol asked for was not collected
    summary = json.loads(summary_path.read_text())
    assert summary["invalid_symbols"] == ["XYZUSDT"]
    assert summary["outcome"]["reasons"] == [
        "invalid symbols (the exchange does not list, trade or name them as asked; "
        "see their invalid_symbol events): XYZUSDT"
    ]
    assert "(no data for them): XYZUSDT" in done.stdout
    frames = summary["frames"]
    assert frames["received"] == frames["processed"] + frames["filtered"] + frames["rejected"]
    assert summary["balanced"] is True
    btc = hundi.read(store, exchange="binance", symbol="BTC-USDT", channel="trades")
    assert len(btc) > 0
    assert summary["records"]["trades"] == len(btc)  # nothing for XYZ-USDT
    events = hundi.read(store, exchange="binance", channel="events")
    invalid = events[events["kind"] == "invalid_symbol"]
    assert invalid[["symbol", "native_symbol", "channel", "detail"]].values.tolist() == [
        ["XYZ-USDT", "XYZUSDT", "", "BINANCE spot does not list XYZUSDT (exchangeInfo)"]
    ]
    warnings = [
        line for line in log_path.read_text().splitlines() if "does not list XYZUSDT" in line
    ]
    assert len(warnings) == 1 and "WARNING" in warnings[0], warnings
