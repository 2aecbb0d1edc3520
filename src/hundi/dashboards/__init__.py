"""Grafana dashboards as code (grafana-foundation-sdk), over hundi's HTTP API.

``python -m hundi.dashboards --out deploy/grafana/dashboards`` writes ``market.json`` and
``collectors.json``; the committed files are tested to equal a fresh generation. Queries go
to the Infinity datasource (:mod:`hundi.dashboards.infinity`) provisioned with uid
``hundi-api``, pointing at ``hundi serve``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from hundi.dashboards import collectors, market

DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "market": market.build,
    "collectors": collectors.build,
}


def render(dashboard: Dashboard) -> str:
    """The dashboard as Grafana's JSON model (stable: sorted keys, two-space indent).

    Panels are numbered 1, 2... in order: Grafana keys panel state (links, repeats) by id."""
    for number, panel in enumerate(dashboard.panels or [], start=1):
        panel.id_val = number
    return json.dumps(dashboard, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def write_all(out: Path) -> list[Path]:
    """Write every dashboard to ``out/<name>.json``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in DASHBOARDS.items():
        path = out / f"{name}.json"
        path.write_text(render(build()), encoding="utf-8")
        written.append(path)
    return written


__all__ = ["DASHBOARDS", "render", "write_all"]
