"""Batches spooled during a store outage are drained, even by a later process, as the rows of
the writer that received them: the read-side merge keeps every row of one writer that shares
a key (OKX stamps every update of a candle with its start) and drops only another writer's
copies, so a drain under a new writer id would lose the spooled updates. Real Cassandra (candles
in the chunk layout, which stores each chunk's writer), cut through a TCP relay."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest

from children import Child, spawn
from hundi.pipeline.spool import Spool
from hundi.pipeline.writer import StoreWriter
from hundi.records import Candle, Channel, Record
from hundi.simulator.process import SimulatorProcess
from hundi.stores.base import StoreError, open_store
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


def _rows(url: str) -> pd.DataFrame:
    try:
        reader = open_store(url, read_only=True)
    except StoreError:  # not created yet by the collector
        return pd.DataFrame({"recv_ts": []})
    try:
        return reader.read(exchange="okx", symbol="BTC-USDT", channel=Channel.CANDLES)
    except StoreError:  # nothing stored yet
        return pd.DataFrame({"recv_ts": []})
    finally:
        reader.close()


def _collect(sim: SimulatorProcess, url: str, summary: Path, env: dict[str, str]) -> Child:
    return spawn(
        [
            sys.executable, "-m", "hundi", "collect", "okx", "--market", "spot",
            "--symbols", "BTC-USDT", "--channels", "candles",
            "--endpoint", sim.ws_url + "/ws/v5/public", "--rest-endpoint", sim.rest_url,
            "--store", url, "--flush-interval", "0.2", "--summary-json", str(summary),
        ],
        env=env,
        cwd=summary.parent,
    )  # fmt: skip


def _stop(child: Child) -> None:
    child.send_signal(signal.SIGTERM)
    child.wait(timeout=60)
    assert "Traceback" not in child.stderr_text(), child.stderr_text()


@pytest.mark.slow
def test_collector_restarted_during_an_outage_keeps_every_candle_update_it_received(
    relay: TcpRelay, cassandra_keyspace: str, tmp_path: Path
) -> None:
    """``hundi collect okx`` (candles: every update of one candle shares its key) stores some
    updates, spools more while Cassandra is cut off, is stopped with them still spooled, and
    the next run drains them: every update the first run received is read back."""
    keyspace = urlsplit(cassandra_keyspace).path
    url = f"cassandra://127.0.0.1:{relay.port}{keyspace}"
    env = {
        **os.environ, "CASSANDRA_REQUEST_TIMEOUT": "2", "CASSANDRA_CHUNKED_CHANNELS": "candles",
        "HUNDI_SPOOL_DIR": str(tmp_path / "spool"), "HUNDI_SPILL_AFTER": "0.5",
        "HUNDI_LOG_PATH": str(tmp_path / "logs" / "hundi.log"),
    }  # fmt: skip
    spooled = lambda: list((tmp_path / "spool").rglob("*.batch"))  # noqa: E731
    sim = SimulatorProcess(venue="okx").start()
    try:
        first = _collect(sim, url, tmp_path / "first.json", env)
        try:
            wait_for(lambda: len(_rows(url)) >= 3, "the first run's candles stored")
            relay.cut()
            wait_for(lambda: len(spooled()) >= 5, "candle updates spooled")
        finally:
            _stop(first)
        stopped_ns = time.time_ns()
        summary = json.loads((tmp_path / "first.json").read_text())["stores"][0]
        received = summary["records"]["candles"] + summary["spooled"]["candles"]
        assert summary["spooled"]["candles"] >= 5 and spooled()

        relay.restore()
        second = _collect(sim, url, tmp_path / "second.json", env)
        try:
            wait_for(lambda: not spooled(), "the spool drained by the next run")
        finally:
            _stop(second)
    finally:
        sim.stop()
    rows = _rows(url)
    assert int((rows["recv_ts"].astype("int64") < stopped_ns).sum()) == received
