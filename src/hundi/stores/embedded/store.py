"""The embedded store: Parquet part files under a directory, no server, readable by any tool.

Layout and file naming: :mod:`hundi.stores.embedded.layout`. Guarantees:

* ``flush`` writes each buffered partition as a new file atomically (temp file in the same
  directory, fsync, ``os.replace``, fsync of the directory), so a reader in another process
  never sees a half-written file and a ``kill -9`` loses only what was not flushed.
* A ``flush`` that fails (disk full...) publishes nothing and keeps everything: every partition
  is written to a temp file first and renamed only once all of them are on disk; a failure
  removes the temp files (and undoes the renames already done) and leaves the data pending, so
  the next ``flush`` writes it again. ``discard`` drops it (the writer gave up on it).
* Flushing every second makes many small files; once a partition has ``compact_fanout`` files of
  one level from this run, ``flush`` merges them into one file of the next level (a log-structured
  merge: each row is rewritten about log_fanout(flushes per day) times). The merged file
  supersedes its inputs by name, and the inputs are deleted only after ``grace_s`` seconds, so a
  concurrent reader whose directory listing raced the rename still finds every row exactly once.
* Restarts append: each store instance writes under a fresh run id.

Reading tools other than :meth:`EmbeddedStore.read`: the files hold every record column, so read
them without hive partitioning, e.g.
``duckdb.sql("select * from read_parquet('data/exchange=binance/channel=trades/**/*.parquet')")``
or ``pandas.read_parquet(path_of_one_partition_dir)``. (With ``hive_partitioning=true`` DuckDB
replaces the ``channel`` column of the events table by the directory value.) Such readers may
see the rows of a compaction twice for up to ``grace_s`` seconds; :meth:`EmbeddedStore.read`
never does. Opening a store for writing and closing it delete superseded files whose grace
period is over, so none outlives it across restarts; docs/embedded-store.md shows how to read
only the live files.

Integrity (:mod:`hundi.stores.embedded.integrity`): every part carries a CRC-32 of its bytes in
its name; :meth:`EmbeddedStore.read` verifies the bytes it reads (and the footer, schema and
decoding), and a damaged part is moved to ``ROOT/.quarantine/`` with one warning while the rest
of the partition stays readable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from hundi.records import SCHEMAS, SEQUENCE_FIELDS, Channel, Record, to_arrow
from hundi.stores.base import (
    NS_PER_DAY,
    DayRead,
    DayStats,
    Store,
    StoreError,
    StreamPosition,
    day_of_ns,
    days_within,
    empty_table,
)
from hundi.stores.embedded.integrity import crc_of, problem_of_bytes, quarantine, remember_sound
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
from hundi.stores.merge import SOURCE, deduplicate, needed_columns

_PartitionKey = tuple[str, Channel, str, date]  # exchange, channel, symbol, day
_READ_RETRIES = 5
_T = TypeVar("_T")
log = logging.getLogger("hundi.stores")


def path_of_url(url: str) -> Path:
    """``./data``, ``file:./data``, ``file:///abs/data`` → a path."""
    if url.startswith("file://"):
        return Path(unquote(urlsplit(url).path))
    if url.startswith("file:"):
        return Path(url[len("file:") :])
    return Path(url)


def _new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


class EmbeddedStore(Store):
    """Parquet files partitioned by exchange/channel/symbol/date. See the module docstring.

    Options: ``compact_fanout`` (files per level before merging, default 16), ``grace_s``
    (seconds before superseded files are deleted, default 30), ``fsync`` (default true),
    ``read_only`` (default false: the store must exist; nothing is created or written).
    """

    scheme = "file"

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url)
        self.root = path_of_url(url)
        self.compact_fanout = max(2, int(options.get("compact_fanout", 16)))
        self.grace_s = float(options.get("grace_s", 30.0))
        self.fsync = _as_bool(options.get("fsync", True))
        self.run_id = _new_run_id()
        self._sequence = 0
        self._buffers: dict[Channel, list[Record]] = {}
        # Written but not yet on disk: what failed flushes kept, per partition, in write order.
        self._pending: dict[_PartitionKey, pa.Table] = {}
        # This run's live files per partition directory, by level (what compaction merges).
        self._own: dict[Path, dict[int, list[PartFile]]] = {}
        self._pending_deletes: list[tuple[float, list[Path]]] = []
        self.read_only = _as_bool(options.get("read_only", False))
        if self.read_only:
            if not self.root.is_dir():
                raise StoreError(f"no store at {str(self.root)!r} (not a directory)")
        else:
            self._check_writable()
            self._sweep()

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
        if self.read_only:
            raise StoreError(f"store {str(self.root)!r} was opened read-only")
        for channel, records in batches.items():
            if records:
                self._buffers.setdefault(Channel(channel), []).extend(records)

    def flush(self) -> None:
        """Publish everything written so far, all or nothing (see the module docstring)."""
        if self._buffers:
            fresh = [
                part
                for channel, records in self._buffers.items()
                for part in _partitions(channel, records)
            ]
            for key, table in fresh:
                kept = self._pending.get(key)
                self._pending[key] = table if kept is None else pa.concat_tables([kept, table])
            self._buffers = {}
        if self._pending:
            try:
                written = self._publish(list(self._pending.items()))
            except OSError as e:
                raise StoreError(f"writing to store {str(self.root)!r} failed: {e}") from None
            self._pending = {}
            for directory, part in written:
                self._own[directory].setdefault(0, []).append(part)
            for directory in dict.fromkeys(directory for directory, _ in written):
                try:
                    self._maybe_compact(directory)
                except StoreError as e:
                    # The data is durable in the uncompacted files; merging is retried later.
                    log.warning("%s; retried at a later flush", e)
        self._delete_due()

    def discard(self) -> None:
        """Forget what was written since the last successful ``flush`` (the writer gave up on it
        and counts it as lost, so no later ``flush`` or ``close`` may store it after all)."""
        self._buffers = {}
        self._pending = {}

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def _publish(self, parts: list[tuple[_PartitionKey, pa.Table]]) -> list[tuple[Path, PartFile]]:
        """Every part as a new level-0 file, or none: temp files first, renames once all are
        written. On failure no temp file is left and no renamed file stays visible."""
        staged: list[tuple[Path, Path, PartFile]] = []  # directory, temp file, final part
        renamed: list[Path] = []
        try:
            for (exchange, channel, symbol, day), table in parts:
                directory = partition_dir(self.root, exchange, channel.value, symbol, day)
                if directory not in self._own:
                    directory.mkdir(parents=True, exist_ok=True)
                    self._own[directory] = {}
                    self._clean_leftovers(directory)
                seq = self._next_sequence()
                tmp, part = self._write_temp(directory, table, seq, seq, 0)
                staged.append((directory, tmp, part))
            for _, tmp, part in staged:
                os.replace(tmp, part.path)
                renamed.append(part.path)
            if self.fsync:
                for directory in dict.fromkeys(directory for directory, _, _ in staged):
                    _fsync_dir(directory)
        except BaseException:
            for _, tmp, part in staged:
                with contextlib.suppress(OSError):
                    (part.path if part.path in renamed else tmp).unlink()
            raise
        return [(directory, part) for directory, _, part in staged]

    def _write_file(
        self, directory: Path, table: pa.Table, first: int, last: int, level: int
    ) -> PartFile:
        tmp, part = self._write_temp(directory, table, first, last, level)
        try:
            os.replace(tmp, part.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        if self.fsync:
            _fsync_dir(directory)
        return part

    def _write_temp(
        self, directory: Path, table: pa.Table, first: int, last: int, level: int
    ) -> tuple[Path, PartFile]:
        """The part written (and fsync'd) under its temp name; a failed write leaves no file."""
        # Serialized in memory first so the checksum in the name hashes bytes already at hand
        # (no re-read of the file; see hundi.stores.embedded.integrity).
        sink = pa.BufferOutputStream()
        pq.write_table(
            table, sink, compression="zstd", write_statistics=True, **_encodings(table.schema)
        )
        data = sink.getvalue()
        crc = crc_of(data)
        final = directory / part_name(self.run_id, first, last, level, crc)
        tmp = directory / f"{TMP_PREFIX}{final.name}.tmp"
        try:
            with tmp.open("wb") as f:
                f.write(memoryview(data))
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return tmp, PartFile(self.run_id, first, last, level, final, crc)

    def _maybe_compact(self, directory: Path) -> None:
        """Merge a full level into one file of the next level, cascading upwards."""
        levels = self._own[directory]
        level = 0
        while len(levels.get(level, ())) >= self.compact_fanout:
            inputs = levels.pop(level)
            try:
                tables = []
                for part in list(inputs):
                    try:
                        tables.append(_read_part(part))
                    except (_Damaged, FileNotFoundError):
                        inputs.remove(part)  # quarantined (by us or a reader): merge the rest
                if not inputs:
                    continue
                table = pa.concat_tables(tables)
                merged = self._write_file(
                    directory, table, inputs[0].first, inputs[-1].last, level + 1
                )
            except OSError as e:
                levels[level] = inputs  # the inputs are still live; retry at the next flush
                raise StoreError(f"compacting {str(directory)!r} failed: {e}") from None
            levels.setdefault(level + 1, []).append(merged)
            self._pending_deletes.append(
                (time.monotonic() + self.grace_s, [p.path for p in inputs])
            )
            level += 1

    def _delete_due(self) -> None:
        now = time.monotonic()
        keep: list[tuple[float, list[Path]]] = []
        for deadline, paths in self._pending_deletes:
            if deadline <= now:
                for path in paths:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            else:
                keep.append((deadline, paths))
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
        super().close()
        if not self.read_only:
            self._delete_due()
            self._sweep(list(self._own))

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

    def day_stats(self, exchange: str, channel: Channel, symbol: str, day: date) -> DayStats | None:
        """From the Parquet footers of the day's live parts (row counts, ``ts`` and
        ``native_symbol`` statistics): no row is read and no part verified (``hundi store
        check`` does that). None when a part has no such statistics."""
        directory = partition_dir(self.root, exchange, Channel(channel).value, symbol, day)

        def attempt(skipped: set[Path]) -> DayStats | None:
            live, _ = split_live(list_parts(directory), verify=False)
            parts = [_footer_stats(part.path) for part in live]
            if not parts or any(part is None for part in parts):
                return None
            known = [part for part in parts if part is not None and part.rows]
            if not known:
                return None
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

    def last_position(
        self, exchange: str, symbol: str, channel: Channel, before_ns: int
    ) -> StreamPosition | None:
        """From the newest day with rows before ``before_ns``: its ``ts`` column (and the
        sequence id column), so a collector's start reads one day of two columns per stream."""
        channel = Channel(channel)
        id_field = SEQUENCE_FIELDS.get(channel)
        columns = ["ts"] if id_field is None else ["ts", id_field]
        for day in reversed(days_within(self.days(exchange, channel, symbol), None, before_ns)):
            table = self._day_table(exchange, channel, [symbol], day, columns, None, before_ns)
            if table.num_rows:
                last_ts = int(pc.max(table.column("ts").cast(pa.int64())).as_py())
                last_id = -1 if id_field is None else int(pc.max(table.column(id_field)).as_py())
                return StreamPosition(ts=last_ts, last_id=last_id)
        return None

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

        def attempt(skipped: set[Path]) -> pa.Table:
            files = self._live_files(exchange, channel, symbol, start, end)
            return _read_tables(channel, [f for f in files if f.path not in skipped], start, end)

        return _to_frame(self._consistently(attempt))

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
        read, pruned by file and row-group statistics on ``ts``."""
        channel = Channel(channel)
        names = [symbol] if symbol is not None else self.symbols(exchange, channel)
        wanted = list(columns) if columns is not None else SCHEMAS[channel].names
        # the merge of several collectors' rows needs their key columns (hundi.stores.merge)
        read = list(dict.fromkeys([*wanted, *needed_columns(channel)]))
        for day in days_within(self.days(exchange, channel, symbol), start_ns, end_ns):
            table = self._day_table(exchange, channel, names, day, read, start_ns, end_ns)
            table = deduplicate(table, channel)
            if ordered:
                table = sort_by_time(table)
            table = table.select(wanted)
            if table.num_rows:
                yield day, table

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
            paths = [
                part.path
                for name in names
                # verified before they are read (damaged ones quarantined and left out)
                for part in split_live(
                    list_parts(partition_dir(self.root, exchange, channel.value, name, day))
                )[0]
            ]
            return scan_files(channel, paths, columns, start_ns, end_ns, True)

        return self._consistently(attempt)

    # -- versioned days ----------------------------------------------------------------------

    def cache_home(self) -> Path:
        """``<store>/.hundi-cache`` (other readers of the files skip it: no ``exchange=``)."""
        return self.root / ".hundi-cache"

    def day_version(self, exchange: str, channel: Channel, symbol: str, day: date) -> str:
        """The names and sizes of the day's live part files: a flush adds a file, a compaction
        replaces some (a file's name carries its run, sequence range and checksum)."""

        def attempt(skipped: set[Path]) -> str:
            return _version(self._day_parts(exchange, channel, symbol, day))

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
        """See :meth:`Store.read_day`: the live files listed once, their version and rows from
        that listing (a file compacted away meanwhile makes it list again). The manifest holds
        each file's name, size and row count."""
        channel = Channel(channel)

        def attempt(skipped: set[Path]) -> DayRead:
            parts = self._day_parts(exchange, channel, symbol, day)
            read = (
                None
                if columns is None
                else list(dict.fromkeys([*columns, *needed_columns(channel)]))
            )
            paths = [p.path for p, _ in parts]
            table = deduplicate(scan_files(channel, paths, read, None, None, True), channel)
            if columns is not None:
                table = table.select(list(columns))
            manifest = [(p.path.name, size, _rows(p.path)) for p, size in parts]
            return DayRead(_version(parts), table, json.dumps(manifest))

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
        """See :meth:`Store.read_day_since`: the rows of the files not in ``manifest``. New rows
        come in new flushes, or inside compactions that merged files read then with new ones: a
        compaction holds exactly the rows of its inputs, so ``repeated`` counts the rows of its
        inputs read then. None if a file read then is gone without a compaction covering it, or
        was rewritten in place (not something this store does)."""
        channel = Channel(channel)
        try:
            old = {str(n): (int(size), int(rows)) for n, size, rows in json.loads(manifest)}
        except (ValueError, TypeError):
            return None
        old_parts: dict[str, list[tuple[int, int, int]]] = {}  # run → (first, last, rows)
        for name, (_, rows) in old.items():
            part = parse_part(Path(name))
            if part is None:
                return None
            old_parts.setdefault(part.run, []).append((part.first, part.last, rows))
        # per run, the flush sequence numbers whose rows were read then
        covered_by_run = {
            run: {i for lo, hi, _ in seen for i in range(lo, hi + 1)}
            for run, seen in old_parts.items()
        }

        def attempt(skipped: set[Path]) -> DayRead | None:
            parts = self._day_parts(exchange, channel, symbol, day)
            present: dict[str, list[tuple[int, int]]] = {}
            fresh: list[Path] = []
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
                fresh.append(part.path)
                repeated += sum(
                    rows for first, last, rows in seen if part.first <= first and last <= part.last
                )
            for run, seen in old_parts.items():
                for first, last, _ in seen:
                    if not any(lo <= first and last <= hi for lo, hi in present.get(run, ())):
                        return None  # rows read then are gone
            runs = {part.run for part, _ in parts if part.path in fresh} | set(old_parts)
            if fresh and len(runs) > 1:
                # two runs (collectors) may hold the same records: only a whole-day read
                # merges them (hundi.stores.merge), so the caller reads the day again
                return None
            table = scan_files(channel, fresh, columns, None, None)
            listed = [
                (p.path.name, size, old[p.path.name][1] if p.path.name in old else _rows(p.path))
                for p, size in parts
            ]
            return DayRead(_version(parts), table, json.dumps(listed), repeated)

        return self._consistently(attempt)

    def _day_parts(
        self, exchange: str, channel: Channel, symbol: str, day: date
    ) -> list[tuple[PartFile, int]]:
        """The day's live (verified) part files and their sizes. FileNotFoundError if one
        vanishes meanwhile (compaction): :meth:`_consistently` lists again."""
        directory = partition_dir(self.root, exchange, Channel(channel).value, symbol, day)
        live, _ = split_live(list_parts(directory))
        return [(p, p.path.stat().st_size) for p in live]

    def _live_files(
        self,
        exchange: str,
        channel: Channel,
        symbol: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> list[PartFile]:
        names = [symbol] if symbol is not None else self.symbols(exchange, channel)
        first_day = _utc(start).date() if start else None
        last_day = _utc(end).date() if end else None
        files: list[PartFile] = []
        for name in names:
            for day in self.days(exchange, channel, name):
                if (first_day and day < first_day) or (last_day and day > last_day):
                    continue
                # verified while read, from the bytes read (_read_part): no second pass here
                directory = partition_dir(self.root, exchange, channel.value, name, day)
                live, _ = split_live(list_parts(directory), verify=False)
                files.extend(live)
        return files


def _version(parts: Sequence[tuple[PartFile, int]]) -> str:
    return "|".join(f"{part.path.name}:{size}" for part, size in parts)


def _rows(path: Path) -> int:
    """Rows in a part file (its Parquet footer). FileNotFoundError propagates."""
    return int(pq.read_metadata(path).num_rows)


_NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _footer_stats(path: Path) -> DayStats | None:
    """One part's rows, ``ts`` range and native symbols from its footer (None: its row groups
    lack the statistics). FileNotFoundError propagates; an unreadable footer is a StoreError."""
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
    scale = _NS_PER_UNIT[ts_type.unit]
    ts_at = names.index("ts")
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


def scan_files(
    channel: Channel,
    paths: Sequence[Path],
    columns: Sequence[str] | None,
    start_ns: int | None,
    end_ns: int | None,
    sources: bool = False,
) -> pa.Table:
    """``columns`` (default all) of the rows of part files with ``start_ns <= ts < end_ns``,
    unsorted, names as plain strings. A file deleted meanwhile raises FileNotFoundError.
    ``sources``: with the merge's :data:`~hundi.stores.merge.SOURCE` column, each row's run (a
    collector's rows are never merged with each other, only with another run's)."""
    if not paths:
        table = empty_table(channel, columns)
        return _with_source(table, np.zeros(0, np.int32)) if sources else table
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
    writers = {_run_of(os.fspath(p)) for p in paths} if sources else set()
    if len(writers) < 2:  # no writer column needed: one writer's rows are never merged
        table = plain_strings(dataset.to_table(columns=wanted, filter=condition))
        return _with_source(table, np.zeros(table.num_rows, np.int32)) if sources else table
    table = dataset.to_table(columns=[*wanted, "__filename"], filter=condition)
    files = pc.dictionary_encode(table.column("__filename")).combine_chunks()
    runs = [_run_of(name) for name in files.dictionary.to_pylist()]  # per file, not per row
    codes = np.asarray(_run_codes(runs), np.int32)[files.indices.to_numpy(zero_copy_only=False)]
    return _with_source(plain_strings(table.drop_columns(["__filename"])), codes)


def _run_of(path: str) -> str:
    """A part file's run (its writer), from its name."""
    part = parse_part(Path(path))
    return path if part is None else part.run


def _run_codes(names: Sequence[str]) -> list[int]:
    """A small int per distinct name, in first-seen order."""
    seen: dict[str, int] = {}
    return [seen.setdefault(name, len(seen)) for name in names]


def _with_source(table: pa.Table, codes: npt.NDArray[np.int32]) -> pa.Table:
    return table.append_column(SOURCE, pa.array(codes, pa.int32()))


def plain_strings(table: pa.Table) -> pa.Table:
    """Dictionary-encoded columns (names) as plain strings, as every read returns them."""
    columns = [
        col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col for col in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


def sort_by_time(table: pa.Table) -> pa.Table:
    """Stable (ts, recv_ts) order, the order ``read`` returns (no copy if already so)."""
    if table.num_rows > 1 and "recv_ts" in table.column_names:
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        recv = table.column("recv_ts").cast(pa.int64()).to_numpy()
        step = np.diff(ts)
        if (step >= 0).all() and (np.diff(recv)[step == 0] >= 0).all():
            return table
    keys = [("ts", "ascending")]
    if "recv_ts" in table.column_names:
        keys.append(("recv_ts", "ascending"))
    return table.take(pc.sort_indices(table, sort_keys=keys))


def _encodings(schema: pa.Schema) -> dict[str, Any]:
    """Parquet encodings per column kind, chosen by measurement (``bench/run.py``).

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
    return {"use_dictionary": dictionary, "column_encoding": delta}


def _partitions(
    channel: Channel, records: Sequence[Record]
) -> list[tuple[_PartitionKey, pa.Table]]:
    """Split one channel's records by (exchange, symbol, UTC day), keeping their order."""
    table = to_arrow(channel, records)
    first = records[0]
    day_numbers = pc.divide(table.column("ts").cast(pa.int64()), NS_PER_DAY)
    exchange_col = table.column("exchange").cast(pa.string())
    symbol_col = table.column("symbol").cast(pa.string())
    keys = pa.table({"e": exchange_col, "s": symbol_col, "d": day_numbers})
    unique = keys.group_by(["e", "s", "d"]).aggregate([]).to_pylist()
    if len(unique) == 1:
        return [((first.exchange, channel, first.symbol, day_of_ns(first.ts)), table)]
    parts = []
    for key in unique:
        mask = pc.and_(
            pc.and_(pc.equal(exchange_col, key["e"]), pc.equal(symbol_col, key["s"])),
            pc.equal(day_numbers, key["d"]),
        )
        day = day_of_ns(int(key["d"]) * NS_PER_DAY)
        parts.append(((str(key["e"]), channel, str(key["s"]), day), table.filter(mask)))
    return parts


def _names(directory: Path, prefix: str) -> list[str]:
    """The ``prefix<name>`` folders of ``directory`` (a partition level), names sorted."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
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


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _read_tables(
    channel: Channel, files: list[PartFile], start: datetime | None, end: datetime | None
) -> pa.Table:
    schema = SCHEMAS[channel]
    if not files:
        return schema.empty_table()
    tables = [_read_part(f, schema) for f in files]
    runs = _run_codes([f.run for f in files])
    source = np.repeat(np.asarray(runs, np.int32), [t.num_rows for t in tables])
    # several collectors' (runs') rows of one record become one (hundi.stores.merge)
    combined = pa.concat_tables(tables, promote_options="permissive")
    table = deduplicate(_with_source(combined, source), channel)
    ts = table.column("ts")
    if start is not None or end is not None:
        conditions = []
        if start is not None:
            conditions.append(pc.greater_equal(ts, pa.scalar(_utc(start), ts.type)))
        if end is not None:
            conditions.append(pc.less(ts, pa.scalar(_utc(end), ts.type)))
        mask = conditions[0] if len(conditions) == 1 else pc.and_(*conditions)
        table = table.filter(mask)
    order = pc.sort_indices(table, sort_keys=[("ts", "ascending"), ("recv_ts", "ascending")])
    return table.take(order)


class _Damaged(Exception):
    """A part failed verification and was quarantined (or skipped if it could not be moved)."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


def _read_part(part: PartFile, schema: pa.Schema | None = None) -> pa.Table:
    """The part's rows, verified from the bytes read (checksum, footer, schema, decoding); a
    damaged part is quarantined and :class:`_Damaged` raised. FileNotFoundError propagates."""
    data = pa.py_buffer(part.path.read_bytes())
    reason = problem_of_bytes(part.path, part.crc, data)
    if reason is None:
        try:
            table = pq.read_table(pa.BufferReader(data), schema=schema)
        except (pa.ArrowException, OSError, ValueError) as e:
            reason = f"unreadable: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        else:
            remember_sound(part.path)
            return table
    quarantine(part.path, reason)
    raise _Damaged(part.path)


def _to_frame(table: pa.Table) -> pd.DataFrame:
    frame: pd.DataFrame = plain_strings(table).to_pandas().set_index("ts")
    return frame


__all__ = ["EmbeddedStore", "path_of_url", "plain_strings", "scan_files", "sort_by_time"]
