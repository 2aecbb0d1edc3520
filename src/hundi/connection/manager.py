"""The asyncio I/O adapter around a sans-I/O :class:`~hundi.exchanges.base.VenueProtocol`.

One :class:`ConnectionManager` per venue keeps every :class:`StreamSpec` connection open and
runs the venue's REST requests. The hot path is a synchronous callback per received message:
``time.time_ns()`` once, ``protocol.receive`` into the shared :class:`RecordSink`, one
accounting call. No await, no queue hop, no allocation beyond what the protocol does.

Reconnects:

* drops and refused connects: capped exponential backoff with full jitter, reset once a
  connection stayed up ``healthy_after_s``; every retry is logged with its reason, forever.
* stale streams (nothing received, pings included, for ``stale_after_s``): reconnect with a
  *separate* backoff that grows per consecutive stale reconnect, so an illiquid stream that is
  legitimately silent does not reconnect in a tight loop. Any bytes received count, not just
  complete frames (:meth:`~hundi.connection.client.WsConnection.silent_for`), so one large
  frame on a slow link is not taken for silence; the silence reported is the one judged.
* lifetime (``max_lifetime_s``) and venue requests (``take_reconnects``, e.g. Binance
  ``serverShutdown``): make-before-break. The new socket is opened and subscribed while the old
  keeps delivering; the new one's messages are held back. ``overlap_s`` after the new socket's
  first message the old one is retired and the held messages are delivered, minus those that
  the old socket already delivered byte-for-byte (the same event serialised by the same
  exchange stream is the same bytes). Per stream, messages stay in order and none is lost or
  doubled, so the protocol sees no close/open and keeps its book. The protocol's own
  sequence checks (Binance depth drops ``u <= last``) remain the second line of defence.
  If the new socket dies during the overlap the old one is kept, except on an authenticated
  stream when the new one had received messages the old one had not: its subscription may be
  the only live one (the venue ended the old's), so those are delivered and the old socket is
  closed as well: a break the protocol hears of (``on_close``), not a silent hole.

Authenticated streams (``StreamSpec.private``): the URL and the messages of each open come from
``protocol.opening`` at that moment (fresh signatures, listen keys); when it answers None (no
listen key yet, authentication back-off) the stream waits without touching the network. Their
messages, URLs and private REST answers are never logged or captured: captures show the spec's
public URL and a redaction marker instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import aiohttp

from hundi.capture.events import CaptureKind
from hundi.connection.backoff import Backoff
from hundi.connection.client import CloseInfo, WsClient, WsConnectError, WsConnection
from hundi.exchanges.base import (
    Opening,
    RecordSink,
    RejectedFrame,
    RestRequest,
    RestResponse,
    StreamSpec,
    VenueProtocol,
)
from hundi.pipeline.accounting import Accounting
from hundi.records import Event, EventKind

log = logging.getLogger("hundi.connection")


class CaptureHook(Protocol):
    """Raw capture (``RawCaptureWriter.record``): called on the hot path, must not block long."""

    def __call__(
        self,
        kind: CaptureKind,
        ts_ns: int,
        conn: str,
        url: str = "",
        data: bytes | str = b"",
        status: int = 0,
    ) -> None: ...


QuarantineHook = Callable[[int, str, str, bytes], None]  # ts_ns, conn key, reason, frame


@dataclass(slots=True)
class ConnectionSettings:
    """Timing knobs; the defaults suit live venues, tests shrink them."""

    backoff_initial_s: float = 0.5
    backoff_cap_s: float = 30.0
    healthy_after_s: float = 30.0  # a connection up this long resets the backoff
    stale_after_s: float = 60.0
    stale_backoff_initial_s: float = 5.0
    stale_backoff_cap_s: float = 300.0
    connect_timeout_s: float = 10.0
    overlap_s: float = 2.0  # make-before-break: read both this long after the new one's 1st message
    rollover_wait_s: float = 30.0  # switch anyway if the new socket stays silent this long
    overlap_max_frames: int = 500_000  # bound on messages held back during an overlap
    lifetime_s: float | None = None  # overrides StreamSpec.max_lifetime_s (tests)
    rest_timeout_s: float = 10.0
    rest_concurrency: int = 4
    check_every_frames: int = 1024  # call ``on_frames`` after this many messages
    tick_s: float = 0.25  # supervisor wake-up period (stale checks, venue reconnect requests)


@dataclass(slots=True)
class StreamStats:
    """Per-connection counters for the status screen and the summary."""

    key: str
    url: str
    connected: bool = False
    frames: int = 0
    bytes: int = 0
    connects: int = 0
    reconnects: int = 0
    stale_reconnects: int = 0
    rollovers: int = 0
    connect_failures: int = 0
    last_frame_ns: int = 0
    last_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_DELIVER, _HOLD, _DELIVER_REMEMBER, _DROP = 0, 1, 2, 3
REDACTED = b"<redacted: authenticated message>"


class _NotReady(Exception):
    """The protocol cannot give this stream's URL/messages yet (``opening`` returned None)."""


class _Feed:
    """Routes one socket's messages: deliver, hold back (new socket in an overlap), deliver and
    remember (old socket in an overlap) or drop (retired socket)."""

    __slots__ = ("deliver", "first_at", "held", "key", "mode", "seen")

    def __init__(self, key: str, deliver: Callable[[str, bytes, int], None], mode: int) -> None:
        self.key = key
        self.deliver = deliver
        self.mode = mode
        self.held: list[tuple[int, bytes]] = []
        self.seen: set[bytes] = set()
        self.first_at = 0.0

    def __call__(self, data: bytes) -> None:
        recv_ns = time.time_ns()
        mode = self.mode
        if mode == _DELIVER:
            self.deliver(self.key, data, recv_ns)
        elif mode == _HOLD:
            if not self.held:
                self.first_at = time.monotonic()
            self.held.append((recv_ns, data))
        elif mode == _DELIVER_REMEMBER:
            self.seen.add(data)
            self.deliver(self.key, data, recv_ns)


class _Live:
    """An open socket with its feed and birth time."""

    __slots__ = ("closed", "conn", "feed", "opened_at", "silent_s")

    def __init__(self, conn: WsConnection, feed: _Feed) -> None:
        self.conn = conn
        self.feed = feed
        self.opened_at = time.monotonic()
        self.silent_s = 0.0  # the silence that made the watchdog call it stale
        self.closed: asyncio.Task[CloseInfo] = asyncio.get_running_loop().create_task(
            conn.wait_closed()
        )


class ConnectionManager:
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
        self.protocol = protocol
        self.sink = sink
        self.accounting = accounting
        self.client = client
        self.settings = settings or ConnectionSettings()
        self.capture = capture
        self.quarantine = quarantine
        self.on_frames = on_frames
        self.on_capture_error = on_capture_error
        self.specs = protocol.connections()
        self.stats: dict[str, StreamStats] = {s.key: StreamStats(s.key, s.url) for s in self.specs}
        self.rest_requests = 0
        self.rest_failures = 0
        self._receive = protocol.receive
        self._since_check = 0
        self._internal_errors_logged: set[str] = set()
        self._live: set[WsConnection] = set()
        self._paused = False
        self._stop = asyncio.Event()
        self._reconnect_requests: set[str] = set()
        # authenticated streams: what they receive is redacted before captures and quarantine
        self._private = frozenset(s.key for s in self.specs if s.private)

    # --- hot path -----------------------------------------------------------------------------

    def _deliver(self, key: str, data: bytes, recv_ns: int) -> None:
        stats = self.stats[key]
        stats.frames += 1
        stats.bytes += len(data)
        stats.last_frame_ns = recv_ns
        capture = self.capture
        if capture is not None:
            shown = data if key not in self._private else self.protocol.redact(key, data)
            try:
                capture(CaptureKind.RECV, recv_ns, key, data=shown)
            except Exception as exc:  # never into the socket's callback: see _capture_failed
                self._capture_failed(exc)
        try:
            status = self._receive(key, data, recv_ns, self.sink)
        except RejectedFrame as exc:
            self.accounting.reject(exc.reason)
            if self.quarantine is not None:
                shown = data if key not in self._private else self.protocol.redact(key, data)
                self.quarantine(recv_ns, key, exc.reason, shown)
        except Exception as exc:
            self._internal_error(key, data, recv_ns, exc)
        else:
            self.accounting.count(status)
        self._since_check += 1
        if self._since_check >= self.settings.check_every_frames:
            self._since_check = 0
            if self.on_frames is not None:
                self.on_frames()

    def _capture(
        self,
        kind: CaptureKind,
        ts_ns: int,
        conn: str,
        url: str = "",
        data: bytes | str = b"",
        status: int = 0,
    ) -> None:
        """Raw capture off the per-frame path (opens, sends, closes, REST), failures handled."""
        if self.capture is not None:
            try:
                self.capture(kind, ts_ns, conn, url=url, data=data, status=status)
            except Exception as exc:
                self._capture_failed(exc)

    def _capture_failed(self, exc: Exception) -> None:
        """The raw capture raised (its disk is full...). An exception escaping into the socket's
        frame callback would be logged per frame and wedge the run, so capturing stops here and
        ``on_capture_error`` (the collector) decides what else happens."""
        self.capture = None
        if self.on_capture_error is not None:
            self.on_capture_error(exc)
        else:
            log.error("raw capture stopped, collection goes on without it: %s", exc)

    def _internal_error(self, key: str, data: bytes, recv_ns: int, exc: Exception) -> None:
        """A protocol bug: count it, quarantine the frame, log the traceback once per kind."""
        self.accounting.reject("internal_error")
        if self.quarantine is not None:
            shown = data if key not in self._private else self.protocol.redact(key, data)
            self.quarantine(recv_ns, key, "internal_error", shown)
        kind = type(exc).__name__
        if kind not in self._internal_errors_logged:
            self._internal_errors_logged.add(kind)
            log.error(
                "%s: venue protocol raised %s on a frame (counted as rejected internal_error; "
                "further ones are counted, not logged)",
                key,
                kind,
                exc_info=exc,
            )

    # --- control ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop reading; :meth:`run` closes every socket and returns."""
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

    def request_reconnect(self, key: str) -> None:
        """Ask for a make-before-break reconnect of one stream (as ``take_reconnects`` does)."""
        self._reconnect_requests.add(key)

    async def run(self) -> None:
        """Run every stream and the REST loop until :meth:`stop`."""
        tasks = [asyncio.create_task(self._run_stream(spec), name=spec.key) for spec in self.specs]
        tasks.append(asyncio.create_task(self._run_rest(), name="rest"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- WebSocket streams --------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _open(self, spec: StreamSpec, mode: int) -> _Live:
        stats = self.stats[spec.key]
        opening = self._opening(spec)
        feed = _Feed(spec.key, self._deliver, mode)
        try:
            conn = await self.client.connect(
                opening.url, feed, connect_timeout=self.settings.connect_timeout_s
            )
        except WsConnectError as exc:
            if spec.private and opening.url != spec.url:
                raise WsConnectError(str(exc).replace(opening.url, spec.url)) from None
            raise
        self._live.add(conn)
        if self._paused:
            conn.pause_reading()
        now = time.time_ns()
        stats.connects += 1
        self._capture(CaptureKind.OPEN, now, spec.key, url=spec.url)
        gap = 1.0 / spec.max_outgoing_per_s if spec.max_outgoing_per_s > 0 else 0.0
        for i, message in enumerate(opening.messages):
            if i and gap:
                await asyncio.sleep(gap)
            conn.send(message)
            self._capture(
                CaptureKind.SENT,
                time.time_ns(),
                spec.key,
                data=REDACTED if spec.private else message,
            )
        return _Live(conn, feed)

    def _opening(self, spec: StreamSpec) -> Opening:
        """This open's URL and messages, built now (fresh signatures, listen keys)."""
        opening = self.protocol.opening(spec, time.time_ns())
        if opening is None:
            raise _NotReady(spec.key)
        return opening

    async def _close(self, live: _Live, reason: str) -> CloseInfo:
        live.feed.mode = _DROP
        if not live.closed.done():
            live.conn.close(1000, reason)
        try:
            info = await asyncio.wait_for(asyncio.shield(live.closed), 5.0)
        except TimeoutError:
            info = CloseInfo(1006, f"{reason} (close timed out)")
        self._live.discard(live.conn)
        return info

    def _closed_event(self, key: str, kind: EventKind, detail: str) -> None:
        now = time.time_ns()
        self.sink.events.append(
            Event(
                exchange=self.protocol.exchange,
                symbol="",
                native_symbol="",
                ts=now,
                recv_ts=now,
                kind=kind.value,
                channel="",
                expected=-1,
                received=-1,
                detail=f"{key}: {detail}",
            )
        )

    def _lost(self, key: str, detail: str) -> None:
        """The socket is gone: tell the protocol (gap) and the capture."""
        now = time.time_ns()
        self.stats[key].connected = False
        self._capture(CaptureKind.CLOSE, now, key, data=detail.encode())
        self.protocol.on_close(key, now, self.sink)

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
                live = await self._open(spec, _DELIVER)
            except _NotReady:
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
            if outcome == "stopped":
                info = await self._close(live, "collector stopping")
                self._lost(key, "collector stopping")
                log.info("%s: closed (%s)", key, info.describe())
                return
            if outcome == "stale":
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

    async def _supervise(self, spec: StreamSpec, live: _Live, lifetime: float) -> tuple[str, _Live]:
        """Watch one open stream; returns ("stopped" | "stale" | "closed", the live socket)."""
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
                    return "stopped", live
                if live.closed.done():
                    return "closed", live
                now = time.monotonic()
                if (
                    not self._paused
                    and now - live.conn.last_activity > stale_after  # cheap pre-check
                    and (silent := live.conn.silent_for(now)) > stale_after
                ):
                    live.silent_s = silent
                    return "stale", live
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
        for asked in self.protocol.take_reconnects():
            self._reconnect_requests.add(asked)
        return self._reconnect_requests

    async def _rollover(self, spec: StreamSpec, old: _Live, why: str) -> _Live:
        """Make-before-break switch to a fresh socket (see the module docstring)."""
        key = spec.key
        stats = self.stats[key]
        log.info("%s: %s; opening a new connection before closing the old one", key, why)
        # Remember the old socket's messages *before* the new one can hold any: a message
        # both sockets carry must be found in ``seen`` when the held ones are delivered.
        old.feed.mode = _DELIVER_REMEMBER
        try:
            new = await self._open(spec, _HOLD)
        except _NotReady:
            old.feed.mode = _DELIVER
            old.feed.seen = set()
            return old
        except WsConnectError as exc:
            old.feed.mode = _DELIVER
            old.feed.seen = set()
            stats.connect_failures += 1
            log.warning("%s: rollover connect failed (%s); keeping the old connection", key, exc)
            return old
        settings = self.settings
        started = time.monotonic()
        while not self._stop.is_set():
            if old.closed.done() or new.closed.done():
                break
            held = new.feed.held
            now = time.monotonic()
            if held and now - new.feed.first_at >= settings.overlap_s:
                break
            if len(held) >= settings.overlap_max_frames:
                break
            if now - started >= settings.rollover_wait_s:
                break
            await asyncio.sleep(min(0.05, settings.overlap_s / 4))
        if new.closed.done():
            self._live.discard(new.conn)
            if spec.private and any(data not in old.feed.seen for _, data in new.feed.held):
                return await self._salvage(key, old, new)
            old.feed.mode = _DELIVER
            old.feed.seen = set()
            log.warning("%s: new connection closed during rollover; keeping the old one", key)
            return old
        # Switch: retire the old socket, then deliver what only the new one saw, in order.
        old.feed.mode = _DROP
        seen = old.feed.seen
        deliver = self._deliver
        duplicates = 0
        for recv_ns, data in new.feed.held:
            if data in seen:
                duplicates += 1
            else:
                deliver(key, data, recv_ns)
        new.feed.held = []
        new.feed.mode = _DELIVER
        old.feed.seen = set()
        old_gone_first = old.closed.done()
        asyncio.get_running_loop().create_task(self._close(old, "rollover"))
        stats.rollovers += 1
        stats.reconnects += 1
        self.accounting.reconnects += 1
        self._closed_event(key, EventKind.RECONNECT, f"rollover ({why})")
        log.info(
            "%s: switched to the new connection (%d overlapping messages deduplicated%s)",
            key,
            duplicates,
            "; old one had already closed" if old_gone_first else "",
        )
        return new

    async def _salvage(self, key: str, old: _Live, new: _Live) -> _Live:
        """The new socket of an authenticated stream died in the overlap with messages the old
        one never carried: deliver them, then end the old socket too.

        A private subscription belongs to its socket: the venue may already have ended the old
        one's (that is often why we roll over), so it need not carry what the new one did.
        Dropping the held messages and keeping the old socket would lose them with nothing to
        say so; closing it makes the protocol hear of the break (``on_close``: its gap).
        """
        old.feed.mode = _DROP
        seen = old.feed.seen
        deliver = self._deliver
        for recv_ns, data in new.feed.held:
            if data not in seen:
                deliver(key, data, recv_ns)
        new.feed.held = []
        old.feed.seen = set()
        log.warning("%s: new connection closed during rollover; reconnecting afresh", key)
        await self._close(old, "rollover failed")
        return old

    # --- REST ---------------------------------------------------------------------------------

    async def _run_rest(self) -> None:
        settings = self.settings
        timeout = aiohttp.ClientTimeout(total=settings.rest_timeout_s)
        limit = asyncio.Semaphore(settings.rest_concurrency)
        pending: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                while not self._stop.is_set():
                    now = time.time_ns()
                    for request in self.protocol.due_requests(now):
                        task = asyncio.create_task(self._fetch(session, limit, request))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
                    wake = self.protocol.next_wakeup_ns()
                    # Frames change what is due (a book needing a snapshot), so poll at least
                    # every 100 ms; sleep less when the venue says it is due sooner.
                    delay = 0.1 if wake is None else min(0.1, max(0.005, (wake - now) / 1e9))
                    await self._sleep(delay)
            finally:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

    async def _fetch(
        self, session: aiohttp.ClientSession, limit: asyncio.Semaphore, request: RestRequest
    ) -> None:
        async with limit:
            self.rest_requests += 1
            try:
                async with session.request(
                    request.method, request.url, headers=dict(request.headers)
                ) as reply:
                    body = await reply.read()
                    response = RestResponse(reply.status, body, dict(reply.headers))
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
                response = RestResponse(599, reason.encode())
            recv_ns = time.time_ns()
            if response.status >= 400:
                self.rest_failures += 1
                log.warning(
                    "REST %s %s for %s: status %d %s",
                    request.method,
                    request.url,
                    request.key,
                    response.status,
                    "" if request.private else response.body[:200].decode("utf-8", "replace"),
                )
            if not request.private:
                self._capture(
                    CaptureKind.REST,
                    recv_ns,
                    request.key,
                    url=request.url,
                    data=response.body,
                    status=response.status,
                )
            try:
                self.protocol.receive_response(request, response, recv_ns, self.sink)
            except Exception as exc:
                kind = f"rest:{type(exc).__name__}"
                if kind not in self._internal_errors_logged:
                    self._internal_errors_logged.add(kind)
                    log.error(
                        "venue protocol raised %s on a REST response for %s",
                        type(exc).__name__,
                        request.key,
                        exc_info=exc,
                    )


__all__ = [
    "CaptureHook",
    "ConnectionManager",
    "ConnectionSettings",
    "QuarantineHook",
    "StreamStats",
]
