"""The Bitstamp simulator speaks WebSocket v2 and REST; ``hundi collect bitstamp`` against it
stores exactly the trades it sent and ends with its books, also through its faults."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pandas as pd
import pytest

import hundi
from hundi.accounting import Accounting
from hundi.capture.infer import infer_config
from hundi.capture.reader import read_capture
from hundi.capture.replay import replay_events
from hundi.exchanges.bitstamp import BitstampVenue
from hundi.query import NotStored
from hundi.simulator.bitstamp.server import BitstampSimConfig, BitstampSimulator
from hundi.simulator.process import SimulatorProcess
from hundi.stores.base import StoreError

HUNDI = [sys.executable, "-m", "hundi"]
PAIRS = ("btcusd", "etheur")
NORMALIZED = {"btcusd": "BTC-USD", "etheur": "ETH-EUR"}


# ---------------------------------------------------------------------- the wire


@pytest.fixture
async def sim() -> AsyncIterator[BitstampSimulator]:
    config = BitstampSimConfig(symbols=("btcusd",), rate=1000, faults={"stale-snapshot": 1})
    async with BitstampSimulator(config) as running:
        yield running


async def next_json(ws: aiohttp.ClientWebSocketResponse) -> Any:
    msg = await ws.receive(timeout=10)
    assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
    return json.loads(msg.data)


async def test_wire_subscriptions_frames_and_rest(sim: BitstampSimulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(sim.ws_url + "/") as ws:
            await ws.send_str('{"event":"bts:subscribe","data":{"channel":"nope_btcusd"}}')
            error = await next_json(ws)
            assert error["event"] == "bts:error" and error["data"]["message"]
            await ws.send_str('{"event":"bts:heartbeat"}')
            beat = await next_json(ws)
            assert beat == {"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}}
            for channel in ("diff_order_book_btcusd", "live_trades_btcusd", "order_book_btcusd"):
                await ws.send_str(f'{{"event":"bts:subscribe","data":{{"channel":"{channel}"}}}}')
                ack = await next_json(ws)
                assert ack == {"event": "bts:subscription_succeeded", "channel": channel,
                               "data": {}}  # fmt: skip
            seen: dict[str, dict[str, Any]] = {}
            last_mt = 0
            deadline = time.monotonic() + 30
            while len(seen) < 3:
                assert time.monotonic() < deadline, f"only {sorted(seen)} arrived"
                message = await next_json(ws)
                data = message["data"]
                mt = int(data["microtimestamp"])
                if message["channel"].startswith("diff_"):
                    assert mt > last_mt  # diffs are in time order
                    last_mt = mt
                seen.setdefault(message["channel"], message)
        trade = seen["live_trades_btcusd"]
        assert trade["event"] == "trade" and trade["data"]["type"] in (0, 1)
        assert float(trade["data"]["price_str"]) == trade["data"]["price"]
        top = seen["order_book_btcusd"]["data"]
        assert float(top["bids"][0][0]) < float(top["asks"][0][0])
        rest = f"{sim.rest_url}/api/v2/order_book/btcusd"
        async with session.get(rest) as stale, session.get(rest + "/") as fresh:
            stale_body, fresh_body = await stale.json(), await fresh.json()
        assert int(stale_body["microtimestamp"]) < sim.start_us  # the stale-snapshot fault
        assert int(fresh_body["microtimestamp"]) >= sim.start_us
        assert set(fresh_body) == {"timestamp", "microtimestamp", "bids", "asks"}
        async with session.get(f"{sim.rest_url}/api/v2/trading-pairs-info/") as pairs:
            assert (await pairs.json())[0]["url_symbol"] == "btcusd"
        async with session.get(f"{sim.rest_url}/api/v2/order_book/xyzusd") as unknown:
            assert unknown.status == 404
        url = f"{sim.rest_url}/api/v2/transactions/btcusd/?time=minute"
        async with session.get(url) as answer:
            rows = await answer.json()
        async with session.get(f"{sim.rest_url}/api/v2/transactions/btcusd/?time=week") as bad:
            assert bad.status == 404
    assert rows and set(rows[0]) == {"date", "tid", "price", "amount", "type"}
    tids = [int(r["tid"]) for r in rows]
    assert tids == sorted(tids, reverse=True)  # newest first
    assert int(trade["data"]["id"]) in tids and all(r["type"] in ("0", "1") for r in rows)
    assert set(tids) <= {tid for tid, _ in sim.stats()["trades"]["btcusd"]}
    kinds = [f["kind"] for f in sim.stats()["faults"]]
    assert kinds == ["stale-snapshot"]


async def test_rest_lag_answers_the_book_of_seconds_ago() -> None:
    config = BitstampSimConfig(symbols=("btcusd",), rate=1000, faults={"rest-lag": 1.0})
    async with BitstampSimulator(config) as lagging, aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 30
        while lagging.published_us["btcusd"] < lagging.start_us + 1_500_000:
            assert time.monotonic() < deadline, "the market published nothing"
            await asyncio.sleep(0.05)  # polling interval of the condition above
        async with session.get(f"{lagging.rest_url}/api/v2/order_book/btcusd") as answer:
            body = await answer.json()
        latest = lagging.published_us["btcusd"]
        assert latest - int(body["microtimestamp"]) >= 1_000_000 - 50_000


def test_bad_fault_is_a_usage_error() -> None:
    done = subprocess.run(
        [*HUNDI, "simulate", "bitstamp", "--fault", "explode:1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "unknown fault" in done.stderr
    assert "Traceback" not in done.stderr


def test_collect_unknown_pair_spelling_is_one_line() -> None:
    done = subprocess.run(
        [*HUNDI, "collect", "bitstamp", "--symbols", "btc-usd", "--duration", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and "not a Bitstamp pair" in done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------- end to end


def sim_get(sim: SimulatorProcess, path: str) -> Any:
    with urllib.request.urlopen(f"{sim.rest_url}{path}", timeout=10) as answer:
        return json.load(answer)


def sim_book(sim: SimulatorProcess, pair: str) -> dict[tuple[int, float], float]:
    body = sim_get(sim, f"/api/v2/order_book/{pair}")
    book = {(1, float(p)): float(q) for p, q in body["bids"]}
    book.update({(-1, float(p)): float(q) for p, q in body["asks"]})
    return book


def stored_book(store: Path, pair: str) -> dict[tuple[int, float], float] | None:
    try:
        levels = hundi.book_at(store, "bitstamp", NORMALIZED[pair], pd.Timestamp.now(tz="UTC"))
    except (NotStored, StoreError, FileNotFoundError):
        return None  # nothing stored yet
    if not levels.attrs.get("synced", False):
        return None
    return {
        (int(side), float(price)): float(size)
        for side, price, size in zip(levels["side"], levels["price"], levels["size"], strict=True)
    }


def sent_trade_ids(stats: dict[str, Any], pair: str) -> list[int]:
    ids: list[int] = []
    for conn in stats["connections"]:
        ranges = conn["streams"].get(f"live_trades_{pair}")
        if ranges:
            assert not ranges["truncated"]
            for first, last in ranges["ranges"]:
                ids.extend(range(first, last + 1))
    return ids


def collect_until_books_match(
    sim: SimulatorProcess, tmp: Path, steps: int, within_s: float = 150.0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``hundi collect bitstamp`` until the simulator's market has stopped and every stored
    book equals the simulator's; then stop it cleanly. (summary, simulator stats)."""
    store, summary_path = tmp / "data", tmp / "summary.json"
    args = [
        *HUNDI, "collect", "bitstamp", "--symbols", ",".join(PAIRS), "--channels",
        "trades,book,bbo", "--endpoint", sim.ws_url, "--rest-endpoint", sim.rest_url,
        "--store", str(store), "--flush-interval", "0.2", "--duration", str(within_s + 60),
        "--summary-json", str(summary_path), "--raw", str(tmp / "raw"),
    ]  # fmt: skip
    with (tmp / "collect.err").open("w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp)
        try:
            deadline = time.monotonic() + within_s
            while True:
                assert proc.poll() is None, (tmp / "collect.err").read_text()[-3000:]
                done = sim_get(sim, "/sim/stats")["steps"] >= steps
                if done and all(stored_book(store, p) == sim_book(sim, p) for p in PAIRS):
                    break
                assert time.monotonic() < deadline, "stored books never matched the simulator's"
                time.sleep(0.25)  # polling interval of the condition above
            stats = sim_get(sim, "/sim/stats")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, (tmp / "collect.err").read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "Traceback" not in (tmp / "collect.err").read_text()
    summary: dict[str, Any] = json.loads(summary_path.read_text())
    frames = summary["frames"]
    assert frames["received"] > 0
    assert frames["received"] == frames["processed"] + frames["filtered"] + frames["rejected"]
    assert frames["rejected"] == 0, frames["rejected_reasons"]
    return summary, stats


def assert_trades_exact_or_explained(store: Path, stats: dict[str, Any]) -> int:
    """Every trade sent is stored once, or lies in a stored trades gap (a dropped socket
    loses what was in flight); returns how many were explained by gaps."""
    events = hundi.read(store, exchange="bitstamp", channel="events")
    explained_count = 0
    for pair in PAIRS:
        symbol = NORMALIZED[pair]
        trades = hundi.read(store, exchange="bitstamp", symbol=symbol, channel="trades")
        stored = trades["trade_id"].tolist()
        assert len(stored) == len(set(stored)), f"{symbol}: a trade stored twice"
        sent = set(sent_trade_ids(stats, pair))
        # trades of an outage were never sent on a WebSocket: the REST backfill stored them
        made = {tid for tid, _ in stats["trades"][pair]}
        assert set(stored) <= made, f"{symbol}: stored trades the market never made"
        missing = sent - set(stored)
        mine = events[(events["symbol"] == symbol) & (events["channel"] == "trades")]
        gaps = mine[mine["kind"] == "gap"]
        spans = []
        for gap_recv, expected in zip(gaps["recv_ts"], gaps["expected"], strict=True):
            later = trades[trades["recv_ts"] > gap_recv]["trade_id"]
            spans.append((int(expected), int(later.min()) if len(later) else 1 << 62))
        unexplained = {i for i in missing if not any(lo <= i < hi for lo, hi in spans)}
        assert not unexplained, f"{symbol}: {sorted(unexplained)[:10]} lost silently"
        explained_count += len(missing)
    return explained_count


@pytest.mark.slow
def test_collect_stores_every_trade_and_ends_with_the_simulators_books(tmp_path: Path) -> None:
    steps = 1500
    args = ["--symbols", ",".join(PAIRS), "--rate", "300", "--steps", str(steps), "--seed", "7"]
    with SimulatorProcess(args, venue="bitstamp") as sim:
        summary, stats = collect_until_books_match(sim, tmp_path, steps)
    store = tmp_path / "data"
    assert summary["gaps"] == 0
    # a snapshot taken before this connection's first diff is refetched (a resync event):
    # the only resyncs of a run without faults
    events = hundi.read(store, exchange="bitstamp", channel="events")
    resyncs = events[events["kind"] == "resync"]
    # none is valid here; the rest-lag test below makes them happen
    assert {d.partition(":")[0] for d in resyncs["detail"]} <= {"stale snapshot"}
    assert len(resyncs) == summary["resyncs"]
    assert assert_trades_exact_or_explained(store, stats) == 0  # exactly what was sent
    for pair in PAIRS:
        trades = hundi.read(store, exchange="bitstamp", symbol=NORMALIZED[pair], channel="trades")
        assert len(trades) == len(sent_trade_ids(stats, pair)) > 0
        assert set(trades["native_symbol"]) == {pair}
    bbo = hundi.read(store, exchange="bitstamp", channel="bbo")
    assert len(bbo) > 0 and (bbo["bid_price"] < bbo["ask_price"]).all()


@pytest.mark.slow
def test_faults_are_stored_as_gaps_and_resynced_in_place(tmp_path: Path) -> None:
    steps = 6000  # 24 s of market: timed faults strike in its first 12 s (the collector
    # may take seconds to start on a loaded machine)
    args = [
        "--symbols", ",".join(PAIRS), "--rate", "250", "--steps", str(steps), "--seed", "11",
        "--fault", "stale-snapshot:2", "--fault", "reconnect:2", "--fault", "drop:4",
    ]  # fmt: skip
    with SimulatorProcess(args, venue="bitstamp") as sim:
        summary, stats = collect_until_books_match(sim, tmp_path, steps)
    store = tmp_path / "data"
    faults = {f["kind"] for f in stats["faults"]}
    assert faults == {"stale-snapshot", "reconnect", "drop"}
    delivered = [f for f in stats["faults"] if f["kind"] == "reconnect" and f["detail"][0] != "0"]
    assert delivered, "no bts:request_reconnect reached a connection"
    events = hundi.read(store, exchange="bitstamp", channel="events")
    book_events = events[events["channel"] == "book"]
    stale = book_events[book_events["detail"].str.startswith("stale snapshot")]
    # the stale answers of the fault (stamped before the market started serving) are
    # refetched, never applied: no book was built on one (an answer to a request of a
    # connection dropped since is discarded unjudged, so not every stale answer is an event)
    assert sum(f["kind"] == "stale-snapshot" for f in stats["faults"]) == 2
    assert len(stale) >= 1 and (stale["kind"] == "resync").all()
    applied = book_events[book_events["kind"] == "synced"]["received"]
    assert len(applied) and (applied >= stats["start_us"]).all()
    assert (events["kind"] == "shutdown").any()  # bts:request_reconnect
    # the collector reconnected when asked, before the venue's grace ran out
    reasons = [c["close_reason"] for c in stats["connections"]]
    assert "request_reconnect grace over" not in reasons, reasons
    # every drop is a stored trades gap; a book has one only if it was synced when the drop
    # struck (on a loaded machine a drop may come while the stale-snapshot fault holds it)
    trade_gaps = events[(events["channel"] == "trades") & (events["kind"] == "gap")]
    assert len(trade_gaps) >= 2 * len(PAIRS)
    assert trade_gaps["detail"].str.startswith("disconnect").all()
    book_gaps = book_events[book_events["kind"] == "gap"]
    assert (book_gaps["detail"] == "disconnect").all()
    assert summary["gaps"] > 0 and summary["resyncs"] > 0 and summary["reconnects"] > 0
    # every gap is followed by a resync and, later, a synced book
    for symbol in NORMALIZED.values():
        mine = book_events[book_events["symbol"] == symbol]
        assert mine["kind"].iloc[-1] in ("synced", "stopped")
        assert (mine["kind"] == "synced").sum() > (mine["kind"] == "gap").sum()
    assert_trades_exact_or_explained(store, stats)
    assert_raw_capture_replays_as_collected(tmp_path, summary)


def assert_raw_capture_replays_as_collected(tmp: Path, summary: dict[str, Any]) -> None:
    """``hundi replay`` of the run's raw capture accounts every frame and makes the trades and
    BBOs the live run made. Book rows may differ: the replay hands each captured snapshot to
    the protocol at its capture time, so a book may sync a snapshot earlier or later."""
    files = sorted((tmp / "raw").iterdir())
    protocol = BitstampVenue(infer_config(files, "bitstamp", None))
    accounting = Accounting()
    replay_events(read_capture(files), protocol, lambda batch: None, accounting)
    assert accounting.received == summary["frames"]["received"]
    assert accounting.rejected_total == 0
    for channel in ("trades", "bbo"):
        assert accounting.records[channel] == summary["records"][channel], channel
    assert accounting.records["book"] > 0


@pytest.mark.slow
def test_drops_lose_no_trade_the_rest_transactions_fetch_them_back(tmp_path: Path) -> None:
    """The drop fault aborts every socket and refuses new ones for a second: the trades of
    the outage never reach a WebSocket. The collector fetches them back from REST
    ``transactions``: the store holds exactly the market's trades since it subscribed. The
    REST book answers lag the stream 1.5 s (rest-lag): such snapshots are judged stale against
    the first diff and refetched once the stream's lead has passed, never applied; the final
    books still equal the simulator's."""
    steps = 4000  # 16 s of market: the drops strike in its first 8 s
    args = [
        "--symbols", ",".join(PAIRS), "--rate", "250", "--steps", str(steps), "--seed", "5",
        "--fault", "drop:3", "--fault", "rest-lag:1.5",
    ]  # fmt: skip
    with SimulatorProcess(args, venue="bitstamp") as sim:
        _, stats = collect_until_books_match(sim, tmp_path, steps)
    store = tmp_path / "data"
    drops = [f for f in stats["faults"] if f["kind"] == "drop" and f["detail"][0] != "0"]
    assert len(drops) >= 1
    events = hundi.read(store, exchange="bitstamp", channel="events")
    trade_events = events[events["channel"] == "trades"]
    backfilled = trade_events[trade_events["kind"] == "backfilled"]
    assert len(backfilled) >= len(PAIRS)
    assert backfilled["detail"].str.contains("trades fetched back").any()
    assert not (trade_events["kind"] == "unrecoverable").any()
    recovered = 0
    for pair in PAIRS:
        trades = hundi.read(store, exchange="bitstamp", symbol=NORMALIZED[pair], channel="trades")
        stored = trades["trade_id"].tolist()
        assert len(stored) == len(set(stored)), f"{pair}: a trade stored twice"
        # the market's trades from the first one a connection of the collector carried: all
        # stored; the only others stored are of the second the first connection opened in
        # (REST stamps whole seconds: a hole starting at that open takes in its second)
        carried = [c["streams"].get(f"live_trades_{pair}") for c in stats["connections"]]
        first_sent = next(r["ranges"][0][0] for r in carried if r and r["ranges"])
        made = {tid for tid, _ in stats["trades"][pair] if tid >= first_sent}
        assert not made - set(stored), f"{pair}: {sorted(made - set(stored))[:10]} missing"
        opened_s = min(c["opened_ns"] for c in stats["connections"]) // 10**9
        mts = dict(stats["trades"][pair])
        extra = set(stored) - made
        assert all(mts[tid] >= opened_s * 10**6 for tid in extra), f"{pair}: stored too early"
        recovered += len(made - set(sent_trade_ids(stats, pair)))
    assert recovered > 0, "the drops lost no trade from the WebSocket: nothing was tested"
    book_events = events[events["channel"] == "book"]
    stale = book_events[book_events["detail"].str.startswith("stale snapshot")]
    assert len(stale) >= 1  # the lagging answers were refused, not applied
    applied = book_events[book_events["kind"] == "synced"]
    assert set(applied["symbol"]) == set(NORMALIZED.values())
