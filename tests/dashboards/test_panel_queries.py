"""Every panel query of the generated dashboards, executed as Grafana would execute it:
variables interpolated (``$symbol``, ``${exchange}``, ``${__from}``, ``$__interval``...),
the Infinity target's HTTP request sent to a real ``hundi serve`` over the real Cassandra
holding replayed Binance futures recordings, the reply parsed by the target's columns."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from apiserver import SYMBOL, Api, replay, serve, write_series
from grafana import fields_used, infinity_frame, interpolate, interval, panels

import hundi
from hundi import series
from hundi.config import load_config_file
from hundi.dashboards.infinity import DATASOURCE_UID
from hundi.records import BASE, SAMPLED, Channel, DerivativeTicker, Liquidation
from hundi.series.spec import BookTopSpec, TimeBars
from hundi.stores.base import open_store

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "deploy" / "grafana" / "dashboards"
COLLECTORS = REPO / "deploy" / "k8s" / "base" / "collectors" / "collectors.yaml"
EXCHANGE = "binance"


@dataclass(frozen=True)
class Answer:
    """One panel target's reply for the recorded symbol: what a check needs."""

    endpoint: str  # "bars", "book", "coverage"...
    step: str | None
    source: str | None  # X-Hundi-Source
    rows: int


def _run(
    api: Api, target: dict[str, Any], values: dict[str, str], log: list[Answer] | None = None
) -> dict[str, list[Any]]:
    """One Infinity target: its URL (relative to the datasource's base URL) → a frame
    (and an :class:`Answer` in ``log``)."""
    assert (
        target["datasource"]["uid"] == DATASOURCE_UID and target["url_options"]["method"] == "GET"
    )
    url = interpolate(target["url"], values)
    assert not urlsplit(url).netloc, url
    reply = api.get(url)
    assert reply.status == 200, (url, reply.body)
    frame = infinity_frame(target, reply.body)
    if log is not None:
        parts = urlsplit(url)
        log.append(
            Answer(
                parts.path.rsplit("/", 1)[-1],
                parse_qs(parts.query).get("interval", [None])[0],
                reply.headers.get("X-Hundi-Source"),
                len(next(iter(frame.values()), [])),
            )
        )
    return frame


def _variable_values(
    api: Api, dashboard: dict[str, Any], values: dict[str, str]
) -> dict[str, list[str]]:
    """Each variable's options: custom lists split, query variables run like panels."""
    options = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "custom":
            options[variable["name"]] = [v.strip() for v in variable["query"].split(",")]
        elif variable["type"] == "query":
            query = variable["query"]["infinityQuery"]
            frame = _run(api, {**query, "datasource": variable["datasource"]}, values)
            options[variable["name"]] = [str(v) for v in next(iter(frame.values()))]
        else:
            raise AssertionError(f"variable type {variable['type']} not emulated")
    return options


def _check_panel(panel: dict[str, Any], frames: list[dict[str, list[Any]]], where: str) -> int:
    """The panel gets a time field, numbers, and every field its options name."""
    names = {name for frame in frames for name in frame}
    assert "time" in names, where
    missing = fields_used(panel) - names
    assert not missing, f"{where}: panel uses {sorted(missing)}, not in {sorted(names)}"
    return min(len(frame["time"]) for frame in frames)


def _every_panel(api: Api, span: tuple[int, int]) -> list[Answer]:
    """Every panel of every dashboard, for the recorded symbol with every value of the other
    variables and for the other symbols once; the recorded symbol's answers."""
    answers: list[Answer] = []
    base = {"__from": str(span[0]), "__to": str(span[1]), "exchange": EXCHANGE}
    for path in sorted(OUT.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        options = _variable_values(api, dashboard, base)
        assert options["exchange"][0] == EXCHANGE
        assert SYMBOL in options["symbol"], options["symbol"]
        combos: list[dict[str, str]] = [{}]
        for name, values in options.items():
            if name not in ("exchange", "symbol"):
                combos = [{**c, name: v} for c in combos for v in values]
        runs = [{**c, "symbol": SYMBOL} for c in combos]
        runs += [{**combos[0], "symbol": s} for s in options["symbol"] if s != SYMBOL]
        for run in runs:
            for panel in panels(dashboard):
                values = {**base, **run, "__interval": interval(*span, panel)}
                values["__interval_ms"] = str(pd.Timedelta(values["__interval"]).value // 1_000_000)
                where = f"{path.name}: {panel['title']} {run}"
                mine = answers if run["symbol"] == SYMBOL else None
                targets = [t for t in panel["targets"] if not t.get("hide")]
                _check_panel(panel, [_run(api, t, values, mine) for t in targets], where)
    return answers


def _collector_series() -> tuple[list[str], list[tuple[int, str]]]:
    """The bar intervals and (depth, interval) book series the deployed collectors store."""
    plans = {feed.series for feed in load_config_file(COLLECTORS).feeds}
    assert len(plans) == 1, f"{COLLECTORS}: feeds differ in series"
    plan = plans.pop()
    assert plan is not None, f"{COLLECTORS}: the feeds store no series"
    bars = [s.interval.label for s in plan.specs if isinstance(s, TimeBars)]
    books = [(s.depth, s.interval.label) for s in plan.specs if isinstance(s, BookTopSpec)]
    return bars, books


def write_derivatives(store_url: str, start_ns: int, end_ns: int) -> None:
    """A derivative ticker a second and a liquidation a minute for the recorded symbol (the
    recording predates these channels), so the funding, open interest and liquidation panels
    have rows to check."""
    head = {"exchange": EXCHANGE, "symbol": SYMBOL, "native_symbol": SYMBOL.replace("-", "")}
    head["native_symbol"] = head["native_symbol"].removesuffix("PERP")
    second, minute = 1_000_000_000, 60_000_000_000
    tickers = [
        DerivativeTicker(**head, ts=t, recv_ts=t + 1, source="markPrice", mark_price=10.0,
                         index_price=10.01, funding_rate=1e-4, predicted_funding_rate=math.nan,
                         next_funding_time=end_ns, open_interest=5e6, open_interest_value=5e7,
                         size_unit=BASE)
        for t in range(start_ns, end_ns, second)
    ]  # fmt: skip
    liquidations = [
        Liquidation(**head, ts=t, recv_ts=t + 1, side=-1 if t // minute % 2 else 1, price=10.0,
                    size=3.0, size_unit=BASE, completeness=SAMPLED, detail="", position=0)
        for t in range(start_ns, end_ns, minute)
    ]  # fmt: skip
    store = open_store(store_url)
    try:
        store.write({Channel.DERIVATIVE_TICKER: tickers, Channel.LIQUIDATIONS: liquidations})
        store.flush()
    finally:
        store.close()


def test_every_panel_query_returns_rows(
    cassandra_keyspace: str, recordings_dir: Path, tmp_path: Path
) -> None:
    url = cassandra_keyspace
    replay(recordings_dir, url, tmp_path)
    frames = {
        c: hundi.read(url, exchange=EXCHANGE, symbol=SYMBOL, channel=c)
        for c in ("trades", "bbo", "book")
    }
    first = min(f.index.min() for f in frames.values()).floor("1min")
    last = max(f.index.max() for f in frames.values()).ceil("1min")
    span = (first.value // 1_000_000, last.value // 1_000_000)
    # the recording has no derivative ticker or liquidation: as a venue would emit them
    write_derivatives(url, first.value, last.value)
    # --cache-ttl 0: the same panel queries are asked again right after the series are written
    with serve(url, tmp_path, "--cache-ttl", "0") as api:
        # raw data only: the market panels are computed from trades and BBO quotes
        raw = _every_panel(api, span)
        assert len(raw) >= 6 and all(a.rows > 0 for a in raw), [a for a in raw if not a.rows]
        assert {"trades", "bbo", "derivative_ticker"} <= {a.source for a in raw}
        # with what the deployed collectors store, every step the market dashboard offers is
        # answered from the series (as stored or derived), none from trades or quotes, with
        # the rows hundi.bars and the offline book snapshots give at that step
        bar_intervals, books = _collector_series()
        trades = hundi.read(url, exchange=EXCHANGE, channel="trades", start=first, end=last)
        book = hundi.read(url, exchange=EXCHANGE, channel="book", start=first, end=last)
        write_series(
            url,
            {
                Channel.BARS: [series.time_bars(trades, i) for i in bar_intervals],
                Channel.BOOK_TOP: [series.book_snapshots(book, d, i) for d, i in books],
            },
        )
        mine = frames["book"]
        served = _every_panel(api, span)
        assert any("->" in str(a.source) for a in served)  # some steps rolled up or sampled
        assert any(a.rows for a in served if a.endpoint == "book")
        for answer in served:
            if answer.endpoint == "bars":
                assert answer.step is not None and str(answer.source).startswith("bars"), answer
                bars = hundi.bars(url, EXCHANGE, SYMBOL, answer.step, start=first, end=last)
                assert answer.rows == len(bars) > 0, answer
            elif answer.endpoint == "book":
                assert answer.step is not None and str(answer.source).startswith("book_top:")
                depth = min(d for d, _ in books)
                assert answer.rows == len(series.book_snapshots(mine, depth, answer.step)), answer
            elif answer.endpoint in ("derivatives", "liquidations"):
                sources = {
                    "derivatives": "derivative_ticker",
                    "liquidations": "liquidations:sampled",
                }
                assert answer.source == sources[answer.endpoint] and answer.rows > 0, answer
            else:
                assert answer.rows > 0, answer
