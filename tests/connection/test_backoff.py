"""Reconnect delays: jitter bounds, the cap, growth, reset, and no instant loop."""

from __future__ import annotations

import random

import pytest

from hundi.connection.backoff import Backoff


def test_delays_stay_within_floor_and_exponential_ceiling() -> None:
    backoff = Backoff(0.5, 30.0, rng=random.Random(1))
    for attempt in range(40):
        delay = backoff.next()
        ceiling = min(30.0, 0.5 * 2**attempt)
        assert backoff.floor <= delay <= ceiling


def test_cap_bounds_every_delay_even_after_many_attempts() -> None:
    backoff = Backoff(0.5, 30.0)
    delays = [backoff.next() for _ in range(2000)]
    assert max(delays) <= 30.0
    assert backoff.ceiling(10_000) == 30.0


def test_full_jitter_spreads_delays() -> None:
    delays = []
    for seed in range(200):
        backoff = Backoff(0.5, 30.0, rng=random.Random(seed))
        backoff.attempt = 8  # ceiling 30 s
        delays.append(backoff.next())
    assert min(delays) < 5.0 < 25.0 < max(delays)


def test_no_instant_reconnect_loop() -> None:
    """A refusing endpoint is retried at most ~1/floor times a second, and much less soon."""
    backoff = Backoff(0.5, 30.0, rng=random.Random(7))
    delays = [backoff.next() for _ in range(20)]
    assert all(d >= 0.05 for d in delays)
    assert sum(delays) > 60.0  # 20 retries take minutes, not a burst


def test_equal_jitter_grows_monotonically_in_lower_bound() -> None:
    backoff = Backoff(1.0, 64.0, min_fraction=0.5, rng=random.Random(3))
    delays = [backoff.next() for _ in range(7)]
    for attempt, delay in enumerate(delays):
        assert 0.5 * 2**attempt <= delay <= 2**attempt


def test_reset_starts_over() -> None:
    backoff = Backoff(0.5, 30.0)
    for _ in range(10):
        backoff.next()
    backoff.reset()
    assert backoff.next() <= 0.5


@pytest.mark.parametrize(
    ("initial", "cap", "factor"), [(0.0, 1.0, 2.0), (2.0, 1.0, 2.0), (1.0, 2.0, 0.5)]
)
def test_bad_parameters_are_refused(initial: float, cap: float, factor: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, cap, factor=factor)


@pytest.mark.parametrize("seed", range(50))
def test_delays_never_shrink_between_resets(seed: int) -> None:
    """The logged retry delays grow (``retry #1 in 0.3s`` then ``#2 in 0.1s`` was jitter
    drawing less the second time) and stay within the cap; a reset starts small again."""
    backoff = Backoff(0.5, 30.0, rng=random.Random(seed))
    delays = [backoff.next() for _ in range(30)]
    assert delays == sorted(delays) and delays[-1] <= 30.0
    backoff.reset()
    assert backoff.next() <= 0.5
