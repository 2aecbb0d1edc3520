"""Continuity of per-symbol trade ids, for venues whose trade ids are contiguous.

Binance aggregate-trade ids (and trade ids) increase by exactly one per symbol, so a skipped id
is data we never received. The tracker turns that into a ``gap`` event (stored, so the hole is
explained), drops exact duplicates (a resent frame, an overlap during a reconnect), and still
stores an id that arrives late into a recorded hole (a reordered frame). Memory is bounded:
only the most recent ``max_holes`` holes are remembered.
"""

from __future__ import annotations

import enum
from collections import deque


class IdVerdict(enum.IntEnum):
    NEXT = 0  # the expected id (or the first one seen)
    AHEAD = 1  # ids were skipped: store it and record a gap
    LATE = 2  # fills a recorded hole: store it
    DUPLICATE = 3  # already seen: do not store


class IdSequence:
    """Tracks one stream's last id and its recent holes."""

    __slots__ = ("first", "holes", "last")

    def __init__(self, max_holes: int = 64) -> None:
        self.first = -1  # lowest id seen
        self.last = -1  # highest id seen
        self.holes: deque[list[int]] = deque(maxlen=max_holes)  # [first, last] missing, inclusive

    def check(self, first: int, last: int) -> IdVerdict:
        """Classify a message carrying ids ``first..last`` and remember it."""
        expected = self.last + 1
        if first == expected or self.last < 0:
            if self.first < 0:
                self.first = first
            self.last = last
            return IdVerdict.NEXT
        if first > expected:
            self.holes.append([expected, first - 1])
            self.last = last
            return IdVerdict.AHEAD
        if last > self.last:  # overlaps the tail: the new part continues the sequence
            self.last = last
            return IdVerdict.NEXT
        if last < self.first:  # from before the first id we saw: new, and it widens the window
            if last + 1 < self.first:
                self.holes.appendleft([last + 1, self.first - 1])
            self.first = first
            return IdVerdict.LATE
        return IdVerdict.LATE if self._fill(first, last) else IdVerdict.DUPLICATE

    def expected(self) -> int:
        return self.last + 1

    def _fill(self, first: int, last: int) -> bool:
        for i, hole in enumerate(self.holes):
            lo, hi = hole
            if first >= lo and last <= hi:
                if first == lo and last == hi:
                    del self.holes[i]
                elif first == lo:
                    hole[0] = last + 1
                elif last == hi:
                    hole[1] = first - 1
                else:
                    hole[1] = first - 1
                    self.holes.insert(i + 1, [last + 1, hi])
                return True
        return False
