"""Back-off after a venue refused our credentials: capped, counted, never a tight loop.

A wrong key or signature does not fix itself by retrying, and venues ban IPs that hammer them
with bad signatures, so retries start slow, double up to a cap of minutes and stop after a
maximum number of attempts (until the collector is restarted with fixed credentials).
"""

from __future__ import annotations

from dataclasses import dataclass

NS = 1_000_000_000


@dataclass(slots=True)
class AuthRetry:
    initial_s: float = 10.0
    cap_s: float = 600.0
    max_attempts: int = 8  # authentication attempts in a row that may fail before we give up
    failures: int = 0
    retry_at_ns: int = 0

    def failed(self, now_ns: int) -> float | None:
        """Count a refusal; the delay before the next attempt, or None once we give up."""
        self.failures += 1
        if self.gave_up:
            return None
        delay: float = min(self.cap_s, self.initial_s * 2.0 ** (self.failures - 1))
        self.retry_at_ns = now_ns + int(delay * NS)
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.retry_at_ns = 0

    @property
    def gave_up(self) -> bool:
        return self.failures >= self.max_attempts

    def allowed(self, now_ns: int) -> bool:
        """May we present the credentials again now?"""
        return not self.gave_up and now_ns >= self.retry_at_ns
