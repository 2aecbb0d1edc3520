"""Missed OKX trades fetched back over REST ``GET /api/v5/market/history-trades``, sans-I/O.

OKX's ``tradeId`` counts up by one per instrument, so a skipped id (a lost ``trades`` push, a
reconnect) names the missing ids ``[lo, hi)``. ``history-trades`` (OKX API v5, "Get trades
history": the last 3 months, 20 requests per 2 s per IP) pages by trade id with ``type=1``:
``after=X`` returns the trades older than ``X``, newest first, at most ``limit`` (max 100).
So ``after=hi&limit=n`` asks for ``hi-1`` down to ``hi-n``. Its rows are single fills (no
``count``): each recovered id is one :class:`~hundi.records.Trade` with
``first_trade_id = last_trade_id = trade_id``, ``side`` the taker's as on the stream. A gap is
fetched from its top down, at most ``requests_per_gap`` pages, one request in flight per
instrument.

Fetched trades go through the instrument's :class:`~hundi.exchanges.sequence.IdSequence`, like
live ones: an id the live stream delivered meanwhile is not stored twice. Each answer that
recovered ids stores a ``backfilled`` event (the recovered range and count); ids OKX did not
return, and ids past the request budget, get an ``unrecoverable`` event. Both keep the ``gap``
convention: ``expected`` is the first id of the range, ``received`` the id past it.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Final

from hundi.exchanges.base import DECODE_ERRORS, RecordSink, RejectedFrame
from hundi.exchanges.okx.messages import REST_TRADES, RestTrade
from hundi.exchanges.sequence import IdSequence, IdVerdict
from hundi.exchanges.validity import MAX_VALUE, invalid
from hundi.records import BUY, SELL, Channel, Event, EventKind, Trade

log = logging.getLogger("hundi.exchanges.okx")

EXCHANGE: Final = "okx"
PAGE: Final = 100  # OKX's maximum ``limit`` for history-trades
MAX_PENDING: Final = 1024  # gaps queued per instrument; one more is said unrecoverable at once
MS: Final = 1_000_000


class _Range:
    """Ids ``lo..hi-1`` still to fetch for one gap, and the requests it may still use."""

    __slots__ = ("hi", "lo", "requests_left")

    def __init__(self, lo: int, hi: int, requests_left: int) -> None:
        self.lo = lo
        self.hi = hi
        self.requests_left = requests_left


class InstrumentBackfill:
    """The queued trade gaps of one instrument."""

    __slots__ = ("ids", "native", "pending", "requests_per_gap", "symbol")

    def __init__(self, native: str, symbol: str, ids: IdSequence, requests_per_gap: int) -> None:
        self.native = native
        self.symbol = symbol
        self.ids = ids
        self.requests_per_gap = requests_per_gap
        self.pending: deque[_Range] = deque()

    def want(self, lo: int, hi: int, recv_ns: int, out: RecordSink) -> None:
        """A gap ``[lo, hi)`` was recorded: queue it (or say at once it will not be fetched)."""
        if hi <= lo:
            return
        if self.requests_per_gap <= 0:
            self._event(EventKind.UNRECOVERABLE, lo, hi, recv_ns, out,
                        f"trade ids {lo}..{hi - 1} not fetched: backfill is off")  # fmt: skip
            return
        if len(self.pending) >= MAX_PENDING:
            self._event(
                EventKind.UNRECOVERABLE, lo, hi, recv_ns, out,
                f"trade ids {lo}..{hi - 1} not fetched: {MAX_PENDING} gaps already queued",
            )  # fmt: skip
            return
        self.pending.append(_Range(lo, hi, self.requests_per_gap))

    def next_page(self) -> tuple[int, int] | None:
        """``(after, limit)`` of the next request, spending one of the gap's budget."""
        if not self.pending:
            return None
        gap = self.pending[0]
        gap.requests_left -= 1
        return gap.hi, min(PAGE, gap.hi - gap.lo)

    def answer(self, after: int, limit: int, body: bytes, recv_ns: int, out: RecordSink) -> bool:
        """The answer to ``after=..&limit=..``; False when it is unusable (not OKX's JSON, or
        an error ``code``): the page is asked again while the gap's budget lasts."""
        try:
            answer = REST_TRADES.decode(body)
        except DECODE_ERRORS:
            return False
        if answer.code != "0":
            log.warning("%s history-trades: %s %s", self.native, answer.code, answer.msg)
            return False
        pending = self.pending
        if not pending or pending[0].hi != after:
            return True  # the gap was settled meanwhile
        gap = pending[0]
        lo, hi = gap.lo, gap.hi
        seen_lo = seen_hi = -1
        stored = 0
        returned: set[int] = set()
        for t in answer.data:
            try:
                tid = int(t.tradeId)
            except ValueError:
                log.warning("%s history-trades: tradeId %r", self.native, t.tradeId)
                continue
            if not lo <= tid < hi or tid in returned:
                continue
            seen_lo = tid if seen_lo < 0 else min(seen_lo, tid)
            seen_hi = max(seen_hi, tid)
            returned.add(tid)
            record = self._trade(tid, t, recv_ns, out)
            if record is None:
                continue
            verdict = self.ids.check(tid, tid)
            if verdict is IdVerdict.LATE or verdict is IdVerdict.NEXT:
                out.trades.append(record)
                stored += 1
        if seen_lo < 0:
            self._event(EventKind.UNRECOVERABLE, lo, hi, recv_ns, out,
                        f"trade ids {lo}..{hi - 1} not returned over REST")  # fmt: skip
            pending.popleft()
            return True
        if seen_hi < hi - 1:
            self._event(EventKind.UNRECOVERABLE, seen_hi + 1, hi, recv_ns, out,
                        f"trade ids {seen_hi + 1}..{hi - 1} not returned over REST")  # fmt: skip
        if len(returned) < seen_hi - seen_lo + 1:  # holes inside the page
            self._missing_inside(seen_lo, seen_hi, returned, recv_ns, out)
        self._event(
            EventKind.BACKFILLED, seen_lo, seen_hi + 1, recv_ns, out,
            f"trade ids {seen_lo}..{seen_hi}: {stored} trades fetched over REST",
        )  # fmt: skip
        gap.hi = seen_lo
        if gap.hi <= lo:
            pending.popleft()
        elif len(answer.data) < limit:  # a short page: OKX's history ends above the gap
            self._event(EventKind.UNRECOVERABLE, lo, gap.hi, recv_ns, out,
                        f"trade ids {lo}..{gap.hi - 1} not returned over REST")  # fmt: skip
            pending.popleft()
        else:
            self.give_up_if_spent(recv_ns, out)
        return True

    def _missing_inside(
        self, lo: int, hi: int, returned: set[int], recv_ns: int, out: RecordSink
    ) -> None:
        """``unrecoverable`` for each run of ids in ``lo..hi`` the page skipped."""
        start = -1
        for tid in range(lo, hi + 2):
            if tid <= hi and tid not in returned:
                if start < 0:
                    start = tid
            elif start >= 0:
                self._event(EventKind.UNRECOVERABLE, start, tid, recv_ns, out,
                            f"trade ids {start}..{tid - 1} not returned over REST")  # fmt: skip
                start = -1

    def _trade(self, tid: int, t: RestTrade, recv_ns: int, out: RecordSink) -> Trade | None:
        """The record of a fetched trade; None (and an ``unrecoverable`` event for its id, so
        the hole stays explained) when it fails validation."""
        try:
            if t.side not in ("buy", "sell"):
                raise RejectedFrame("invalid_field", f"side {t.side!r}")
            price, size = _number("px", t.px), _number("sz", t.sz)
            if not 0.0 < price <= MAX_VALUE:
                raise invalid("px", price)
            if not 0.0 < size <= MAX_VALUE:
                raise invalid("sz", size)
            ts = int(t.ts) * MS
            if ts <= 0:
                raise RejectedFrame("invalid_field", f"ts {t.ts!r}")
        except (RejectedFrame, ValueError) as e:
            log.warning("%s backfilled trade %d refused (%s)", self.native, tid, e)
            self._event(
                EventKind.UNRECOVERABLE, tid, tid + 1, recv_ns, out,
                f"trade id {tid} returned over REST but refused ({e})",
            )  # fmt: skip
            return None
        return Trade(
            exchange=EXCHANGE, symbol=self.symbol, native_symbol=self.native, ts=ts,
            recv_ts=recv_ns, trade_id=tid, price=price, size=size,
            side=BUY if t.side == "buy" else SELL, first_trade_id=tid, last_trade_id=tid,
        )  # fmt: skip

    def give_up_if_spent(self, recv_ns: int, out: RecordSink) -> None:
        if not self.pending:
            return
        gap = self.pending[0]
        if gap.requests_left > 0:
            return
        self.pending.popleft()
        self._event(
            EventKind.UNRECOVERABLE, gap.lo, gap.hi, recv_ns, out,
            f"trade ids {gap.lo}..{gap.hi - 1} not fetched: at most "
            f"{self.requests_per_gap} history-trades requests per gap",
        )  # fmt: skip

    def abandon(self, now_ns: int, out: RecordSink) -> None:
        while self.pending:
            gap = self.pending.popleft()
            self._event(
                EventKind.UNRECOVERABLE, gap.lo, gap.hi, now_ns, out,
                f"trade ids {gap.lo}..{gap.hi - 1} not fetched: the collector stopped first",
            )  # fmt: skip

    def owed_ids(self) -> int:
        return sum(gap.hi - gap.lo for gap in self.pending)

    def _event(
        self, kind: EventKind, lo: int, hi: int, recv_ns: int, out: RecordSink, detail: str
    ) -> None:
        out.events.append(Event(
            exchange=EXCHANGE, symbol=self.symbol, native_symbol=self.native, ts=recv_ns,
            recv_ts=recv_ns, kind=kind.value, channel=Channel.TRADES.value, expected=lo,
            received=hi, detail=detail,
        ))  # fmt: skip


def _number(field: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RejectedFrame("invalid_field", f"{field} not a number: {text!r}") from None
    if not math.isfinite(value):
        raise RejectedFrame("invalid_field", f"{field} not a number: {text!r}")
    return value
