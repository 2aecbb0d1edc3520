"""Kraken's live L2 book: levels truncated to the subscribed depth and the CRC32 checksum.

Kraken numbers no book message, so there is no sequence to check and no continuity rule for the
stored rows (:data:`BOOK_RULE` is None: only snapshots restart a stored book, ``update_id`` is
-1). Integrity is the checksum instead: every update carries the CRC32 of the top 10 levels
of each side after the update, built from the level strings (documented for v1 and v2):

* asks best (lowest) first, then bids best (highest) first, 10 of each at most;
* per level, price then quantity, each with ``.`` removed and leading zeros stripped;
* everything concatenated, CRC32 as an unsigned 32-bit integer.

Kraken keeps only ``depth`` levels a side and never sends a delete for a level pushed out of the
subscribed depth by an insert, so :meth:`LevelSide.truncate` drops it locally after every
message (the checksum would differ otherwise), and republishes (v1 ``"r"``) bring levels back.

A matching checksum is the whole rule: a crossed book it matches is Kraken's own (counted in
``crossed_verified``, not resynced). A level's checksum text is built only when it is set
within the top 10 or rises into it (:class:`LevelSide`).
"""

from __future__ import annotations

import bisect
import math
import zlib
from collections.abc import Callable
from typing import Final

from hundi.exchanges.base import BookStatus

#: No sequence ids on Kraken's book: stored rows restart only at snapshots.
BOOK_RULE: Final = None
CHECKSUM_LEVELS: Final = 10
DEPTHS: Final = (10, 25, 100, 500, 1000)


def checksum_text(price: str, qty: str) -> str:
    """One level's part of the checksum string: ``"0.05000", "0.00000304"`` → ``"5000304"``."""
    return price.replace(".", "").lstrip("0") + qty.replace(".", "").lstrip("0")


#: A level's wire texts (price, quantity) → its part of the checksum string.
LevelText = Callable[[str, str], str]


class LevelSide:
    """One side, best level first: ``keys`` are ``sign * price`` sorted ascending (bids are
    negated), with each level's size and checksum text. The text of a level set within the top
    10 is built at once (it is hashed next); a deeper level keeps its wire texts and gets its
    text only if it rises into the top 10 (:meth:`top_text`): at depth 500/1000 most levels
    are never hashed, and their text never built."""

    __slots__ = ("keys", "sign", "sizes", "text_of", "texts", "wire")

    def __init__(self, sign: int, text_of: LevelText = checksum_text) -> None:
        self.sign = sign
        self.text_of = text_of
        self.keys: list[float] = []
        self.sizes: dict[float, float] = {}
        self.texts: dict[float, str | None] = {}  # key → checksum text, None: not built yet
        self.wire: dict[float, tuple[str, str]] = {}  # key → wire texts, where text is None

    def clear(self) -> None:
        self.keys = []
        self.sizes = {}
        self.texts = {}
        self.wire = {}

    def set(self, price: float, size: float, price_text: str, size_text: str) -> None:
        """Set a level (``size > 0``) or delete it (``size == 0``)."""
        key = self.sign * price
        sizes = self.sizes
        if size > 0.0:
            keys = self.keys
            if key not in sizes:
                bisect.insort(keys, key)
            sizes[key] = size
            if len(keys) <= CHECKSUM_LEVELS or key <= keys[CHECKSUM_LEVELS - 1]:
                self.texts[key] = self.text_of(price_text, size_text)
            else:
                self.texts[key] = None
                self.wire[key] = (price_text, size_text)
        elif key in sizes:
            del sizes[key]
            del self.texts[key]
            self.wire.pop(key, None)
            keys = self.keys
            del keys[bisect.bisect_left(keys, key)]

    def truncate(self, depth: int) -> list[float]:
        """Drop the levels beyond ``depth``; returns their prices (Kraken sends no delete)."""
        keys = self.keys
        if len(keys) <= depth:
            return []
        dropped = keys[depth:]
        del keys[depth:]
        sizes, texts, wire = self.sizes, self.texts, self.wire
        for key in dropped:
            del sizes[key]
            del texts[key]
            wire.pop(key, None)
        return [self.sign * key for key in dropped]

    def best(self) -> float:
        return self.sign * self.keys[0] if self.keys else math.nan

    def levels(self) -> list[tuple[float, float]]:
        """``(price, size)`` best first."""
        return [(self.sign * key, self.sizes[key]) for key in self.keys]

    def top_text(self) -> str:
        texts = self.texts
        top = self.keys[:CHECKSUM_LEVELS]
        parts = [texts[key] for key in top]
        if None in parts:  # a deeper level rose into the top 10: its text is built now
            wire, text_of = self.wire, self.text_of
            for i, key in enumerate(top):
                if parts[i] is None:
                    parts[i] = texts[key] = text_of(*wire.pop(key))
        return "".join(parts)  # type: ignore[arg-type]  # every None was filled above


class KrakenBook:
    """One pair's book and its sync state."""

    __slots__ = (
        "asks",
        "bids",
        "checksums",
        "crossed_verified",
        "depth",
        "mismatches",
        "native",
        "precision",
        "symbol",
        "synced",
        "waiting",
    )

    def __init__(
        self, symbol: str, native: str, depth: int, text_of: LevelText = checksum_text
    ) -> None:
        self.symbol = symbol
        self.native = native
        self.depth = depth
        self.bids = LevelSide(-1, text_of)
        self.asks = LevelSide(1, text_of)
        self.synced = False
        self.waiting = "waiting for a snapshot"
        self.checksums = 0  # verified equal
        self.mismatches = 0
        self.crossed_verified = 0  # checksums that matched a crossed book (Kraken's own)
        self.precision: tuple[int, int] | None = None  # v2: what ``text_of`` formats to

    def format_levels(self, text_of: LevelText) -> None:
        """How a level's wire texts become its checksum text (v2: the pair's precisions); set
        on an empty book (at a snapshot), so no text built the old way remains."""
        for side in (self.bids, self.asks):
            side.text_of = text_of

    def reset(self, waiting: str) -> None:
        self.bids.clear()
        self.asks.clear()
        self.synced = False
        self.waiting = waiting

    def checksum(self) -> int:
        """The CRC32 of the top levels, as Kraken computes it (module docstring)."""
        return zlib.crc32((self.asks.top_text() + self.bids.top_text()).encode())

    def crossed(self) -> bool:
        bid, ask = self.bids.best(), self.asks.best()
        return bid >= ask  # False when either side is empty (nan)

    def status(self) -> BookStatus:
        return BookStatus(
            symbol=self.symbol,
            synced=self.synced,
            bids=len(self.bids.keys),
            asks=len(self.asks.keys),
            best_bid=self.bids.best(),
            best_ask=self.asks.best(),
            last_update_id=-1,
            waiting="" if self.synced else self.waiting,
        )
