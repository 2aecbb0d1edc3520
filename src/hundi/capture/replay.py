"""Replay raw captures through a venue protocol: the same records as the live collector made.

The replay plays the collector's I/O role with recorded I/O: OPEN → ``on_open``, RECV →
``receive``, CLOSE → ``on_close``, and every REST request the protocol asks for (at the
capture's clock, first at the time of the first event, as a collector asks when it starts:
e.g. a venue's instrument list) is answered with the first captured REST response for the
same URL path and ``symbol`` received at or after the request. A request nobody answered in
the capture stays unanswered, exactly as it was live (the book stays unsynced); one the live
run stopped before its answer came is recorded as such (``NO_ANSWER_AT_STOP``) and stays
unanswered without making the replay incomplete. A clean stop's marks (``STOPPED_ASKING``,
then ``FINISHED_OWED`` or ``ABANDONED_OWED``) make the replay stop asking, ask only what is
owed (``finishing_requests``) and end that or ``abandon`` where the live REST loop did; what
it asks after the stop began and the capture does not answer counts as stopped (see
:mod:`hundi.capture.events`).

Connections are matched by key (our captures) or, for foreign recordings whose single socket
may carry streams the protocol spreads over several connections, by URL: a captured connection
drives every protocol connection with the same URL, or all of them if none matches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import msgspec

from hundi.accounting import Accounting
from hundi.capture.events import (
    ABANDONED_OWED,
    FINISHED_OWED,
    NO_ANSWER_AT_STOP,
    STOPPED_ASKING,
    VENUE_MARK,
    CaptureEvent,
    CaptureKind,
    is_answer,
    split_venue,
)
from hundi.capture.quarantine import Quarantine
from hundi.exchanges.base import (
    FrameStatus,
    RecordSink,
    RejectedFrame,
    RestRequest,
    RestResponse,
    VenueProtocol,
)
from hundi.records import STOP_DETAIL, Channel, EventKind, Record, as_stopped, stopped_event

Batch = Mapping[Channel, Sequence[Record]]
BATCH_RECORDS = 20_000
PROGRESS_EVERY = 8192  # captured events between two progress calls

# (events replayed so far, the capture's clock in ns): called every PROGRESS_EVERY events
Progress = Callable[[int, int], None]


@dataclass(slots=True)
class ReplayStats:
    """What the replay saw besides frame accounting (goes into the summary)."""

    events: int = 0
    opens: int = 0
    closes: int = 0
    rest_answered: int = 0
    rest_unanswered: int = 0  # requests the capture holds no response for
    rest_unused: int = 0  # captured responses nobody asked for
    rest_stopped: int = 0  # requests the live run stopped before any answer came (as live)
    first_ts: int | None = None
    last_ts: int | None = None
    skipped: int = 0  # events of connections this protocol does not own

    @property
    def span_s(self) -> float:
        """Seconds of capture replayed (first to last event)."""
        if self.first_ts is None or self.last_ts is None:
            return 0.0
        return (self.last_ts - self.first_ts) / 1e9

    def as_dict(self) -> dict[str, object]:
        return {
            "events": self.events,
            "span_s": round(self.span_s, 3),
            "opens": self.opens,
            "closes": self.closes,
            "rest": {
                "answered": self.rest_answered,
                "unanswered": self.rest_unanswered,
                "unused": self.rest_unused,
                "stopped": self.rest_stopped,
            },
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "skipped": self.skipped,
        }


def request_key(url: str) -> tuple[str, str]:
    """What identifies a REST request across hosts and limits: (path, symbol)."""
    parts = urlsplit(url)
    symbol = parse_qs(parts.query).get("symbol", [""])[0].upper()
    return parts.path, symbol


class _ConnectionMap:
    """Captured connection key → the protocol connection keys it drives."""

    def __init__(self, protocol: VenueProtocol) -> None:
        self._specs = protocol.connections()
        self._keys = {s.key for s in self._specs}
        self._map: dict[str, tuple[str, ...]] = {}

    def owns(self, conn: str) -> bool:
        return conn in self._keys

    def resolve(self, conn: str, url: str) -> tuple[str, ...]:
        found = self._map.get(conn)
        if found is not None:
            return found
        if conn in self._keys:
            found = (conn,)
        else:
            base = url.split("?", 1)[0].rstrip("/")
            same_url = tuple(s.key for s in self._specs if s.url.rstrip("/") == base)
            found = same_url or tuple(s.key for s in self._specs)
        self._map[conn] = found
        return found


class _Replayer:
    def __init__(
        self,
        protocol: VenueProtocol,
        sink: Callable[[Batch], None],
        accounting: Accounting,
        quarantine: Quarantine | None,
        only_known_connections: bool,
        progress: Progress | None = None,
        venue: str | None = None,
    ) -> None:
        self.progress = progress
        self.only_known_connections = only_known_connections
        self.venue = venue
        self.protocol = protocol
        self.sink = sink
        self.accounting = accounting
        self.quarantine = quarantine
        self.out = RecordSink()
        self.connections = _ConnectionMap(protocol)
        # (asked at, request, its key, asked after the stop began)
        self.pending: list[tuple[int, RestRequest, tuple[str, str], bool]] = []
        self.opened: set[str] = set()
        self.stats = ReplayStats()
        # A clean stop was captured: live, nothing asks the venue for new REST calls after it
        # (only what is owed is finished), so neither does the replay.
        self.stopping = False
        # Between the capture's STOPPED_ASKING mark and its FINISHED_OWED or ABANDONED_OWED
        # mark, the replay asks what is owed, as the live stop did.
        self.finishing = False

    def run(self, events: Iterable[CaptureEvent]) -> ReplayStats:
        progress = self.progress
        for event in events:
            if self.stats.first_ts is None:
                self.ask(event.ts)  # what the protocol wants at start, before the capture's clock
            self.advance_clock(event.ts)
            self.handle(event)
            self.ask(event.ts)
            if len(self.out) >= BATCH_RECORDS:
                self.emit()
            if progress is not None and not self.stats.events % PROGRESS_EVERY:
                progress(self.stats.events, event.ts)
        late = sum(after_stop for *_, after_stop in self.pending)
        self.stats.rest_stopped += late  # asked after the stop began: live may never have
        self.stats.rest_unanswered = len(self.pending) - late
        self.emit()
        if progress is not None and self.stats.last_ts is not None:
            progress(self.stats.events, self.stats.last_ts)
        return self.stats

    def advance_clock(self, now_ns: int) -> None:
        """Let timed REST requests (back-offs, rate limits) fall due before ``now_ns``."""
        while (wake := self.protocol.next_wakeup_ns()) is not None and wake < now_ns:
            if not self.ask(wake):
                break

    def ask(self, now_ns: int) -> bool:
        if self.finishing:
            return self.finish(now_ns)
        if self.stopping:
            return False
        requests = self.protocol.due_requests(now_ns)
        for request in requests:
            self.pending.append((now_ns, request, request_key(request.url), False))
        return bool(requests)

    def handle(self, event: CaptureEvent) -> None:
        stats = self.stats
        stats.events += 1
        if stats.first_ts is None:
            stats.first_ts = event.ts
        stats.last_ts = event.ts
        if VENUE_MARK in event.conn:  # a capture of several venues: this one's events only
            venue, key = split_venue(event.conn)
            if venue is not None:
                if not self.ours(venue):
                    stats.skipped += 1
                    return
                event = msgspec.structs.replace(event, conn=key)
        kind = event.kind
        if (
            self.only_known_connections
            and kind is not CaptureKind.REST
            and not self.connections.owns(event.conn)
        ):
            stats.skipped += 1
            return
        if kind is CaptureKind.RECV:
            self.receive(event)
        elif kind is CaptureKind.REST:
            self.answer(event)
        elif kind is CaptureKind.OPEN:
            stats.opens += 1
            if event.conn in self.opened:
                self.accounting.reconnects += 1
            self.opened.add(event.conn)
            for key in self.connections.resolve(event.conn, event.url):
                self.protocol.on_open(key, event.ts, self.out)
        elif kind is CaptureKind.CLOSE:
            stats.closes += 1
            self.close(event)
        elif kind is CaptureKind.SENT:
            for key in self.connections.resolve(event.conn, event.url):
                self.protocol.replayed_sent(key, event.data, event.ts)
        # a replay cannot reconnect or send: the capture shows what the live run did
        self.protocol.take_reconnects()
        self.protocol.take_messages()

    def ours(self, venue: str) -> bool:
        """Whether a captured venue id is the replayed venue's (without one given: any market
        of the protocol's exchange)."""
        if self.venue is not None:
            return venue == self.venue
        return venue.partition("/")[0] == self.protocol.exchange

    def close(self, event: CaptureEvent) -> None:
        """A captured close; a clean stop's (its data says so) stores what the live collector
        stored then: ``stopped`` events, not the venue's gap and resync."""
        detail = event.data.decode("utf-8", "replace") if event.data else ""
        stopped = detail.startswith(STOP_DETAIL)
        self.stopping |= stopped
        events = self.out.events
        for key in self.connections.resolve(event.conn, event.url):
            if not stopped:
                self.protocol.on_close(key, event.ts, self.out)
                continue
            events.append(stopped_event(self.protocol.exchange, key, event.ts, detail))
            mark = len(events)
            self.protocol.on_close(key, event.ts, self.out)
            events[mark:] = as_stopped(events[mark:], detail)

    def receive(self, event: CaptureEvent) -> None:
        key = self.connections.resolve(event.conn, event.url)[0]
        try:
            status = self.protocol.receive(key, event.data, event.ts, self.out)
        except RejectedFrame as rejected:
            self.accounting.reject(rejected.reason)
            if self.quarantine is not None:
                self.quarantine.add(event.ts, event.conn, rejected.reason, event.data)
            return
        self.accounting.count(FrameStatus(status))

    def finish(self, now_ns: int) -> bool:
        """Ask what is owed, as the live stop does. Nothing owed (``None``) does not end it
        here: a frame read after the stop began may still make something owed, and the
        capture's mark says when the live stop saw nothing left."""
        requests = self.protocol.finishing_requests(now_ns) or []
        for request in requests:
            self.pending.append((now_ns, request, request_key(request.url), True))
        return bool(requests)

    def mark(self, event: CaptureEvent) -> None:
        """A clean stop's mark: ask at its time, as live did one last time, then change mode.
        Our captures of several venues hold each one's marks: only this venue's count."""
        if self.only_known_connections and not self.connections.owns(event.conn):
            return
        if event.status == STOPPED_ASKING:
            if self.stopping:  # a second mark (one per manager and venue): nothing new
                return
            self.advance_clock(event.ts)
            self.ask(event.ts)  # the stop's last look
            self.stopping = self.finishing = True
            self.finish(event.ts)
        elif event.status == FINISHED_OWED:
            self.finishing = False
        elif event.status == ABANDONED_OWED and self.finishing:
            self.finishing = False
            self.protocol.abandon(event.ts, self.out)
        # another negative status: a mark of a later version, not an answer

    def answer(self, event: CaptureEvent) -> None:
        if not is_answer(event.status) and event.status != NO_ANSWER_AT_STOP:
            self.mark(event)
            return
        key = request_key(event.url)
        for index, (asked_ns, request, wanted, _) in enumerate(self.pending):
            if wanted == key and asked_ns <= event.ts:
                del self.pending[index]
                if event.status == NO_ANSWER_AT_STOP:  # live got none either: it stays so
                    self.stats.rest_stopped += 1
                    return
                response = RestResponse(status=event.status, body=event.data)
                self.protocol.receive_response(request, response, event.ts, self.out)
                self.stats.rest_answered += 1
                return
        if event.status != NO_ANSWER_AT_STOP:
            self.stats.rest_unused += 1

    def emit(self) -> None:
        batch = self.out.drain()
        if not batch:
            return
        accounting = self.accounting
        for channel, records in batch.items():
            accounting.records[channel.value] += len(records)
        for record in batch.get(Channel.EVENTS, ()):
            kind = getattr(record, "kind", "")
            if kind == EventKind.GAP:
                accounting.gaps += 1
            elif kind == EventKind.RESYNC:
                accounting.resyncs += 1
        self.sink(batch)


def replay_events(
    events: Iterable[CaptureEvent],
    protocol: VenueProtocol,
    sink: Callable[[Batch], None],
    accounting: Accounting,
    quarantine: Quarantine | None = None,
    *,
    only_known_connections: bool = False,
    progress: Progress | None = None,
    venue: str | None = None,
) -> ReplayStats:
    """Drive ``protocol`` with captured ``events`` (in receive order); batches go to ``sink``.

    ``only_known_connections`` skips events of connections the protocol does not own (our
    captures of a multi-venue collector); otherwise unknown connections are matched by URL.
    ``venue`` (``EXCHANGE/MARKET``, :func:`~hundi.capture.events.venue_id`) picks this venue's
    events from a capture of several venues, which names the venue in each event; without
    it, those of any market of the protocol's exchange are taken.
    ``progress`` hears how far the replay is, now and then (a progress bar).
    """
    replayer = _Replayer(
        protocol,
        sink,
        accounting,
        quarantine,
        only_known_connections,
        progress=progress,
        venue=venue,
    )
    return replayer.run(events)
