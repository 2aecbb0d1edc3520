"""``--raw DIR``: every frame, connection event, sent message and REST response, to disk.

:meth:`RawCaptureWriter.record` is called on the collector's hot path, so it only appends a
tuple to a buffer under an uncontended lock. A background thread (or an explicit :meth:`flush`)
takes the buffer, encodes it as one msgpack block, gzips it as one member and appends it to the
current file (format: :mod:`hundi.capture.format`). Memory is bounded: when the buffer exceeds
``max_buffer_bytes`` (the disk is slower than the feed) ``record`` writes the block itself,
which slows the caller down instead of dropping data.

A write that fails (disk full) is remembered: from then on :meth:`RawCaptureWriter.record` and
:meth:`~RawCaptureWriter.flush` raise that :class:`CaptureError` (the collector stops capturing
at the first one, see :mod:`hundi.pipeline.collector`), and :meth:`~RawCaptureWriter.close`
raises nothing else: no ``OSError`` escapes it, and the file is closed whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from hundi.capture.events import CaptureKind, qualified, venue_id
from hundi.capture.format import SUFFIX, CaptureHeader, VenueHeader, encode_block, encoder
from hundi.exchanges.base import VenueConfig


class CaptureError(Exception):
    """The raw capture cannot be written (message fit for the user)."""


def venue_header(exchange: str, config: VenueConfig) -> VenueHeader:
    return VenueHeader(
        exchange=exchange,
        market=config.market,
        symbols=list(config.symbols),
        channels=[str(c) for c in config.channels],
        endpoint=config.endpoint,
        rest_endpoint=config.rest_endpoint,
        options=dict(config.options),
    )


def _gzip_member(payload: bytes, level: int) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(payload) + compressor.flush()


class RawCaptureWriter:
    """Rotated ``capture-RUN-SEQ.hcap.gz`` files in ``directory``. See the module docstring."""

    def __init__(
        self,
        directory: str | Path,
        *,
        rotate_bytes: int = 256 << 20,
        rotate_seconds: float = 3600.0,
        venues: Iterable[VenueHeader] = (),
        flush_interval_s: float = 1.0,
        max_buffer_bytes: int = 64 << 20,
        compress_level: int = 1,
    ) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CaptureError(f"raw capture directory {str(directory)!r}: {e.strerror}") from None
        if not os.access(self.directory, os.W_OK):
            raise CaptureError(f"raw capture directory {str(directory)!r} is not writable")
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.max_buffer_bytes = max_buffer_bytes
        self.compress_level = compress_level
        self.venues = list(venues)
        self.run = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
        self.paths: list[Path] = []
        self.events_written = 0
        self.bytes_written = 0
        self._buffer: list[tuple[Any, ...]] = []
        self._buffered_bytes = 0
        self._lock = threading.Lock()  # guards the buffer
        self._io_lock = threading.Lock()  # serializes encode+write so blocks stay in order
        self._file: IO[bytes] | None = None
        self._file_bytes = 0
        self._file_opened = 0.0
        self._error: CaptureError | None = None
        self._closed = False
        self._wake = threading.Event()
        self._flush_interval_s = flush_interval_s
        self._thread = threading.Thread(target=self._run, name="raw-capture", daemon=True)
        self._thread.start()

    def for_venue(self, exchange: str, market: str) -> Callable[..., None]:
        """The hook of one venue's connections: :meth:`record` itself when the capture holds
        one venue, else one that names the venue in each event's connection (venues share
        connection keys: see :data:`~hundi.capture.events.VENUE_MARK`)."""
        if len({venue_id(v.exchange, v.market) for v in self.venues}) <= 1:
            return self.record
        venue = venue_id(exchange, market)
        record = self.record
        names: dict[str, str] = {}  # per frame: a lookup, not a new string

        def venue_record(kind: CaptureKind | str, ts_ns: int, conn: str, **fields: Any) -> None:
            name = names.get(conn)
            if name is None:
                name = names[conn] = qualified(venue, conn)
            record(kind, ts_ns, name, **fields)

        return venue_record

    # -- hot path --------------------------------------------------------------------------

    def record(
        self,
        kind: CaptureKind | str,
        ts_ns: int,
        conn: str,
        url: str = "",
        data: bytes | str = b"",
        status: int = 0,
    ) -> None:
        """Buffer one event. Raises :class:`CaptureError` once writing has failed."""
        if self._error is not None:
            raise self._error
        if isinstance(data, str):
            data = data.encode()
        with self._lock:
            self._buffer.append((kind, ts_ns, conn, url, data, status))
            self._buffered_bytes += len(data) + 48
            full = self._buffered_bytes >= self.max_buffer_bytes
        if full:
            self.flush()

    __call__ = record

    @property
    def error(self) -> str:
        """Why the capture stopped ("" while it works)."""
        return "" if self._error is None else str(self._error)

    # -- writing ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Compress and write everything buffered so far (readable after ``kill -9``)."""
        with self._io_lock:
            with self._lock:
                events, self._buffer = self._buffer, []
                self._buffered_bytes = 0
            if events:
                self._write_block(events)
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()
        try:
            self.flush()
        finally:
            with self._io_lock:
                self._close_file()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> RawCaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._flush_interval_s)
            self._wake.clear()
            try:
                self.flush()
            except CaptureError:
                return  # remembered in self._error; record() and flush() report it

    def _write_block(self, events: list[tuple[Any, ...]]) -> None:
        if self._error is not None:
            return
        try:
            member = _gzip_member(encode_block(events), self.compress_level)
            if self._file is None:
                self._open_file()
            assert self._file is not None
            self._file.write(member)
            self._file.flush()  # into the OS: survives kill -9 of this process
            self._file_bytes += len(member)
            self.bytes_written += len(member)
            self.events_written += len(events)
            too_old = time.monotonic() - self._file_opened >= self.rotate_seconds
            if self._file_bytes >= self.rotate_bytes or too_old:
                self._close_file()
        except OSError as e:
            self._error = CaptureError(f"raw capture write failed in {self.directory}: {e}")

    def _open_file(self) -> None:
        sequence = len(self.paths)
        path = self.directory / f"capture-{self.run}-{sequence:05d}{SUFFIX}"
        self._file = path.open("xb")
        self.paths.append(path)
        header = CaptureHeader(
            run=self.run, sequence=sequence, created_ns=time.time_ns(), venues=self.venues
        )
        member = _gzip_member(encoder.encode(header), self.compress_level)
        self._file.write(member)
        self._file_bytes = len(member)
        self._file_opened = time.monotonic()

    def _close_file(self) -> None:
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            file.flush()
            os.fsync(file.fileno())
        except OSError as e:
            if self._error is None:
                self._error = CaptureError(f"raw capture write failed in {self.directory}: {e}")
        finally:
            # closes the descriptor even when flushing what is left fails
            with contextlib.suppress(OSError):
                file.close()
