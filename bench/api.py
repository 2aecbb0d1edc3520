"""The market dashboard's requests over a day of a busy symbol: stored series vs raw data.

A day (2024-05-01 UTC) of one symbol goes into a scratch keyspace of the real Cassandra,
written with the Cassandra store in collector-sized calls: ``--trades`` trades and ``--quotes``
BBO quotes (a random walk), then timed over HTTP against a real ``hundi serve``:

1. before any series is stored: bars and book computed from the trades / BBO quotes;
2. after storing what the collectors store (``bars:10s``, ``bars:1m``, ``book:10@10s``,
   computed with ``hundi.series`` from the same trades and a synthetic book of
   ``--book-changes`` changes): the same requests answered from the series (1m bars as
   stored, 5m and 1h rolled up from 1m, the 1m book sampled from the 10 s one);
3. with ``bars:1s`` and ``book:10@1s`` stored as well: what a 1s series would cost every
   request (its rows share the Cassandra partition and are read and skipped).

Each request covers the whole day (the dashboard's "last 24 hours"); the best of
``--repeats`` wall times is reported (one run of each raw-data request: they take long).
Results go to ``bench/results/api.json``; the keyspace is dropped at the end. Credentials:
the environment or ``.secret.cassandra.env``.
Run: ``make bench-api`` (or ``.venv/bin/python bench/api.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from cassandra_write import drop_keyspace

from hundi import series
from hundi.records import ASK, BID, Bbo, Channel, Record, Trade, from_arrow
from hundi.stores.base import Store, open_store

BENCH = Path(__file__).resolve().parent
HUNDI = Path(sys.executable).with_name("hundi")
DAY_NS = pd.Timestamp("2024-05-01", tz="UTC").value
SPAN_NS = 86_400 * 10**9
NAMES = {"exchange": "binance", "symbol": "BTC-USDT", "native_symbol": "BTCUSDT"}
CHUNK = 5_000  # records per write call, like a collector flush
#: (label, endpoint, interval): what one market dashboard refresh over 24 h asks for
REQUESTS = (
    ("bars 1m", "bars", "1m"),
    ("bars 5m", "bars", "5m"),
    ("bars 1h", "bars", "1h"),
    ("book 1m", "book", "1m"),
)


def _walk(rng: np.random.Generator, ts: np.ndarray) -> np.ndarray:
    """A price path at the given times (0.01 ticks, ~60k)."""
    return np.round(60_000 + np.cumsum(rng.normal(0, 0.4, len(ts))), 2)


def make_trades(rng: np.random.Generator, count: int) -> pd.DataFrame:
    ts = DAY_NS + np.sort(rng.integers(0, SPAN_NS, count))
    ids = np.arange(count, dtype=np.int64)
    frame = pd.DataFrame(
        {
            **NAMES,
            "recv_ts": pd.to_datetime(ts + rng.integers(1_000_000, 20_000_000, count), utc=True),
            "trade_id": ids,
            "price": _walk(rng, ts),
            "size": np.round(rng.exponential(0.05, count), 5) + 0.00001,
            "side": np.where(rng.random(count) < 0.5, 1, -1).astype(np.int8),
            "first_trade_id": ids,
            "last_trade_id": ids,
        },
        index=pd.DatetimeIndex(pd.to_datetime(ts, utc=True), name="ts"),
    )
    return frame


def trade_records(trades: pd.DataFrame, lo: int, hi: int) -> list[Record]:
    part = trades.iloc[lo:hi]
    return [
        Trade(**NAMES, ts=t, recv_ts=r, trade_id=i, price=p, size=s, side=d,
              first_trade_id=i, last_trade_id=i)
        for t, r, i, p, s, d in zip(
            part.index.asi8.tolist(), part["recv_ts"].array.asi8.tolist(),
            part["trade_id"].tolist(), part["price"].tolist(), part["size"].tolist(),
            part["side"].tolist(), strict=True,
        )
    ]  # fmt: skip


def quote_records(rng: np.random.Generator, count: int) -> Iterator[list[Record]]:
    ts = DAY_NS + np.sort(rng.integers(0, SPAN_NS, count))
    mid = _walk(rng, ts)
    spread = 0.01 * rng.integers(1, 4, count)
    bid_size = np.round(rng.exponential(1.0, count), 4) + 0.0001
    ask_size = np.round(rng.exponential(1.0, count), 4) + 0.0001
    for lo in range(0, count, CHUNK):
        hi = min(lo + CHUNK, count)
        yield [
            Bbo(**NAMES, ts=t, recv_ts=t, update_id=lo + k, bid_price=m - w / 2, bid_size=b,
                ask_price=m + w / 2, ask_size=a)
            for k, (t, m, w, b, a) in enumerate(zip(
                ts[lo:hi].tolist(), mid[lo:hi].tolist(), spread[lo:hi].tolist(),
                bid_size[lo:hi].tolist(), ask_size[lo:hi].tolist(), strict=True,
            ))
        ]  # fmt: skip


def make_book(rng: np.random.Generator, count: int) -> pd.DataFrame:
    """Book changes as ``hundi.read(channel="book")`` returns them: a 50-level snapshot at the
    day's start, then level updates and deletes around a walking mid."""
    levels = 50
    snap_price = np.r_[60_000 - 0.01 * np.arange(1, levels + 1), 60_000 + 0.01 * np.arange(levels)]
    snap_side = np.r_[np.full(levels, BID), np.full(levels, ASK)]
    ts = DAY_NS + np.sort(rng.integers(1, SPAN_NS, count))
    mid = _walk(rng, ts)
    side = np.where(rng.random(count) < 0.5, BID, ASK)
    offset = 0.01 * rng.integers(0, 30, count)
    price = np.round(np.where(side == BID, mid - 0.01 - offset, mid + offset), 2)
    size = np.where(rng.random(count) < 0.3, 0.0, np.round(rng.exponential(0.5, count), 4))
    update_id = np.r_[np.zeros(2 * levels, np.int64), np.arange(1, count + 1)]
    all_ts = np.r_[np.full(2 * levels, DAY_NS), ts]
    return pd.DataFrame(
        {
            **NAMES,
            "recv_ts": pd.to_datetime(all_ts + 2_000_000, utc=True),
            "side": np.r_[snap_side, side].astype(np.int8),
            "price": np.r_[snap_price, price],
            "size": np.r_[np.full(2 * levels, 1.0), size],
            "snapshot": np.r_[np.ones(2 * levels, bool), np.zeros(count, bool)],
            "first_update_id": update_id,
            "update_id": update_id,
            "prev_update_id": update_id - 1,
        },
        index=pd.DatetimeIndex(pd.to_datetime(all_ts, utc=True), name="ts"),
    )


def series_records(channel: Channel, frame: pd.DataFrame) -> list[Record]:
    """A ``hundi.series`` frame → records to store (timestamps as ns integers)."""
    flat = frame.reset_index()
    arrays = {
        name: pa.array(flat[name].array.asi8)
        if isinstance(flat[name].dtype, pd.DatetimeTZDtype)
        else pa.array(flat[name].to_numpy() if flat[name].dtype.kind in "biuf" else
                      flat[name].astype(str).tolist())
        for name in flat.columns
    }  # fmt: skip
    return from_arrow(channel, pa.table(arrays))


def store_series(store: Store, frames: dict[Channel, list[pd.DataFrame]]) -> dict[str, int]:
    """Write ``hundi.series`` frames as the collector would; rows written per channel."""
    for channel, parts in frames.items():
        for frame in parts:
            records = series_records(channel, frame)
            write(store, channel, (records[i : i + CHUNK] for i in range(0, len(records), CHUNK)))
    return {channel.value: sum(len(f) for f in parts) for channel, parts in frames.items()}


def write(store: Store, channel: Channel, chunks: Iterator[list[Record]]) -> tuple[int, float]:
    started, total = time.perf_counter(), 0
    for chunk in chunks:
        store.write({channel: chunk})
        total += len(chunk)
    store.flush()
    return total, time.perf_counter() - started


@contextmanager
def serve(url: str, work: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [str(HUNDI), "serve", "--store", url, "--port", str(port)], cwd=work,
        env={**os.environ, "HUNDI_HEALTH_FILE": str(work / "health.json")},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"{base}/api/v1/health", timeout=5):
                    break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def timed(base: str, endpoint: str, interval: str, repeats: int) -> dict[str, Any]:
    """Best wall time of ``repeats`` GETs over the whole day; rows and the source header."""
    query = (
        f"exchange={NAMES['exchange']}&symbol={NAMES['symbol']}&interval={interval}"
        f"&from={DAY_NS // 10**6}&to={(DAY_NS + SPAN_NS) // 10**6}"
    )
    times, rows, source, status = [], 0, "", 0
    for _ in range(repeats):
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{base}/api/v1/{endpoint}?{query}", timeout=600) as reply:
                body = json.load(reply)
                status, source = reply.status, reply.headers.get("X-Hundi-Source", "")
        except urllib.error.HTTPError as error:
            body, status, source = json.load(error), error.code, ""
        times.append(time.perf_counter() - started)
        rows = len(body) if isinstance(body, list) else 0
    return {"seconds": round(min(times), 3), "rows": rows, "source": source, "status": status}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="cassandra://127.0.0.1:9042/hundi_bench_api")
    parser.add_argument("--trades", type=int, default=2_000_000)
    parser.add_argument("--quotes", type=int, default=1_000_000)
    parser.add_argument("--book-changes", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(5)
    result: dict[str, Any] = {"machine": platform.machine(), "trades": args.trades,
                              "quotes": args.quotes, "book_changes": args.book_changes}  # fmt: skip
    drop_keyspace(args.url)
    try:
        store = open_store(args.url)
        try:
            trades = make_trades(rng, args.trades)
            chunks = (trade_records(trades, lo, lo + CHUNK) for lo in range(0, args.trades, CHUNK))
            n, seconds = write(store, Channel.TRADES, chunks)
            print(f"wrote {n:,} trades in {seconds:.0f} s", flush=True)
            n, seconds = write(store, Channel.BBO, quote_records(rng, args.quotes))
            print(f"wrote {n:,} quotes in {seconds:.0f} s", flush=True)
            with tempfile.TemporaryDirectory() as work, serve(args.url, Path(work)) as base:
                raw = {
                    label: timed(base, endpoint, interval, 1)
                    for label, endpoint, interval in REQUESTS
                }
                print("timed the raw-data answers", flush=True)
                book = make_book(rng, args.book_changes)
                stored = {
                    Channel.BARS: [series.time_bars(trades, "10s"), series.time_bars(trades, "1m")],
                    Channel.BOOK_TOP: [series.book_snapshots(book, 10, "10s")],
                }
                series_rows = store_series(store, stored)
                print(f"stored the collectors' series: {series_rows}", flush=True)
                served = {
                    label: timed(base, endpoint, interval, args.repeats)
                    for label, endpoint, interval in REQUESTS
                }
                # what 1s series would cost: every read of the partition skips their rows
                finer = {
                    Channel.BARS: [series.time_bars(trades, "1s")],
                    Channel.BOOK_TOP: [series.book_snapshots(book, 10, "1s")],
                }
                print(f"stored 1s series too: {store_series(store, finer)}", flush=True)
                with_1s = {
                    label: timed(base, endpoint, interval, args.repeats)
                    for label, endpoint, interval in REQUESTS
                }
        finally:
            store.close()
    finally:
        drop_keyspace(args.url)
    result["series_rows"] = series_rows
    result["requests"] = {
        label: {"raw": raw[label], "stored": served[label], "stored_with_1s": with_1s[label]}
        for label, _, _ in REQUESTS
    }
    print(
        f"\n{'request (24 h)':14} {'from raw data':>22} {'from the stored series':>36} "
        f"{'speed-up':>8} {'1s also stored':>14}"
    )
    for label, _, _ in REQUESTS:
        a, b, c = raw[label], served[label], with_1s[label]
        print(
            f"{label:14} {a['seconds']:>7.2f} s {a['source']:>6} {a['rows']:>4} rows "
            f"{b['seconds']:>7.3f} s {b['source']:>19} {b['rows']:>4} rows "
            f"{a['seconds'] / max(b['seconds'], 1e-6):>7.0f}x {c['seconds']:>12.3f} s"
        )
    out = BENCH / "results" / "api.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults: {out.relative_to(BENCH.parent)}")


if __name__ == "__main__":
    main()
