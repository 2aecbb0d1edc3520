"""Missed matches fetched back over REST ``GET /products/{id}/trades``, sans-I/O.

A product's trade ids increase by one per trade, so a skipped ``trade_id`` (a dropped
``match``, a reconnect whose ``last_match`` is ahead, a ``heartbeat`` whose ``last_trade_id``
is ahead) names the missing ids ``[lo, hi)``. Coinbase pages trades newest first with cursors
(docs "Exchange REST API Pagination"): ``after=X`` returns the page of trades older than ``X``,
so ``after=hi&limit=n`` asks for ``hi-1`` down to ``hi-n``. A gap is fetched from its top down,
at most ``requests_per_gap`` pages, one request in flight per product.

Fetched trades go through the product's :class:`~hundi.exchanges.sequence.IdSequence`, like
live ones: an id the live stream delivered meanwhile is not stored twice. Each answer that
recovered ids stores a ``backfilled`` event (the recovered range and count); ids the venue did
not return, and ids past the request budget, get an ``unrecoverable`` event. Both keep the
``gap`` convention: ``expected`` is the first id of the range, ``received`` the id past it.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Final

from hundi.exchanges.base import DECODE_ERRORS, RecordSink, RejectedFrame
from hundi.exchanges.coinbase.messages import REST_TRADES_DECODER, RestTrade
from hundi.exchanges.coinbase.timeparse import parse_time
from hundi.exchanges.sequence import IdSequence, IdVerdict
from hundi.exchanges.validity import check_positive
from hundi.records import BUY, SELL, Channel, Event, EventKind, Trade

log = logging.getLogger("hundi.exchanges.coinbase")

PAGE: Final = 1000  # Coinbase's maximum ``limit``
MAX_PENDING: Final = 1024  # gaps queued per product; one more is said unrecoverable at once


def taker_side(maker_side: str) -> int:
    """Coinbase reports the maker's side; records store the taker's (the aggressor)."""
    if maker_side == "sell":
        return BUY
    if maker_side == "buy":
        return SELL
    raise RejectedFrame("invalid_field", f"side {maker_side!r}")


class TradeIds(IdSequence):
    """A product's trade-id window, plus holes a ``heartbeat`` reveals before any id arrives."""

    __slots__ = ()

    def start_after(self, last: int) -> None:
        """Start the window just past ``last`` (a run's first ``last_match``): the next id is
        expected, and ``last`` itself, unseen by this run, is stored if fetched back."""
        self.first = last + 1
        self.last = last

    def declare_through(self, last: int) -> tuple[int, int] | None:
        """Ids up to ``last`` exist (a heartbeat said so): the unseen ones ``[lo, hi)`` become a
        hole, so they are stored when fetched or when they arrive late; None if none is new."""
        if self.last < 0 or last <= self.last:
            return None
        lo = self.last + 1
        self.holes.append([lo, last])
        self.last = last
        self._bound()
        return lo, last + 1


class _Range:
    """Ids ``lo..hi-1`` still to fetch for one gap, and the requests it may still use."""

    __slots__ = ("hi", "lo", "requests_left")

    def __init__(self, lo: int, hi: int, requests_left: int) -> None:
        self.lo = lo
        self.hi = hi
        self.requests_left = requests_left


class ProductBackfill:
    """The queued gaps of one product."""

    __slots__ = ("ids", "native", "pending", "requests_per_gap", "symbol")

    def __init__(self, native: str, symbol: str, ids: TradeIds, requests_per_gap: int) -> None:
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
        """The answer to ``after=..&limit=..``; False when the body is unusable (retry)."""
        try:
            trades = REST_TRADES_DECODER.decode(body)
        except DECODE_ERRORS:
            return False
        pending = self.pending
        if not pending or pending[0].hi != after:
            return True  # the gap was settled meanwhile
        gap = pending[0]
        lo, hi = gap.lo, gap.hi
        seen_lo = seen_hi = -1
        stored = 0
        returned: set[int] = set()
        for t in trades:
            tid = t.trade_id
            if not lo <= tid < hi:
                continue
            seen_lo = tid if seen_lo < 0 else min(seen_lo, tid)
            seen_hi = max(seen_hi, tid)
            returned.add(tid)
            record = self._trade(t, recv_ns, out)
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
        elif len(trades) < limit:  # a short page: the venue's history ends above the gap
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

    def _trade(self, t: RestTrade, recv_ns: int, out: RecordSink) -> Trade | None:
        """The record of a fetched trade; None (and an ``unrecoverable`` event for its id,
        so the hole stays explained) when it fails validation."""
        try:
            check_positive("price", t.price)
            check_positive("size", t.size)
            side = taker_side(t.side)
            ts = parse_time(t.time)
        except RejectedFrame as e:
            log.warning("%s backfilled trade %d refused (%s)", self.native, t.trade_id, e)
            self._event(
                EventKind.UNRECOVERABLE, t.trade_id, t.trade_id + 1, recv_ns, out,
                f"trade id {t.trade_id} returned over REST but refused ({e})",
            )  # fmt: skip
            return None
        return Trade(
            exchange="coinbase", symbol=self.symbol, native_symbol=self.native, ts=ts,
            recv_ts=recv_ns, trade_id=t.trade_id, price=t.price, size=t.size, side=side,
            first_trade_id=t.trade_id, last_trade_id=t.trade_id,
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
            f"{self.requests_per_gap} trades requests per gap",
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
            exchange="coinbase", symbol=self.symbol, native_symbol=self.native, ts=recv_ns,
            recv_ts=recv_ns, kind=kind.value, channel=Channel.TRADES.value, expected=lo,
            received=hi, detail=detail,
        ))  # fmt: skip
