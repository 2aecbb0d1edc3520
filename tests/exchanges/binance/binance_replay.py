"""Deterministic replay of a recording through a venue protocol, for the Binance tests.

WebSocket frames go to ``receive`` at their recorded receive time. The protocol's snapshot
requests are answered with the recorded REST responses for the same symbol, delivered at their
recorded time and only if the request already existed then (a response recorded before the
request cannot answer it). After every frame or response the books are checked for crossing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from hundi.capture.events import CaptureEvent, CaptureKind
from hundi.exchanges.base import FrameStatus, RecordSink, RejectedFrame, RestRequest, RestResponse
from hundi.exchanges.binance.protocol import BinanceProtocol
from hundi.records import BID, BookChange


@dataclass
class ReplayResult:
    sink: RecordSink = field(default_factory=RecordSink)
    received: int = 0
    processed: int = 0
    filtered: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    requests: list[tuple[int, RestRequest]] = field(default_factory=list)
    answered: list[tuple[int, RestRequest, str]] = field(default_factory=list)  # + recorded url
    unused_responses: list[str] = field(default_factory=list)  # symbols nobody asked for (yet)
    crossed: list[str] = field(default_factory=list)
    book_checks: int = 0


def query_symbol(url: str) -> str:
    return parse_qs(urlsplit(url).query)["symbol"][0]


def check_books(protocol: BinanceProtocol, result: ReplayResult, where: str) -> None:
    for state in protocol.books():
        result.book_checks += 1
        if (
            state.synced
            and not (math.isnan(state.best_bid) or math.isnan(state.best_ask))
            and state.best_bid >= state.best_ask
        ):
            result.crossed.append(f"{state.symbol} at {where}")


def replay(protocol: BinanceProtocol, events: Iterable[CaptureEvent]) -> ReplayResult:
    result = ReplayResult()
    pending: dict[str, RestRequest] = {}
    for event in events:
        if event.kind is CaptureKind.RECV:
            result.received += 1
            try:
                status = protocol.receive(event.conn, event.data, event.ts, result.sink)
            except RejectedFrame as e:
                result.rejected[e.reason] += 1
            else:
                if status is FrameStatus.PROCESSED:
                    result.processed += 1
                else:
                    result.filtered += 1
            check_books(protocol, result, f"frame {result.received}")
        elif event.kind is CaptureKind.REST:
            symbol = query_symbol(event.url)
            request = pending.pop(symbol, None)
            if request is None:
                result.unused_responses.append(symbol)
            else:
                response = RestResponse(event.status, event.data)
                protocol.receive_response(request, response, event.ts, result.sink)
                result.answered.append((event.ts, request, event.url))
                check_books(protocol, result, f"snapshot {symbol}")
        for request in protocol.due_requests(event.ts):
            pending[request.key] = request
            result.requests.append((event.ts, request))
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
