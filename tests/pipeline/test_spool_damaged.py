"""A spooled batch that cannot be read back (a damaged file) must neither block the spool
forever (every later batch waits behind it) nor vanish: it is moved aside, what it still tells
of its records (stream, time, trade ids) is counted as lost and stored as a ``gap`` event, and
the batches after it are sent. Real Cassandra."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from hundi.pipeline.spool import Spool
from hundi.pipeline.writer import StoreWriter
from hundi.records import Channel, Record, Trade
from hundi.stores.base import open_store

T0 = 1_714_521_600_000_000_000


def trades(exchange: str, first: int, count: int) -> list[Record]:
    return [
        Trade(
            exchange=exchange, symbol="BTC-USDT", native_symbol="BTCUSDT", ts=T0 + i * 1000,
            recv_ts=T0 + i * 1000, trade_id=i, price=1.0 + i, size=1.0, side=1,
            first_trade_id=i, last_trade_id=i,
        )
        for i in range(first, first + count)
    ]  # fmt: skip


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_damaged_spool_file_is_lost_with_a_gap_and_the_rest_drains(
    cassandra_url: str, tmp_path: Path
) -> None:
    exchange = f"x{secrets.token_hex(4)}"
    spool = Spool(tmp_path / "spool")  # left by an earlier run: three batches
    for first in (0, 10, 20):
        spool.append({Channel.TRADES: trades(exchange, first, 10)})
    spool.close()  # that run ended: its lock is released
    damaged = sorted((tmp_path / "spool").glob("*.batch"))[1]
    content = msgspec.msgpack.decode(damaged.read_bytes())
    content["trades"][3]["price"] = "not a number"  # one field of one record garbled
    damaged.write_bytes(msgspec.msgpack.encode(content))

    writer = StoreWriter(
        open_store(cassandra_url), flush_interval=0.2, retry_initial_s=0.05, retry_cap_s=0.5,
        spool=Spool(tmp_path / "spool"), spill_after_s=0.3,
    )  # fmt: skip
    try:
        wait_for(lambda: writer.stored["trades"] == 20, "the readable batches sent")
        wait_for(lambda: writer.stored["events"] == 1, "the gap event for the damaged one")
    finally:
        writer.close(deadline_s=10)
    assert writer.lost == {"trades": 10} and not writer.spooled and writer.closed_ok
    (aside,) = (tmp_path / "spool" / "damaged").iterdir()
    assert aside.name.startswith(damaged.stem + "-") and aside.suffix == damaged.suffix

    reader = open_store(cassandra_url, read_only=True)
    try:
        stored = reader.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES)
        events = reader.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.EVENTS)
    finally:
        reader.close()
    assert list(stored["trade_id"]) == [*range(10), *range(20, 30)]
    assert len(events) == 1
    gap = events.iloc[0]
    assert (gap["kind"], gap["channel"], gap["expected"], gap["received"]) == ("gap", "trades",
                                                                               10, 20)  # fmt: skip
    assert events.index[0].value == T0 + 10_000
    assert "10 records received but not stored" in gap["detail"] and "damaged" in gap["detail"]
