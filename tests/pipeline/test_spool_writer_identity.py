"""Batches spooled during a store outage are drained, even by a later process, as the rows of
the writer that received them: the read-side merge keeps every row of one writer that shares
a key (OKX stamps every update of a candle with its start) and drops only another writer's
copies, so a drain under a new writer id would lose the spooled updates. Real Cassandra (candles
in the chunk layout, which stores each chunk's writer), cut through a TCP relay."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hundi.pipeline.spool import Spool
from hundi.pipeline.writer import StoreWriter
from hundi.records import Candle, Channel, Record
from hundi.stores.base import open_store
from tcprelay import TcpRelay

OPEN = 1_714_521_600_000_000_000  # the candle's start: every update's ts (OKX)


@pytest.fixture
def relay(cassandra_keyspace: str) -> Iterator[TcpRelay]:
    parts = urlsplit(cassandra_keyspace)
    relay = TcpRelay((parts.hostname or "127.0.0.1", parts.port or 9042))
    yield relay
    relay.cut()


def update(n: int) -> Record:
    """The n-th update of one 1m candle: same key (ts, interval, open_time), new values."""
    return Candle(
        exchange="okx", symbol="BTC-USDT", native_symbol="BTC-USDT", ts=OPEN,
        recv_ts=OPEN + (n + 1) * 1_000_000_000, interval="1m", open_time=OPEN,
        close_time=OPEN + 60_000_000_000 - 1, open=100.0, high=100.0 + n, low=99.0,
        close=100.0 + n, volume=1.0 + n, quote_volume=100.0 * (1 + n), taker_buy_volume=0.5,
        trade_count=1 + n, closed=False,
    )  # fmt: skip


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_spool_drained_after_a_restart_keeps_the_original_writer(
    relay: TcpRelay, cassandra_keyspace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASSANDRA_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("CASSANDRA_CHUNKED_CHANNELS", "candles")
    keyspace = urlsplit(cassandra_keyspace).path
    url = f"cassandra://127.0.0.1:{relay.port}{keyspace}"
    spool_dir = tmp_path / "spool"

    def writer() -> StoreWriter:
        return StoreWriter(
            open_store(url), flush_interval=0.2, retry_initial_s=0.05, retry_cap_s=0.5,
            spool=Spool(spool_dir), spill_after_s=0.3,
        )  # fmt: skip

    first = writer()  # the first run: update 0 stored, updates 1 and 2 spooled
    try:
        assert first.offer({Channel.CANDLES: [update(0)]})
        wait_for(lambda: first.stored["candles"] == 1, "the first update stored")
        relay.cut()
        assert first.offer({Channel.CANDLES: [update(1), update(2)]})
        wait_for(lambda: first.spooled["candles"] == 2, "the spool")
    finally:
        first.close(deadline_s=2)
    assert first.spooled["candles"] == 2  # left on disk for the next start

    relay.restore()
    second = writer()  # the next run (a new writer id) drains the spool first
    try:
        wait_for(lambda: second.stored["candles"] == 2, "the spool drained")
    finally:
        second.close(deadline_s=10)
    assert second.closed_ok and not second.lost

    reader = open_store(url, read_only=True)
    try:
        frame = reader.read(exchange="okx", symbol="BTC-USDT", channel=Channel.CANDLES)
    finally:
        reader.close()
    assert list(frame["trade_count"]) == [1, 2, 3]  # all three updates of the candle stay
