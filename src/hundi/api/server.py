"""The HTTP API (aiohttp): Grafana's Infinity datasource queries it for rows to plot.

Every data endpoint answers a JSON array of flat objects with ``time`` in epoch ms. Store
reads block, so they run in worker threads (at most ``CONCURRENCY`` at once: a dashboard
fires all its panels together, and a few parallel reads keep a small box responsive).
Errors are one JSON object ``{"error": "..."}``: 400 for a bad parameter, 413 for a request
beyond the limits, 503 when the store cannot be reached. Messages never carry credentials
(store errors are written without them; the store is shown by ``describe()``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from typing import TypeVar

from aiohttp import web

from hundi.api.queries import (
    ApiError,
    Limits,
    Row,
    TooMuchData,
    Window,
    bar_rows,
    book_rows,
    coverage_rows,
    event_rows,
    lag_rows,
    stored_symbols,
    window,
)
from hundi.query import AggregatingStore, QueryError, parse_channel
from hundi.records import Channel
from hundi.research._source import ns_to_timestamp
from hundi.research.bars import interval_ns
from hundi.stores.base import Store, StoreError, open_store, scheme_of

log = logging.getLogger(__name__)

CONCURRENCY = 4
DEFAULT_COVERAGE_CHANNELS = "trades,bbo,book"
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _StoreHolder:
    """Opens the store on first use and again after a failed open (the store may come up
    after the API): a Cassandra cluster that is down makes requests fail with 503, not the
    process exit."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: Store | None = None
        self._lock = threading.Lock()

    def get(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.url, read_only=True)
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


STORE: web.AppKey[_StoreHolder] = web.AppKey("store", _StoreHolder)
LIMITS: web.AppKey[Limits] = web.AppKey("limits", Limits)
SLOTS: web.AppKey[asyncio.Semaphore] = web.AppKey("slots", asyncio.Semaphore)


def check_lossless(store_url: str) -> None:
    """Refuse a store that keeps aggregates instead of records (KairosDB): bars, lag and
    coverage computed from per-millisecond aggregates would be plausible and wrong."""
    scheme = scheme_of(store_url)
    found = entry_points(group="hundi.stores", name=scheme)
    if not found:
        raise StoreError(f"unknown store scheme {scheme!r}")
    if issubclass(next(iter(found)).load(), AggregatingStore):
        raise StoreError(
            f"{scheme} stores per-millisecond aggregates, not every record: serve the lossless "
            "store (cassandra://... or a folder); for KairosDB on Grafana <= 10 see "
            "deploy/grafana/README.md"
        )


def create_app(store_url: str, limits: Limits | None = None) -> web.Application:
    """The API application for one lossless store URL (``./data``, ``cassandra://...``)."""
    check_lossless(store_url)
    app = web.Application(middlewares=[_errors])
    app[STORE] = _StoreHolder(store_url)
    app[LIMITS] = limits or Limits()
    app[SLOTS] = asyncio.Semaphore(CONCURRENCY)
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/api/v1/symbols", symbols)
    app.router.add_get("/api/v1/bars", bars)
    app.router.add_get("/api/v1/book", book)
    app.router.add_get("/api/v1/coverage", coverage)
    app.router.add_get("/api/v1/lag", lag)
    app.router.add_get("/api/v1/events", events)
    app.on_cleanup.append(_close_store)
    return app


async def _close_store(app: web.Application) -> None:
    await asyncio.to_thread(app[STORE].close)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except TooMuchData as exc:
        return _error(413, str(exc))
    except (ApiError, QueryError) as exc:  # ResearchError is a QueryError
        return _error(400, str(exc))
    except StoreError as exc:
        return _error(503, f"store unavailable: {exc}")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("hundi serve: %s failed", request.path)
        return _error(500, f"internal error answering {request.path} (see the server log)")


async def _run(request: web.Request, work: Callable[[Store], T]) -> T:
    """Run a blocking store read in a worker thread, a bounded number at once."""
    holder = request.app[STORE]
    async with request.app[SLOTS]:
        return await asyncio.to_thread(lambda: work(holder.get()))


# --- parameters ------------------------------------------------------------------------------


def _text(request: web.Request, name: str, *, required: bool = True) -> str | None:
    value = request.query.get(name, "").strip()
    if not value:
        if required:
            raise ApiError(f"missing parameter {name!r}")
        return None
    return value


def _required(request: web.Request, name: str) -> str:
    value = _text(request, name)
    assert value is not None
    return value


def _epoch_ms(request: web.Request, name: str) -> int:
    text = _required(request, name)
    try:
        return int(text)
    except ValueError:
        raise ApiError(
            f"{name}: {text!r} is not epoch milliseconds (Grafana: ${{__{name}}})"
        ) from None


def _window(request: web.Request, default_interval: str = "1m") -> Window:
    interval = _text(request, "interval", required=False) or default_interval
    try:
        step = interval_ns(interval)
    except QueryError as exc:
        raise ApiError(f"interval: {exc}") from None
    return window(_epoch_ms(request, "from"), _epoch_ms(request, "to"), step, request.app[LIMITS])


def _channel(name: str) -> Channel:
    try:
        return parse_channel(name)
    except QueryError as exc:
        raise ApiError(f"channel: {exc}") from None


def _rows(rows: list[Row], source: str | None = None) -> web.Response:
    headers = {"X-Hundi-Source": source} if source else None
    return web.json_response(rows, headers=headers)


# --- endpoints -------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    """200 when the store answers a (tiny) read, 503 otherwise; names the scheme only."""
    holder = request.app[STORE]
    scheme = scheme_of(holder.url)

    def probe(store: Store) -> None:
        now = time.time_ns()
        store.read(
            exchange="hundi-health",
            symbol="-",
            channel=Channel.EVENTS,
            start=ns_to_timestamp(now - 1_000_000),
            end=ns_to_timestamp(now),
        )

    try:
        await _run(request, probe)
    except StoreError as exc:
        return web.json_response(
            {"status": "unavailable", "store": scheme, "error": str(exc)}, status=503
        )
    return web.json_response({"status": "ok", "store": scheme})


async def symbols(request: web.Request) -> web.Response:
    exchange = _required(request, "exchange")
    return _rows(await _run(request, lambda store: stored_symbols(store, exchange)))


async def bars(request: web.Request) -> web.Response:
    exchange, symbol = _required(request, "exchange"), _required(request, "symbol")
    span = _window(request)
    source, rows = await _run(
        request, lambda store: bar_rows(store, exchange=exchange, symbol=symbol, span=span)
    )
    return _rows(rows, source)


async def book(request: web.Request) -> web.Response:
    exchange, symbol = _required(request, "exchange"), _required(request, "symbol")
    span = _window(request, "1s")
    depth_text = _text(request, "depth", required=False)
    depth = None
    if depth_text is not None:
        if not depth_text.isdigit() or int(depth_text) < 1:
            raise ApiError(f"depth: {depth_text!r} is not a positive integer")
        depth = int(depth_text)
    limits = request.app[LIMITS]
    source, rows = await _run(
        request,
        lambda store: book_rows(
            store, limits, exchange=exchange, symbol=symbol, span=span, depth=depth
        ),
    )
    return _rows(rows, source)


def _scope(request: web.Request) -> tuple[str, str | None, Window, Limits]:
    """Exchange, optional symbol, window and limits: what the collector-health endpoints take."""
    exchange = _required(request, "exchange")
    symbol = _text(request, "symbol", required=False)
    return exchange, symbol, _window(request), request.app[LIMITS]


async def coverage(request: web.Request) -> web.Response:
    exchange, symbol, span, limits = _scope(request)
    text = _text(request, "channel", required=False) or DEFAULT_COVERAGE_CHANNELS
    channels = [_channel(name.strip()) for name in text.split(",") if name.strip()]
    rows = await _run(
        request,
        lambda store: coverage_rows(
            store, limits, exchange=exchange, symbol=symbol, channels=channels, span=span
        ),
    )
    return _rows(rows)


async def lag(request: web.Request) -> web.Response:
    exchange, symbol, span, limits = _scope(request)
    channel = _channel(_text(request, "channel", required=False) or "trades")
    rows = await _run(
        request,
        lambda store: lag_rows(
            store, limits, exchange=exchange, symbol=symbol, channel=channel, span=span
        ),
    )
    return _rows(rows)


async def events(request: web.Request) -> web.Response:
    exchange, symbol, span, limits = _scope(request)
    rows = await _run(
        request,
        lambda store: event_rows(store, limits, exchange=exchange, symbol=symbol, span=span),
    )
    return _rows(rows)
