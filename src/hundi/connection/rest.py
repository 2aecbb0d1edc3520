"""The REST loop of one venue: run the requests its sans-I/O protocol says are due.

Order-book snapshots, listen keys...: ``protocol.due_requests`` is polled at least every 100 ms
(frames change what is due) and sooner when ``next_wakeup_ns`` says so; at most
``rest_concurrency`` requests are in flight. Transport errors become status 599 responses, so
the protocol always hears back. Private answers (listen keys) are neither logged nor captured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import aiohttp

from hundi.capture.events import (
    ABANDONED_OWED,
    ABANDONED_OWED_DETAIL,
    FINISHED_OWED,
    FINISHED_OWED_DETAIL,
    NO_ANSWER_AT_STOP,
    NO_ANSWER_DETAIL,
    STOPPED_ASKING,
    STOPPED_ASKING_DETAIL,
    CaptureKind,
)
from hundi.connection.client import connect_failure, describe_error, host_port
from hundi.connection.sockets import CaptureHook, ConnectionSettings
from hundi.exchanges.base import RecordSink, RestRequest, RestResponse, VenueProtocol

log = logging.getLogger("hundi.connection")


class RestLoop:
    """Serves one venue protocol's REST requests until ``stop`` is set."""

    def __init__(
        self,
        protocol: VenueProtocol,
        sink: RecordSink,
        settings: ConnectionSettings,
        capture: CaptureHook,
        stop: asyncio.Event,
    ) -> None:
        self.protocol = protocol
        self.sink = sink
        self.settings = settings
        self.capture = capture  # failures handled by the caller's hook
        self._stop = stop
        self.requests = 0
        self.failures = 0
        self._errors_logged: set[str] = set()
        self._running = False
        self._last_due: list[RestRequest] | None = None  # taken by stop_asking, not yet sent

    def stop_asking(self) -> None:
        """The stop's first step, before any socket closes: one last look at what is due
        (still asked: it may be what fetches a gap back), then no new requests, only what is
        owed. The capture marks the moment, so a replay asks exactly what the live run asked;
        the loop alone would miss what fell due since its last look, up to 100 ms back."""
        if self._last_due is not None:
            return
        self._last_due = []  # once, even if the venue raises (the caller logs it)
        now = time.time_ns()
        try:
            self._last_due = self.protocol.due_requests(now)
        finally:
            self._mark(now, STOPPED_ASKING, STOPPED_ASKING_DETAIL)
        if not self._running:  # nothing will send them: the capture says they got no answer
            self._not_sent(self._last_due)
            self._last_due = []

    def _mark(self, now_ns: int, status: int, detail: bytes) -> None:
        """A stop's mark in the capture, on one of this venue's connection keys: a capture of
        several venues holds each one's marks, and a replay of one heeds only its own."""
        conn = min((spec.key for spec in self.protocol.connections()), default="")
        self.capture(CaptureKind.REST, now_ns, conn, data=detail, status=status)

    def _not_sent(self, requests: list[RestRequest]) -> None:
        now = time.time_ns()
        for request in requests:
            self._no_answer(request, now)

    def _no_answer(self, request: RestRequest, now_ns: int) -> None:
        self._captured(request, now_ns, NO_ANSWER_DETAIL, NO_ANSWER_AT_STOP)

    def _captured(self, request: RestRequest, now_ns: int, data: bytes, status: int) -> None:
        """A request's answer (or that none came) into the capture; private ones never."""
        if not request.private:
            self.capture(
                CaptureKind.REST, now_ns, request.key, url=request.url, data=data, status=status
            )

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when stopping. ``asyncio.timeout`` rather than ``wait_for``:
        this runs ~10-30 times a second for the whole run, and ``wait_for`` creates, schedules
        and cancels a task each time (a fixed cost that matters at calm rates)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    async def run(self) -> None:
        settings = self.settings
        timeout = aiohttp.ClientTimeout(total=settings.rest_timeout_s)
        limit = asyncio.Semaphore(settings.rest_concurrency)
        pending: dict[asyncio.Task[None], RestRequest] = {}

        def send(requests: list[RestRequest]) -> None:
            for request in requests:
                task = asyncio.create_task(self._fetch_and_deliver(session, limit, request))
                pending[task] = request
                task.add_done_callback(lambda done: pending.pop(done, None))

        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._running = True
            try:
                while not self._stop.is_set():
                    now = time.time_ns()
                    send(self.protocol.due_requests(now))
                    wake = self.protocol.next_wakeup_ns()
                    # Frames change what is due (a book needing a snapshot), so poll at least
                    # every 100 ms; sleep less when the venue says it is due sooner.
                    delay = 0.1 if wake is None else min(0.1, max(0.005, (wake - now) / 1e9))
                    await self._sleep(delay)
                self.stop_asking()  # the stop came from elsewhere than the manager's stop()
                send(self._last_due or [])
                self._last_due = []
                await self._finish_owed(send, pending)
            finally:
                self._running = False
                if self._last_due:  # the loop ended before sending them
                    self._not_sent(self._last_due)
                    self._last_due = []
                # The stop came before their answers: the capture says so, for a replay. Also
                # for a task cancelled before it ever ran (its coroutine's handlers never do).
                left = dict(pending)
                for task in left:
                    task.cancel()
                await asyncio.gather(*left, return_exceptions=True)
                now = time.time_ns()
                for task, request in left.items():
                    if task.cancelled():
                        self._no_answer(request, now)

    async def _finish_owed(
        self,
        send: Callable[[list[RestRequest]], None],
        pending: dict[asyncio.Task[None], RestRequest],
    ) -> None:
        """A clean stop right after a gap: fetch back what the venue says is still owed, for
        at most ``finish_owed_s``; then the venue records what stays missing. The capture
        marks which way it ended and when, so a replay ends it there too (a frame read after
        the stop began may still make something owed: only this loop can say it was not)."""
        deadline = time.monotonic() + self.settings.finish_owed_s
        while (left := deadline - time.monotonic()) > 0:
            now = time.time_ns()
            due = self.protocol.finishing_requests(now)
            if due is None:
                self._mark(now, FINISHED_OWED, FINISHED_OWED_DETAIL)
                return
            send(due)
            wake = self.protocol.next_wakeup_ns()
            delay = 0.1 if wake is None else max(0.005, (wake - now) / 1e9)
            if pending:  # an answer is what changes what is owed: wake on it
                await asyncio.wait(
                    set(pending), timeout=min(delay, left), return_when=asyncio.FIRST_COMPLETED
                )
            else:
                await asyncio.sleep(min(delay, left))
        now = time.time_ns()
        self._mark(now, ABANDONED_OWED, ABANDONED_OWED_DETAIL)
        self.protocol.abandon(now, self.sink)

    async def _fetch_and_deliver(
        self, session: aiohttp.ClientSession, limit: asyncio.Semaphore, request: RestRequest
    ) -> None:
        async with limit:
            self.requests += 1
            try:
                async with session.request(
                    request.method, request.url, headers=dict(request.headers)
                ) as reply:
                    body = await reply.read()
                    response = RestResponse(reply.status, body, dict(reply.headers))
            except TimeoutError:
                limit_s = self.settings.rest_timeout_s
                failed = f"no answer from {host_port(request.url)} within {limit_s:g}s"
            except (aiohttp.ClientError, OSError) as exc:
                failed = _failure(request.url, exc)
            else:
                failed = ""
            if failed:  # the venue protocol hears back as from a gateway: status 599
                response = RestResponse(599, failed.encode())
            recv_ns = time.time_ns()
            if failed:
                self.failures += 1
                log.warning("REST %s for %s failed: %s", request.method, request.key, failed)
            elif response.status >= 400:
                self.failures += 1
                log.warning(
                    "REST %s %s for %s: status %d %s",
                    request.method,
                    request.url,
                    request.key,
                    response.status,
                    "" if request.private else response.body[:200].decode("utf-8", "replace"),
                )
            self._captured(request, recv_ns, response.body, response.status)
            try:
                self.protocol.receive_response(request, response, recv_ns, self.sink)
            except Exception as exc:
                kind = f"rest:{type(exc).__name__}"
                if kind not in self._errors_logged:
                    self._errors_logged.add(kind)
                    log.error(
                        "venue protocol raised %s on a REST response for %s",
                        type(exc).__name__,
                        request.key,
                        exc_info=exc,
                    )


def _failure(url: str, exc: BaseException) -> str:
    """A REST transport failure in words (never the request's query: it may be signed)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return connect_failure(url, exc)
    return f"{host_port(url)}: {describe_error(exc)}"
