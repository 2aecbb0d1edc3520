"""A real embedded store that is slow or fails on purpose, for backpressure and retry tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd

from hundi.records import Channel, Record
from hundi.stores.base import Store
from hundi.stores.embedded import EmbeddedStore


class FaultyStore(Store):
    """Delegates to an ``EmbeddedStore`` at ``root``; the first ``fail_first`` writes raise and
    every write first sleeps ``write_delay`` s. Remembers which threads wrote."""

    scheme = "file"

    def __init__(self, root: Path, *, write_delay: float = 0.0, fail_first: int = 0) -> None:
        super().__init__(str(root))
        self.inner = EmbeddedStore(str(root))
        self.write_delay = write_delay
        self.fail_first = fail_first
        self.calls = 0
        self.threads: set[str] = set()

    def write(self, batches: Mapping[Channel, Sequence[Record]]) -> None:
        self.threads.add(threading.current_thread().name)
        self.calls += 1
        if self.calls <= self.fail_first:
            raise OSError("disk on fire")
        time.sleep(self.write_delay)
        self.inner.write(batches)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()

    def read(
        self,
        *,
        exchange: str,
        symbol: str | None,
        channel: Channel,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        return self.inner.read(
            exchange=exchange, symbol=symbol, channel=channel, start=start, end=end
        )


class OutageStore(FaultyStore):
    """A store whose server can be 'down' (every call raises ConnectionError), marked
    idempotent so the writer spools for it; ``discard`` drops the unflushed buffer."""

    idempotent = True

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.down = threading.Event()
        self.flushed_batches = 0

    def write(self, batches: Mapping[Channel, Sequence[Record]]) -> None:
        if self.down.is_set():
            raise ConnectionError("server unreachable")
        super().write(batches)

    def flush(self) -> None:
        if self.down.is_set():
            raise ConnectionError("server unreachable")
        self.inner.flush()
        self.flushed_batches += 1

    def discard(self) -> None:
        self.inner._buffers.clear()
