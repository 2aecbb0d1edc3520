"""The collector: venues + connection managers + store writers + raw capture, one event loop.

Hot path: frame → ``protocol.receive`` → the shared :class:`RecordSink` (no await per record).
Every ``flush_interval`` (and early when the sink holds ``max_batch_records``) the sink is
drained into one batch that is offered to every store writer's bounded queue. If any queue is
full the batch is held, all sockets stop reading (backpressure: the kernel buffers, then the
exchange, absorb it) and the hold is retried until accepted: memory stays bounded and nothing
is dropped. ``stop()`` (SIGINT/SIGTERM, ``--duration``) stops reading, drains the sink one last
time, lets every writer store and flush everything, and returns the summary.

A store that keeps failing (a full disk) holds its data and the backpressure holds the sockets;
once it has failed for ``store_give_up_after_s`` its writer gives up and the collector stops
(:attr:`Collector.failed`), counting what could not be stored as lost (see
:mod:`hundi.pipeline.writer`).

A raw capture that cannot be written (its disk is full) never reaches the sockets' callbacks:
capturing stops with one error line and a stored gap event (channel ``raw``) per exchange, and
collection goes on. Why not stop the run: the market data cannot be fetched again later, the raw
capture is a copy of it; the user who asked for ``--raw`` still hears of it loudly (the error
line, the event, ``raw.error`` in the summary and a non-zero exit of ``hundi collect``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

from hundi.accounting import Accounting
from hundi.connection.client import WsClient, default_client
from hundi.connection.manager import (
    CaptureHook,
    ConnectionManager,
    ConnectionSettings,
    QuarantineHook,
)
from hundi.exchanges.base import BookStatus, RecordSink, VenueProtocol, book_keys
from hundi.outcome import SeriesTally, auth_refusal, series_report
from hundi.pipeline.histograms import LagHistogram
from hundi.pipeline.resume import RestartGaps
from hundi.pipeline.spool import Spool, spool_folder
from hundi.pipeline.writer import Batch, StoreWriter
from hundi.records import Channel, Event, EventKind, Record, one_exchange, stream_tally
from hundi.series.engine import SeriesEngine, SeriesRunner
from hundi.stores.base import Store

log = logging.getLogger("hundi.pipeline")
# The ``channel`` of the event a failed raw capture stores: no market-data channel, not counted
# as a market-data gap.
RAW_CHANNEL = "raw"
_STREAM = attrgetter("exchange", "symbol")
_SYMBOL = attrgetter("symbol")


@dataclass(slots=True)
class SymbolView:
    """What the status screen shows per symbol: last price and exchange→local lag."""

    exchange: str
    symbol: str
    last_price: float = 0.0
    lag_ms: float = 0.0
    records: int = 0


@dataclass(slots=True)
class CollectorSettings:
    flush_interval: float = 1.0
    # A flood's batches stay small, so records (~300 B each as Python objects) are not held by
    # the hundred thousand (measured at max speed: 50k held ~80 MB more at peak than 20k).
    max_batch_records: int = 20_000
    queue_batches: int = 32
    # Each store writer's queue also holds at most this many bytes (estimated, see
    # hundi.pipeline.writer.batch_bytes): memory stays bounded whatever the batch sizes. At
    # full speed the queue is full most of the time and its records (~370 B each as Python
    # objects) are most of the peak RSS: 64 MiB measured 240-275 MB, 32 MiB 192-220 MB, the
    # same CPU per frame (bench/vs_cryptofeed.py, 4 rounds each, 2026-12-05).
    queue_bytes: int = 32 * 2**20
    shutdown_timeout_s: float = 30.0
    # Outage spool for idempotent stores (None: no spool, a down store means backpressure).
    spool_dir: Path | None = None
    spill_after_s: float = 5.0
    # A store failing this long without a spool (disk full) stops the collector (None: never).
    store_give_up_after_s: float | None = None
    connection: ConnectionSettings = field(default_factory=ConnectionSettings)


class Collector:
    """Runs venues into stores until stopped or ``duration`` elapses. See the module doc."""

    def __init__(
        self,
        venues: Sequence[VenueProtocol],
        stores: Sequence[Store],
        *,
        settings: CollectorSettings | None = None,
        client: WsClient | None = None,
        capture: CaptureHook | None = None,
        capture_of: Callable[[VenueProtocol], CaptureHook | None] | None = None,
        quarantine: QuarantineHook | None = None,
        quarantine_of: Callable[[VenueProtocol], QuarantineHook | None] | None = None,
        series: SeriesEngine | None = None,
        spool_labels: Sequence[str] | None = None,
    ) -> None:
        self.settings = settings or CollectorSettings()
        # Per store, the label its spool folder is named from (default: the store's own).
        self.spool_labels = (
            list(spool_labels) if spool_labels is not None else [s.describe() for s in stores]
        )
        # Derived series (bars, book snapshots...) computed on their own thread from each
        # drained batch; their records join the next batch to the stores.
        self.series_engine = series if series else None
        # The hole since the previous run into these stores, as stored gap events.
        self.restart_gaps = RestartGaps(stores)
        self.series: SeriesRunner | None = None
        self.series_tally = SeriesTally()  # records per configured series, for the summary
        self.accounting = Accounting()
        self.sink = RecordSink()
        self.venues = list(venues)
        self.stores = list(stores)
        self.client = client or default_client()
        self.writers: list[StoreWriter] = []
        # Opened (and locked: one collector per spool folder) before anything runs, so a
        # second collector on the same spool stops at once (SpoolInUse).
        self.spools = self._open_spools()
        self.managers = [
            ConnectionManager(
                venue,
                self.sink,
                self.accounting,
                self.client,
                settings=self.settings.connection,
                capture=capture_of(venue) if capture_of is not None else capture,
                quarantine=quarantine_of(venue) if quarantine_of is not None else quarantine,
                on_frames=self._check_sink,
                on_capture_error=self._capture_failed,
            )
            for venue in self.venues
        ]
        self.symbols: dict[tuple[str, str], SymbolView] = {}
        self.started = 0.0
        self.stopped_at = 0.0  # when the stop came (duration, signal): collecting ended there
        self.finished = 0.0
        self.backpressure_events = 0
        self.backpressure_s = 0.0
        self._held: list[tuple[StoreWriter, Batch]] = []
        self._paused_at: float | None = None
        self._stop = asyncio.Event()
        self._drain_now = asyncio.Event()
        self._drain_error: Exception | None = None  # a drain in a socket callback failed
        self.stop_reason = ""
        self.failed = ""  # why the collector stopped itself (a store it gave up on)
        self.capture_error = ""  # why the raw capture stopped ("" while it works)
        self._books_at_begin: list[list[BookStatus]] | None = None
        # Natives a venue said it does not list or trade (its invalid_symbol events), in order.
        self.invalid_symbols: dict[str, None] = {}
        # the venue refused our API credentials (auth_failed events, secrets already scrubbed):
        # authenticated channels missed data, so the run is not "ok" (found by review)
        self.auth_refused: dict[str, None] = {}
        # Exchange→local lag per drained batch, for /metrics; None (no cost) without metrics.
        self.lag: LagHistogram | None = None

    # --- control ------------------------------------------------------------------------------

    def stop(self, reason: str = "stop requested") -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            log.info("stopping: %s", reason)
        self._stop.set()

    def _open_spools(self) -> list[Spool | None]:
        """One spool per idempotent store (None for the others), all or none open."""
        spools: list[Spool | None] = []
        try:
            for store, label in zip(self.stores, self.spool_labels, strict=True):
                spools.append(self._spool_for(store, label))
        except BaseException:
            for spool in spools:
                if spool is not None:
                    spool.close()
            raise
        return spools

    def close_spools(self) -> None:
        """Release the spool folders (the writers closed them already after a run)."""
        for spool in self.spools:
            if spool is not None:
                spool.close()

    def _spool_for(self, store: Store, label: str) -> Spool | None:
        if self.settings.spool_dir is None or not store.idempotent:
            return None
        return Spool(spool_folder(self.settings.spool_dir, label))

    def _capture_failed(self, exc: Exception) -> None:
        """The raw capture failed (see the module docstring): capture no more, say so once,
        and store a gap event per exchange (channel ``raw``)."""
        if self.capture_error:
            return
        self.capture_error = str(exc) or type(exc).__name__
        for manager in self.managers:
            manager.capture = None
        # One line per process, however many collectors share the capture.
        if not getattr(exc, "reported", False):
            with contextlib.suppress(AttributeError):
                exc.reported = True  # type: ignore[attr-defined]
            log.error("raw capture stopped, collection goes on without it: %s", self.capture_error)
        now = time.time_ns()
        for exchange in dict.fromkeys(venue.exchange for venue in self.venues):
            self.sink.events.append(
                Event(
                    exchange=exchange,
                    symbol="",
                    native_symbol="",
                    ts=now,
                    recv_ts=now,
                    kind=EventKind.GAP.value,
                    channel=RAW_CHANNEL,
                    expected=-1,
                    received=-1,
                    detail=f"raw capture stopped, nothing captured from here on: "
                    f"{self.capture_error}",
                )
            )

    def _check_sink(self) -> None:
        """Called every N frames by the managers: drain early when the sink is large. At once,
        from the socket's callback: one read of a flooded socket holds tens of thousands of
        frames, and waiting for the drain task let the sink grow to 140k records (~40 MB)."""
        if len(self.sink) >= self.settings.max_batch_records:
            if not self._held and not self._stop.is_set() and self._drain_error is None:
                try:
                    self._drain()
                    self._update_backpressure()
                except Exception as exc:  # never into the socket's callback:
                    self._drain_error = exc  # run() stores the rest, then raises it
                    log.error("draining the sink failed: %r; stopping", exc)
                    self.stop(f"internal error while draining: {exc!r}")
                return
            self._drain_now.set()

    # --- running ------------------------------------------------------------------------------

    async def run(self, duration: float | None = None) -> dict[str, Any]:
        """Collect until :meth:`stop` or ``duration`` seconds; returns the summary."""
        settings = self.settings
        self.writers = [
            StoreWriter(
                store,
                max_batches=settings.queue_batches,
                max_bytes=settings.queue_bytes,
                flush_interval=settings.flush_interval,
                flush_records=settings.max_batch_records,
                spool=spool,
                spill_after_s=settings.spill_after_s,
                give_up_after_s=settings.store_give_up_after_s,
            )
            for store, spool in zip(self.stores, self.spools, strict=True)
        ]
        if self.series_engine is not None:
            self.series = SeriesRunner(self.series_engine)
        self.started = time.monotonic()
        manager_tasks = [asyncio.create_task(m.run()) for m in self.managers]
        drainer = asyncio.create_task(self._drain_loop())
        timer = None
        if duration is not None:
            timer = asyncio.get_running_loop().call_later(
                duration, self.stop, f"duration {duration:g}s reached"
            )
        try:
            await self._stop.wait()
        finally:
            self.stopped_at = time.monotonic()
            if timer is not None:
                timer.cancel()
            # The books as they were while running: closing a socket unsyncs its books.
            self._books_at_begin = [list(m.protocol.books()) for m in self.managers]
            drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drainer
            if not self._held:
                self._drain()
            for manager in self.managers:
                manager.stop(self.stop_reason)  # each socket stores a ``stopped`` event
            # Sockets must close even while paused by backpressure.
            results = await asyncio.gather(*manager_tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    log.error("connection manager failed: %r", result, exc_info=result)
            await self._final_drain()
        self.finished = time.monotonic()
        if self._drain_error is not None:  # after the rest was stored: fail loudly
            raise self._drain_error
        return self.summary()

    async def _drain_loop(self) -> None:
        # Records wait in the sink up to half the flush interval and in the writer up to the
        # other half, so what a kill -9 can lose stays within one flush interval.
        # It ends on the stop flag, not only on cancel: Python 3.11's ``wait_for`` swallows a
        # cancel that lands as the awaited event fires (a flood sets ``_drain_now`` all the
        # time), and the collector then never stopped.
        interval = self.settings.flush_interval / 2
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval if not self._held else 0.02):
                    await self._drain_now.wait()
            if self._stop.is_set():
                return  # run() drains the rest
            self._drain_now.clear()
            self._push_held()
            if not self._held:
                self._drain()
            self._update_backpressure()
            for writer in self.writers:
                if writer.failed and not self.failed:
                    self.failed = writer.failed
                    self.stop(writer.failed)

    def _drain(self) -> None:
        batch: Batch = self.sink.drain() if len(self.sink) else {}
        if self.series is not None:
            # Every drain ticks the series clock, data or not: time bars close on the clock.
            # ``now`` is read after the drain, so every record drained was received before it.
            self.series.offer(batch, time.time_ns())
            derived = self.series.take()
            if derived:
                self.series_tally.add(derived)
                batch = {**batch, **derived}
        batch = self._with_restart_gaps(batch)
        if not batch:
            return
        self._observe(batch)
        for writer in self.writers:
            if not writer.offer(batch):
                self._held.append((writer, batch))

    def _with_restart_gaps(self, batch: Batch, wait_s: float = 0.0, *, last: bool = False) -> Batch:
        """``batch`` plus the gap events of the holes since the previous run found so far
        (``last``: all of them, at the stop, see :meth:`RestartGaps.finish`)."""
        self.restart_gaps.note(batch)
        found = self.restart_gaps.finish(wait_s) if last else self.restart_gaps.take(wait_s)
        if not found:
            return batch
        if not self.stopping and not last:
            # what a venue can fetch back (trades by id) it fetches, as for a gap seen live
            now_ns = time.time_ns()
            for gap in found:
                for venue in self.venues:
                    if venue.exchange == gap.exchange and venue.recover(gap, now_ns, self.sink):
                        break
        return {**batch, Channel.EVENTS: [*batch.get(Channel.EVENTS, ()), *found]}

    def _push_held(self) -> None:
        still: list[tuple[StoreWriter, Batch]] = []
        for writer, batch in self._held:
            if not writer.offer(batch):
                still.append((writer, batch))
        self._held = still

    def _update_backpressure(self) -> None:
        if self._held:
            if self._paused_at is None:
                self._paused_at = time.monotonic()
                self.backpressure_events += 1
                full = sorted({w.label for w, _ in self._held})
                log.warning(
                    "store queue full (%s): pausing socket reads until it catches up",
                    ", ".join(full),
                )
                for manager in self.managers:
                    manager.pause_reading()
        # Resume only with room for more than one batch, so we do not flap.
        elif self._paused_at is not None and all(w.has_room for w in self.writers):
            paused = time.monotonic() - self._paused_at
            self.backpressure_s += paused
            self._paused_at = None
            log.info("store caught up after %.2fs; reading sockets again", paused)
            for manager in self.managers:
                manager.resume_reading()

    async def _final_drain(self) -> None:
        """Everything left in the sink and held → the writers, then close them (blocking)."""
        deadline = time.monotonic() + self.settings.shutdown_timeout_s
        batch: Batch = self.sink.drain() if len(self.sink) else {}
        if self.series is not None:
            await asyncio.to_thread(
                self.series.finish, batch, time.time_ns(), self.settings.shutdown_timeout_s / 2
            )
            derived = self.series.take()
            if derived:
                self.series_tally.add(derived)
                batch = {**batch, **derived}
        # off the event loop: other feeds of this process stop meanwhile (their deadlines)
        batch = await asyncio.to_thread(
            self._with_restart_gaps,
            batch,
            min(5.0, self.settings.shutdown_timeout_s / 4),
            last=True,
        )
        if batch:
            self._observe(batch)
            self._held.extend((writer, batch) for writer in self.writers)
        while self._held and time.monotonic() < deadline:
            self._push_held()
            if self._held:
                await asyncio.sleep(0.02)
        for writer, batch in self._held:
            writer.note_lost(batch, "shutdown deadline: never handed to the store")
            log.error("store %s: shutdown timeout; a batch could not be queued", writer.label)
        self._held = []
        remaining = max(1.0, deadline - time.monotonic())
        await asyncio.gather(
            *(asyncio.to_thread(writer.close, remaining) for writer in self.writers)
        )
        self._update_records()

    # --- observation --------------------------------------------------------------------------

    def _observe(self, batch: Batch) -> None:
        """Per drained batch: integrity events into the accounting, last prices for status.

        An ``invalid_symbol`` event is logged as a warning (status screen, log file), because
        the exchange itself just stays silent about such a symbol.
        """
        events = batch.get(Channel.EVENTS)
        if events:
            for event in events:
                kind = getattr(event, "kind", "")
                # a raw capture that stopped is no gap in the market data (summary: raw.error)
                raw = getattr(event, "channel", "") == RAW_CHANNEL
                if kind == EventKind.GAP and not raw:
                    self.accounting.gaps += 1
                elif kind == EventKind.RESYNC:
                    self.accounting.resyncs += 1
                elif kind == EventKind.INVALID_SYMBOL:
                    log.warning("%s: no data will come for it", getattr(event, "detail", ""))
                    self.invalid_symbols[getattr(event, "native_symbol", "")] = None
                elif (refused := auth_refusal(event)) is not None:
                    self.auth_refused[refused] = None
        for channel in (Channel.TRADES, Channel.BBO, Channel.TICKER, Channel.CANDLES):
            records = batch.get(channel)
            if records:
                self._note_last(channel, records)
        if self.lag is not None:
            self.lag.observe(batch)
        self._update_records()

    def _note_last(self, channel: Channel, records: list[Record]) -> None:
        # Runs on the event loop for every record of a batch: one C pass (stream_tally), else
        # C-level map/zip/Counter, no per-record Python frame.
        # One collector may run feeds of several venues whose records share a batch, so a
        # stream is (exchange, symbol), never the symbol alone.
        counts: Mapping[tuple[str, str], int]
        tallied = stream_tally(records)
        if tallied is not None:  # the usual batch
            one, names, numbers, lasts = tallied
            latest = {(one, s): r for s, r in zip(names, lasts, strict=True)}
            counts = {(one, s): n for s, n in zip(names, numbers, strict=True)}
        elif (exchange := one_exchange(records)) is not None:  # by symbol: no tuple per record
            symbols = list(map(_SYMBOL, records))
            latest = {(exchange, s): r for s, r in dict(zip(symbols, records, strict=True)).items()}
            counts = {(exchange, s): n for s, n in Counter(symbols).items()}
        else:
            streams = list(map(_STREAM, records))
            latest = dict(zip(streams, records, strict=True))
            counts = Counter(streams)
        for key, record in latest.items():
            view = self.symbols.get(key)
            if view is None:
                view = self.symbols[key] = SymbolView(*key)
            price = _price_of(record)
            if price:
                view.last_price = price
            if record.ts != record.recv_ts:  # records without an exchange time tell no lag
                view.lag_ms = (record.recv_ts - record.ts) / 1e6
        for key, n in counts.items():
            self.symbols[key].records += n

    def _update_records(self) -> None:
        """``records`` = stored in *every* store (the minimum across stores, per channel)."""
        if not self.writers:
            return
        counts = [writer.stored for writer in self.writers]
        for channel in Channel:
            self.accounting.records[channel.value] = min(c[channel.value] for c in counts)

    def books(self) -> list[tuple[str, BookStatus]]:
        return [(venue.exchange, book) for venue in self.venues for book in venue.books()]

    @property
    def books_at_stop(self) -> list[tuple[str, BookStatus]] | None:
        """The books as the run ended, before the closing sockets reset them (what a final
        status screen shows, see :meth:`_final_books`); None while running."""
        return None if self._books_at_begin is None else self._final_books()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def summary(self) -> dict[str, Any]:
        now = time.monotonic()
        end = self.stopped_at or now
        duration = max(end - self.started, 1e-9) if self.started else 0.0
        stopping = (self.finished or now) - self.stopped_at if self.stopped_at else 0.0
        streams = {
            f"{venue.exchange}:{key}": stats.as_dict()
            for venue, manager in zip(self.venues, self.managers, strict=True)
            for key, stats in manager.stats.items()
        }
        stores = [
            {
                "store": writer.label,
                "records": dict(sorted(writer.stored.items())),
                "errors": writer.errors,
                "last_error": writer.last_error,
                "lost": dict(sorted(writer.lost.items())),
                "spooled": dict(sorted(writer.spooled.items())),
                "spooled_total": writer.spooled_total,
                "outages": writer.outages,
                "gave_up": writer.failed,
                "loss_events": writer.loss_events,
            }
            for writer in self.writers
        ]
        return self.accounting.summary(
            duration_s=round(duration, 3),  # collecting: from the start to the stop
            stopping_s=round(stopping, 3),  # closing sockets, the final flush and spool
            msgs_per_s=round(self.accounting.received / duration, 1) if duration else 0.0,
            stop_reason=self.stop_reason,
            # holes since the previous run into the same stores (stored as gap events)
            restart_gaps=self.restart_gaps.found,
            invalid_symbols=list(self.invalid_symbols),
            auth_refused=list(self.auth_refused),
            streams=streams,
            stores=stores,
            rest={
                "requests": sum(m.rest_requests for m in self.managers),
                "failures": sum(m.rest_failures for m in self.managers),
            },
            backpressure={
                "events": self.backpressure_events,
                "paused_s": round(self.backpressure_s, 3),
            },
            series=self._series_summary(duration),
            books=[
                {
                    "exchange": exchange,
                    "symbol": book.symbol,
                    "synced": book.synced,
                    "bids": book.bids,
                    "asks": book.asks,
                }
                for exchange, book in self._final_books()
            ],
        )

    def _final_books(self) -> list[tuple[str, BookStatus]]:
        """The books as the run ended: for each venue, as its sockets left them when they
        closed (a snapshot can still be applied while the stop runs, and its ``synced`` event
        is stored), else as they were when the stop began, else live."""
        if self._books_at_begin is None:
            return self.books()
        books: list[tuple[str, BookStatus]] = []
        for manager, began in zip(self.managers, self._books_at_begin, strict=True):
            exchange = manager.protocol.exchange
            at_close = manager.books_at_stop
            if at_close is None:
                books.extend((exchange, book) for book in began)
            else:
                books.extend(
                    (exchange, at_close.get(key, book))
                    for key, book in zip(book_keys(began), began, strict=True)
                )
        return books

    def _series_summary(self, run_s: float) -> dict[str, Any] | None:
        if self.series is None or self.series_engine is None:
            return None
        plans = [plan for _, plan in self.series_engine.plans]
        return {
            **self.series.summary(),
            "specs": series_report(plans, self.series_tally, run_s),
        }


def _price_of(record: Record) -> float:
    for name in ("price", "last_price", "close"):
        value = getattr(record, name, None)
        if value is not None:
            return float(value)
    bid = getattr(record, "bid_price", None)
    ask = getattr(record, "ask_price", None)
    if bid is not None and ask is not None:
        return (float(bid) + float(ask)) / 2
    return 0.0
