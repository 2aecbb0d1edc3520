"""Missed trades come back (issue 12): simulator → ``hundi collect`` → embedded store.

The simulator's ``gap`` fault withholds one aggTrade frame per symbol every period and
``disconnect`` drops every connection (ids generated meanwhile are never streamed); the collector
fetches the missing ids over REST ``aggTrades``. With the simulator's full history no trade id
may be missing between the first and the newest stored one, and every withheld id must come back
with the values the simulator generated; with a history too short the loss is said
(``unrecoverable``), never silent.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_end_to_end import SYMBOLS, check_run, collect_args, normalized, sim_stats

import hundi
from hundi.simulator.process import SimulatorProcess

pytestmark = pytest.mark.slow

DURATION = 4.0


def run(sim: SimulatorProcess, tmp: Path) -> tuple[dict[str, Any], Path]:
    summary_path = tmp / "summary.json"
    store = tmp / "data"
    args = collect_args(sim, "spot", store, "--duration", str(DURATION))
    args += ["--summary-json", str(summary_path)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=DURATION + 60, cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    summary: dict[str, Any] = json.loads(summary_path.read_text())
    return summary, store


def venue_trades(sim: SimulatorProcess, native: str, from_id: int) -> list[dict[str, Any]]:
    url = f"{sim.rest_url}/api/v3/aggTrades?symbol={native}&fromId={from_id}&limit=1000"
    with urllib.request.urlopen(url, timeout=10) as answer:
        rows: list[dict[str, Any]] = json.load(answer)
    return rows


def withheld(stats: dict[str, Any], native: str) -> list[int]:
    """Ids of the aggTrade frames the gap fault did not send."""
    stream = f"{native.lower()}@aggTrade"
    return [f["first_id"] for f in stats["faults"] if f["kind"] == "gap" and f["stream"] == stream]


def trade_events(store: Path, symbol: str, kind: str) -> pd.DataFrame:
    events = hundi.read(store, exchange="binance", channel="events")
    mine = events[(events["symbol"] == symbol) & (events["channel"] == "trades")]
    return mine[mine["kind"] == kind]


@pytest.mark.parametrize("fault", ["gap:1", "disconnect:1.5"])
def test_missed_trades_are_fetched_back_and_none_is_missing(fault: str, tmp_path: Path) -> None:
    with SimulatorProcess(["--rate", "400", "--seed", "9", "--fault", fault]) as sim:
        summary, store = run(sim, tmp_path)
        stats = sim_stats(sim)
        check_run(summary, stats, "spot", store)
        assert summary["gaps"] >= 1, summary
        for native in SYMBOLS:
            check_symbol(sim, stats, store, native, fault)


def check_symbol(
    sim: SimulatorProcess, stats: dict[str, Any], store: Path, native: str, fault: str
) -> None:
    symbol = normalized(native, "spot")
    trades = hundi.read(store, exchange="binance", symbol=symbol, channel="trades")
    stored = trades["trade_id"].tolist()
    assert len(stored) == len(set(stored)), f"{symbol}: a trade id stored twice"
    missing = set(range(min(stored), max(stored) + 1)) - set(stored)
    assert not missing, f"{symbol}: {len(missing)} ids missing, e.g. {sorted(missing)[:5]}"
    gaps = trade_events(store, symbol, "gap")
    backfilled = trade_events(store, symbol, "backfilled")
    assert len(gaps) >= 1 and len(backfilled) >= len(gaps), (len(gaps), len(backfilled))
    assert trade_events(store, symbol, "unrecoverable").empty
    ranges = list(zip(backfilled["expected"], backfilled["received"], strict=True))
    recovered = {i for lo, hi in ranges for i in range(lo, hi)}
    for lo, hi in zip(gaps["expected"], gaps["received"], strict=True):
        assert set(range(lo, hi)) <= recovered, (lo, hi)
    if fault.startswith("gap"):
        skipped = [i for i in withheld(stats, native) if min(stored) < i < max(stored)]
        assert skipped and set(skipped) <= recovered
    # coverage shows each gap's ids as recovered, with how
    ranges_seen = hundi.coverage(store, "binance", symbol=symbol, channel="trades")
    ended = ranges_seen[ranges_seen["ended_by"] == "gap"]
    assert len(ended) and (ended["recovered_ids"] == ended["missing_ids"]).all(), ended
    assert (ended["unrecoverable_ids"] == 0).all()
    # the fetched trades carry the values the simulator generated
    by_id = trades.set_index("trade_id")
    for lo, hi in ranges:
        rows = venue_trades(sim, native, lo)
        assert [row["a"] for row in rows[: hi - lo]] == list(range(lo, hi))
        for row in rows[: hi - lo]:
            got = by_id.loc[row["a"]]
            assert (got["price"], got["size"]) == (float(row["p"]), float(row["q"])), row
            assert (got["first_trade_id"], got["last_trade_id"]) == (row["f"], row["l"]), row
            assert got["side"] == (-1 if row["m"] else 1), row


def test_trades_the_venue_no_longer_has_are_said_unrecoverable(tmp_path: Path) -> None:
    args = ["--rate", "400", "--seed", "9", "--fault", "gap:1", "--trade-history", "1"]
    with SimulatorProcess(args) as sim:
        summary, store = run(sim, tmp_path)
        stats = sim_stats(sim)
    check_run(summary, stats, "spot", store)
    for native in SYMBOLS:
        symbol = normalized(native, "spot")
        gaps = trade_events(store, symbol, "gap")
        lost = trade_events(store, symbol, "unrecoverable")
        assert len(gaps) >= 1
        assert trade_events(store, symbol, "backfilled").empty
        said = list(zip(lost["expected"], lost["received"], strict=True))
        assert said == list(zip(gaps["expected"], gaps["received"], strict=True))
        assert all("no longer available" in d for d in lost["detail"])
        ranges_seen = hundi.coverage(store, "binance", symbol=symbol, channel="trades")
        ended = ranges_seen[ranges_seen["ended_by"] == "gap"]
        assert (ended["unrecoverable_ids"] == ended["missing_ids"]).all(), ended
        assert (ended["recovered_ids"] == 0).all()
