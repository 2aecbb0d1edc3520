"""Logging off the hot path: a bounded queue, a listener thread, a file and a recent-lines tail.

Why: a log call on the event loop must never block on disk. Records go into a bounded queue;
when it is full they are dropped *and counted* (reported in the status and the summary) rather
than stalling collection. A listener thread writes them to ``HUNDI_LOG_PATH`` and keeps the
last ``HUNDI_LOG_MAX_LINES`` lines for the status screen.

Logging never takes the collector down: a line the file cannot take (disk full) is dropped and
counted like a queue overflow, the first such failure is reported with one line on stderr, and
:meth:`LogRuntime.close` never raises.

``HUNDI_LOG_STREAM=stdout`` (``stream="stdout"``) sends every line at the log level (INFO) to
stdout instead of only warnings and errors to stderr, for a container's log pipeline.

``HUNDI_LOG_FORMAT=json`` (``log_format="json"``) writes every line, to the file and to stderr,
as one JSON object (``time`` ISO-8601 UTC, ``level``, ``logger``, ``message``, ``exception``
when there is one) so a log collector (Kubernetes) needs no multi-line parsing. Messages are
formatted from the same arguments as the text lines, so whatever the callers mask (store
passwords, API and listen keys) stays masked.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import json
import logging
import logging.handlers
import queue
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hundi.config import ConfigError

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
SHORT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
_plain = logging.Formatter()
# asyncio's own errors ("Task exception was never retrieved") would otherwise reach stderr
# through logging's last-resort handler: unformatted, and over the live screen.
LOGGERS = ("hundi", "picows", "aiohttp", "asyncio")
LOG_FORMATS = ("text", "json")
LOG_STREAMS = ("stderr", "stdout")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO-8601 UTC), ``level``, ``logger``, ``message``,
    and ``exception`` (the traceback text) when the record carries one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        exception = record.exc_text or (
            self.formatException(record.exc_info) if record.exc_info else ""
        )
        if exception:
            line["exception"] = exception
        return json.dumps(line, ensure_ascii=False)


def json_line(level: str, logger: str, message: str) -> str:
    """A line written outside the logging machinery, in the JSON log format."""
    record = logging.LogRecord(logger, logging.getLevelName(level), "", 0, message, None, None)
    return JsonFormatter().format(record)


class DroppingQueueHandler(logging.handlers.QueueHandler):
    """A :class:`QueueHandler` that counts and drops records when its bounded queue is full."""

    def __init__(self, bounded: queue.Queue[logging.LogRecord]) -> None:
        super().__init__(bounded)
        self.dropped = 0
        self._lock = threading.Lock()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """Freeze the message and traceback text, but keep them apart so console handlers
        can print one line while the file gets the traceback."""
        prepared = copy.copy(record)
        prepared.msg = record.getMessage()
        prepared.args = None
        if record.exc_info:
            prepared.exc_text = _plain.formatException(record.exc_info)
        prepared.exc_info = None
        return prepared

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            with self._lock:
                self.dropped += 1


class SafeFileHandler(logging.handlers.RotatingFileHandler):
    """The log file, whose write failures are counted in :attr:`failed` and reported once on
    stderr instead of printing ``--- Logging error ---`` and a traceback per line."""

    def __init__(
        self, path: Path, *, max_bytes: int, backups: int, json_lines: bool = False
    ) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self.failed = 0
        self.json_lines = json_lines

    def handleError(self, record: logging.LogRecord) -> None:
        self._failure(sys.exc_info()[1])

    def _failure(self, exc: BaseException | None) -> None:
        self.failed += 1
        if self.failed == 1:
            reason = getattr(exc, "strerror", None) or exc or "unknown error"
            message = (
                f"cannot write the log file {self.baseFilename}: {reason}; log lines it "
                "cannot take are dropped and counted (log_dropped in the summary)"
            )
            line = (
                json_line("ERROR", "hundi.logs", message)
                if self.json_lines
                else f"hundi: {message}"
            )
            with contextlib.suppress(Exception):
                sys.stderr.write(line + "\n")
                sys.stderr.flush()

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as exc:
            self._failure(exc)

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:
            self._failure(exc)


class _Listener(logging.handlers.QueueListener):
    def enqueue_sentinel(self) -> None:
        # The queue may be full at close: wait for the listener to make room, never raise.
        with contextlib.suppress(queue.Full):
            self.queue.put(self._sentinel, timeout=10.0)  # type: ignore[attr-defined]


class RecentLines(logging.Handler):
    """Keeps the last ``n`` formatted lines (the status screen's log pane)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.lines: collections.deque[str] = collections.deque(maxlen=n)
        self.setFormatter(logging.Formatter(SHORT_FORMAT, "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        self.lines.append(message.splitlines()[0] if message else message)


@dataclass
class LogRuntime:
    """The running logging setup; :meth:`close` drains the queue into the file."""

    path: Path
    handler: DroppingQueueHandler
    listener: logging.handlers.QueueListener
    recent: RecentLines
    installed: list[logging.Handler] = field(default_factory=list)
    file: SafeFileHandler | None = None
    # each logger's (level, propagate) before setup, restored by close
    saved: dict[str, tuple[int, bool]] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        """Log lines lost: the queue was full, or the file could not take them."""
        return self.handler.dropped + (self.file.failed if self.file is not None else 0)

    def close(self) -> None:
        """Drain the queue into the file and close it; never raises."""
        with contextlib.suppress(Exception):
            self.listener.stop()
        for name in LOGGERS:
            logger = logging.getLogger(name)
            for handler in self.installed:
                logger.removeHandler(handler)
            if name in self.saved:
                logger.level, logger.propagate = self.saved[name]
        for handler in [*self.installed, *self.listener.handlers]:
            with contextlib.suppress(Exception):
                handler.close()


def setup_logging(
    path: Path,
    *,
    queue_max_size: int,
    max_lines: int,
    console: bool = False,
    level: int = logging.INFO,
    log_format: str = "text",
    stream: str = "stderr",
) -> LogRuntime:
    """Route the ``hundi`` loggers through a bounded queue to ``path`` (created if needed).

    ``console`` also prints warnings and errors to stderr as one line each (used when no live
    screen shows the recent lines); with ``stream="stdout"`` every line at ``level`` goes to
    stdout instead (one stream, each line once). ``log_format`` ``"json"``: file and console
    lines are JSON objects; the recent lines (the live screen's log pane) stay text.
    """
    _check_log_settings(stream, log_format)
    as_json = log_format == "json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = SafeFileHandler(path, max_bytes=64 << 20, backups=3, json_lines=as_json)
    except OSError as exc:
        raise ConfigError(
            f"HUNDI_LOG_PATH {str(path)!r} is not writable: {exc.strerror or exc}"
        ) from None
    file_handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(FORMAT))
    recent = RecentLines(max_lines)
    targets: list[logging.Handler] = [file_handler, recent]
    if console:
        targets.append(_console_handler(stream, log_format, level))
    bounded: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=queue_max_size)
    handler = DroppingQueueHandler(bounded)
    listener = _Listener(bounded, *targets, respect_handler_level=True)
    listener.start()
    saved: dict[str, tuple[int, bool]] = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (logger.level, logger.propagate)
        logger.addHandler(handler)
        # Client libraries are quiet unless something fails; ours log at ``level``.
        logger.setLevel(level if name == "hundi" else logging.WARNING)
        logger.propagate = False
    return LogRuntime(
        path, handler, listener, recent, installed=[handler], file=file_handler, saved=saved
    )


def console_logging(*, stream: str, log_format: str, level: int = logging.INFO) -> logging.Handler:
    """The logs of a process without a log file or live screen (``hundi serve``): with
    ``stream="stdout"`` every line at ``level`` goes to stdout (a container's log pipeline), as
    ``hundi collect`` does; else warnings and errors go to stderr. One line each, JSON with
    ``log_format="json"``. Written directly, not through a queue: such a process logs a few
    lines (start, failures), not a line per message. Returns the handler installed."""
    _check_log_settings(stream, log_format)
    handler = _console_handler(stream, log_format, level)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level if name == "hundi" else logging.WARNING)
        logger.propagate = False
    return handler


def _check_log_settings(stream: str, log_format: str) -> None:
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"HUNDI_LOG_FORMAT must be 'text' or 'json', got {log_format!r}")
    if stream not in LOG_STREAMS:
        raise ConfigError(f"HUNDI_LOG_STREAM must be 'stderr' or 'stdout', got {stream!r}")


def _console_handler(stream: str, log_format: str, level: int) -> logging.Handler:
    """One line per record: every line at ``level`` to stdout, or warnings and errors to
    stderr; JSON with ``log_format="json"``."""
    to_stdout = stream == "stdout"
    handler = logging.StreamHandler(sys.stdout if to_stdout else sys.stderr)
    handler.setLevel(level if to_stdout else logging.WARNING)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else _OneLine(SHORT_FORMAT, "%H:%M:%S")
    )
    return handler


class _OneLine(logging.Formatter):
    """Console lines without tracebacks (those go to the log file)."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text = saved
