"""A real KairosDB outage through the pipeline's writer and outage spool: the link to the
server is cut (a TCP relay the test closes) while trades of one millisecond are split across
batches; after recovery every per-ms aggregate is exact — nothing lost, nothing counted twice."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest
from kairos_samples import expected_trades_ms, stored_trades_ms, trade

from hundi.pipeline.spool import Spool
from hundi.pipeline.writer import StoreWriter
from hundi.records import Channel, Record
from hundi.stores.kairosdb import KairosStore
from tcprelay import TcpRelay

pytestmark = pytest.mark.slow


@pytest.fixture
def link(kairosdb_url: str) -> Iterator[TcpRelay]:
    parts = urlsplit(kairosdb_url)
    relay = TcpRelay((parts.hostname or "127.0.0.1", parts.port or 8080))
    yield relay
    relay.cut()


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_outage_spool_and_recovery_keep_per_ms_aggregates_exact(
    link: TcpRelay, kairosdb_url: str, prefix: str, tmp_path: Path
) -> None:
    store = KairosStore(
        f"kairosdb+http://127.0.0.1:{link.port}", prefix=prefix, ttl=3600, verify=True,
        verify_timeout=20, timeout=2,
    )  # fmt: skip
    writer = StoreWriter(
        store, flush_interval=0.2, retry_initial_s=0.05, retry_cap_s=0.2,
        spool=Spool(tmp_path / "spool"), spill_after_s=0.3,
    )  # fmt: skip
    # Every batch boundary falls inside a millisecond (ms 10, 20, 30).
    batches: list[list[Record]] = [
        [trade(i, ms=i // 3, price=100.0 + i, size=0.1 * (i % 4 + 1), side=1 - 2 * (i % 2))
         for i in range(start, start + 31)]
        for start in (0, 31, 62, 93)
    ]  # fmt: skip
    total = sum(map(len, batches))
    try:
        assert writer.offer({Channel.TRADES: batches[0]})
        wait_for(lambda: writer.stored["trades"] == 31, "the first batch stored")
        link.cut()
        assert writer.offer({Channel.TRADES: batches[1]})
        assert writer.offer({Channel.TRADES: batches[2]})
        wait_for(lambda: writer.outages >= 1 and writer.spooled_total >= 62, "the spool")
        link.restore()
        assert writer.offer({Channel.TRADES: batches[3]})
        wait_for(lambda: writer.stored["trades"] == total, "recovery", timeout_s=60)
    finally:
        writer.close(deadline_s=10)
    assert not writer.lost
    direct = KairosStore(kairosdb_url, prefix=prefix)
    want = expected_trades_ms([t for batch in batches for t in batch])  # type: ignore[misc]
    got = stored_trades_ms(direct)
    pd.testing.assert_frame_equal(got[want.columns], want, check_exact=False, rtol=1e-12)
    assert got["count"].sum() == total
