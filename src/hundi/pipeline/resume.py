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
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, TypeVar

from hundi.records import (
    SEQUENCE_FIELDS,
    Channel,
    Event,
    EventKind,
    Record,
    one_exchange,
    stream_tally,
)
from hundi.stores.base import Store, StoreUnavailable, StreamPosition
from hundi.stores.merge import RESTART_DETAIL, window_time

log = logging.getLogger("hundi.pipeline")

# Back-off of a look-up whose store cannot be read (a cluster down): first wait, cap.
_RETRY_FIRST_S = 1.0
_RETRY_MAX_S = 30.0


@dataclass(slots=True)
class _Unanswered:
    """A look-up a store could not answer for now (an outage): asked again later.
    ``found``: the gaps told already; ``sparse_from``: set where only the sparse channels'
    check is left (the steady stream's end, which bounds their gap)."""

    failure: str
    found: list[Event] = field(default_factory=list)
    sparse_from: StreamPosition | None = None


@dataclass(slots=True)
class _Retry:
    channel: Channel
    first: Record
    delay_s: float
    due: float  # time.monotonic()
    sparse_from: StreamPosition | None = None  # ask for the sparse channels only


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
_T = TypeVar("_T")


_Call = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class _Worker:
    """Runs the look-ups in order on one daemon thread. Not a ThreadPoolExecutor: the
    interpreter joins its threads at exit, so a look-up still connecting to a store that is
    down (the connect timeout, per host) held the collector's exit well past its stop, with
    everything already stored."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def submit(self, call: Callable[..., _T], *args: Any) -> Future[_T]:
        future: Future[_T] = Future()
        self._calls.put((future, call, args))
        return future

    def shutdown(self) -> None:
        """Cancel the calls not started; the one running is not waited for."""
        while True:
            try:
                waiting = self._calls.get_nowait()
            except queue.Empty:
                break
            if waiting is not None:
                waiting[0].cancel()
        self._calls.put(None)

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            future, function, args = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args))
            except BaseException as exc:  # handed to whoever takes the result
                future.set_exception(exc)


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
        self._pending: list[Future[list[Event] | _Unanswered]] = []
        # per symbol, the look-up that tells its sparse channels (once per run); one given up
        # on (its answer discarded) tells them from the thread giving it up
        self._sparse_owner: dict[tuple[str, str], _Retry] = {}
        self._sparse_lock = threading.Lock()
        self._lookups = _Worker("resume")
        self._asked: dict[Future[list[Event] | _Unanswered], _Retry] = {}
        self._retrying: list[_Retry] = []  # unanswered look-ups waiting for their next try
        self._last_tries = False  # set by finish(): an unanswered look-up is not retried
        self._closed = False
        self._warned: set[tuple[Channel, str, str, bool]] = set()
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
                self._ask(_Retry(channel, first, _RETRY_FIRST_S, 0.0))

    def _ask(self, asking: _Retry) -> None:
        lookup = self._lookups.submit(self._gaps, asking)
        self._asked[lookup] = asking
        self._pending.append(lookup)

    def take(self, wait_s: float = 0.0) -> list[Event]:
        """Gap events of the look-ups done (waiting up to ``wait_s`` for the others). A look-up
        a store could not answer (an outage) is asked again when its back-off is due, from
        here (called per drained batch): the worker never waits on one stream, so the others'
        look-ups go on meanwhile."""
        now = time.monotonic()
        due = [r for r in self._retrying if r.due <= now]
        if due:
            self._retrying = [r for r in self._retrying if r.due > now]
            for asking in due:
                self._ask(asking)
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
            asking = self._asked.pop(lookup)
            try:
                result = lookup.result()
            except Exception as exc:  # a bug past the stores: the hole is still stored
                log.error("restart look-up of %s %s failed: %r", asking.first.symbol,
                          asking.channel.value, exc)  # fmt: skip
                result = self._given_up(asking, repr(exc))
            if isinstance(result, _Unanswered):
                events.extend(result.found)
                events.extend(self._unanswered(asking, result))
                continue
            stream = (asking.channel, asking.first.exchange, asking.first.symbol)
            warned = (*stream, asking.sparse_from is not None) in self._warned
            if warned and not any(_unknown_start(e) for e in result):
                log.info("the restart look-up of %s %s %s was answered", *stream[1:],
                         stream[0].value)  # fmt: skip
            events.extend(result)
        self._pending = still
        self.found += len(events)
        return events

    def _unanswered(self, asking: _Retry, result: _Unanswered) -> list[Event]:
        """Ask again after the back-off; at the stop, a gap of unknown start instead (for the
        sparse channels, their gap over the steady stream's span: whether they were stored
        before could not be told, and the collector was not running then either way)."""
        first = asking.first
        if self._last_tries:
            return self._given_up(asking, result.failure, result.sparse_from)
        stream = (asking.channel, first.exchange, first.symbol, result.sparse_from is not None)
        if stream not in self._warned:
            self._warned.add(stream)
            asked = (
                f"where {first.exchange} {first.symbol} {asking.channel.value} ended"
                if result.sparse_from is None
                else f"whether {first.exchange} {first.symbol} {'/'.join(SPARSE)} were stored"
            )
            log.warning(
                "cannot read %s before this run (%s); asking again until the store answers",
                asked, result.failure,
            )  # fmt: skip
        delay = min(asking.delay_s * 2, _RETRY_MAX_S)
        due = time.monotonic() + asking.delay_s
        self._retrying.append(_Retry(asking.channel, first, delay, due, result.sparse_from))
        return []

    def _given_up(
        self, asking: _Retry, why: str, sparse_from: StreamPosition | None = None
    ) -> list[Event]:
        """The gaps of a look-up given up on: a gap of unknown start for its stream and, if
        not told yet, for its symbol's sparse channels; for a look-up of the sparse channels
        only (its steady stream's gap given already), their gaps over that stream's span.
        Either way whether the sparse channels were stored before could not be told, and the
        collector was not running then: their hole is given all the same."""
        first = asking.first
        sparse_from = sparse_from if sparse_from is not None else asking.sparse_from
        if sparse_from is not None:
            return _sparse_events(asking.channel, first, sparse_from, SPARSE, self._before(first))
        log.warning(
            "where %s %s %s ended before this run is unknown (%s): its gap starts unknown",
            first.exchange, first.symbol, asking.channel.value, why,
        )  # fmt: skip
        sparse = SPARSE if self._tells_sparse(asking) else ()
        return [unknown_start_gap(channel, first, why) for channel in (asking.channel, *sparse)]

    def _before(self, first: Record) -> int:
        """What a look-up considers: rows older than the stream's first new record and than
        this run's start (see the class docstring)."""
        return min(first.ts, self.started_ns)

    def _tells_sparse(self, asking: _Retry) -> bool:
        """Whether ``asking`` is to tell its symbol's sparse channels: the first look-up to
        get there (on the look-up thread, or giving one up at the stop) takes it on; a look-up
        given up after taking it on still tells them (its answer is discarded)."""
        stream = _STREAM(asking.first)
        with self._sparse_lock:
            owner = self._sparse_owner.setdefault(stream, asking)
        return owner is asking

    def finish(self, wait_s: float) -> list[Event]:
        """At the collector's stop: the gap events of every look-up, waiting up to ``wait_s``
        for them; look-ups waiting to be asked again get one last try now. A stream whose
        stores did not answer gets a gap of unknown start (:func:`unknown_start_gap`) instead
        of none, so its hole is still a stored event. Then :meth:`close`."""
        self._last_tries = True
        for asking in self._retrying:
            self._ask(asking)
        self._retrying = []
        events = self.take(wait_s)
        self._lookups.shutdown()  # the look-ups not begun are not begun now
        for lookup in self._pending:  # not answered within wait_s: not waited for
            given = self._given_up(self._asked.pop(lookup), "no answer before the stop")
            events += given
            self.found += len(given)
        self._pending = []
        self.close()
        return events

    def close(self) -> None:
        self._closed = True
        self._lookups.shutdown()

    def _gaps(self, asking: _Retry) -> list[Event] | _Unanswered:
        """The stream's restart gap and, with it, those of its sparse channels (look-up thread;
        ``sparse_from``: only the sparse channels' gaps, the steady stream's end known).

        A store that cannot be reached now (a Cassandra cluster down at the restart:
        :class:`StoreUnavailable`) makes it :class:`_Unanswered`, asked again later (see
        :meth:`take`): giving up stored no gap at all, so the hole went silent. Other failures
        (a damaged chunk, a refused login) will not pass by asking again: with no store
        unreachable, a gap of unknown start at once."""
        channel, first, sparse_from = asking.channel, asking.first, asking.sparse_from
        if sparse_from is not None:
            sparse = self._sparse_gaps(channel, first, sparse_from)
            if isinstance(sparse, _Unanswered):
                return _Unanswered(sparse.failure, [], sparse_from)
            return sparse
        before = self._before(first)
        last, failure, outage = self._position(channel, first, before)
        if last is None and failure is not None:
            if outage:
                return _Unanswered(failure)
            if not self._closed:  # else given up at the stop: this answer is discarded
                log.warning(
                    "where %s %s %s ended before this run cannot be read (%s): its gap "
                    "starts unknown", first.exchange, first.symbol, channel.value, failure,
                )  # fmt: skip
            gaps = [unknown_start_gap(channel, first, failure)]
            return gaps + self._sparse_unknown(asking, failure)
        gap = gap_event(channel, first, last)
        if gap is None or last is None:
            return []
        if not self._tells_sparse(asking):
            return [gap]
        sparse = self._sparse_gaps(channel, first, last)  # this look-up (or its retry) tells
        if isinstance(sparse, _Unanswered):
            return _Unanswered(sparse.failure, [gap], last)
        return [gap, *sparse]

    def _sparse_gaps(
        self, channel: Channel, first: Record, last: StreamPosition
    ) -> list[Event] | _Unanswered:
        """The gaps of the sparse channels stored for the symbol before (where a store that
        might hold them cannot be read, not being sure, the gap is given all the same)."""
        before = self._before(first)
        broken = []
        for sparse in SPARSE:
            stored, failure, outage = self._position(sparse, first, before)
            if stored is None and failure is not None and outage:
                return _Unanswered(failure)
            if stored is not None or failure is not None:
                broken.append(sparse)  # else not collected for this symbol: no stream to break
        return _sparse_events(channel, first, last, broken, before)

    def _sparse_unknown(self, asking: _Retry, why: str) -> list[Event]:
        """With the steady stream's end unreadable (``why``), the sparse channels stored for
        the symbol before (or where a store cannot tell) get a gap of unknown start too: no
        steady stream's span bounds their hole, which went silent."""
        if not self._tells_sparse(asking):
            return []
        first = asking.first
        before = self._before(first)
        gaps = []
        for sparse in SPARSE:
            stored, failure, _ = self._position(sparse, first, before)
            if stored is not None or failure is not None:
                gaps.append(unknown_start_gap(sparse, first, why))
        return gaps

    def _position(
        self, channel: Channel, first: Record, before: int
    ) -> tuple[StreamPosition | None, str | None, bool]:
        """(where the first store that can tell says the stream ended, None, False), else
        (None, why the stores that may hold it could not be read or None if every store
        answered, whether one of them is only unreachable now: asking again may tell)."""
        failures: list[str] = []
        outage = False
        for store in self.stores:
            try:
                found = store.last_position(first.exchange, first.symbol, channel, before)
            except Exception as exc:  # collection goes on meanwhile
                failures.append(f"store {store.describe()}: {exc}")
                outage = outage or isinstance(exc, StoreUnavailable)
                continue
            if found is not None:
                return found, None, False
        return None, "; ".join(failures) or None, outage


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


def _sparse_events(
    channel: Channel,
    first: Record,
    last: StreamPosition,
    broken: Sequence[Channel],
    before: int,
) -> list[Event]:
    """The gaps of the sparse channels ``broken`` over the span the steady ``channel`` shows,
    from its last stored row up to this run's start (``before``), not its first record: this
    run's own sparse rows received before that record would lie inside and read as covering
    the hole."""
    span = f"between {window_time(last.ts)} and {window_time(before)}"
    shown = f"{channel.value} of the same symbol shows it"
    head = f"{RESTART_DETAIL} the collector was not running {span} ({shown});"
    return [
        _event(first, sparse, -1, -1, f"{head} {sparse.value} of that span were not received")
        for sparse in broken
    ]


def unknown_start_gap(channel: Channel, first: Record, why: str) -> Event:
    """The gap of a stream whose stores could not say where it ended before this run: its
    start is unknown, so it covers nothing to fetch back and is never judged covered; what
    was sent before ``first`` may be missing."""
    detail = (
        f"{RESTART_DETAIL} {_UNKNOWN_START} (its stores were not read: {why}); what was sent "
        "before this run's first record may be missing"
    )
    return _event(first, channel, -1, -1, detail)


_UNKNOWN_START = "where the stream ended before this run is unknown"


def _unknown_start(event: Event) -> bool:
    return _UNKNOWN_START in event.detail


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
