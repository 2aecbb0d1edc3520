"""One side of a live order book: price → size, with the best price in O(1) amortized."""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class BookSide:
    """Price → size with a lazily cleaned heap for the best price (dict + heap, O(1) amortized).

    ``sign`` is -1 for bids (heap holds negated prices, so the top is the highest bid) and +1
    for asks. A size of 0 deletes the level.
    """

    __slots__ = ("_heap", "levels", "sign")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.levels: dict[float, float] = {}
        self._heap: list[float] = []

    def clear(self) -> None:
        self.levels = {}
        self._heap = []

    def load(self, levels: Iterable[tuple[float, float]]) -> None:
        """Replace the side with ``(price, size)`` levels (a snapshot); zero sizes are dropped."""
        self.levels = {price: size for price, size in levels if size > 0.0}
        self._heap = [self.sign * price for price in self.levels]
        heapq.heapify(self._heap)

    def set(self, price: float, size: float) -> None:
        levels = self.levels
        if size > 0.0:
            if price not in levels:
                heapq.heappush(self._heap, self.sign * price)
            levels[price] = size
        elif levels.pop(price, None) is not None and len(self._heap) > 2 * len(levels) + 64:
            self._heap = [self.sign * p for p in levels]
            heapq.heapify(self._heap)

    def best(self) -> float | None:
        heap = self._heap
        levels = self.levels
        while heap:
            price = self.sign * heap[0]
            if price in levels:
                return price
            heapq.heappop(heap)
        return None
