"""Two ``hundi collect`` processes (an A/B pair) on one Binance simulator, into one store.

A is killed with ``kill -9`` mid-run and restarted while B runs throughout: the shared store
reads back one clean stream (every trade and bbo update once, the book equal to the
simulator's, no gap) and ``hundi.coverage`` shows A's restart holes as covered (the ticker's
too, pushed once a second: B's run holds its rows on both sides of A's window). When both are
killed in the same window the hole stays a hole. Run for the embedded store and Cassandra.

Ground truth: trade ids from the simulator's ``/sim/stats``; the book from its REST depth
snapshot; bbo updates from B's private second store (B ran throughout and stopped cleanly, so
it holds every bookTicker sent while the pair ran; the simulator does not count those by id).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import hundi
from children import Child, spawn
from hundi.book.replay import Block, Levels, ReplayState, replay
from hundi.exchanges.registry import book_rule
from hundi.query import NotStored
from hundi.records import BID
from hundi.simulator.process import SimulatorProcess
from hundi.stores.base import StoreError

pytestmark = pytest.mark.slow

SYMBOL, NATIVE = "BTC-USDT", "BTCUSDT"
HUNDI = [sys.executable, "-m", "hundi"]
DEADLINE_S = 120.0
# ticker: a stream pushed once a second, sparser than the 250 ms restart floor, so only the
# rows' writers tell that B ran through A's restart
CHANNELS = "trades,bbo,book,ticker"


def wait_for(what: str, ready: Callable[[], bool], *children: Child) -> None:
    """Poll ``ready`` until true; fail naming ``what`` (with the children's stderr) if a child
    exits or the generous deadline passes."""
    deadline = time.monotonic() + DEADLINE_S
    while not ready():
        for child in children:
            assert child.poll() is None, (
                f"{what}: a collector exited\n{child.stderr_text()[-3000:]}"
            )
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE_S}s"
        time.sleep(0.2)


def collector(sim: SimulatorProcess, cwd: Path, name: str, *stores: str) -> Child:
    """Collector ``name`` (its own outage spool: one collector per spool folder at a time;
    a restarted one reuses its spool)."""
    args = [
        *HUNDI, "collect", "binance", "--market", "spot", "--symbols", NATIVE,
        "--channels", CHANNELS, "--endpoint", sim.ws_url, "--rest-endpoint",
        sim.rest_url, "--flush-interval", "0.2",
        # no REST backfill: the other collector, not the venue, must fill the holes
        "--option", "backfill_requests_per_gap=0",
    ]  # fmt: skip
    for store in stores:
        args += ["--store", store]
    env = {**os.environ, "HUNDI_SPOOL_DIR": str(cwd / f"spool-{name}")}
    # Cassandra tells a ticker row's writer in chunks only (its default keeps a row per record)
    env["CASSANDRA_CHUNKED_CHANNELS"] = "trades,bbo,book,ticker"
    return spawn(args, cwd=cwd, env=env)


def stop(child: Child) -> None:
    child.send_signal(signal.SIGTERM)
    assert child.wait(90) == 0, child.stderr_text()[-3000:]


def kill(child: Child) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)


def rows(store: str, channel: str, **window: Any) -> pd.DataFrame:
    try:
        found: pd.DataFrame = hundi.read(
            store, exchange="binance", symbol=SYMBOL, channel=channel, **window
        )
    except (NotStored, StoreError):  # nothing stored yet
        return pd.DataFrame()
    return found


def count(store: str, channel: str) -> int:
    return len(rows(store, channel))


def newest_ns(store: str, channel: str) -> int:
    found = rows(store, channel)
    return int(pd.DatetimeIndex(found.index).as_unit("ns").asi8.max()) if len(found) else 0


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def sent_trade_ids(sim: SimulatorProcess) -> set[int]:
    ids: set[int] = set()
    for conn in get_json(f"{sim.rest_url}/sim/stats")["connections"]:
        ranges = conn["streams"].get(f"{NATIVE.lower()}@aggTrade")
        if ranges:
            assert not ranges["truncated"]
            for first, last in ranges["ranges"]:
                ids.update(range(first, last + 1))
    return ids


def book_levels(table: pa.Table) -> dict[float, float]:
    state = replay(Block.from_table(table), ReplayState(Levels.empty()), book_rule("binance"))
    assert state.synced
    return dict(zip(state.levels.key.tolist(), state.levels.size.tolist(), strict=True))


def as_levels(snapshot: dict[str, Any]) -> dict[float, float]:
    levels = {-float(p): float(q) for p, q in snapshot["bids"] if float(q)}
    levels.update({float(p): float(q) for p, q in snapshot["asks"] if float(q)})
    return levels


def frame_levels(book: pd.DataFrame) -> dict[float, float]:
    keys = np.where(book["side"].to_numpy() == BID, -book["price"], book["price"])
    return dict(zip(keys.tolist(), book["size"].astype(float).tolist(), strict=True))


@pytest.fixture(params=["embedded", "cassandra"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "embedded":
        yield str(tmp_path / "shared")
    else:
        yield request.getfixturevalue("cassandra_keyspace")


def test_a_killed_and_restarted_while_b_runs_reads_back_one_clean_stream(
    shared_store: str, tmp_path: Path
) -> None:
    b_only, a_only = str(tmp_path / "b-only"), str(tmp_path / "a-only")
    with SimulatorProcess(["--rate", "150", "--seed", "21", "--symbols", NATIVE]) as sim:
        b = collector(sim, tmp_path, "b", shared_store, b_only)
        wait_for("B stores a book", lambda: count(b_only, "book") > 0, b)
        a = collector(sim, tmp_path, "a", shared_store, a_only)
        wait_for("A stores trades and bbo", lambda: count(a_only, "bbo") > 20, a, b)
        kill(a)
        killed_at = time.time_ns()
        # B goes on alone for a while: what A misses now, only B has
        wait_for(
            "B stores past the kill",
            lambda: (
                newest_ns(b_only, "bbo") > killed_at + 2e9
                and newest_ns(b_only, "ticker") > killed_at
            ),
            b,
        )
        a = collector(sim, tmp_path, "a", shared_store, a_only)
        restarted_at = time.time_ns()
        wait_for(
            "A stores again",
            lambda: (
                newest_ns(a_only, "book") > restarted_at
                and newest_ns(a_only, "bbo") > 0
                and newest_ns(a_only, "ticker") > restarted_at
            ),  # its restart gap is told then
            a,
            b,
        )
        truth = get_json(f"{sim.rest_url}/api/v3/depth?symbol={NATIVE}&limit=5000")
        last_id = int(truth["lastUpdateId"])

        def past_truth() -> bool:
            book = rows(b_only, "book")
            return bool(len(book) and (book["update_id"] > last_id).any())

        wait_for("the stored book passes the REST snapshot", past_truth, a, b)
        stop(a)
        a_stopped = time.time_ns()
        # B alone again after A's clean stop: A's ``stopped`` book event is covered too
        wait_for("B stores past A's stop", lambda: newest_ns(b_only, "book") > a_stopped + 1e9, b)
        stop(b)
        sent = sent_trade_ids(sim)

    # trades: exactly the ids the simulator sent, each once
    trades = rows(shared_store, "trades")
    assert trades["trade_id"].is_unique
    assert set(trades["trade_id"]) == sent
    assert set(rows(a_only, "trades")["trade_id"]) & set(rows(b_only, "trades")["trade_id"])

    # bbo: each update once, the earliest receive kept; A's copies were real duplicates
    bbo = rows(shared_store, "bbo")
    a_bbo, b_bbo = rows(a_only, "bbo"), rows(b_only, "bbo")
    assert bbo["update_id"].is_unique
    assert set(bbo["update_id"]) == set(b_bbo["update_id"]) | set(a_bbo["update_id"])
    assert set(bbo["update_id"]) == set(b_bbo["update_id"])
    both = set(a_bbo["update_id"]) & set(b_bbo["update_id"])
    assert len(both) > 10
    # never later than B's copy (the shared store has all of B's: it stopped cleanly), and A's
    # copy where A received first (a row A flushed to its private store only before the kill
    # never reached the shared one, so not every A copy is there)
    shared = sorted(both)
    kept = bbo.set_index("update_id")["recv_ts"].loc[shared]
    b_recv = b_bbo.set_index("update_id")["recv_ts"].loc[shared]
    a_recv = a_bbo.set_index("update_id")["recv_ts"].loc[shared]
    assert (kept <= b_recv).all()
    assert ((kept == a_recv) & (a_recv < b_recv)).any()

    # book: the merged rows replay to the simulator's book at its snapshot's id, book_at too
    book = rows(shared_store, "book").reset_index()
    upto = book[book["update_id"] <= last_id]
    assert book_levels(pa.Table.from_pandas(upto, preserve_index=False)) == as_levels(truth)
    message_ts = book.loc[(book["update_id"] == last_id) & ~book["snapshot"], "ts"]
    if len(message_ts):  # the diff that ends at the snapshot's id: the book as of its time
        at = hundi.book_at(shared_store, "binance", SYMBOL, message_ts.iloc[0])
        assert at.attrs["synced"]
        assert frame_levels(at) == as_levels(truth)
    after_a = hundi.book_at(
        shared_store, "binance", SYMBOL, pd.Timestamp(int(a_stopped + 1e9), tz="UTC")
    )
    assert after_a.attrs["synced"]
    # the snapshots kept: only those that restart a stretch nothing continued
    assert book[book["snapshot"]]["update_id"].nunique() == 1

    # coverage: no hole; A's restart gaps are stored and shown as covered
    events = rows(shared_store, "events")
    restart = events[(events["kind"] == "gap") & events["detail"].str.startswith("restart:")]
    assert len(restart), events
    ranges = hundi.coverage(shared_store, "binance", symbol=SYMBOL)
    shown = ranges[["channel", "ended_by", "gap_detail", "covered"]].to_string()
    assert (ranges["ended_by"] != "gap").all(), shown
    assert ranges.groupby("channel").size().to_dict() == {
        "bbo": 1, "book": 1, "ticker": 1, "trades": 1
    }  # fmt: skip
    # A's restart beside B stored one for the ticker too (its join may: B's first push may
    # come after A's start), covered by B's run
    assert (restart["channel"] == "ticker").any(), restart
    assert int(ranges["covered"].sum()) == len(restart), (ranges, restart)


def test_a_window_both_miss_stays_a_hole(shared_store: str, tmp_path: Path) -> None:
    with SimulatorProcess(["--rate", "150", "--seed", "22", "--symbols", NATIVE]) as sim:
        a = collector(sim, tmp_path, "a", shared_store)
        b = collector(sim, tmp_path, "b", shared_store)
        # a ticker push (once a second) stored too: else the restart begins its stream
        wait_for(
            "both store",
            lambda: count(shared_store, "bbo") > 40 and count(shared_store, "ticker") > 0,
            a,
            b,
        )
        kill(a)
        kill(b)
        killed_at = time.time_ns()
        # the simulator goes on: wait until it sent trades nobody received
        before = max(sent_trade_ids(sim))
        probe = collector(sim, tmp_path, "probe", str(tmp_path / "probe"))
        wait_for("the market moves on", lambda: count(str(tmp_path / "probe"), "trades") > 5, probe)
        stop(probe)
        # each also into a private store: SIGTERM before a collector is up kills it (-15),
        # so both must be seen storing, not just one of them in the shared store
        a_again, b_again = str(tmp_path / "a-again"), str(tmp_path / "b-again")
        a = collector(sim, tmp_path, "a", shared_store, a_again)
        b = collector(sim, tmp_path, "b", shared_store, b_again)
        wait_for(
            "both store again",
            lambda: (
                count(a_again, "book") > 0
                and count(b_again, "book") > 0
                and newest_ns(shared_store, "book") > killed_at
            ),
            a,
            b,
        )
        restarted = time.time_ns()
        wait_for(
            "bbo and the ticker again",
            lambda: (
                newest_ns(shared_store, "bbo") > restarted
                and newest_ns(shared_store, "ticker") > killed_at
            ),
            a,
            b,
        )
        synced_at = newest_ns(shared_store, "book")
        stop(a)
        stop(b)
    trades = rows(shared_store, "trades")
    assert trades["trade_id"].is_unique
    assert before < max(trades["trade_id"])
    ranges = hundi.coverage(shared_store, "binance", symbol=SYMBOL)
    for channel in ("trades", "bbo", "book", "ticker"):
        mine = ranges[ranges["channel"] == channel]
        assert (mine["ended_by"] == "gap").sum() >= 1, (channel, ranges)
    end = hundi.book_at(shared_store, "binance", SYMBOL, pd.Timestamp(synced_at, tz="UTC"))
    assert end.attrs["synced"]  # restarted from a snapshot after the hole


OKX_INST, OKX_SYMBOL = "BTC-USDT-SWAP", "BTC-USDT-PERP"


def okx_collector(sim: SimulatorProcess, cwd: Path, *stores: str) -> Child:
    args = [
        *HUNDI, "collect", "okx", "--market", "swap", "--symbols", OKX_INST, "--channels", "book",
        "--endpoint", sim.ws_url + "/ws/v5/public", "--rest-endpoint", sim.rest_url,
        "--flush-interval", "0.2",
    ]  # fmt: skip
    for store in stores:
        args += ["--store", store]
    return spawn(args, cwd=cwd)


def okx_book(store: str) -> pd.DataFrame:
    try:
        found: pd.DataFrame = hundi.read(store, exchange="okx", symbol=OKX_SYMBOL, channel="book")
    except (NotStored, StoreError):  # nothing stored yet
        return pd.DataFrame()
    return found


def resets_at(sim: SimulatorProcess) -> list[int]:
    """When the simulator renumbered its seqIds (ns, its clock: this machine's)."""
    faults = get_json(f"{sim.rest_url}/sim/stats")["faults"]
    return [int(f["at_ns"]) for f in faults if f["kind"] == "seq-reset"]


def newest_book_ns(store: str) -> int:
    book = okx_book(store)
    return int(pd.DatetimeIndex(book.index).as_unit("ns").asi8.max()) if len(book) else 0


def diff_keys(store: str) -> list[tuple[int, int, float]]:
    book = okx_book(store)
    diffs = book[~book["snapshot"]]
    return list(zip(diffs["update_id"], diffs["side"], diffs["price"], strict=True))


def test_okx_collectors_that_saw_a_sequence_reset_store_one_id_per_update(
    tmp_path: Path,
) -> None:
    """Two ``hundi collect okx`` on one OKX simulator renumbering its seqIds every 4 s: A saw
    a reset before B started. After the next reset both store each update under one id (the
    reset push's exchange time << 20 plus its seqId), so the shared store holds it once. Old
    code: A's ids held its own count of the earlier numbering, B's not: no id in common."""
    shared, a_only, b_only = (str(tmp_path / name) for name in ("shared", "a-only", "b-only"))
    args = ["--symbols", OKX_INST, "--rate", "400", "--seed", "4", "--fault", "seq-reset:4"]
    with SimulatorProcess(args, venue="okx") as sim:
        a = okx_collector(sim, tmp_path, shared, a_only)
        wait_for("A stores a book", lambda: len(okx_book(a_only)) > 0, a)
        started = time.time_ns()

        def stored_past_a_reset(*stores: str) -> Callable[[], bool]:
            def ready() -> bool:
                after = [t for t in resets_at(sim) if t > started]
                return bool(after) and all(newest_book_ns(s) > after[0] + 1e9 for s in stores)

            return ready

        wait_for("A stores past a reset", stored_past_a_reset(a_only), a)
        b = okx_collector(sim, tmp_path, shared, b_only)
        wait_for("B stores a book", lambda: len(okx_book(b_only)) > 0, a, b)
        started = time.time_ns()  # the next reset: both see it
        wait_for("A and B store past a reset", stored_past_a_reset(a_only, b_only), a, b)
        stop(a)
        stop(b)
    keys_a, keys_b = set(diff_keys(a_only)), set(diff_keys(b_only))
    merged = diff_keys(shared)
    assert len(merged) == len(set(merged))  # each update once
    assert set(merged) == keys_a | keys_b
    assert len(keys_a & keys_b) > 20
