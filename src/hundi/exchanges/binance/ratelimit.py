"""REST pacing for depth snapshots: weight budget, spacing, Retry-After and back-off.

Binance bans IPs that keep calling after a 429 (the 418 that follows), so the scheduler is
conservative: a fraction of the per-minute weight budget, a minimal gap between requests, one
request in flight per book, ``Retry-After`` honoured for everyone on 429/418, and capped
exponential back-off with jitter on 5xx and transport failures (status 599). Jitter comes from
an injected ``random.Random`` so tests and replays are deterministic.

A *side* request (``side=True``, e.g. the one-off exchangeInfo) counts against the weight budget
and obeys 429/418, but is neither spaced nor spaces others, and its server failures back off
only itself: it never delays the requests that matter (book snapshots), and a replay of a
capture, which cannot know exactly when it was sent, paces the snapshots as the live run did.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping

NS = 1_000_000_000
WINDOW_NS = 60 * NS


class RestScheduler:
    """Decides when the next REST request may go; knows nothing about what it fetches."""

    def __init__(
        self,
        *,
        weight_per_minute: int,
        min_interval_ns: int,
        backoff_base_ns: int = NS // 2,
        backoff_cap_ns: int = 60 * NS,
        default_retry_after_ns: int = 60 * NS,
        rng: random.Random | None = None,
    ) -> None:
        self.weight_per_minute = weight_per_minute
        self.min_interval_ns = min_interval_ns
        self.backoff_base_ns = backoff_base_ns
        self.backoff_cap_ns = backoff_cap_ns
        self.default_retry_after_ns = default_retry_after_ns
        self._rng = rng if rng is not None else random.Random(0)
        self._sent: deque[tuple[int, int]] = deque()  # (sent_ns, weight) in the last minute
        self._window_weight = 0
        self._last_sent_ns: int | None = None
        self._blocked_until_ns = 0  # Retry-After or server-trouble back-off, for all keys
        self._server_failures = 0
        self._key_failures: dict[str, int] = {}
        self._key_not_before_ns: dict[str, int] = {}
        self.in_flight: set[str] = set()

    def _expire(self, now_ns: int) -> None:
        while self._sent and self._sent[0][0] <= now_ns - WINDOW_NS:
            self._window_weight -= self._sent.popleft()[1]

    def earliest_ns(self, key: str, weight: int, now_ns: int, *, side: bool = False) -> int:
        """First time at or after ``now_ns`` when ``key`` may be requested (ignores in-flight)."""
        self._expire(now_ns)
        t = max(now_ns, self._blocked_until_ns, self._key_not_before_ns.get(key, 0))
        if self._last_sent_ns is not None and not side:
            t = max(t, self._last_sent_ns + self.min_interval_ns)
        if self._window_weight + weight > self.weight_per_minute:
            # Wait until enough of the window has expired to fit this request.
            excess = self._window_weight + weight - self.weight_per_minute
            freed = 0
            for sent_ns, w in self._sent:
                freed += w
                if freed >= excess:
                    t = max(t, sent_ns + WINDOW_NS)
                    break
        return t

    def may_send(self, key: str, weight: int, now_ns: int, *, side: bool = False) -> bool:
        return (
            key not in self.in_flight and self.earliest_ns(key, weight, now_ns, side=side) <= now_ns
        )

    def sent(self, key: str, weight: int, now_ns: int, *, side: bool = False) -> None:
        self._sent.append((now_ns, weight))
        self._window_weight += weight
        if not side:
            self._last_sent_ns = now_ns
        self.in_flight.add(key)

    def _backoff_ns(self, failures: int) -> int:
        """Capped exponential delay with "equal jitter": half fixed, half random."""
        delay = min(self.backoff_cap_ns, self.backoff_base_ns << min(failures - 1, 30))
        return delay // 2 + int(self._rng.random() * (delay // 2))

    def completed(
        self,
        key: str,
        status: int,
        headers: Mapping[str, str],
        now_ns: int,
        *,
        side: bool = False,
    ) -> None:
        """Record the outcome of a request for ``key``.

        429/418 block every key, side requests too: Binance rate-limits the whole IP.
        """
        self.in_flight.discard(key)
        if 200 <= status < 300:
            if not side:
                self._server_failures = 0
            self._key_failures.pop(key, None)
            self._key_not_before_ns.pop(key, None)
        elif status in (429, 418):
            wait_ns = _retry_after_ns(headers, self.default_retry_after_ns)
            self._blocked_until_ns = max(self._blocked_until_ns, now_ns + wait_ns)
        elif status >= 500 and not side:
            self._server_failures += 1
            self._blocked_until_ns = max(
                self._blocked_until_ns, now_ns + self._backoff_ns(self._server_failures)
            )
        else:  # other 4xx or a side request: back off for this key only
            failures = self._key_failures.get(key, 0) + 1
            self._key_failures[key] = failures
            self._key_not_before_ns[key] = now_ns + self._backoff_ns(failures)


def _retry_after_ns(headers: Mapping[str, str], default_ns: int) -> int:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                seconds = float(value.strip())
            except ValueError:
                return default_ns  # an HTTP date or garbage: be conservative
            return max(0, int(seconds * NS))
    return default_ns
