"""Cassandra row-per-record layout vs columnar chunks, in one run against the real local node.

Writes one symbol-day of ``--records`` trades (24 h, one stream) in collector-sized ``write``
calls into two scratch keyspaces, one per layout, the calls interleaved so both see the same
load; then, per layout: client CPU per record (this process, every thread: the driver's I/O
threads included), bytes per trade on disk after ``nodetool flush``, reading the symbol-day into
a DataFrame (``hundi.read``'s path), and a 1-minute-bars ``hundi serve`` request over the 24 h
(no stored series: bars computed from the trades); then ``hundi store migrate`` moves the row
layout's day into chunks (its rate) and that day is read again. Before that, the chunk codecs
are compared offline on the same trades. The keyspaces are dropped at the end.

Run: ``make bench-stores`` (``HUNDI_SERVICES_DIR`` names the services folder whose nodetool to
use; default ``.services``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from hundi.records import Channel, Record, Trade, to_arrow
from hundi.stores.base import Store, open_store
from hundi.stores.cassandra import CassandraStore
from hundi.stores.cassandra.chunks import encode_chunks, read_chunk
from hundi.stores.cassandra.migration import migrate_partition

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cassandra_write import drop_keyspace, one_line_errors

T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z
DAY_NS = 86_400 * 1_000_000_000
REPO = Path(__file__).resolve().parents[1]
EXCHANGE, SYMBOL = "bench", "BTC-USDT"


def trades(first: int, count: int, total: int) -> list[Record]:
    """Trades ``first..first+count`` of ``total`` spread evenly over one UTC day."""
    step = DAY_NS // total
    return [
        Trade(
            exchange=EXCHANGE, symbol=SYMBOL, native_symbol="BTCUSDT", ts=T0 + i * step,
            recv_ts=T0 + i * step + 2_000_000 + i % 997 * 1_000, trade_id=10_000_000 + i,
            price=60_000.0 + (i * 7919 % 2000) / 100, size=0.001 * (i % 50 + 1),
            side=1 if i % 3 else -1, first_trade_id=10_000_000 + i, last_trade_id=10_000_000 + i,
        )
        for i in range(first, first + count)
    ]  # fmt: skip


def cpu_and_wall(action: Callable[[], Any]) -> tuple[float, float, Any]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = action()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def codecs(count: int) -> None:
    """zstd vs lz4 for the chunk's Arrow IPC buffers: size and CPU, offline."""
    table = to_arrow(Channel.TRADES, trades(0, count, count))
    print(f"chunk codecs on {count:,} trades in chunks of 5,000:")
    for codec in ("zstd", "lz4"):
        cpu_enc, _, chunks = cpu_and_wall(
            lambda codec=codec: list(
                encode_chunks(Channel.TRADES, table, codec=codec, max_rows=5_000)
            )
        )
        size = sum(len(c.data) for c in chunks)
        cpu_dec, _, _ = cpu_and_wall(
            lambda chunks=chunks: [
                read_chunk(Channel.TRADES, c.exchange, c.symbol, first_ts=c.first_ts,
                           chunk_id=c.chunk_id, records=c.records, data=c.data)
                for c in chunks
            ]
        )  # fmt: skip
        print(
            f"  {codec:5} {size / count:6.1f} bytes/trade  encode {cpu_enc / count * 1e6:5.2f} "
            f"µs/rec  decode {cpu_dec / count * 1e6:5.2f} µs/rec"
        )


def nodetool(*arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, str(REPO / "services" / "manage.py"), "nodetool", *arguments],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"nodetool {' '.join(arguments)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def bytes_on_disk(keyspace: str, table: str) -> int:
    nodetool("flush", keyspace, table)
    stats = nodetool("tablestats", f"{keyspace}.{table}")
    found = re.search(r"Space used \(live\): (\d+)", stats)
    if found is None:
        raise SystemExit(f"no 'Space used (live)' in nodetool tablestats {keyspace}.{table}")
    return int(found.group(1))


def bars_request(url: str, repeats: int = 3) -> tuple[float, float, str]:
    """Wall seconds of the first ``/api/v1/bars`` request over the day (1-minute bars) to a
    fresh server (it connects to Cassandra on its first request) and the best of ``repeats``
    more (a running server), and the outcome (bars, or the API's refusal: it answers 503 when
    a read takes longer than its limit)."""
    from aiohttp.test_utils import TestClient, TestServer

    from hundi.api.server import create_app

    async def ask() -> tuple[float, float, str]:
        async with TestClient(TestServer(create_app(url))) as client:
            took: list[float] = []
            outcome = ""
            for _ in range(1 + repeats):
                started = time.perf_counter()
                reply = await client.get(
                    "/api/v1/bars",
                    params={
                        "exchange": EXCHANGE, "symbol": SYMBOL, "interval": "1m",
                        "from": str(T0 // 1_000_000), "to": str((T0 + DAY_NS) // 1_000_000),
                    },
                )  # fmt: skip
                rows = await reply.json()
                took.append(time.perf_counter() - started)
                if reply.status != 200:
                    return took[0], min(took), f"HTTP {reply.status} {rows}"
                outcome = f"{len(rows)} one-minute bars"
            return took[0], min(took[1:]), outcome

    return asyncio.run(ask())


def slices(total: int, per_call: int) -> Iterator[list[Record]]:
    for first in range(0, total, per_call):
        yield trades(first, min(per_call, total - first), total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="cassandra://127.0.0.1:9042")
    parser.add_argument("--records", type=int, default=2_000_000, help="trades in the day")
    parser.add_argument("--per-write", type=int, default=5_000, help="records per write call")
    parser.add_argument("--rounds", type=int, default=2, help="reads per layout, interleaved")
    args = parser.parse_args()
    os.environ.setdefault("HUNDI_SERVICES_DIR", str(REPO / ".services"))
    codecs(min(args.records, 200_000))

    urls = {"rows": f"{args.host}/hundi_bench_rows", "chunks": f"{args.host}/hundi_bench_chunks"}
    for url in urls.values():
        drop_keyspace(url)
    stores: dict[str, Store] = {
        "rows": open_store(urls["rows"], chunked_channels=frozenset()),
        "chunks": open_store(urls["chunks"], chunked_channels=frozenset({Channel.TRADES})),
    }
    cpu = dict.fromkeys(stores, 0.0)
    wall = dict.fromkeys(stores, 0.0)
    try:
        for batch in slices(args.records, args.per_write):
            for name, store in stores.items():  # interleaved: the same load for both
                spent, took, _ = cpu_and_wall(
                    lambda store=store, batch=batch: store.write({Channel.TRADES: batch})
                )
                cpu[name] += spent
                wall[name] += took
    finally:
        for store in stores.values():
            store.close()
    n = args.records
    print(f"\n{n:,} trades, one symbol-day, {args.per_write:,} per write call")
    for name in stores:
        print(
            f"  write {name:6} {n / wall[name]:>10,.0f} rec/s  client CPU "
            f"{cpu[name] / n * 1e6:6.2f} µs/rec"
        )
    print(
        f"  write ratio chunks/rows: {wall['rows'] / wall['chunks']:.1f}x rec/s, "
        f"{cpu['rows'] / cpu['chunks']:.1f}x less client CPU"
    )

    disk = {
        "rows": bytes_on_disk("hundi_bench_rows", "trades"),
        "chunks": bytes_on_disk("hundi_bench_chunks", "trades_chunks"),
    }
    for name, size in disk.items():
        print(f"  disk  {name:6} {size / n:10.1f} bytes/trade (nodetool flush; live SSTables)")
    print(f"  disk ratio rows/chunks: {disk['rows'] / disk['chunks']:.1f}x")

    reads: dict[str, list[tuple[float, float]]] = {name: [] for name in urls}
    for _ in range(args.rounds):
        for name, url in urls.items():
            reader = open_store(url, read_only=True)
            try:
                spent, took, frame = cpu_and_wall(
                    lambda reader=reader: reader.read(
                        exchange=EXCHANGE, symbol=SYMBOL, channel=Channel.TRADES
                    )
                )
            finally:
                reader.close()
            if len(frame) != n:
                raise SystemExit(f"{name}: read {len(frame)} trades, wrote {n}")
            reads[name].append((took, spent))
    best = {name: min(r[0] for r in runs) for name, runs in reads.items()}
    for name, runs in reads.items():
        took, spent = min(runs)
        print(
            f"  read  {name:6} {n / took:>10,.0f} rec/s into a DataFrame "
            f"(best of {len(runs)}; CPU {spent / n * 1e6:.2f} µs/rec)"
        )
    print(f"  read ratio chunks/rows: {best['rows'] / best['chunks']:.1f}x")

    for name, url in urls.items():
        first, warm, outcome = bars_request(url)
        print(
            f"  bars  {name:6} {warm:8.2f} s: {outcome} over 24 h (API, no stored series; "
            f"best of 3 on a running server, its first request {first:.2f} s)"
        )

    # hundi store migrate: the row layout's day moved into chunks, then read again
    migrating = open_store(urls["rows"], chunked_channels=frozenset({Channel.TRADES}))
    assert isinstance(migrating, CassandraStore)
    try:
        cpu_s, took, report = cpu_and_wall(
            lambda: migrate_partition(
                migrating, Channel.TRADES, EXCHANGE, SYMBOL, T0 // DAY_NS, margin_s=60
            )
        )
    finally:
        migrating.close()
    if report.rows != n or report.failed:
        raise SystemExit(f"migrate: {report}")
    print(
        f"  migrate rows -> chunks: {n / took:,.0f} rec/s ({took:.1f} s, {report.chunks} chunks, "
        f"client CPU {cpu_s / n * 1e6:.2f} µs/rec)"
    )
    reader = open_store(urls["rows"], read_only=True)
    try:
        _, took_after, frame = cpu_and_wall(
            lambda: reader.read(exchange=EXCHANGE, symbol=SYMBOL, channel=Channel.TRADES)
        )
    finally:
        reader.close()
    if len(frame) != n:
        raise SystemExit(f"migrated: read {len(frame)} trades, wrote {n}")
    print(
        f"  read  migrated {n / took_after:>10,.0f} rec/s into a DataFrame (one read; the same "
        f"day in rows: {n / best['rows']:,.0f})"
    )
    for url in urls.values():
        drop_keyspace(url)
    pa.default_memory_pool().release_unused()


if __name__ == "__main__":
    one_line_errors(main)
