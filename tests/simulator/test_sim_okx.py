"""The OKX simulator speaks OKX v5 (2026 format); ``hundi collect okx`` against it stores
exactly the trades it sent, ends with its books, and stores its derivative tickers and
liquidations as sent, also through its faults (disconnect, sequence reset, skipped seqId,
stale REST snapshot)."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pandas as pd
import pytest

import hundi
from hundi.query import NotStored
from hundi.simulator.okx.server import OkxSimConfig, OkxSimulator
from hundi.simulator.process import SimulatorProcess
from hundi.stores.base import StoreError

HUNDI = [sys.executable, "-m", "hundi"]
INSTS = ("BTC-USDT", "BTC-USDT-SWAP", "BTC-USD-261225")
NORMALIZED = {"BTC-USDT": "BTC-USDT", "BTC-USDT-SWAP": "BTC-USDT-PERP",
              "BTC-USD-261225": "BTC-USD-20261225"}  # fmt: skip
CHANNELS = "trades,book,bbo,ticker,candles,derivative_ticker,liquidations,instruments"


async def next_json(ws: aiohttp.ClientWebSocketResponse) -> Any:
    msg = await ws.receive(timeout=10)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def test_wire_subscribe_errors_ping_books_and_rest() -> None:
    config = OkxSimConfig(symbols=("BTC-USDT-SWAP", "BTC-USD-261225"), rate=1000)
    async with OkxSimulator(config) as sim, aiohttp.ClientSession() as session:
        async with session.ws_connect(sim.ws_url + "/ws/v5/public") as ws:
            await ws.send_str("not json")
            assert (await next_json(ws))["code"] == "60012"
            args = [{"channel": "books", "instId": "BTC-USDT-SWAP"},
                    {"channel": "funding-rate", "instId": "BTC-USD-261225"},
                    {"channel": "candle1m", "instId": "BTC-USDT-SWAP"}]  # fmt: skip
            await ws.send_str(json.dumps({"op": "subscribe", "args": args}))
            assert (await next_json(ws)) == {"event": "subscribe", "arg": args[0],
                                             "connId": "00000001"}  # fmt: skip
            assert (await next_json(ws))["code"] == "60018"  # a future has no funding
            assert (await next_json(ws))["code"] == "60018"  # candles live on business
            await ws.send_str("ping")
            pushes = []
            deadline = time.monotonic() + 20
            while len(pushes) < 3:
                assert time.monotonic() < deadline
                msg = await ws.receive(timeout=10)
                if msg.data == "pong":
                    continue
                push = json.loads(msg.data)
                assert push["action"] == "update"  # 2026: no initial snapshot
                pushes.append(push["data"][0])
            assert all(p["checksum"] == 0 for p in pushes)
            assert [p["prevSeqId"] for p in pushes[1:]] == [p["seqId"] for p in pushes[:-1]]
        async with session.ws_connect(sim.ws_url + "/ws/v5/business") as ws:
            await ws.send_str(json.dumps({"op": "subscribe", "args": [args[2]]}))
            assert (await next_json(ws))["event"] == "subscribe"
        url = f"{sim.rest_url}/api/v5/market/books?instId=BTC-USDT-SWAP&sz=400"
        async with session.get(url) as answer:
            body = await answer.json()
        assert body["code"] == "0" and body["data"][0]["seqId"] >= pushes[-1]["seqId"]
        url = f"{sim.rest_url}/api/v5/public/instruments?instType=FUTURES"
        async with session.get(url) as answer:
            (future,) = (await answer.json())["data"]
        assert (future["instId"], future["ctType"], future["ctVal"]) == (
            "BTC-USD-261225", "inverse", "100")  # fmt: skip


async def test_history_trades_pages_every_fill_by_trade_id_and_rate_limits() -> None:
    config = OkxSimConfig(symbols=("BTC-USDT",), rate=1000)
    async with OkxSimulator(config) as sim, aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 20
        while len(sim.fills["BTC-USDT"]) < 150:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)  # polling the market until it made enough trades
        made = {
            tid for first, last in sim.trades_made["BTC-USDT"] for tid in range(first, last + 1)
        }
        url = f"{sim.rest_url}/api/v5/market/history-trades?instId=BTC-USDT"
        top = max(made)
        async with session.get(f"{url}&type=1&after={top - 10}&limit=100") as answer:
            assert answer.status == 200
            body = await answer.json()
        ids = [int(r["tradeId"]) for r in body["data"]]
        assert body["code"] == "0" and len(ids) == 100
        assert ids == list(range(top - 11, top - 111, -1))  # every fill, newest first
        assert set(ids) <= made and {"px", "sz", "side", "ts"} <= set(body["data"][0])
        async with session.get(f"{url}&after={top - 10}&before={top - 14}") as answer:
            body = await answer.json()
        assert [int(r["tradeId"]) for r in body["data"]] == [top - 11, top - 12, top - 13]
        for bad, code in (("&limit=101", "51000"), ("&type=3", "51000"), ("&after=x", "51000")):
            async with session.get(url + bad) as answer:
                assert (await answer.json())["code"] == code
        async with session.get(url.replace("BTC-USDT", "ETH-USDT")) as answer:
            assert (await answer.json())["code"] == "51001"
        # OKX's limit: 20 requests per 2 s per IP; the 21st within the window is refused
        sim.history_calls.extend([time.monotonic()] * (20 - len(sim.history_calls)))
        async with session.get(url + "&limit=1") as answer:
            assert answer.status == 429 and (await answer.json())["code"] == "50011"
        sim.history_calls.clear()  # the window passed
        async with session.get(url + "&limit=1") as answer:
            assert answer.status == 200


def test_bad_fault_is_a_usage_error() -> None:
    done = subprocess.run([*HUNDI, "simulate", "okx", "--fault", "explode:1"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "unknown fault" in done.stderr
    assert "Traceback" not in done.stderr


def test_collect_bad_symbol_is_one_line() -> None:
    done = subprocess.run(
        [*HUNDI, "collect", "okx", "--market", "swap", "--symbols", "BTCUSDT", "--duration", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and "not an OKX" in done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------- end to end


def sim_get(sim: SimulatorProcess, path: str) -> Any:
    with urllib.request.urlopen(f"{sim.rest_url}{path}", timeout=10) as answer:
        return json.load(answer)


def sim_book(sim: SimulatorProcess, inst: str) -> dict[tuple[int, float], float]:
    body = sim_get(sim, f"/api/v5/market/books?instId={inst}&sz=400")["data"][0]
    book = {(1, float(p)): float(q) for p, q, *_ in body["bids"]}
    book.update({(-1, float(p)): float(q) for p, q, *_ in body["asks"]})
    return book


def stored_book(store: Path, inst: str) -> dict[tuple[int, float], float] | None:
    try:
        levels = hundi.book_at(store, "okx", NORMALIZED[inst], pd.Timestamp.now(tz="UTC"))
    except (NotStored, StoreError, FileNotFoundError):
        return None
    if not levels.attrs.get("synced", False):
        return None
    return {
        (int(side), float(price)): float(size)
        for side, price, size in zip(levels["side"], levels["price"], levels["size"], strict=True)
    }


def collect_until_books_match(
    sim: SimulatorProcess, tmp: Path, steps: int, within_s: float = 150.0
) -> tuple[dict[str, Any], dict[str, Any]]:
    store, summary_path = tmp / "data", tmp / "summary.json"
    args = [
        *HUNDI, "collect", "okx", "--market", "spot,swap,futures", "--symbols", ",".join(INSTS),
        "--channels", CHANNELS, "--endpoint", sim.ws_url + "/ws/v5/public",
        "--rest-endpoint", sim.rest_url, "--store", str(store), "--flush-interval", "0.2",
        "--duration", str(within_s + 60), "--summary-json", str(summary_path),
    ]  # fmt: skip
    with (tmp / "collect.err").open("w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp)
        try:
            deadline = time.monotonic() + within_s
            while True:
                assert proc.poll() is None, (tmp / "collect.err").read_text()[-3000:]
                done = sim_get(sim, "/sim/stats")["steps"] >= steps
                if done and all(stored_book(store, i) == sim_book(sim, i) for i in INSTS):
                    break
                assert time.monotonic() < deadline, "stored books never matched the simulator's"
                time.sleep(0.25)  # polling interval of the condition above
            # the market is over: wait until the last of its pushes are stored (the slow ones,
            # derivatives and liquidations, come apart from the book)
            deadline = time.monotonic() + 60
            while True:
                stats = sim_get(sim, "/sim/stats")
                missing = unstored_last_pushes(store, stats)
                if not missing:
                    break
                assert proc.poll() is None, (tmp / "collect.err").read_text()[-3000:]
                assert time.monotonic() < deadline, (
                    f"the market's last pushes never stored: {missing}\n"
                    + (tmp / "collect.err").read_text()[-3000:]
                )
                time.sleep(0.25)  # polling interval of the condition above
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


def stored_or_empty(store: Path, channel: str) -> pd.DataFrame:
    try:
        return hundi.read(store, exchange="okx", channel=channel)
    except (NotStored, StoreError, FileNotFoundError):
        return pd.DataFrame()


def unstored_last_pushes(store: Path, stats: dict[str, Any]) -> list[str]:
    """The simulator's last pushes not stored yet: per instrument its last trade and its last
    mark price, open interest and funding rate, and its last liquidation. Once the market has
    ended (``--steps``) none of these are sent any more, and a connection delivers in order:
    with its last push stored, the collector has received every earlier one."""
    missing = []
    trades = stored_or_empty(store, "trades")
    for inst in INSTS:
        sent = sent_trade_ids(stats, inst)
        mine = trades[trades["native_symbol"] == inst] if not trades.empty else trades
        if sent and (mine.empty or max(sent) not in set(mine["trade_id"])):
            missing.append(f"{inst} trade {max(sent)}")
    derivatives = stored_or_empty(store, "derivative_ticker")
    last = {(r["inst"], r["channel"]): r for r in stats["derivatives"]}
    for (inst, channel), row in last.items():
        if channel not in ("mark-price", "open-interest", "funding-rate"):
            continue
        ts = pd.Timestamp(int(row["ts"]), unit="ms", tz="UTC")
        if (
            derivatives.empty
            or not (
                (derivatives.index == ts)
                & (derivatives["native_symbol"] == inst)
                & (derivatives["source"] == channel)
            ).any()
        ):
            missing.append(f"{inst} {channel} of {ts}")
    if stats["liquidations"]:
        row = stats["liquidations"][-1]
        sent_liq = (row["inst"], float(row["bkPx"]), float(row["sz"]))
        liquidations = stored_or_empty(store, "liquidations")
        if liquidations.empty or sent_liq not in set(
            zip(liquidations["native_symbol"], liquidations["price"], liquidations["size"],
                strict=True)
        ):  # fmt: skip
            missing.append(f"liquidation {sent_liq}")
    return missing


def sent_trade_ids(stats: dict[str, Any], inst: str) -> list[int]:
    """Last trade ids of the trades pushes sent (the stored ``trade_id``), in send order."""
    ids: list[int] = []
    for conn in stats["connections"]:
        ranges = conn["streams"].get(f"trades:{inst}")
        if ranges:
            assert not ranges["truncated"]
            made = {first: last for first, last in stats["trades"][inst]}
            for first, last in ranges["ranges"]:
                tid = first
                while tid <= last:  # the ranges join contiguous pushes: split them again
                    ids.append(made[tid])
                    tid = made[tid] + 1
    return ids


def spans_of(events: pd.DataFrame, symbol: str, kind: str) -> list[tuple[int, int]]:
    mine = events[(events["symbol"] == symbol) & (events["channel"] == "trades")
                  & (events["kind"] == kind)]  # fmt: skip
    return list(zip(mine["expected"], mine["received"], strict=True))


def assert_trades_exact_or_explained(store: Path, stats: dict[str, Any]) -> int:
    """Every trade push sent is stored once; every id of a stored trades gap is stored
    (fetched back over REST history-trades) or lies in a stored ``unrecoverable`` range.
    Returns the number of ids fetched back."""
    events = hundi.read(store, exchange="okx", channel="events")
    fetched = 0
    for inst in INSTS:
        symbol = NORMALIZED[inst]
        trades = hundi.read(store, exchange="okx", symbol=symbol, channel="trades")
        stored = set(trades["trade_id"].tolist())
        assert len(trades) == len(stored), f"{symbol}: a trade stored twice"
        made = {i for first, last in stats["trades"][inst] for i in range(first, last + 1)}
        assert stored <= made, f"{symbol}: stored trades the market never made"
        gaps = spans_of(events, symbol, "gap")
        lost = spans_of(events, symbol, "unrecoverable")
        missing = set(sent_trade_ids(stats, inst)) - stored
        unexplained = {i for i in missing if not any(lo <= i < hi for lo, hi in lost)}
        assert not unexplained, f"{symbol}: {sorted(unexplained)[:10]} lost silently"
        for lo, hi in gaps:
            holes = [i for i in range(lo, hi) if i not in stored]
            assert all(any(a <= i < b for a, b in lost) for i in holes), (symbol, lo, hi)
            fetched += hi - lo - len(holes)
    return fetched


def assert_derivatives_as_sent(store: Path, stats: dict[str, Any]) -> None:
    """Every mark price, funding rate and open interest stored was sent, and the merged
    records carry the previous value of the fields a push did not bring."""
    stored = hundi.read(store, exchange="okx", channel="derivative_ticker")
    sent = stats["derivatives"]
    assert len(stored) > 0
    marks = {(r["inst"], float(r["markPx"])) for r in sent if r["channel"] == "mark-price"}
    for inst in ("BTC-USDT-SWAP", "BTC-USD-261225"):
        mine = stored[stored["native_symbol"] == inst]
        got = {(inst, m) for m in mine[mine["source"] == "mark-price"]["mark_price"]}
        assert got and got <= marks
        oi = mine[mine["source"] == "open-interest"]
        sent_oi = {float(r["oi"]) for r in sent if r["channel"] == "open-interest"
                   and r["inst"] == inst}  # fmt: skip
        assert set(oi["open_interest"]) <= sent_oi
        later = mine.iloc[len(mine) // 2 :]
        assert not later["mark_price"].isna().any()  # merged: never NaN once known
        assert set(mine["size_unit"]) == {"contracts"}
    future = stored[stored["native_symbol"] == "BTC-USD-261225"]
    assert future["funding_rate"].isna().all()  # a dated future has no funding
    swap = stored[stored["native_symbol"] == "BTC-USDT-SWAP"]
    rates = {float(r["fundingRate"]) for r in sent if r["channel"] == "funding-rate"}
    funded = swap[swap["source"] == "funding-rate"]
    assert len(funded) and set(funded["funding_rate"]) <= rates
    assert funded["predicted_funding_rate"].isna().all()  # the simulator sends no forecast
    liquidations = hundi.read(store, exchange="okx", channel="liquidations")
    sent_liq = {(r["inst"], float(r["bkPx"]), float(r["sz"])) for r in stats["liquidations"]}
    got_liq = set(zip(liquidations["native_symbol"], liquidations["price"],
                      liquidations["size"], strict=True))  # fmt: skip
    assert got_liq <= sent_liq
    assert set(liquidations["completeness"]) <= {"sampled"}
    instruments = hundi.read(store, exchange="okx", channel="instruments")
    by = dict(zip(instruments["native_symbol"], instruments["contract_type"], strict=True))
    assert by == {"BTC-USDT": "spot", "BTC-USDT-SWAP": "perpetual", "BTC-USD-261225": "future"}
    assert not math.isnan(float(instruments["contract_size"].iloc[0]))


@pytest.mark.slow
def test_collect_stores_every_trade_and_ends_with_the_simulators_books(tmp_path: Path) -> None:
    steps = 2000
    args = ["--symbols", ",".join(INSTS), "--rate", "250", "--steps", str(steps), "--seed", "7"]
    with SimulatorProcess(args, venue="okx") as sim:
        summary, stats = collect_until_books_match(sim, tmp_path, steps)
    store = tmp_path / "data"
    assert summary["gaps"] == 0
    for inst in INSTS:
        trades = hundi.read(store, exchange="okx", symbol=NORMALIZED[inst], channel="trades")
        assert trades["trade_id"].tolist() == sent_trade_ids(stats, inst)
        assert len(trades) > 0
    assert_derivatives_as_sent(store, stats)
    bbo = hundi.read(store, exchange="okx", channel="bbo")
    assert len(bbo) > 0 and (bbo["bid_price"] <= bbo["ask_price"]).all()


@pytest.mark.slow
def test_faults_are_stored_as_gaps_and_resynced_in_place(tmp_path: Path) -> None:
    steps = 7000  # 28 s of market: timed faults strike in its first 14 s
    args = [
        "--symbols", ",".join(INSTS), "--rate", "250", "--steps", str(steps), "--seed", "11",
        "--fault", "stale-snapshot:2", "--fault", "seq-reset:3", "--fault", "skip:2",
        "--fault", "disconnect:5",
    ]  # fmt: skip
    with SimulatorProcess(args, venue="okx") as sim:
        summary, stats = collect_until_books_match(sim, tmp_path, steps)
    store = tmp_path / "data"
    assert {f["kind"] for f in stats["faults"]} == {
        "stale-snapshot", "seq-reset", "skip", "disconnect"}  # fmt: skip
    events = hundi.read(store, exchange="okx", channel="events")
    book = events[events["channel"] == "book"]
    gaps = book[book["kind"] == "gap"]
    assert len(gaps) > 0 and summary["gaps"] > 0 and summary["resyncs"] > 0
    assert set(gaps["detail"]) <= {"disconnect", "prevSeqId != previous seqId"}
    assert (gaps["detail"] == "prevSeqId != previous seqId").any()  # the skip fault
    stale = book[book["detail"].str.startswith("stale snapshot")]
    assert len(stale) >= 1 and (stale["kind"] == "resync").all()
    for symbol in NORMALIZED.values():
        mine = book[book["symbol"] == symbol]
        assert mine["kind"].iloc[-1] in ("synced", "stopped")
        assert (mine["kind"] == "synced").sum() > (mine["kind"] == "gap").sum()
    assert assert_trades_exact_or_explained(store, stats) >= 0


@pytest.mark.slow
def test_trade_gaps_are_fetched_back_over_history_trades(tmp_path: Path) -> None:
    steps = 7000  # 28 s of market: trade pushes withheld in its first 14 s
    args = ["--symbols", ",".join(INSTS), "--rate", "250", "--steps", str(steps), "--seed", "5",
            "--fault", "trade-skip:1"]  # fmt: skip
    with SimulatorProcess(args, venue="okx") as sim:
        _, stats = collect_until_books_match(sim, tmp_path, steps)
    store = tmp_path / "data"
    skipped = [f for f in stats["faults"] if f["kind"] == "trade-skip"]
    events = hundi.read(store, exchange="okx", channel="events")
    seen = 0
    for inst in INSTS:
        symbol = NORMALIZED[inst]
        trades = hundi.read(store, exchange="okx", symbol=symbol, channel="trades")
        stored = set(trades["trade_id"].tolist())
        first_live = int(trades["first_trade_id"][trades["first_trade_id"] > 0].min())
        # pushes withheld once the collector was reading (earlier ones it never knew of)
        for fault in (f for f in skipped if f["symbol"] == inst and f["first_id"] > first_live):
            seen += 1
            withheld = set(range(fault["first_id"], fault["last_id"] + 1))
            assert withheld <= stored, f"{symbol}: withheld fills {withheld - stored} missing"
            assert any(lo <= fault["first_id"] < hi
                       for lo, hi in spans_of(events, symbol, "backfilled"))  # fmt: skip
        assert spans_of(events, symbol, "unrecoverable") == []
    assert seen >= 2 and stats["history_served"] >= 1
    fetched = assert_trades_exact_or_explained(store, stats)
    assert fetched >= seen
