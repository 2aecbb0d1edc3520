"""Missed Kraken trades fetched back over REST ``GET /0/public/Trades``, sans-I/O.

Kraken's per-pair ``trade_id`` increases by one per trade, so a jump on the v2 ``trade``
channel (a dropped frame, or a reconnect whose 50-trade snapshot does not reach back to the
last trade stored) names the missing ids ``[lo, hi)``. Kraken's REST ``Trades`` does not page
by id but by time (docs "Get Recent Trades"): ``since`` is a timestamp (nanoseconds, as the
``last`` cursor it returns), ``count`` up to 1000 trades, oldest first, each trade an array
``[price, volume, time, side, ordertype, misc, trade_id]``. So every gap remembers the time of
the last trade stored before it and is fetched from 1 ms before that time (whether ``since`` is
inclusive is not documented; the margin makes it not matter, and trades below ``lo`` are
ignored), page after page from the time of the highest trade returned, until the page reaches
``hi``; at most ``requests_per_gap`` requests per gap. A gap between two runs (found from the
store at start, :meth:`KrakenProtocol.recover`) knows only the time of the trade after it: it
is searched back from that time (a minute, then twice as far each time) until a page starts at
or below its first id, then paged forward the same way.

Fetched trades go through the pair's :class:`~hundi.exchanges.sequence.IdSequence`, like live
ones: an id the stream delivered meanwhile is not stored twice. Each answer that recovered ids
stores a ``backfilled`` event (the recovered range and how many trades were stored); ids Kraken
did not return (or returned unusable), and ids past the request budget, get an
``unrecoverable`` event. Both keep the ``gap`` convention: ``expected`` is the first id of the
range, ``received`` the id past it.

Kraken limits public REST calls per IP (and per pair for ``Trades``): about one call a second
stays within them (support article "What are the API rate limits?"). One request is in flight
at a time over all pairs, ``rest_interval_ms`` apart (default 1000); HTTP 429 and the
``EGeneral:Too many requests`` / ``EAPI:Rate limit exceeded`` errors back off (doubling, up to
60 s, or as long as a ``Retry-After`` header asks, up to 60 s) without counting against the
gap's budget; other failures back off and count.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Final
from urllib.parse import quote

import msgspec

from hundi.exchanges.base import (
    DECODE_ERRORS,
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestRequest,
    RestResponse,
)
from hundi.exchanges.kraken.common import EXCHANGE, epoch_ns, number
from hundi.exchanges.sequence import IdSequence, IdVerdict
from hundi.exchanges.validity import check_positive
from hundi.records import BUY, SELL, Channel, Event, EventKind, Trade

log = logging.getLogger("hundi.exchanges.kraken")

REST_URL: Final = "https://api.kraken.com"
TRADES_KEY: Final = "trades:"  # + native pair: the REST key of a backfill request
PAGE: Final = 1000  # Kraken's maximum ``count``
NS: Final = 1_000_000_000
MS: Final = 1_000_000
#: ``since`` is asked this long before the last trade stored before a gap: times of one
#: matching-engine event repeat, and the stream's microseconds may round the REST time.
SINCE_MARGIN_NS: Final = MS
#: A gap between two runs knows only the time of the trade after it: it is searched back from
#: that time, a minute first, doubling until a page starts at or below its first id.
SEARCH_START_NS: Final = 60 * NS
MAX_PENDING: Final = 1024  # gaps queued per pair; one more is said unrecoverable at once
BACKOFF_MIN_NS: Final = NS
BACKOFF_MAX_NS: Final = 60 * NS
#: Kraken's rate-limit errors (in the ``error`` array, often with HTTP 200).
RATE_LIMITED: Final = ("EGeneral:Too many requests", "EAPI:Rate limit exceeded")


class RestTrade(msgspec.Struct, array_like=True, frozen=True):
    """``[price, volume, time, side, ordertype, misc, trade_id]``; the time is kept as the
    wire's text so its digits become nanoseconds exactly (a float has ~16 digits)."""

    price: str
    volume: str
    time: msgspec.Raw
    side: str
    ord_type: str
    misc: str
    trade_id: int


class TradesAnswer(msgspec.Struct, frozen=True):
    """``{"error": [...], "result": {"<pair>": [...], "last": "<ns>"}}``."""

    error: list[str] = []
    result: dict[str, msgspec.Raw] = {}


ANSWER_DECODER: Final = msgspec.json.Decoder(TradesAnswer)
TRADES_DECODER: Final = msgspec.json.Decoder(list[RestTrade])
LAST_DECODER: Final = msgspec.json.Decoder(str | int)


class UnusableAnswer(Exception):
    """A 2xx answer that is not a usable page (Kraken's ``error`` array, or a bad body)."""

    def __init__(self, why: str, rate_limited: bool = False) -> None:
        super().__init__(why)
        self.rate_limited = rate_limited


def decode_answer(body: bytes) -> tuple[list[RestTrade], int]:
    """A ``Trades`` body → its trades and the ``last`` cursor (ns); raises UnusableAnswer."""
    try:
        answer = ANSWER_DECODER.decode(body)
    except DECODE_ERRORS as e:
        raise UnusableAnswer(f"unreadable answer: {e}") from None
    if answer.error:
        why = ", ".join(answer.error)
        raise UnusableAnswer(why, any(e.startswith(RATE_LIMITED) for e in answer.error))
    pairs = [key for key in answer.result if key != "last"]
    if len(pairs) != 1 or "last" not in answer.result:
        raise UnusableAnswer(f"answer without one pair and a last cursor: {sorted(answer.result)}")
    try:
        trades = TRADES_DECODER.decode(answer.result[pairs[0]])
        last = int(LAST_DECODER.decode(answer.result["last"]))
    except (*DECODE_ERRORS, ValueError) as e:
        raise UnusableAnswer(f"unreadable answer: {e}") from None
    return trades, last


def _retry_after_ns(response: RestResponse) -> int:
    """``Retry-After`` in seconds (capped at the back-off's maximum); 0 if absent or a date."""
    for name, value in response.headers.items():
        if name.lower() == "retry-after":
            try:
                return min(int(float(value) * NS), BACKOFF_MAX_NS)
            except ValueError:
                return 0
    return 0


class _Range:
    """Ids ``lo..hi-1`` still to fetch for one gap, from ``since_ns``; requests it may use.
    ``anchor_ns`` >= 0 while searching back from that time (the trade ``hi``'s) for ``lo``."""

    __slots__ = ("anchor_ns", "hi", "lo", "requests_left", "since_ns", "window_ns")

    def __init__(
        self, lo: int, hi: int, since_ns: int, requests_left: int, anchor_ns: int = -1
    ) -> None:
        self.lo = lo
        self.hi = hi
        self.since_ns = since_ns
        self.requests_left = requests_left
        self.anchor_ns = anchor_ns
        self.window_ns = SEARCH_START_NS


class PairBackfill:
    """The queued gaps of one pair; ``ids`` is the pair's trade-id window (shared with the
    live stream, so neither stores an id the other did)."""

    __slots__ = ("ids", "last_error", "native", "pending", "requests_per_gap", "symbol")

    def __init__(self, native: str, symbol: str, ids: IdSequence, requests_per_gap: int) -> None:
        self.native = native
        self.symbol = symbol
        self.ids = ids
        self.requests_per_gap = requests_per_gap
        self.pending: deque[_Range] = deque()
        self.last_error = ""

    def want(
        self, lo: int, hi: int, before_ns: int, recv_ns: int, out: RecordSink, *,
        after_ns: int = -1,
    ) -> None:  # fmt: skip
        """Ids ``[lo, hi)`` are missing; the last trade stored before them was at
        ``before_ns`` (or, ``before_ns`` < 0, unknown: the trade ``hi`` was at ``after_ns``):
        queue them (or say at once they will not be fetched)."""
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
        if before_ns < 0:  # search back from the trade after the gap
            since = max(0, after_ns - SEARCH_START_NS)
            self.pending.append(_Range(lo, hi, since, self.requests_per_gap, after_ns))
            return
        since = max(0, before_ns - SINCE_MARGIN_NS)
        self.pending.append(_Range(lo, hi, since, self.requests_per_gap))

    def next_page(self) -> tuple[int, int] | None:
        """``(lo, since)`` of the next request, spending one of the gap's budget."""
        if not self.pending:
            return None
        gap = self.pending[0]
        gap.requests_left -= 1
        return gap.lo, gap.since_ns

    def answer(
        self, lo: int, since_ns: int, trades: list[RestTrade], last_ns: int, recv_ns: int,
        out: RecordSink,
    ) -> None:  # fmt: skip
        """Kraken's page for ``since=since_ns``, asked for the gap starting at ``lo``."""
        pending = self.pending
        if not pending or pending[0].lo != lo or pending[0].since_ns != since_ns:
            return  # the gap was settled meanwhile (abandoned)
        self.last_error = ""
        gap = pending[0]
        if gap.anchor_ns >= 0:
            lowest = min((t.trade_id for t in trades), default=-1)
            if lowest > lo and gap.since_ns > 0:  # not back far enough: twice as far
                gap.window_ns *= 2
                gap.since_ns = max(0, gap.anchor_ns - gap.window_ns)
                self.give_up_if_spent(recv_ns, out)
                return
            gap.anchor_ns = -1  # this page reaches back to ``lo``: page forward from here
        hi = gap.hi
        ids = self.ids
        top_id = -1  # the highest id of the page, and its time: where the next page starts
        top_ns = since_ns
        recovered: list[int] = []  # ids of the range now held (stored now, or by the stream)
        stored = 0
        for t in trades:
            tid = t.trade_id
            try:
                ts = epoch_ns(bytes(t.time).decode())
            except RejectedFrame as e:
                log.warning("%s backfilled trade %d refused (%s)", self.native, tid, e)
                continue
            if tid > top_id:
                top_id, top_ns = tid, ts
            if not lo <= tid < hi:
                continue
            record = self._trade(t, ts, recv_ns)
            if record is None:
                continue
            verdict = ids.check(tid, tid)
            if verdict is IdVerdict.LATE or verdict is IdVerdict.NEXT:
                out.trades.append(record)
                stored += 1
            recovered.append(tid)
        reached = min(hi, max(lo, top_id + 1))  # ids below it: in this page or never sent
        if recovered:
            recovered.sort()
            self._event(
                EventKind.BACKFILLED, recovered[0], recovered[-1] + 1, recv_ns, out,
                f"trade ids {recovered[0]}..{recovered[-1]}: {len(recovered)} recovered over "
                f"REST, {stored} stored (the others the stream delivered meanwhile)",
            )  # fmt: skip
        self._missing(lo, reached, recovered, recv_ns, out)
        if reached >= hi:
            pending.popleft()
            return
        if len(trades) < PAGE:  # a short page: Kraken's history ends before the gap does
            self._event(EventKind.UNRECOVERABLE, reached, hi, recv_ns, out,
                        f"trade ids {reached}..{hi - 1} not returned over REST")  # fmt: skip
            pending.popleft()
            return
        gap.lo = reached
        # the next page: from the time of the page's highest trade (less the margin), or from
        # Kraken's ``last`` cursor if the whole page fell within the margin
        following = top_ns - SINCE_MARGIN_NS
        gap.since_ns = following if following > since_ns else max(last_ns, since_ns + 1)
        self.give_up_if_spent(recv_ns, out)

    def _missing(
        self, lo: int, hi: int, recovered: list[int], recv_ns: int, out: RecordSink
    ) -> None:
        """Ids of ``[lo, hi)`` the page passed over without returning (usable): unrecoverable,
        one event per run."""
        start = lo
        for tid in [*recovered, hi]:
            if tid > start:
                self._event(
                    EventKind.UNRECOVERABLE, start, tid, recv_ns, out,
                    f"trade ids {start}..{tid - 1} not returned over REST (or unusable)",
                )  # fmt: skip
            start = max(start, tid + 1)

    def _trade(self, t: RestTrade, ts: int, recv_ns: int) -> Trade | None:
        try:
            price = number(t.price, "price")
            size = number(t.volume, "volume")
            check_positive("price", price)
            check_positive("size", size)
            if t.side not in ("b", "s"):
                raise RejectedFrame("invalid_field", f"side {t.side!r}")
        except RejectedFrame as e:
            log.warning("%s backfilled trade %d refused (%s)", self.native, t.trade_id, e)
            return None
        return Trade(
            exchange=EXCHANGE, symbol=self.symbol, native_symbol=self.native, ts=ts,
            recv_ts=recv_ns, trade_id=t.trade_id, price=price, size=size,
            side=BUY if t.side == "b" else SELL, first_trade_id=t.trade_id,
            last_trade_id=t.trade_id,
        )  # fmt: skip

    def failed(self, why: str, counted: bool, recv_ns: int, out: RecordSink) -> None:
        """An unusable answer: asked again later, within the gap's budget if ``counted``."""
        self.last_error = why
        if not self.pending:
            return
        if counted:
            self.give_up_if_spent(recv_ns, out)
        else:  # rate limited: the request it spent does not count
            self.pending[0].requests_left += 1

    def give_up_if_spent(self, recv_ns: int, out: RecordSink) -> None:
        if not self.pending:
            return
        gap = self.pending[0]
        if gap.requests_left > 0:
            return
        self.pending.popleft()
        last = f" (last answer: {self.last_error})" if self.last_error else ""
        self._event(
            EventKind.UNRECOVERABLE, gap.lo, gap.hi, recv_ns, out,
            f"trade ids {gap.lo}..{gap.hi - 1} not fetched: at most "
            f"{self.requests_per_gap} Trades requests per gap{last}",
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


class TradeBackfill:
    """Every pair's :class:`PairBackfill`, one REST request at a time, paced and backed off."""

    def __init__(self, rest_base: str, interval_ns: int) -> None:
        self.rest_base = rest_base.rstrip("/")
        self.interval_ns = interval_ns
        self.pairs: dict[str, PairBackfill] = {}
        self._next_ns = 0  # no request before (pacing, back-off)
        self._backoff_ns = 0
        self._in_flight: tuple[str, int, int] | None = None  # (pair, lo, since) asked
        self._now_ns = 0
        self._turn = 0  # round robin over the pairs owing trades

    def add(self, backfill: PairBackfill) -> None:
        self.pairs[backfill.native] = backfill

    def url(self, native: str, since_ns: int) -> str:
        pair = quote(native, safe="")
        return f"{self.rest_base}/0/public/Trades?pair={pair}&since={since_ns}&count={PAGE}"

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        self._now_ns = max(self._now_ns, now_ns)
        if self._in_flight is not None or now_ns < self._next_ns:
            return []
        owing = [b for b in self.pairs.values() if b.pending]
        if not owing:
            return []
        backfill = owing[self._turn % len(owing)]
        self._turn += 1
        page = backfill.next_page()
        if page is None:
            return []
        lo, since = page
        self._in_flight = (backfill.native, lo, since)
        self._next_ns = now_ns + self.interval_ns
        return [
            RestRequest(
                key=TRADES_KEY + backfill.native,
                url=self.url(backfill.native, since),
                purpose=RestPurpose.TRADE_BACKFILL,
            )
        ]

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        self._now_ns = max(self._now_ns, recv_ns)
        asked = self._in_flight
        if asked is None or TRADES_KEY + asked[0] != request.key:
            return  # abandoned meanwhile
        self._in_flight = None
        native, lo, since = asked
        backfill = self.pairs[native]
        status = response.status
        if 200 <= status < 300:
            try:
                trades, last = decode_answer(response.body)
            except UnusableAnswer as e:
                self._back_off(recv_ns)
                backfill.failed(str(e), not e.rate_limited, recv_ns, out)
                return
            self._backoff_ns = 0
            backfill.answer(lo, since, trades, last, recv_ns, out)
            return
        self._back_off(recv_ns, _retry_after_ns(response))
        why = f"HTTP {status}: {response.body[:120].decode('utf-8', 'replace')}"
        backfill.failed(why, status != 429, recv_ns, out)

    def _back_off(self, now_ns: int, at_least_ns: int = 0) -> None:
        """Rate limited, down or unreachable: wait, doubling from 1 s up to 60 s (longer if
        the answer's ``Retry-After`` says so)."""
        self._backoff_ns = min(max(2 * self._backoff_ns, BACKOFF_MIN_NS), BACKOFF_MAX_NS)
        self._next_ns = max(self._next_ns, now_ns + max(self._backoff_ns, at_least_ns))

    def next_wakeup_ns(self) -> int | None:
        if self._in_flight is not None or not any(b.pending for b in self.pairs.values()):
            return None
        return max(self._next_ns, self._now_ns)

    def finishing_requests(self, now_ns: int) -> list[RestRequest] | None:
        if not any(b.pending for b in self.pairs.values()):
            return None
        return self.due_requests(now_ns)

    def owed_ids(self) -> int:
        return sum(b.owed_ids() for b in self.pairs.values())

    def abandon(self, now_ns: int, out: RecordSink) -> None:
        self._in_flight = None
        for backfill in self.pairs.values():
            backfill.abandon(now_ns, out)
