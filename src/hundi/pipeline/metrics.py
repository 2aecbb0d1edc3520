"""Prometheus metrics of ``hundi collect`` (``/metrics`` on its health port, docs/metrics.md).

Why a custom collector: the collector already counts frames (:mod:`hundi.accounting`), stored,
lost and spooled records (:class:`~hundi.pipeline.writer.StoreWriter`), stream state
(``StreamStats``) and book sync state. :class:`CollectorMetrics` reads those counters when
Prometheus scrapes, so metrics add no work per frame. Only two figures exist for metrics alone,
and both are observed per batch, never per frame: the exchange→local lag (:class:`LagHistogram`,
numpy over each drained batch, on the event loop) and the store write/flush latency
(:class:`Buckets`, one observation per store call, on the writer thread).

Who may scrape: a listener on anything but loopback requires the bearer token
``HUNDI_API_TOKEN`` (the same token and rules as ``hundi serve``, :mod:`hundi.api.auth`: one
secret for every hundi HTTP endpoint, which Prometheus sends as ``Authorization: Bearer``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector as PrometheusCollector

from hundi.auth import SECRET_ENV_FILE, TOKEN_ENV, Handler, load_token
from hundi.options import is_loopback
from hundi.pipeline.histograms import (
    Buckets,
    Labels,
)
from hundi.settings import ConfigError

if TYPE_CHECKING:
    from hundi.pipeline.collector import Collector

METRICS_PATH = "/metrics"
# Same secret and rules as hundi serve (hundi.api.auth): the pipeline layer cannot import api.


class MetricsSetupError(Exception):
    """The metrics listener cannot be set up as asked (no token on a public address...)."""


def _float_text(value: float) -> str:
    return repr(float(value))


class CollectorMetrics(PrometheusCollector):
    """The collectors' own counters as Prometheus families, read at scrape time.

    Several collectors run in one ``hundi collect`` (feeds with different stores): their
    counters are summed under the same labels, as in the run summary.
    """

    def __init__(self, collectors: Sequence[Collector]) -> None:
        self.collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        yield from self._frames()
        yield from self._streams()
        yield from self._stores()
        yield from self._collector_state()
        yield from self._books()
        yield from self._latencies()

    def _frames(self) -> Iterator[Metric]:
        accounts = [c.accounting for c in self.collectors]
        for name, doc, value in (
            ("hundi_frames_received", "Frames received from the exchanges.", "received"),
            ("hundi_frames_processed", "Frames turned into records.", "processed"),
            ("hundi_frames_filtered", "Frames kept out on purpose (acks, pongs...).", "filtered"),
            ("hundi_gaps", "Gap events seen in the feeds (restart gaps included).", "gaps"),
            ("hundi_resyncs", "Order-book resyncs.", "resyncs"),
            ("hundi_reconnects", "WebSocket reconnects.", "reconnects"),
        ):
            yield CounterMetricFamily(name, doc, value=sum(getattr(a, value) for a in accounts))
        rejected = _summed(((reason,), n) for a in accounts for reason, n in a.rejected.items())
        yield _counter("hundi_frames_rejected", "Frames rejected, by reason.", ["reason"], rejected)
        # As the run summary counts them (stored in *every* store of the collector), read from
        # the writers now: the accounting's copy is only refreshed when a batch drains.
        records: dict[Labels, float] = defaultdict(float)
        for collector in self.collectors:
            counts = [writer.stored for writer in collector.writers]
            for channel in sorted({ch for c in counts for ch in c}):
                records[(channel,)] += min(c[channel] for c in counts)
        yield _counter(
            "hundi_records_stored",
            "Records stored in every store of their collector, by channel.",
            ["channel"],
            records,
        )

    def _streams(self) -> Iterator[Metric]:
        frames: dict[Labels, float] = defaultdict(float)
        sizes: dict[Labels, float] = defaultdict(float)
        reconnects: dict[Labels, float] = defaultdict(float)
        connected: dict[Labels, float] = defaultdict(float)
        last: dict[Labels, float] = defaultdict(float)
        requests = failures = 0
        for collector in self.collectors:
            for manager in collector.managers:
                requests += manager.rest_requests
                failures += manager.rest_failures
                for key, stats in manager.stats.items():
                    labels = (manager.protocol.exchange, key)
                    frames[labels] += stats.frames
                    sizes[labels] += stats.bytes
                    reconnects[labels] += stats.reconnects
                    connected[labels] = max(connected[labels], float(stats.connected))
                    last[labels] = max(last[labels], stats.last_frame_ns / 1e9)
        names = ["exchange", "stream"]
        yield _counter("hundi_stream_frames", "Frames received per stream.", names, frames)
        yield _counter("hundi_stream_bytes", "Bytes received per stream.", names, sizes)
        yield _counter("hundi_stream_reconnects", "Reconnects per stream.", names, reconnects)
        yield _gauge("hundi_stream_connected", "1 while the stream is connected.", names, connected)
        yield _gauge(
            "hundi_stream_last_frame_timestamp_seconds",
            "Unix time of the stream's last frame (0: none yet).",
            names,
            last,
        )
        yield CounterMetricFamily("hundi_rest_requests", "REST requests sent.", value=requests)
        yield CounterMetricFamily("hundi_rest_failures", "REST requests failed.", value=failures)

    def _stores(self) -> Iterator[Metric]:
        stored: dict[Labels, float] = defaultdict(float)
        lost: dict[Labels, float] = defaultdict(float)
        spooled: dict[Labels, float] = defaultdict(float)
        per_store: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for collector in self.collectors:
            for writer in collector.writers:
                for channel, n in writer.stored.items():
                    stored[(writer.label, channel)] += n
                for channel, n in list(writer.lost.items()):
                    lost[(writer.label, channel)] += n
                for channel, n in writer.spooled.items():
                    spooled[(writer.label, channel)] += n
                state = per_store[writer.label]
                state["backlog"] += writer.backlog
                state["backlog_bytes"] += writer.backlog_bytes + writer.spool_bytes
                state["spooled_total"] += writer.spooled_total
                state["outages"] += writer.outages
                state["errors"] += writer.errors
                state["spooling"] = max(state["spooling"], float(writer.spooling))
                state["failed"] = max(state["failed"], float(bool(writer.failed)))
        names = ["store", "channel"]
        yield _counter(
            "hundi_store_records_stored",
            "Records confirmed by the store (flushed), by channel.",
            names,
            stored,
        )
        yield _counter("hundi_store_records_lost", "Records that could not be stored.", names, lost)
        yield _gauge(
            "hundi_store_spool_records",
            "Records waiting in the outage spool (spool depth).",
            names,
            spooled,
        )

        def per(key: str) -> dict[Labels, float]:
            return {(label,): state[key] for label, state in per_store.items()}

        yield _gauge(
            "hundi_store_backlog_batches", "Batches queued for the store.", ["store"],
            per("backlog"),
        )  # fmt: skip
        yield _gauge(
            "hundi_store_backlog_bytes",
            "Bytes waiting for the store: its queue (estimated in memory) plus its outage spool.",
            ["store"],
            per("backlog_bytes"),
        )
        yield _counter(
            "hundi_store_spooled_records",
            "Records that went through the outage spool.",
            ["store"],
            per("spooled_total"),
        )
        yield _counter(
            "hundi_store_outages", "Outages: the store failed and spooling began.", ["store"],
            per("outages"),
        )  # fmt: skip
        yield _counter(
            "hundi_store_errors", "Failed store calls (each retry counts).", ["store"],
            per("errors"),
        )  # fmt: skip
        yield _gauge(
            "hundi_store_spooling", "1 while the store is down and batches spool.", ["store"],
            per("spooling"),
        )  # fmt: skip
        yield _gauge(
            "hundi_store_failed", "1 once the writer gave up on the store.", ["store"],
            per("failed"),
        )  # fmt: skip

    def _collector_state(self) -> Iterator[Metric]:
        collectors = self.collectors
        yield GaugeMetricFamily(
            "hundi_backpressure_paused",
            "1 while socket reads are paused because a store queue is full.",
            value=float(any(c.paused for c in collectors)),
        )
        yield CounterMetricFamily(
            "hundi_backpressure_pauses",
            "Times socket reads were paused for a full store queue.",
            value=sum(c.backpressure_events for c in collectors),
        )
        yield CounterMetricFamily(
            "hundi_backpressure_paused_seconds",
            "Seconds socket reads were paused (finished pauses).",
            value=sum(c.backpressure_s for c in collectors),
        )
        yield GaugeMetricFamily(
            "hundi_collector_stopping",
            "1 once the collector is stopping (signal, --duration or a failed store).",
            value=float(any(c.stopping for c in collectors)),
        )

    def _books(self) -> Iterator[Metric]:
        synced: dict[Labels, float] = {}
        levels: dict[Labels, float] = {}
        for collector in self.collectors:
            for exchange, book in collector.books():
                synced[(exchange, book.symbol)] = float(book.synced)
                levels[(exchange, book.symbol, "bid")] = book.bids
                levels[(exchange, book.symbol, "ask")] = book.asks
        yield _gauge(
            "hundi_book_synced",
            "1 while the local order book is in sync with the exchange.",
            ["exchange", "symbol"],
            synced,
        )
        yield _gauge(
            "hundi_book_levels",
            "Price levels held in the local order book.",
            ["exchange", "symbol", "side"],
            levels,
        )

    def _latencies(self) -> Iterator[Metric]:
        lag = HistogramMetricFamily(
            "hundi_lag_seconds",
            "Receive time minus exchange time of market-data records.",
            labels=["exchange", "channel"],
        )
        write = HistogramMetricFamily(
            "hundi_store_write_seconds",
            "Duration of successful store write and flush calls.",
            labels=["store", "operation"],
        )
        for collector in self.collectors:
            if collector.lag is not None:
                _merge_into(lag, collector.lag.buckets)
            for writer in collector.writers:
                _merge_into(write, writer.latency, prefix=(writer.label,))
        yield lag
        yield write


def _merge_into(family: HistogramMetricFamily, buckets: Buckets, prefix: Labels = ()) -> None:
    bounds = [*(_float_text(b) for b in buckets.bounds_s), "+Inf"]
    for labels, (cumulative, total) in sorted(buckets.snapshot().items()):
        family.add_metric(
            [*prefix, *labels], buckets=list(zip(bounds, cumulative, strict=True)), sum_value=total
        )


def _summed(items: Iterable[tuple[Labels, float]]) -> dict[Labels, float]:
    total: dict[Labels, float] = defaultdict(float)
    for labels, value in items:
        total[labels] += value
    return total


def _counter(
    name: str, doc: str, label_names: list[str], values: dict[Labels, float]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=label_names)
    for labels, value in sorted(values.items()):
        family.add_metric(list(labels), value)
    return family


def _gauge(
    name: str, doc: str, label_names: list[str], values: dict[Labels, float]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=label_names)
    for labels, value in sorted(values.items()):
        family.add_metric(list(labels), value)
    return family


# --- exposition and who may read it ----------------------------------------------------------


def metrics_handler(registry: CollectorRegistry) -> Handler:
    """``GET /metrics``: the registry in Prometheus' text format."""

    async def handle(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    return handle


def listener_token(host: str) -> str | None:
    """The token a listener on ``host`` requires: the configured one, and a non-loopback address
    without one is refused (anyone on the network could read it)."""
    try:
        token = load_token()
    except ConfigError as exc:
        raise MetricsSetupError(str(exc)) from None
    if token is None and not is_loopback(host):
        raise MetricsSetupError(
            f"--health-host {host} can be reached from other machines: set {TOKEN_ENV} "
            f"(environment or {SECRET_ENV_FILE}); Prometheus sends it as a bearer token"
        )
    return token
