"""The embedded store's write-ahead log: one append-only, checksummed file per writer run.

Why: writing a Parquet part per partition at every flush (about once a second) and compacting
them later was most of a collector's CPU. Instead every flush appends each partition's new rows
to ONE log file as an Arrow IPC stream and fsyncs it once (group commit: one fsync per flush
for all streams). Parquet parts are written from the log only when it reaches a size or an age
threshold (:class:`hundi.stores.embedded.store.EmbeddedStore`), then the log is retired.

File: ``ROOT/.wal/RUN-SEGMENT.wal`` (``.wal`` starts with a dot, so globs from ``exchange=``
never see it). A segment is a sequence of entries::

    magic "HWL1" | meta length u16 | payload length u32 | payload CRC-32 u32 | header CRC-32 u32
    meta (JSON: exchange, channel, symbol, day, flush sequence, rows) | payload (Arrow IPC stream)

The header CRC covers the 14 bytes before it and the meta, so a damaged length is detected and
the scan resynchronizes at the next entry whose header verifies; the payload CRC covers the
payload. Hand-rolled framing (a few lines of ``struct``) because Arrow IPC files have no
per-batch checksum and cannot be appended to in place after a crash.

Liveness: the writer holds an exclusive ``flock`` on its open segment. A segment nobody holds
belongs to a run that died (or stopped without parting it); the next writer that opens the
store, or ``hundi store check --repair``, turns it into parts (:func:`recover_segment`).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import logging
import mmap
import os
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa

from hundi.records import SCHEMAS, Channel
from hundi.stores.base import day_of_ns
from hundi.stores.embedded.integrity import REPORTED_SUFFIX

WAL_DIR = ".wal"
WAL_SUFFIX = ".wal"
NEW_SUFFIX = ".new"  # a segment being created: locked, then renamed to its name
_STALE_NEW_S = 60.0  # a creation left this long ago was cut short by a crash
MAGIC = b"HWL1"
_HEAD = struct.Struct("<4sHII")  # magic, meta length, payload length, payload crc
_HEAD_CRC = struct.Struct("<I")
HEADER_SIZE = _HEAD.size + _HEAD_CRC.size
# An entry's meta (exchange, channel, symbol, day, flush, rows as JSON) is well under this;
# a longer one is a damaged length field, not a torn write.
MAX_META = 4096
# six digits at least: a long run's millionth segment has seven (and still sorts after)
_NAME = re.compile(r"^(?P<run>[0-9T]+-[0-9a-f]+)-(?P<segment>\d{6,})\.wal$")
log = logging.getLogger("hundi.stores")

PartitionKey = tuple[str, Channel, str, date]  # exchange, channel, symbol, day


@dataclass(frozen=True, slots=True)
class Entry:
    """One partition's rows of one flush, located in its segment."""

    run: str
    key: PartitionKey
    seq: int
    rows: int
    offset: int  # of the payload
    length: int
    crc: int
    start: int  # of its header: where the entry's bytes begin


@dataclass(frozen=True, slots=True)
class Damage:
    """Bytes ``[start, end)`` of a segment that are not a sound entry."""

    start: int
    end: int
    why: str
    tail: bool  # nothing sound follows: a torn or corrupt tail
    entry: Entry | None = None  # its header verified (only the payload fails its checksum)

    @classmethod
    def of(cls, entry: Entry, why: str) -> Damage:
        """A whole entry found unusable after its scan: the same bytes (so the same quarantine
        file) whether the live writer or a later recovery finds it."""
        return cls(entry.start, entry.offset + entry.length, why, False, entry)


def segment_name(run: str, segment: int) -> str:
    return f"{run}-{segment:06d}{WAL_SUFFIX}"


def run_of(path: Path) -> str | None:
    m = _NAME.match(path.name)
    return None if m is None else m["run"]


def segments(root: Path) -> list[Path]:
    """Every log segment of the store, oldest run first, a run's in the order written."""
    try:
        names = os.listdir(root / WAL_DIR)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = [(m["run"], int(m["segment"]), n) for n in names if (m := _NAME.match(n))]
    return [root / WAL_DIR / n for _, _, n in sorted(found)]


def remove_stale_new(root: Path) -> None:
    """Delete segments whose creation a crash cut short (empty, never renamed). Only old ones:
    a young one may be a live writer's, between creating and locking it."""
    try:
        names = os.listdir(root / WAL_DIR)
    except (FileNotFoundError, NotADirectoryError):
        return
    now = time.time()
    for name in names:
        path = root / WAL_DIR / name
        if not name.endswith(WAL_SUFFIX + NEW_SUFFIX):
            continue
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime >= _STALE_NEW_S:
                fd = try_lock(path)
                if fd is not None:
                    try:
                        path.unlink()
                    finally:
                        os.close(fd)


def encode(key: PartitionKey, seq: int, table: pa.Table) -> tuple[bytes, int, int, int]:
    """One entry's bytes, and its payload's offset in them, length and CRC (uncompressed IPC:
    the log is short-lived, CPU is what counts)."""
    exchange, channel, symbol, day = key
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    payload = sink.getvalue()
    meta = json.dumps(
        [exchange, channel.value, symbol, day.isoformat(), seq, table.num_rows],
        separators=(",", ":"),
    ).encode()
    crc = zlib.crc32(payload) & 0xFFFFFFFF
    head = _HEAD.pack(MAGIC, len(meta), payload.size, crc)
    head_crc = _HEAD_CRC.pack(zlib.crc32(meta, zlib.crc32(head)) & 0xFFFFFFFF)
    blob = b"".join((head, head_crc, meta, memoryview(payload)))
    return blob, HEADER_SIZE + len(meta), payload.size, crc


def _entry_at(data: mmap.mmap | bytes, at: int, size: int, run: str) -> Entry | str:
    """The entry starting at ``at``, or why there is none (a string)."""
    if at + HEADER_SIZE > size:
        return "torn header"
    magic, meta_len, length, crc = _HEAD.unpack_from(data, at)
    if magic != MAGIC:
        return "bad magic"
    if meta_len > MAX_META:  # a damaged length, not a write cut short
        return "bad header length"
    meta_end = at + HEADER_SIZE + meta_len
    if meta_end > size:
        return "torn header"
    (head_crc,) = _HEAD_CRC.unpack_from(data, at + _HEAD.size)
    meta = bytes(data[at + HEADER_SIZE : meta_end])
    if zlib.crc32(meta, zlib.crc32(data[at : at + _HEAD.size])) & 0xFFFFFFFF != head_crc:
        return "header checksum mismatch"
    if meta_end + length > size:
        return "torn entry"
    try:
        exchange, channel, symbol, day, seq, rows = json.loads(meta)
        key = (str(exchange), Channel(channel), str(symbol), date.fromisoformat(day))
    except (ValueError, TypeError):
        return "unreadable entry header"
    return Entry(run, key, int(seq), int(rows), meta_end, int(length), crc, at)


_SCANNED_MAX = 64
# readers' scans: path → (inode, sound end offset, entries up to it, and where the last entry's
# header starts and its bytes). A segment only grows, except that a failed append is cut back
# and the retry rewrites those bytes: a changed last header means the scan is stale.
_scanned: dict[Path, tuple[int, int, list[Entry], int, bytes]] = {}
_warned: set[tuple[Path, int]] = set()  # damaged ranges readers warned about


def entries_of(path: Path) -> list[Entry]:
    """The sound entries of a segment for readers, without payload checks (done when a payload
    is decoded). Scans only the bytes appended since this process last looked, so a reader of
    many days pays for each entry's header once; if the last entry seen then was since
    rewritten (a failed append cut back, then retried), the whole segment is scanned again.
    FileNotFoundError propagates."""
    with path.open("rb") as f:
        st = os.fstat(f.fileno())
        cached = _scanned.get(path)
        if cached is not None and (
            cached[0] != st.st_ino
            or cached[1] > st.st_size
            or (cached[4] and os.pread(f.fileno(), len(cached[4]), cached[3]) != cached[4])
        ):
            cached = None
        if cached is None:
            cached = (st.st_ino, 0, [], 0, b"")
        inode, start, known, mark_at, mark = cached
        if start == st.st_size:
            return known
        data = os.pread(f.fileno(), st.st_size - start, start)
    run = run_of(path) or ""
    found = list(known)
    at = 0
    while at < len(data):
        entry = _entry_at(data, at, len(data), run)
        if not isinstance(entry, Entry):
            resume = _resync(data, at + 1, len(data), run)
            if resume is None:
                break  # being appended, or a torn tail: the sound prefix counts
            # damaged mid-log (a sound entry follows): skip it, as recovery will, not silently
            # everything after it
            if (path, start + at) not in _warned:
                _warned.add((path, start + at))
                log.warning(
                    "log %s: damaged bytes %d-%d (%s) skipped; the next open of the store for "
                    "writing quarantines them",
                    path, start + at, start + resume, entry,
                )  # fmt: skip
            at = resume
            continue
        found.append(Entry(run, entry.key, entry.seq, entry.rows, start + entry.offset,
                           entry.length, entry.crc, start + at))  # fmt: skip
        mark_at, mark = start + at, bytes(data[at : entry.offset])  # its header and meta
        at = entry.offset + entry.length
    if len(_scanned) >= _SCANNED_MAX:
        _scanned.clear()
    _scanned[path] = (inode, start + at, found, mark_at, mark)
    return found


def scan(path: Path, *, verify: bool = True) -> tuple[list[Entry], list[Damage]]:
    """The sound entries of a segment and its damaged byte ranges. ``verify`` checks every
    payload's CRC (recovery); readers check only the payloads they decode (:func:`payload`).
    FileNotFoundError propagates (the segment was retired meanwhile)."""
    run = run_of(path) or ""
    entries: list[Entry] = []
    damage: list[Damage] = []
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return entries, damage
        with mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as data:
            at = 0
            while at < size:
                found = _entry_at(data, at, size, run)
                if isinstance(found, Entry) and verify:
                    view = data[found.offset : found.offset + found.length]
                    if zlib.crc32(view) & 0xFFFFFFFF != found.crc:
                        end = found.offset + found.length
                        damage.append(Damage(at, end, "payload checksum mismatch", False, found))
                        at = found.offset + found.length
                        continue
                if isinstance(found, Entry):
                    entries.append(found)
                    at = found.offset + found.length
                    continue
                resume = _resync(data, at + 1, size, run)
                damage.append(
                    Damage(at, resume if resume is not None else size, found, resume is None)
                )
                if resume is None:
                    break
                at = resume
    if damage and not damage[-1].tail and damage[-1].end == size:
        last = damage[-1]
        damage[-1] = Damage(last.start, size, last.why, True, last.entry)
    return entries, damage


def _resync(data: mmap.mmap | bytes, start: int, size: int, run: str) -> int | None:
    """The offset of the next entry whose header verifies, or None."""
    at = start
    while True:
        at = data.find(MAGIC, at, size)
        if at < 0:
            return None
        if isinstance(_entry_at(data, at, size, run), Entry):
            return at
        at += 1


def conformed(table: pa.Table, channel: Channel) -> pa.Table | None:
    """An entry's rows in its channel's schema: as written, or cast (a log of an older
    version, e.g. a plain string where a dictionary is now); None if no cast fits, an entry
    every reader skips and the next writer cuts out as damage."""
    schema = SCHEMAS[channel]
    if table.schema != schema:
        with contextlib.suppress(pa.ArrowException, ValueError):
            table = table.cast(schema)
    return table if table.schema == schema else None


def payload(path: Path, entry: Entry) -> pa.Table | None:
    """The entry's rows, or None if its payload no longer matches its CRC."""
    with path.open("rb") as f:
        data = os.pread(f.fileno(), entry.length, entry.offset)
    if len(data) != entry.length or zlib.crc32(data) & 0xFFFFFFFF != entry.crc:
        return None
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def read_payloads(path: Path, entries: Sequence[Entry]) -> Iterator[tuple[Entry, pa.Table | None]]:
    """:func:`payload` of several entries through one open file."""
    with path.open("rb") as f:
        for entry in entries:
            data = os.pread(f.fileno(), entry.length, entry.offset)
            if len(data) != entry.length or zlib.crc32(data) & 0xFFFFFFFF != entry.crc:
                yield entry, None
            else:
                yield entry, pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def keys_named_in(data: bytes, known: Callable[[PartitionKey], bool]) -> list[PartitionKey]:
    """The partitions that entries inside damaged bytes name, read without their checksums,
    lengths or magic (any of them may be what is damaged): from the meta's JSON, else (it does
    not parse, or names a partition ``known`` rejects: a flipped letter of a symbol) from the
    rows of a payload that still decodes (exchange, symbol and day of its first row, the
    channel its columns are). A best guess at whose rows the bytes held, never a verified
    fact; ``known`` says which partitions the store has. Looked for where the damage starts (a
    cut starts at a header) and at every magic."""
    found: dict[PartitionKey, None] = {}
    starts = [0]
    at = data.find(MAGIC, 1)
    while at >= 0:
        starts.append(at)
        at = data.find(MAGIC, at + 1)
    for start in starts:
        for read in (_key_of_meta, _key_of_payload):
            key = read(data, start)
            if key is not None and known(key):
                found[key] = None
                break
    return list(found)


def _key_of_meta(data: bytes, start: int) -> PartitionKey | None:
    text = data[start + HEADER_SIZE : start + HEADER_SIZE + MAX_META].decode("latin-1")
    try:
        exchange, channel, symbol, day, _, _ = _META.raw_decode(text)[0]
        if isinstance(exchange, str) and isinstance(symbol, str):
            return exchange, Channel(channel), symbol, date.fromisoformat(day)
    except (ValueError, TypeError):
        pass
    return None


def _key_of_payload(data: bytes, start: int) -> PartitionKey | None:
    if start + _HEAD.size > len(data):
        return None
    meta_len = _HEAD.unpack_from(data, start)[1]
    try:  # an IPC stream ends at its end-of-stream marker: what follows is not read
        table = pa.ipc.open_stream(pa.py_buffer(data[start + HEADER_SIZE + meta_len :])).read_all()
        table.validate(full=True)
        channel = next(c for c, schema in SCHEMAS.items() if schema.names == table.schema.names)
        exchange, symbol = (table.column(n)[0].as_py() for n in ("exchange", "symbol"))
        stamp = table.column("ts").cast(pa.int64())[0].as_py()
        return str(exchange), channel, str(symbol), day_of_ns(stamp)
    except (pa.ArrowException, StopIteration, IndexError, KeyError, ValueError, TypeError):
        return None


_META = json.JSONDecoder()


def damaged_bytes(path: Path, damage: Damage) -> bytes:
    with path.open("rb") as f:
        return os.pread(f.fileno(), damage.end - damage.start, damage.start)


def try_lock(path: Path) -> int | None:
    """An fd holding the exclusive lock of a segment nobody holds (its run is dead), or None
    (a live writer holds it, or it was retired meanwhile)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # the path may have been retired (and recovered) between open and lock
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            raise FileNotFoundError(path)
    except OSError:
        os.close(fd)
        return None
    return fd


TORN_SUFFIX = ".torn"


def torn(damage: Damage) -> bool:
    """The log ends inside an entry: a flush a crash cut short, never acknowledged (its
    records were not stored, and the restart's gap event says so), not damaged data."""
    return damage.tail and damage.why.startswith("torn")


def quarantine_bytes(root: Path, path: Path, damage: Damage) -> Path:
    """Copy a damaged byte range of a segment to ``ROOT/.quarantine/.wal/`` with one warning
    (the integrity report of ``hundi store check`` counts it); where it went. The copy is
    written under a temporary name, synced and renamed, so a ``.bad`` file is always whole;
    OSError when it could not be (a full disk): the caller then keeps the segment, retried
    later, instead of dropping bytes it said were kept."""
    what = "torn or corrupt tail" if damage.tail else "corrupt entry"
    suffix = TORN_SUFFIX if torn(damage) else ".bad"
    target = root / ".quarantine" / WAL_DIR / f"{path.name}.{damage.start}-{damage.end}{suffix}"
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        data = damaged_bytes(path, damage)
        target.parent.mkdir(parents=True, exist_ok=True)
        made = _copy_made(target, data)
        if made is not None:  # copied before a crash kept the log: once
            return made
        if target.exists():
            target = target.with_name(f"{target.name}.{time.time_ns()}")
        with temporary.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.rename(temporary, target)
        fsync_dir(target.parent)
    except OSError as e:
        with contextlib.suppress(OSError):
            temporary.unlink()
        log.warning(
            "log %s: %s at bytes %d-%d (%s) kept in the log; could not copy it to quarantine: "
            "%s",
            path, what, damage.start, damage.end, damage.why, e.strerror or e,
        )  # fmt: skip
        raise
    log.warning(
        "log %s: %s at bytes %d-%d (%s) truncated; its bytes are in %s",
        path, what, damage.start, damage.end, damage.why, target,
    )  # fmt: skip
    return target


def _copy_made(target: Path, data: bytes) -> Path | None:
    """A quarantine copy of these very bytes already made (``target`` or, if the bytes had
    changed since, one of its timestamped siblings), synced again, since its writer may have
    died before syncing it into its folder; None if there is none."""
    for made in sorted(target.parent.glob(f"{glob.escape(target.name)}*")):
        if made.name.endswith(REPORTED_SUFFIX):
            continue
        try:  # a person may delete a reviewed copy meanwhile
            if made.stat().st_size != len(data) or made.read_bytes() != data:
                continue
            fd = os.open(made, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(made.parent)
        return made
    return None


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path: Path, fsync: bool) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    if fsync:
        with contextlib.suppress(OSError):
            fsync_dir(path.parent)
