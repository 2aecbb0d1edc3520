"""The asyncio I/O adapter around a sans-I/O :class:`~hundi.exchanges.base.VenueProtocol`.

One :class:`ConnectionManager` per venue keeps every :class:`StreamSpec` connection open and
runs the venue's REST requests. It is assembled from:

* :mod:`hundi.connection.sockets`: the per-message hot path (``protocol.receive`` into the
  shared :class:`RecordSink`, one accounting call), opening and closing sockets, captures;
* :mod:`hundi.connection.rollover`: make-before-break switches to a fresh socket;
* :mod:`hundi.connection.streams`: stream supervision (reconnect backoff, stale streams,
  lifetime and venue-requested rollovers);
* :mod:`hundi.connection.rest`: the REST loop.

This module adds the controls the collector uses: :meth:`~ConnectionManager.run`,
:meth:`~ConnectionManager.stop` and backpressure (:meth:`~ConnectionManager.pause_reading`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from hundi.accounting import Accounting
from hundi.connection.client import WsClient
from hundi.connection.rest import RestLoop
from hundi.connection.sockets import (
    CaptureHook,
    ConnectionSettings,
    QuarantineHook,
    StreamStats,
)
from hundi.connection.streams import Outcome, StreamSupervisor
from hundi.exchanges.base import REDACTED, RecordSink, VenueProtocol

log = logging.getLogger("hundi.connection")


class ConnectionManager(StreamSupervisor):
    """Keeps one venue's WebSockets open and its REST requests served (see module doc)."""

    def __init__(
        self,
        protocol: VenueProtocol,
        sink: RecordSink,
        accounting: Accounting,
        client: WsClient,
        *,
        settings: ConnectionSettings | None = None,
        capture: CaptureHook | None = None,
        quarantine: QuarantineHook | None = None,
        on_frames: Callable[[], None] | None = None,
        on_capture_error: Callable[[Exception], None] | None = None,
    ) -> None:
        super().__init__(
            protocol,
            sink,
            accounting,
            client,
            settings=settings,
            capture=capture,
            quarantine=quarantine,
            on_frames=on_frames,
            on_capture_error=on_capture_error,
        )
        self.rest = RestLoop(protocol, sink, self.settings, self._capture, self._stop)

    @property
    def rest_requests(self) -> int:
        return self.rest.requests

    @property
    def rest_failures(self) -> int:
        return self.rest.failures

    def stop(self, reason: str = "") -> None:
        """Stop reading; :meth:`run` closes every socket, each with a ``stopped`` event saying
        ``reason``, and returns."""
        if self._stop.is_set():
            return
        self.stop_reason = reason
        try:
            self.rest.stop_asking()  # before any socket's stop: see RestLoop.stop_asking
        except Exception:  # the venue's code: it must not keep the manager running
            log.exception("venue protocol raised at the stop's last look at REST requests")
        finally:
            self._stop.set()

    def pause_reading(self) -> None:
        """Backpressure: stop reading every socket until :meth:`resume_reading`."""
        if not self._paused:
            self._paused = True
            for conn in self._live:
                conn.pause_reading()

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            now = time.monotonic()
            for conn in self._live:
                conn.last_activity = now  # silence while paused was ours, not the venue's
                conn.resume_reading()

    @property
    def paused(self) -> bool:
        return self._paused

    async def run(self) -> None:
        """Run every stream and the REST loop until :meth:`stop`."""
        tasks = [asyncio.create_task(self._run_stream(spec), name=spec.key) for spec in self.specs]
        tasks.append(asyncio.create_task(self.rest.run(), name="rest"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


__all__ = [
    "REDACTED",
    "CaptureHook",
    "ConnectionManager",
    "ConnectionSettings",
    "Outcome",
    "QuarantineHook",
    "StreamStats",
]
