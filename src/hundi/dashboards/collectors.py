"""The collector-health and data-coverage dashboard: records stored per channel per
interval (a hole is a drop to zero), receive lag percentiles, and the integrity events
(gaps, resyncs, reconnects...) that explain holes."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from hundi.api.queries import EVENT_KINDS, LAG_QUANTILES
from hundi.dashboards.common import (
    api,
    as_bars,
    choice_variable,
    dashboard,
    on_right,
    series_panel,
    symbol_variable,
)
from hundi.dashboards.infinity import Query

TITLE = "hundi: collectors and coverage"
DESCRIPTION = "Collector health and data coverage of what hundi stored."
UID = "hundi-collectors"
#: channels counted in the coverage panel (raw market data the collectors write)
COVERAGE_CHANNELS = ("trades", "bbo", "book", "ticker", "candles")
LAG_CHANNELS = ("trades", "bbo", "book")
EXCHANGE = "${exchange:percentencode}"
SYMBOL = "${symbol:percentencode}"
#: the smallest bucket a panel asks for; Grafana's $__interval grows with the range
MIN_INTERVAL = "1s"


def _query(path: str, columns: tuple[str, ...], **params: str) -> Query:
    query = Query(
        api(path, exchange=EXCHANGE, symbol=SYMBOL, interval="$__interval", **params)
    ).time("time")
    for name in columns:
        query = query.number(name)
    return query


def build() -> Dashboard:
    lag_channel = choice_variable("lag_channel", "Lag of", LAG_CHANNELS, "trades")
    coverage = as_bars(
        series_panel(
            "Records stored per interval",
            _query("coverage", COVERAGE_CHANNELS, channel=",".join(COVERAGE_CHANNELS)),
            width=24,
        )
        .description("Rows stored per channel per $__interval for $symbol; 0 = nothing stored.")
        .interval(MIN_INTERVAL)
    )
    lag = on_right(
        series_panel(
            "Receive lag: $lag_channel",
            _query("lag", (*LAG_QUANTILES, "count"), channel="${lag_channel}"),
            unit="ms",
        )
        .description(
            "recv_ts - ts per $__interval: how late records reached the collector "
            "(exchange clock vs ours); count on the right axis."
        )
        .interval(MIN_INTERVAL),
        "count",
    )
    events = as_bars(
        series_panel("Integrity events by kind", _query("events", EVENT_KINDS))
        .description(
            "Events stored per $__interval: gap (data missing), resync/synced (book rebuilt), "
            "reconnect, stale... every hole in the data is explained by one."
        )
        .interval(MIN_INTERVAL)
    )
    builder = (
        dashboard(
            "hundi: collectors and coverage",
            UID,
            "Collector health and data coverage of what hundi stored.",
        )
        .with_variable(symbol_variable(multi=False))
        .with_variable(lag_channel)
        .with_panel(coverage)
        .with_panel(lag)
        .with_panel(events)
    )
    return builder.build()
