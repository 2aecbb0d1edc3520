"""Hand-made records for research tests, written through the real embedded store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from hundi.records import Channel, Event, Record, Trade
from hundi.stores.embedded import EmbeddedStore

MIDNIGHT = int(datetime(2024, 5, 2, tzinfo=UTC).timestamp()) * 1_000_000_000
MS = 1_000_000


def trade(ts: int, trade_id: int, price: float, *, size: float = 1.0, side: int = 1,
          recv_delay: int = 2 * MS, symbol: str = "BTC-USDT") -> Trade:  # fmt: skip
    return Trade(
        exchange="binance", symbol=symbol, native_symbol=symbol.replace("-", ""), ts=ts,
        recv_ts=ts + recv_delay, trade_id=trade_id, price=price, size=size, side=side,
        first_trade_id=trade_id, last_trade_id=trade_id,
    )  # fmt: skip


def event(ts: int, kind: str, channel: str, *, symbol: str = "BTC-USDT", expected: int = -1,
          received: int = -1, detail: str = "") -> Event:  # fmt: skip
    return Event(
        exchange="binance", symbol=symbol, native_symbol=symbol.replace("-", ""), ts=ts,
        recv_ts=ts, kind=kind, channel=channel, expected=expected, received=received,
        detail=detail,
    )  # fmt: skip


def write(store: Path, *batches: dict[Channel, Sequence[Record]]) -> Path:
    """Each batch is one flush (one part file per partition)."""
    target = EmbeddedStore(str(store), fsync=False)
    for batch in batches:
        target.write(batch)
        target.flush()
    target.close()
    return store
