"""Capped exponential backoff with full jitter, for reconnects and retries.

Why full jitter: many collectors (or many streams of one collector) dropped by the same
exchange incident must not reconnect in lock-step. Why a floor: a zero delay would allow an
instant reconnect loop against an endpoint that refuses at once. Why never shorter than the
previous delay: jitter alone made the logged delays go up and down (``retry #1 in 0.3s``,
``#2 in 0.1s``), which reads as a bug and retries sooner after more failures.
"""

from __future__ import annotations

import random


class Backoff:
    """Delay ``n`` (0-based, since the last :meth:`reset`) is drawn uniformly from
    ``[max(floor, min_fraction * ceiling(n)), ceiling(n)]`` with
    ``ceiling(n) = min(cap, initial * factor**n)``, and raised to the previous delay if it
    drew less: the delays never shrink and never pass ``cap``. ``min_fraction=0`` is full
    jitter; ``0.5`` ("equal jitter") also makes each bound grow, for stale-stream reconnects.
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
        self._previous = 0.0
        self._rng = rng or random.Random()

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the delay for ``attempt``."""
        # Clamp the exponent so huge attempt counts cannot overflow a float.
        return min(self.cap, self.initial * self.factor ** min(attempt, 64))

    def next(self) -> float:
        """The next delay in seconds; each call counts one more failed attempt."""
        upper = self.ceiling(self.attempt)
        self.attempt += 1
        drawn = self._rng.uniform(max(self.floor, self.min_fraction * upper), upper)
        self._previous = max(drawn, self._previous)
        return self._previous

    def reset(self) -> None:
        self.attempt = 0
        self._previous = 0.0
