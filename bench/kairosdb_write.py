"""KairosDB store write throughput into the real server (``make services-up`` first).

Batches like the collector's (0.5 s of a busy market: trades with several per ms, BBO updates
with same-ms collisions, 4 symbols) go through ``KairosStore.write`` + ``flush``, timed:

* records/s and KairosDB points/s through write + flush (HTTP 204: queued by KairosDB);
* the client-side part alone (records → rows → gzipped JSON), i.e. what the writer thread
  spends per batch;
* with ``--verify``, flush also reads everything back (KairosDB's ingest queue included).

Data goes under a fresh metric prefix with a 1 h TTL. Run:
``.venv/bin/python bench/kairosdb_write.py [--url kairosdb+http://127.0.0.1:8080] [--verify]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid

from hundi.records import Bbo, Channel, Record, Trade
from hundi.stores.base import StoreError
from hundi.stores.kairosdb import KairosStore
from hundi.stores.kairosdb.scheme import Converter

T0 = 1_714_521_600_000_000_000
MS = 1_000_000
SYMBOLS = ("BTC-USDT", "ETH-USDT", "BNB-USDT", "SOL-USDT")


def batches(count: int, per_batch: int) -> list[dict[Channel, list[Record]]]:
    """``count`` batches of ``per_batch`` trades and as many BBO updates, 500 ms each."""
    rng = random.Random(1)
    out: list[dict[Channel, list[Record]]] = []
    trade_id = 0
    for b in range(count):
        base = T0 + b * 500 * MS
        trades: list[Record] = []
        quotes: list[Record] = []
        for i in range(per_batch):
            symbol = SYMBOLS[i % len(SYMBOLS)]
            ts = base + (i * 500 // per_batch) * MS + rng.randrange(MS)
            trade_id += 1
            price = 60_000 + rng.random() * 10
            trades.append(
                Trade(exchange="binance", symbol=symbol, native_symbol=symbol.replace("-", ""),
                      ts=ts, recv_ts=ts + 1000, trade_id=trade_id, price=price,
                      size=rng.random(), side=rng.choice((1, -1)), first_trade_id=trade_id,
                      last_trade_id=trade_id)
            )  # fmt: skip
            quotes.append(
                Bbo(exchange="binance", symbol=symbol, native_symbol=symbol.replace("-", ""),
                    ts=ts, recv_ts=ts, update_id=trade_id, bid_price=price - 0.01,
                    bid_size=rng.random(), ask_price=price + 0.01, ask_size=rng.random())
            )  # fmt: skip
        out.append({Channel.TRADES: trades, Channel.BBO: quotes})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="kairosdb+http://127.0.0.1:8080")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--per-batch", type=int, default=25_000, help="trades (and BBOs) each")
    parser.add_argument("--verify", action="store_true")
    args = parser.parse_args()
    data = batches(args.batches, args.per_batch)
    records = sum(len(v) for b in data for v in b.values())

    # Client side only: convert + pack + gzip, no HTTP.
    probe = KairosStore(args.url, prefix=f"bench{uuid.uuid4().hex[:8]}", ttl=3600)
    converter = Converter()
    started = time.perf_counter()
    packed_points = 0
    for batch in data:
        entries = probe._entries(converter.convert(batch), converter)
        packed_points += sum(body.points for body in probe._bodies(entries))
    cpu = time.perf_counter() - started
    print(
        f"client side (convert+JSON+gzip): {records / cpu:,.0f} records/s, "
        f"{packed_points / cpu:,.0f} points/s ({records:,} records -> {packed_points:,} points)"
    )

    store = KairosStore(
        args.url, prefix=f"bench{uuid.uuid4().hex[:8]}", ttl=3600, verify=args.verify,
        verify_timeout=120,
    )  # fmt: skip
    started = time.perf_counter()
    for batch in data:
        store.write(batch)
        store.flush()
    elapsed = time.perf_counter() - started
    what = "write+flush+verify" if args.verify else "write+flush (HTTP 204 = queued)"
    print(
        f"{what}: {records / elapsed:,.0f} records/s, {store.points_sent / elapsed:,.0f} "
        f"points/s ({store.points_sent:,} points in {elapsed:.1f}s, prefix "
        f"{store.settings.metric_prefix})"
    )
    store.close()


if __name__ == "__main__":
    try:
        main()
    except StoreError as e:  # unreachable, a bad URL: one line, not a traceback
        sys.exit(f"kairosdb_write.py: {e}")
