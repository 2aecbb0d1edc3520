"""Bitstamp venue options (``hundi collect bitstamp --option KEY=VALUE``), checked at start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

MS = 1_000_000


@dataclass(frozen=True, slots=True)
class BitstampOptions:
    #: diffs buffered per book while waiting for a snapshot; beyond it the buffer starts over
    max_buffer: int = 20_000
    #: ids of the latest trades kept per pair to store each trade once
    trade_ids_kept: int = 10_000
    #: client messages per second (subscriptions at open)
    max_outgoing_per_s: float = 10.0
    #: spacing of two order_book snapshot requests (Bitstamp allows 400 requests a second)
    rest_min_interval_ms: int = 100
    #: longest wait before retrying a failed REST request (doubling from 0.5 s)
    backoff_cap_s: float = 30.0
    #: after a (re)open, how long a book's snapshot waits for the diff subscription's ack
    snapshot_ack_wait_ms: int = 1_000
    #: a quiet pair's held snapshot is confirmed by a second one asked this long after it
    quiet_confirm_ms: int = 3_000
    #: longest first wait before refetching a stale snapshot (the stream's lead, if shorter;
    #: doubled while the answers stay stale)
    stale_wait_ms: int = 1_000
    #: after a reconnect, how long before the trades of the outage are fetched back (the new
    #: subscription is live by then, so the stream carries what comes after)
    backfill_delay_ms: int = 2_000

    @property
    def snapshot_ack_wait_ns(self) -> int:
        return self.snapshot_ack_wait_ms * MS

    @property
    def backfill_delay_ns(self) -> int:
        return self.backfill_delay_ms * MS

    @property
    def stale_wait_ns(self) -> int:
        return self.stale_wait_ms * MS

    @property
    def quiet_confirm_ns(self) -> int:
        return self.quiet_confirm_ms * MS

    @property
    def rest_min_interval_ns(self) -> int:
        return self.rest_min_interval_ms * MS

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> BitstampOptions:
        """The options given as text; ValueError (one line) for an unknown key or bad value."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, int | float] = {}
        for key, text in options.items():
            field = known.get(key)
            if field is None:
                raise ValueError(
                    f"unknown bitstamp option {key!r} (known: {', '.join(sorted(known))})"
                )
            convert = int if field.type in ("int", int) else float
            try:
                value = convert(text)
            except ValueError:
                raise ValueError(f"bitstamp option {key}={text!r}: not a number") from None
            if not value > 0:
                raise ValueError(f"bitstamp option {key}={text!r}: must be > 0")
            values[key] = value
        return cls(**values)  # type: ignore[arg-type]
