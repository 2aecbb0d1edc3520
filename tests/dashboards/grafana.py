"""What Grafana and its Infinity plugin do with a dashboard's queries, for the tests:
walk the panels, interpolate template variables, pick ``$__interval``, and turn the HTTP
reply into a frame by the target's root selector and columns."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)|\[\[(\w+)\]\]")
#: Grafana's "nice" intervals (rangeutil.roundInterval), smallest first
_NICE_MS = [
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 60_000,
    120_000, 300_000, 600_000, 900_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
    10_800_000, 21_600_000, 43_200_000, 86_400_000,
]  # fmt: skip
_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel with queries, rows' nested (collapsed) panels included."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """``$name``, ``${name}``, ``${name:percentencode}``, ``[[name]]`` → values; an unknown
    variable fails (Grafana would leave it in the URL, and the query would be wrong)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3) or match.group(4)
        if name not in values:
            raise AssertionError(f"variable ${name} has no value in {text!r}")
        value = values[name]
        form = match.group(2)
        if form in (None, "raw", "text"):
            return value
        if form == "percentencode":
            return quote(value, safe="")
        raise AssertionError(f"format {form!r} not emulated ({text!r})")

    return _VARIABLE.sub(replace, text)


def duration_ms(text: str) -> int:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text)
    assert match, text
    return int(match.group(1)) * _UNITS_MS[match.group(2)]


def interval(from_ms: int, to_ms: int, panel: Mapping[str, Any], width_px: int = 1000) -> str:
    """``$__interval``: the range over the panel's data points, rounded up to a nice
    interval, never below the panel's minimum interval (``interval``)."""
    raw = (to_ms - from_ms) / panel.get("maxDataPoints", width_px)
    nice = next((n for n in _NICE_MS if n >= raw), _NICE_MS[-1])
    low = duration_ms(panel["interval"]) if panel.get("interval") else 0
    ms = max(nice, low)
    for unit in ("d", "h", "m", "s", "ms"):
        if ms % _UNITS_MS[unit] == 0:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    raise AssertionError(ms)


def infinity_frame(target: Mapping[str, Any], body: Any) -> dict[str, list[Any]]:
    """The frame Infinity's backend parser makes of a JSON reply: the root selector's array,
    one field per declared column (missing values fail here: Infinity would show nulls)."""
    rows = body
    for key in filter(None, target.get("root_selector", "").split(".")):
        rows = rows[key]
    assert isinstance(rows, list), f"{target['url']}: the root is not an array"
    frame: dict[str, list[Any]] = {}
    for column in target["columns"]:
        values = []
        for row in rows:
            value: Any = row
            for key in column["selector"].split("."):
                assert key in value, f"{target['url']}: row without {column['selector']!r}"
                value = value[key]
            values.append(_typed(value, column["type"]))
        frame[column["text"]] = values
    return frame


def _typed(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "timestamp_epoch":
        assert isinstance(value, int), value
        return datetime.fromtimestamp(value / 1000, UTC)
    if kind == "number":
        assert isinstance(value, int | float), value
        return float(value)
    if kind == "string":
        return str(value)
    raise AssertionError(f"column type {kind!r} not emulated")


def fields_used(panel: Mapping[str, Any]) -> set[str]:
    """Field names the panel's options and overrides refer to."""
    used = set((panel.get("options", {}).get("fields") or {}).values())
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        if override["matcher"]["id"] == "byName":
            used.add(override["matcher"]["options"])
    return used
