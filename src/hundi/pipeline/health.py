"""Health file: what ``hundi health`` (Docker HEALTHCHECK, Kubernetes probes) reads; and the
collector's optional health port (``hundi collect --health-port``: ``/health``, ``/metrics``).

A long-running process (``hundi collect``, ``hundi serve``) rewrites a small JSON status file
every status interval, atomically (temp file + rename), so a probe never reads half a file. The
probe is a separate process: it only checks that the file is fresh and says ``ok``, so it works
the same in a container, a pod and a shell, and needs no port or credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from hundi.auth import has_bearer, require_bearer
from hundi.config import Settings
from hundi.pipeline.collector import Collector
from hundi.pipeline.histograms import LagHistogram
from hundi.pipeline.metrics import (
    METRICS_PATH,
    CollectorMetrics,
    MetricsSetupError,
    metrics_handler,
)

log = logging.getLogger("hundi.health")


@dataclass(frozen=True, slots=True)
class Health:
    """One status snapshot: ``ok`` False comes with the reason a probe prints."""

    component: str
    ok: bool
    reason: str = ""
    written_at: float = 0.0  # Unix time, set by write_health
    pid: int = 0
    details: dict[str, Any] = field(default_factory=dict)


def write_health(path: Path, health: Health) -> None:
    """Write ``health`` to ``path`` atomically (readers see the old or the new file, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = asdict(health) | {"written_at": time.time(), "pid": os.getpid()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(record, out, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def collector_health(collectors: Sequence[Collector], stale_after_s: float) -> Health:
    """Failing when a store lost records, the collector stops, or no frame arrived for twice the
    stale-stream timeout (the connection managers reconnect a silent stream after one)."""
    problems: list[str] = []
    now_ns = time.time_ns()
    frames = 0
    for collector in collectors:
        if collector.stopping:
            problems.append(f"stopping ({collector.stop_reason})")
        for writer in collector.writers:
            lost = sum(writer.lost.values())
            if lost:
                problems.append(f"store {writer.label} lost {lost} records ({writer.last_error})")
        frames += collector.accounting.received
        stats = [s for m in collector.managers for s in m.stats.values()]
        last_ns = max((s.last_frame_ns for s in stats), default=0)
        since = (now_ns - last_ns) / 1e9 if last_ns else time.monotonic() - collector.started
        if stats and collector.started and since > 2 * stale_after_s:
            problems.append(f"no frame received for {since:.0f}s")
    return Health(
        component="collector",
        ok=not problems,
        reason="; ".join(dict.fromkeys(problems)),
        details={
            "frames": frames,
            "backlog": sum(w.backlog for c in collectors for w in c.writers),
            "paused": any(c.paused for c in collectors),
        },
    )


HEALTH_PATH = "/health"


def collector_http_app(
    collectors: Sequence[Collector], stale_after_s: float, token: str | None
) -> web.Application:
    """The collector's health port: ``/health`` (open, like ``/api/v1/health``: ok or the
    reason, for HTTP probes) and ``/metrics`` (Prometheus; with ``token`` it requires
    ``Authorization: Bearer <token>``). Turns on the lag histogram, which only /metrics shows."""
    registry = CollectorRegistry()
    registry.register(CollectorMetrics(collectors))
    ProcessCollector(registry=registry)  # process CPU seconds, resident memory, open fds
    PlatformCollector(registry=registry)  # python_info
    for collector in collectors:
        collector.lag = LagHistogram()

    async def health(request: web.Request) -> web.Response:
        state = collector_health(collectors, stale_after_s)
        body: dict[str, Any] = {"status": "ok" if state.ok else "unhealthy"}
        if token is None or has_bearer(request, token):
            # the reason can quote a store's error (host names, URLs): not for anonymous eyes
            body |= {"reason": state.reason} | state.details
        return web.json_response(body, status=200 if state.ok else 503)

    middlewares: list[Any] = (
        [] if token is None else [require_bearer(token, frozenset({HEALTH_PATH}))]
    )
    app = web.Application(middlewares=middlewares)
    app.router.add_get(HEALTH_PATH, health)
    app.router.add_get(METRICS_PATH, metrics_handler(registry))
    return app


def bind_listener(host: str, port: int) -> socket.socket:
    """The health port's socket, bound before anything else starts: a port that is taken is a
    :class:`MetricsSetupError` before any store is opened (``0``: any free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise MetricsSetupError(
            f"--health-port: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    return sock


async def start_http(app: web.Application, sock: socket.socket) -> web.AppRunner:
    """Serve ``app`` on the already bound ``sock`` (:func:`bind_listener`)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


async def run_health_loop(path: Path, interval_s: float, probe: Callable[[], Health]) -> None:
    """Write ``probe()`` to ``path`` every ``interval_s`` until cancelled (then one last time, so
    a stopped process reads as unhealthy at once instead of after ``--max-age``).

    A file that cannot be written is logged (once per distinct error) and retried: the process
    keeps working, and the probe reports the missing or stale file."""
    failed = ""

    def write(health: Health) -> None:
        nonlocal failed
        try:
            write_health(path, health)
            failed = ""
        except OSError as exc:
            if str(exc) != failed:
                log.warning("health file %s cannot be written: %s", path, exc)
            failed = str(exc)

    try:
        while True:
            write(probe())
            await asyncio.sleep(interval_s)
    except asyncio.CancelledError:
        last = probe()
        write(Health(last.component, False, "stopped", details=last.details))
        raise


def serve_health(
    settings: Settings, component: str = "api"
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp ``cleanup_ctx`` writing a health file while the server runs (``hundi serve``:
    ``app.cleanup_ctx.append(serve_health(load_settings()))``); healthy while its loop runs."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(
            run_health_loop(
                health_path(settings), settings.log_update_interval, lambda: Health(component, True)
            )
        )
        await asyncio.sleep(0)  # the loop's first write: healthy as soon as the server is set up
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


def health_path(settings: Settings) -> Path:
    """The health file of these settings (HUNDI_HEALTH_FILE, else beside the log file)."""
    return settings.health_file or settings.log_path.parent / "health.json"
