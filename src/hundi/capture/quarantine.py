"""Rejected frames, kept verbatim so nothing is silently dropped and bugs can be replayed.

JSON lines: ``{"ts": NS, "time": ISO, "conn": KEY, "reason": KEY, "data": TEXT}`` (``data`` is
the frame decoded as UTF-8 with invalid bytes backslash-escaped, cut at ``max_frame_bytes`` with
``"truncated": true``), plus ``"venue": "EXCHANGE/MARKET"`` from a collector (venues share
connection keys such as ``public``). The file rotates at ``max_bytes`` into ``PATH.1`` …
``PATH.N`` so a misbehaving feed cannot fill the disk.

A file that cannot be written (disk full) never raises into the caller, which is the socket's
frame callback: the first failure is logged once and kept in :attr:`Quarantine.error`, the
frames are still counted as rejected by the collector, and later ones are counted in
:attr:`Quarantine.unwritten` instead of written.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import msgspec

from hundi.capture.events import venue_id

log = logging.getLogger("hundi.capture")


class _Line(msgspec.Struct, omit_defaults=True):
    ts: int
    time: str
    conn: str
    reason: str
    data: str
    truncated: bool = False
    venue: str = ""


_encoder = msgspec.json.Encoder()


class Quarantine:
    """Thread-safe appender of rejected frames. See the module docstring."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 64 << 20,
        backups: int = 3,
        max_frame_bytes: int = 1 << 20,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.max_frame_bytes = max_frame_bytes
        self.count = 0
        self.unwritten = 0  # frames not written because the file failed
        self.error = ""  # why the file failed ("" while it works)
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._size = 0

    def for_venue(self, exchange: str, market: str) -> Callable[[int, str, str, bytes | str], None]:
        """The hook of one venue's connections: :meth:`add` with the venue in each line."""
        return functools.partial(self.add, venue=venue_id(exchange, market))

    def add(self, ts_ns: int, conn: str, reason: str, data: bytes | str, venue: str = "") -> None:
        raw = data.encode() if isinstance(data, str) else data
        truncated = len(raw) > self.max_frame_bytes
        text = raw[: self.max_frame_bytes].decode("utf-8", "backslashreplace")
        moment = datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).isoformat()
        line = _encoder.encode(_Line(ts_ns, moment, conn, reason, text, truncated, venue)) + b"\n"
        with self._lock:
            if self.error:
                self.unwritten += 1
                return
            try:
                if self._file is None:
                    self._open()
                elif self._size + len(line) > self.max_bytes and self._size > 0:
                    self._rotate()
                assert self._file is not None
                self._file.write(line)
                self._file.flush()  # rare lines: each is counted once the OS has it
            except OSError as exc:
                self._failed(exc)
                self.unwritten += 1
                return
            self._size += len(line)
            self.count += 1

    def flush(self) -> None:
        with self._lock:
            if self._file is not None and not self.error:
                try:
                    self._file.flush()
                except OSError as exc:
                    self._failed(exc)

    def close(self) -> None:
        """Close the file; never raises (a failure is logged and kept in :attr:`error`)."""
        with self._lock:
            if self._file is not None:
                file, self._file = self._file, None
                try:
                    file.close()
                except OSError as exc:
                    self._failed(exc)
                    with contextlib.suppress(OSError):
                        file.close()

    def _failed(self, exc: OSError) -> None:
        if not self.error:
            self.error = f"quarantine file {self.path} cannot be written: {exc}"
            log.error("%s; rejected frames are still counted, no longer kept", self.error)

    def __enter__(self) -> Quarantine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")
        self._size = self._file.tell()

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.backups > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self._open()
