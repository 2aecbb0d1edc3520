"""The embedded store: Parquet part files under a directory, no server, readable by any tool.

Layout and file naming: :mod:`hundi.stores.embedded.layout`; the log:
:mod:`hundi.stores.embedded.wal`. Guarantees:

* ``flush`` appends each buffered partition's rows to the run's write-ahead log, one entry
  each, and fsyncs it once (group commit), so a ``kill -9`` loses only what was not flushed.
* A ``flush`` that fails (disk full...) publishes nothing and keeps everything: the log is cut
  back to its size before the append and the data stays pending, so the next ``flush`` writes
  it again. ``discard`` drops it (the writer gave up on it). ``write`` refuses more while
  ``max_pending_bytes`` are pending (memory bounded by bytes).
* Parquet parts are written from the log per partition when it holds ``part_bytes`` or its
  oldest entry is ``part_age_s`` old, and at ``close``; each part atomically (temp file in the
  same directory, fsync, ``os.replace``, fsync of the directory), named by the run and the
  range of flushes it holds; then the log segment is retired. Readers skip log entries a part
  of their run covers, and recovery of a dead run's log (:meth:`EmbeddedStore.recover`, at
  every open for writing) parts only the others: exactly once across a crash anywhere.
* Once a partition has ``compact_fanout`` parts of one level from this run, they are merged
  into one part of the next level (a log-structured merge, now over big parts: it follows the
  data). The merged file supersedes its inputs by name, and the inputs are deleted only after
  ``grace_s`` seconds, so a concurrent reader whose directory listing raced the rename still
  finds every row exactly once.
* Restarts append: each store instance writes under a fresh run id.

Reading tools other than :meth:`EmbeddedStore.read`: the files hold every record column, so read
them without hive partitioning, e.g.
``duckdb.sql("select * from read_parquet('data/exchange=binance/channel=trades/**/*.parquet')")``
or ``pandas.read_parquet(path_of_one_partition_dir)``. (With ``hive_partitioning=true`` DuckDB
replaces the ``channel`` column of the events table by the directory value.) Such readers may
see the rows of a compaction twice for up to ``grace_s`` seconds, and each copy of a record
two collectors stored (runs of their own, merged by this store's readers only:
:func:`combine_day`); :meth:`EmbeddedStore.read` never does. Opening a store for writing and
closing it delete superseded files whose grace period is over, so none outlives it across
restarts; docs/embedded-store.md shows how to read only the live files.

Integrity (:mod:`hundi.stores.embedded.integrity`): every part carries a CRC-32 of its bytes in
its name; every reader lists parts through :func:`~hundi.stores.embedded.layout.split_live`,
which verifies each live part (checksum, footer, schema) once per process and file version, and
compaction verifies the bytes it merges; a damaged part is moved to ``ROOT/.quarantine/`` with
one warning while the rest of the partition stays readable.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hundi.records import (
    SCHEMAS,
    SEQUENCE_FIELDS,
    Channel,
    Event,
    EventKind,
    Record,
    numpy_array,
    numpy_view,
    to_arrow,
)
from hundi.stores.base import (
    NS_PER_DAY,
    DayRead,
    DayStats,
    Store,
    StoreError,
    StreamPosition,
    arrow_storable,
    day_of_ns,
    day_start_ns,
    days_within,
    empty_table,
    ns_of,
    stream_groups,
    to_frame,
)
from hundi.stores.embedded import wal
from hundi.stores.embedded.integrity import (
    KEPT_SUFFIX,
    QUARANTINE,
    REPORTED_SUFFIX,
    crc_of,
    kept,
    problem_of_bytes,
    quarantine,
    quarantined_as,
    quarantined_copies,
    quarantined_parts,
    remember_sound,
    reported,
)
from hundi.stores.embedded.layout import (
    TMP_PREFIX,
    PartFile,
    list_parts,
    parse_part,
    part_name,
    partition_dir,
    partition_dirs,
    split_live,
    stale_temps,
    superseded_due,
)
from hundi.stores.embedded.log_gaps import gap_events
from hundi.stores.merge import (
    LOCAL_TS_MARGIN_NS,
    SOURCE,
    Range,
    deduplicate,
    local_ts_merges,
    needed_columns,
)

if TYPE_CHECKING:  # pandas is imported where a read makes a frame: the collector never does
    import pandas as pd
    import pyarrow.dataset as ds

_PartitionKey = wal.PartitionKey  # exchange, channel, symbol, day
_READ_RETRIES = 5
_warned_entries: set[tuple[Path, int]] = set()  # damaged log entries warned about
_T = TypeVar("_T")
log = logging.getLogger("hundi.stores")


def path_of_url(url: str) -> Path:
    """``./data``, ``file:./data``, ``file:///abs/data`` → a path (a ``file:`` URL's
    ``?query`` holds options, see :func:`options_of_url`). StoreError for a ``file://NAME``
    URL (NAME is a host there, not a folder: it once stored into the current directory) and
    for an empty path."""
    if url.startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise StoreError(
                f"store {url!r}: {parts.netloc!r} is a host in a file:// URL; a folder is "
                f"file:{parts.netloc}{parts.path} (relative) or file:///absolute/path"
            )
        path = unquote(parts.path)
    elif url.startswith("file:"):
        path = url[len("file:") :].split("?", 1)[0]
    else:
        path = url
    if not path:
        raise StoreError(f"store {url!r}: no folder given")
    found = Path(path)
    inside = [i for i, part in enumerate(found.parts) if part.startswith("exchange=")]
    if inside:  # ls or check there once said "nothing stored" / "clean", exit 0
        store = Path(*found.parts[: inside[0]]) if inside[0] else Path(".")
        raise StoreError(
            f"store {url!r} is a folder inside the store at {str(store)!r}: give that folder"
        )
    return found


CACHE_DIR = ".hundi-cache"
# what a store makes at its root besides exchange= folders and temporary files
_ROOT_ENTRIES = frozenset({wal.WAL_DIR, QUARANTINE, CACHE_DIR})


def foreign_folder(root: Path) -> bool:
    """A folder that holds entries, none a store's: a mistyped path (the store's parent), which
    ``hundi ls`` called "nothing stored" and ``hundi store check`` "clean" (found by review).
    An empty folder is an empty store, and so is one holding only hidden files or a fresh
    volume's ``lost+found``."""
    names = os.listdir(root)
    if any(name.startswith(("exchange=", TMP_PREFIX)) or name in _ROOT_ENTRIES for name in names):
        return False
    return any(not name.startswith(".") and name != "lost+found" for name in names)


def options_of_url(url: str) -> dict[str, str]:
    """Store options from a ``file:`` URL's query (``file:./data?part_age_s=60``); a plain
    path has none (a ``?`` there is part of the folder name)."""
    if not url.startswith("file:") or "?" not in url:
        return {}
    return dict(parse_qsl(url.split("?", 1)[1]))


def _new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


_fsync_dir = wal.fsync_dir


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        word = value.strip().lower()
        if word not in _TRUE + _FALSE:
            raise ValueError(f"{value!r} is not one of {', '.join(_TRUE + _FALSE)}")
        return word in _TRUE
    return bool(value)


def _count(least: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        number = int(value)
        if number < least:
            raise ValueError(f"{value!r} is below {least}")
        return number

    return parse


def _seconds(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{value!r} is not a finite number of seconds >= 0")
    return number


# Every option the store takes, with its parser and default: a typo or a bad value is one
# error naming it (``?part_age=60`` was once ignored and ``?part_age_s=abc`` a traceback).
_OPTIONS: Final[dict[str, tuple[Callable[[Any], Any], Any]]] = {
    "part_bytes": (_count(0), 32 * 1024 * 1024),
    "part_age_s": (_seconds, 300.0),
    "compact_fanout": (_count(2), 16),
    "grace_s": (_seconds, 30.0),
    "max_merge_bytes": (_count(1), 32 * 1024 * 1024),
    "max_pending_bytes": (_count(1), 64 * 1024 * 1024),
    "fsync": (_as_bool, True),
    "read_only": (_as_bool, False),
}


def parse_options(url: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The store's options from the URL's query and ``given`` (which win), parsed."""
    raw = {**options_of_url(url), **given}
    unknown = sorted(set(raw) - set(_OPTIONS))
    if unknown:
        raise StoreError(
            f"store {url!r}: unknown option(s) {', '.join(unknown)}; known: {', '.join(_OPTIONS)}"
        )
    parsed = {}
    for name, (parse, default) in _OPTIONS.items():
        try:
            parsed[name] = parse(raw[name]) if name in raw else default
        except (TypeError, ValueError) as e:
            raise StoreError(f"store {url!r}: option {name}: {e}") from None
    return parsed


class EmbeddedStore(Store):
    """Parquet files partitioned by exchange/channel/symbol/date, fed through a write-ahead
    log. See the module docstring.

    Options: ``part_bytes`` (log bytes that make a flush write Parquet parts, default 32 MiB;
    0 writes parts at every flush), ``part_age_s`` (age of the oldest un-parted log entry that
    does, default 300), ``compact_fanout`` (parts per level before merging, default 16),
    ``max_merge_bytes`` (Arrow bytes of rows a compaction may hold: parts bigger together are
    final, default 32 MiB),
    ``grace_s`` (seconds before superseded files are deleted, default 30), ``max_pending_bytes``
    (Arrow bytes a failing flush may keep in memory before ``write`` refuses more, so the
    writer spools instead; default 64 MiB), ``fsync`` (default true), ``read_only`` (default
    false: the store must exist; nothing is created or written).
    """

    scheme = "file"

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url)
        self.root = path_of_url(url)
        options = parse_options(url, options)
        self.part_bytes: int = options["part_bytes"]
        self.part_age_s: float = options["part_age_s"]
        self.compact_fanout: int = options["compact_fanout"]
        self.grace_s: float = options["grace_s"]
        self.max_merge_bytes: int = options["max_merge_bytes"]
        self.max_pending_bytes: int = options["max_pending_bytes"]
        self.fsync: bool = options["fsync"]
        self.run_id = _new_run_id()
        self._sequence = 0
        self._buffers: dict[Channel, list[Record]] = {}
        # Written but not yet in the log: what failed flushes kept, per partition, in order.
        self._pending: dict[_PartitionKey, pa.Table] = {}
        # Records no column can hold, left out of the pending rows: refused at the next
        # successful flush (:meth:`Store.refuse`), forgotten by ``discard``.
        self._unfit: list[tuple[Channel, Record, str]] = []
        # This run's live files per partition directory, by level (what compaction merges).
        self._own: dict[Path, dict[int, list[PartFile]]] = {}
        # (when, superseded files, the file holding their rows): deleted when due, unless that
        # file is gone (quarantined: they are the live copies again)
        self._pending_deletes: list[tuple[float, list[Path], Path]] = []
        # Arrow bytes of the rows of each part this instance wrote: what merging them holds
        self._decoded: dict[Path, int] = {}
        self._made: set[Path] = set()  # partition directories known to exist
        # The open log segment: its fd (holding the lock), path, size, when its first entry
        # was appended, and its entries not yet in parts, by partition.
        self._segment_number = 0
        self._segment_fd: int | None = None
        self._segment_path: Path | None = None
        self._segment_size = 0
        self._segment_since = 0.0
        self._unparted: dict[_PartitionKey, list[wal.Entry]] = {}
        self._part_failing = False
        # quarantined parts whose gap events are written but not yet flushed
        self._reporting: dict[Path, None] = {}
        # damaged log bytes (segment, flush or offset) whose gap events this writer stored
        # (True if there were any) and which it copied to quarantine: each done once
        self._holes_stored: dict[_Cut, bool] = {}
        self._holes_copied: set[_Cut] = set()
        self.read_only = options["read_only"]
        if self.read_only:
            if not self.root.is_dir():
                raise StoreError(f"no store at {str(self.root)!r} (not a directory)")
        else:
            self._check_writable()
            self._sweep()
            self.recover()
            self._report_quarantined()

    # -- writing ---------------------------------------------------------------------------

    def _check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f"{TMP_PREFIX}{self.run_id}.probe"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            reason = e.strerror or type(e).__name__
            raise StoreError(f"store path {str(self.root)!r} is not writable: {reason}") from None

    def write(self, batches: Mapping[Channel, Sequence[Record]]) -> None:
        """Buffer records for the next flush. Refused (StoreError) while failed flushes keep
        more than ``max_pending_bytes`` in memory: the writer then spools to disk, so this
        store's memory stays bounded by bytes during an outage."""
        if self.read_only:
            raise StoreError(f"store {str(self.root)!r} was opened read-only")
        pending = sum(table.nbytes for table in self._pending.values())
        if pending > self.max_pending_bytes:
            raise StoreError(
                f"store {str(self.root)!r}: {pending} bytes wait for a flush that keeps failing "
                f"(max_pending_bytes {self.max_pending_bytes})"
            )
        for channel, records in batches.items():
            if records:
                self._buffers.setdefault(Channel(channel), []).extend(records)

    def flush(self) -> None:
        """Append everything written so far to the log with one fsync, all or nothing; write
        Parquet parts from the log when it is big or old enough (see the module docstring)."""
        if self._buffers:
            fresh: list[tuple[_PartitionKey, pa.Table]] = []
            for channel, records in self._buffers.items():
                try:
                    fresh.extend(_partitions(channel, records))
                except (pa.ArrowException, OverflowError, TypeError, ValueError):
                    # a record no column can hold must not block the others (retried forever)
                    good, bad = arrow_storable(channel, records)
                    self._unfit.extend((channel, record, why) for record, why in bad)
                    fresh.extend(_partitions(channel, good) if good else [])
            for key, table in fresh:
                kept = self._pending.get(key)
                self._pending[key] = table if kept is None else pa.concat_tables([kept, table])
            self._buffers = {}
        if self._pending:
            try:
                self._append(list(self._pending.items()))
            except OSError as e:
                raise StoreError(f"writing to store {str(self.root)!r} failed: {e}") from None
            self._pending = {}
            if self._reporting:
                self._mark_reported()
        for channel, record, why in self._unfit:  # left out for good, now that the rest is in
            self.refuse(channel, record, f"{channel.value}: {why}")
        self._unfit = []
        self._part_when_due()

    def idle(self) -> None:
        """Part the log once it is old enough even while no data arrives, so external readers
        (Parquet only) lag by at most ``part_age_s`` plus a flush interval."""
        if not self.read_only:
            self._part_when_due()

    def _part_when_due(self) -> None:
        if self._unparted and (
            self._segment_size >= self.part_bytes
            or time.monotonic() - self._segment_since >= self.part_age_s
        ):
            self._part_quietly()
        self._delete_due()

    def discard(self) -> None:
        """Forget what was written since the last successful ``flush`` (the writer gave up on it
        and counts it as lost, so no later ``flush`` or ``close`` may store it after all)."""
        self._buffers = {}
        self._pending = {}
        self._unfit = []
        self._reporting = {}  # their gap events went too: reported again later

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def _append(self, parts: list[tuple[_PartitionKey, pa.Table]]) -> None:
        """Every partition's rows as one log entry each, written at once and fsync'd once
        (group commit). On failure the segment is cut back to where it was: nothing of this
        flush stays in the log, and it is all still pending."""
        seq = self._next_sequence()
        blobs: list[bytes] = []
        for key, _ in parts:
            directory = partition_dir(self.root, key[0], key[1].value, key[2], key[3])
            if directory not in self._made:
                self._make_dirs(directory)  # listed by days() at once
                self._made.add(directory)
        fd = self._open_segment()
        # where this append lands (O_APPEND): the file's size, not our count, so the index is
        # right even after a failed append could not be cut back
        start = os.fstat(fd).st_size
        entries: list[wal.Entry] = []
        at = start
        for key, table in parts:
            blob, offset, length, crc = wal.encode(key, seq, table)
            entries.append(
                wal.Entry(self.run_id, key, seq, table.num_rows, at + offset, length, crc, at)
            )
            at += len(blob)
            blobs.append(blob)
        data = memoryview(b"".join(blobs))
        try:
            while data:
                data = data[os.write(fd, data) :]
            if self.fsync:
                os.fdatasync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
        if not self._unparted:
            self._segment_since = time.monotonic()
        self._segment_size = at
        for entry in entries:
            self._unparted.setdefault(entry.key, []).append(entry)

    def _open_segment(self) -> int:
        if self._segment_fd is not None:
            return self._segment_fd
        directory = self.root / wal.WAL_DIR
        if not directory.is_dir():
            directory.mkdir(exist_ok=True)
            if self.fsync:  # the new folder's entry in the root, or a power loss loses the log
                _fsync_dir(self.root)
        self._segment_number += 1
        path = directory / wal.segment_name(self.run_id, self._segment_number)
        # Created and locked under a name recovery ignores, then renamed: a segment is never
        # visible unlocked, so another writer's recovery cannot take (and delete) it between
        # its creation and our lock, leaving us appending to an unlinked file.
        fresh = directory / f"{path.name}{wal.NEW_SUFFIX}"
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(fresh, path)
            if self.fsync:
                _fsync_dir(directory)
        except BaseException:
            inode = os.fstat(fd).st_ino
            os.close(fd)
            for leftover in (fresh, path):
                with contextlib.suppress(OSError):
                    if os.stat(leftover).st_ino == inode:
                        leftover.unlink()
            raise
        self._segment_fd, self._segment_path, self._segment_size = fd, path, 0
        return fd

    def _part_quietly(self) -> None:
        """:meth:`part` with a failure logged, not raised: the rows are durable in the log
        (readers see them there) and parting is retried at the next flush."""
        try:
            self.part()
        except (OSError, StoreError) as e:
            if not self._part_failing:
                log.warning(
                    "store %s: writing parts from the log failed (%s); the rows stay in the "
                    "log and parting is retried at every flush",
                    self.root,
                    e,
                )
            self._part_failing = True
        else:
            self._part_failing = False

    def part(self) -> None:
        """Write the open log segment's rows as one Parquet part per partition, then retire
        the segment. A part is named by this run and the range of flushes it holds, so a crash
        between publishing parts and retiring the log never duplicates a row (readers and
        recovery skip log entries a part of their run covers). OSError propagates; what was
        parted stays parted and the rest is retried."""
        path = self._segment_path
        if path is None or self._segment_fd is None:
            return
        touched: list[Path] = []
        while self._unparted:
            key = next(iter(self._unparted))
            entries = list(self._unparted[key])

            def damaged(entry: wal.Entry, why: str) -> None:  # the disk changed our bytes
                damage = wal.Damage.of(entry, why)
                self._cut_out(path, damage, self._gaps_of(path, damage, self._unparted_in_order()))

            directory = self._partition(key)
            written = _serialize_entries(path, entries, damaged)
            if written is not None:
                part = self._publish(directory, written, entries[0].seq, entries[-1].seq, 0)
                self._own[directory].setdefault(0, []).append(part)
                touched.append(directory)
            # a gap event appended meanwhile to this very partition is parted next
            rest = self._unparted[key][len(entries) :]
            if rest:
                self._unparted[key] = rest
            else:
                del self._unparted[key]
        # retired while still locked: no other writer's recovery takes it in between
        wal.remove(path, self.fsync)
        os.close(self._segment_fd)
        self._segment_fd, self._segment_path, self._segment_size = None, None, 0
        for directory in touched:
            try:
                self._maybe_compact(directory)
            except StoreError as e:
                # The data is durable in the uncompacted files; merging is retried later.
                log.warning("%s; retried at a later flush", e)

    def _make_dirs(self, directory: Path) -> None:
        """``mkdir -p`` whose new folders are each synced into their parent: a part published
        in a folder a power loss forgets would be lost with the log retired after it."""
        missing = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for new in reversed(missing):
            new.mkdir(exist_ok=True)
            if self.fsync:
                _fsync_dir(new.parent)

    def _partition(self, key: _PartitionKey) -> Path:
        """The partition's directory, created, and its leftovers cleaned the first time."""
        exchange, channel, symbol, day = key
        directory = partition_dir(self.root, exchange, channel.value, symbol, day)
        if directory not in self._own:
            self._make_dirs(directory)
            self._own[directory] = {}
            self._clean_leftovers(directory)
        return directory

    def recover(self) -> list[Path]:
        """Turn the log segments of dead runs into parts, exactly once (see :meth:`part`);
        damaged entries and torn tails are quarantined with a warning. A segment a live
        writer holds is left alone. The segments recovered."""
        done: list[Path] = []
        wal.remove_stale_new(self.root)
        for path in wal.segments(self.root):
            if path == self._segment_path:
                continue
            fd = wal.try_lock(path)
            if fd is None:
                continue
            try:
                self._recover_segment(path)
                done.append(path)
            except (OSError, StoreError) as e:
                log.warning("recovering log %s failed: %s; retried at the next open", path, e)
            finally:
                os.close(fd)
        return done

    def _recover_segment(self, path: Path) -> None:
        run = wal.run_of(path) or ""
        entries, damage = wal.scan(path)
        # the holes' edges before this segment's rows go into parts (see gap_events)
        holes = [(bad, self._gaps_of(path, bad, entries)) for bad in damage]
        by_key: dict[_PartitionKey, list[wal.Entry]] = {}
        for entry in entries:
            by_key.setdefault(entry.key, []).append(entry)

        def odd(entry: wal.Entry, why: str) -> None:
            # sound but of a schema no cast fits: cut out as damage before its partition's
            # part is published, which puts it in a range of flushes taken as parted
            cut = wal.Damage.of(entry, why)
            self._cut_out(path, cut, self._gaps_of(path, cut, entries))

        for key, found in by_key.items():
            exchange, channel, symbol, day = key
            directory = partition_dir(self.root, exchange, channel.value, symbol, day)
            self._make_dirs(directory)
            parted = [p for p in list_parts(directory) if p.run == run]
            fresh = [e for e in found if not any(p.first <= e.seq <= p.last for p in parted)]
            if not fresh:
                continue  # parted before the crash
            written = _serialize_entries(path, fresh, odd)
            if written is not None:
                self._publish(directory, written, fresh[0].seq, fresh[-1].seq, 0, run=run)
        for bad, events in holes:
            self._cut_out(path, bad, events)
        wal.remove(path, self.fsync)
        log.info("recovered log %s: %d entries into parts", path, len(entries))

    def _gaps_of(
        self, segment: Path, damage: wal.Damage, entries: Sequence[wal.Entry]
    ) -> list[Event]:
        """The gap events of damaged log bytes (none for a torn tail: a flush a crash cut
        short, never acknowledged, which the restart's gap tells)."""
        return [] if wal.torn(damage) else gap_events(self.root, segment, damage, entries)

    def _unparted_in_order(self) -> list[wal.Entry]:
        return sorted((e for found in self._unparted.values() for e in found), key=_offset)

    def _cut_out(self, segment: Path, damage: wal.Damage, events: list[Event]) -> None:
        """Quarantine damaged log bytes, after appending (fsync'd) the gap events of the rows
        they held to this writer's log: the hole is a stored event before the bytes go. Once
        per writer (a retry after a failure here or in parting does neither again); a retry
        by the next writer after a crash stores the same events again, which reads merge."""
        entry = damage.entry  # the live writer and recovery see its bytes from different starts
        cut = (
            (segment.name, damage.start, None)
            if entry is None
            else (segment.name, entry.seq, entry.key)
        )
        if cut not in self._holes_stored:
            if events:
                self._append(_partitions(Channel.EVENTS, events))
            self._holes_stored[cut] = bool(events)
        if cut in self._holes_copied:
            return
        target = wal.quarantine_bytes(self.root, segment, damage)
        self._holes_copied.add(cut)
        if self._holes_stored[cut]:
            with contextlib.suppress(OSError):  # only what ``hundi store check`` says
                target.with_name(target.name + REPORTED_SUFFIX).touch()

    def _write_file(
        self,
        directory: Path,
        table: pa.Table,
        first: int,
        last: int,
        level: int,
        *,
        run: str | None = None,
    ) -> PartFile:
        return self._publish(directory, _serialize(table), first, last, level, run=run)

    def _publish(
        self,
        directory: Path,
        written: _Serialized,
        first: int,
        last: int,
        level: int,
        *,
        run: str | None = None,
    ) -> PartFile:
        """A serialized part published: written and fsync'd under its temp name, renamed, its
        folder fsync'd; a failed write leaves no file."""
        # Serialized in memory first so the checksum in the name hashes bytes already at hand
        # (no re-read of the file; see hundi.stores.embedded.integrity).
        data, nbytes = written
        run = self.run_id if run is None else run
        crc = crc_of(data)
        final = directory / part_name(run, first, last, level, crc)
        tmp = directory / f"{TMP_PREFIX}{final.name}.tmp"
        try:
            with tmp.open("wb") as f:
                f.write(memoryview(data))
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        if self.fsync:
            _fsync_dir(directory)
        self._decoded[final] = nbytes
        return PartFile(run, first, last, level, final, crc)

    def _maybe_compact(self, directory: Path) -> None:
        """Merge a full level into one file of the next level, cascading upwards."""
        levels = self._own[directory]
        level = 0
        while len(levels.get(level, ())) >= self.compact_fanout:
            inputs = levels.pop(level)
            if sum(self._decoded.get(part.path, 0) for part in inputs) > self.max_merge_bytes:
                # Merging them would hold all their rows in memory at once (16 parts of a
                # 32 MiB log: 512 MiB) for little gain: parts this big are final.
                for part in inputs:
                    self._decoded.pop(part.path, None)
                level += 1
                continue
            try:
                read: list[tuple[PartFile, pa.Table]] = []
                held: list[Path] = []  # quarantined inputs whose rows their inputs still hold
                for part in list(inputs):
                    try:
                        read.append((part, _read_part(part)))
                    except (_Damaged, FileNotFoundError):
                        inputs.remove(part)  # quarantined (by us or a reader): merge the rest
                        held += [q for q in quarantined_copies(part.path) if not self._lost_rows(q)]
                if not inputs:
                    continue
                # The merged file supersedes every part of this run inside its flush range,
                # so it must hold them all: the inputs of a quarantined input (live again on
                # disk) once fell under it unread and were deleted (found by review).
                for part in self._live_inside(directory, inputs, level + 1):
                    read.append((part, _read_part(part)))
                    for same in levels.values():
                        if part in same:
                            same.remove(part)
                read.sort(key=lambda pair: (pair[0].first, pair[0].level))
                parts = [part for part, _ in read]
                table = pa.concat_tables([table for _, table in read])
                merged = self._write_file(
                    directory, table, parts[0].first, parts[-1].last, level + 1
                )
            except OSError as e:
                levels[level] = inputs  # the inputs are still live; retry at the next flush
                raise StoreError(f"compacting {str(directory)!r} failed: {e}") from None
            except _Damaged:
                levels[level] = inputs  # a part it must hold is damaged: merged another time
                break
            levels.setdefault(level + 1, []).append(merged)
            for copy in held:  # merged from its inputs: no row of it is lost (see kept)
                with contextlib.suppress(OSError):
                    copy.with_name(copy.name + KEPT_SUFFIX).touch()
            for part in parts:
                self._decoded.pop(part.path, None)
            self._pending_deletes.append(
                (time.monotonic() + self.grace_s, [p.path for p in parts], merged.path)
            )
            level += 1

    def _live_inside(self, directory: Path, inputs: list[PartFile], level: int) -> list[PartFile]:
        """This run's live parts below ``level`` within the inputs' flush range that are not
        inputs: what a file of ``level`` over that range would supersede unread."""
        low, high = inputs[0].first, inputs[-1].last
        chosen = {p.path for p in inputs}
        candidates = [
            p for p in list_parts(directory)
            if p.run == self.run_id and p.level < level and low <= p.first and p.last <= high
        ]  # fmt: skip
        live, _ = split_live(candidates, verify=False)
        return [p for p in live if p.path not in chosen]

    def _delete_due(self) -> None:
        now = time.monotonic()
        keep: list[tuple[float, list[Path], Path]] = []
        for deadline, paths, holder in self._pending_deletes:
            if deadline > now:
                keep.append((deadline, paths, holder))
            elif holder.exists():  # else quarantined since: its inputs hold the rows (review)
                for path in paths:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        self._pending_deletes = keep

    def _clean_leftovers(self, directory: Path) -> None:
        """Remove what crashed or stopped runs left: superseded inputs and stale temp files."""
        for path in superseded_due(directory, self.grace_s) + stale_temps(directory):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _sweep(self, directories: list[Path] | None = None) -> None:
        """:meth:`_clean_leftovers` in every partition (or the given ones): no superseded file
        outlives its grace period across restarts, and a clean close leaves none that is due."""
        for directory in partition_dirs(self.root) if directories is None else directories:
            with contextlib.suppress(OSError):
                self._clean_leftovers(directory)

    def close(self) -> None:
        """Flush, then write every logged row as parts and retire the log, so external readers
        see everything. If that fails the log stays (durable) and the next open parts it. A
        failing flush still raises, after the log's rows were parted and its lock released."""
        try:
            super().close()
        finally:
            if not self.read_only:
                self._close_log()

    def _close_log(self) -> None:
        self._report_quarantined()  # parts this run's compaction (or a reader) moved away
        try:
            self.part()
        except (OSError, StoreError) as e:
            log.warning(
                "store %s: parts not written at close (%s); the next open does", self.root, e
            )
        if self._segment_fd is not None:
            os.close(self._segment_fd)  # the lock goes: the next open recovers the log
            self._segment_fd = None
        self._delete_due()
        self._sweep(list(self._own))

    def _report_quarantined(self) -> None:
        """Store a gap event for each quarantined part no event describes yet whose rows are
        read from nowhere else: every hole in the stored data is a stored event. It is marked
        reported once a flush stored its event (this one, or a later one if this fails: the
        event stays pending, written once)."""
        pending = [
            path
            for path in quarantined_parts(self.root)
            if path not in self._reporting and not reported(path) and self._lost_rows(path)
        ]
        if not pending:
            return
        try:
            self.write({Channel.EVENTS: [_quarantine_event(path) for path in pending]})
            self._reporting.update(dict.fromkeys(pending))  # marked by the flush storing them
            self.flush()
        except StoreError as e:  # a full disk: never in the way of a close or a start
            log.warning("store %s: quarantined parts not yet reported as gaps: %s", self.root, e)

    def _lost_rows(self, path: Path) -> bool:
        """Whether a quarantined file held store rows that no live part holds: a part (not a
        stray file) whose flushes no live part of its run in its partition covers (a damaged
        compacted file's inputs are live again)."""
        damaged = parse_part(path.with_name(quarantined_as(path)))
        if damaged is None or kept(path):
            return False
        partition = self.root / path.parent.relative_to(self.root / QUARANTINE)
        live, _ = split_live(list_parts(partition), verify=False)
        # only its inputs (a lower level) hold its rows: a file of its level or above whose
        # flush range spans it was merged later, without it (it was already quarantined)
        spans = sorted(
            (p.first, p.last) for p in live if p.run == damaged.run and p.level < damaged.level
        )
        reach = damaged.first - 1
        for first, last in spans:
            if first > reach + 1:
                break
            reach = max(reach, last)
        return reach < damaged.last

    def _mark_reported(self) -> None:
        """After a flush stored them: the quarantined parts whose gap events it held."""
        for path in self._reporting:
            with contextlib.suppress(OSError):  # retried: the event is then written twice
                path.with_name(path.name + REPORTED_SUFFIX).touch()
        self._reporting = {}

    # -- listing ---------------------------------------------------------------------------

    def exchanges(self) -> list[str]:
        return _names(self.root, "exchange=")

    def channels(self, exchange: str) -> list[Channel]:
        known = {c.value: c for c in Channel}
        found = _names(self.root / f"exchange={exchange}", "channel=")
        return [known[name] for name in found if name in known]

    def symbols(self, exchange: str, channel: Channel) -> list[str]:
        return _names(self._channel_dir(exchange, channel), "symbol=")

    def days(self, exchange: str, channel: Channel, symbol: str | None = None) -> list[date]:
        names = [symbol] if symbol is not None else self.symbols(exchange, channel)
        base = self._channel_dir(exchange, channel)
        return sorted({day for name in names for day in _dated(base / f"symbol={name}")})

    def not_a_store(self) -> str | None:
        if self.root.is_dir() and foreign_folder(self.root):
            return f"no store at {str(self.root)!r} (it holds files, but no exchange=... folder)"
        return None

    def withheld(
        self, exchange: str, channel: Channel, symbol: str | None, first: date, last: date
    ) -> list[str]:
        """The stream's parts of those days in quarantine whose rows no live part holds (a
        read once moved them there as damaged; a compacted file's inputs, live again, hold
        its rows): found by review, ``hundi query`` of such a stream printed an empty table
        and exit 0, as for a quiet stream."""
        found = []
        for path in quarantined_parts(self.root):
            names = dict(p.name.split("=", 1) for p in path.parents[:4])
            try:
                day = date.fromisoformat(names["date"])
            except (KeyError, ValueError):
                continue
            if (
                names.get("exchange") == exchange
                and names.get("channel") == Channel(channel).value
                and (symbol is None or names.get("symbol") == symbol)
                and first <= day <= last
                and self._lost_rows(path)
            ):
                found.append(f"{path}: a damaged part in quarantine; its rows are not read")
        return found

    def day_stats(self, exchange: str, channel: Channel, symbol: str, day: date) -> DayStats | None:
        """From the Parquet footers of the day's live parts (row counts, ``ts`` and
        ``native_symbol`` statistics) and the rows of its un-parted log entries: no part row is
        read and no part verified (``hundi store check`` does that). None when a part has no
        such statistics, or when two runs' rows overlap in time (two collectors: only a read
        merges their copies of one record, so their footers would count it twice)."""
        channel = Channel(channel)

        def attempt(skipped: set[Path]) -> DayStats | None:
            logged, live = self._gather(exchange, channel, [symbol], day, verify=False)
            runs = [(part.run, _footer_stats(part.path)) for part in live]
            runs += [(e.run, _table_stats(table)) for e, table in logged if table is not None]
            parts = [stats for _, stats in runs]
            if not parts or any(part is None for part in parts):
                return None
            known = [part for part in parts if part is not None and part.rows]
            if not known:
                return None
            if _runs_overlap([(run, s) for run, s in runs if s is not None and s.rows]):
                return None  # two writers' copies of one record count once: read the rows
            return DayStats(
                rows=sum(part.rows for part in known),
                first_ns=min(part.first_ns for part in known),
                last_ns=max(part.last_ns for part in known),
                native_symbols=tuple(sorted({n for part in known for n in part.native_symbols})),
            )

        return self._consistently(attempt)

    def _channel_dir(self, exchange: str, channel: Channel) -> Path:
        return self.root / f"exchange={exchange}" / f"channel={Channel(channel).value}"

    # -- reading ---------------------------------------------------------------------------

    def _consistently(self, attempt: Callable[[set[Path]], _T]) -> _T:
        """``attempt(skipped)`` (list the live files, then read them) until the listing and the
        read agree. A file deleted by compaction between the two (after its grace period) makes
        it list again; a part found damaged while read was quarantined, so it is listed again
        without it (``skipped`` holds those that could not be moved away; the inputs of a
        damaged compaction may be live again)."""
        attempts = 0
        skipped: set[Path] = set()
        while True:
            try:
                return attempt(skipped)
            except _Damaged as e:
                skipped.add(e.path)
            except FileNotFoundError:
                attempts += 1
                if attempts == _READ_RETRIES:
                    raise StoreError(
                        f"store {str(self.root)!r} changed too fast to read consistently"
                    ) from None

    def _logged(
        self, exchange: str, channel: Channel, names: Sequence[str], day: date, *, decode: bool
    ) -> list[tuple[wal.Entry, pa.Table | None]]:
        """The log entries (of live and dead runs) of some symbols' day, with their rows when
        ``decode`` (None for one skipped: damaged, or of a schema no cast fits). A segment
        retired meanwhile is skipped: its parts were published before, and :meth:`_gather`
        lists the parts after reading the log."""
        keys = {(exchange, channel, name, day) for name in names}
        found: list[tuple[wal.Entry, pa.Table | None]] = []
        for path in wal.segments(self.root):
            try:
                wanted = [e for e in wal.entries_of(path) if e.key in keys]
                if not decode:
                    found += [(e, None) for e in wanted]
                    continue
                for entry, table in wal.read_payloads(path, wanted):
                    fitted = None if table is None else wal.conformed(table, channel)
                    if fitted is None and (path, entry.offset) not in _warned_entries:
                        _warned_entries.add((path, entry.offset))
                        why = "fails its checksum" if table is None else "is of another schema"
                        log.warning(
                            "log %s: entry at byte %d %s; skipped (the next open of the "
                            "store for writing quarantines it)",
                            path,
                            entry.offset,
                            why,
                        )
                    # listed all the same (no rows): a version names what the log holds
                    found.append((entry, fitted))
            except FileNotFoundError:
                continue
        return found

    def _gather(
        self,
        exchange: str,
        channel: Channel,
        names: Sequence[str],
        day: date,
        *,
        verify: bool = True,
        decode: bool = True,
    ) -> tuple[list[tuple[wal.Entry, pa.Table | None]], list[PartFile]]:
        """(the un-parted log entries, the live parts) of some symbols' day: what every reader
        combines. The log is read BEFORE the parts are listed, and an entry is dropped when a
        part of its run covers its flush: so a segment parted and retired meanwhile is found
        in its parts, and none of its rows is seen twice. ``verify`` checks the parts first
        (damaged ones quarantined and left out)."""
        logged = self._logged(exchange, channel, names, day, decode=decode)
        live: list[PartFile] = []
        kept: list[tuple[wal.Entry, pa.Table | None]] = []
        for name in names:
            directory = partition_dir(self.root, exchange, channel.value, name, day)
            alive, superseded = split_live(list_parts(directory), verify=verify)
            live += alive
            ranges: dict[str, list[tuple[int, int]]] = {}
            for part in (*alive, *superseded):
                ranges.setdefault(part.run, []).append((part.first, part.last))
            for entry, table in logged:
                if entry.key[2] != name:
                    continue
                if any(lo <= entry.seq <= hi for lo, hi in ranges.get(entry.run, ())):
                    continue  # in a part already: read from there
                kept.append((entry, table))
        return kept, live

    def last_position(
        self, exchange: str, symbol: str, channel: Channel, before_ns: int
    ) -> StreamPosition | None:
        """From the newest day with rows before ``before_ns``: its ``ts`` column (and the
        sequence id column), so a collector's start reads one day of two columns per stream."""
        channel = Channel(channel)
        id_field = SEQUENCE_FIELDS.get(channel)
        columns = ["ts"] if id_field is None else ["ts", id_field]
        for day in reversed(days_within(self.days(exchange, channel, symbol), None, before_ns)):
            told = self._position_from_footers(exchange, channel, symbol, day, before_ns)
            if isinstance(told, StreamPosition):
                return told
            if told is None:
                continue  # no rows that day before ``before_ns``
            table = self._day_table(exchange, channel, [symbol], day, columns, None, before_ns)
            if table.num_rows:
                last_ts = int(pc.max(table.column("ts").cast(pa.int64())).as_py())
                last_id = -1 if id_field is None else int(pc.max(table.column(id_field)).as_py())
                return StreamPosition(ts=last_ts, last_id=last_id)
        return None

    def _position_from_footers(
        self, exchange: str, channel: Channel, symbol: str, day: date, before_ns: int
    ) -> StreamPosition | bool | None:
        """``last_position`` of one day from its parts' footer statistics and its log rows, when
        every part ends before ``before_ns`` (a restart: the stored data is all older), so a
        collector's start reads no part (reading them loaded pandas into the collector). None:
        no rows before ``before_ns``; False: the footers cannot tell, read the rows."""
        id_field = SEQUENCE_FIELDS.get(channel)

        def attempt(skipped: set[Path]) -> StreamPosition | bool | None:
            logged, live = self._gather(exchange, channel, [symbol], day, verify=False)
            last_ts, last_id = -1, -1
            for part in live:
                try:
                    told = _footer_maxima(part.path, id_field)
                except StoreError:
                    return False  # a damaged footer: the read path quarantines the part
                if told is None or told[1] >= before_ns:
                    return False
                rows, ts, ident = told
                if rows:
                    last_ts, last_id = max(last_ts, ts), max(last_id, ident)
            for _, table in logged:
                if table is None or not table.num_rows:
                    continue
                ts_values = numpy_view(table.column("ts"), np.int64)
                before = ts_values < before_ns
                if before.any():
                    last_ts = max(last_ts, int(ts_values[before].max()))
                    if id_field is not None:
                        ids = numpy_view(table.column(id_field), np.int64)[before]
                        last_id = max(last_id, int(ids.max()))
            if last_ts < 0:
                return None
            return StreamPosition(ts=last_ts, last_id=last_id)

        return self._consistently(attempt)

    def read(
        self,
        *,
        exchange: str,
        symbol: str | None,
        channel: Channel,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Rows with ``start <= ts < end``, sorted stably by (ts, recv_ts), indexed by ``ts``."""
        channel = Channel(channel)
        start_ns = None if start is None else ns_of(start)
        end_ns = None if end is None else ns_of(end)
        names = [symbol] if symbol is not None else self.symbols(exchange, channel)
        columns = SCHEMAS[channel].names
        tables = [
            self._day_table(exchange, channel, [name], day, columns, start_ns, end_ns)
            for name in names
            for day in days_within(self.days(exchange, channel, name), start_ns, end_ns)
        ]
        if not tables:
            return to_frame(empty_table(channel))
        table = pa.concat_tables(tables, promote_options="permissive")
        order = pc.sort_indices(table, sort_keys=[("ts", "ascending"), ("recv_ts", "ascending")])
        return to_frame(table.take(order))

    def read_days(
        self,
        *,
        exchange: str,
        symbol: str | None,
        channel: Channel,
        start_ns: int | None = None,
        end_ns: int | None = None,
        columns: Sequence[str] | None = None,
        ordered: bool = True,
    ) -> Iterator[tuple[date, pa.Table]]:
        """See :meth:`Store.read_days`. Only the wanted columns of the day's live files are
        read, pruned by file and row-group statistics on ``ts``, plus its un-parted log rows."""
        channel = Channel(channel)
        names = [symbol] if symbol is not None else self.symbols(exchange, channel)
        wanted = list(columns) if columns is not None else SCHEMAS[channel].names
        # the merge of several collectors' rows needs their key columns (hundi.stores.merge)
        read = list(dict.fromkeys([*wanted, *needed_columns(channel)]))
        for day in days_within(self.days(exchange, channel, symbol), start_ns, end_ns):
            # several runs' rows are merged in there (combine_day)
            table = self._day_table(exchange, channel, names, day, read, start_ns, end_ns)
            if ordered:
                table = sort_by_time(table)
            table = table.select(wanted)
            if table.num_rows:
                yield day, table

    def copies(
        self, *, exchange: str, symbol: str, channel: Channel, start_ns: int, end_ns: int
    ) -> pa.Table | None:
        """See :meth:`Store.copies`: a run is one writer (compaction merges a run's own parts
        only), read from the day's live parts and un-parted log entries, not merged."""
        channel = Channel(channel)
        runs: dict[str, int] = {}
        stamps: list[pa.Array] = []
        writers: list[npt.NDArray[np.int64]] = []
        for day in days_within(self.days(exchange, channel, symbol), start_ns, end_ns):

            def attempt(skipped: set[Path], day: date = day) -> list[tuple[str, pa.Table]]:
                logged, live = self._gather(exchange, channel, [symbol], day)
                pieces = _scan_by_run(channel, live, ["ts"], start_ns, end_ns)
                pieces += [
                    (e.run, _log_rows(t, ["ts"], start_ns, end_ns))
                    for e, t in logged
                    if t is not None
                ]
                return pieces

            for run, table in self._consistently(attempt):
                if table.num_rows:
                    stamps.extend(table.column("ts").cast(pa.int64()).chunks)
                    code = runs.setdefault(run, len(runs))
                    writers.append(np.full(table.num_rows, code, np.int64))
        if not stamps:
            return pa.table({"ts": pa.array([], pa.int64()), "writer": pa.array([], pa.int64())})
        return pa.table(
            {"ts": pa.chunked_array(stamps, pa.int64()), "writer": np.concatenate(writers)}
        )

    def _day_table(
        self,
        exchange: str,
        channel: Channel,
        names: Sequence[str],
        day: date,
        columns: Sequence[str],
        start_ns: int | None,
        end_ns: int | None,
    ) -> pa.Table:
        """Some symbols' rows of one day with ``start_ns <= ts < end_ns``, unsorted."""

        def attempt(skipped: set[Path]) -> pa.Table:
            logged, live = self._gather(exchange, channel, names, day)
            low, high = start_ns, end_ns
            # several writers' copies of a record with a local ts: merge around the range's
            # bounds, then cut it (hundi.stores.merge.LOCAL_TS_MARGIN_NS)
            widen = (
                (start_ns is not None or end_ns is not None)
                and local_ts_merges(channel)
                and "ts" in columns
                and len({p.run for p in live} | {e.run for e, t in logged if t is not None}) > 1
            )
            if widen:
                low = None if start_ns is None else start_ns - LOCAL_TS_MARGIN_NS
                high = None if end_ns is None else end_ns + LOCAL_TS_MARGIN_NS
            pieces = _scan_by_run(channel, live, columns, low, high)
            pieces += [
                (e.run, _log_rows(t, columns, low, high)) for e, t in logged if t is not None
            ]
            tail = self._previous_tail(exchange, channel, names, day, columns, pieces, low)
            if tail:
                widen = True
                low = None if start_ns is None else start_ns - LOCAL_TS_MARGIN_NS
                pieces += [(run, _within(t, low, None)) for run, t in tail]
            if not widen:
                return combine_day(channel, pieces)
            day_start = day_start_ns(day)
            returned = (day_start if start_ns is None else max(start_ns, day_start), end_ns)
            return _within(combine_day(channel, pieces, returned=returned), *returned)

        return self._consistently(attempt)

    def _previous_tail(
        self,
        exchange: str,
        channel: Channel,
        names: Sequence[str],
        day: date,
        columns: Sequence[str],
        pieces: Sequence[tuple[str, pa.Table]],
        low: int | None,
    ) -> list[tuple[str, pa.Table]]:
        """The previous day's last ``LOCAL_TS_MARGIN_NS`` of rows (per run), where this day's
        rows of a local-ts channel start within that margin after midnight: another writer's
        copy of such a row received just before midnight sits in the previous day's partition,
        and (received first, as its ``ts`` is its receive time) it wins the merge. Only the
        previous day matters: a later copy never beats an earlier one. Empty where no merge
        is possible (not a local-ts channel, key columns not read)."""
        if not local_ts_merges(channel) or not set(needed_columns(channel)) <= set(columns):
            return []
        day_start = day_start_ns(day)
        soon = day_start + LOCAL_TS_MARGIN_NS
        if low is not None and low >= soon:
            return []
        early = False
        for _, table in pieces:
            if table.num_rows:
                first = pc.min(table.column("ts").cast(pa.int64())).as_py()
                early = early or (first is not None and first < soon)
        if not early:
            return []
        previous = day_of_ns(day_start - 1)
        logged, live = self._gather(exchange, channel, names, previous)
        if not live and not any(t is not None for _, t in logged):
            return []
        since = day_start - LOCAL_TS_MARGIN_NS
        tail = _scan_by_run(channel, live, columns, since, day_start)
        tail += [
            (e.run, _log_rows(t, columns, since, day_start)) for e, t in logged if t is not None
        ]
        return [(run, t) for run, t in tail if t.num_rows]

    # -- versioned days ----------------------------------------------------------------------

    def cache_home(self) -> Path:
        """``<store>/.hundi-cache`` (other readers of the files skip it: no ``exchange=``)."""
        return self.root / CACHE_DIR

    def day_version(self, exchange: str, channel: Channel, symbol: str, day: date) -> str:
        """The names and sizes of the day's live part files and its un-parted log entries: a
        flush adds an entry, parting and compaction replace some (a file's name carries its
        run, flush range and checksum)."""
        channel = Channel(channel)

        def attempt(skipped: set[Path]) -> str:
            logged, live = self._gather(exchange, channel, [symbol], day, decode=False)
            return _version(_sized(live), [entry for entry, _ in logged])

        return self._consistently(attempt)

    def read_day(
        self,
        exchange: str,
        channel: Channel,
        symbol: str,
        day: date,
        *,
        columns: Sequence[str] | None = None,
    ) -> DayRead:
        """See :meth:`Store.read_day`: the live files and log entries listed once, their
        version and rows from that listing (a file compacted away meanwhile makes it list
        again). The manifest holds each piece's name, size and row count."""
        channel = Channel(channel)
        wanted = list(columns) if columns is not None else SCHEMAS[channel].names

        def attempt(skipped: set[Path]) -> DayRead:
            logged, live = self._gather(exchange, channel, [symbol], day)
            parts = _sized(live)
            # the merge of several collectors' rows needs their key columns (hundi.stores.merge)
            read = list(dict.fromkeys([*wanted, *needed_columns(channel)]))
            pieces = _scan_by_run(channel, live, read, None, None)
            pieces += [(e.run, _log_rows(t, read, None, None)) for e, t in logged if t is not None]
            tail = self._previous_tail(exchange, channel, [symbol], day, read, pieces, None)
            if tail:  # merged with the previous day's last rows (their copies win): cut them
                returned = (day_start_ns(day), None)
                table = combine_day(channel, [*pieces, *tail], returned=returned)
                table = _within(table, *returned)
            else:
                table = combine_day(channel, pieces)
            table = table.select(wanted)
            manifest = [(p.path.name, size, _rows(p.path)) for p, size in parts]
            manifest += [(_entry_name(e), 0, e.rows) for e, t in logged if t is not None]
            entries = [entry for entry, _ in logged]
            return DayRead(_version(parts, entries), table, json.dumps(manifest))

        return self._consistently(attempt)

    def read_day_since(
        self,
        exchange: str,
        channel: Channel,
        symbol: str,
        day: date,
        manifest: str,
        *,
        columns: Sequence[str] | None = None,
    ) -> DayRead | None:
        """See :meth:`Store.read_day_since`: the rows of the pieces (parts, log entries) not in
        ``manifest``. New rows come in new flushes, or inside parts and compactions that hold
        pieces read then with new ones: such a part holds exactly the rows of its inputs, so
        ``repeated`` counts the rows of its inputs read then. None if a piece read then is gone
        without a part covering it, or was rewritten in place (not something this store does)."""
        channel = Channel(channel)
        wanted = list(columns) if columns is not None else SCHEMAS[channel].names
        try:
            old = {str(n): (int(size), int(rows)) for n, size, rows in json.loads(manifest)}
        except (ValueError, TypeError):
            return None
        old_parts: dict[str, list[tuple[int, int, int]]] = {}  # run → (first, last, rows)
        for name in old:
            piece = _piece(name)
            if piece is None:
                return None
            old_parts.setdefault(piece[0], []).append((piece[1], piece[2], old[name][1]))
        # per run, the flush sequence numbers whose rows were read then
        covered_by_run = {
            run: {i for lo, hi, _ in seen for i in range(lo, hi + 1)}
            for run, seen in old_parts.items()
        }

        def attempt(skipped: set[Path]) -> DayRead | None:
            logged, live = self._gather(exchange, channel, [symbol], day)
            parts = _sized(live)
            present: dict[str, list[tuple[int, int]]] = {}
            fresh: list[PartFile] = []
            repeated = 0
            for part, size in parts:
                present.setdefault(part.run, []).append((part.first, part.last))
                if part.path.name in old:
                    if old[part.path.name][0] != size:
                        return None
                    continue
                seen = old_parts.get(part.run, ())
                if set(range(part.first, part.last + 1)) <= covered_by_run.get(part.run, set()):
                    continue  # a compaction of files read then only: the same rows
                fresh.append(part)
                repeated += sum(
                    rows for first, last, rows in seen if part.first <= first and last <= part.last
                )
            pieces = _scan_by_run(channel, fresh, wanted, None, None)
            for entry, table in logged:
                if table is None:
                    continue  # skipped: neither read now nor then
                present.setdefault(entry.run, []).append((entry.seq, entry.seq))
                if _entry_name(entry) not in old:
                    pieces.append((entry.run, _log_rows(table, wanted, None, None)))
            for run, seen in old_parts.items():
                for first, last, _ in seen:
                    if not any(lo <= first and last <= hi for lo, hi in present.get(run, ())):
                        return None  # rows read then are gone
            runs = {run for run, piece in pieces if piece.num_rows} | set(old_parts)
            if any(piece.num_rows for _, piece in pieces) and len(runs) > 1:
                # two runs (collectors) may hold the same records: only a whole-day read
                # merges them (hundi.stores.merge), so the caller reads the day again
                return None
            listed = [
                (p.path.name, size, old[p.path.name][1] if p.path.name in old else _rows(p.path))
                for p, size in parts
            ]
            listed += [(_entry_name(e), 0, e.rows) for e, t in logged if t is not None]
            entries = [entry for entry, _ in logged]
            table = combine_day(channel, pieces)
            return DayRead(_version(parts, entries), table, json.dumps(listed), repeated)

        return self._consistently(attempt)


def combine_day(
    channel: Channel, pieces: Sequence[tuple[str, pa.Table]], *, returned: Range | None = None
) -> pa.Table:
    """The one place where a day's tables (Parquet parts, log entries), each with the run that
    wrote it, are combined before a read returns them. Rows of several runs (collectors, or one
    collector's restarts) are merged into one stream by :func:`hundi.stores.merge.deduplicate`
    (which needs the key columns: :func:`~hundi.stores.merge.needed_columns`); one run's rows
    are never merged with each other, so a single writer skips the merge."""
    nonempty = [(run, table) for run, table in pieces if table.num_rows]
    if not nonempty:
        return pieces[0][1]
    table = pa.concat_tables([t for _, t in nonempty], promote_options="permissive")
    codes = _run_codes([run for run, _ in nonempty])
    if max(codes) == 0:
        return table
    source = np.repeat(np.asarray(codes, np.int32), [t.num_rows for _, t in nonempty])
    return deduplicate(_with_source(table, source), channel, returned=returned)


def _scan_by_run(
    channel: Channel,
    parts: Sequence[PartFile],
    columns: Sequence[str],
    start_ns: int | None,
    end_ns: int | None,
) -> list[tuple[str, pa.Table]]:
    """The parts' rows, one table per run (writer), for :func:`combine_day`; at least one."""
    by_run: dict[str, list[Path]] = {}
    for part in parts:
        by_run.setdefault(part.run, []).append(part.path)
    if not by_run:
        return [("", empty_table(channel, columns))]
    return [
        (run, scan_files(channel, paths, columns, start_ns, end_ns))
        for run, paths in by_run.items()
    ]


def _log_rows(
    table: pa.Table, columns: Sequence[str], start_ns: int | None, end_ns: int | None
) -> pa.Table:
    """A log entry's rows as :func:`scan_files` returns a part's: ``columns``, range, names
    as plain strings."""
    table = table.select([c for c in columns if c in table.column_names])
    return plain_strings(_within(table, start_ns, end_ns))


def _within(table: pa.Table, start_ns: int | None, end_ns: int | None) -> pa.Table:
    """The rows with ``start_ns <= ts < end_ns`` (all of them without a ``ts`` column)."""
    if (start_ns is None and end_ns is None) or "ts" not in table.column_names:
        return table
    ts = table.column("ts").cast(pa.int64())
    mask = None
    if start_ns is not None:
        mask = pc.greater_equal(ts, start_ns)
    if end_ns is not None:
        below = pc.less(ts, end_ns)
        mask = below if mask is None else pc.and_(mask, below)
    return table.filter(mask)


def _table_stats(table: pa.Table) -> DayStats:
    if not table.num_rows:
        return DayStats(rows=0, first_ns=0, last_ns=0)
    ts = table.column("ts").cast(pa.int64())
    natives: tuple[str, ...] = ()
    if "native_symbol" in table.column_names:
        column = table.column("native_symbol").cast(pa.string())
        natives = tuple(sorted(str(v) for v in pc.unique(column).to_pylist() if v is not None))
    return DayStats(table.num_rows, int(pc.min(ts).as_py()), int(pc.max(ts).as_py()), natives)


def _runs_overlap(stats: Sequence[tuple[str, DayStats]]) -> bool:
    """Whether two runs' (writers') ``ts`` spans overlap: they may then hold copies of one
    record, which only a read merges (runs one after the other, restarts, do not)."""
    spans: dict[str, tuple[int, int]] = {}
    for run, part in stats:
        low, high = spans.get(run, (part.first_ns, part.last_ns))
        spans[run] = (min(low, part.first_ns), max(high, part.last_ns))
    reach: int | None = None
    for low, high in sorted(spans.values()):
        if reach is not None and low <= reach:
            return True
        reach = high if reach is None else max(reach, high)
    return False


def _entry_name(entry: wal.Entry) -> str:
    return f"wal:{entry.run}:{entry.seq}"


def _piece(name: str) -> tuple[str, int, int] | None:
    """(run, first, last flush) of a manifest name: a part file or a log entry."""
    if name.startswith("wal:"):
        try:
            _, run, seq = name.split(":")
            return run, int(seq), int(seq)
        except ValueError:
            return None
    part = parse_part(Path(name))
    return None if part is None else (part.run, part.first, part.last)


def _sized(parts: Sequence[PartFile]) -> list[tuple[PartFile, int]]:
    """Parts and their sizes; FileNotFoundError (compacted away) makes the caller list again."""
    return [(p, p.path.stat().st_size) for p in parts]


def _version(parts: Sequence[tuple[PartFile, int]], entries: Sequence[wal.Entry] = ()) -> str:
    pieces = [f"{part.path.name}:{size}" for part, size in parts]
    pieces += [f"{_entry_name(e)}:{e.rows}" for e in entries]
    return "|".join(pieces)


def _rows(path: Path) -> int:
    """Rows in a part file (its Parquet footer). FileNotFoundError propagates."""
    return int(pq.read_metadata(path).num_rows)


_NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _footer(path: Path) -> tuple[Any, int, int] | None:
    """A part's Parquet footer, the index of its ``ts`` column and that column's ns per unit
    (None: no timestamp ``ts``). FileNotFoundError propagates; unreadable: StoreError."""
    try:
        metadata = pq.read_metadata(path)
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"damaged part {str(path)!r} ({e}): run hundi store check") from None
    names = metadata.schema.names
    if "ts" not in names:
        return None
    ts_type = metadata.schema.to_arrow_schema().field("ts").type
    if not pa.types.is_timestamp(ts_type):
        return None
    return metadata, names.index("ts"), _NS_PER_UNIT[ts_type.unit]


def _footer_stats(path: Path) -> DayStats | None:
    """One part's rows, ``ts`` range and native symbols from its footer (None: its row groups
    lack the statistics). FileNotFoundError propagates; an unreadable footer is a StoreError."""
    footer = _footer(path)
    if footer is None:
        return None
    metadata, ts_at, scale = footer
    names = metadata.schema.names
    native_at = names.index("native_symbol") if "native_symbol" in names else None
    first: int | None = None
    last: int | None = None
    natives: set[str] = set()
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        if not group.num_rows:
            continue
        ts = group.column(ts_at).statistics
        if ts is None or not ts.has_min_max:
            return None
        low, high = int(ts.min_raw) * scale, int(ts.max_raw) * scale
        first = low if first is None else min(first, low)
        last = high if last is None else max(last, high)
        native = group.column(native_at).statistics if native_at is not None else None
        if native is not None and native.has_min_max:
            natives.update(str(value) for value in (native.min, native.max))
    if first is None or last is None:
        return DayStats(rows=0, first_ns=0, last_ns=0)
    return DayStats(metadata.num_rows, first, last, tuple(sorted(natives)))


def _footer_maxima(path: Path, id_field: str | None) -> tuple[int, int, int] | None:
    """A part's rows and largest ``ts`` (ns) and ``id_field`` from its footer statistics
    (-1 without such a field); None when a row group lacks them. StoreError: unreadable."""
    footer = _footer(path)
    if footer is None:
        return None
    metadata, ts_at, scale = footer
    names = metadata.schema.names
    if id_field is not None and id_field not in names:
        return None
    id_at = names.index(id_field) if id_field is not None else None
    last_ts = last_id = -1
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        if not group.num_rows:
            continue
        ts = group.column(ts_at).statistics
        if ts is None or not ts.has_min_max:
            return None
        last_ts = max(last_ts, int(ts.max_raw) * scale)
        if id_at is not None:
            ident = group.column(id_at).statistics
            if ident is None or not ident.has_min_max:
                return None
            last_id = max(last_id, int(ident.max))
    return metadata.num_rows, last_ts, last_id


def scan_files(
    channel: Channel,
    paths: Sequence[Path],
    columns: Sequence[str] | None,
    start_ns: int | None,
    end_ns: int | None,
) -> pa.Table:
    """``columns`` (default all) of the rows of part files with ``start_ns <= ts < end_ns``,
    unsorted, names as plain strings. A file deleted meanwhile raises FileNotFoundError."""
    if not paths:
        return empty_table(channel, columns)
    import pyarrow.dataset as ds  # loads pandas: reads only, never the collector

    schema = SCHEMAS[channel]
    wanted = list(columns) if columns is not None else schema.names
    dataset = ds.dataset([os.fspath(p) for p in paths], schema=schema, format="parquet")
    ts = ds.field("ts")
    ts_type = schema.field("ts").type
    condition: ds.Expression | None = None
    if start_ns is not None:
        condition = ts >= pa.scalar(start_ns, pa.int64()).cast(ts_type)
    if end_ns is not None:
        bound = ts < pa.scalar(end_ns, pa.int64()).cast(ts_type)
        condition = bound if condition is None else condition & bound
    return plain_strings(dataset.to_table(columns=wanted, filter=condition))


def _run_codes(names: Sequence[str]) -> list[int]:
    """A small int per distinct name, in first-seen order."""
    seen: dict[str, int] = {}
    return [seen.setdefault(name, len(seen)) for name in names]


def _with_source(table: pa.Table, codes: npt.NDArray[np.int32]) -> pa.Table:
    return table.append_column(SOURCE, numpy_array(codes, pa.int32()))


def plain_strings(table: pa.Table) -> pa.Table:
    """Dictionary-encoded columns (names) as plain strings, as every read returns them."""
    columns = [
        col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col for col in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


def sort_by_time(table: pa.Table) -> pa.Table:
    """Stable (ts, recv_ts) order, the order ``read`` returns (no copy if already so)."""
    if table.num_rows > 1 and "recv_ts" in table.column_names:
        ts = numpy_view(table.column("ts"), np.int64)
        recv = numpy_view(table.column("recv_ts"), np.int64)
        step = np.diff(ts)
        if (step >= 0).all() and (np.diff(recv)[step == 0] >= 0).all():
            return table
    keys = [("ts", "ascending")]
    if "recv_ts" in table.column_names:
        keys.append(("recv_ts", "ascending"))
    return table.take(pc.sort_indices(table, sort_keys=keys))


_CHECKSUM: Final = "payload checksum mismatch"


def _unlike(table: pa.Table, schema: pa.Schema | None) -> str:
    """The columns of ``table`` that ``schema`` does not have as they are (a short reason)."""
    wanted = {f.name: f.type for f in schema} if schema is not None else {}
    odd = [f"{f.name} {f.type}" for f in table.schema if wanted.get(f.name) != f.type]
    missing = [name for name in wanted if name not in table.schema.names]
    return ", ".join(odd + [f"no {name}" for name in missing]) or "their order"


# A part in memory: its Parquet bytes and the Arrow bytes of its rows (what merging it holds).
_Serialized = tuple[pa.Buffer, int]

# Arrow bytes of log rows after which a part's row group is written (it holds that plus the
# last entry). Parting and recovery stream a log's
# entries into the part one row group at a time, so they hold that, not the whole log's rows:
# a 26 MiB log parted as one table took +72 MB of peak RSS (measured), the largest transient
# of a collector at full speed.
ROW_GROUP_BYTES = 8 << 20


def _serialize(table: pa.Table) -> _Serialized:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **_parquet_options(table.schema))
    return sink.getvalue(), table.nbytes


def _serialize_entries(
    segment: Path, entries: Sequence[wal.Entry], left_out: Callable[[wal.Entry, str], None]
) -> _Serialized | None:
    """The entries of one partition as one part, streamed: read and written a row group (about
    :data:`ROW_GROUP_BYTES`) at a time. An entry of another schema than its channel's (a log of
    an older version) is cast to it; ``left_out`` hears (with why) of each entry that failed its
    checksum or cannot be cast: no retry would store it, so the caller cuts it out as damage.
    None when no entry is left."""
    sink = pa.BufferOutputStream()
    writer: pq.ParquetWriter | None = None
    held: list[pa.Table] = []
    held_bytes = nbytes = 0
    schema = SCHEMAS[entries[0].key[1]] if entries else None

    def write_held() -> None:
        nonlocal writer, held, held_bytes
        table = pa.concat_tables(held)
        if writer is None:
            writer = pq.ParquetWriter(sink, table.schema, **_parquet_options(table.schema))
        writer.write_table(table, row_group_size=max(table.num_rows, 1))
        held, held_bytes = [], 0

    for entry, table in wal.read_payloads(segment, entries):
        if table is None:
            left_out(entry, _CHECKSUM)
            continue
        fitted = wal.conformed(table, entry.key[1])
        if fitted is None:
            left_out(
                entry, f"columns not of the {entry.key[1].value} schema: {_unlike(table, schema)}"
            )
            continue
        held.append(fitted)
        held_bytes += fitted.nbytes
        nbytes += fitted.nbytes
        if held_bytes >= ROW_GROUP_BYTES:
            write_held()
    if held:
        write_held()
    if writer is None:
        return None
    writer.close()
    return sink.getvalue(), nbytes


def _parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """How every part is written: zstd, statistics (readers prune row groups by them), and
    encodings per column kind, chosen by measurement (``bench/run.py``).

    Dictionary pages only where values repeat (names, prices, sizes); ids and timestamps, which
    mostly grow by small steps, get ``DELTA_BINARY_PACKED``. Against dictionary-everything this
    writes trades/bbo 2-3x faster and 2x smaller, book rows at the same speed and size; every
    Parquet reader (pyarrow, DuckDB, pandas) reads both encodings.
    """
    dictionary = [
        f.name for f in schema if pa.types.is_dictionary(f.type) or pa.types.is_floating(f.type)
    ]
    delta = {
        f.name: "DELTA_BINARY_PACKED"
        for f in schema
        if pa.types.is_int64(f.type) or pa.types.is_timestamp(f.type)
    }
    return {
        "compression": "zstd",
        "write_statistics": True,
        "use_dictionary": dictionary,
        "column_encoding": delta,
    }


# damaged log bytes: (segment, start, None), or (segment, flush, partition) of a damaged entry
_Cut = tuple[str, int, _PartitionKey | None]


def _offset(entry: wal.Entry) -> int:
    return entry.offset


def _partitions(
    channel: Channel, records: Sequence[Record]
) -> list[tuple[_PartitionKey, pa.Table]]:
    """Split one channel's records by (exchange, symbol, UTC day), keeping their order."""
    if not records:
        return []
    table = to_arrow(channel, records)
    return [
        (
            (exchange, channel, symbol, day_of_ns(day * NS_PER_DAY)),
            table if rows is None else table.take(numpy_array(rows, pa.int64())),
        )
        for exchange, symbol, day, rows in stream_groups(table, NS_PER_DAY)
    ]


def _quarantine_event(path: Path) -> Event:
    """The gap a quarantined part leaves: its partition from its folders; its rows, times and
    trade ids from its footer's statistics where the damage left them readable."""
    exchange, channel, symbol, day = (p.name.split("=", 1)[1] for p in reversed(path.parents[:4]))
    start = day_start_ns(date.fromisoformat(day))
    rows = -1
    times: list[int] = []  # every row group's min and max, where its statistics say
    ids: list[int] = []
    with contextlib.suppress(Exception):  # damaged: the footer may be unreadable too
        meta = pq.ParquetFile(path).metadata
        rows = meta.num_rows
        names = meta.schema.to_arrow_schema().names
        for group in range(meta.num_row_groups):
            for name, into in (("ts", times), ("trade_id", ids)):
                if name not in names or (name == "trade_id" and channel != Channel.TRADES.value):
                    continue
                stats = meta.row_group(group).column(names.index(name)).statistics
                if stats is not None and stats.has_min_max:
                    into += [_ns_value(stats.min), _ns_value(stats.max)]
    first_ts, last_ts = (min(times), max(times)) if times else (start, start)
    first_id, last_id = (min(ids), max(ids)) if ids else (-1, -1)
    counted = f"{rows} rows" if rows >= 0 else "its rows"
    named = f", trade ids {first_id}..{last_id}" if first_id >= 0 else ""
    return Event(
        exchange=exchange, symbol=symbol, native_symbol="", ts=first_ts, recv_ts=time.time_ns(),
        kind=EventKind.GAP.value, channel=channel,
        # trades: the ids within [expected, received), as for a feed gap (coverage checks them)
        expected=first_id, received=last_id + 1 if first_id >= 0 else -1,
        detail=f"{counted} of part {path.name} held in quarantine (damaged), not read: "
        f"ts {first_ts}..{last_ts}{named}",
    )  # fmt: skip


def _ns_value(value: Any) -> int:
    """A timestamp statistic (datetime, pandas Timestamp or int) as ns."""
    if isinstance(value, int):
        return value
    return ns_of(value)


def _names(directory: Path, prefix: str) -> list[str]:
    """The ``prefix<name>`` folders of ``directory`` (a partition level), names sorted."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:  # no permission: what the store holds cannot be told
        raise StoreError(f"cannot list {str(directory)!r}: {e.strerror or e}") from None
    return sorted(
        e.name.removeprefix(prefix) for e in entries if e.name.startswith(prefix) and e.is_dir()
    )


def _dated(symbol_dir: Path) -> list[date]:
    """The days of a symbol's ``date=`` folders (other names are not partitions)."""
    found = []
    for name in _names(symbol_dir, "date="):
        with contextlib.suppress(ValueError):
            day = date.fromisoformat(name)
            if day.isoformat() == name:  # the folder partition_dir names
                found.append(day)
    return found


class _Damaged(Exception):
    """A part failed verification and was quarantined (or skipped if it could not be moved)."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


def _read_part(part: PartFile) -> pa.Table:
    """The part's rows, verified from the bytes read (checksum, footer, schema, decoding); a
    damaged part is quarantined and :class:`_Damaged` raised. FileNotFoundError propagates."""
    data = pa.py_buffer(part.path.read_bytes())
    reason = problem_of_bytes(part.path, part.crc, data)
    if reason is None:
        try:
            # ParquetFile, not read_table: that goes through pyarrow.dataset, which loads pandas
            table = pq.ParquetFile(pa.BufferReader(data)).read()
        except (pa.ArrowException, OSError, ValueError) as e:
            reason = f"unreadable: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        else:
            remember_sound(part.path)
            return table
    quarantine(part.path, reason)
    raise _Damaged(part.path)


__all__ = [
    "EmbeddedStore",
    "parse_options",
    "path_of_url",
    "plain_strings",
    "scan_files",
    "sort_by_time",
]
