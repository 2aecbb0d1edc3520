"""Bitfinex public channels end to end: simulator → ``hundi collect`` → store, real sockets.

The simulator publishes trades and books from the shared synthetic market and records them
(``/sim/public``); the stored trades must be exactly the published ones (each once) and, once
the market is frozen, the stored books must rebuild to the simulator's books, with checksum,
sequence and reconnect faults resynced in place and drops explained by stored gaps.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import hundi
from hundi.query import NotStored
from hundi.simulator.process import SimulatorProcess
from hundi.stores.base import StoreError

pytestmark = pytest.mark.slow

HUNDI = [sys.executable, "-m", "hundi"]
SYMBOLS = {"tBTCUSD": "BTC-USD", "tETHUSD": "ETH-USD"}
DEADLINE_S = 90.0  # generous: the machine may be loaded


def truth(sim: SimulatorProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{sim.rest_url}/sim/public", timeout=10) as answer:
        found: dict[str, Any] = json.load(answer)
    return found


def pause(sim: SimulatorProcess) -> None:
    request = urllib.request.Request(f"{sim.rest_url}/sim/public/pause", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def wait_for(what: str, condition: Callable[[], bool], proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert proc.poll() is None, f"the collector exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)  # polling interval of a condition wait, not a fixed delay


def read(store: Path, channel: str) -> pd.DataFrame:
    try:
        return hundi.read(store, exchange="bitfinex", channel=channel)
    except (NotStored, StoreError, FileNotFoundError, OSError, ValueError):
        return pd.DataFrame()


def stored_trade_ids(store: Path) -> dict[str, list[int]]:
    trades = read(store, "trades")
    if trades.empty:
        return {}
    return {s: list(g["trade_id"]) for s, g in trades.groupby("symbol")}


def truth_books(found: dict[str, Any]) -> dict[str, dict[tuple[int, float], float]]:
    books = {}
    for native, book in found["books"].items():
        levels = {(1, float(p)): float(a) for p, a in book["bids"]}
        levels |= {(-1, float(p)): float(a) for p, a in book["asks"]}
        books[SYMBOLS[native]] = levels
    return books


def stored_book(store: Path, symbol: str) -> dict[tuple[int, float], float] | None:
    try:
        frame = hundi.book_at(store, "bitfinex", symbol, pd.Timestamp.now(tz="UTC"))
    except (NotStored, StoreError, FileNotFoundError, OSError, ValueError):
        return None
    if not frame.attrs.get("synced", False):
        return None
    return {(int(s), float(p)): float(z) for s, p, z in frame[["side", "price", "size"]].values}


def run(
    tmp: Path, sim_args: list[str], min_faults: dict[str, int], collect_args: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Collect until the faults happened, freeze the market, wait until the store holds every
    published trade from the first one stored on (each once) and the simulator's books, stop;
    returns the ground truth."""
    store = tmp / "data"
    with SimulatorProcess(["--symbols", ",".join(SYMBOLS), *sim_args], venue="bitfinex") as sim:
        args = [
            *HUNDI, "collect", "bitfinex", "--symbols", ",".join(SYMBOLS),
            "--channels", "trades,bbo,book,ticker,candles", "--endpoint", sim.ws_url,
            "--rest-endpoint", sim.rest_url,
            "--store", str(store), "--flush-interval", "0.2", "--duration", "300",
            "--summary-json", str(tmp / "summary.json"), *collect_args,
        ]  # fmt: skip
        with subprocess.Popen(
            args, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        ) as proc:
            try:
                wait_for("the first stored trades", lambda: bool(stored_trade_ids(store)), proc)
                before = truth(sim)["faults"]  # faults from now on hit the collector

                def faults_done() -> bool:
                    counts = truth(sim)["faults"]
                    return all(
                        counts.get(k, 0) >= before.get(k, 0) + n for k, n in min_faults.items()
                    )

                wait_for("the faults", faults_done, proc)
                pause(sim)
                found = truth(sim)
                expected = {SYMBOLS[n]: None for n in SYMBOLS}
                published: dict[str, list[int]] = {}
                for t in found["trades"]:
                    published.setdefault(SYMBOLS[t["symbol"]], []).append(t["id"])

                def trades_in() -> bool:
                    ids = stored_trade_ids(store)
                    return all(
                        ids.get(s) and set(ids[s]) == {i for i in p if i >= min(ids[s])}
                        for s, p in published.items()
                    )

                wait_for("every published trade stored", trades_in, proc)
                books = truth_books(found)

                def books_in() -> bool:
                    return all(stored_book(store, s) == books[s] for s in expected)

                wait_for("the simulator's books rebuilt from the store", books_in, proc)
            finally:
                proc.send_signal(signal.SIGTERM)
                _, stderr = proc.communicate(timeout=60)
            assert proc.returncode == 0, stderr[-3000:]
            assert "Traceback" not in stderr
    return found


def check_trades_exact(store: Path, found: dict[str, Any]) -> None:
    """Each published trade from the first one stored on is stored exactly once."""
    stored = stored_trade_ids(store)
    for native, symbol in SYMBOLS.items():
        ids = stored[symbol]
        assert len(ids) == len(set(ids)), f"{symbol}: a trade stored twice"
        first = min(ids)
        published = [t["id"] for t in found["trades"] if t["symbol"] == native]
        assert sorted(ids) == [i for i in published if i >= first]


def summary(tmp: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((tmp / "summary.json").read_text())
    frames = found["frames"]
    assert frames["received"] == frames["processed"] + frames["filtered"] + frames["rejected"]
    assert frames["rejected"] == 0, frames["rejected_reasons"]
    return found


def test_trades_exact_and_books_equal_without_faults(tmp_path: Path) -> None:
    found = run(tmp_path, [], {})
    check_trades_exact(tmp_path / "data", found)
    assert summary(tmp_path)["gaps"] == 0
    events = read(tmp_path / "data", "events")
    assert set(events["kind"]) == {"synced", "stopped"}  # no gap, no invalid symbol
    assert not read(tmp_path / "data", "ticker").empty
    bbo = read(tmp_path / "data", "bbo")
    assert not bbo.empty and (bbo["bid_price"] < bbo["ask_price"]).all()
    assert not read(tmp_path / "data", "candles").empty


def test_checksum_sequence_and_reconnect_faults_are_gaps_resynced_in_place(
    tmp_path: Path,
) -> None:
    faults = ["--fault", "checksum:1.5", "--fault", "seq:2.5", "--fault", "reconnect:3.5"]
    found = run(tmp_path, faults, {"checksum": 2, "seq": 1, "reconnect": 1})
    check_trades_exact(tmp_path / "data", found)
    events = read(tmp_path / "data", "events")
    gaps = events[events["kind"] == "gap"]
    assert "checksum mismatch" in set(gaps["detail"])
    assert any("skipped sequence" in d for d in gaps["detail"])
    assert (events["kind"] == "reconnect").any()
    synced = events[events["kind"] == "synced"]
    for symbol in SYMBOLS.values():
        book_gaps = gaps[(gaps["symbol"] == symbol) & (gaps["channel"] == "book")]
        if len(book_gaps):  # every broken book was synced again after its last gap
            assert synced[synced["symbol"] == symbol].index.max() > book_gaps.index.max()
    resyncs = events[events["kind"] == "resync"]
    assert any(d.startswith("unsubscribing chanId") for d in resyncs["detail"]), "in place"
    counted = summary(tmp_path)
    assert counted["gaps"] >= 3 and counted["resyncs"] >= 2  # checksum and sequence breaks


def test_dropped_connections_are_gaps_and_resynced(tmp_path: Path) -> None:
    found = run(tmp_path, ["--fault", "drop:3"], {"drop": 2})
    assert found["faults"]["drop"] >= 2
    store = tmp_path / "data"
    events = read(store, "events")
    gaps = events[events["kind"] == "gap"]
    assert any("closed" in d for d in gaps["detail"])
    assert {"book", "trades"} <= set(gaps["channel"])
    stored = stored_trade_ids(store)
    for native, symbol in SYMBOLS.items():
        ids = stored[symbol]
        assert len(ids) == len(set(ids)), f"{symbol}: a trade stored twice"
        published = {t["id"] for t in found["trades"] if t["symbol"] == native}
        assert set(ids) <= published


def test_trades_withheld_during_drops_are_fetched_back_and_the_capture_replays_the_same(
    tmp_path: Path,
) -> None:
    """``drop_trades`` aborts the sockets and keeps the trades until the resubscribe off the
    WebSocket (live and snapshots): only the REST backfill of each break's window can store
    them. Checksum faults meanwhile resync single books in place. The raw capture (sent
    unsubscribes and subscribes, REST answers included) replays to the same records."""
    found = run(
        tmp_path, ["--fault", "drop_trades:4", "--fault", "checksum:1.5", "--heartbeat", "1"],
        {"drop_trades": 2, "checksum": 2},
        ("--option", "backfill_interval_ms=200", "--raw", str(tmp_path / "raw")),
    )  # fmt: skip
    assert found["withheld"] > 0
    store = tmp_path / "data"
    check_trades_exact(store, found)
    events = read(store, "events")
    assert not (events["kind"] == "unrecoverable").any()
    backfilled = events[(events["kind"] == "backfilled") & (events["channel"] == "trades")]
    assert len(backfilled) >= 2
    recovered = sum(int(d.rsplit(", ", 1)[1].split()[0]) for d in backfilled["detail"])
    assert recovered > 0, "the withheld trades came from REST"
    gaps = events[(events["kind"] == "gap") & (events["channel"] == "trades")]
    assert len(gaps) >= 2
    resyncs = events[events["kind"] == "resync"]
    assert any(d.startswith("unsubscribing chanId") for d in resyncs["detail"])
    records = summary(tmp_path)["records"]
    done = subprocess.run(
        [*HUNDI, "replay", str(tmp_path / "raw"), "--dry-run"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    said = done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 0 and "Traceback" not in done.stderr, said
    parsed = next(line for line in done.stdout.splitlines() if line.startswith("records parsed"))
    counts = dict(item.split("=") for item in parsed.removeprefix("records parsed: ").split(", "))
    for channel in ("trades", "book", "bbo", "ticker", "candles"):
        assert int(counts.get(channel, 0)) == records[channel], (channel, parsed, records)
