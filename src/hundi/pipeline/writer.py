"""One thread per store: batches in through a bounded queue, ``write`` + periodic ``flush``.

Why a thread: stores do blocking I/O (files, HTTP) and must never stall the event loop.
Why bounded: a slow or failing store fills its queue, and the collector then stops reading
sockets (backpressure) instead of growing memory without limit or dropping data. A store that
raises is retried with backoff, the failed batch kept; records count as *stored* only once a
``flush`` after their ``write`` succeeded.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from typing import Final

from hundi.connection.backoff import Backoff
from hundi.records import Channel, Record
from hundi.stores.base import Store

log = logging.getLogger("hundi.pipeline")

Batch = dict[Channel, list[Record]]
_STOP: Final = None


def batch_counts(batch: Batch) -> Counter[str]:
    return Counter({channel.value: len(records) for channel, records in batch.items()})


class StoreWriter:
    """Feeds one :class:`Store` from a bounded queue on its own thread."""

    def __init__(
        self,
        store: Store,
        *,
        max_batches: int = 32,
        flush_interval: float = 1.0,
        retry_initial_s: float = 0.2,
        retry_cap_s: float = 10.0,
    ) -> None:
        self.store = store
        self.label = store.describe()
        self.flush_interval = flush_interval
        self.queue: queue.Queue[Batch | None] = queue.Queue(maxsize=max_batches)
        self._retry = Backoff(retry_initial_s, retry_cap_s)
        self._lock = threading.Lock()
        self._stored: Counter[str] = Counter()
        self._unflushed: Counter[str] = Counter()
        self.errors = 0
        self.last_error = ""
        self.lost: Counter[str] = Counter()
        self.closed_ok = False
        self._deadline: float | None = None  # monotonic time after which retries give up
        self._thread = threading.Thread(target=self._run, name=f"store:{self.label}", daemon=True)
        self._thread.start()

    # --- event-loop side ----------------------------------------------------------------------

    def offer(self, batch: Batch) -> bool:
        """Queue a batch without blocking; False when the queue is full (apply backpressure)."""
        try:
            self.queue.put_nowait(batch)
        except queue.Full:
            return False
        return True

    @property
    def backlog(self) -> int:
        return self.queue.qsize()

    @property
    def stored(self) -> Counter[str]:
        with self._lock:
            return Counter(self._stored)

    def close(self, deadline_s: float) -> None:
        """Finish: write everything queued, flush, close; give up retrying after
        ``deadline_s`` (what could not be stored is counted in :attr:`lost`, and logged)."""
        self._deadline = time.monotonic() + deadline_s
        while True:
            try:
                self.queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                if not self._thread.is_alive():
                    break
        self._thread.join()

    # --- writer thread ------------------------------------------------------------------------

    def _giving_up(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _attempt(self, what: str, action: object) -> bool:
        """Run ``action`` until it succeeds, or the shutdown deadline passes (False)."""
        assert callable(action)
        while True:
            try:
                action()
            except Exception as exc:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = self._retry.next()
                if self._giving_up():
                    log.error("store %s: %s failed (%s); giving up", self.label, what, exc)
                    return False
                log.error(
                    "store %s: %s failed (%s); retry #%d in %.1fs, data kept",
                    self.label,
                    what,
                    self.last_error,
                    self._retry.attempt,
                    delay,
                )
                time.sleep(delay)
                continue
            self._retry.reset()
            return True

    def _flush(self) -> bool:
        if not self._unflushed:
            return True
        if self._attempt("flush", self.store.flush):
            with self._lock:
                self._stored.update(self._unflushed)
            self._unflushed = Counter()
            return True
        return False

    def _run(self) -> None:
        # Flush at half the interval: the collector drains its sink at the other half, so a
        # record is durable within one flush interval of being received.
        every = self.flush_interval / 2
        last_flush = time.monotonic()
        while True:
            try:
                batch = self.queue.get(timeout=every)
            except queue.Empty:
                batch = {}
            if batch is _STOP:
                break
            if batch:
                if self._attempt("write", lambda b=batch: self.store.write(b)):
                    self._unflushed.update(batch_counts(batch))
                else:
                    self.lost.update(batch_counts(batch))
            if time.monotonic() - last_flush >= every:
                self._flush()
                last_flush = time.monotonic()
        # Shutdown: anything still queued after the stop marker cannot exist (the collector
        # stops offering first), so flush and close.
        flushed = self._flush()
        if not flushed:
            self.lost.update(self._unflushed)
        try:
            self.store.close()
            self.closed_ok = flushed
        except Exception as exc:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("store %s: close failed (%s)", self.label, self.last_error)
        if self.lost:
            log.error(
                "store %s: %d records could NOT be stored: %s",
                self.label,
                sum(self.lost.values()),
                dict(self.lost),
            )
