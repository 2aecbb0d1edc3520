"""Venue-neutral order lifecycles for the private-endpoint simulators.

A simulated account keeps a few orders in flight and moves one of them a step at a time:
new → partial fill → fill, new → cancel, new → partial fill → cancel, reject, and
new (IOC) → partial fill → expiry. Each venue simulator formats the :class:`Step` values in its
own wire format; the steps themselves are the ground truth the tests compare stored records to.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

SCENARIOS = ("fill", "cancel", "partial_cancel", "reject", "expire")


@dataclass(slots=True)
class SimOrder:
    order_id: int
    client_id: str
    symbol: str
    side: str  # BUY / SELL
    order_type: str  # LIMIT
    time_in_force: str  # GTC / IOC
    price: float
    quantity: float
    created_ms: int
    filled: float = 0.0
    filled_quote: float = 0.0


@dataclass(frozen=True, slots=True)
class Step:
    """One order update as the venue reports it."""

    order: SimOrder  # the order (its state after this step is in the fields below)
    execution: str  # NEW, TRADE, CANCELED, REJECTED, EXPIRED
    status: str  # NEW, PARTIALLY_FILLED, FILLED, CANCELED, REJECTED, EXPIRED
    time_ms: int
    filled: float  # cumulative, after this step
    filled_quote: float
    last_quantity: float = 0.0
    last_price: float = 0.0
    trade_id: int = -1
    fee: float = 0.0
    fee_asset: str = ""
    maker: bool = False
    reject_reason: str = "NONE"
    cancel_client_id: str = ""  # the cancel request's own client id (Binance ``c`` on cancels)


class Lifecycles:
    """Generates steps for up to ``max_open`` interleaved orders (deterministic per seed)."""

    def __init__(
        self,
        rng: random.Random,
        symbols: tuple[str, ...],
        max_open: int = 3,
        scenarios: tuple[str, ...] = SCENARIOS,
        fee_asset: str = "USDT",
    ) -> None:
        self.rng = rng
        self.symbols = symbols
        self.max_open = max_open
        self.scenarios = scenarios
        self.fee_asset = fee_asset
        self._open: list[Iterator[Step]] = []
        self._next_order_id = 1000
        self._next_trade_id = 5000
        self.prices = {s: 100.0 * (i + 1) for i, s in enumerate(symbols)}

    def next_step(self, now_ms: int) -> Step:
        rng = self.rng
        if len(self._open) < self.max_open and (not self._open or rng.random() < 0.5):
            self._open.append(self._lifecycle(rng.choice(self.scenarios), now_ms))
        while True:
            index = rng.randrange(len(self._open))
            try:
                step = next(self._open[index])
            except StopIteration:
                del self._open[index]
                if not self._open:
                    self._open.append(self._lifecycle(rng.choice(self.scenarios), now_ms))
                continue
            return _at(step, now_ms)

    def _new_order(self, now_ms: int, tif: str) -> SimOrder:
        rng = self.rng
        symbol = rng.choice(self.symbols)
        self.prices[symbol] *= 1 + rng.uniform(-0.001, 0.001)
        self._next_order_id += 1
        oid = self._next_order_id
        return SimOrder(
            order_id=oid,
            client_id=f"sim{oid}x{rng.randrange(1 << 30):08x}",
            symbol=symbol,
            side=rng.choice(("BUY", "SELL")),
            order_type="LIMIT",
            time_in_force=tif,
            price=round(self.prices[symbol], 2),
            quantity=round(rng.uniform(0.01, 2.0), 3),
            created_ms=now_ms,
        )

    def _trade(self, order: SimOrder, quantity: float, now_ms: int) -> Step:
        self._next_trade_id += 1
        order.filled = round(order.filled + quantity, 8)
        order.filled_quote = round(order.filled_quote + quantity * order.price, 8)
        full = order.filled >= order.quantity
        maker = self.rng.random() < 0.5
        return Step(
            order, "TRADE", "FILLED" if full else "PARTIALLY_FILLED", now_ms,
            order.filled, order.filled_quote, last_quantity=quantity, last_price=order.price,
            trade_id=self._next_trade_id,
            fee=round(quantity * order.price * (0.0002 if maker else 0.0004), 8),
            fee_asset=self.fee_asset, maker=maker,
        )  # fmt: skip

    def _lifecycle(self, scenario: str, now_ms: int) -> Iterator[Step]:
        order = self._new_order(now_ms, "IOC" if scenario == "expire" else "GTC")
        if scenario == "reject":
            yield Step(order, "REJECTED", "REJECTED", now_ms, 0.0, 0.0,
                       reject_reason="INSUFFICIENT_BALANCE")  # fmt: skip
            return
        yield Step(order, "NEW", "NEW", now_ms, 0.0, 0.0)
        part = round(order.quantity * self.rng.uniform(0.2, 0.7), 3)
        if scenario == "cancel":
            yield self._cancel(order, now_ms)
            return
        yield self._trade(order, part, now_ms)
        if scenario == "fill":
            yield self._trade(order, round(order.quantity - order.filled, 8), now_ms)
        elif scenario == "partial_cancel":
            yield self._cancel(order, now_ms)
        else:
            yield Step(order, "EXPIRED", "EXPIRED", now_ms, order.filled, order.filled_quote)

    def _cancel(self, order: SimOrder, now_ms: int) -> Step:
        return Step(
            order, "CANCELED", "CANCELED", now_ms, order.filled, order.filled_quote,
            cancel_client_id=f"cxl{order.order_id}",
        )  # fmt: skip


def _at(step: Step, now_ms: int) -> Step:
    """Steps are prepared ahead; they happen when they are taken."""
    if step.time_ms == now_ms:
        return step
    return Step(
        step.order, step.execution, step.status, now_ms, step.filled, step.filled_quote,
        step.last_quantity, step.last_price, step.trade_id, step.fee, step.fee_asset,
        step.maker, step.reject_reason, step.cancel_client_id,
    )  # fmt: skip
