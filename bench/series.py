"""Series benchmarks: offline 1-minute bars over 10M trades vs pandas, online engine throughput.

1. ``hundi.series.time_bars(trades, "1m")`` over N synthetic trades (one symbol, ~1 day,
   prices as a random walk) in the DataFrame layout ``hundi.read`` returns, against a plain
   pandas ``resample("1min")`` computing the same OHLCV/VWAP/count/buy-sell columns.
2. The online engine (``SeriesEngine.process``) fed collector-like micro-batches of Trade
   records (records → numpy columns included), with ``bars:1s,bars:1m,ticks:100,flow:1m@1s``;
   and book changes with ``book:10@1s``.

Usage: ``python bench/series.py [--trades 10000000] [--repeat 3]``. Results go to stdout and
``bench/results/series.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hundi.records import ASK, BID, BookChange, Channel, Trade
from hundi.series import time_bars
from hundi.series.engine import SeriesEngine
from hundi.series.spec import parse_series

S = 1_000_000_000
T0 = 1_700_000_000 * S


def synthetic_trades(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = T0 + np.cumsum(rng.integers(0, 17_000_000, n))  # ~8.6 ms apart: 10M ≈ 1 day
    recv = ts + rng.integers(1_000_000, 80_000_000, n)
    price = np.round(30_000 + np.cumsum(rng.normal(0, 0.5, n)), 2)
    frame = pd.DataFrame(
        {
            "exchange": "binance",
            "symbol": "BTC-USDT",
            "native_symbol": "BTCUSDT",
            "recv_ts": pd.to_datetime(recv, utc=True),
            "trade_id": np.arange(n, dtype=np.int64),
            "price": price,
            "size": np.round(rng.exponential(0.05, n), 5),
            "side": rng.choice(np.array([1, -1], dtype=np.int8), n),
            "first_trade_id": np.arange(n, dtype=np.int64),
            "last_trade_id": np.arange(n, dtype=np.int64),
        },
        index=pd.DatetimeIndex(pd.to_datetime(ts, utc=True), name="ts"),
    )
    return frame


def pandas_bars(trades: pd.DataFrame) -> pd.DataFrame:
    """The plain-pandas way: resample by exchange time (no grace rule, no empty-bar carry)."""
    frame = trades[["price", "size", "side"]].copy()
    frame["quote"] = frame["price"] * frame["size"]
    frame["buy"] = frame["size"].where(frame["side"] > 0, 0.0)
    frame["sell"] = frame["size"].where(frame["side"] < 0, 0.0)
    grouped = frame.resample("1min")
    bars = grouped["price"].ohlc()
    sums = grouped[["size", "quote", "buy", "sell"]].sum()
    bars = bars.join(sums)
    bars["count"] = grouped["price"].count()
    bars["vwap"] = bars["quote"] / bars["size"]
    return bars


def best_of(repeat: int, action: Any) -> tuple[float, float, Any]:
    """Best wall and best CPU seconds of ``repeat`` runs (CPU time is what a loaded 2-core box
    distorts least), and the result."""
    wall = cpu = float("inf")
    result = None
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = action()
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - started_cpu)
    return wall, cpu, result


def trade_records(frame: pd.DataFrame) -> list[Trade]:
    ts = frame.index.asi8
    recv = pd.DatetimeIndex(frame["recv_ts"]).asi8
    return [
        Trade(
            exchange="binance",
            symbol="BTC-USDT",
            native_symbol="BTCUSDT",
            ts=int(t),
            recv_ts=int(r),
            trade_id=int(i),
            price=float(p),
            size=float(q),
            side=int(s),
            first_trade_id=int(i),
            last_trade_id=int(i),
        )
        for t, r, i, p, q, s in zip(
            ts, recv, frame["trade_id"], frame["price"], frame["size"], frame["side"], strict=True
        )
    ]


def online_trades(n: int) -> dict[str, float]:
    trades = trade_records(synthetic_trades(n, seed=2))
    engine = SeriesEngine([(None, parse_series("bars:1s,bars:1m,ticks:100,flow:1m@1s"))])
    per_drain = 5_000  # trades per 0.5 s drain at 10k trades/s
    started = time.process_time()
    for start in range(0, len(trades), per_drain):
        batch = trades[start : start + per_drain]
        engine.process({Channel.TRADES: batch}, batch[-1].recv_ts)
    cpu = time.process_time() - started
    return {"trades": n, "cpu_s": round(cpu, 3), "trades_per_cpu_s": round(n / cpu)}


def online_book(n: int, seed: int = 3) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    rows: list[BookChange] = []
    ts = T0
    for i in range(500):  # a 1000-level snapshot
        for side, price in ((BID, 30_000 - i * 0.5), (ASK, 30_000.5 + i * 0.5)):
            rows.append(BookChange(
                exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts,
                recv_ts=ts, side=side, price=price, size=1.0, snapshot=True,
                first_update_id=-1, update_id=1, prev_update_id=-1,
            ))  # fmt: skip
    offsets = rng.integers(0, 500, n)
    sides = rng.choice([BID, ASK], n)
    sizes = np.round(rng.exponential(1.0, n), 3) * (rng.random(n) > 0.2)
    for k in range(n):
        ts += 100_000  # 10k changes/s
        price = 30_000 - offsets[k] * 0.5 if sides[k] == BID else 30_000.5 + offsets[k] * 0.5
        rows.append(BookChange(
            exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=ts,
            side=int(sides[k]), price=float(price), size=float(sizes[k]), snapshot=False,
            first_update_id=k + 2, update_id=k + 2, prev_update_id=k + 1,
        ))  # fmt: skip
    engine = SeriesEngine([(None, parse_series("book:10@1s"))])
    per_drain = 5_000
    started = time.process_time()
    for start in range(0, len(rows), per_drain):
        batch = rows[start : start + per_drain]
        engine.process({Channel.BOOK: batch}, batch[-1].recv_ts)
    cpu = time.process_time() - started
    return {"changes": n, "cpu_s": round(cpu, 3), "changes_per_cpu_s": round(n / cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=10_000_000)
    parser.add_argument("--online-trades", type=int, default=1_000_000)
    parser.add_argument("--book-changes", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    trades = synthetic_trades(args.trades)
    ours_s, ours_cpu, ours = best_of(args.repeat, lambda: time_bars(trades, "1m"))
    pandas_s, pandas_cpu, theirs = best_of(args.repeat, lambda: pandas_bars(trades))
    results = {
        "offline_1m_bars": {
            "trades": args.trades,
            "bars": len(ours),
            "hundi_time_bars_s": round(ours_s, 3),
            "hundi_time_bars_cpu_s": round(ours_cpu, 3),
            "pandas_resample_s": round(pandas_s, 3),
            "pandas_resample_cpu_s": round(pandas_cpu, 3),
            "pandas_bars": len(theirs),
        },
        "online_trades": online_trades(args.online_trades),
        "online_book": online_book(args.book_changes),
    }
    print(json.dumps(results, indent=2))
    out = Path(__file__).resolve().parent / "results" / "series.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
