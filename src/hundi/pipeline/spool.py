"""A durable, bounded, first-in-first-out spool of batches on local disk, one per store.

Why: when a network store (Cassandra, KairosDB) is down for longer than a few retries, the
collector must keep collecting without holding the outage in memory. Batches go here instead,
each in its own file written atomically (temp file, fsync, rename, directory fsync), and are
sent to the store oldest first after it recovers, so per-series order is kept. A spool left by
a previous run (the store was still down at exit) is drained on the next start.

Files are msgpack (msgspec): ``{channel: [record, ...]}``, decoded back into typed records by
the channel's record type, so any channel a venue or the series engine adds just works, plus
the id of the store writer that received them (``~writer``, :meth:`Store.writer_id`): a batch
drained by a later process is written as that writer's rows, since the read-side merge keeps
every row of one writer that shares a key but only one writer's copy of it.

One collector at a time: two collectors given the same spool root and store would interleave
their files, and one's drain could delete or re-send the other's. The spool holds an exclusive
``flock`` on ``<folder>.lock`` beside its folder while open (the kernel drops it when the
process dies, even by kill -9, so a crash never leaves a stale lock); a second opener gets
:class:`SpoolInUse`.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import msgspec

from hundi.records import RECORD_TYPES, Channel, Record

Batch = dict[Channel, list[Record]]

_SUFFIX = ".batch"
_WRITER = "~writer"  # not a channel name
_writer_decoder = msgspec.msgpack.Decoder(str)
_encoder = msgspec.msgpack.Encoder()
_envelope = msgspec.msgpack.Decoder(dict[str, msgspec.Raw])
_decoders = {channel: msgspec.msgpack.Decoder(list[t]) for channel, t in RECORD_TYPES.items()}  # type: ignore[valid-type]


class SpoolError(Exception):
    """The spool cannot take or give back a batch (disk full, a corrupt file...)."""


class SpoolInUse(SpoolError):
    """Another process (a second collector) has the spool folder open."""


class SpoolDamaged(SpoolError):
    """One spooled file cannot be read back: :meth:`Spool.set_aside` moves it out of the way
    (it must not block every batch after it) and :meth:`Spool.damaged_contents` tells what it
    still says of its records, to count and describe them as lost."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


class Stub(msgspec.Struct, kw_only=True):
    """What a damaged batch may still tell of one record: its stream, time and trade id."""

    exchange: str
    symbol: str
    native_symbol: str = ""
    ts: int
    trade_id: int | None = None


_stubs = msgspec.msgpack.Decoder(list[msgspec.Raw])
_stub = msgspec.msgpack.Decoder(Stub)
DAMAGED = "damaged"  # the subfolder damaged files are moved to


class SpoolFull(SpoolError):
    """The spool reached its size limit; the writer falls back to backpressure."""


def spool_folder(root: Path, store_label: str) -> Path:
    """One folder per store, named from its (credential-free) label; a collector group's
    ``#<n>`` suffix (:func:`hundi.pipeline.cli.spool_labels`) survives the length cut, or two
    groups of a long label would share a folder."""
    label, suffix = store_label, ""
    numbered = re.fullmatch(r"(.*) #(\d+)", store_label)
    if numbered:
        label, suffix = numbered.group(1), f"_{numbered.group(2)}"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "store"
    return root / (slug[: 120 - len(suffix)] + suffix)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """FIFO of batches in ``directory``; at most ``max_bytes`` on disk."""

    def __init__(self, directory: Path, *, max_bytes: int = 2 * 1024**3) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create spool folder {directory}: {exc}") from None
        self._lock: BinaryIO | None = _lock(directory)
        try:
            for stale in directory.glob("*.tmp"):  # an append interrupted by a crash
                stale.unlink(missing_ok=True)
            self._files: list[Path] = sorted(
                path for path in directory.glob(f"*{_SUFFIX}") if path.stem.isdigit()
            )
            self._bytes = sum(path.stat().st_size for path in self._files)
        except OSError as exc:
            self.close()  # nobody else holds this object: release the folder
            raise SpoolError(f"cannot read spool folder {directory}: {exc}") from None
        self._next = int(self._files[-1].stem) + 1 if self._files else 0
        self._file_counts: dict[Path, Counter[str]] = {}  # filled on append and on load
        self._writers: dict[Path, str | None] = {}  # likewise: who received each batch

    def __len__(self) -> int:
        return len(self._files)

    def close(self) -> None:
        """Let another collector use the folder (closing the lock file drops the lock)."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.close()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def pending(self) -> Counter[str]:
        """Records waiting, per channel (of a damaged file: those it still tells of)."""
        total: Counter[str] = Counter()
        for path in self._files:
            if path not in self._file_counts:
                try:
                    self._load(path)
                except SpoolDamaged:
                    stubs, _ = self.damaged_contents(path)
                    self._file_counts[path] = Counter({c: len(s) for c, s in stubs.items()})
            total.update(self._file_counts[path])
        return total

    def counts_of(self, path: Path) -> Counter[str]:
        """Records of one spooled file, per channel, as :meth:`pending` counted them."""
        return Counter(self._file_counts.get(path, {}))

    def damaged_contents(self, path: Path) -> tuple[dict[str, list[Stub]], int]:
        """What a damaged file still tells: per channel name, its records' streams and times,
        and how many records tell nothing (-1: the file is unreadable as a whole)."""
        try:
            raw = _envelope.decode(path.read_bytes())
        except (OSError, ValueError, msgspec.DecodeError):
            return {}, -1
        stubs: dict[str, list[Stub]] = {}
        unknown = 0
        for name, body in raw.items():
            if name == _WRITER:
                continue
            try:
                items = _stubs.decode(body)
            except (ValueError, msgspec.DecodeError):
                return stubs, -1
            for item in items:
                try:
                    stubs.setdefault(name, []).append(_stub.decode(item))
                except (ValueError, msgspec.DecodeError):
                    unknown += 1
        return stubs, unknown

    def set_aside(self, path: Path) -> Path:
        """Move a damaged file to the ``damaged`` subfolder (kept for inspection, never sent)
        so the batches after it drain; returns where it went."""
        # named by when it was set aside too: the numbering restarts with an empty spool
        target = self.directory / DAMAGED / f"{path.stem}-{time.time_ns()}{path.suffix}"
        try:
            target.parent.mkdir(exist_ok=True)
            size = path.stat().st_size
            path.rename(target)
            _fsync_dir(self.directory)
        except OSError as exc:
            raise SpoolError(f"cannot move damaged spool file {path}: {exc}") from None
        self._files.remove(path)
        self._file_counts.pop(path, None)
        self._writers.pop(path, None)
        self._bytes -= size
        return target

    def append(self, batch: Batch, writer: str | None = None) -> None:
        """Write one batch durably, received by ``writer`` (None: not told); raises
        :class:`SpoolFull` at the size limit."""
        content: dict[str, object] = {channel.value: records for channel, records in batch.items()}
        if writer is not None:
            content[_WRITER] = writer
        body = _encoder.encode(content)
        if self._bytes + len(body) > self.max_bytes:
            raise SpoolFull(
                f"spool {self.directory} is full ({self._bytes} of {self.max_bytes} bytes)"
            )
        path = self.directory / f"{self._next:016d}{_SUFFIX}"
        temporary = path.with_suffix(".tmp")
        try:
            with temporary.open("wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.rename(path)
            _fsync_dir(self.directory)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise SpoolError(f"cannot write spool file {path}: {exc}") from None
        self._next += 1
        self._files.append(path)
        self._bytes += len(body)
        self._file_counts[path] = _count(batch)
        self._writers[path] = writer

    def writer_of(self, path: Path) -> str | None:
        """The writer that received the batch of ``path`` (after :meth:`peek`; None: untold,
        a file of an older version)."""
        if path not in self._writers:
            self._load(path)
        return self._writers.get(path)

    def peek(self, limit: int) -> list[tuple[Path, Batch]]:
        """Up to ``limit`` oldest batches, without removing them."""
        return [(path, self._load(path)) for path in self._files[:limit]]

    def remove(self, paths: list[Path]) -> None:
        """Drop batches the store has durably taken (the oldest ones, in order)."""
        for path in paths:
            if not self._files or self._files[0] != path:
                raise SpoolError(f"spool {self.directory}: {path.name} is not the oldest batch")
            size = path.stat().st_size
            path.unlink()
            self._files.pop(0)
            self._file_counts.pop(path, None)
            self._writers.pop(path, None)
            self._bytes -= size
        if paths:
            _fsync_dir(self.directory)

    def _load(self, path: Path) -> Batch:
        try:
            data = path.read_bytes()
        except OSError as exc:  # the disk, not the file: may work again
            raise SpoolError(f"spool file {path} cannot be read: {exc}") from None
        try:
            raw = _envelope.decode(data)
            writer = raw.pop(_WRITER, None)
            batch = {
                Channel(name): _decoders[Channel(name)].decode(body) for name, body in raw.items()
            }
            self._writers[path] = None if writer is None else _writer_decoder.decode(writer)
        except (ValueError, KeyError, msgspec.DecodeError) as exc:
            raise SpoolDamaged(f"spool file {path} cannot be read: {exc}", path) from None
        self._file_counts[path] = _count(batch)
        return batch


def _lock(directory: Path) -> BinaryIO:
    """The open lock file of ``directory``, exclusively locked by this process."""
    path = directory.with_name(directory.name + ".lock")
    try:
        handle = path.open("ab")
    except OSError as exc:
        raise SpoolError(f"cannot open spool lock {path}: {exc}") from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SpoolInUse(
            f"spool folder {directory} is in use by another collector; give each collector "
            "its own spool (HUNDI_SPOOL_DIR / spool_dir setting)"
        ) from None
    except OSError as exc:
        handle.close()
        raise SpoolError(f"cannot lock spool {path}: {exc}") from None
    return handle


def _count(batch: Batch) -> Counter[str]:
    return Counter({channel.value: len(records) for channel, records in batch.items()})
