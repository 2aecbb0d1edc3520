"""Reading KairosDB back into pandas: raw series and server-side aggregations.

Grouping: each group (e.g. one symbol) is its own sub-query with exact tag filters, the
groups' tag values found first through ``<datapoints>/query/tags``. That is what KairosDB's
``group_by: tag`` computes, and it also works on servers where that grouper is broken (1.3 on
JDK 17 without ``--add-opens java.base/java.util`` fails with "error during validation of
[symbol]"). Aggregators run on the server; several aggregators are several sub-queries
(KairosDB *chains* the aggregators of one sub-query, it does not run them side by side).

Times: KairosDB has ms timestamps and inclusive ranges. ``start`` → ``floor(start_ns / 1e6)``,
``end`` (exclusive) → ``ceil(end_ns / 1e6) - 1``: every ms bucket that overlaps
``[start, end)`` is returned.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec
import numpy as np

from hundi.stores.base import StoreError, ns_of
from hundi.stores.kairosdb.client import KairosClient

if TYPE_CHECKING:
    import pandas as pd  # loaded by the read functions only: a collector never needs it

NS_PER_MS: Final = 1_000_000
LAST_MS: Final = 9_223_372_036_854  # pandas' largest timestamp, in ms
_ENTRIES_PER_QUERY: Final = 200

_UNITS: Final = {
    "ms": "milliseconds", "s": "seconds", "m": "minutes", "min": "minutes", "h": "hours",
    "d": "days", "w": "weeks",
}  # fmt: skip
_SAMPLING = re.compile(r"^\s*(\d+)\s*(ms|s|min|m|h|d|w)\s*$")
AGGREGATORS: Final = ("avg", "min", "max", "sum", "count", "first", "last", "dev")
_PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$")
ALIGNMENTS: Final = ("start", "end", "none")


class _Result(msgspec.Struct):
    name: str
    values: list[tuple[int, float]] = []
    tags: dict[str, list[str]] = {}


class _Query(msgspec.Struct):
    results: list[_Result] = []


class _Reply(msgspec.Struct):
    queries: list[_Query]


_reply_decoder = msgspec.json.Decoder(_Reply)


@dataclass(frozen=True, slots=True)
class Aggregation:
    """One server-side aggregator: ``avg``, ``min``, ``max``, ``sum``, ``count``, ``first``,
    ``last``, ``dev`` or a percentile ``p50``/``p99.9``, over buckets of ``sampling``
    (``500ms``, ``1s``, ``5min``, ``1h``, ``1d``, ``1w``).

    ``align``: ``start`` buckets at whole multiples of the sampling since the epoch, labelled by
    their start (pandas ``resample(rule, label="left", closed="left")``); ``end`` the same
    buckets labelled by their end; ``none`` buckets from the query start, labelled by their
    first point (KairosDB's own default).
    """

    name: str
    sampling: str = "1s"
    align: str = "start"

    @property
    def label(self) -> str:
        return self.name

    def to_json(self) -> dict[str, Any]:
        value, unit = parse_sampling(self.sampling)
        body: dict[str, Any] = {"sampling": {"value": value, "unit": unit}}
        percentile = _PERCENTILE.match(self.name)
        if percentile:
            fraction = float(percentile.group(1)) / 100
            if not 0 < fraction <= 1:
                raise StoreError(f"percentile {self.name!r} must be between p0 and p100")
            body.update(name="percentile", percentile=fraction)
        elif self.name in AGGREGATORS:
            body["name"] = self.name
        else:
            known = ", ".join((*AGGREGATORS, "p<number>"))
            raise StoreError(f"unknown aggregator {self.name!r}; known: {known}")
        if self.align == "start":
            body.update(align_sampling=True, align_start_time=True)
        elif self.align == "end":
            body.update(align_sampling=True, align_end_time=True)
        elif self.align != "none":
            raise StoreError(f"align must be one of {', '.join(ALIGNMENTS)}, got {self.align!r}")
        return body


def parse_sampling(text: str) -> tuple[int, str]:
    """``"1s"`` → ``(1, "seconds")``; a clear error for anything else."""
    match = _SAMPLING.match(text)
    if not match or int(match.group(1)) <= 0:
        raise StoreError(
            f"sampling {text!r} must be a positive number and a unit: ms, s, min, h, d or w "
            "(e.g. 500ms, 1s, 5min)"
        )
    return int(match.group(1)), _UNITS[match.group(2)]


def ms_range(start: datetime | None, end: datetime | None) -> tuple[int, int]:
    """Inclusive ms range of the buckets overlapping ``[start, end)`` (see module docstring)."""
    # ns_of: beyond the int64 range (year 9999) the range's end, not an overflow
    first = 0 if start is None else max(0, ns_of(start) // NS_PER_MS)
    last = LAST_MS if end is None else min(LAST_MS, -(-ns_of(end) // NS_PER_MS) - 1)
    return first, last


@dataclass(frozen=True, slots=True)
class Column:
    """What one sub-query computes: a column of the group ``tags``."""

    metric: str
    tags: tuple[tuple[str, str], ...]
    name: str
    aggregator: dict[str, Any] | None


class KairosReader:
    """Runs tag lookups and sub-queries through a :class:`KairosClient`."""

    def __init__(self, client: KairosClient, datapoints_path: str) -> None:
        self.client = client
        self.query_path = f"{datapoints_path}/query"
        self.tags_path = f"{datapoints_path}/query/tags"

    def tag_values(
        self, metrics: Sequence[str], filters: Mapping[str, str], first_ms: int, last_ms: int
    ) -> dict[str, list[str]]:
        """Every tag's values among the series of ``metrics`` matching ``filters``."""
        found: dict[str, set[str]] = {}
        for tags in self.tag_values_each(metrics, filters, first_ms, last_ms):
            for key, values in tags.items():
                found.setdefault(key, set()).update(values)
        return {key: sorted(values) for key, values in found.items()}

    def tag_values_each(
        self, metrics: Sequence[str], filters: Mapping[str, str], first_ms: int, last_ms: int
    ) -> list[dict[str, list[str]]]:
        """Per metric (in order), its tags' values among its series matching ``filters``
        (none: no such series). One request."""
        body = {
            "start_absolute": first_ms,
            "end_absolute": last_ms,
            "metrics": [{"name": m, "tags": {k: [v] for k, v in filters.items()}} for m in metrics],
        }
        reply = _reply_decoder.decode(self.client.post_json(self.tags_path, body))
        if len(reply.queries) != len(metrics):
            raise StoreError(
                f"KairosDB at {self.client.base_url} answered {len(reply.queries)} of "
                f"{len(metrics)} tag queries"
            )
        each = []
        for query in reply.queries:
            found: dict[str, set[str]] = {}
            for result in query.results:
                for key, values in result.tags.items():
                    found.setdefault(key, set()).update(values)
            each.append({key: sorted(values) for key, values in found.items() if values})
        return each

    def groups(
        self,
        metrics: Sequence[str],
        filters: Mapping[str, str],
        group_by: Sequence[str],
        first_ms: int,
        last_ms: int,
    ) -> list[tuple[tuple[str, str], ...]]:
        """The tag combinations to query one by one (a group with no data comes back empty)."""
        if not group_by:
            return [()]
        known = self.tag_values(metrics, filters, first_ms, last_ms)
        value_lists = [known.get(key, []) for key in group_by]
        combos = itertools.product(*value_lists)
        return [tuple(zip(group_by, combo, strict=True)) for combo in combos]

    def run(
        self, columns: Sequence[Column], first_ms: int, last_ms: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(ms, values) per column, in order; several columns per HTTP request."""
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for offset in range(0, len(columns), _ENTRIES_PER_QUERY):
            chunk = columns[offset : offset + _ENTRIES_PER_QUERY]
            metrics = []
            for column in chunk:
                entry: dict[str, Any] = {
                    "name": column.metric,
                    "tags": {k: [v] for k, v in column.tags},
                }
                if column.aggregator is not None:
                    entry["aggregators"] = [column.aggregator]
                metrics.append(entry)
            body = {"start_absolute": first_ms, "end_absolute": last_ms, "metrics": metrics}
            reply = _reply_decoder.decode(self.client.post_json(self.query_path, body))
            if len(reply.queries) != len(chunk):
                raise StoreError(
                    f"KairosDB at {self.client.base_url} answered {len(reply.queries)} of "
                    f"{len(chunk)} sub-queries"
                )
            for query in reply.queries:
                values = [v for result in query.results for v in result.values]
                if values:
                    array = np.array(values, dtype=np.float64)
                    out.append((array[:, 0].astype(np.int64), array[:, 1]))
                else:
                    out.append((np.empty(0, np.int64), np.empty(0, np.float64)))
        return out


def assemble(
    columns: Sequence[Column],
    data: Sequence[tuple[np.ndarray, np.ndarray]],
    tag_names: Sequence[str],
    column_names: Sequence[str],
) -> pd.DataFrame:
    """Sub-query results → one frame: index ``ts`` (UTC), tag columns, value columns."""
    import pandas as pd

    by_group: dict[tuple[tuple[str, str], ...], dict[str, pd.Series]] = {}
    for column, (ms, values) in zip(columns, data, strict=True):
        if len(ms):
            series = pd.Series(values, index=ms, dtype="float64")
            series = series[~series.index.duplicated(keep="last")]
            by_group.setdefault(column.tags, {})[column.name] = series
    frames = []
    for tags, series_by_name in by_group.items():
        frame = pd.DataFrame(series_by_name).sort_index()
        frame = frame.reindex(columns=list(column_names))
        for position, (key, value) in enumerate((k, v) for k, v in tags if k in tag_names):
            frame.insert(position, key, value)
        frames.append(frame)
    if not frames:
        empty = pd.DataFrame(
            {
                **{t: pd.Series(dtype="object") for t in tag_names},
                **{c: pd.Series(dtype="float64") for c in column_names},
            }
        )
        empty.index = pd.DatetimeIndex([], tz="UTC", name="ts")
        return empty
    frame = pd.concat(frames)
    ms_index = frame.index.to_numpy(dtype=np.int64)
    frame.index = pd.DatetimeIndex(pd.to_datetime(ms_index, unit="ms", utc=True), name="ts")
    present = [t for t in tag_names if t in frame.columns]
    frame = frame.reset_index().sort_values(["ts", *present], kind="stable").set_index("ts")
    ordered = [t for t in tag_names if t in frame.columns] + list(column_names)
    return frame[ordered]
