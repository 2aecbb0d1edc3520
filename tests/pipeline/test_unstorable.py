"""A record a store can never hold (a value its column types cannot take) is not retried
forever and not dropped silently: the writer counts it as lost and stores a ``gap`` event on
its stream (time range, count, reason), with real stores refusing it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

from hundi.pipeline.writer import StoreWriter
from hundi.records import Channel, Record, Trade
from hundi.stores.base import open_store

T0 = 1_714_521_600_000_000_000


def trades(exchange: str, ids: list[int]) -> list[Record]:
    return [
        Trade(
            exchange=exchange, symbol="BTC-USDT", native_symbol="BTCUSDT", ts=T0 + n * 1000,
            recv_ts=T0 + n * 1000, trade_id=i, price=1.0 + n, size=1.0, side=1,
            first_trade_id=i, last_trade_id=i,
        )
        for n, i in enumerate(ids)
    ]  # fmt: skip


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _refused_one(url: str, exchange: str) -> None:
    """Trades 0, 2**64 (beyond int64/bigint), 2: the good two are stored, the bad one is lost
    and described by a stored gap event."""
    writer = StoreWriter(
        open_store(url), flush_interval=0.2, retry_initial_s=0.05, retry_cap_s=0.2,
        give_up_after_s=30,
    )  # fmt: skip
    try:
        assert writer.offer({Channel.TRADES: trades(exchange, [0, 2**64, 2])})
        wait_for(lambda: writer.stored["trades"] == 2, "the storable trades")
        wait_for(lambda: writer.lost["trades"] == 1, "the refused trade counted as lost")
        wait_for(lambda: writer.stored["events"] == 1, "its gap event stored")
    finally:
        writer.close(deadline_s=10)
    assert not writer.failed and writer.closed_ok
    reader = open_store(url, read_only=True)
    try:
        stored = reader.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES)
        events = reader.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.EVENTS)
    finally:
        reader.close()
    assert list(stored["trade_id"]) == [0, 2]
    assert len(events) == 1
    gap = events.iloc[0]
    assert gap["kind"] == "gap" and gap["channel"] == "trades"
    assert events.index[0].value == T0 + 1000  # the refused record's time
    assert "1 records received but not stored" in gap["detail"]
    assert "unstorable" in gap["detail"] and "trade_id" in gap["detail"]


def test_embedded_store_refusing_a_record_counts_it_lost_and_stores_a_gap(
    tmp_path: Path,
) -> None:
    _refused_one(str(tmp_path / "store"), "x")


def test_cassandra_refusing_a_record_counts_it_lost_and_stores_a_gap(cassandra_url: str) -> None:
    _refused_one(cassandra_url, f"x{secrets.token_hex(4)}")  # a fresh exchange: rows unshared
