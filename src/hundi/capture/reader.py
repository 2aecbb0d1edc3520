"""Read raw captures, ours (:mod:`hundi.capture.format`) or the recordings line format.

The format is detected per file (gzip magic → ours), so a replay can be given a mix of both.
Files are merged in receive-time order.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import mmap
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from hundi.capture.events import CaptureEvent
from hundi.capture.format import FORMAT, GZIP_MAGIC, CaptureBlock, CaptureHeader, decoder
from hundi.capture.recordings import is_recording, read_recording

_CHUNK = 1 << 20

log = logging.getLogger("hundi.capture")


class CaptureFormatError(ValueError):
    """A capture file that cannot be read (message names the file)."""


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories → their capture and recording files, sorted by name."""
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file() and _looks_readable(p)))
        elif path.is_file():
            files.append(path)
        else:
            raise CaptureFormatError(f"{path}: no such capture file or directory")
    return files


def _looks_readable(path: Path) -> bool:
    return is_ours(path) or is_recording(path)


def is_ours(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == GZIP_MAGIC


def _members(f: BinaryIO, path: Path) -> Iterator[bytes]:
    """Decompressed gzip members; a truncated last member (crash mid-write) ends the stream,
    with one warning: what it held is not replayed (a replay of such a file said "ok" without
    a word, found by review). Damage followed by a whole block is no crash's tail: an error."""
    inflater = zlib.decompressobj(31)
    pieces: list[bytes] = []
    pending = b""
    fed = 0  # compressed bytes given to the member being read
    while True:
        at = f.tell() - len(pending)  # file offset of the bytes decompressed next
        chunk = pending or f.read(_CHUNK)
        pending = b""
        if not chunk:
            if fed:  # an unfinished member: the truncated tail of a crash
                _torn(path, fed, "ends inside a block")
            return
        fed += len(chunk)
        try:
            pieces.append(inflater.decompress(chunk))
        except zlib.error as e:
            if not _whole_block_after(f, at + 1):  # a torn final write
                size = f.seek(0, 2)
                _torn(path, size - at + fed - len(chunk), "ends in unreadable bytes")
                return
            # found by review: damage in a file's last MiB was taken for a torn tail, and the
            # whole blocks after it were dropped
            raise CaptureFormatError(
                f"{path}: corrupt compressed data ({e}) before whole blocks"
            ) from None
        if inflater.eof:
            yield b"".join(pieces)
            pieces = []
            pending = inflater.unused_data
            fed = 0
            inflater = zlib.decompressobj(31)


_HEADER = GZIP_MAGIC + b"\x08"  # a gzip member's first bytes (deflate)
_PIECE = 1 << 16


def _whole_block_after(f: BinaryIO, start: int) -> bool:
    """Whether a whole capture block (a gzip member that decompresses to its end, CRC
    checked, and decodes as a block) starts at or after ``start`` in the file. Every place
    that looks like a member's header is tried, each fed in 64 KiB pieces, so a false one
    costs little (compressed bytes hold such a pattern every ~16 MiB); the file is mapped,
    not read."""
    try:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (ValueError, OSError):  # empty, or not a regular file
        return False
    with data:
        at = data.find(_HEADER, start)
        while at >= 0:
            inflater = zlib.decompressobj(31)
            out: list[bytes] = []
            position = at
            with contextlib.suppress(zlib.error):
                while not inflater.eof and position < len(data):
                    out.append(inflater.decompress(data[position : position + _PIECE]))
                    position += _PIECE
            if inflater.eof:
                with contextlib.suppress(msgspec.DecodeError):
                    if isinstance(decoder.decode(b"".join(out)), CaptureBlock | CaptureHeader):
                        return True
            at = data.find(_HEADER, at + 1)
    return False


def _torn(path: Path, size: int, how: str) -> None:
    log.warning(
        "%s %s (a crash cut its last write): the last %d bytes are not replayed", path, how, size
    )


def read_members(path: Path) -> Iterator[CaptureHeader | CaptureBlock]:
    with path.open("rb") as f:
        for payload in _members(f, path):
            try:
                yield decoder.decode(payload)
            except msgspec.DecodeError as e:
                raise CaptureFormatError(f"{path}: not a hundi capture block ({e})") from None


def read_header(path: Path) -> CaptureHeader:
    for member in read_members(path):
        if isinstance(member, CaptureHeader) and member.format == FORMAT:
            return member
        break
    raise CaptureFormatError(f"{path}: no hundi capture header")


def read_capture_file(path: Path) -> Iterator[CaptureEvent]:
    """Events of one of our files, in write order."""
    members = read_members(path)
    first = next(members, None)
    if not isinstance(first, CaptureHeader):
        raise CaptureFormatError(f"{path}: no hundi capture header")
    for member in members:
        if isinstance(member, CaptureBlock):
            yield from member.events


def read_file(path: Path) -> Iterator[CaptureEvent]:
    """One file of either format."""
    return read_capture_file(path) if is_ours(path) else read_recording(path)


def read_capture(paths: Iterable[str | Path]) -> Iterator[CaptureEvent]:
    """Events of all files (or directories of them), merged in receive-time order."""
    files = expand(paths)
    return heapq.merge(*(read_file(p) for p in files), key=lambda e: e.ts)


def headers(paths: Iterable[str | Path]) -> list[CaptureHeader]:
    """Headers of our files among ``paths`` (recordings have none)."""
    return [read_header(p) for p in expand(paths) if is_ours(p)]
