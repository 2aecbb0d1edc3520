"""An order-level (L3) book: every resting order by id, each price level a FIFO queue.

Venue-agnostic: the live protocols of order-level feeds, their simulators and the research
readers of stored ``book_l3`` rows (:class:`hundi.records.OrderEvent`) all keep their book in
it, so they agree on what an event does. Orders are keyed by id, not by price: a venue may
report an order's ``done`` at another price than it opened at (a modified order), and only the
id finds it. The L2 view sums the sizes per price when asked, from the orders themselves, so
no running total drifts with float rounding.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass
from typing import Final

from hundi.records import ASK, BID

# A matched or changed size at or below this is an order used up: floats of decimal sizes
# (0.3 - 0.1 - 0.2) leave dust, never a real resting order.
DUST: Final = 1e-12


@dataclass(slots=True)
class RestingOrder:
    """One order in the book. ``ts`` is when it took its place in the queue (ns)."""

    order_id: str
    side: int
    price: float
    size: float
    ts: int


class OrderBook:
    """Resting orders by id; per side, per price, the orders in arrival order."""

    __slots__ = ("_level_ts", "_levels", "_sorted", "orders")

    def __init__(self) -> None:
        self.orders: dict[str, RestingOrder] = {}
        # side → price → {order_id: None}: a dict keeps insertion (arrival) order, and removes
        # from the middle of the queue in O(1).
        self._levels: dict[int, dict[float, dict[str, None]]] = {BID: {}, ASK: {}}
        # side → its prices ascending, so the best price is O(1) (a crossed-book check per
        # resting order stays cheap); a new or emptied level moves a C-level memmove.
        self._sorted: dict[int, list[float]] = {BID: [], ASK: []}
        # side → price → when the level last changed (an order joined, filled, changed or
        # left it): the level's time, as the L2 books of :func:`hundi.research.book_at` keep it.
        self._level_ts: dict[int, dict[float, int]] = {BID: {}, ASK: {}}

    def clear(self) -> None:
        self.orders.clear()
        self._levels = {BID: {}, ASK: {}}
        self._sorted = {BID: [], ASK: []}
        self._level_ts = {BID: {}, ASK: {}}

    def __len__(self) -> int:
        return len(self.orders)

    def add(self, order_id: str, side: int, price: float, size: float, ts: int) -> None:
        """An order takes its place at the back of its level (a known id is replaced)."""
        if order_id in self.orders:
            self.remove(order_id)
        if size <= DUST:
            return
        self.orders[order_id] = RestingOrder(order_id, side, price, size, ts)
        level = self._levels[side].get(price)
        if level is None:
            level = self._levels[side][price] = {}
            insort(self._sorted[side], price)
        level[order_id] = None
        self._level_ts[side][price] = ts

    def remove(self, order_id: str, ts: int | None = None) -> RestingOrder | None:
        """Take an order out of the book; None when it was not resting (a taker, say). ``ts``
        (when known) is the time its level changed."""
        order = self.orders.pop(order_id, None)
        if order is None:
            return None
        level = self._levels[order.side][order.price]
        del level[order_id]
        if not level:
            del self._levels[order.side][order.price]
            del self._level_ts[order.side][order.price]
            prices = self._sorted[order.side]
            del prices[bisect_left(prices, order.price)]
        elif ts is not None:
            self._level_ts[order.side][order.price] = ts
        return order

    def reduce(self, order_id: str, size: float, ts: int | None = None) -> bool:
        """A fill of ``size`` against a resting order; used up, it leaves the book. False when
        the order is not in the book."""
        order = self.orders.get(order_id)
        if order is None:
            return False
        order.size -= size
        if order.size <= DUST:
            self.remove(order_id, ts)
        elif ts is not None:
            self._level_ts[order.side][order.price] = ts
        return True

    def change(self, order_id: str, size: float, price: float | None, ts: int) -> bool:
        """A smaller size keeps the order's queue position; a larger size or a new price sends
        it to the back of its (new) level with the change's time (Coinbase's changelog: only a
        size-down amendment keeps priority). False when not resting."""
        order = self.orders.get(order_id)
        if order is None:
            return False
        if (price is not None and price != order.price) or size > order.size + DUST:
            self.add(order_id, order.side, order.price if price is None else price, size, ts)
        elif size <= DUST:
            self.remove(order_id, ts)
        else:
            order.size = size
            self._level_ts[order.side][order.price] = ts
        return True

    def apply(
        self, kind: str, order_id: str, side: int, price: float, size: float, ts: int
    ) -> None:
        """One order event (:class:`hundi.records.OrderEvent` kinds) applied to the book:
        ``snapshot``/``open`` rest the order at the back of its level, ``match`` fills the
        resting (maker) order, ``change`` sets a new size (a larger one or a new price
        re-queues it), ``done`` removes it; ``received`` changes nothing (not resting yet)."""
        if kind == "open" or kind == "snapshot":
            self.add(order_id, side, price, size, ts)
        elif kind == "match":
            self.reduce(order_id, size, ts)
        elif kind == "change":
            self.change(order_id, size, price if price > 0 else None, ts)
        elif kind == "done":
            self.remove(order_id, ts)

    def best(self, side: int) -> float | None:
        prices = self._sorted[side]
        if not prices:
            return None
        return prices[-1] if side == BID else prices[0]

    def crossed(self) -> bool:
        bid, ask = self.best(BID), self.best(ASK)
        return bid is not None and ask is not None and bid >= ask

    def level_count(self, side: int) -> int:
        return len(self._levels[side])

    def prices(self, side: int) -> list[float]:
        """The side's prices, best first."""
        prices = self._sorted[side]
        return prices[::-1] if side == BID else list(prices)

    def queue(self, side: int, price: float) -> list[RestingOrder]:
        """The orders resting at one price, front of the queue first."""
        return [self.orders[i] for i in self._levels[side].get(price, ())]

    def level(self, side: int, price: float) -> tuple[float, int]:
        """(summed size, when the level last changed) of one price level; (0, -1) if empty."""
        queue = self.queue(side, price)
        return sum(o.size for o in queue), self._level_ts[side].get(price, -1)

    def l2(self, side: int) -> list[tuple[float, float]]:
        """(price, summed size) per level, best first."""
        return [(price, self.level(side, price)[0]) for price in self.prices(side)]
