"""On-disk layout of the embedded store: partition paths, part-file names, and which files are live.

::

    ROOT/exchange=binance/channel=trades/symbol=BTC-USDT/date=2024-05-01/
        20240501T101500-3f9a1c-0000000007-0000000090-L0-5e1c09a2.parquet  # flushes 7..90
        20240501T101500-3f9a1c-0000000001-0000000006-L1-0b9d44f1.parquet  # compacted parts 1..6
        .tmp-20240501T101500-3f9a1c-0000000008-...parquet.tmp             # being written

A file name is ``RUN-FIRST-LAST-LLEVEL-CRC.parquet`` (``-CRC`` is absent in files written before
checksums existed, which are still read): ``CRC`` is the CRC-32 of the file's bytes
(:mod:`hundi.stores.embedded.integrity`), ``RUN`` is the writer's run id (start time plus
random, so restarts and parallel writers never collide and names sort by start time), and
``[FIRST, LAST]`` is the range of that run's flush sequence numbers the file covers. Writing
parts from the write-ahead log (:mod:`hundi.stores.embedded.wal`) makes a level-0 file per
partition covering the flushes of its log entries; compaction writes one file covering the
union of the files it merged. A log entry whose flush a part of its run covers is in that part
(readers and recovery skip it). A file is *superseded* when another file of the same run
covers a strictly larger range that contains it; readers skip superseded files, so between the
atomic rename of a compacted file and the deletion of its inputs (or after a crash there)
nobody sees a row twice.

Every file holds exactly the record schema of its channel (:data:`hundi.records.SCHEMAS`), so
each file is self-contained; the directory names are hive style for pruning by other tools.

:func:`split_live` verifies the live files before handing them out (checksum, footer, schema;
each file once per process) and quarantines damaged ones, so every reader that lists through it
(the store, the research tools, restart positions) skips a damaged part instead of failing.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from hundi.stores.embedded.integrity import is_sound

PART_SUFFIX = ".parquet"
TMP_PREFIX = ".tmp-"
_NAME = re.compile(
    r"^(?P<run>[0-9T]+-[0-9a-f]+)-(?P<first>\d{10})-(?P<last>\d{10})-L(?P<level>\d+)"
    r"(?:-(?P<crc>[0-9a-f]{8}))?\.parquet$"
)


@dataclass(frozen=True, slots=True, order=True)
class PartFile:
    """One data file of a partition, ordered by run then sequence (the write order)."""

    run: str
    first: int
    last: int
    level: int
    path: Path
    crc: str | None = None  # CRC-32 of the file bytes (None: written before checksums)

    def covers(self, other: PartFile) -> bool:
        """True if this file strictly contains ``other`` (same run, larger range)."""
        return (
            self.run == other.run
            and self.first <= other.first
            and other.last <= self.last
            and (self.first, self.last) != (other.first, other.last)
        )


def part_name(run: str, first: int, last: int, level: int, crc: str | None = None) -> str:
    checksum = "" if crc is None else f"-{crc}"
    return f"{run}-{first:010d}-{last:010d}-L{level}{checksum}{PART_SUFFIX}"


def parse_part(path: Path) -> PartFile | None:
    """``None`` for anything that is not a finished part file (temp files, strays)."""
    m = _NAME.match(path.name)
    if m is None:
        return None
    return PartFile(m["run"], int(m["first"]), int(m["last"]), int(m["level"]), path, m["crc"])


def partition_dir(root: Path, exchange: str, channel: str, symbol: str, day: date) -> Path:
    return (
        root
        / f"exchange={exchange}"
        / f"channel={channel}"
        / f"symbol={symbol}"
        / f"date={day.isoformat()}"
    )


def split_live(
    files: list[PartFile], *, verify: bool = True
) -> tuple[list[PartFile], list[PartFile]]:
    """(live files in write order, superseded files).

    With ``verify`` (the default, for readers) every live file is checked first
    (:func:`hundi.stores.embedded.integrity.is_sound`): a damaged one is quarantined and left
    out, and the split is redone without it, so inputs of a damaged compaction that are still
    on disk become live again. ``verify=False`` only looks at the names.
    """
    while True:
        live, superseded = _split(files)
        if not verify:
            return live, superseded
        damaged = [f for f in live if not is_sound(f.path, f.crc)]
        if not damaged:
            return live, superseded
        files = [f for f in files if f not in damaged]


def _split(files: list[PartFile]) -> tuple[list[PartFile], list[PartFile]]:
    """Linear per run after sorting."""
    files = sorted(files)
    live: list[PartFile] = []
    superseded: list[PartFile] = []
    # Sorted by (run, first, last): a container sorts before what it contains only when it
    # starts at the same sequence, so compare with the widest live file of the run so far and
    # also let a later, wider file displace earlier ones it covers.
    for f in files:
        if live and live[-1].covers(f):
            superseded.append(f)
            continue
        while live and f.covers(live[-1]):
            superseded.append(live.pop())
        live.append(f)
    return live, superseded


def list_parts(directory: Path) -> list[PartFile]:
    """Finished part files in one partition directory (a vanished directory is empty)."""
    try:
        names = list(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [p for p in map(parse_part, names) if p is not None]


STALE_TEMP_S = 60.0  # a temp file untouched this long belongs to a writer that died


def superseded_due(directory: Path, grace_s: float) -> list[Path]:
    """Superseded files of ``directory`` whose grace period is over: ``grace_s`` seconds have
    passed since the first file covering them appeared (its mtime), so no reader can still be
    relying on them. Names only: nothing is opened."""
    files = list_parts(directory)
    _, superseded = split_live(files, verify=False)
    horizon = time.time() - grace_s
    due = []
    for old in superseded:
        stamps = []
        for f in files:
            if f.covers(old):
                try:
                    stamps.append(f.path.stat().st_mtime)
                except FileNotFoundError:
                    continue
        if stamps and min(stamps) <= horizon:
            due.append(old.path)
    return due


def stale_temps(directory: Path, age_s: float = STALE_TEMP_S) -> list[Path]:
    """Temp files of ``directory`` not written to for ``age_s`` seconds (their writer died)."""
    horizon = time.time() - age_s
    found = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        if entry.name.startswith(TMP_PREFIX) and entry.is_file(follow_symlinks=False):
            try:
                if entry.stat().st_mtime < horizon:
                    found.append(Path(entry.path))
            except FileNotFoundError:
                continue
    return found


def partition_dirs(root: Path) -> list[Path]:
    """Every ``exchange=/channel=/symbol=/date=`` folder under ``root`` (the quarantine and
    other folders are not partitions), sorted."""
    prefixes = ("exchange=", "channel=", "symbol=", "date=")
    level = [root]
    for prefix in prefixes:
        below = []
        for directory in level:
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue
            below += [
                Path(e.path)
                for e in entries
                if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)
            ]
        level = below
    return sorted(level)
