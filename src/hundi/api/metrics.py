"""Prometheus metrics of ``hundi serve`` (``GET /metrics``, docs/metrics.md).

Requests are counted and timed by route (the route's pattern, never the raw path: a label per
distinct URL would grow without bound), method and status, 401s included. What the server knows
besides (store reads started, requests waiting for a read slot) is read at scrape time.
``/metrics`` sits behind the same token as every API endpoint (:mod:`hundi.api.auth`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PrometheusCollector

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A dashboard panel answers in tens of ms from the embedded store, seconds from a cold Cassandra.
REQUEST_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0)
UNMATCHED = "unmatched"


class ReadStats(Protocol):
    """What the server's read scheduler exposes (``hundi.api.server._Reads``)."""

    reads: int
    waiting: int


class _ReadsCollector(PrometheusCollector):
    def __init__(self, reads: ReadStats) -> None:
        self.reads = reads

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "hundi_api_store_reads", "Store reads started (shared answers not counted).",
            value=self.reads.reads,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "hundi_api_reads_waiting", "Requests waiting for a read slot.",
            value=self.reads.waiting,
        )  # fmt: skip


class ApiMetrics:
    """One registry per application, so two servers in one process never mix their counts."""

    def __init__(self, reads: ReadStats) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hundi_api_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hundi_api_request_seconds",
            "Time to answer a request, by route.",
            ["route"],
            buckets=REQUEST_BUCKETS_S,
            registry=self.registry,
        )
        self.registry.register(_ReadsCollector(reads))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    @property
    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        """Outermost middleware: counts every answer, the token check's 401s included."""

        @web.middleware
        async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
            began = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                route = _route(request)
                self.requests.labels(route, request.method, str(status)).inc()
                self.latency.labels(route).observe(time.perf_counter() - began)

        return observe


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED
