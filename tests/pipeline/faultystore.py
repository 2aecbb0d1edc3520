"""A real in-memory store for pipeline tests: can be slow or fail on purpose."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime

import pandas as pd

from hundi.records import Channel, Record, Trade
from hundi.stores.base import Store


class MemoryStore(Store):
    """A real (in-memory) store that can be slow or fail on purpose."""

    scheme = "memory"

    def __init__(self, url: str = "memory:", *, write_delay: float = 0.0, fail_first: int = 0):
        super().__init__(url)
        self.write_delay = write_delay
        self.fail_first = fail_first
        self.buffer: list[Record] = []
        self.durable: list[Record] = []
        self.calls = 0
        self.threads: set[str] = set()

    def write(self, batches: Mapping[Channel, Sequence[Record]]) -> None:
        self.threads.add(threading.current_thread().name)
        self.calls += 1
        if self.calls <= self.fail_first:
            raise OSError("disk on fire")
        time.sleep(self.write_delay)
        for records in batches.values():
            self.buffer.extend(records)

    def flush(self) -> None:
        self.durable.extend(self.buffer)
        self.buffer = []

    def read(
        self,
        *,
        exchange: str,
        symbol: str | None,
        channel: Channel,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        raise NotImplementedError("tests read .durable directly")

    def trade_ids(self) -> list[int]:
        return [r.trade_id for r in self.durable if isinstance(r, Trade)]
