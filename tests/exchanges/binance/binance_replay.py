"""Replay a recording through the Binance protocol with the package engine, watching it work.

:func:`hundi.capture.replay.replay_events` drives the protocol exactly as ``hundi replay`` does;
the protocol is wrapped so the tests also see every REST request it makes, which recorded
response answered it, and whether any book was crossed after any frame or snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from hundi.accounting import Accounting
from hundi.capture.events import CaptureEvent
from hundi.capture.replay import Batch, ReplayStats, replay_events
from hundi.exchanges.base import (
    BookStatus,
    FrameStatus,
    RecordSink,
    RestRequest,
    RestResponse,
    StreamSpec,
    VenueProtocol,
)
from hundi.exchanges.binance.protocol import BinanceProtocol
from hundi.records import BID, BookChange


@dataclass
class ReplayResult:
    sink: RecordSink = field(default_factory=RecordSink)  # every record the replay emitted
    accounting: Accounting = field(default_factory=Accounting)
    stats: ReplayStats = field(default_factory=ReplayStats)
    requests: list[tuple[int, RestRequest]] = field(default_factory=list)
    answered: list[tuple[int, RestRequest, str]] = field(default_factory=list)  # + recorded url
    crossed: list[str] = field(default_factory=list)
    book_checks: int = 0

    def collect(self, batch: Batch) -> None:
        for channel, records in batch.items():
            getattr(self.sink, channel.value).extend(records)


def query_symbol(url: str) -> str:
    return parse_qs(urlsplit(url).query)["symbol"][0]


class _Watched(VenueProtocol):
    """The protocol under test, unchanged, with its REST traffic logged and books checked."""

    def __init__(self, protocol: BinanceProtocol, result: ReplayResult) -> None:
        self.protocol = protocol
        self.result = result
        self.event: CaptureEvent | None = None  # the capture event being replayed
        self.frames = 0

    def feed(self, events: Iterable[CaptureEvent]) -> Iterator[CaptureEvent]:
        for self.event in events:
            yield self.event

    def check_books(self, where: str) -> None:
        result = self.result
        for state in self.protocol.books():
            result.book_checks += 1
            if (
                state.synced
                and not (math.isnan(state.best_bid) or math.isnan(state.best_ask))
                and state.best_bid >= state.best_ask
            ):
                result.crossed.append(f"{state.symbol} at {where}")

    def connections(self) -> list[StreamSpec]:
        return self.protocol.connections()

    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        self.frames += 1
        try:
            return self.protocol.receive(conn_key, data, recv_ns, out)
        finally:
            self.check_books(f"frame {self.frames}")

    def on_open(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self.protocol.on_open(conn_key, now_ns, out)

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self.protocol.on_close(conn_key, now_ns, out)

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        requests = self.protocol.due_requests(now_ns)
        self.result.requests += [(now_ns, request) for request in requests]
        return requests

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        assert self.event is not None
        self.protocol.receive_response(request, response, recv_ns, out)
        self.result.answered.append((recv_ns, request, self.event.url))
        self.check_books(f"snapshot {request.key}")

    def next_wakeup_ns(self) -> int | None:
        return self.protocol.next_wakeup_ns()

    def take_reconnects(self) -> list[str]:
        return self.protocol.take_reconnects()

    def books(self) -> list[BookStatus]:
        return self.protocol.books()


def replay(protocol: BinanceProtocol, events: Iterable[CaptureEvent]) -> ReplayResult:
    result = ReplayResult()
    watched = _Watched(protocol, result)
    result.stats = replay_events(watched.feed(events), watched, result.collect, result.accounting)
    return result


class RowBook:
    """Rebuilds books from emitted BookChange rows alone, as a store reader would.

    A run of snapshot rows (a snapshot row after a non-snapshot row, or with another
    ``update_id``) restarts the symbol's book.
    """

    def __init__(self) -> None:
        self.books: dict[str, tuple[dict[float, float], dict[float, float]]] = {}
        self._last: dict[str, tuple[bool, int]] = {}

    def apply(self, rows: Iterable[BookChange]) -> None:
        for row in rows:
            if row.snapshot and self._last.get(row.symbol) != (True, row.update_id):
                self.books[row.symbol] = ({}, {})
            self._last[row.symbol] = (row.snapshot, row.update_id)
            bids, asks = self.books[row.symbol]
            side = bids if row.side == BID else asks
            if row.size > 0:
                side[row.price] = row.size
            else:
                side.pop(row.price, None)
