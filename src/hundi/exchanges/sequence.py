"""Continuity of per-symbol trade ids, for venues whose trade ids are contiguous.

Binance aggregate-trade ids (and trade ids) increase by exactly one per symbol, so a skipped id
is data we never received. The tracker turns that into a ``gap`` event (stored, so the hole is
explained), drops exact duplicates (a resent frame, an overlap during a reconnect), and still
stores an id that arrives late into a recorded hole (a reordered frame).

Memory is bounded, explicitly: at most ``max_holes`` holes are remembered. When one more would
be needed, the oldest (lowest) hole is *declared final*: its ids stay lost (its ``gap`` event
was stored when it opened), and the tracked window then starts just above it, so every id up
to its end is settled. A message at or below that point can no longer be told apart (a resend
of a stored id, or an id of a hole declared final): it is classified ``EXPIRED``, never stored
and never called a duplicate. Nothing is forgotten any other way.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from operator import itemgetter

_LO = itemgetter(0)


class IdVerdict(enum.IntEnum):
    NEXT = 0  # the expected id (or the first one seen)
    AHEAD = 1  # ids were skipped: store it and record a gap
    LATE = 2  # fills a recorded hole (or precedes the first id seen): store it
    DUPLICATE = 3  # already seen: do not store
    EXPIRED = 4  # at or below the settled point (see the module docstring): do not store


class IdSequence:
    """Tracks one stream's id window ``first..last`` and the holes in it.

    Every id in ``first..last`` is either seen or inside one of ``holes`` (sorted, disjoint,
    ``[lo, hi]`` inclusive). Ids below ``first`` are new while no hole was declared final
    (``settled`` False: the stream started later than them), settled afterwards.
    """

    __slots__ = ("first", "holes", "last", "max_holes", "settled")

    def __init__(self, max_holes: int = 1024) -> None:
        if max_holes < 1:
            raise ValueError("max_holes must be at least 1")
        self.max_holes = max_holes
        self.first = -1  # lowest tracked id
        self.last = -1  # highest id seen
        self.holes: list[list[int]] = []  # [lo, hi] missing, inclusive, sorted
        self.settled = False  # a hole was declared final: ids below ``first`` are settled

    def check(self, first: int, last: int) -> IdVerdict:
        """Classify a message carrying ids ``first..last`` and remember it.

        A message is stored whole, so it is new (``NEXT``/``AHEAD``/``LATE``) as soon as one of
        its ids is known to be new; ``DUPLICATE`` when all were seen; ``EXPIRED`` when none is
        known new and some are settled.
        """
        if self.last < 0:
            self.first = first
            self.last = last
            return IdVerdict.NEXT
        expected = self.last + 1
        if first >= expected:
            self.last = last
            if first == expected:
                return IdVerdict.NEXT
            self.holes.append([expected, first - 1])
            self._bound()
            return IdVerdict.AHEAD
        verdict = IdVerdict.DUPLICATE
        if last > self.last:  # overlaps the tail: the new part continues the sequence
            verdict = IdVerdict.NEXT
        lo, hi = max(first, self.first), min(last, self.last)
        if lo <= hi and self._fill(lo, hi):
            verdict = IdVerdict.LATE
        if first < self.first:
            if self.settled:
                if verdict is IdVerdict.DUPLICATE:
                    verdict = IdVerdict.EXPIRED
            else:  # before the first id we saw: new, and it widens the window
                top = min(last, self.first - 1)
                if top + 1 < self.first:
                    self.holes.insert(0, [top + 1, self.first - 1])
                self.first = first
                verdict = IdVerdict.LATE
        if last > self.last:
            self.last = last
        self._bound()
        return verdict

    def expected(self) -> int:
        return self.last + 1

    def _fill(self, first: int, last: int) -> bool:
        """Remove ``first..last`` from the holes; True if any of it was missing."""
        holes = self.holes
        end = bisect_right(holes, last, key=_LO)  # holes[:end] start at or before ``last``
        start = end
        while start > 0 and holes[start - 1][1] >= first:
            start -= 1
        if start == end:
            return False
        kept = []
        if holes[start][0] < first:
            kept.append([holes[start][0], first - 1])
        if holes[end - 1][1] > last:
            kept.append([last + 1, holes[end - 1][1]])
        holes[start:end] = kept
        return True

    def _bound(self) -> None:
        """Declare the oldest holes final while more than ``max_holes`` are remembered."""
        holes = self.holes
        while len(holes) > self.max_holes:
            _, hi = holes.pop(0)
            self.first = hi + 1
            self.settled = True
