"""The pipeline's writer delivers derivative tickers, liquidations and instruments to every
store kind (embedded, the real Cassandra, the real KairosDB with verification), and its outage
spool keeps them exactly (NaN included) for re-delivery."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from derivative_samples import derivative_batches, same_records
from hundi.pipeline.spool import Spool
from hundi.pipeline.writer import StoreWriter
from hundi.records import Channel, DerivativeTicker
from hundi.stores.base import Store, open_store
from hundi.stores.kairosdb import KairosStore

NEW = (Channel.DERIVATIVE_TICKER, Channel.LIQUIDATIONS, Channel.INSTRUMENTS)


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_spool_keeps_them_exactly(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    batch = derivative_batches()
    spool.append(batch)
    ((_, back),) = spool.peek(10)
    for channel in NEW:
        assert same_records(list(back[channel]), batch[channel]), channel
    first = back[Channel.DERIVATIVE_TICKER][0]
    assert isinstance(first, DerivativeTicker) and math.isnan(first.predicted_funding_rate)


def deliver(store: Store, exchange: str) -> None:
    writer = StoreWriter(store, flush_interval=0.1)
    batch = derivative_batches(exchange)
    try:
        assert writer.offer(batch)
        total = sum(len(batch[c]) for c in NEW)
        wait_for(lambda: sum(writer.stored[c.value] for c in NEW) == total, "stored")
    finally:
        writer.close(deadline_s=10)
    assert not writer.lost


@pytest.mark.slow
def test_the_writer_delivers_them_to_the_lossless_stores(
    tmp_path: Path, cassandra_url: str
) -> None:
    exchange = f"x{time.time_ns() % 10**9}"
    for url in (str(tmp_path / "data"), cassandra_url):
        deliver(open_store(url), exchange)
        reader = open_store(url, read_only=True)
        try:
            for channel in NEW:
                frame = reader.read(exchange=exchange, symbol=None, channel=channel)
                assert len(frame) == len(derivative_batches()[channel]), (url, channel)
        finally:
            reader.close()


@pytest.mark.slow
def test_the_writer_delivers_them_to_kairosdb(kairosdb_url: str) -> None:
    prefix = f"test{time.time_ns() % 10**12}"
    store = KairosStore(kairosdb_url, prefix=prefix, ttl=3600, verify=True, verify_timeout=20)
    deliver(store, "binance")
    assert store.not_sent == {"instruments": 3}
    direct = KairosStore(kairosdb_url, prefix=prefix)
    frame = direct.read(exchange="binance", symbol="BTC-USDT-PERP",
                        channel=Channel.DERIVATIVE_TICKER)  # fmt: skip
    assert frame["mark_price"].tolist() == [60_000.5, 60_010.0]
    assert frame.index[0] == pd.Timestamp(1_714_521_600_000, unit="ms", tz="UTC")
    liquidations = direct.read(exchange="binance", symbol=None, channel=Channel.LIQUIDATIONS)
    assert liquidations["count"].sum() == 4.0
