"""Logging off the hot path: a bounded queue, a listener thread, a file and a recent-lines tail.

Why: a log call on the event loop must never block on disk. Records go into a bounded queue;
when it is full they are dropped *and counted* (reported in the status and the summary) rather
than stalling collection. A listener thread writes them to ``HUNDI_LOG_PATH`` and keeps the
last ``HUNDI_LOG_MAX_LINES`` lines for the status screen.

Logging never takes the collector down: a line the file cannot take (disk full) is dropped and
counted like a queue overflow, the first such failure is reported with one line on stderr, and
:meth:`LogRuntime.close` never raises.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import logging
import logging.handlers
import queue
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from hundi.config import ConfigError

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
SHORT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
_plain = logging.Formatter()
LOGGERS = ("hundi", "picows", "aiohttp")


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

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self.failed = 0

    def handleError(self, record: logging.LogRecord) -> None:
        self._failure(sys.exc_info()[1])

    def _failure(self, exc: BaseException | None) -> None:
        self.failed += 1
        if self.failed == 1:
            reason = getattr(exc, "strerror", None) or exc or "unknown error"
            with contextlib.suppress(Exception):
                sys.stderr.write(
                    f"hundi: cannot write the log file {self.baseFilename}: {reason}; log lines "
                    "it cannot take are dropped and counted (log_dropped in the summary)\n"
                )
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
) -> LogRuntime:
    """Route the ``hundi`` loggers through a bounded queue to ``path`` (created if needed).

    ``console`` also prints warnings and errors to stderr as one line each (used when no live
    screen shows the recent lines).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = SafeFileHandler(path, max_bytes=64 << 20, backups=3)
    except OSError as exc:
        raise ConfigError(
            f"HUNDI_LOG_PATH {str(path)!r} is not writable: {exc.strerror or exc}"
        ) from None
    file_handler.setFormatter(logging.Formatter(FORMAT))
    recent = RecentLines(max_lines)
    targets: list[logging.Handler] = [file_handler, recent]
    if console:
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setLevel(logging.WARNING)
        stderr.setFormatter(_OneLine(SHORT_FORMAT, "%H:%M:%S"))
        targets.append(stderr)
    bounded: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=queue_max_size)
    handler = DroppingQueueHandler(bounded)
    listener = _Listener(bounded, *targets, respect_handler_level=True)
    listener.start()
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        # Client libraries are quiet unless something fails; ours log at ``level``.
        logger.setLevel(level if name == "hundi" else logging.WARNING)
        logger.propagate = False
    return LogRuntime(path, handler, listener, recent, installed=[handler], file=file_handler)


class _OneLine(logging.Formatter):
    """Console lines without tracebacks (those go to the log file)."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text = saved
