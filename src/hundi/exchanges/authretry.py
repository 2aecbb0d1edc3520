"""Back-off after a venue refused our credentials: capped, counted, never a tight loop.

A wrong key or signature does not fix itself by retrying, and venues ban IPs that hammer them
with bad signatures, so retries start slow, double up to a cap of minutes and stop after a
maximum number of attempts (until the collector is restarted with fixed credentials).

:class:`PrivateSession` is what every venue's authenticated connection does around that
back-off, the same way: report a refusal (one log line, an ``auth_failed`` event), decide when to
reconnect, and keep credentials out of texts, events and captured frames.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from hundi.exchanges.base import RecordSink
from hundi.exchanges.credentials import Credentials, redact_values
from hundi.exchanges.options import int_option
from hundi.records import Channel, Event, EventKind

NS = 1_000_000_000

# The venue options (VenueConfig.options) that tune the back-off, with their help texts.
AUTH_RETRY_OPTIONS = {
    "auth_retry_initial_ms": "first retry after refused credentials, default 10000",
    "auth_retry_cap_ms": "longest retry delay after refused credentials, default 600000",
    "auth_max_attempts": "refused authentications in a row before giving up, default 8",
}


@dataclass(slots=True)
class AuthRetry:
    initial_s: float = 10.0
    cap_s: float = 600.0
    max_attempts: int = 8  # authentication attempts in a row that may fail before we give up
    failures: int = 0
    retry_at_ns: int = 0

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> AuthRetry:
        """A fresh back-off tuned by the venue's :data:`AUTH_RETRY_OPTIONS` (checked here)."""
        return cls(
            initial_s=int_option(options, "auth_retry_initial_ms", 10_000, 1, 3_600_000) / 1000,
            cap_s=int_option(options, "auth_retry_cap_ms", 600_000, 1, 86_400_000) / 1000,
            max_attempts=int_option(options, "auth_max_attempts", 8, 1, 1000),
        )

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


class PrivateSession:
    """One venue's authenticated connection: refusals, reconnect wishes and scrubbing.

    The venue protocol stays in charge of its frames; it calls :meth:`auth_failed` when the
    venue refuses the credentials, sets ``reconnect_wanted`` when the venue asks for a fresh
    connection, and records its gaps with :meth:`event` (channel ``orders``).
    """

    def __init__(
        self,
        exchange: str,
        venue: str,
        credentials: Credentials | None,
        retry: AuthRetry,
        log: logging.Logger,
    ) -> None:
        """``exchange`` names records; ``venue`` (e.g. ``Binance``) names it in messages."""
        self.exchange = exchange
        self.venue = venue
        self.credentials = credentials
        self.retry = retry
        self.log = log
        self.reconnect_wanted = False

    def scrub(self, text: str) -> str:
        """Venue texts never carry our key, but a message is only shown after making sure."""
        if self.credentials is None:
            return text
        for value in self.credentials.values():
            if value:
                text = text.replace(value, "***")
        return text

    def redact(self, data: bytes, tokens: tuple[str, ...] = ()) -> bytes:
        """A received frame without credentials or the stream's bearer ``tokens``."""
        values = self.credentials.values() if self.credentials is not None else ()
        return redact_values(data, (*values, *tokens))

    def event(self, out: RecordSink, kind: EventKind, ts: int, detail: str) -> None:
        out.events.append(Event(
            exchange=self.exchange, symbol="", native_symbol="", ts=ts, recv_ts=ts,
            kind=kind.value, channel=Channel.ORDERS.value, expected=-1, received=-1,
            detail=self.scrub(detail),
        ))  # fmt: skip

    def auth_failed(self, out: RecordSink, now_ns: int, why: str) -> None:
        """The venue refused the credentials: back off (or give up), say so once, clearly."""
        delay = self.retry.failed(now_ns)
        attempt = self.retry.failures
        source = self.credentials.source if self.credentials is not None else "nowhere"
        refused = f"{self.venue} refused the API credentials from {source} ({why})"
        if delay is None:
            detail = f"{refused}; giving up after {attempt} attempts: fix the key and restart"
            self.log.error("%s", self.scrub(detail))
        else:
            detail = f"{refused}; attempt {attempt}, next in {delay:.0f}s"
            self.log.warning("%s", self.scrub(detail))
        self.event(out, EventKind.AUTH_FAILED, now_ns, detail)
        self.reconnect_wanted = delay is not None

    def take_reconnect(self, now_ns: int) -> bool:
        """Whether to reconnect now (once per wish, and only when the back-off allows)."""
        if self.reconnect_wanted and self.retry.allowed(now_ns):
            self.reconnect_wanted = False
            return True
        return False

    def next_wakeup_ns(self) -> int | None:
        """When a wished reconnect becomes allowed, if it waits for the back-off."""
        if self.reconnect_wanted and not self.retry.gave_up and self.retry.retry_at_ns:
            return self.retry.retry_at_ns
        return None
