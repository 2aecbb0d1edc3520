"""One thread per store: batches in through a bounded queue, ``write`` + periodic ``flush``.

Why a thread: stores do blocking I/O (files, HTTP) and must never stall the event loop.
Why bounded: a slow or failing store fills its queue, and the collector then stops reading
sockets (backpressure) instead of growing memory without limit or dropping data. The bound is
in bytes (``max_bytes``, estimated per record type: :func:`batch_bytes`), not only in batches:
a batch drained early under a flood holds up to ``max_batch_records`` records, one at a calm
rate a few hundred, so a count of batches bounds nothing. A store that
raises is retried with backoff, the failed batch kept; records count as *stored* only once a
``flush`` after their ``write`` succeeded.

Outages: for an idempotent store (Cassandra, KairosDB) given a :class:`~hundi.pipeline.spool.Spool`,
a write or flush still failing after ``spill_after_s`` moves the unconfirmed batches, and every
batch after them, to the durable local spool, so collection goes on without memory growth. The
spool is sent oldest first once the store answers again (probed with the capped backoff), so
per-series order holds; what is still spooled at exit stays on disk and goes first next start.
A full spool falls back to backpressure. Nothing is dropped in any of these paths.

A store that keeps failing without a spool (the embedded store's disk is full): the failed batch
stays in the store and is retried with backoff while the bounded queue fills and the collector
stops reading sockets. Past ``give_up_after_s`` of uninterrupted failures the writer gives up
(one error line; :attr:`StoreWriter.failed` tells the collector to stop): what the store has
not confirmed is dropped from it and counted in :attr:`StoreWriter.lost`, later batches get one
try each, and at close gap events describing every loss (channel, count, first time, trade ids)
are written to the store, retried until the shutdown deadline, since space may have returned.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from hundi.connection.backoff import Backoff
from hundi.pipeline.histograms import WRITE_BUCKETS_S, Buckets
from hundi.pipeline.spool import Spool, SpoolDamaged, SpoolError
from hundi.records import Channel, Event, EventKind, Record
from hundi.stores.base import Store

log = logging.getLogger("hundi.pipeline")

Batch = dict[Channel, list[Record]]
_STOP: Final = None


def batch_counts(batch: Batch) -> Counter[str]:
    return Counter({channel.value: len(records) for channel, records in batch.items()})


_RECORD_BYTES: dict[type, int] = {}  # estimated memory of one record, per record type


def _record_bytes(record: Record) -> int:
    """The record object, its list slot and its own numbers, measured once per type (a struct's
    numbers are mostly its own objects; exchange and symbol strings are shared by all records)."""
    size = sys.getsizeof(record) + 8
    for name in record.__struct_fields__:
        value = getattr(record, name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            size += sys.getsizeof(value)
    return size


def batch_bytes(batch: Batch) -> int:
    """Estimated memory a queued batch holds: per channel, its record count times the size of
    one record of its type (so the estimate costs one dict lookup per channel, not per record)."""
    total = 0
    for records in batch.values():
        if records:
            first = records[0]
            per = _RECORD_BYTES.get(type(first))
            if per is None:
                per = _RECORD_BYTES[type(first)] = _record_bytes(first)
            total += per * len(records)
    return total


@dataclass(slots=True)
class _Loss:
    """Records of one (exchange, symbol, channel) received but not stored, for a gap event."""

    exchange: str
    symbol: str
    native_symbol: str
    channel: str
    cause: str
    count: int = 0
    first_ts: int = 0
    last_ts: int = 0
    first_id: int = -1
    last_id: int = -1

    def add(self, record: Record) -> None:
        self.count += 1
        if self.count == 1 or record.ts < self.first_ts:
            self.first_ts = record.ts
        if self.count == 1 or record.ts > self.last_ts:
            self.last_ts = record.ts
        trade_id = getattr(record, "trade_id", None)
        if isinstance(trade_id, int):
            self.first_id = trade_id if self.first_id < 0 else min(self.first_id, trade_id)
            self.last_id = max(self.last_id, trade_id)

    def event(self) -> Event:
        ids = f", trade ids {self.first_id}..{self.last_id}" if self.first_id >= 0 else ""
        ids += f", ts {self.first_ts}..{self.last_ts}"
        # ids a store cannot hold (what may have made it refuse them) only in the detail
        fits = self.first_id >= 0 and self.last_id < 2**63 - 1
        return Event(
            exchange=self.exchange,
            symbol=self.symbol,
            native_symbol=self.native_symbol,
            ts=self.first_ts,
            recv_ts=time.time_ns(),
            kind=EventKind.GAP.value,
            channel=self.channel,
            # for trades the missing ids are within [expected, received), as for a feed gap
            expected=self.first_id if fits else -1,
            received=self.last_id + 1 if fits else -1,
            detail=f"{self.count} records received but not stored{ids}: {self.cause}",
        )


def _add_losses(
    losses: dict[tuple[str, str, str], _Loss],
    channel: str,
    records: Iterable[Record],
    cause: str,
) -> None:
    """Count ``records`` of ``channel`` into their stream's :class:`_Loss` (made on first use)."""
    for record in records:
        key = (record.exchange, record.symbol, channel)
        loss = losses.get(key)
        if loss is None:
            loss = losses[key] = _Loss(
                record.exchange, record.symbol, record.native_symbol, channel, cause
            )
        loss.add(record)


def _cause(error: str) -> str:
    disk_full = os.strerror(errno.ENOSPC)
    return f"disk full ({error})" if disk_full in error else f"store failing ({error})"


class StoreWriter:
    """Feeds one :class:`Store` from a bounded queue on its own thread."""

    def __init__(
        self,
        store: Store,
        *,
        max_batches: int = 32,
        max_bytes: int = 32 * 2**20,
        flush_interval: float = 1.0,
        flush_records: int = 20_000,
        retry_initial_s: float = 0.2,
        retry_cap_s: float = 10.0,
        spool: Spool | None = None,
        spill_after_s: float = 5.0,
        give_up_after_s: float | None = None,
    ) -> None:
        self.store = store
        self.label = store.describe()
        self.flush_interval = flush_interval
        # Also flush once this many records wait for one: under a flood the records a flush
        # confirms (kept in ``_since_flush``, and buffered in the store) stay bounded, instead of
        # a whole interval's worth (a second at 250k records/s held ~200 MB of objects).
        self.flush_records = flush_records
        self._unflushed_records = 0
        self.queue: queue.Queue[tuple[Batch, int] | None] = queue.Queue(maxsize=max_batches)
        self.max_bytes = max_bytes
        self._queued_bytes = 0  # estimated bytes of the batches in ``queue`` (see batch_bytes)
        self._retry = Backoff(retry_initial_s, retry_cap_s)
        self._lock = threading.Lock()
        self._stored: Counter[str] = Counter()
        self._unflushed: Counter[str] = Counter()
        self._since_flush: list[Batch] = []  # written, not yet confirmed by a flush
        self.errors = 0
        self.last_error = ""
        self.lost: Counter[str] = Counter()
        self._losses: dict[tuple[str, str, str], _Loss] = {}  # what ``lost`` counts, for events
        self.loss_events = 0  # gap events describing losses that the store took
        # gap events for records the store refused for good (Store.take_refused), to write
        self._refusal_events: list[Record] = []
        self.closed_ok = False
        self._deadline: float | None = None  # monotonic time after which retries give up
        # Set by close(): retry sleeps end at once, and a failing store with a spool is not
        # waited for (its records go to the spool; see _attempt).
        self._closing = threading.Event()
        # Without a spool: stop retrying once the store failed this long without a success.
        self.give_up_after_s = give_up_after_s
        self.failing_since: float | None = None  # monotonic start of the current failures
        self.failed = ""  # why the writer gave up on its store ("" while it has not)
        # The spool only for stores where re-sending is harmless (see Store.idempotent).
        self.spool = spool if spool is not None and store.idempotent else None
        self.spill_after_s = spill_after_s
        self._spooled: Counter[str] = Counter()  # records in the spool now
        self.spooled_total = 0  # records that went through the spool during this run
        self.outages = 0
        # duration of each successful write and flush call, by operation (/metrics)
        self.latency = Buckets(WRITE_BUCKETS_S)
        self._spooling = False
        self._next_probe = 0.0
        if self.spool is not None and len(self.spool):
            self._spooled = self.spool.pending()
            self._spooling = True
            log.warning(
                "store %s: %d records spooled by an earlier run at %s; sending them first",
                self.label,
                sum(self._spooled.values()),
                self.spool.directory,
            )
        self._thread = threading.Thread(target=self._run, name=f"store:{self.label}", daemon=True)
        self._thread.start()

    # --- event-loop side ----------------------------------------------------------------------

    def offer(self, batch: Batch) -> bool:
        """Queue a batch without blocking; False when the queue is full, in batches or in bytes
        (apply backpressure). An empty queue takes any batch, so a big one cannot wait forever."""
        size = batch_bytes(batch)
        with self._lock:
            if self._queued_bytes and self._queued_bytes + size > self.max_bytes:
                return False
            try:
                self.queue.put_nowait((batch, size))
            except queue.Full:
                return False
            self._queued_bytes += size
        return True

    @property
    def backlog(self) -> int:
        return self.queue.qsize()

    @property
    def backlog_bytes(self) -> int:
        """Estimated bytes of the queued batches."""
        return self._queued_bytes

    @property
    def spool_bytes(self) -> int:
        """Bytes of the batches in the outage spool, on disk (0 without a spool)."""
        return self.spool.size_bytes if self.spool is not None else 0

    @property
    def has_room(self) -> bool:
        """At most half full in batches and in bytes: backpressure may end without flapping."""
        return (
            self.queue.qsize() <= self.queue.maxsize // 2
            and self._queued_bytes <= self.max_bytes // 2
        )

    @property
    def stored(self) -> Counter[str]:
        with self._lock:
            return Counter(self._stored)

    @property
    def spooled(self) -> Counter[str]:
        """Records waiting in the durable spool (the store is, or was just, down)."""
        with self._lock:
            return +self._spooled

    @property
    def spooling(self) -> bool:
        return self._spooling

    def note_lost(self, batch: Batch, cause: str = "") -> None:
        """Count a batch that will never be stored (either thread); described at close by gap
        events (see the module docstring)."""
        cause = cause or _cause(self.last_error)
        with self._lock:
            self.lost.update(batch_counts(batch))
            for channel, records in batch.items():
                _add_losses(self._losses, channel.value, records, cause)

    def close(self, deadline_s: float) -> None:
        """Finish: write everything queued, flush, close; give up retrying after
        ``deadline_s``. What could not be stored stays in the spool when there is one (sent on
        the next start), otherwise it is counted in :attr:`lost` and logged."""
        self._deadline = time.monotonic() + deadline_s
        self._closing.set()
        while True:
            try:
                self.queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                if not self._thread.is_alive():
                    break
        self._thread.join()
        if self.spool is not None:
            self.spool.close()  # another collector may use the folder now

    # --- writer thread ------------------------------------------------------------------------

    def _giving_up(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _note_error(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _stalled(self, now: float) -> bool:
        return (
            self.spool is None
            and self.give_up_after_s is not None
            and self.failing_since is not None
            and now - self.failing_since >= self.give_up_after_s
        )

    def _attempt(self, what: str, action: object) -> bool:
        """Run ``action`` until it succeeds (True). False when the shutdown deadline passes,
        with a spool when it kept failing for ``spill_after_s`` (the caller spools), without
        one once the store failed for ``give_up_after_s`` (then, and from then on, after one
        try: :attr:`failed`)."""
        assert callable(action)
        started = time.monotonic()
        while True:
            began = time.perf_counter()
            try:
                action()
            except Exception as exc:
                self._note_error(exc)
                self.store.take_refused()  # the same records are tried again: refused again
                now = time.monotonic()
                if self.failing_since is None:
                    self.failing_since = now
                if self.failed:
                    return False
                if self._stalled(now):
                    self.failed = (
                        f"store {self.label}: {what} failing for "
                        f"{now - self.failing_since:.0f}s ({self.last_error})"
                    )
                    log.error(
                        "%s; giving up: what it holds is counted as lost and collection stops",
                        self.failed,
                    )
                    return False
                delay = self._retry.next()
                if self.give_up_after_s is not None and self.spool is None:
                    # wake up in time to give up when the limit is reached
                    limit = self.failing_since + self.give_up_after_s
                    delay = min(delay, max(0.0, limit - now))
                if self._deadline is not None:
                    delay = min(delay, max(0.0, self._deadline - now))
                # Stopping: a store with a spool is not waited for, the spool keeps the data
                # for the next start (the stop stays within its grace, docs/collecting.md).
                spill = self.spool is not None and (
                    self._closing.is_set()
                    or time.monotonic() + delay - started >= self.spill_after_s
                )
                if self._giving_up() or spill:
                    log.error(
                        "store %s: %s failed (%s); %s",
                        self.label,
                        what,
                        self.last_error,
                        "spooling" if self.spool is not None else "shutdown deadline passed",
                    )
                    return False
                log.error(
                    "store %s: %s failed (%s); retry #%d in %.1fs, data kept",
                    self.label,
                    what,
                    self.last_error,
                    self._retry.attempt,
                    delay,
                )
                if self.spool is not None:
                    self._closing.wait(delay)  # a stop cuts it short: the spool takes over
                else:
                    # nothing else can keep the data: retry at the back-off's pace until the
                    # deadline (``_closing`` is set for the whole stop: waiting on it would spin)
                    time.sleep(delay)
                continue
            self.latency.observe((what,), time.perf_counter() - began)
            self.failing_since = None
            self._retry.reset()
            return True

    def _write(self, batch: Batch) -> None:
        if self._spooling:
            self._spill([batch])
            return
        if self._attempt("write", lambda: self.store.write(batch)):
            refused, _ = self._take_refused()
            if refused:
                batch = {
                    channel: [r for r in records if id(r) not in refused]
                    for channel, records in batch.items()
                }
            counts = batch_counts(batch)
            self._unflushed.update(counts)
            self._unflushed_records += counts.total()
            self._since_flush.append(batch)
        elif self.spool is not None:
            self._start_outage([*self._since_flush, batch])
        else:
            self.note_lost(batch)

    def _flush(self) -> bool:
        if not self._unflushed:
            if not self._spooling:
                try:
                    self.store.idle()  # e.g. the embedded store parts an old log while idle
                except Exception as e:
                    log.warning("store %s: idle housekeeping failed: %s", self.label, e)
            return True
        if self._attempt("flush", self.store.flush):
            _, refused_counts = self._take_refused()
            self._unflushed.subtract(refused_counts)  # counted lost, not stored
            with self._lock:
                self._stored.update(+self._unflushed)
            self._unflushed = Counter()
            self._unflushed_records = 0
            self._since_flush = []
            return True
        if self.spool is not None:
            self._start_outage(self._since_flush)
            return True
        return False

    def _take_refused(self) -> tuple[set[int], Counter[str]]:
        """After a successful write or flush: the records the store left out for good (a value
        its types cannot hold), counted as lost, each stream's described by a gap event that
        is written next (its range, count and reason). Their ``id``s and counts per channel."""
        refusals = self.store.take_refused()
        if not refusals:
            return set(), Counter()
        losses: dict[tuple[str, str, str], _Loss] = {}
        counts: Counter[str] = Counter()
        for refusal in refusals:
            channel = refusal.channel.value
            counts[channel] += 1
            _add_losses(losses, channel, (refusal.record,), f"unstorable ({refusal.reason})")
        with self._lock:
            self.lost.update(counts)
        self.last_error = f"unstorable records: {refusals[0].reason}"  # the health reason
        log.error(
            "store %s refused %d records it cannot hold, counted as lost (%s); first: %s",
            self.label,
            len(refusals),
            dict(counts),
            refusals[0].reason,
        )
        # events describing refused events could be refused in turn: not described again
        self._refusal_events.extend(
            loss.event() for loss in losses.values() if loss.channel != Channel.EVENTS.value
        )
        return {id(refusal.record) for refusal in refusals}, counts

    def _lose_damaged(self, spool: Spool, damage: SpoolDamaged) -> bool:
        """A spooled file that cannot be read back: set aside (so the batches after it drain),
        what it still tells of its records counted as lost and described by gap events. False
        when it cannot be moved (the spool then waits, as for a failing store)."""
        stubs, unknown = spool.damaged_contents(damage.path)
        counts = spool.counts_of(damage.path)
        try:
            moved = spool.set_aside(damage.path)
        except SpoolError as exc:
            log.error("store %s: %s; the spool waits (%s)", self.label, exc, damage)
            self._next_probe = time.monotonic() + self._retry.next()
            return False
        cause = f"spool file damaged ({damage}), moved to {moved}"
        losses: dict[tuple[str, str, str], _Loss] = {}
        for channel, records in stubs.items():
            _add_losses(losses, channel, records, cause)  # type: ignore[arg-type]  # stubs: ts, ids
        with self._lock:
            self.lost.update({c: len(r) for c, r in stubs.items()})
            if unknown > 0:
                self.lost["unknown"] += unknown
            self._spooled.subtract(counts)
        self.last_error = f"spool file damaged: {damage}"
        log.error(
            "store %s: %s; moved to %s, counted as lost: %s%s",
            self.label,
            damage,
            moved,
            {c: len(r) for c, r in stubs.items()},
            ""
            if unknown == 0
            else f" and {'an unknown number of' if unknown < 0 else unknown}"
            " records that tell nothing of their stream",
        )
        self._refusal_events.extend(loss.event() for loss in losses.values())
        return True

    def _write_refusal_events(self) -> None:
        if self._refusal_events:
            events, self._refusal_events = self._refusal_events, []
            self._write({Channel.EVENTS: events})

    def _abandon(self) -> None:
        """Give up on what the store has not confirmed: drop it from the store (a later flush or
        close must not store what is counted as lost) and count it lost."""
        try:
            self.store.discard()
        except NotImplementedError:
            log.warning(
                "store %s cannot drop unconfirmed writes; close may still store some", self.label
            )
        except Exception as exc:
            log.warning("store %s: discard failed: %s", self.label, exc)
        for batch in self._since_flush:
            self.note_lost(batch)
        self._unflushed = Counter()
        self._unflushed_records = 0
        self._since_flush = []

    def _store_loss_events(self) -> None:
        """Gap events describing every loss, retried until the shutdown deadline: the disk may
        have room again (or room for these few rows)."""
        with self._lock:
            events = [loss.event() for loss in self._losses.values()]
        if not events:
            return
        retry = Backoff(0.1, 2.0)
        while True:
            try:
                self.store.write({Channel.EVENTS: events})
                self.store.flush()
            except Exception as exc:
                self._note_error(exc)
                with contextlib.suppress(Exception):
                    self.store.discard()
                remaining = (self._deadline or 0.0) - time.monotonic()
                if remaining <= 0:
                    log.error(
                        "store %s: the %d gap events describing the lost records could not be "
                        "stored either (%s)",
                        self.label,
                        len(events),
                        self.last_error,
                    )
                    return
                time.sleep(min(retry.next(), remaining))
                continue
            with self._lock:
                self._stored[Channel.EVENTS.value] += len(events)
            self.loss_events = len(events)
            return

    def _start_outage(self, batches: list[Batch]) -> None:
        """The store is down: what it has not confirmed goes to the spool, in order."""
        self.outages += 1
        try:
            self.store.discard()
        except Exception as exc:  # the store's own cleanup failing must not lose the batches
            log.warning("store %s: discard after outage failed: %s", self.label, exc)
        self._unflushed = Counter()
        self._unflushed_records = 0
        self._since_flush = []
        self._spooling = True
        self._next_probe = time.monotonic() + self._retry.next()
        assert self.spool is not None
        log.error(
            "store %s is unreachable (%s); spooling to %s until it answers again",
            self.label,
            self.last_error,
            self.spool.directory,
        )
        self._spill(batches)

    def _spill(self, batches: list[Batch]) -> None:
        """Append to the spool; a full or failing spool blocks here (→ backpressure) while the
        store is probed, never drops."""
        assert self.spool is not None
        for index, batch in enumerate(batches):
            warned = False
            while True:
                try:
                    self.spool.append(batch, self.store.writer_id())
                    break
                except SpoolError as exc:
                    if not warned:
                        log.error("store %s: %s; holding data (backpressure)", self.label, exc)
                        warned = True
                    if self._giving_up():
                        for unsaved in batches[index:]:
                            self.note_lost(unsaved, f"spool failing ({exc})")
                        log.error("store %s: shutdown deadline; batches not spooled", self.label)
                        return
                    self._next_probe = 0.0
                    self._drain_spool(budget_s=1.0)
                    time.sleep(0.5)
            counts = batch_counts(batch)
            with self._lock:
                self._spooled.update(counts)
            self.spooled_total += sum(counts.values())

    def _drain_spool(self, budget_s: float) -> bool:
        """Send the oldest spooled batches while the store takes them, within ``budget_s``.
        False when the store (or the spool) failed."""
        spool = self.spool
        if spool is None or time.monotonic() < self._next_probe:
            return True
        deadline = time.monotonic() + budget_s
        while len(spool) and time.monotonic() < deadline:
            try:
                items = spool.peek(8)
            except SpoolDamaged as exc:
                self._note_error(exc)
                if not self._lose_damaged(spool, exc):
                    return False
                continue
            except SpoolError as exc:
                self._note_error(exc)
                log.error("store %s: %s", self.label, exc)
                self._next_probe = time.monotonic() + self._retry.next()
                return False
            try:
                for path, batch in items:
                    # as the writer (maybe an earlier run) that received it: see Spool
                    with self.store.writing_as(spool.writer_of(path)):
                        self.store.write(batch)
                self.store.flush()
            except Exception as exc:
                self._note_error(exc)
                self.store.take_refused()  # sent again: refused again
                with contextlib.suppress(Exception):
                    self.store.discard()
                delay = self._retry.next()
                self._next_probe = time.monotonic() + delay
                log.warning(
                    "store %s still unreachable (%s); %d records spooled, next try in %.1fs",
                    self.label,
                    self.last_error,
                    sum(self._spooled.values()),
                    delay,
                )
                return False
            spool.remove([path for path, _ in items])
            sent: Counter[str] = Counter()
            for _, batch in items:
                sent.update(batch_counts(batch))
            _, refused = self._take_refused()
            with self._lock:
                self._stored.update(+(sent - refused))
                self._spooled.subtract(sent)
            self._retry.reset()
        if not len(spool) and self._spooling:
            self._spooling = False
            log.warning("store %s is back: spool drained, writing directly again", self.label)
        return True

    def _run(self) -> None:
        # Flush at half the interval: the collector drains its sink at the other half, so a
        # record is durable within one flush interval of being received.
        every = self.flush_interval / 2
        last_flush = time.monotonic()
        while True:
            try:
                item = self.queue.get(timeout=every)
            except queue.Empty:
                item = ({}, 0)
            if item is _STOP:
                break
            batch, size = item
            if size:
                with self._lock:
                    self._queued_bytes -= size
            if batch:
                self._write(batch)
            self._write_refusal_events()
            if self._spooling:
                self._drain_spool(budget_s=every)
            elif (
                time.monotonic() - last_flush >= every
                or self._unflushed_records >= self.flush_records
            ):
                if not self._flush():  # given up (or past the shutdown deadline)
                    self._abandon()
                last_flush = time.monotonic()
        self._finish()

    def _finish(self) -> None:
        """Shutdown: flush, then send the spool while the store takes it (one try now, however
        long its backoff: a store still down is not waited for, the spool keeps the records for
        the next start), within the deadline; close the store."""
        self._write_refusal_events()
        flushed = self._flush()
        if flushed and self._refusal_events:  # the flush refused records: describe them too
            self._write_refusal_events()
            flushed = self._flush()
        if not flushed:
            self._abandon()
        self._next_probe = 0.0
        while self._spooling and not self._giving_up():
            if not self._drain_spool(budget_s=1.0):
                break
        if self._refusal_events:  # the drain met refused records or a damaged file
            self._write_refusal_events()  # spooled if the store went down meanwhile
            if not self._spooling and not self._flush():
                self._abandon()
        if self._spooling and self.spool is not None:
            log.error(
                "store %s: %d records remain spooled at %s; they are sent on the next start",
                self.label,
                sum(self.spooled.values()),
                self.spool.directory,
            )
        self._store_loss_events()
        try:
            self.store.close()
            self.closed_ok = flushed and not self._spooling
        except Exception as exc:
            self._note_error(exc)
            log.error("store %s: close failed (%s)", self.label, self.last_error)
        if self.lost:
            log.error(
                "store %s: %d records could NOT be stored: %s",
                self.label,
                sum(self.lost.values()),
                dict(self.lost),
            )
