"""Captured traffic to play back: WebSocket frames verbatim, REST bodies by path and symbol.

Reads the recordings line format (:mod:`hundi.capture.recordings`) and, when that module exists,
our own capture files through ``hundi.capture.reader.read_capture``. :class:`ReplayPlayer` sends
the frames to each subscribed connection, paced like the capture or flat out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec

from hundi.capture.events import VENUE_MARK, CaptureEvent, CaptureKind, is_answer, split_venue
from hundi.capture.reader import read_capture
from hundi.simulator.binance.fanout import ClientConnection, FanOut
from hundi.simulator.wire import ws_frame

BATCH_FRAMES = 500  # frames between two flushes
UNNAMED_STREAM = "(no stream)"  # replayed frames that are not combined-stream envelopes


class _Envelope(msgspec.Struct):
    stream: str = ""
    data: msgspec.Raw = msgspec.Raw(b"")


class _Ids(msgspec.Struct):
    e: str = ""
    a: int | str | None = None  # aggTrade id; a price string in bookTicker/depth
    t: int | None = None
    U: int | None = None
    u: int | None = None


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_ids = msgspec.json.Decoder(_Ids).decode


@dataclass(frozen=True, slots=True)
class ReplayFrame:
    ts_ns: int
    data: bytes  # exactly as captured
    stream: str  # the combined-stream name, "" when the frame is not an envelope
    payload: bytes  # the envelope's ``data`` (what a raw ``/ws/`` client gets)
    first: int  # ids for the ground truth, -1 when the frame carries none
    last: int


def _ids(payload: bytes) -> tuple[int, int]:
    try:
        ids = _decode_ids(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return -1, -1
    if ids.e == "aggTrade" and isinstance(ids.a, int):
        return ids.a, ids.a
    if ids.e == "trade" and ids.t is not None:
        return ids.t, ids.t
    if ids.e == "depthUpdate" and ids.U is not None and ids.u is not None:
        return ids.U, ids.u
    return -1, -1


def to_frame(event: CaptureEvent) -> ReplayFrame:
    data = event.data
    stream, payload = "", data
    try:
        envelope = _decode_envelope(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        envelope = None
    if envelope is not None and envelope.stream and bytes(envelope.data):
        stream, payload = envelope.stream, bytes(envelope.data)
    first, last = _ids(payload)
    return ReplayFrame(event.ts, data, stream, payload, first, last)


@dataclass(slots=True)
class ReplayData:
    frames: list[ReplayFrame] = field(default_factory=list)
    rest: dict[tuple[str, str], list[tuple[int, bytes]]] = field(default_factory=dict)
    served: dict[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def load(cls, paths: Iterable[Path], venue: str | None = None) -> ReplayData:
        """The frames and REST answers of a capture; of one capturing several venues, only
        ``venue``'s (``binance/MARKET``): venues share stream names and REST paths."""
        data = cls()
        for event in read_capture([Path(p) for p in paths]):
            if VENUE_MARK in event.conn and split_venue(event.conn)[0] not in (None, venue):
                continue
            if event.kind is CaptureKind.RECV:
                data.frames.append(to_frame(event))
            elif event.kind is CaptureKind.REST and is_answer(event.status):
                data.rest.setdefault(_rest_key(event.url), []).append((event.status, event.data))
        return data

    def rest_answer(self, path: str, symbol: str) -> tuple[int, bytes] | None:
        """The recorded answer for this request: the n-th call gets the n-th recording."""
        key = (path, symbol.upper())
        answers = self.rest.get(key)
        if not answers:
            return None
        n = self.served.get(key, 0)
        self.served[key] = n + 1
        return answers[min(n, len(answers) - 1)]

    def symbols(self) -> list[str]:
        found: dict[str, None] = {}
        for frame in self.frames:
            if frame.stream:
                found[frame.stream.partition("@")[0].upper()] = None
        return list(found)

    def summary(self) -> dict[str, Any]:
        return {
            "frames": len(self.frames),
            "rest": {f"{p}?symbol={s}" if s else p: len(v) for (p, s), v in self.rest.items()},
        }


def _rest_key(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    symbol = parse_qs(parts.query).get("symbol", [""])[0]
    return parts.path, symbol.upper()


class ReplayPlayer:
    """Plays :class:`ReplayData` to each connection from its first subscription on."""

    def __init__(self, data: ReplayData, speed: str, fanout: FanOut) -> None:
        self.data = data
        self.original_speed = speed == "original"
        self.fanout = fanout

    def start(self, conn: ClientConnection) -> None:
        if conn.streams and conn.replay_task is None:
            conn.replay_task = asyncio.get_running_loop().create_task(self.play(conn))

    async def play(self, conn: ClientConnection) -> None:
        """Send the captured frames to one connection, paced like the capture or flat out."""
        frames = self.data.frames
        if not frames:
            return
        flush = self.fanout.flush
        original = self.original_speed
        t0 = frames[0].ts_ns
        start = time.monotonic()
        batch = 0
        for frame in frames:
            if conn.closing:
                return
            if original:
                wait = (frame.ts_ns - t0) / 1e9 - (time.monotonic() - start)
                if wait > 0:
                    flush(conn)
                    await asyncio.sleep(wait)
            _push(conn, frame)
            batch += 1
            if batch >= BATCH_FRAMES:
                batch = 0
                flush(conn)
                while not conn.closing and conn.unsent() > conn.high_water:
                    await asyncio.sleep(0.001)
                    flush(conn)
                await asyncio.sleep(0)
        flush(conn)
        self.fanout.log.record("replay-done", conn=conn.conn_id, detail=f"{len(frames)} frames")


def _push(conn: ClientConnection, frame: ReplayFrame) -> None:
    if frame.stream:
        if frame.stream not in conn.streams:
            return
        data = frame.data if conn.combined else frame.payload
        conn.push(ws_frame(data), (frame.stream, frame.first, frame.last))
    else:
        conn.push(ws_frame(frame.data), (UNNAMED_STREAM, -1, -1))
