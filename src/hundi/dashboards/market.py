"""The market dashboard: per symbol, candles with VWAP and volume, mid and spread, book
imbalance and, for derivatives, funding rate, open interest and liquidations. One row per
selected symbol (the row repeats over the ``symbol`` variable); a spot symbol's derivative
panels are empty (the API answers no rows, not an error)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import candlestick, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import candlestick as candlestick_models
from grafana_foundation_sdk.models.dashboard import Dashboard

from hundi.dashboards.common import (
    api,
    as_bars,
    choice_variable,
    dashboard,
    legend,
    on_right,
    series_panel,
    symbol_variable,
)
from hundi.dashboards.infinity import DATASOURCE, Query

TITLE = "hundi: market"
DESCRIPTION = (
    "Candles, VWAP, volume, spread, mid, book imbalance, funding, open interest and "
    "liquidations per symbol."
)
UID = "hundi-market"
#: bar/sample intervals offered: each is answered from the series the collectors store
#: (deploy/k8s collectors.yaml: bars:10s, bars:1m, book:10@10s) as stored (10s, 1m) or rolled
#: up from them (30s from 10s, 5m/15m/1h from 1m; the book sampled from 10s), never from a day
#: of trades. No 1s: 24 h of it exceeds hundi serve's 20,000 points and is not stored.
INTERVALS = ("10s", "30s", "1m", "5m", "15m", "1h")
SYMBOL = "${symbol:percentencode}"
EXCHANGE = "${exchange:percentencode}"


def _bars() -> Query:
    query = Query(api("bars", exchange=EXCHANGE, symbol=SYMBOL, interval="${step}"))
    query = query.time("time")
    for name in ("open", "high", "low", "close", "volume", "vwap"):
        query = query.number(name)
    return query


def _book(*fields: str) -> Query:
    query = Query(api("book", exchange=EXCHANGE, symbol=SYMBOL, interval="${step}"))
    query = query.time("time")
    for name in fields:
        query = query.number(name)
    return query


def _endpoint(path: str, *fields: str) -> Query:
    query = Query(api(path, exchange=EXCHANGE, symbol=SYMBOL, interval="${step}"))
    query = query.time("time")
    for name in fields:
        query = query.number(name)
    return query


def _derivative_panels() -> list[timeseries.Panel]:
    """Funding and open interest over time (last value per $step) and liquidations per $step."""
    funding = series_panel(
        "$symbol: funding rate",
        _endpoint("derivatives", "funding_rate", "predicted_funding_rate"),
        unit="percentunit",
    ).description(
        "Funding rate of the current period (settled at the next funding time) and the venue's "
        "predicted rate, as of the last update in each $step (hundi /api/v1/derivatives). "
        "Empty for spot and dated futures."
    )
    interest = on_right(
        series_panel(
            "$symbol: open interest",
            _endpoint("derivatives", "open_interest", "open_interest_value"),
        ).description(
            "Open interest in the symbol's size unit (base, contracts or quote: its instrument "
            "says; left) and its value in the quote currency (USD for inverse contracts; right), "
            "as of the end of each $step."
        ),
        "open_interest_value",
    )
    liquidations = as_bars(
        series_panel(
            "$symbol: liquidations",
            _endpoint("liquidations", "sell_size", "buy_size"),
            width=24,
        ).description(
            "Size of liquidation orders per $step, in the symbol's size unit: sell = longs "
            "liquidated, buy = shorts. A venue feed that sends samples (at most one a second per "
            "symbol, the latest) undercounts: the venue pages (docs/venue-*.md) say which feed is "
            "complete; hundi /api/v1/liquidations says so in its X-Hundi-Source header."
        )
    )
    return [funding, interest, liquidations]


def _candles() -> candlestick.Panel:
    fields = (
        candlestick.CandlestickFieldMap()
        .open("open")
        .high("high")
        .low("low")
        .close("close")
        .volume("volume")
    )
    return (
        candlestick.Panel()
        .title("$symbol: candles, VWAP and volume")
        .description("OHLCV bars per $step; VWAP drawn over them (hundi /api/v1/bars).")
        .datasource(DATASOURCE)
        .with_target(_bars())
        .mode(candlestick_models.VizDisplayMode.CANDLES_VOLUME)
        .candle_style(candlestick_models.CandleStyle.CANDLES)
        .color_strategy(candlestick_models.ColorStrategy.OPEN_CLOSE)
        .fields(fields)
        .include_all_fields(True)  # vwap: a line over the candles
        .legend(legend())
        .span(24)
        .height(10)
    )


def build() -> Dashboard:
    # not "interval": Grafana once had a built-in $interval, a variable of that name is ambiguous
    step = choice_variable("step", "Step", INTERVALS, "1m")
    spread = on_right(
        series_panel(
            "$symbol: mid and spread", _book("mid", "microprice", "spread"), unit="none"
        ).description("Mid and microprice (left), spread (right) at each $step."),
        "spread",
    )
    imbalance = (
        series_panel("$symbol: book imbalance", _book("imbalance"), unit="percentunit")
        .description(
            "(bid size - ask size) / (bid size + ask size): over the stored book_top depth, "
            "or the best level from BBO quotes when the collector kept no book series."
        )
        .min(-1)
        .max(1)
    )
    row = db.Row("$symbol").repeat("symbol")
    builder = (
        dashboard(
            "hundi: market",
            UID,
            DESCRIPTION,
        )
        .with_variable(symbol_variable(multi=True))
        .with_variable(step)
        .with_row(row)
        .with_panel(_candles())
        .with_panel(spread)
        .with_panel(imbalance)
    )
    for panel in _derivative_panels():
        builder = builder.with_panel(panel)
    return builder.build()
