"""On-disk layout of the embedded store: partition paths, part-file names, and which files are live.

::

    ROOT/exchange=binance/channel=trades/symbol=BTC-USDT/date=2024-05-01/
        20240501T101500-3f9a1c-0000000007-0000000007-L0.parquet    # one flush
        20240501T101500-3f9a1c-0000000001-0000000006-L1.parquet    # compacted parts 1..6
        .tmp-20240501T101500-3f9a1c-0000000008.parquet.tmp        # being written (never read)

A file name is ``RUN-FIRST-LAST-LLEVEL.parquet``: ``RUN`` is the writer's run id (start time plus
random, so restarts and parallel writers never collide and names sort by start time), and
``[FIRST, LAST]`` is the range of that run's flush sequence numbers the file covers. A flush
writes a level-0 file with ``FIRST == LAST``; compaction writes one file covering the union of
the files it merged. A file is *superseded* when another file of the same run covers a strictly
larger range that contains it; readers skip superseded files, so between the atomic rename of a
compacted file and the deletion of its inputs (or after a crash there) nobody sees a row twice.

Every file holds exactly the record schema of its channel (:data:`hundi.records.SCHEMAS`), so
each file is self-contained; the directory names are hive style for pruning by other tools.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

PART_SUFFIX = ".parquet"
TMP_PREFIX = ".tmp-"
_NAME = re.compile(
    r"^(?P<run>[0-9T]+-[0-9a-f]+)-(?P<first>\d{10})-(?P<last>\d{10})-L(?P<level>\d+)\.parquet$"
)
NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True, slots=True, order=True)
class PartFile:
    """One data file of a partition, ordered by run then sequence (the write order)."""

    run: str
    first: int
    last: int
    level: int
    path: Path

    def covers(self, other: PartFile) -> bool:
        """True if this file strictly contains ``other`` (same run, larger range)."""
        return (
            self.run == other.run
            and self.first <= other.first
            and other.last <= self.last
            and (self.first, self.last) != (other.first, other.last)
        )


def part_name(run: str, first: int, last: int, level: int) -> str:
    return f"{run}-{first:010d}-{last:010d}-L{level}{PART_SUFFIX}"


def parse_part(path: Path) -> PartFile | None:
    """``None`` for anything that is not a finished part file (temp files, strays)."""
    m = _NAME.match(path.name)
    if m is None:
        return None
    return PartFile(m["run"], int(m["first"]), int(m["last"]), int(m["level"]), path)


def partition_dir(root: Path, exchange: str, channel: str, symbol: str, day: date) -> Path:
    return (
        root
        / f"exchange={exchange}"
        / f"channel={channel}"
        / f"symbol={symbol}"
        / f"date={day.isoformat()}"
    )


def day_of_ns(ts_ns: int) -> date:
    return datetime.fromtimestamp(ts_ns // NS_PER_DAY * 86_400, tz=UTC).date()


def split_live(files: list[PartFile]) -> tuple[list[PartFile], list[PartFile]]:
    """(live files in write order, superseded files). Linear per run after sorting."""
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
