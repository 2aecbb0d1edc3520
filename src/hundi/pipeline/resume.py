"""Holes between runs: what a restart did not receive is a stored gap, not a silent seam.

A collector that stops (kill -9, SIGTERM, a crash, a reboot) and starts again into the same
store misses whatever the exchange sent in between. Live gap detection cannot see that hole:
it starts from nothing. So the collector checks the first record of every stream of the new
run against the last position its stores hold (``Store.last_position``) and, where they do not
meet, stores a ``gap`` event:

* sequenced channels (``SEQUENCE_FIELDS``: trade ids, book update ids, order-level book
  sequences): a gap when the first new id is past the last stored one (+1 for trades, whose
  ids are contiguous; a book restarts from a snapshot whose id is past the last stored change);
  ``expected``/``received`` bound the missing ids, which is what a REST backfill of trades
  needs;
* other market-data channels (quotes, tickers, candles): a gap in time from the last stored
  record to the first new one (they carry no sequence to prove continuity);
* sparse channels (``SPARSE``: liquidations) cannot show the hole themselves (their last row
  may be hours before the stop in a calm market): where a steady stream of the same symbol
  shows it and the sparse channel was stored for the symbol before this run, the sparse
  channel gets a gap over that same span, once per symbol and run.

The event is stamped with the first new record's times, like a gap found live; coverage then
splits the stream there. The position comes from the first store that can tell (the embedded
store reads two columns of its last day, Cassandra one newest row per day; KairosDB cannot).
Per drained batch the check costs a set of its streams per watched channel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from operator import attrgetter

from hundi.records import (
    SEQUENCE_FIELDS,
    Channel,
    Event,
    EventKind,
    Record,
    one_exchange,
    stream_tally,
)
from hundi.stores.base import Store, StreamPosition
from hundi.stores.merge import RESTART_DETAIL, window_time

log = logging.getLogger("hundi.pipeline")

# Back-off of a look-up whose store cannot be read (a cluster down): first wait, cap.
_RETRY_FIRST_S = 1.0
_RETRY_MAX_S = 30.0
# How long the stop waits for look-ups told to give up (they return at once unless a store
# call is under way).
_GIVE_UP_WAIT_S = 2.0

# Streams that flow steadily, so "nothing stored between the last row and this run's first"
# is a hole. Not liquidations (sparse: the last one may be hours before the collector stopped,
# so their own gap would claim a quiet market as missed data: see SPARSE) nor instruments
# (stored at start and on listing changes only).
WATCHED = (
    Channel.TRADES,
    Channel.BOOK,
    Channel.BOOK_L3,
    Channel.BBO,
    Channel.TICKER,
    Channel.CANDLES,
    Channel.DERIVATIVE_TICKER,
)
# Streams too sparse to show a restart's hole by their own rows: a steady stream of the same
# symbol (WATCHED) bounds it for them.
SPARSE = (Channel.LIQUIDATIONS,)
_STREAM: Callable[[Record], tuple[str, str]] = attrgetter("exchange", "symbol")
_SYMBOL: Callable[[Record], str] = attrgetter("symbol")


class RestartGaps:
    """Gap events for the holes between what ``stores`` held before this run and this run.

    Runs on the collector's event loop without blocking it: the first record of each new
    stream starts a look-up of the stores' last position on a worker thread (:meth:`note`),
    and the gap events of finished look-ups join the next drained batch (:meth:`take`). The
    look-up only considers rows older than the stream's first new record, so this run's own
    writes (flushed meanwhile) can never hide the hole, and older than this run's start
    (``started_ns``): when both collectors of an A/B pair restart together, the other one's
    new rows may be stamped before this one's first record (a REST snapshot is stamped when
    received, after the changes the other already stored), and bounding by the first record
    alone let each hide the other's hole, so neither stored the gap both had.
    """

    def __init__(self, stores: Sequence[Store], started_ns: int | None = None) -> None:
        self.stores = list(stores)
        self.started_ns = time.time_ns() if started_ns is None else started_ns
        self._seen: dict[Channel, set[tuple[str, str]]] = {c: set() for c in WATCHED}
        self._pending: list[Future[list[Event]]] = []
        self._sparse_checked: set[tuple[str, str]] = set()  # the look-up thread's only
        self._lookups = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resume")
        self._asked: dict[Future[list[Event]], tuple[Channel, Record]] = {}
        self._giving_up = threading.Event()  # set by finish(): stop asking unreachable stores
        self.found = 0  # gap events made (for the summary)

    def note(self, batch: Mapping[Channel, Sequence[Record]]) -> None:
        """Start a look-up for every stream whose first record of this run is in ``batch``."""
        for channel in WATCHED:
            records = batch.get(channel)
            if not records:
                continue
            seen = self._seen[channel]
            tallied = stream_tally(records)
            if tallied is not None:  # one C pass (the collector's steady state)
                if all((tallied[0], symbol) in seen for symbol in tallied[1]):
                    continue
            elif (exchange := one_exchange(records)) is not None:
                if all((exchange, symbol) in seen for symbol in set(map(_SYMBOL, records))):
                    continue  # every stream here was checked already: the steady state
            elif set(map(_STREAM, records)) <= seen:
                continue
            for first in _firsts(records, seen):
                seen.add(_STREAM(first))
                lookup = self._lookups.submit(self._gaps, channel, first)
                self._asked[lookup] = (channel, first)
                self._pending.append(lookup)

    def take(self, wait_s: float = 0.0) -> list[Event]:
        """Gap events of the look-ups done (waiting up to ``wait_s`` for the others)."""
        if not self._pending:
            return []
        if wait_s > 0:
            wait(self._pending, timeout=wait_s)
        events: list[Event] = []
        still = []
        for lookup in self._pending:
            if not lookup.done():
                still.append(lookup)
                continue
            events.extend(lookup.result())
            self._asked.pop(lookup, None)
        self._pending = still
        self.found += len(events)
        return events

    def finish(self, wait_s: float) -> list[Event]:
        """At the collector's stop: the gap events of every look-up, waiting up to ``wait_s``
        for those still asking; a stream whose stores never answered gets a gap of unknown
        start (:func:`unknown_start_gap`) instead of none, so its hole is still a stored
        event. Then :meth:`close`."""
        events = self.take(wait_s)
        if self._pending:
            self._giving_up.set()  # those waiting to ask again return their unknown gap now
            events += self.take(min(wait_s, _GIVE_UP_WAIT_S))
        for lookup in self._pending:  # still inside a store call: not waited for
            channel, first = self._asked[lookup]
            events.append(unknown_start_gap(channel, first, "no answer before the stop"))
            self.found += 1
        self._pending = []
        self.close()
        return events

    def close(self) -> None:
        self._giving_up.set()
        self._lookups.shutdown(wait=False, cancel_futures=True)

    def _gaps(self, channel: Channel, first: Record) -> list[Event]:
        """The stream's restart gap and, with it, those of its sparse channels (look-up thread).

        A store that cannot be read now (a Cassandra cluster down at the restart) is asked
        again, with a capped back-off, until it answers: where the stream ended is what the
        gap needs, and giving up stored no gap at all (the hole went silent). At the stop
        (:meth:`finish`) a stream still unanswered gets a gap of unknown start."""
        before = min(first.ts, self.started_ns)
        delay = _RETRY_FIRST_S
        warned = False
        while True:
            last, failure = self._position(channel, first, before)
            if last is not None or failure is None:
                break
            if not warned:
                log.warning(
                    "cannot read where %s %s %s ended before this run (%s); asking again "
                    "until the store answers",
                    first.exchange, first.symbol, channel.value, failure,
                )  # fmt: skip
                warned = True
            if self._giving_up.wait(delay):
                return [unknown_start_gap(channel, first, failure)]
            delay = min(delay * 2, _RETRY_MAX_S)
        if warned:
            log.info("read where %s %s %s ended", first.exchange, first.symbol, channel.value)
        gap = gap_event(channel, first, last)
        if gap is None or last is None:
            return []
        stream = _STREAM(first)
        if stream in self._sparse_checked:
            return [gap]
        self._sparse_checked.add(stream)
        found = [gap]
        for sparse in SPARSE:
            if self._position(sparse, first, before)[0] is None:
                continue  # not collected for this symbol before (or not told): no stream
            # up to this run's start, not its first steady record: this run's own sparse
            # rows received before that record would lie inside and read as covering it
            detail = (
                f"{RESTART_DETAIL} the collector was not running between "
                f"{window_time(last.ts)} and {window_time(before)} ({channel.value} of the "
                f"same symbol shows it); {sparse.value} of that span were not received"
            )
            found.append(_event(first, sparse, -1, -1, detail))
        return found

    def _position(
        self, channel: Channel, first: Record, before: int
    ) -> tuple[StreamPosition | None, str | None]:
        """(where the first store that can tell says the stream ended, None), else (None,
        why a store that may hold it could not be read; None if every store answered)."""
        failure: str | None = None
        for store in self.stores:
            try:
                found = store.last_position(first.exchange, first.symbol, channel, before)
            except Exception as exc:  # asked again (see _gaps); collection goes on meanwhile
                failure = f"store {store.describe()}: {exc}"
                continue
            if found is not None:
                return found, None
        return None, failure


def gap_event(channel: Channel, first: Record, last: StreamPosition | None) -> Event | None:
    """The gap between a stream's stored end ``last`` and this run's ``first`` record."""
    if last is None:
        return None  # a new stream
    field = SEQUENCE_FIELDS.get(channel)
    if field is not None and last.last_id >= 0:
        first_id = int(getattr(first, field))
        expected = last.last_id + 1
        # trade ids are contiguous; a book restarts from a snapshot at or after the last id
        reach = expected if channel is Channel.TRADES else last.last_id
        if first_id <= reach:
            return None
        detail = (
            f"restart: ids {expected}..{first_id - 1} not received between runs "
            f"(last stored at {window_time(last.ts)})"
            if channel is Channel.TRADES
            else f"restart: updates after {last.last_id} up to {first_id} not received between "
            f"runs (last stored at {window_time(last.ts)}); the book restarts from a snapshot"
        )
        return _event(first, channel, expected, first_id, detail)
    if first.ts <= last.ts:
        return None
    silent = f"between {window_time(last.ts)} and {window_time(first.ts)}"
    detail = f"{RESTART_DETAIL} nothing received {silent}"
    return _event(first, channel, -1, -1, detail)


def unknown_start_gap(channel: Channel, first: Record, why: str) -> Event:
    """The gap of a stream whose stores could not say where it ended before this run: its
    start is unknown, so it covers nothing to fetch back and is never judged covered; what
    was sent before ``first`` may be missing."""
    detail = (
        f"{RESTART_DETAIL} where the stream ended before this run is unknown (its stores were "
        f"not read: {why}); what was sent before this run's first record may be missing"
    )
    return _event(first, channel, -1, -1, detail)


def _event(first: Record, channel: Channel, expected: int, received: int, detail: str) -> Event:
    return Event(
        exchange=first.exchange,
        symbol=first.symbol,
        native_symbol=first.native_symbol,
        ts=first.ts,
        recv_ts=first.recv_ts,
        kind=EventKind.GAP.value,
        channel=channel.value,
        expected=expected,
        received=received,
        detail=detail,
    )


def _firsts(records: Sequence[Record], seen: set[tuple[str, str]]) -> list[Record]:
    """The first record of each stream of ``records`` not in ``seen``, in order."""
    found: dict[tuple[str, str], Record] = {}
    for record in records:
        stream = _STREAM(record)
        if stream not in seen and stream not in found:
            found[stream] = record
    return list(found.values())
