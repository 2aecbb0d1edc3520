"""The store writer's queue is bounded in bytes, not only in batches: a few big batches fill it
(backpressure) however few they are, an empty queue still takes any batch, and every batch
offered and taken is stored."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime

import pandas as pd

from hundi.pipeline.writer import Batch, StoreWriter, batch_bytes
from hundi.records import BID, BUY, BookChange, Channel, Record, Trade
from hundi.stores.base import Store


class GatedStore(Store):
    """Blocks every write until ``gate`` is set; counts the records it took."""

    def __init__(self) -> None:
        super().__init__("gated:")
        self.gate = threading.Event()
        self.records = 0

    def write(self, batches: Mapping[Channel, Sequence[Record]]) -> None:
        self.gate.wait(60)
        self.records += sum(len(r) for r in batches.values())

    def flush(self) -> None:
        pass

    def read(
        self,
        *,
        exchange: str,
        symbol: str | None,
        channel: Channel,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        return pd.DataFrame()


def trades(n: int, first_id: int = 0) -> Batch:
    return {
        Channel.TRADES: [
            Trade(
                exchange="binance",
                symbol="BTC-USDT",
                native_symbol="BTCUSDT",
                ts=i + 1,
                recv_ts=i + 2,
                trade_id=first_id + i,
                price=100.0 + i,
                size=0.5,
                side=BUY,
                first_trade_id=first_id + i,
                last_trade_id=first_id + i,
            )
            for i in range(n)
        ]
    }


def _wait(condition: object, timeout: float = 30.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def book_changes(n: int) -> Batch:
    return {
        Channel.BOOK: [
            BookChange(
                exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=i + 1,
                recv_ts=i + 2, side=BID, price=100.0 + i, size=0.5, snapshot=False,
                first_update_id=1000 + i, update_id=1000 + i, prev_update_id=999 + i,
            )
            for i in range(n)
        ]
    }  # fmt: skip


def test_batch_bytes_grow_with_the_records_and_count_each_record_type() -> None:
    small, big = batch_bytes(trades(10)), batch_bytes(trades(1000))
    assert small > 10 * 50  # a Trade struct with its float fields is well over 50 bytes
    assert big == 100 * small
    assert batch_bytes({}) == 0
    book = batch_bytes(book_changes(10))
    assert book > 10 * 50 and book != small  # its own size per record, not a Trade's
    assert batch_bytes({**trades(10), **book_changes(10)}) == small + book


def test_queue_refuses_a_batch_past_its_bytes_though_far_from_its_batch_count() -> None:
    store = GatedStore()
    one = batch_bytes(trades(1000))
    writer = StoreWriter(store, max_batches=100, max_bytes=int(2.5 * one), flush_interval=0.2)
    try:
        # the first batch is taken by the writer thread (blocked in write): the queue is empty
        assert writer.offer(trades(1000, 0))
        # the bytes, not the batch count: the thread counts them off just after taking a batch
        _wait(lambda: writer.backlog_bytes == 0)
        assert writer.offer(trades(1000, 1000))
        assert writer.offer(trades(1000, 2000))
        assert writer.backlog_bytes == 2 * one
        assert not writer.offer(trades(1000, 3000))  # 3 batches > 2.5: refused (backpressure)
        assert writer.backlog == 2 and not writer.has_room
        store.gate.set()
        _wait(lambda: writer.backlog_bytes == 0)
        assert writer.backlog == 0 and writer.has_room
        assert writer.offer(trades(1000, 3000))
    finally:
        store.gate.set()
        writer.close(30)
    assert store.records == 4000
    assert writer.stored[Channel.TRADES.value] == 4000


def test_an_empty_queue_takes_a_batch_bigger_than_its_bytes() -> None:
    store = GatedStore()
    store.gate.set()
    writer = StoreWriter(store, max_bytes=1, flush_interval=0.2)
    try:
        assert writer.offer(trades(500))
    finally:
        writer.close(30)
    assert writer.stored[Channel.TRADES.value] == 500


class CountingStore(GatedStore):
    """Counts its flushes (writes are not gated)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate.set()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1


def test_a_flood_is_flushed_by_record_count_long_before_the_interval() -> None:
    """What a flush confirms stays bounded under a flood: the writer flushes once
    ``flush_records`` wait, whatever its interval (records count as stored only then)."""
    store = CountingStore()
    writer = StoreWriter(store, flush_interval=3600.0, flush_records=1000)
    try:
        for start in range(0, 3000, 500):
            assert writer.offer(trades(500, start))
        _wait(lambda: writer.stored[Channel.TRADES.value] == 3000)
        assert 3 <= store.flushes <= 6
    finally:
        writer.close(30)
