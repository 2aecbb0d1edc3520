"""The KairosDB store (URL ``kairosdb+http://host:8080``): market data as time series.

What goes where, metric names and tags: :mod:`hundi.stores.kairosdb.scheme`. Settings:
:mod:`hundi.stores.kairosdb.settings`. Reading: :mod:`hundi.stores.kairosdb.reader`.

Write path: ``write`` only converts records into rows (cheap, in memory, bounded: beyond
``max_pending_points`` it sends first); ``flush`` packs the rows column-wise (one JSON entry per
metric+tags with all its ``[ms, value]`` points, always ``"type": "double"`` so an integral
value like ``1e-05`` is not parsed as a long, non-finite values skipped and counted), gzips,
and POSTs bodies of at most ``max_points_per_post`` points over one keep-alive connection.

KairosDB answers 204 when the points are *queued*, not stored. With ``verify`` (option,
URL ``?verify=1`` or ``KAIROSDB_VERIFY=1``) every flush reads back what it sent, polling until
KairosDB's queue has caught up (at most ``verify_timeout`` s); anything missing or different
→ :class:`StoreError` naming the series, and those series are re-sent by the next flush.

Failures (server down, 5xx, timeouts) raise :class:`StoreError`; unsent bodies are kept and
re-sent by the next ``flush``. Re-sending is idempotent: the same metric+tags+ms overwrites
with the same value.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from hundi.records import Channel, Record
from hundi.stores.base import Store, StoreError
from hundi.stores.kairosdb.client import KairosClient
from hundi.stores.kairosdb.reader import (
    LAST_MS,
    Aggregation,
    Column,
    KairosReader,
    assemble,
    ms_range,
)
from hundi.stores.kairosdb.scheme import (
    EMPTY_TAG,
    EXCLUDED,
    ChannelRule,
    Converter,
    LastPerMs,
    Pending,
    rule_for,
)
from hundi.stores.kairosdb.settings import KairosSettings, load_settings

if TYPE_CHECKING:
    import pandas as pd  # read paths only: a collector never loads it

log = logging.getLogger("hundi.stores.kairosdb")

_VERIFY_FIRST_WAIT_S = 0.05
_VERIFY_MAX_WAIT_S = 0.5
_VERIFY_SERIES_PER_QUERY = 100

Datapoints = list[tuple[int, float]]


@dataclass(slots=True)
class Entry:
    """One metric+tags with its points: what KairosDB stores as one series."""

    metric: str
    tags: dict[str, str]
    points: Datapoints


@dataclass(slots=True)
class _Body:
    """A gzipped POST body and the entries it holds (kept for verification)."""

    data: bytes
    points: int
    entries: list[Entry]


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


class KairosStore(Store):
    """See the module docstring. Options: see :mod:`hundi.stores.kairosdb.settings`, plus
    ``read_only`` (nothing is written; ``write`` raises)."""

    scheme = "kairosdb+http"
    # Re-sending overwrites the same metric+tags+ms with the same value; per-ms aggregates
    # roll back on discard() so re-sent trades are counted once.
    idempotent = True

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url)
        self.settings: KairosSettings = load_settings(url, options)
        self.read_only = _flag(options.get("read_only", False))
        s = self.settings
        self.client = KairosClient(
            s.base_url, timeout_s=s.timeout_s, user=s.user, password=s.password,
            gzip_level=s.gzip_level,
        )  # fmt: skip
        self.reader = KairosReader(self.client, s.datapoints_path)
        self.converter = Converter(horizon_ms=s.merge_horizon_ms)
        self._pending: Pending = {}
        self._outbox: deque[_Body] = deque()
        self._unverified: list[Entry] = []
        self.points_sent = 0
        self.non_finite: Counter[str] = Counter()  # skipped NaN/Infinity values per metric
        self.not_sent: Counter[str] = Counter()  # records of channels KairosDB does not get

    def describe(self) -> str:
        return f"kairosdb {self.settings.base_url} (prefix {self.settings.metric_prefix})"

    # -- writing ---------------------------------------------------------------------------

    def write(self, batches: Mapping[Channel, Sequence[Record]]) -> None:
        if self.read_only:
            raise StoreError(f"{self.describe()} was opened read-only")
        if self._buffered_points() >= self.settings.max_pending_points:
            # Bounded memory: send what is buffered before taking more. Raising here leaves
            # this batch untouched, so the writer's retry of the same batch is exact.
            self._send()
        for channel, records in batches.items():
            if records and self.converter.rule(channel) is None:
                self.not_sent[Channel(channel).value] += len(records)
        self.converter.add(batches, self._pending)

    def flush(self) -> None:
        self._send()
        if self.settings.verify and self._unverified:
            entries, self._unverified = self._unverified, []
            try:
                self._check(entries)
            except _Mismatch as mismatch:
                # Re-send what KairosDB lost (the next flush); overwriting is idempotent.
                self._outbox.extend(self._bodies(mismatch.entries))
                raise StoreError(str(mismatch)) from None
        self.converter.commit()

    def discard(self) -> None:
        """Forget everything since the last successful flush (the writer's outage spool will
        write those batches again): unsent rows and bodies, and the per-ms aggregates' state."""
        self._pending = {}
        self._outbox.clear()
        self._unverified = []
        self.converter.rollback()

    def close(self) -> None:
        try:
            if not self.read_only:
                self.flush()
        finally:
            self.client.close()

    @property
    def backlog_points(self) -> int:
        """Points written but not yet accepted by KairosDB (pending rows and unsent bodies)."""
        return self._buffered_points()

    def _buffered_points(self) -> int:
        rule = self.converter.series_rule
        rows = sum(len(r) * len(rule(series).fields) for (series, _), r in self._pending.items())
        return rows + sum(body.points for body in self._outbox)

    def _send(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, {}
            self._outbox.extend(self._bodies(self._entries(pending, self.converter)))
        path = self.settings.datapoints_path
        while self._outbox:
            body = self._outbox[0]
            status, reply = self.client.post(path, body.data, gzipped=True)
            self.client.check(status, reply, f"POST {path} ({body.points} points)")
            self._outbox.popleft()
            self.points_sent += body.points
            if self.settings.verify:
                self._unverified.extend(body.entries)

    def _entries(self, pending: Pending, converter: Converter) -> list[Entry]:
        """Rows → one entry per metric+tags, its points column-wise; non-finite skipped."""
        prefix = self.settings.metric_prefix
        entries: list[Entry] = []
        for (series, tag_values), rows in pending.items():
            if not rows:
                continue
            rule = converter.series_rule(series)
            tags = {
                name: value or EMPTY_TAG
                for name, value in zip(rule.tag_names, tag_values, strict=True)
            }
            ms = list(rows.keys())
            table = np.array(list(rows.values()), dtype=np.float64)
            finite = np.isfinite(table)
            for i, field in enumerate(rule.fields):
                column = table[:, i]
                metric = rule.metric(prefix, field)
                ok = finite[:, i]
                if ok.all():
                    points = list(zip(ms, column.tolist(), strict=True))
                else:
                    points = [
                        (m, v) for m, v, good in zip(ms, column.tolist(), ok.tolist(), strict=True)
                        if good
                    ]  # fmt: skip
                    self._count_non_finite(metric, int((~ok).sum()), rule, field)
                if points:
                    entries.append(Entry(metric, tags, points))
        return entries

    def _count_non_finite(self, metric: str, count: int, rule: ChannelRule, field: str) -> None:
        # A zero-volume ms has no vwap, a zero-size ms no average liquidation price, and a
        # derivative ticker field not known yet is NaN: expected, not worth a warning.
        if rule.series == "trades_ms" and field == "vwap":
            return
        if rule.series == "liquidations_ms" and field == "avg_price":
            return
        if isinstance(rule, LastPerMs) and field in rule.nan_expected:
            return
        if not self.non_finite[metric]:
            log.warning("kairosdb: skipping NaN/Infinity values of %s (counted)", metric)
        self.non_finite[metric] += count

    def _bodies(self, entries: list[Entry]) -> list[_Body]:
        """Entries → gzipped JSON bodies of at most ``max_points_per_post`` points each."""
        limit = self.settings.max_points_per_post
        ttl = self.settings.ttl_s
        bodies: list[_Body] = []
        chunk: list[dict[str, Any]] = []
        chunk_entries: list[Entry] = []
        size = 0

        def close_chunk() -> None:
            nonlocal chunk, chunk_entries, size
            if chunk:
                data = self.client.gzip(msgspec.json.encode(chunk))
                bodies.append(_Body(data, size, chunk_entries))
                chunk, chunk_entries, size = [], [], 0

        for entry in entries:
            for offset in range(0, len(entry.points), limit):
                points = entry.points[offset : offset + limit]
                if size + len(points) > limit:
                    close_chunk()
                item: dict[str, Any] = {
                    "name": entry.metric,
                    "tags": entry.tags,
                    "type": "double",
                    "datapoints": points,
                }
                if ttl:
                    item["ttl"] = ttl
                chunk.append(item)
                chunk_entries.append(Entry(entry.metric, entry.tags, points))
                size += len(points)
        close_chunk()
        return bodies

    # -- verification ----------------------------------------------------------------------

    def verify_records(self, batches: Mapping[Channel, Sequence[Record]]) -> None:
        """Check that KairosDB holds exactly the points these records produce (fresh per-ms
        aggregation, so pass whole milliseconds); :class:`StoreError` naming what differs."""
        converter = Converter(horizon_ms=self.settings.merge_horizon_ms)
        try:
            self._check(self._entries(converter.convert(batches), converter))
        except _Mismatch as mismatch:
            raise StoreError(str(mismatch)) from None

    def _check(self, entries: list[Entry]) -> None:
        """Poll until every entry's points read back equal, or raise :class:`_Mismatch`."""
        deadline = time.monotonic() + self.settings.verify_timeout_s
        wait = _VERIFY_FIRST_WAIT_S
        remaining = entries
        while True:
            problems = self._differences(remaining)
            if not problems:
                return
            if time.monotonic() + wait > deadline:
                raise _Mismatch(self.settings.base_url, problems, self.settings.verify_timeout_s)
            time.sleep(wait)
            wait = min(wait * 2, _VERIFY_MAX_WAIT_S)
            remaining = [entry for entry, _ in problems]

    def _differences(self, entries: list[Entry]) -> list[tuple[Entry, str]]:
        problems: list[tuple[Entry, str]] = []
        for offset in range(0, len(entries), _VERIFY_SERIES_PER_QUERY):
            chunk = entries[offset : offset + _VERIFY_SERIES_PER_QUERY]
            first = min(m for e in chunk for m, _ in e.points)
            last = max(m for e in chunk for m, _ in e.points)
            columns = [Column(e.metric, tuple(e.tags.items()), e.metric, None) for e in chunk]
            found = self.reader.run(columns, first, last)
            for entry, (ms, values) in zip(chunk, found, strict=True):
                stored = dict(zip(ms.tolist(), values.tolist(), strict=True))
                missing = [m for m, _ in entry.points if m not in stored]
                differ = [m for m, v in entry.points if m in stored and stored[m] != v]
                if missing or differ:
                    earliest = min(missing + differ)
                    at = (
                        datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=earliest)
                    ).isoformat()
                    problems.append(
                        (entry, f"{len(missing)} of {len(entry.points)} points missing, "
                                f"{len(differ)} different (first at {at})")
                    )  # fmt: skip
        return problems

    # -- reading ---------------------------------------------------------------------------

    def read(
        self,
        *,
        exchange: str,
        symbol: str | None,
        channel: Channel,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """The stored series of a channel: one row per ms (bucket) and series, fields as
        columns (float64), tags (exchange, symbol, ...) as columns, index ``ts`` (UTC, ms)."""
        return self.aggregate(
            exchange=exchange, symbol=symbol, channel=channel, start=start, end=end
        )

    def aggregate(
        self,
        *,
        exchange: str,
        channel: Channel | str,
        symbol: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        aggregate: Sequence[str] = (),
        sampling: str = "1s",
        align: str = "start",
        group_by: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Server-side aggregation per ``sampling`` bucket (or the raw series without
        ``aggregate``). ``group_by`` tags (default: all the channel's tags that the filters
        leave open; ``()`` aggregates across them) become columns. One aggregator: columns
        are the field names; several: ``<field>_<aggregator>``. See
        :class:`hundi.stores.kairosdb.reader.Aggregation`."""
        rule = self._rule_for_reading(channel)
        chosen = self._fields(rule, fields)
        filters = {"exchange": exchange}
        if symbol is not None:
            filters["symbol"] = symbol
        open_tags = [t for t in rule.tag_names if t not in filters]
        if not aggregate:
            group = open_tags  # raw points belong to exactly one series each
        else:
            group = open_tags if group_by is None else list(group_by)
            unknown = [t for t in group if t not in open_tags]
            if unknown:
                raise StoreError(
                    f"cannot group {rule.series} by {', '.join(unknown)}; "
                    f"possible: {', '.join(open_tags) or 'nothing (all tags are filtered)'}"
                )
        aggregations = [Aggregation(name, sampling, align) for name in aggregate]
        aggregators = [a.to_json() for a in aggregations]  # validates before any request
        first_ms, last_ms = ms_range(start, end)
        prefix = self.settings.metric_prefix
        metrics = [rule.metric(prefix, f) for f in chosen]
        groups = self.reader.groups(metrics, filters, group, first_ms, last_ms)
        columns: list[Column] = []
        names: list[str] = []
        for field in chosen:
            if not aggregations:
                names.append(field)
            for aggregation in aggregations:
                names.append(field if len(aggregations) == 1 else f"{field}_{aggregation.label}")
        for combo in groups:
            tags = (*filters.items(), *combo)
            for field in chosen:
                metric = rule.metric(prefix, field)
                if not aggregations:
                    columns.append(Column(metric, tags, field, None))
                for aggregation, body in zip(aggregations, aggregators, strict=True):
                    name = field if len(aggregations) == 1 else f"{field}_{aggregation.label}"
                    columns.append(Column(metric, tags, name, body))
        data = self.reader.run(columns, first_ms, last_ms)
        tag_columns = [t for t in rule.tag_names if t in filters or t in group]
        return assemble(columns, data, tag_columns, names)

    # -- listing: what ``hundi query`` and ``hundi.read`` check names against ------------

    def exchanges(self) -> list[str]:
        """From the series' ``exchange`` tags (KairosDB's tag index, no data points read)."""
        return sorted({e for tags in self._stored_tags({}).values() for e in tags["exchange"]})

    def channels(self, exchange: str) -> list[Channel]:
        return sorted(self._stored_tags({"exchange": exchange}), key=lambda c: c.value)

    def symbols(self, exchange: str, channel: Channel) -> list[str]:
        tags = self._stored_tags({"exchange": exchange}, [Channel(channel)])
        symbols = tags.get(Channel(channel), {}).get("symbol", [])
        return sorted("" if s == EMPTY_TAG else s for s in symbols)  # "": exchange-wide rows

    def _stored_tags(
        self, filters: Mapping[str, str], channels: Sequence[Channel] | None = None
    ) -> dict[Channel, dict[str, list[str]]]:
        """Per channel with a series matching ``filters``, its tags' values: one tag query of
        every field's metric over all time (a field may hold no point, e.g. NaN only)."""
        prefix = self.settings.metric_prefix
        wanted = [
            (channel, rule, rule.metric(prefix, field))
            for channel in (list(Channel) if channels is None else channels)
            if (rule := rule_for(channel)) is not None
            for field in rule.fields
        ]
        if not wanted:
            return {}
        each = self.reader.tag_values_each([m for _, _, m in wanted], filters, 0, LAST_MS)
        found: dict[Channel, dict[str, set[str]]] = {}
        for (channel, _, _), tags in zip(wanted, each, strict=True):
            if tags.get("exchange"):
                merged = found.setdefault(channel, {})
                for key, values in tags.items():
                    merged.setdefault(key, set()).update(values)
        return {c: {k: sorted(v) for k, v in tags.items()} for c, tags in found.items()}

    def _rule_for_reading(self, channel: Channel | str) -> ChannelRule:
        name = channel.value if isinstance(channel, Channel) else str(channel)
        rule = rule_for(name)
        if rule is None:
            reason = EXCLUDED.get(name, "it has no numeric fields")
            raise StoreError(
                f"channel {name!r} is not stored in KairosDB ({reason}); read it from a "
                "lossless store (embedded or Cassandra)"
            )
        return rule

    @staticmethod
    def _fields(rule: ChannelRule, fields: Sequence[str] | None) -> list[str]:
        if fields is None:
            return list(rule.fields)
        unknown = [f for f in fields if f not in rule.fields]
        if unknown:
            raise StoreError(
                f"{rule.series} has no field {', '.join(map(repr, unknown))}; "
                f"fields: {', '.join(rule.fields)}"
            )
        return list(fields)


class _Mismatch(Exception):
    """Verification found series whose points KairosDB does not hold (yet)."""

    def __init__(self, base_url: str, problems: list[tuple[Entry, str]], waited_s: float):
        self.entries = [entry for entry, _ in problems]
        shown = "; ".join(
            f"{entry.metric} {_tag_text(entry.tags)}: {what}" for entry, what in problems[:3]
        )
        more = f" (and {len(problems) - 3} more series)" if len(problems) > 3 else ""
        super().__init__(
            f"KairosDB at {base_url} verification failed after {waited_s:g}s for "
            f"{len(problems)} series: {shown}{more}"
        )


def _tag_text(tags: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in tags.items()) + "}"


class KairosHttpsStore(KairosStore):
    """Same store over TLS (``kairosdb+https://``)."""

    scheme = "kairosdb+https"
