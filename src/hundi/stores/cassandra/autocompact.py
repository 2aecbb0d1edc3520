"""A writing store compacts the hours it wrote chunks into, once they closed.

Why here and not only in ``hundi store compact``: a live collector writes one small chunk per
flush (every half second), ~7,200 an hour for a busy stream, and a read pays per chunk
(docs/cassandra-store.md, "Known limit"): a day of them read slower than the row layout. Run
once a day, the command leaves up to a day and a half of them; compacting each hour as soon
as it ended ``CASSANDRA_COMPACT_CLOCK_MARGIN`` seconds ago leaves only the current hour, in
every deployment (compose and bare metal too, not just the CronJob). Same code and
guarantees as the command: crash-safe at any point, deterministic output, so two collectors
of an A/B pair (or the CronJob) compacting one hour write the same chunks, and a no-op on an
hour already compact.

Only channels where one writer never stores two different records under one key: there a
record the writer adds to an hour after its compaction (the outage spool draining, a trade
fetched back) is either new (kept) or a copy (dropped once). Channels where a venue
repeats a key with new values (candles updated in place) are left to the command, which runs
long after their hours closed.

A thread of its own, so compaction never delays a flush; it shares the store's session
(thread-safe). A failure is logged and the hour tried again later; a damaged chunk leaves
the hour as it is (``hundi store check`` / ``compact`` report it), as the command does.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from hundi.records import Channel
from hundi.stores.cassandra.chunks import DamagedChunk
from hundi.stores.cassandra.compaction import compact_hour, plan_hour
from hundi.stores.cassandra.schema import NS_PER_HOUR

if TYPE_CHECKING:
    from hundi.stores.cassandra.store import CassandraStore

log = logging.getLogger("hundi.stores.cassandra")

#: Channels whose records one writer never repeats with other values under one key.
COMPACTED_LIVE: Final = frozenset({Channel.TRADES, Channel.BBO, Channel.BOOK})
RETRY_S: Final = 300.0  # a failed hour is tried again after this long
_MAX_SLEEP_S: Final = 60.0

_Hour = tuple[Channel, str, str, int]  # channel, exchange, symbol, hours since the epoch


@dataclass(slots=True)
class _Noted:
    times: int  # chunks noted for the hour
    last_at: float  # monotonic time of the last
    retry_at: float  # after a failure: not before this (monotonic)


class HourCompactor:
    """Hours noted by the store's writes, each compacted once it ended ``margin_s`` ago."""

    def __init__(self, store: CassandraStore, margin_s: float) -> None:
        self.store = store
        self.margin_s = margin_s
        self.retry_s = RETRY_S
        # Noted again while being compacted: compacted again (the chunk may have landed after
        # the hour was read).
        self._pending: dict[_Hour, _Noted] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.hours_compacted = 0
        self.chunks_replaced = 0
        self.failures = 0
        self.last_error = ""

    def note(self, channel: Channel, exchange: str, symbol: str, first_ts: int) -> None:
        """A chunk of ``channel`` starting at ``first_ts`` was written (the store's writer
        thread, per chunk: a dict update)."""
        if channel not in COMPACTED_LIVE:
            return
        hour = (channel, exchange, symbol, first_ts // NS_PER_HOUR)
        with self._lock:
            known = self._pending.get(hour)
            times, retry_at = (0, 0.0) if known is None else (known.times, known.retry_at)
            self._pending[hour] = _Noted(times + 1, time.monotonic(), retry_at)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name=f"compact:{self.store.describe()}", daemon=True
                )
                self._thread.start()
        if known is None:
            self._wake.set()  # an hour already closed (late data) is due without the 60 s nap

    def pending(self) -> list[_Hour]:
        with self._lock:
            return sorted(self._pending)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop; an hour being compacted is finished or left crash-safe (the command or the
        next run completes it)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _due(self) -> tuple[list[tuple[_Hour, int]], float]:
        """The hours to compact now (with their note counts), and seconds until the next: an
        hour is due once it ended, and its last chunk was written, ``margin_s`` ago (a spool
        draining into an old hour is compacted when it is through, not after every chunk)."""
        now_ns, now = time.time_ns(), time.monotonic()
        due, wait = [], _MAX_SLEEP_S
        with self._lock:
            for hour, noted in self._pending.items():
                ends_in = ((hour[3] + 1) * NS_PER_HOUR - now_ns) / 1e9 + self.margin_s
                later = max(ends_in, noted.last_at + self.margin_s - now, noted.retry_at - now)
                if later <= 0:
                    due.append((hour, noted.times))
                else:
                    wait = min(wait, later)
        return sorted(due), max(0.05, wait)

    def _run(self) -> None:
        while not self._stop.is_set():
            due, wait = self._due()
            for hour, times in due:
                if self._stop.is_set():
                    return
                self._compact(hour, times)
            if not due:
                self._wake.wait(wait)
                self._wake.clear()

    def _compact(self, hour: _Hour, times: int) -> None:
        channel, exchange, symbol, index = hour
        day, of_day = divmod(index, 24)
        where = f"{channel.value} {exchange} {symbol} hour {of_day:02d} of day {day}"
        try:
            plan = plan_hour(self.store, channel, exchange, symbol, day, of_day)
            replaced = len(plan.old)
            done = compact_hour(self.store, plan)
        except DamagedChunk as exc:
            log.error("compacting %s: left as it is, %s", where, exc)
            self._settle(hour, times)
            return
        except Exception as exc:  # the store down, a timeout: tried again later
            self.failures += 1
            self.last_error = f"{where}: {type(exc).__name__}: {exc}"
            log.warning("compacting %s failed (%s); again in %.0fs", where, exc, self.retry_s)
            with self._lock:
                noted = self._pending.get(hour)
                if noted is not None:
                    noted.retry_at = time.monotonic() + self.retry_s
            return
        if done:
            self.hours_compacted += 1
            self.chunks_replaced += replaced
            log.info("compacted %s: %d chunks -> %d", where, replaced, len(plan.new))
        self._settle(hour, times)

    def _settle(self, hour: _Hour, times: int) -> None:
        """Done with ``hour`` unless a chunk was noted for it meanwhile."""
        with self._lock:
            noted = self._pending.get(hour)
            if noted is not None and noted.times == times:
                del self._pending[hour]
