"""Binance-like book rows for merge tests: diffs one a second, REST snapshots at a local time."""

from __future__ import annotations

from datetime import UTC, datetime

from hundi.records import ASK, BID, BookChange

SEC = 1_000_000_000


def level(
    u: int, ts: int, recv: int, *, snapshot: bool, side: int, price: float, size: float
) -> BookChange:
    return BookChange(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=recv,
        side=side, price=price, size=size, snapshot=snapshot,
        first_update_id=-1 if snapshot else u, update_id=u, prev_update_id=-1,
    )  # fmt: skip


def diff(u: int, t0: int, delay: int) -> BookChange:
    """Spot diff ``u`` at exchange time ``t0`` + ``u`` seconds, received ``delay`` ns later:
    sets bid 100 to size ``u``."""
    ts = t0 + u * SEC
    return level(u, ts, ts + delay, snapshot=False, side=BID, price=100.0, size=float(u))


def snapshot(u: int, recv: int) -> list[BookChange]:
    """A REST snapshot at lastUpdateId ``u``: local ts (ts == recv_ts)."""
    return [
        level(u, recv, recv, snapshot=True, side=BID, price=100.0, size=float(u)),
        level(u, recv, recv, snapshot=True, side=ASK, price=101.0, size=1.0),
    ]


def at(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)
