"""Every panel query of the generated dashboards, executed as Grafana would execute it:
variables interpolated (``$symbol``, ``${exchange}``, ``${__from}``, ``$__interval``...),
the Infinity target's HTTP request sent to a real ``hundi serve`` over the real Cassandra
holding replayed Binance futures recordings, the reply parsed by the target's columns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from apiserver import SYMBOL, Api, replay, serve
from grafana import fields_used, infinity_frame, interpolate, interval, panels

import hundi
from hundi.dashboards.infinity import DATASOURCE_UID

OUT = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
EXCHANGE = "binance"


def _run(api: Api, target: dict[str, Any], values: dict[str, str]) -> dict[str, list[Any]]:
    """One Infinity target: its URL (relative to the datasource's base URL) → a frame."""
    assert (
        target["datasource"]["uid"] == DATASOURCE_UID and target["url_options"]["method"] == "GET"
    )
    url = interpolate(target["url"], values)
    assert not urlsplit(url).netloc, url
    reply = api.get(url)
    assert reply.status == 200, (url, reply.body)
    return infinity_frame(target, reply.body)


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


def test_every_panel_query_returns_rows(
    cassandra_keyspace: str, recordings_dir: Path, tmp_path: Path
) -> None:
    replay(recordings_dir, cassandra_keyspace, tmp_path)
    frames = [
        hundi.read(cassandra_keyspace, exchange=EXCHANGE, symbol=SYMBOL, channel=c)
        for c in ("trades", "bbo", "book")
    ]
    first = min(f.index.min() for f in frames).floor("1min")
    last = max(f.index.max() for f in frames).ceil("1min")
    from_ms, to_ms = first.value // 1_000_000, last.value // 1_000_000
    base = {"__from": str(from_ms), "__to": str(to_ms), "exchange": EXCHANGE}
    executed = 0
    with serve(cassandra_keyspace, tmp_path) as api:
        for path in sorted(OUT.glob("*.json")):
            dashboard = json.loads(path.read_text(encoding="utf-8"))
            options = _variable_values(api, dashboard, base)
            assert options["exchange"][0] == EXCHANGE
            assert SYMBOL in options["symbol"], options["symbol"]
            # the recorded symbol with every value of the other variables; the other symbols once
            combos = [{}]
            for name, values in options.items():
                if name not in ("exchange", "symbol"):
                    combos = [{**c, name: v} for c in combos for v in values]
            runs = [{**c, "symbol": SYMBOL} for c in combos]
            runs += [{**combos[0], "symbol": s} for s in options["symbol"] if s != SYMBOL]
            for run in runs:
                for panel in panels(dashboard):
                    values = {**base, **run, "__interval": interval(from_ms, to_ms, panel)}
                    values["__interval_ms"] = str(
                        pd.Timedelta(values["__interval"]).value // 1_000_000
                    )
                    where = f"{path.name}: {panel['title']} {run}"
                    results = [_run(api, t, values) for t in panel["targets"] if not t.get("hide")]
                    rows = _check_panel(panel, results, where)
                    if run["symbol"] == SYMBOL:
                        assert rows > 0, f"{where}: no rows"
                    executed += len(results)
    assert executed >= 6
