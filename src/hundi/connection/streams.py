"""Stream supervision: keep every :class:`StreamSpec` connection of a venue open.

* drops and refused connects: capped exponential backoff with full jitter, reset once a
  connection stayed up ``healthy_after_s``; every retry is logged with its reason, forever.
* stale streams (nothing received, pings included, for ``stale_after_s``): reconnect with a
  *separate* backoff that grows per consecutive stale reconnect, so an illiquid stream that is
  legitimately silent does not reconnect in a tight loop. Any bytes received count, not just
  complete frames (:meth:`~hundi.connection.client.WsConnection.silent_for`), so one large
  frame on a slow link is not taken for silence; the silence reported is the one judged.
* lifetime (``max_lifetime_s``) and venue requests (``take_reconnects``, e.g. Binance
  ``serverShutdown``): make-before-break (:mod:`hundi.connection.rollover`).
* authenticated streams whose protocol cannot open them yet (no listen key, authentication
  back-off) wait without touching the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from enum import Enum

from hundi.connection.backoff import Backoff
from hundi.connection.client import WsConnectError
from hundi.connection.rollover import RollingSockets
from hundi.connection.sockets import FeedMode, LiveSocket, NotReady, log
from hundi.exchanges.base import StreamSpec
from hundi.records import EventKind


class Outcome(Enum):
    """How the watch over one open socket ended (:meth:`StreamSupervisor._supervise`)."""

    STOPPED = "stopped"  # the manager is stopping
    STALE = "stale"  # nothing received for the stale timeout
    CLOSED = "closed"  # the socket closed (the venue, the network)


class StreamSupervisor(RollingSockets):
    """Runs one task per stream: open, watch, roll over, reconnect (see the module doc)."""

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _run_stream(self, spec: StreamSpec) -> None:
        key = spec.key
        stats = self.stats[key]
        settings = self.settings
        backoff = Backoff(settings.backoff_initial_s, settings.backoff_cap_s)
        stale_backoff = Backoff(
            settings.stale_backoff_initial_s, settings.stale_backoff_cap_s, min_fraction=0.5
        )
        lifetime = settings.lifetime_s if settings.lifetime_s is not None else spec.max_lifetime_s
        ever_connected = False
        waiting = False
        while not self._stop.is_set():
            try:
                live = await self._open(spec, FeedMode.DELIVER)
            except NotReady:
                if not waiting:
                    log.info("%s: waiting for the venue protocol (credentials or listen key)", key)
                    waiting = True
                await self._sleep(settings.tick_s)
                continue
            except WsConnectError as exc:
                stats.connect_failures += 1
                stats.last_error = str(exc)
                delay = backoff.next()
                log.warning("%s: %s; retry #%d in %.1fs", key, exc, backoff.attempt, delay)
                await self._sleep(delay)
                continue
            waiting = False
            stats.connected = True
            if ever_connected:
                stats.reconnects += 1
                self.accounting.reconnects += 1
                self._closed_event(key, EventKind.RECONNECT, "reconnected")
            ever_connected = True
            log.info("%s: connected to %s", key, spec.url)
            self.protocol.on_open(key, time.time_ns(), self.sink)
            outcome, live = await self._supervise(spec, live, lifetime)
            if outcome is Outcome.STOPPED:
                info = await self._close(live, "collector stopping")
                self._stopped(key, self.stop_reason)
                log.info("%s: closed (%s)", key, info.describe())
                return
            if outcome is Outcome.STALE:
                stats.stale_reconnects += 1
                await self._close(live, "stale")
                silent = live.silent_s  # as judged: the close handshake is activity too
                self._lost(key, f"stale: nothing received for {silent:.1f}s")
                self._closed_event(key, EventKind.STALE, f"nothing received for {silent:.1f}s")
                delay = stale_backoff.next()
                log.warning(
                    "%s: nothing received for %.1fs (stale #%d); reconnecting in %.1fs",
                    key,
                    silent,
                    stale_backoff.attempt,
                    delay,
                )
            else:
                info = live.closed.result()
                self._live.discard(live.conn)
                self._lost(key, info.describe())
                stats.last_error = f"closed: {info.describe()}"
                if time.monotonic() - live.opened_at >= settings.healthy_after_s:
                    backoff.reset()
                    stale_backoff.reset()
                delay = backoff.next()
                log.warning(
                    "%s: connection closed (%s); reconnect #%d in %.1fs",
                    key,
                    info.describe(),
                    backoff.attempt,
                    delay,
                )
            await self._sleep(delay)

    async def _supervise(
        self, spec: StreamSpec, live: LiveSocket, lifetime: float
    ) -> tuple[Outcome, LiveSocket]:
        """Watch one open stream until it stops, goes stale or closes; rolls it over meanwhile.
        Returns the outcome and the socket that carried the stream last."""
        settings = self.settings
        key = spec.key
        stop_wait = asyncio.ensure_future(self._stop.wait())
        rollover_backoff = Backoff(settings.backoff_initial_s, settings.backoff_cap_s)
        next_rollover_try = 0.0
        stale_after = settings.stale_after_s if spec.stale_after_s is None else spec.stale_after_s
        try:
            while True:
                await asyncio.wait(
                    (live.closed, stop_wait),
                    timeout=settings.tick_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if self._stop.is_set():
                    return Outcome.STOPPED, live
                if live.closed.done():
                    return Outcome.CLOSED, live
                now = time.monotonic()
                if (
                    not self._paused
                    and now - live.conn.last_activity > stale_after  # cheap pre-check
                    and (silent := live.conn.silent_for(now)) > stale_after
                ):
                    live.silent_s = silent
                    return Outcome.STALE, live
                self._send_venue_messages(key, live)
                requested = key in self._reconnect_requests or key in self._venue_requests()
                aged = now - live.opened_at >= lifetime
                if (requested or aged) and now >= next_rollover_try:
                    why = "venue asked to reconnect" if requested else "connection lifetime"
                    self._reconnect_requests.discard(key)
                    new = await self._rollover(spec, live, why)
                    if new is live:
                        next_rollover_try = time.monotonic() + rollover_backoff.next()
                        if requested and not live.closed.done():
                            # the venue's wish stands until a switch (or a fresh socket) answers it
                            self._reconnect_requests.add(key)
                    else:
                        rollover_backoff.reset()
                        live = new
        finally:
            stop_wait.cancel()

    def _venue_requests(self) -> set[str]:
        """The streams the venue asked to reconnect and no switch has answered yet."""
        for asked in self.protocol.take_reconnects():
            self._reconnect_requests.add(asked)
        return self._reconnect_requests
