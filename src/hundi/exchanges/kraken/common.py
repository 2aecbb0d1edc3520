"""What the v1 and v2 protocols share: configuration, times, numbers and stored rows."""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable
from typing import Final

from hundi.exchanges.base import RecordSink, RejectedFrame, VenueConfig
from hundi.exchanges.kraken.book import DEPTHS, KrakenBook
from hundi.exchanges.kraken.symbols import normalize
from hundi.exchanges.options import int_option
from hundi.records import BookChange, Channel, Event, EventKind

EXCHANGE: Final = "kraken"
CONN: Final = "public"  # the one public connection's key
DEFAULT_DEPTH: Final = 100
#: v2 ``ohlc`` intervals, minutes (documented).
OHLC_INTERVALS: Final = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
#: Client messages a second at most: a handful of subscribes per (re)open, and re-subscribes.
MAX_OUTGOING_PER_S: Final = 5.0
_SECOND_CACHE: dict[str, int] = {}


def check_config(config: VenueConfig, supported: frozenset[Channel], api: str) -> None:
    unsupported = set(config.channels) - supported
    if unsupported:
        names = ", ".join(sorted(c.value for c in unsupported))
        raise ValueError(f"{EXCHANGE} ({api}) does not serve {names}")
    if not config.symbols:
        raise ValueError(f"{EXCHANGE}: no symbols")
    for native in config.symbols:
        normalize(native)  # ValueError, one line, for a spelling that is not a pair
        if native != native.upper():  # Kraken would answer every frame for another spelling
            raise ValueError(
                f"{EXCHANGE} pairs are upper case: {native!r} (use {native.upper()!r})"
            )
    if len(set(config.symbols)) != len(config.symbols):
        raise ValueError(f"{EXCHANGE}: a symbol is listed twice: {', '.join(config.symbols)}")


def depth_option(config: VenueConfig) -> int:
    depth = int_option(config.options, "depth", DEFAULT_DEPTH, DEPTHS[0], DEPTHS[-1])
    if depth not in DEPTHS:
        raise ValueError(f"option depth must be one of {', '.join(map(str, DEPTHS))}, got {depth}")
    return depth


def number(value: float | str, field: str) -> float:
    """A wire number (v2 JSON number, v1 decimal string) → a finite float, else rejected."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise RejectedFrame("invalid_field", f"{field}: not a number: {value!r}") from None
    if not math.isfinite(result):
        raise RejectedFrame("invalid_field", f"{field}: not a number: {value!r}")
    return result


def rfc3339_ns(text: str) -> int:
    """``2023-09-25T07:49:37.708706Z`` (any number of fraction digits, up to 9 kept) → ns."""
    if len(text) < 20 or text[-1] != "Z" or text[10] != "T":
        raise RejectedFrame("invalid_field", f"time: {text!r}")
    head = text[:19]
    seconds = _SECOND_CACHE.get(head)
    if seconds is None:
        try:
            seconds = calendar.timegm(
                (int(head[0:4]), int(head[5:7]), int(head[8:10]), int(head[11:13]),
                 int(head[14:16]), int(head[17:19]), 0, 0, 0)
            )  # fmt: skip
        except ValueError:
            raise RejectedFrame("invalid_field", f"time: {text!r}") from None
        if len(_SECOND_CACHE) > 4096:
            _SECOND_CACHE.clear()
        _SECOND_CACHE[head] = seconds
    fraction = text[20:-1] if text[19] == "." else ""
    if text[19] not in ".Z" or (fraction and not fraction.isdigit()):
        raise RejectedFrame("invalid_field", f"time: {text!r}")
    return seconds * 1_000_000_000 + (int(fraction[:9].ljust(9, "0")) if fraction else 0)


def epoch_ns(text: str) -> int:
    """v1 ``"1618678123.481570"`` (epoch seconds, decimal string) → ns."""
    whole, _, fraction = text.partition(".")
    if not whole.isdigit() or (fraction and not fraction.isdigit()):
        raise RejectedFrame("invalid_field", f"time: {text!r}")
    return int(whole) * 1_000_000_000 + (int(fraction[:9].ljust(9, "0")) if fraction else 0)


def book_rows(
    out: RecordSink,
    book: KrakenBook,
    levels: list[tuple[int, float, float]],
    ts: int,
    recv_ns: int,
    snapshot: bool,
) -> None:
    """Stored rows of a snapshot or an update: Kraken has no sequence ids (``-1``)."""
    out.book.extend(
        BookChange(
            exchange=EXCHANGE,
            symbol=book.symbol,
            native_symbol=book.native,
            ts=ts,
            recv_ts=recv_ns,
            side=side,
            price=price,
            size=size,
            snapshot=snapshot,
            first_update_id=-1,
            update_id=-1,
            prev_update_id=-1,
        )
        for side, price, size in levels
    )


def book_event(
    out: RecordSink,
    book: KrakenBook,
    kind: EventKind,
    ts: int,
    recv_ns: int,
    detail: str,
    expected: int = -1,
    received: int = -1,
) -> None:
    out.events.append(
        Event(
            exchange=EXCHANGE,
            symbol=book.symbol,
            native_symbol=book.native,
            ts=ts,
            recv_ts=recv_ns,
            kind=kind.value,
            channel=Channel.BOOK.value,
            expected=expected,
            received=received,
            detail=detail,
        )
    )


#: Seconds before re-subscribing a book that failed again before any update verified: at once
#: the first time, then backing off, so a pair whose checksum keeps failing does not make the
#: collector hammer Kraken with subscriptions.
RESYNC_BACKOFF_S: Final = (0, 1, 2, 4, 8, 16, 32, 60)
NS: Final = 1_000_000_000

BookMessage = Callable[[str, list[str]], bytes]  # (method/event, pairs) → message


class Resubscribes:
    """The book re-subscribes owed (in place resyncs), with their back-off per pair."""

    __slots__ = ("_delayed", "_failures", "_make", "_messages", "in_flight", "next_due_ns")

    def __init__(self, make: BookMessage) -> None:
        self._make = make
        self._messages: list[tuple[str, bytes]] = []
        self._delayed: dict[str, tuple[int, str]] = {}  # pair → (due ns, connection key)
        self._failures: dict[str, int] = {}  # pair → resyncs since an update last verified
        #: pair → connection key of a re-subscribe sent (or owed) whose snapshot is not in yet
        self.in_flight: dict[str, str] = {}
        self.next_due_ns: int | None = None

    def now(self, conn_key: str, natives: list[str]) -> None:
        self._messages.append((conn_key, self._make("unsubscribe", natives)))
        self._messages.append((conn_key, self._make("subscribe", natives)))
        for native in natives:
            self.in_flight[native] = conn_key

    def landed(self, native: str) -> None:
        """The snapshot of ``native`` is in: its re-subscribe is done, and a retry still delayed
        (after a refusal that concerned the unsubscribe, which v1 does not tell apart) is
        dropped, so a synced book is not re-subscribed."""
        self.in_flight.pop(native, None)
        if self._delayed.pop(native, None) is not None:
            self.next_due_ns = min((at for at, _ in self._delayed.values()), default=None)

    def refused(self, native: str, now_ns: int) -> int | None:
        """Kraken refused the re-subscribe of ``native``: it is owed again, with the back-off;
        returns the seconds it waits, or None if no re-subscribe of ours was in flight."""
        conn_key = self.in_flight.pop(native, None)
        if conn_key is None:
            return None
        return self.owe(conn_key, native, now_ns)

    def owe(self, conn_key: str, native: str, now_ns: int) -> int:
        """A resync of ``native``; returns the seconds it waits (0: at once)."""
        failures = self._failures.get(native, 0)
        self._failures[native] = failures + 1
        delay = RESYNC_BACKOFF_S[min(failures, len(RESYNC_BACKOFF_S) - 1)]
        if delay == 0:
            self.now(conn_key, [native])
        else:
            due = now_ns + delay * NS
            self._delayed[native] = (due, conn_key)
            self.next_due_ns = due if self.next_due_ns is None else min(self.next_due_ns, due)
        return delay

    def verified(self, native: str) -> None:
        """An update of ``native`` verified: its book is sound again, the back-off restarts."""
        if native in self._failures:
            del self._failures[native]

    def release(self, now_ns: int) -> None:
        """Move the delayed re-subscribes due by ``now_ns`` (a frame's time) to the owed ones."""
        due = sorted((n, c) for n, (at, c) in self._delayed.items() if at <= now_ns)
        for native, conn_key in due:
            del self._delayed[native]
            self.now(conn_key, [native])
        self.next_due_ns = min((at for at, _ in self._delayed.values()), default=None)

    def take(self) -> list[tuple[str, bytes]]:
        taken, self._messages = self._messages, []
        return taken

    def clear(self) -> None:
        """The connection closed: its next open subscribes everything afresh."""
        self._messages = []
        self._delayed.clear()
        self.in_flight.clear()
        self.next_due_ns = None
