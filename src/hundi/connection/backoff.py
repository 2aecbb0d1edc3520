"""Capped exponential backoff with full jitter, for reconnects and retries.

Why full jitter: many collectors (or many streams of one collector) dropped by the same
exchange incident must not reconnect in lock-step. Why a floor: a zero delay would allow an
instant reconnect loop against an endpoint that refuses at once.
"""

from __future__ import annotations

import random


class Backoff:
    """Delay ``n`` (0-based, since the last :meth:`reset`) is uniform in
    ``[max(floor, min_fraction * ceiling(n)), ceiling(n)]`` with
    ``ceiling(n) = min(cap, initial * factor**n)``. ``min_fraction=0`` is full jitter;
    ``0.5`` ("equal jitter") guarantees the delays really grow, for stale-stream reconnects.
    """

    def __init__(
        self,
        initial: float = 0.5,
        cap: float = 30.0,
        *,
        factor: float = 2.0,
        floor: float | None = None,
        min_fraction: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or cap < initial or factor < 1:
            raise ValueError("backoff needs 0 < initial <= cap and factor >= 1")
        if not 0.0 <= min_fraction <= 1.0:
            raise ValueError("min_fraction must be within [0, 1]")
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.floor = initial / 10 if floor is None else min(floor, initial)
        self.min_fraction = min_fraction
        self.attempt = 0
        self._rng = rng or random.Random()

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the delay for ``attempt``."""
        # Clamp the exponent so huge attempt counts cannot overflow a float.
        return min(self.cap, self.initial * self.factor ** min(attempt, 64))

    def next(self) -> float:
        """The next delay in seconds; each call counts one more failed attempt."""
        upper = self.ceiling(self.attempt)
        self.attempt += 1
        return self._rng.uniform(max(self.floor, self.min_fraction * upper), upper)

    def reset(self) -> None:
        self.attempt = 0
