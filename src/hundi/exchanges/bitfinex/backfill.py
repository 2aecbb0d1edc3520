"""Trades missed during a break fetched back over REST ``GET /v2/trades/{symbol}/hist``, sans-I/O.

Bitfinex trade ids grow but are not contiguous per pair, so a hole cannot be named by ids: it is
named by time. A break of a ``trades`` stream (its connection closed, a skipped sequence number)
opens a *window* at the ``MTS`` of the last trade stored before it; the first live trade (``te`` or
``tu``) after the break closes it at that trade's ``MTS`` (the snapshot of the last trades a
resubscribe brings does not close it: it may miss trades, and only live trades prove the stream
continuous again), or, on a quiet market, the channel's first heartbeat after its snapshot closes
it at the heartbeat's receive time (Bitfinex beats every 15 s on a silent channel). A closed window
is fetched with ``start=`` and ``end=`` (milliseconds, both inclusive), ``sort=1`` (oldest first)
and ``limit=`` up to 10000, paging on from the last ``MTS`` of a full page; one request in flight,
at most one every ``backfill_interval_ms`` (Bitfinex documents 15 requests a minute for this
endpoint, so 4 s by default), failures retried with a doubling back-off (60 s after a 429: Bitfinex
blocks an IP for a minute).

Fetched trades are stored once: the stream's remembered ids (kept whole while a window is owed)
say which were already stored. Each finished window stores a ``backfilled`` event (``expected``,
``received``: the lowest and past-the-highest id stored from it, -1 when none was missing;
``detail``: the window and the counts); a window that REST keeps failing past the retries, or
whose pages run past the per-window request budget, stores an ``unrecoverable`` event for what
was not covered. At a clean stop the I/O layer serves the owed windows briefly, then
:meth:`WindowQueue.abandon` says what stays missing. A window still open at the end of a run
(no live trade after the break) is left to its ``gap`` event.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

from hundi.records import Channel, Event, EventKind

MAX_LIMIT: Final = 10_000  # Bitfinex's documented maximum ``limit``
DEFAULT_INTERVAL_MS: Final = 4_000  # 15 requests a minute
RATE_LIMITED_BACKOFF_NS: Final = 60_000_000_000
MAX_BACKOFF_NS: Final = 60_000_000_000
RETRIES: Final = 5  # failed answers per window before it is said unrecoverable
MAX_WINDOWS: Final = 256  # per stream; one more is said unrecoverable at once


@dataclass(slots=True)
class TradeWindow:
    """Trades between ``start_ms`` and ``end_ms`` (inclusive) to fetch; ``end_ms`` None: the
    break is not over yet (no live trade since)."""

    start_ms: int
    why: str
    end_ms: int | None = None
    cursor_ms: int = 0  # the next page starts here
    requests_left: int = 0
    failures: int = 0
    returned: set[int] = field(default_factory=set)  # ids the venue returned in the window
    stored: int = 0  # of which were missing here
    lo_id: int = -1
    hi_id: int = -1

    def note(self, trade_id: int) -> None:
        self.stored += 1
        self.lo_id = trade_id if self.lo_id < 0 else min(self.lo_id, trade_id)
        self.hi_id = max(self.hi_id, trade_id)


class WindowQueue:
    """The windows of one trades stream, oldest first."""

    __slots__ = ("exchange", "native", "symbol", "windows")

    def __init__(self, exchange: str, symbol: str, native: str) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.native = native
        self.windows: deque[TradeWindow] = deque()

    def open(self, start_ms: int, why: str, recv_ns: int, out: list[Event]) -> None:
        """A break: a window from ``start_ms`` unless one is already waiting for its end."""
        if self.windows and self.windows[-1].end_ms is None:
            return
        if len(self.windows) >= MAX_WINDOWS:
            self._event(out, EventKind.UNRECOVERABLE, recv_ns, -1, -1,
                        f"trades after {start_ms} ms ({why}) not fetched: {MAX_WINDOWS} "
                        "windows already owed")  # fmt: skip
            return
        self.windows.append(TradeWindow(start_ms, why))

    def close(self, end_ms: int, requests: int) -> None:
        """The first live trade after the break, at ``end_ms``: the window can be fetched."""
        if self.windows and self.windows[-1].end_ms is None:
            window = self.windows[-1]
            window.end_ms = max(end_ms, window.start_ms)
            window.cursor_ms = window.start_ms
            window.requests_left = requests

    @property
    def open_ended(self) -> bool:
        return bool(self.windows) and self.windows[-1].end_ms is None

    def due(self) -> TradeWindow | None:
        """The window to fetch next (closed, oldest first)."""
        if self.windows and self.windows[0].end_ms is not None:
            return self.windows[0]
        return None

    def finish(self, window: TradeWindow, recv_ns: int, out: list[Event], missing: str) -> None:
        """``window`` is done: a ``backfilled`` event for what was covered and, if ``missing``
        says why, an ``unrecoverable`` one for the rest."""
        self.windows.remove(window)
        end = window.end_ms
        covered_to = window.cursor_ms if missing else end
        if not missing or window.returned or window.cursor_ms > window.start_ms:
            hi = window.hi_id + 1 if window.hi_id >= 0 else -1
            counts = f"{len(window.returned)} fetched over REST, {window.stored} stored"
            self._event(out, EventKind.BACKFILLED, recv_ns, window.lo_id, hi,
                        f"trades {window.start_ms}..{covered_to} ms (after {window.why}): "
                        + counts)  # fmt: skip
        if missing:
            self._event(out, EventKind.UNRECOVERABLE, recv_ns, -1, -1,
                        f"trades {window.cursor_ms}..{end} ms (after {window.why}) not "
                        f"fetched: {missing}")  # fmt: skip

    def owed(self) -> int:
        return sum(1 for w in self.windows if w.end_ms is not None)

    def abandon(self, now_ns: int, out: list[Event]) -> None:
        """The run ends: owed windows are said not fetched; open ones keep their gap event."""
        for window in [w for w in self.windows if w.end_ms is not None]:
            self.finish(window, now_ns, out, "the collector stopped first")
        self.windows.clear()

    def _event(
        self, out: list[Event], kind: EventKind, recv_ns: int, lo: int, hi: int, detail: str
    ) -> None:
        out.append(Event(
            exchange=self.exchange, symbol=self.symbol, native_symbol=self.native, ts=recv_ns,
            recv_ts=recv_ns, kind=kind.value, channel=Channel.TRADES.value, expected=lo,
            received=hi, detail=detail,
        ))  # fmt: skip
