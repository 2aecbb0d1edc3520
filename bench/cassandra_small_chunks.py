"""Reading a day of small chunks: what live-rate flushes cost the reader, measured.

At live rates the writer flushes every ~0.5 s, so a busy stream writes ~172,800 chunks of a
few records a day (one INSERT each: a write returns only once acknowledged, so the store may
not buffer). This writes one symbol-day of ``--chunks`` chunks of ``--per-chunk`` trades into
one scratch keyspace and the same trades in collector-max-speed chunks (``--per-write`` per
write call) into another, then reads the day back from both (``hundi.read``'s path), the reads
interleaved, and prints records/s, client CPU per record and the ratio. The keyspaces are
dropped at the end.

Run: ``.venv/bin/python bench/cassandra_small_chunks.py`` (the real local node, credentials as
for ``make bench-stores``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cassandra.concurrent import execute_concurrent

from hundi.records import Channel, Record, Trade, to_arrow
from hundi.stores.base import open_store
from hundi.stores.cassandra import CassandraStore
from hundi.stores.cassandra.chunks import chunk_table_spec, encode_chunks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cassandra_write import drop_keyspace

T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z
DAY_NS = 86_400 * 1_000_000_000
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


def write_small(store: CassandraStore, total: int, per_chunk: int) -> int:
    """``total`` trades as chunks of ``per_chunk``, inserted the way the store does (one INSERT
    per chunk), many in flight: the bench needs the stored layout, not a live-rate write."""
    store.write({Channel.TRADES: trades(0, per_chunk, total)})  # the index entry, chunk 0
    spec = chunk_table_spec(Channel.TRADES)
    insert = store._session.prepare(spec.insert_cql(store.settings.keyspace))
    written = 1
    block = per_chunk * 5_000
    for first in range(per_chunk, total, block):
        table = to_arrow(Channel.TRADES, trades(first, min(block, total - first), total))
        statements = [
            (insert, chunk.values(0))  # one writer
            for start in range(0, table.num_rows, per_chunk)
            for chunk in encode_chunks(Channel.TRADES, table.slice(start, per_chunk))
        ]
        for ok, outcome in execute_concurrent(store._session, statements, concurrency=64):
            if not ok:
                raise SystemExit(f"insert failed: {outcome}")
        written += len(statements)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="cassandra://127.0.0.1:9042")
    parser.add_argument("--chunks", type=int, default=172_800, help="small chunks in the day")
    parser.add_argument("--per-chunk", type=int, default=20, help="trades per small chunk")
    parser.add_argument("--per-write", type=int, default=100_000, help="trades per big write")
    parser.add_argument("--rounds", type=int, default=2, help="reads per layout, interleaved")
    args = parser.parse_args()
    total = args.chunks * args.per_chunk
    urls = {
        "small": f"{args.host}/hundi_bench_small_chunks",
        "big": f"{args.host}/hundi_bench_big_chunks",
    }
    for url in urls.values():
        drop_keyspace(url)
    chunked = frozenset({Channel.TRADES})
    small = open_store(urls["small"], chunked_channels=chunked)
    big = open_store(urls["big"], chunked_channels=chunked)
    assert isinstance(small, CassandraStore)
    try:
        count = write_small(small, total, args.per_chunk)
        for first in range(0, total, args.per_write):
            big.write({Channel.TRADES: trades(first, min(args.per_write, total - first), total)})
    finally:
        small.close()
        big.close()
    print(f"{total:,} trades in one symbol-day: {count:,} chunks of {args.per_chunk} vs chunks "
          f"of up to {args.per_write:,} (one stream-hour each at most)")  # fmt: skip
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for name, url in urls.items():
            reader = open_store(url, read_only=True)
            try:
                cpu, wall = time.process_time(), time.perf_counter()
                frame = reader.read(exchange=EXCHANGE, symbol=SYMBOL, channel=Channel.TRADES)
                took, spent = time.perf_counter() - wall, time.process_time() - cpu
            finally:
                reader.close()
            if len(frame) != total:
                raise SystemExit(f"{name}: read {len(frame)} trades, wrote {total}")
            if name not in best or took < best[name][0]:
                best[name] = (took, spent)
    for name, (took, spent) in best.items():
        print(
            f"  read {name:5} {took:7.2f} s  {total / took:>10,.0f} rec/s  client CPU "
            f"{spent / total * 1e6:6.2f} µs/rec (best of {args.rounds})"
        )
    print(f"  small chunks cost {best['small'][0] / best['big'][0]:.1f}x the read time")
    for url in urls.values():
        drop_keyspace(url)


if __name__ == "__main__":
    main()
