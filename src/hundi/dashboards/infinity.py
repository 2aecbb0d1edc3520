"""A typed query for Grafana's Infinity datasource, which grafana-foundation-sdk lacks.

It implements the SDK's protocols: :class:`InfinityQuery` is a ``Dataquery`` (``to_json`` /
``from_json``), :class:`Query` a ``Builder`` of it, and :func:`register` makes the SDK's
typed unmarshalling (``Dashboard.from_json``) turn Infinity targets back into
:class:`InfinityQuery`, so a dashboard JSON can be checked by reading it back.

Only what hundi's API needs: a JSON array from a URL relative to the datasource's base URL,
read by the backend parser (so it also works in alerting and through ``allowedHosts``),
with typed columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

PLUGIN_ID = "yesoreyeram-infinity-datasource"
#: the uid the provisioned datasource gets (deploy/grafana/provisioning/datasources/hundi.yaml)
DATASOURCE_UID = "hundi-api"
DATASOURCE = DataSourceRef(type_val=PLUGIN_ID, uid=DATASOURCE_UID)

ColumnType = Literal["string", "number", "timestamp", "timestamp_epoch", "timestamp_epoch_s"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column Infinity extracts: ``selector`` in each row object, shown as ``text``."""

    selector: str
    text: str
    type: ColumnType

    def to_json(self) -> dict[str, object]:
        return {"selector": self.selector, "text": self.text, "type": self.type}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Column:
        return cls(data["selector"], data["text"], data["type"])


@dataclass(slots=True)
class InfinityQuery(cogvariants.Dataquery):
    """An Infinity target (the subset of its query model hundi uses)."""

    ref_id: str = "A"
    url: str = ""
    columns: list[Column] = field(default_factory=list)
    root_selector: str = ""
    format: Literal["table", "timeseries"] = "table"
    type: Literal["json"] = "json"
    source: Literal["url"] = "url"
    parser: Literal["backend"] = "backend"
    method: Literal["GET"] = "GET"
    datasource: DataSourceRef | None = None
    hide: bool | None = None

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "type": self.type,
            "source": self.source,
            "parser": self.parser,
            "format": self.format,
            "url": self.url,
            "url_options": {"method": self.method, "data": ""},
            "root_selector": self.root_selector,
            "columns": [c.to_json() for c in self.columns],
            "filters": [],
        }
        if self.datasource is not None:
            payload["datasource"] = self.datasource.to_json()
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        datasource = data.get("datasource")
        return cls(
            ref_id=data["refId"],
            url=data["url"],
            columns=[Column.from_json(c) for c in data.get("columns", [])],
            root_selector=data.get("root_selector", ""),
            format=data.get("format", "table"),
            type=data.get("type", "json"),
            source=data.get("source", "url"),
            parser=data.get("parser", "backend"),
            method=data.get("url_options", {}).get("method", "GET"),
            datasource=DataSourceRef.from_json(datasource) if datasource else None,
            hide=data.get("hide"),
        )


class Query(cogbuilder.Builder[InfinityQuery]):
    """Builder: ``Query("/api/v1/bars?...").ref_id("A").time("time").number("open")``."""

    def __init__(self, url: str) -> None:
        self._internal = InfinityQuery(url=url, datasource=DATASOURCE)

    def build(self) -> InfinityQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def time(self, selector: str, text: str = "time") -> Self:
        """An epoch-milliseconds column, the panel's time axis."""
        self._internal.columns.append(Column(selector, text, "timestamp_epoch"))
        return self

    def number(self, selector: str, text: str | None = None) -> Self:
        self._internal.columns.append(Column(selector, text or selector, "number"))
        return self

    def string(self, selector: str, text: str | None = None) -> Self:
        self._internal.columns.append(Column(selector, text or selector, "string"))
        return self


def variable_query(query: InfinityQuery) -> dict[str, object]:
    """The ``query`` of a Grafana query variable served by Infinity (its variable editor's
    "Infinity" mode: the first column gives the values)."""
    target = query.to_json()
    target.pop("datasource", None)
    target["refId"] = "variable"
    return {"queryType": "infinity", "query": "", "infinityQuery": target}


def register() -> None:
    """Let the SDK's ``from_json`` read Infinity targets back as :class:`InfinityQuery`."""
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(identifier=PLUGIN_ID, from_json_hook=InfinityQuery.from_json)
    )
