"""Cassandra store write and read throughput: plain INSERTs vs single-partition UNLOGGED batches.

Writes ``--records`` trades and book changes (4 symbols, interleaved as the collector hands them
over) in collector-sized ``write`` calls, for each (batch_rows, concurrency) pair, into a scratch
keyspace on the server of ``--url`` (credentials from the environment or
``.secret.cassandra.env``), then reads them back. Prints records/s; the scratch keyspace is
dropped at the end. Run: ``.venv/bin/python bench/cassandra_write.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cassandra import DriverException
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.policies import DCAwareRoundRobinPolicy

from hundi.records import BookChange, Channel, Record, Trade
from hundi.stores.base import StoreError, open_store
from hundi.stores.cassandra.settings import load_settings

T0 = 1_714_521_600_000_000_000
SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT")


def trades(count: int, exchange: str) -> list[Record]:
    return [
        Trade(
            exchange=exchange, symbol=SYMBOLS[i % 4], native_symbol="X", ts=T0 + i * 50_000,
            recv_ts=T0 + i * 50_000 + 3_000_000, trade_id=i, price=60_000.0 + i % 100,
            size=0.001 * (i % 9 + 1), side=1 if i % 3 else -1, first_trade_id=i,
            last_trade_id=i,
        )
        for i in range(count)
    ]  # fmt: skip


def book(count: int, exchange: str) -> list[Record]:
    return [
        BookChange(
            exchange=exchange, symbol=SYMBOLS[i % 4], native_symbol="X", ts=T0 + i // 10 * 100_000,
            recv_ts=T0 + i // 10 * 100_000 + 2_000_000, side=1 if i % 2 else -1,
            price=60_000.0 + i % 10, size=float(i % 5), snapshot=False,
            first_update_id=i // 10, update_id=i // 10, prev_update_id=i // 10 - 1,
        )
        for i in range(count)
    ]  # fmt: skip


def run(url: str, channel: Channel, records: Sequence[Record], chunk: int, **options: int) -> float:
    store = open_store(url, **options)
    try:
        started = time.perf_counter()
        for first in range(0, len(records), chunk):
            store.write({channel: records[first : first + chunk]})
        store.flush()
        return len(records) / (time.perf_counter() - started)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="cassandra://127.0.0.1:9042/hundi_bench")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=5_000, help="records per write call")
    args = parser.parse_args()
    setups = [(1, 64), (1, 256), (16, 64), (32, 64), (64, 32), (128, 16)]
    print(f"{args.records} records per run, {args.chunk} per write call")
    print(f"{'channel':8} {'batch_rows':>10} {'concurrency':>11} {'write rec/s':>12}")
    for channel, make in ((Channel.TRADES, trades), (Channel.BOOK, book)):
        for batch_rows, concurrency in setups:
            exchange = f"bench{batch_rows}x{concurrency}"
            records = make(args.records, exchange)
            rate = run(
                args.url, channel, records, args.chunk,
                batch_rows=batch_rows, concurrency=concurrency,
            )  # fmt: skip
            print(f"{channel.value:8} {batch_rows:>10} {concurrency:>11} {rate:>12,.0f}")
        reader = open_store(args.url, read_only=True)
        started = time.perf_counter()
        frame = reader.read(exchange=exchange, symbol=None, channel=channel)
        elapsed = time.perf_counter() - started
        reader.close()
        assert len(frame) == args.records, (len(frame), args.records)
        print(f"{channel.value:8} read {len(frame) / elapsed:,.0f} rec/s ({len(frame)} rows)")
    drop_keyspace(args.url)


def drop_keyspace(url: str) -> None:
    """Remove the scratch keyspace with a plain driver session (the store never drops data)."""
    settings = load_settings(url)
    auth = PlainTextAuthProvider(settings.user, settings.password) if settings.user else None
    profile = ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy())
    cluster = Cluster(
        list(settings.hosts), port=settings.port, protocol_version=settings.protocol_version,
        auth_provider=auth, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )  # fmt: skip
    try:
        cluster.connect().execute(f'DROP KEYSPACE IF EXISTS "{settings.keyspace}"', timeout=60)
    finally:
        cluster.shutdown()


def one_line_errors(main: Callable[[], None]) -> None:
    """Run ``main``; a server that cannot be reached or refuses the login ends it with one line
    and exit 1, not a traceback."""
    try:
        main()
    except (StoreError, DriverException, NoHostAvailable) as e:
        sys.exit(f"{Path(sys.argv[0]).name}: {e}")


if __name__ == "__main__":
    one_line_errors(main)
