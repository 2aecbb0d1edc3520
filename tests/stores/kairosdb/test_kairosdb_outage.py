"""A real KairosDB outage through the pipeline's writer and outage spool: the link to the
server is cut (a TCP relay the test closes) while trades of one millisecond are split across
batches; after recovery every per-ms aggregate is exact — nothing lost, nothing counted twice."""

from __future__ import annotations

import contextlib
import socket
import threading
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


class Link:
    """A TCP relay to ``upstream`` on a fixed local port that can be cut and restored."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        if self._listener is None:
            return
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._listener = None
        sockets, self._open = self._open, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()  # upstream down: refuse this one, keep accepting
                continue
            server.settimeout(None)
            self._open += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


@pytest.fixture
def link(kairosdb_url: str) -> Iterator[Link]:
    parts = urlsplit(kairosdb_url)
    relay = Link((parts.hostname or "127.0.0.1", parts.port or 8080))
    yield relay
    relay.cut()


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_outage_spool_and_recovery_keep_per_ms_aggregates_exact(
    link: Link, kairosdb_url: str, prefix: str, tmp_path: Path
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
