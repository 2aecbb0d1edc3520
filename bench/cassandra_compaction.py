"""Reading a day of small chunks before and after ``hundi store compact``, in one run.

Writes one symbol-day of ``--chunks`` chunks of ``--per-chunk`` trades (live-rate flushes, as
``bench/cassandra_small_chunks.py`` does) into a scratch keyspace, reads the day back
(``hundi.read``'s path, best of ``--rounds``), compacts every hour of it
(:func:`hundi.stores.cassandra.compaction.compact_partition`), reads it again and prints
records/s before and after, the ratio, and what compacting took. The read after must return
the same trades. The keyspace is dropped at the end.

Run: ``.venv/bin/python bench/cassandra_compaction.py`` (the real local node, credentials as
for ``make bench-stores``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from hundi.records import Channel
from hundi.stores.base import open_store
from hundi.stores.cassandra import CassandraStore
from hundi.stores.cassandra.compaction import compact_partition

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cassandra_small_chunks import EXCHANGE, SYMBOL, T0, write_small
from cassandra_write import drop_keyspace, one_line_errors

DAY = T0 // (86_400 * 1_000_000_000)


def best_read(url: str, total: int, rounds: int) -> tuple[float, pd.DataFrame]:
    """The fastest of ``rounds`` whole-day reads (a fresh read-only store each, as a notebook)."""
    best, frame = float("inf"), pd.DataFrame()
    for _ in range(rounds):
        reader = open_store(url, read_only=True)
        try:
            wall = time.perf_counter()
            frame = reader.read(exchange=EXCHANGE, symbol=SYMBOL, channel=Channel.TRADES)
            best = min(best, time.perf_counter() - wall)
        finally:
            reader.close()
        if len(frame) != total:
            raise SystemExit(f"read {len(frame)} trades, wrote {total}")
    return best, frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="cassandra://127.0.0.1:9042")
    parser.add_argument("--chunks", type=int, default=43_200, help="small chunks in the day")
    parser.add_argument("--per-chunk", type=int, default=20, help="trades per small chunk")
    parser.add_argument("--rounds", type=int, default=2, help="reads before and after")
    args = parser.parse_args()
    total = args.chunks * args.per_chunk
    url = f"{args.host}/hundi_bench_compaction"
    drop_keyspace(url)
    store = open_store(url, chunked_channels=frozenset({Channel.TRADES}))
    assert isinstance(store, CassandraStore)
    try:
        count = write_small(store, total, args.per_chunk)
        print(f"{total:,} trades in one symbol-day as {count:,} chunks of {args.per_chunk}")
        before, old = best_read(url, total, args.rounds)
        wall = time.perf_counter()
        report = compact_partition(store, Channel.TRADES, EXCHANGE, SYMBOL, DAY, margin_s=60)
        took = time.perf_counter() - wall
        if report.damaged:
            raise SystemExit(f"damaged: {report.damaged}")
        after, new = best_read(url, total, args.rounds)
        pd.testing.assert_frame_equal(new, old)
    finally:
        store.close()
    print(
        f"  compact: chunks {report.chunks_before:,} -> {report.chunks_after:,} in {took:.1f} s "
        f"({total / took:,.0f} rec/s)"
    )
    print(f"  read before {before:7.2f} s  {total / before:>10,.0f} rec/s (best of {args.rounds})")
    print(f"  read after  {after:7.2f} s  {total / after:>10,.0f} rec/s (best of {args.rounds})")
    print(f"  compaction makes the day's read {before / after:.1f}x faster (same trades)")
    drop_keyspace(url)


if __name__ == "__main__":
    one_line_errors(main)
