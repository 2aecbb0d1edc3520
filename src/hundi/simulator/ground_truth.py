"""What the simulator actually sent, per connection and stream, for tests to compare against.

Ids are kept as ranges in send order (a duplicate or a reordered frame starts a new range), so a
test can reconstruct exactly which ids went out and in which order, in bounded memory.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any


class IdRanges:
    """Ids (aggTrade ``a``, trade ``t``, depth ``U``..``u``) sent on one connection's stream."""

    __slots__ = ("cap", "count", "first", "frames", "last", "ranges", "truncated")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.frames = 0
        self.count = 0  # ids sent, duplicates included
        self.first = -1
        self.last = -1
        self.ranges: list[list[int]] = []
        self.truncated = False

    def add(self, first: int, last: int) -> None:
        self.frames += 1
        if first < 0:  # a frame without ids (bookTicker, kline, ticker)
            return
        self.count += last - first + 1
        if self.first < 0:
            self.first = first
        self.last = last
        ranges = self.ranges
        if ranges and ranges[-1][1] + 1 == first:
            ranges[-1][1] = last
        elif len(ranges) < self.cap:
            ranges.append([first, last])
        else:
            self.truncated = True

    def to_json(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "first": self.first,
            "last": self.last,
            "count": self.count,
            "ranges": [list(r) for r in self.ranges],
            "truncated": self.truncated,
        }


class ConnectionRecord:
    __slots__ = (
        "bytes_sent",
        "close_reason",
        "closed_ns",
        "conn_id",
        "frames_sent",
        "opened_ns",
        "path",
        "range_cap",
        "remote",
        "streams",
        "subscriptions",
    )

    def __init__(self, conn_id: int, path: str, remote: str, range_cap: int) -> None:
        self.conn_id = conn_id
        self.path = path
        self.remote = remote
        self.opened_ns = time.time_ns()
        self.closed_ns = 0
        self.close_reason = ""
        self.frames_sent = 0
        self.bytes_sent = 0
        self.range_cap = range_cap
        self.streams: dict[str, IdRanges] = {}
        self.subscriptions: list[str] = []

    def sent(self, stream: str, first: int, last: int) -> None:
        ranges = self.streams.get(stream)
        if ranges is None:
            ranges = self.streams[stream] = IdRanges(self.range_cap)
        ranges.add(first, last)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.conn_id,
            "path": self.path,
            "remote": self.remote,
            "opened_ns": self.opened_ns,
            "closed_ns": self.closed_ns or None,
            "close_reason": self.close_reason or None,
            "subscriptions": list(self.subscriptions),
            "frames_sent": self.frames_sent,
            "bytes_sent": self.bytes_sent,
            "streams": {name: r.to_json() for name, r in self.streams.items()},
        }


class FaultLog:
    """Injected faults, newest last; bounded (the count of dropped entries is kept)."""

    def __init__(self, cap: int = 10_000) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=cap)
        self.total = 0

    def record(
        self,
        kind: str,
        *,
        conn: int | None = None,
        symbol: str | None = None,
        stream: str | None = None,
        first_id: int | None = None,
        last_id: int | None = None,
        detail: str = "",
    ) -> None:
        self.total += 1
        self.entries.append(
            {
                "kind": kind,
                "at_ns": time.time_ns(),
                "conn": conn,
                "symbol": symbol,
                "stream": stream,
                "first_id": first_id,
                "last_id": last_id,
                "detail": detail,
            }
        )

    def to_json(self) -> list[dict[str, Any]]:
        return list(self.entries)
