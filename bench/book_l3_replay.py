"""How much history ``hundi.book_l3_at`` replays: a long session without checkpoints against
one with a stored snapshot every hour (what the Coinbase ``full`` feed stores with its default
``full_snapshot_interval_s``).

A synthetic ``book_l3`` store of ``--hours`` hours at ``--per-hour`` events an hour (opens,
matches, dones around ~2,000 resting orders) is written twice into temporary embedded stores:
once with only the first snapshot (a collector that snapshots only on (re)sync), once with a
snapshot every hour. ``book_l3_at`` at the end of the session is timed on both (CPU time of
the process, ``time.process_time``) and the rows it replayed are reported.

Run: ``.venv/bin/python bench/book_l3_replay.py [--hours H] [--per-hour N]``.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from hundi.book.orders import OrderBook
from hundi.records import ASK, BID, Channel, OrderEvent, Record
from hundi.research import book_l3_at
from hundi.stores.embedded import EmbeddedStore

T0 = 1_764_633_600_000_000_000  # 2025-12-02T00:00:00Z
HOUR = 3_600 * 1_000_000_000
HEAD = {"exchange": "coinbase", "symbol": "BTC-USD", "native_symbol": "BTC-USD"}


def _event(ts: int, kind: str, seq: int, oid: str, side: int, price: float, size: float,
           place: int = -1) -> OrderEvent:  # fmt: skip
    return OrderEvent(
        **HEAD, ts=ts, recv_ts=ts, order_id=oid, side=side, price=price, size=size, kind=kind,
        sequence=seq, other_order_id="", trade_id=place, reason="",
    )  # fmt: skip


def _snapshot(book: OrderBook, ts: int, seq: int) -> list[OrderEvent]:
    rows = []
    for side in (BID, ASK):
        for price in book.prices(side):
            for o in book.queue(side, price):
                rows.append(_event(ts, "snapshot", seq, o.order_id, side, price, o.size, len(rows)))
    return rows


def write_session(root: Path, hours: int, per_hour: int, checkpoints: bool) -> tuple[int, int]:
    """The session's rows into a store at ``root``; returns (rows, orders resting at the end)."""
    rng = random.Random(1)
    store = EmbeddedStore(str(root), fsync=False)
    book = OrderBook()
    seq, count, next_id = 1_000, 0, 0
    for _ in range(2_000):
        side = rng.choice((BID, ASK))
        price = float(rng.randrange(900, 1000) if side == BID else rng.randrange(1001, 1100))
        book.add(f"o{next_id}", side, price, 1.0, T0)
        next_id += 1
    batch: list[Record] = list(_snapshot(book, T0, seq))
    step = HOUR // per_hour
    for hour in range(hours):
        start = T0 + hour * HOUR
        if checkpoints and hour:
            batch.extend(_snapshot(book, start, seq))
        for i in range(per_hour):
            ts = start + i * step + 1
            seq += 1
            r = rng.random()
            if r < 0.5 or len(book) < 100:
                side = rng.choice((BID, ASK))
                price = float(
                    rng.randrange(900, 1000) if side == BID else rng.randrange(1001, 1100)
                )
                oid = f"o{next_id}"
                next_id += 1
                book.add(oid, side, price, 1.0, ts)
                batch.append(_event(ts, "open", seq, oid, side, price, 1.0))
            else:
                oid = rng.choice(list(book.orders)) if i % 64 == 0 else next(iter(book.orders))
                order = book.orders[oid]
                kind = "match" if r < 0.75 else "done"
                side, price, size = order.side, order.price, order.size  # before it is filled
                book.apply(kind, oid, side, price, size, ts)
                batch.append(_event(ts, kind, seq, oid, side, price, size))
        count += len(batch)
        store.write({Channel.BOOK_L3: batch})
        store.flush()
        batch = []
    store.close()
    return count, len(book)


def timed(root: Path, at_ns: int, expected: int) -> dict[str, object]:
    store = EmbeddedStore(str(root), fsync=False)
    started = time.process_time()
    frame = book_l3_at(store, "coinbase", "BTC-USD", at_ns)
    cpu = time.process_time() - started
    snapshot_ts = frame.attrs["snapshot_ts"].value
    assert len(frame) == expected, (len(frame), expected)  # the session's final book
    return {
        "cpu_s": round(cpu, 3),
        "orders": len(frame),
        "replayed_from_hours_back": round((at_ns - snapshot_ts) / HOUR, 2),
        "synced": bool(frame.attrs["synced"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--per-hour", type=int, default=50_000)
    args = parser.parse_args()
    at = T0 + args.hours * HOUR - 1
    result: dict[str, object] = {"hours": args.hours, "events_per_hour": args.per_hour}
    with tempfile.TemporaryDirectory() as tmp:
        for name, checkpoints in (("snapshot_on_sync_only", False), ("hourly_snapshots", True)):
            root = Path(tmp) / name
            rows, resting = write_session(root, args.hours, args.per_hour, checkpoints)
            result[name] = {"rows_stored": rows, **timed(root, at, resting)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
