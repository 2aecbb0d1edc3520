"""The HTTP API (aiohttp): Grafana's Infinity datasource queries it for rows to plot.

Every data endpoint answers a JSON array of flat objects with ``time`` in epoch ms. Store
reads block, so they run in worker threads (at most ``CONCURRENCY`` at once: a dashboard
fires all its panels together, and a few parallel reads keep a small box responsive). The
wait for a slot is bounded (``MAX_WAITING`` requests, then 503 with ``Retry-After``) and so is a
read (``READ_TIMEOUT_S``, under Grafana's 30 s); identical requests share one read while it runs
(a dashboard opened by many users at once reads once), and with ``--cache-ttl`` reuse its answer
for that long. Errors are one JSON object ``{"error": "..."}``: 400 for a bad
parameter, 401 without the token (:mod:`hundi.api.auth`), 404 for an exchange, channel or
symbol the store does not hold (with ``"choices"``: what it holds, closest first; 400 and the
candidates for a name of several), 413 for a request beyond the limits,
503 when the store cannot be reached or the server is busy. Parameters are checked against
strict patterns before they reach a store (names become file paths in the embedded store).
Messages never carry credentials (store errors are written without them; the store is shown by
``describe()``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from aiohttp import web

from hundi.api.auth import require_token
from hundi.api.metrics import ApiMetrics
from hundi.api.queries import (
    BadRequest,
    Limits,
    Row,
    TooMuchData,
    Window,
    bar_rows,
    book_rows,
    coverage_rows,
    derivative_rows,
    event_rows,
    lag_rows,
    liquidation_rows,
    ns_to_timestamp,
    stored_symbols,
    window,
)
from hundi.pipeline.metrics import METRICS_PATH, metrics_handler
from hundi.query import NotStored, QueryError, StoredChoices, parse_channel
from hundi.records import Channel
from hundi.research.bars import interval_ns
from hundi.stores.base import AggregatingStore, Store, StoreError, open_store, scheme_of

log = logging.getLogger(__name__)

CONCURRENCY = 4
MAX_WAITING = 64  # requests waiting for a read slot; beyond: 503 + Retry-After
READ_TIMEOUT_S = 25.0  # Grafana gives up at 30 s
CACHE_TTL_S = 0.0  # answers are shared while computed; reuse after that is opt-in
CACHE_ENTRIES = 128
# exchange, symbol: letters, digits, '.', '_', '-' (BTC-USDT-PERP, BTC-USD-20261225), no path parts
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_EPOCH_MS = (2**63 - 1) // 1_000_000  # the last millisecond an int64 ns time holds (2262)
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


class Busy(Exception):
    """Too many requests waiting for a read slot, or a read that took too long: retry later."""


class _Reads:
    """Blocking store reads in worker threads: bounded in number, in queue and in time, and
    shared between identical requests (one read, many answers) for a short while."""

    def __init__(self, slots: int, max_waiting: int, timeout_s: float, ttl_s: float) -> None:
        self.slots = asyncio.Semaphore(slots)
        self.max_waiting = max_waiting
        self.timeout_s = timeout_s
        self.ttl_s = ttl_s
        self.waiting = 0
        self.reads = 0  # reads started (tests and the log see how much sharing saved)
        self._running: dict[str, asyncio.Future[Any]] = {}
        self._answers: OrderedDict[str, tuple[float, object]] = OrderedDict()

    async def run(self, key: str | None, work: Callable[[], T]) -> T:
        if key is None:
            return await self._read(work)
        now = time.monotonic()
        answer = self._answers.get(key)
        if answer is not None and answer[0] > now:
            return answer[1]  # type: ignore[return-value]
        running: asyncio.Future[Any] | None = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(self._read(work))
            self._running[key] = running
            running.add_done_callback(lambda done: self._keep(key, done))
        result: T = await asyncio.shield(running)
        return result

    def _keep(self, key: str, done: asyncio.Future[Any]) -> None:
        self._running.pop(key, None)
        if done.cancelled() or done.exception() is not None:
            return
        self._answers[key] = (time.monotonic() + self.ttl_s, done.result())
        self._answers.move_to_end(key)
        while len(self._answers) > CACHE_ENTRIES:
            self._answers.popitem(last=False)

    async def _read(self, work: Callable[[], T]) -> T:
        if self.slots.locked() and self.waiting >= self.max_waiting:
            raise Busy(f"{self.waiting} requests are waiting for the store; retry shortly")
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        self.reads += 1
        future = asyncio.get_running_loop().run_in_executor(None, work)
        # The slot is held until the thread is done, even after a timeout answered the client:
        # a thread cannot be stopped, and freeing its slot early would unbound the reads.
        future.add_done_callback(lambda _: self.slots.release())
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except TimeoutError:
            raise Busy(f"the read took longer than {self.timeout_s:g} s") from None


STORE: web.AppKey[_StoreHolder] = web.AppKey("store", _StoreHolder)
LIMITS: web.AppKey[Limits] = web.AppKey("limits", Limits)
READS: web.AppKey[_Reads] = web.AppKey("reads", _Reads)


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


def create_app(
    store_url: str,
    limits: Limits | None = None,
    *,
    token: str | None = None,
    max_waiting: int = MAX_WAITING,
    read_timeout_s: float = READ_TIMEOUT_S,
    cache_ttl_s: float = CACHE_TTL_S,
) -> web.Application:
    """The API application for one lossless store URL (``./data``, ``cassandra://...``);
    with ``token``, every endpoint but the health check requires it."""
    check_lossless(store_url)
    reads = _Reads(CONCURRENCY, max_waiting, read_timeout_s, cache_ttl_s)
    metrics = ApiMetrics(reads)
    middlewares: list[Any] = [metrics.middleware, _errors]
    if token is not None:  # /metrics too: Prometheus sends the token as a bearer token
        middlewares.insert(1, require_token(token))
    app = web.Application(middlewares=middlewares)
    app[STORE] = _StoreHolder(store_url)
    app[LIMITS] = limits or Limits()
    app[READS] = reads
    app.router.add_get(METRICS_PATH, metrics_handler(metrics.registry))
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/api/v1/symbols", symbols)
    app.router.add_get("/api/v1/bars", bars)
    app.router.add_get("/api/v1/book", book)
    app.router.add_get("/api/v1/derivatives", derivatives)
    app.router.add_get("/api/v1/liquidations", liquidations)
    app.router.add_get("/api/v1/coverage", coverage)
    app.router.add_get("/api/v1/lag", lag)
    app.router.add_get("/api/v1/events", events)
    from hundi.api import status  # it uses this module's helpers: imported once they exist

    app.router.add_get("/", status.to_page)
    app.router.add_get("/status", status.page)
    app.router.add_get("/api/v1/status", status.status)
    app.router.add_get("/api/v1/top", status.top)
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
    except Busy as exc:
        return web.json_response(
            {"error": f"busy: {exc}"}, status=503, headers={"Retry-After": "1"}
        )
    except StoredChoices as exc:
        status = 404 if isinstance(exc, NotStored) else 400
        return web.json_response({"error": str(exc), "choices": exc.choices}, status=status)
    except (BadRequest, QueryError) as exc:  # ResearchError is a QueryError
        return _error(400, str(exc))
    except StoreError as exc:
        return _error(503, f"store unavailable: {exc}")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("hundi serve: %s failed", request.path)
        return _error(500, f"internal error answering {request.path} (see the server log)")


async def _run(request: web.Request, work: Callable[[Store], T], *, shared: bool = True) -> T:
    """Run a blocking store read in a worker thread (see :class:`_Reads`); ``shared``: the
    answer depends only on the path and query, so identical requests may share it."""
    holder = request.app[STORE]
    key = f"{request.path}?{sorted(request.query.items())}" if shared else None
    return await request.app[READS].run(key, lambda: work(holder.get()))


# --- parameters ------------------------------------------------------------------------------


def _text(request: web.Request, name: str, *, required: bool = True) -> str | None:
    value = request.query.get(name, "").strip()
    if len(value) > 256 or "\x00" in value:
        raise BadRequest(f"{name}: not a valid value")
    if not value:
        if required:
            raise BadRequest(f"missing parameter {name!r}")
        return None
    return value


def _required(request: web.Request, name: str) -> str:
    value = _text(request, name)
    assert value is not None
    return value


def _name(request: web.Request, name: str, *, required: bool = True) -> str | None:
    """An exchange or symbol: a strict pattern, so no value can become another file path."""
    value = _text(request, name, required=required)
    if value is not None and not NAME.fullmatch(value):
        raise BadRequest(
            f"{name}: {value[:64]!r} is not a valid name (letters, digits, '.', '_', '-')"
        )
    return value


def _required_name(request: web.Request, name: str) -> str:
    value = _name(request, name)
    assert value is not None
    return value


def _epoch_ms(request: web.Request, name: str) -> int:
    text = _required(request, name)
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(
            f"{name}: {text[:64]!r} is not epoch milliseconds (Grafana: ${{__{name}}})"
        ) from None
    if not 0 <= value <= MAX_EPOCH_MS:
        raise BadRequest(f"{name}: {value} is outside 0..{MAX_EPOCH_MS} (epoch milliseconds)")
    return value


def _window(request: web.Request, default_interval: str = "1m") -> Window:
    interval = _text(request, "interval", required=False) or default_interval
    try:
        step = interval_ns(interval)
    except QueryError as exc:
        raise BadRequest(f"interval: {exc}") from None
    except (OverflowError, ValueError):
        raise BadRequest(f"interval: {interval[:64]!r} is not a duration") from None
    if step > MAX_EPOCH_MS * 1_000_000:
        raise BadRequest(f"interval: {interval[:64]!r} is longer than any range")
    return window(_epoch_ms(request, "from"), _epoch_ms(request, "to"), step, request.app[LIMITS])


def _channel(name: str) -> Channel:
    try:
        return parse_channel(name)
    except QueryError as exc:
        raise BadRequest(f"channel: {exc}") from None


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
        await _run(request, probe, shared=False)
    except StoreError as exc:
        return web.json_response(
            {"status": "unavailable", "store": scheme, "error": str(exc)}, status=503
        )
    return web.json_response({"status": "ok", "store": scheme})


async def symbols(request: web.Request) -> web.Response:
    exchange = _required_name(request, "exchange")
    return _rows(await _run(request, lambda store: stored_symbols(store, exchange)))


async def bars(request: web.Request) -> web.Response:
    exchange, symbol = _required_name(request, "exchange"), _required_name(request, "symbol")
    span = _window(request)
    source, rows = await _run(
        request, lambda store: bar_rows(store, exchange=exchange, symbol=symbol, span=span)
    )
    return _rows(rows, source)


async def book(request: web.Request) -> web.Response:
    exchange, symbol = _required_name(request, "exchange"), _required_name(request, "symbol")
    span = _window(request, "1s")
    depth_text = _text(request, "depth", required=False)
    depth = None
    if depth_text is not None:
        if not depth_text.isdigit() or int(depth_text) < 1:
            raise BadRequest(f"depth: {depth_text!r} is not a positive integer")
        depth = int(depth_text)
    limits = request.app[LIMITS]
    source, rows = await _run(
        request,
        lambda store: book_rows(
            store, limits, exchange=exchange, symbol=symbol, span=span, depth=depth
        ),
    )
    return _rows(rows, source)


async def derivatives(request: web.Request) -> web.Response:
    """Funding rate, mark/index price and open interest over time (last value per interval)."""
    exchange, symbol = _required_name(request, "exchange"), _required_name(request, "symbol")
    span, limits = _window(request), request.app[LIMITS]
    rows = await _run(
        request,
        lambda store: derivative_rows(store, limits, exchange=exchange, symbol=symbol, span=span),
    )
    return _rows(rows, "derivative_ticker")


async def liquidations(request: web.Request) -> web.Response:
    """Liquidation counts and sizes per interval and side (sampled feeds say so)."""
    exchange, symbol = _required_name(request, "exchange"), _required_name(request, "symbol")
    span, limits = _window(request), request.app[LIMITS]
    source, rows = await _run(
        request,
        lambda store: liquidation_rows(store, limits, exchange=exchange, symbol=symbol, span=span),
    )
    return _rows(rows, source)


def _scope(request: web.Request) -> tuple[str, str | None, Window, Limits]:
    """Exchange, optional symbol, window and limits: what the collector-health endpoints take."""
    exchange = _required_name(request, "exchange")
    symbol = _name(request, "symbol", required=False)
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
