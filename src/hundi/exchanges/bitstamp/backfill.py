"""Bitstamp trades lost in an outage, fetched back over REST ``transactions``, sans-I/O.

Bitstamp's trade ids are one counter across all pairs, so a pair's missing trades cannot be named
by id: the hole of a break is bounded by time and id instead. It starts after the last trade
stored for the pair (its id and microtimestamp; with none stored, at the open of the connection
that broke) and is open-ended until the stream is back. ``backfill_delay`` after the new
connection's ``live_trades`` subscription is acknowledged (later trades come on the stream; 10 s
more after the reopen should no ack come) the pair's recent
trades are fetched with ``GET /api/v2/transactions/<pair>/?time=minute|hour|day``, the smallest
window covering the outage. Each trade newer than the hole's start and not stored already (the
new stream may have delivered it) is stored once; a ``backfilled`` event names the recovered
trades. An outage longer than a day is beyond the longest window: its start, up to a day before
the fetch, is an ``unrecoverable`` event. A failed fetch is retried after a doubling back-off; a
clean stop fetches what is owed for a bounded time (``finishing_requests``) and then calls the
rest ``unrecoverable`` (``abandon``). The REST answer stamps trades in whole seconds (``date``):
a backfilled trade's ``ts`` is that second.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Final

from hundi.exchanges.base import (
    DECODE_ERRORS,
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestRequest,
    RestResponse,
)
from hundi.exchanges.bitstamp.messages import TRANSACTIONS_DECODER, TransactionMsg
from hundi.exchanges.validity import check_positive
from hundi.records import BUY, SELL, Channel, Event, EventKind, Trade

log = logging.getLogger("hundi.exchanges.bitstamp")

NS: Final = 1_000_000_000
US: Final = 1_000
KEY_SUFFIX: Final = ":transactions"  # REST key: native pair + suffix
#: Bitstamp's ``time`` windows, smallest first, in seconds
WINDOWS: Final = (("minute", 60), ("hour", 3_600), ("day", 86_400))
#: a window is picked with this much to spare (clock skew, the request's own latency)
MARGIN_S: Final = 5
NEVER: Final = 1 << 62
#: without the trades subscription's ack, the fetch waits this much longer after the reopen
ACK_FALLBACK_NS: Final = 10 * NS


class TradeIds:
    """Ids of the trades stored lately for one pair, to store each trade once."""

    __slots__ = ("last", "last_us", "order", "seen")

    def __init__(self, keep: int) -> None:
        self.seen: set[int] = set()
        self.order: deque[int] = deque(maxlen=keep)
        self.last = -1  # highest id stored
        self.last_us = -1  # exchange time (µs) of the trade with the highest id

    def add(self, trade_id: int, ts_us: int) -> bool:
        """False if ``trade_id`` was stored already."""
        if trade_id in self.seen:
            return False
        order = self.order
        if len(order) == order.maxlen:
            self.seen.discard(order[0])
        order.append(trade_id)
        self.seen.add(trade_id)
        if trade_id > self.last:
            self.last = trade_id
            self.last_us = ts_us
        return True


@dataclass(slots=True)
class Owed:
    """The trades of one pair missing since a break, to fetch back."""

    after_id: int  # the last trade stored before the hole (-1: none)
    since_us: int  # the hole's start, exchange time (µs)
    not_before_ns: int = NEVER  # no fetch before (the stream is back + the delay; back-off)
    failures: int = 0
    in_flight: RestRequest | None = None


def first_missing(owed: Owed) -> int:
    """The ``expected`` of the hole's events: the id after the last stored, -1 if none was."""
    return owed.after_id + 1 if owed.after_id >= 0 else -1


def window_for(outage_s: float) -> tuple[str, int]:
    """The smallest ``time`` window covering ``outage_s`` seconds (with a margin), or ``day``."""
    for name, seconds in WINDOWS:
        if outage_s + MARGIN_S <= seconds:
            return name, seconds
    return WINDOWS[-1]


class TradeBackfill:
    """Owed pairs and their ``transactions`` fetches; the protocol paces the requests."""

    def __init__(
        self,
        *,
        exchange: str,
        rest_url: str,
        symbols: dict[str, str],
        trade_ids: dict[str, TradeIds],
        delay_ns: int,
        backoff_cap_ns: int,
    ) -> None:
        self.exchange = exchange
        self.rest_url = rest_url
        self.symbols = symbols
        self.trade_ids = trade_ids
        self.delay_ns = delay_ns
        self.backoff_cap_ns = backoff_cap_ns
        self.owed: dict[str, Owed] = {}
        self.recovered = 0  # trades stored from REST answers

    # ------------------------------------------------------------------ breaks
    def broke(self, native: str, opened_us: int) -> None:
        """The pair's stream broke: its hole starts after its last stored trade (or at the
        open of the connection that broke); an earlier hole not yet fetched keeps its start."""
        owed = self.owed.get(native)
        if owed is not None:
            owed.in_flight = None  # an answer now would not cover the new hole's end
            owed.not_before_ns = NEVER
            return
        ids = self.trade_ids[native]
        since_us = ids.last_us if ids.last >= 0 else opened_us
        self.owed[native] = Owed(after_id=ids.last, since_us=since_us)

    def reopened(self, now_ns: int) -> None:
        """The stream is back: each owed pair is fetched ``delay`` after its trades
        subscription is acknowledged (:meth:`subscribed`); should no ack come, a while later."""
        for owed in self.owed.values():
            if owed.in_flight is None:
                # the I/O layer reads while it subscribes: the ack may have come already
                fallback = now_ns + self.delay_ns + ACK_FALLBACK_NS
                owed.not_before_ns = min(owed.not_before_ns, fallback)

    def subscribed(self, native: str, now_ns: int) -> None:
        """The pair's ``live_trades`` subscription is acknowledged: what comes next is on the
        stream. (Timed on a received frame, a replay of our capture asks when the live run
        did, so the captured answer finds its request.)"""
        owed = self.owed.get(native)
        if owed is not None and owed.in_flight is None:
            owed.not_before_ns = now_ns + self.delay_ns

    # ------------------------------------------------------------------ requests
    def due(self, now_ns: int, *, finishing: bool = False) -> list[str]:
        """Owed pairs whose fetch may be requested now (at a stop: without the delay)."""
        return [
            native
            for native, owed in self.owed.items()
            if owed.in_flight is None
            and (now_ns >= owed.not_before_ns or (finishing and owed.failures == 0))
        ]

    def next_ns(self) -> int | None:
        times = [o.not_before_ns for o in self.owed.values() if o.in_flight is None]
        times = [t for t in times if t < NEVER]
        return min(times) if times else None

    def request(self, native: str, now_ns: int) -> RestRequest:
        owed = self.owed[native]
        window, _ = window_for((now_ns // US - owed.since_us) / 1e6)
        request = RestRequest(
            key=f"{native}{KEY_SUFFIX}",
            url=f"{self.rest_url}/api/v2/transactions/{native}/?time={window}",
            purpose=RestPurpose.TRADE_BACKFILL,
        )
        owed.in_flight = request
        return request

    # ------------------------------------------------------------------ answers
    def answered(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        native = request.key.removesuffix(KEY_SUFFIX)
        owed = self.owed.get(native)
        if owed is None or owed.in_flight is not request:
            return  # a fetch of a hole that broke again since: the next one covers it
        owed.in_flight = None
        trades: list[TransactionMsg] | None = None
        if 200 <= response.status < 300:
            try:
                trades = TRANSACTIONS_DECODER.decode(response.body)
            except DECODE_ERRORS as e:
                log.warning("%s transactions unreadable (%s); refetching", native, e)
        if trades is None:
            owed.failures += 1
            backoff = min(self.backoff_cap_ns, (NS // 2) << min(owed.failures - 1, 16))
            owed.not_before_ns = recv_ns + backoff
            return
        del self.owed[native]
        window = request.url.rpartition("=")[2]
        seconds = dict(WINDOWS)[window]
        self._store(native, owed, trades, recv_ns, out)
        covered_from_us = recv_ns // US - seconds * 1_000_000
        if owed.since_us < covered_from_us:
            self._event(
                out, native, EventKind.UNRECOVERABLE, recv_ns, first_missing(owed), -1,
                f"outage longer than Bitstamp's longest transactions window (day): trades "
                f"from {owed.since_us} to {covered_from_us} µs cannot be fetched back",
            )  # fmt: skip

    def _store(
        self,
        native: str,
        owed: Owed,
        trades: list[TransactionMsg],
        recv_ns: int,
        out: RecordSink,
    ) -> None:
        ids = self.trade_ids[native]
        symbol = self.symbols[native]
        stored: list[int] = []
        for t in sorted(trades, key=lambda t: t.tid):
            if owed.after_id >= 0:
                if t.tid <= owed.after_id:
                    continue  # stored before the hole
            elif (t.date + 1) * 1_000_000 <= owed.since_us:
                continue  # before the connection that broke: not this hole
            if t.type not in (0, 1):
                log.warning("%s transaction %d: type %r; skipped", native, t.tid, t.type)
                continue
            try:
                check_positive("price", t.price)
                check_positive("amount", t.amount)
            except RejectedFrame as e:
                log.warning("%s transaction %d refused (%s)", native, t.tid, e)
                continue
            if not ids.add(t.tid, t.date * 1_000_000):
                continue  # the stream delivered it
            stored.append(t.tid)
            out.trades.append(Trade(
                exchange=self.exchange, symbol=symbol, native_symbol=native, ts=t.date * NS,
                recv_ts=recv_ns, trade_id=t.tid, price=t.price, size=t.amount,
                side=BUY if t.type == 0 else SELL, first_trade_id=t.tid, last_trade_id=t.tid,
            ))  # fmt: skip
        self.recovered += len(stored)
        detail = (
            f"{len(stored)} trades fetched back over REST (ids {stored[0]}..{stored[-1]})"
            if stored
            else "fetched back over REST: no trade was missing"
        )
        received = stored[-1] + 1 if stored else -1
        self._event(
            out, native, EventKind.BACKFILLED, recv_ns, first_missing(owed), received, detail
        )

    # ------------------------------------------------------------------ a clean stop
    def abandon(self, now_ns: int, out: RecordSink) -> None:
        for native, owed in self.owed.items():
            self._event(
                out, native, EventKind.UNRECOVERABLE, now_ns, first_missing(owed), -1,
                "stopped before the trades of the outage were fetched back",
            )  # fmt: skip
        self.owed.clear()

    def _event(
        self,
        out: RecordSink,
        native: str,
        kind: EventKind,
        now_ns: int,
        expected: int,
        received: int,
        detail: str,
    ) -> None:
        out.events.append(Event(
            exchange=self.exchange, symbol=self.symbols[native], native_symbol=native, ts=now_ns,
            recv_ts=now_ns, kind=kind.value, channel=Channel.TRADES.value, expected=expected,
            received=received, detail=detail,
        ))  # fmt: skip
