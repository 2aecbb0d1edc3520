"""Pieces both dashboards share: variables, API URLs, panel defaults."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import entry_points

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DynamicConfigValue,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from hundi.dashboards.infinity import DATASOURCE, Query, variable_query

#: the dashboard's time range as Grafana interpolates it (epoch ms)
RANGE = "from=${__from}&to=${__to}"
TAGS = ["hundi"]


def api(path: str, **params: str) -> str:
    """An API URL relative to the datasource's base URL, with Grafana variables in it."""
    query = "".join(f"{key}={value}&" for key, value in params.items())
    return f"/api/v1/{path}?{query}{RANGE}"


def dashboard(title: str, uid: str, description: str) -> db.Dashboard:
    """A hundi dashboard: tagged, shared crosshair, the last 6 hours, refreshed each minute,
    the exchange as its first variable."""
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("1m")
        .with_variable(exchange_variable())
    )


def choice_variable(
    name: str, label: str, values: Sequence[str], default: str
) -> db.CustomVariable:
    """A drop-down of fixed values."""
    return (
        db.CustomVariable(name)
        .label(label)
        .values(",".join(values))
        .current(VariableOption(text=default, value=default, selected=True))
    )


def exchange_variable() -> db.CustomVariable:
    """The exchanges hundi can collect (its ``hundi.exchanges`` entry points)."""
    names = sorted(ep.name for ep in entry_points(group="hundi.exchanges"))
    return choice_variable("exchange", "Exchange", names, names[0])


def symbol_variable(*, multi: bool) -> db.QueryVariable:
    """Symbols stored for the chosen exchange, from ``/api/v1/symbols``."""
    query = Query("/api/v1/symbols?exchange=${exchange:percentencode}").string("symbol").build()
    return (
        db.QueryVariable("symbol")
        .label("Symbol")
        .datasource(DATASOURCE)
        .query(variable_query(query))
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )


def on_right(panel: timeseries.Panel, *names: str) -> timeseries.Panel:
    """Put these series on the right axis (a second unit or scale)."""
    for name in names:
        panel = panel.override_by_name(
            name, [DynamicConfigValue(id_val="custom.axisPlacement", value="right")]
        )
    return panel


def legend() -> common_builders.VizLegendOptions:
    """A legend listing the series under the panel."""
    return (
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def series_panel(
    title: str, query: Query, *, unit: str = "short", width: int = 12
) -> timeseries.Panel:
    """A time-series panel over one hundi API query."""
    return (
        timeseries.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(query)
        .unit(unit)
        .span(width)
        .height(8)
        .legend(legend())
    )


def as_bars(panel: timeseries.Panel) -> timeseries.Panel:
    """Counts per interval read best as bars."""
    return panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(60).line_width(1)
