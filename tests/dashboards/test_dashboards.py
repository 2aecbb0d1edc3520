"""The generated dashboards: committed JSON equals a fresh generation, matches the schema,
reads back through grafana-foundation-sdk's typed models, and fits the provisioning."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from grafana_foundation_sdk.models.dashboard import Dashboard

from hundi.dashboards import DASHBOARDS, render, write_all
from hundi.dashboards.infinity import DATASOURCE_UID, PLUGIN_ID, InfinityQuery, register

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
OUT = GRAFANA / "dashboards"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((OUT / f"{name}.json").read_text(encoding="utf-8"))
    return data


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((GRAFANA / "dashboard.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_json_equals_a_fresh_generation(tmp_path: Path) -> None:
    written = write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in OUT.glob("*.json"))
    for path in written:
        committed = (OUT / path.name).read_text(encoding="utf-8")
        assert path.read_text(encoding="utf-8") == committed, (
            f"{OUT / path.name} is stale: run `make grafana-dashboards` and commit it"
        )


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_matches_the_schema(name: str) -> None:
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in _validator().iter_errors(_load(name))
    ]
    assert errors == []


@pytest.mark.parametrize(
    ("break_it", "complaint"),
    [
        (lambda d: d["panels"][-1]["targets"][0].pop("url"), "'url' is a required property"),
        (lambda d: d["panels"][-1]["gridPos"].update(w=30), "30 is greater than the maximum"),
        (lambda d: d["templating"]["list"][0].update(type="dropdown"), "'dropdown' is not one of"),
        (lambda d: d["panels"][-1].update(titel="typo"), "Additional properties"),
        (lambda d: d["panels"][-1]["targets"][0]["columns"][0].update(type="date"), "'date'"),
    ],
)
def test_the_schema_rejects_broken_dashboards(break_it: Any, complaint: str) -> None:
    broken = copy.deepcopy(_load("market"))
    break_it(broken)
    messages = [e.message for e in _validator().iter_errors(broken)]
    assert any(complaint in m for m in messages), messages


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_sdk_reads_the_json_back_into_typed_models(name: str) -> None:
    register()
    text = (OUT / f"{name}.json").read_text(encoding="utf-8")
    dashboard = Dashboard.from_json(json.loads(text))
    targets = [t for p in dashboard.panels or [] for t in getattr(p, "targets", None) or []]
    assert targets and all(isinstance(t, InfinityQuery) for t in targets)
    assert render(dashboard) == text


def test_provisioning_points_the_dashboards_at_the_api() -> None:
    provisioning = GRAFANA / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "hundi.yaml").read_text())
    (source,) = datasources["datasources"]
    assert (source["uid"], source["type"]) == (DATASOURCE_UID, PLUGIN_ID)
    assert source["url"] == "${HUNDI_API_URL}"
    assert source["jsonData"]["allowedHosts"] == ["${HUNDI_API_URL}"]
    providers = yaml.safe_load((provisioning / "dashboards" / "hundi.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    for name in DASHBOARDS:
        text = json.dumps(_load(name))
        refs = [p["datasource"] for p in _load(name)["panels"] if p["type"] != "row"]
        assert refs and all(r == {"type": PLUGIN_ID, "uid": DATASOURCE_UID} for r in refs)
        assert "http://" not in text  # queries are relative to the datasource's URL
