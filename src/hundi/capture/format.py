"""Our raw-capture file format (``*.hcap.gz``).

A capture file is a sequence of concatenated gzip members (RFC 1952 allows that; ``zcat``
reads it). Each member decompresses to exactly one msgpack object, a tagged union:

* ``{"type": "header", ...}`` — :class:`CaptureHeader`, the first member of every file: format
  version, writer run id, file sequence number and the venue configurations of the run, so a
  replay knows market, symbols and channels without guessing.
* ``{"type": "block", "events": [...]}`` — :class:`CaptureBlock`, the events of one flush, each
  a :class:`~hundi.capture.events.CaptureEvent` as a msgpack array
  ``[kind, ts_ns, conn, url, data(bin), status]``.

Why this shape: one member per flush means every file is independently decompressible, a
``kill -9`` loses at most the member being written (readers stop at a truncated tail), and the
writer compresses a whole block at once (zlib releases the GIL) instead of per event.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from hundi.capture.events import CaptureEvent

FORMAT: Final = "hundi-capture"
VERSION: Final = 1
SUFFIX: Final = ".hcap.gz"
GZIP_MAGIC: Final = b"\x1f\x8b"


class VenueHeader(msgspec.Struct, frozen=True):
    """A :class:`~hundi.exchanges.base.VenueConfig` as written into capture headers."""

    exchange: str
    market: str
    symbols: list[str]
    channels: list[str]
    endpoint: str | None = None
    rest_endpoint: str | None = None
    options: dict[str, str] = msgspec.field(default_factory=dict)


class CaptureHeader(msgspec.Struct, frozen=True, tag="header", tag_field="type"):
    run: str
    sequence: int  # file number within the run, from 0
    created_ns: int
    venues: list[VenueHeader] = msgspec.field(default_factory=list)
    format: str = FORMAT
    version: int = VERSION


class CaptureBlock(msgspec.Struct, frozen=True, tag="block", tag_field="type"):
    events: list[CaptureEvent]


class _BlockOut(msgspec.Struct, tag="block", tag_field="type"):
    """Encoding side of :class:`CaptureBlock`: events as plain tuples, no struct per event."""

    events: list[tuple[Any, ...]]


Member = CaptureHeader | CaptureBlock
encoder: Final = msgspec.msgpack.Encoder()
decoder: Final = msgspec.msgpack.Decoder(Member)


def encode_block(events: list[tuple[Any, ...]]) -> bytes:
    return encoder.encode(_BlockOut(events))
