"""The sockets of one venue and the per-message hot path, shared by stream supervision
(:mod:`hundi.connection.streams`) and the make-before-break rollover
(:mod:`hundi.connection.rollover`).

The hot path is a synchronous callback per received message: ``time.time_ns()`` once,
``protocol.receive`` into the shared :class:`RecordSink`, one accounting call. No await, no
queue hop, no allocation beyond what the protocol does.

A :class:`Feed` routes one socket's messages according to its :class:`FeedMode`; a
:class:`LiveSocket` is an open socket with its feed and birth time.

Authenticated streams (``StreamSpec.private``): the URL and the messages of each open come from
``protocol.opening`` at that moment (fresh signatures, listen keys); when it answers None (no
listen key yet, authentication back-off) :class:`NotReady` is raised and the caller waits
without touching the network. Their messages and URLs are never logged or captured: captures
show the spec's public URL and a redaction marker instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import Any, Protocol

from hundi.accounting import Accounting
from hundi.capture.events import CaptureKind
from hundi.connection.client import CloseInfo, WsClient, WsConnectError, WsConnection
from hundi.exchanges.base import (
    BookStatus,
    FrameStatus,
    Opening,
    RecordSink,
    RejectedFrame,
    StreamSpec,
    VenueProtocol,
    book_keys,
)
from hundi.records import STOP_DETAIL, Event, EventKind, as_stopped, stopped_event

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
    # At a clean stop, how long the REST loop keeps fetching back data known missing (a gap's
    # trades); what is still owed then is stored as not fetched.
    finish_owed_s: float = 5.0
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


class FeedMode(IntEnum):
    """What a :class:`Feed` does with a message (compared by identity on the hot path)."""

    DELIVER = 0  # to the protocol
    HOLD = 1  # keep back: the new socket of an overlap
    DELIVER_REMEMBER = 2  # deliver and remember the bytes: the old socket of an overlap
    DROP = 3  # a retired socket


_DELIVER = FeedMode.DELIVER
_HOLD = FeedMode.HOLD
_DELIVER_REMEMBER = FeedMode.DELIVER_REMEMBER
_PROCESSED = FrameStatus.PROCESSED  # a module global: an enum member lookup costs per frame


class NotReady(Exception):
    """The protocol cannot give this stream's URL/messages yet (``opening`` returned None)."""


class Feed:
    """Routes one socket's messages: deliver, hold back (new socket in an overlap), deliver and
    remember (old socket in an overlap) or drop (retired socket)."""

    __slots__ = ("deliver", "first_at", "held", "key", "mode", "seen")

    def __init__(
        self, key: str, deliver: Callable[[str, bytes, int], None], mode: FeedMode
    ) -> None:
        self.key = key
        self.deliver = deliver
        self.mode = mode
        self.held: list[tuple[int, bytes]] = []
        self.seen: set[bytes] = set()
        self.first_at = 0.0

    def message(self, data: bytes) -> None:
        """The socket's callback: a bound method, not ``__call__`` (calling an instance costs
        ~60 ns more a frame, measured)."""
        recv_ns = time.time_ns()
        mode = self.mode
        if mode is _DELIVER:
            self.deliver(self.key, data, recv_ns)
        elif mode is _HOLD:
            if not self.held:
                self.first_at = time.monotonic()
            self.held.append((recv_ns, data))
        elif mode is _DELIVER_REMEMBER:
            self.seen.add(data)
            self.deliver(self.key, data, recv_ns)


class LiveSocket:
    """An open socket with its feed and birth time."""

    __slots__ = ("closed", "conn", "feed", "opened_at", "silent_s")

    def __init__(self, conn: WsConnection, feed: Feed) -> None:
        self.conn = conn
        self.feed = feed
        self.opened_at = time.monotonic()
        self.silent_s = 0.0  # the silence that made the watchdog call it stale
        self.closed: asyncio.Task[CloseInfo] = asyncio.get_running_loop().create_task(
            conn.wait_closed()
        )


class VenueSockets:
    """One venue's open sockets, their hot path, captures and stream events."""

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
        # The books as the clean stop left them, each taken before its socket's close reset it
        # (a snapshot may still land while the stop runs), by :func:`book_keys`; None until a
        # socket stops.
        self.books_at_stop: dict[tuple[str, int], BookStatus] | None = None
        self._receive = protocol.receive
        self._since_check = 0
        self._check_every = self.settings.check_every_frames
        self._internal_errors_logged: set[str] = set()
        self._live: set[WsConnection] = set()
        self._paused = False
        self._stop = asyncio.Event()
        self.stop_reason = ""  # why the manager was stopped (the ``stopped`` events say it)
        # streams to roll over: asked by the venue (``take_reconnects``) and not yet answered
        self._reconnect_requests: set[str] = set()
        # messages the venue asked to send (``take_messages``), per stream, not yet sent
        self._venue_messages: dict[str, list[bytes]] = {}
        # authenticated streams: what they receive is redacted before captures and quarantine
        self._private = frozenset(s.key for s in self.specs if s.private)
        self._rates = {s.key: s.max_outgoing_per_s for s in self.specs}
        self._venue_tokens: dict[str, tuple[float, float]] = {}  # key -> (tokens, at monotonic)

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
            accounting = self.accounting
            if status is _PROCESSED:  # nearly every frame: Accounting.count inlined
                accounting.received += 1
                accounting.processed += 1
            else:
                accounting.count(status)
        self._since_check += 1
        if self._since_check >= self._check_every:
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

    # --- opening and closing sockets ----------------------------------------------------------

    async def _open(self, spec: StreamSpec, mode: FeedMode) -> LiveSocket:
        stats = self.stats[spec.key]
        opening = self._opening(spec)
        feed = Feed(spec.key, self._deliver, mode)
        try:
            conn = await self.client.connect(
                opening.url, feed.message, connect_timeout=self.settings.connect_timeout_s
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
                data=self.protocol.redact_sent(spec.key, message) if spec.private else message,
            )
        return LiveSocket(conn, feed)

    def _send_venue_messages(self, key: str, live: LiveSocket) -> None:
        """Send what the venue asked to send on stream ``key`` (``take_messages``), within the
        venue's limit on client messages (``StreamSpec.max_outgoing_per_s``: the rest wait for
        the next tick). Messages for the other streams wait for their own supervisor; those
        of a stream that closed were dropped by :meth:`_lost` (its reopen subscribes afresh),
        and those for a key that is no stream are dropped once, with a log line."""
        pending = self._venue_messages
        for asked_key, message in self.protocol.take_messages():
            if asked_key not in self.stats:
                log.error(
                    "%s asked to send on unknown stream %r: dropped",
                    self.protocol.exchange,
                    asked_key,
                )
                continue
            pending.setdefault(asked_key, []).append(message)
        queue = pending.get(key)
        if not queue:
            return
        now = time.monotonic()
        rate = self._rates.get(key, 0.0)
        if rate > 0:
            # a token bucket of one second's worth: bursts stay within the venue's limit
            tokens, last = self._venue_tokens.get(key, (rate, now))
            tokens = min(rate, tokens + (now - last) * rate)
            allowed = int(tokens)
            self._venue_tokens[key] = (tokens - min(allowed, len(queue)), now)
        else:
            allowed = len(queue)
        sending, pending[key] = queue[:allowed], queue[allowed:]
        for message in sending:
            live.conn.send(message)
            self._capture(
                CaptureKind.SENT,
                time.time_ns(),
                key,
                data=self.protocol.redact_sent(key, message) if key in self._private else message,
            )

    def _opening(self, spec: StreamSpec) -> Opening:
        """This open's URL and messages, built now (fresh signatures, listen keys)."""
        opening = self.protocol.opening(spec, time.time_ns())
        if opening is None:
            raise NotReady(spec.key)
        return opening

    async def _close(self, live: LiveSocket, reason: str) -> CloseInfo:
        live.feed.mode = FeedMode.DROP
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
        self._venue_messages.pop(key, None)  # meant for the socket that is gone
        self._capture(CaptureKind.CLOSE, now, key, data=detail.encode())
        self.protocol.on_close(key, now, self.sink)

    def _keep_books_at_stop(self) -> None:
        """Remember each book's last state before a closing socket resets it: the first stop
        takes them all; a later one only keeps a book that synced meanwhile (the books of
        sockets already closed read as reset by then, which was not their state)."""
        books = self.protocol.books()
        kept = self.books_at_stop
        if kept is None:
            self.books_at_stop = dict(zip(book_keys(books), books, strict=True))
            return
        for key, book in zip(book_keys(books), books, strict=True):
            if key not in kept or book.synced:
                kept[key] = book

    def _stopped(self, key: str, reason: str) -> None:
        """The socket was closed by a clean stop: the stream ends here by choice, so it stores a
        ``stopped`` event (and the venue's closing gaps become ``stopped``, see
        :func:`~hundi.records.as_stopped`), not a gap and a resync. The capture's CLOSE carries
        the same detail, so a replay stores the same events."""
        now = time.time_ns()
        detail = f"{STOP_DETAIL}: {reason}" if reason else STOP_DETAIL
        self.stats[key].connected = False
        self._capture(CaptureKind.CLOSE, now, key, data=detail.encode())
        events = self.sink.events
        events.append(stopped_event(self.protocol.exchange, key, now, detail))
        self._keep_books_at_stop()
        mark = len(events)
        self.protocol.on_close(key, now, self.sink)
        events[mark:] = as_stopped(events[mark:], detail)
