"""Missed aggregate trades fetched back over REST (``aggTrades?fromId=``), sans-I/O.

A ``gap`` event on a symbol's ``aggTrade`` stream (skipped ids, a reconnect, a dropped frame)
names the missing ids ``[expected, received)``. Each such range is queued, oldest first, and
fetched with at most ``requests_per_gap`` requests of up to 1000 trades, one request in flight
per symbol, as *side* requests of the REST scheduler (they count against the weight budget and
obey 429/418, but never delay a book snapshot), so the live stream never waits for them.

Fetched trades go through the same :class:`~hundi.exchanges.sequence.IdSequence` as live ones:
an id the live stream already delivered (a late frame filled the hole) is not stored twice, an
id still missing fills its hole. :class:`~hundi.records.Trade` has no "backfilled" flag, so each
answer that recovered ids adds a ``backfilled`` event naming the recovered range and count; ids
the venue no longer has (an empty answer, or one starting above the id asked for) and ids past
the per-gap request limit get an ``unrecoverable`` event. Both keep the ``gap`` convention:
``expected`` is the first id of the range, ``received`` the id just past it.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Final, Protocol

import msgspec

from hundi.exchanges.base import (
    DECODE_ERRORS,
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestRequest,
    RestResponse,
)
from hundi.exchanges.binance.book import MS
from hundi.exchanges.binance.markets import BinanceMarket
from hundi.exchanges.binance.messages import AggTrade
from hundi.exchanges.binance.ratelimit import RestScheduler
from hundi.exchanges.sequence import IdSequence, IdVerdict
from hundi.exchanges.validity import check_positive
from hundi.records import BUY, SELL, Channel, Event, EventKind, Trade

log = logging.getLogger("hundi.exchanges.binance")

# REST keys (names in logs, captures and the scheduler) are "aggTrades:" + native symbol.
KEY_PREFIX: Final = "aggTrades:"
PAGE: Final = 1000  # Binance's maximum ``limit``
# Ranges waiting per symbol; one more is refused (and called unrecoverable) rather than kept.
MAX_PENDING: Final = 1024


AGG_TRADES_DECODER: Final = msgspec.json.Decoder(list[AggTrade], strict=False)


def agg_trades_url(
    market: BinanceMarket, rest_base: str, native: str, from_id: int, limit: int
) -> str:
    query = f"symbol={native}&fromId={from_id}&limit={limit}"
    return f"{market.rest_url('aggTrades', rest_base)}?{query}"


class TradeIdOwner(Protocol):
    """What a backfill needs of a trade route (see :class:`~.routes.TradeIdRoute`)."""

    exchange: str
    symbol: str
    native: str
    ids: IdSequence


class _Range:
    """Ids ``lo..hi-1`` still to fetch for one gap, and the requests it may still use."""

    __slots__ = ("hi", "lo", "requests_left")

    def __init__(self, lo: int, hi: int, requests_left: int) -> None:
        self.lo = lo
        self.hi = hi
        self.requests_left = requests_left


class SymbolBackfill:
    """The queued ranges of one symbol; ``route`` owns the symbol's trade-id bookkeeping."""

    __slots__ = ("exchange", "key", "native", "pending", "requests_per_gap", "route", "symbol")

    def __init__(self, route: TradeIdOwner, requests_per_gap: int) -> None:
        self.route = route
        self.exchange = route.exchange
        self.symbol = route.symbol
        self.native = route.native
        self.key = KEY_PREFIX + route.native
        self.requests_per_gap = requests_per_gap
        self.pending: deque[_Range] = deque()

    def want(self, lo: int, hi: int, recv_ns: int, out: RecordSink) -> None:
        """A gap ``[lo, hi)`` was recorded: queue it (or say at once it will not be fetched)."""
        if hi <= lo:
            return
        if len(self.pending) >= MAX_PENDING:
            self._event(
                EventKind.UNRECOVERABLE, lo, hi, recv_ns, out,
                f"trade ids {lo}..{hi - 1} not fetched: {MAX_PENDING} gaps already queued",
            )  # fmt: skip
            return
        self.pending.append(_Range(lo, hi, self.requests_per_gap))

    def answer(
        self, lo: int, limit: int, trades: list[AggTrade], recv_ns: int, out: RecordSink
    ) -> None:
        """The venue's answer to ``fromId=lo&limit=limit``: store what is missing, settle."""
        pending = self.pending
        if not pending or pending[0].lo != lo:
            return  # the range was given up meanwhile (cannot happen: one request in flight)
        gap = pending[0]
        hi = gap.hi
        ids = self.route.ids
        stored = 0
        seen_lo = -1
        seen_hi = -1
        for t in trades:
            a = t.agg_id
            if a < lo:
                continue
            if a >= hi:
                break
            if seen_lo < 0:
                seen_lo = a
            seen_hi = a
            try:
                check_positive("price", t.price)
                check_positive("size", t.qty)
            except RejectedFrame as e:
                log.warning("%s backfilled trade %d refused (%s)", self.native, a, e)
                continue
            verdict = ids.check(a, a)
            if verdict is not IdVerdict.LATE and verdict is not IdVerdict.NEXT:
                continue  # the live stream delivered it meanwhile, or it is settled
            out.trades.append(Trade(
                exchange=self.exchange, symbol=self.symbol, native_symbol=self.native,
                ts=t.trade_time * MS, recv_ts=recv_ns, trade_id=a, price=t.price,
                size=t.qty, side=SELL if t.buyer_is_maker else BUY, first_trade_id=t.first_id,
                last_trade_id=t.last_id,
            ))  # fmt: skip
            stored += 1
        if seen_lo < 0:  # nothing of the range: the venue no longer has it
            self._event(
                EventKind.UNRECOVERABLE, lo, hi, recv_ns, out,
                f"trade ids {lo}..{hi - 1} no longer available over REST",
            )  # fmt: skip
            pending.popleft()
            return
        if seen_lo > lo:
            self._event(
                EventKind.UNRECOVERABLE, lo, seen_lo, recv_ns, out,
                f"trade ids {lo}..{seen_lo - 1} no longer available over REST",
            )  # fmt: skip
        self._event(
            EventKind.BACKFILLED, seen_lo, seen_hi + 1, recv_ns, out,
            f"trade ids {seen_lo}..{seen_hi}: {stored} trades fetched over REST",
        )  # fmt: skip
        cursor = seen_hi + 1
        if cursor >= hi:
            pending.popleft()
        elif len(trades) < limit:  # a short page ends the venue's history before the gap's end
            self._event(
                EventKind.UNRECOVERABLE, cursor, hi, recv_ns, out,
                f"trade ids {cursor}..{hi - 1} not returned over REST",
            )  # fmt: skip
            pending.popleft()
        else:
            gap.lo = cursor
            self._give_up_if_spent(recv_ns, out)

    def failed(self, recv_ns: int, out: RecordSink, *, counted: bool) -> None:
        """An unusable answer: retried, within the range's request budget if ``counted``."""
        if not self.pending:
            return
        if counted:
            self._give_up_if_spent(recv_ns, out)
        else:  # rate limited: the request it spent does not count
            self.pending[0].requests_left += 1

    def abandon(self, now_ns: int, out: RecordSink) -> None:
        while self.pending:
            gap = self.pending.popleft()
            self._event(
                EventKind.UNRECOVERABLE, gap.lo, gap.hi, now_ns, out,
                f"trade ids {gap.lo}..{gap.hi - 1} not fetched: the collector stopped first",
            )  # fmt: skip

    def _give_up_if_spent(self, recv_ns: int, out: RecordSink) -> None:
        gap = self.pending[0]
        if gap.requests_left > 0:
            return
        self.pending.popleft()
        self._event(
            EventKind.UNRECOVERABLE, gap.lo, gap.hi, recv_ns, out,
            f"trade ids {gap.lo}..{gap.hi - 1} not fetched: at most "
            f"{self.requests_per_gap} aggTrades requests per gap",
        )  # fmt: skip

    def _event(
        self, kind: EventKind, lo: int, hi: int, recv_ns: int, out: RecordSink, detail: str
    ) -> None:
        out.events.append(Event(
            exchange=self.exchange, symbol=self.symbol, native_symbol=self.native, ts=recv_ns,
            recv_ts=recv_ns, kind=kind.value, channel=Channel.TRADES.value, expected=lo,
            received=hi, detail=detail,
        ))  # fmt: skip


class TradeBackfill:
    """Every symbol's :class:`SymbolBackfill`, paced by the protocol's REST scheduler."""

    def __init__(
        self,
        market: BinanceMarket,
        rest_base: str,
        scheduler: RestScheduler,
        requests_per_gap: int,
    ) -> None:
        self.market = market
        self.rest_base = rest_base
        self.scheduler = scheduler
        self.requests_per_gap = requests_per_gap
        self.weight = market.agg_trades_weight
        self.symbols: dict[str, SymbolBackfill] = {}  # by REST key
        self._in_flight: dict[str, tuple[int, int]] = {}  # REST key -> (fromId, limit) asked

    def add(self, route: TradeIdOwner) -> SymbolBackfill:
        symbol = SymbolBackfill(route, self.requests_per_gap)
        self.symbols[symbol.key] = symbol
        return symbol

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        requests = []
        scheduler = self.scheduler
        weight = self.weight
        for key, symbol in self.symbols.items():
            if not symbol.pending or key in self._in_flight:
                continue
            if not scheduler.may_send(key, weight, now_ns, side=True):
                continue
            gap = symbol.pending[0]
            gap.requests_left -= 1
            scheduler.sent(key, weight, now_ns, side=True)
            limit = min(PAGE, gap.hi - gap.lo)
            self._in_flight[key] = (gap.lo, limit)
            url = agg_trades_url(self.market, self.rest_base, symbol.native, gap.lo, limit)
            requests.append(
                RestRequest(key=key, url=url, weight=weight, purpose=RestPurpose.TRADE_BACKFILL)
            )
        return requests

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        key = request.key
        symbol = self.symbols.get(key)
        asked = self._in_flight.pop(key, None)
        if symbol is None or asked is None:
            return
        lo, limit = asked
        status = response.status
        trades: list[AggTrade] | None = None
        if 200 <= status < 300:
            try:
                trades = AGG_TRADES_DECODER.decode(response.body)
            except DECODE_ERRORS:
                status = 599  # unusable body: retry like a transport failure
        self.scheduler.completed(key, status, response.headers, recv_ns, side=True)
        if trades is None:
            symbol.failed(recv_ns, out, counted=status not in (429, 418))
            return
        symbol.answer(lo, limit, trades, recv_ns, out)

    def owed_ids(self) -> int:
        return sum(gap.hi - gap.lo for s in self.symbols.values() for gap in s.pending)

    @property
    def owed(self) -> bool:
        """Some gap still has ids to fetch (queued or asked for)."""
        return any(symbol.pending for symbol in self.symbols.values())

    def abandon(self, now_ns: int, out: RecordSink) -> None:
        """The run ends first: every range still queued is said not fetched."""
        self._in_flight.clear()
        for symbol in self.symbols.values():
            symbol.abandon(now_ns, out)

    def next_wakeup_ns(self, now_ns: int) -> list[int]:
        return [
            self.scheduler.earliest_ns(key, self.weight, now_ns, side=True)
            for key, symbol in self.symbols.items()
            if symbol.pending and key not in self._in_flight
        ]
