"""Reading stored data back: ``hundi.read`` for notebooks and ``hundi query`` for the shell."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click
import pandas as pd

from hundi.records import Channel
from hundi.stores.base import AggregatingStore, Store, StoreError, reading

__all__ = ["AggregatingStore", "QueryError", "parse_channel", "parse_time", "query", "read"]


class QueryError(ValueError):
    """A bad query argument; the message says which and why."""


def parse_time(value: str | datetime | None, name: str) -> datetime | None:
    """ISO string or datetime → aware UTC datetime; naive values are UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise QueryError(
                f"{name}: {value!r} is not an ISO date/time (e.g. 2024-05-01T12:00:00Z)"
            ) from None
    if not isinstance(value, datetime):
        raise QueryError(f"{name}: expected an ISO string or datetime, got {type(value).__name__}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_channel(channel: str | Channel) -> Channel:
    try:
        return Channel(channel)
    except ValueError:
        known = ", ".join(c.value for c in Channel)
        raise QueryError(f"unknown channel {channel!r}; known: {known}") from None


def _names(value: str | Sequence[str] | None) -> list[str] | None:
    """``"a,b"`` or ``["a", "b"]`` → ``["a", "b"]``; ``""`` → ``[]``; None stays None."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item.strip()]


def read(
    store: str | os.PathLike[str] | Store,
    *,
    exchange: str,
    symbol: str | None = None,
    channel: str | Channel = "trades",
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    aggregate: str | Sequence[str] | None = None,
    sampling: str | None = None,
    align: str | None = None,
    group_by: str | Sequence[str] | None = None,
    fields: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Stored records as a DataFrame indexed by exchange time ``ts`` (UTC), ``start <= ts < end``.

    ``store`` is a URL (``./data``, ``file:./data``) or an open store; ``symbol=None`` reads all.
    ``fields`` keeps only those value columns. Server-side aggregation (stores that support it,
    e.g. KairosDB): ``aggregate`` (``"avg"``, ``["avg", "max"]``, ``"p99"``...) per ``sampling``
    bucket (default ``1s``), ``align`` ``start``/``end``/``none``, ``group_by`` tags (default all
    of the channel's open tags, ``()`` aggregates across them).
    """
    selected = parse_channel(channel)
    first = parse_time(start, "start")
    last = parse_time(end, "end")
    if first is not None and last is not None and last < first:
        raise QueryError(f"end {last.isoformat()} is before start {first.isoformat()}")
    aggregators = _names(aggregate) or []
    columns = _names(fields)
    if not aggregators and (sampling is not None or align is not None or group_by is not None):
        raise QueryError("sampling, align and group_by need an aggregate (e.g. aggregate='avg')")
    with reading(store) as opened:
        if aggregators:
            if not isinstance(opened, AggregatingStore):
                raise QueryError(
                    f"store {opened.describe()} cannot aggregate on its server; read the records "
                    "and aggregate them with pandas (e.g. frame.resample('1s'))"
                )
            return opened.aggregate(
                exchange=exchange, channel=selected, symbol=symbol, start=first, end=last,
                aggregate=aggregators, sampling=sampling or "1s", align=align or "start",
                group_by=_names(group_by), fields=columns,
            )  # fmt: skip
        frame = opened.read(
            exchange=exchange, symbol=symbol, channel=selected, start=first, end=last
        )
        if columns is not None:
            unknown = [c for c in columns if c not in frame.columns]
            if unknown:
                known = ", ".join(map(str, frame.columns))
                raise QueryError(f"no field {', '.join(map(repr, unknown))} in {selected}; {known}")
            frame = frame[columns]
        return frame


def _print_table(shown: pd.DataFrame, total: int) -> None:
    """Small results in full; large ones as head and tail, with the counts.

    Columns holding one value throughout (exchange, symbol...) go into the title to save width.
    """
    from rich.console import Console
    from rich.table import Table

    head_tail = 10
    console = Console()
    if not console.is_terminal:
        console = Console(width=250)
    constant = [
        c
        for c in shown.columns
        if len(shown) > 0 and shown[c].dtype.kind in "OT" and shown[c].nunique() == 1
    ]
    labels = " ".join(f"{c}={shown[c].iloc[0]}" for c in constant)
    count = f"{total} rows" if len(shown) == total else f"{len(shown)} of {total} rows"
    table = Table(title=f"{labels}  {count}".strip(), title_justify="left")
    columns = [c for c in shown.columns if c not in constant]
    table.add_column(str(shown.index.name or ""), style="cyan", no_wrap=True)
    for column in columns:
        numeric = shown[column].dtype.kind in "iuf"
        table.add_column(str(column), justify="right" if numeric else "left", no_wrap=True)

    def add(rows: pd.DataFrame) -> None:
        for index, row in zip(rows.index, rows[columns].itertuples(index=False), strict=True):
            table.add_row(_cell(index), *(_cell(v) for v in row))

    if len(shown) > 2 * head_tail:
        add(shown.iloc[:head_tail])
        table.add_row("…", *(["…"] * len(columns)))
        add(shown.iloc[-head_tail:])
        table.caption = f"first and last {head_tail} of {len(shown)} rows"
    else:
        add(shown)
    console.print(table)


def _cell(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") + f"{value.nanosecond:03d}"
    return str(value)


@click.command()
@click.option("--store", "store_url", required=True, help="Store URL, e.g. ./data")
@click.option("--exchange", required=True)
@click.option("--symbol", default=None, help="Normalized symbol, e.g. BTC-USDT; default all.")
@click.option("--channel", default="trades", show_default=True)
@click.option("--start", default=None, help="ISO time, inclusive; naive = UTC.")
@click.option("--end", default=None, help="ISO time, exclusive; naive = UTC.")
@click.option(
    "--format", "output_format", type=click.Choice(["table", "csv", "parquet"]), default="table",
    show_default=True,
)  # fmt: skip
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Default: stdout.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most N rows (first).")
@click.option(
    "--field", "fields", multiple=True, help="Only this value column (repeatable); default all."
)
@click.option(
    "--aggregate", "aggregates", multiple=True,
    help="Server-side aggregator per --sampling bucket (repeatable): avg, min, max, sum, count, "
    "first, last, dev, p50, p99... (stores that aggregate, e.g. KairosDB).",
)  # fmt: skip
@click.option("--sampling", default=None, help="Bucket size for --aggregate: 500ms, 1s, 5min, 1h.")
@click.option(
    "--align", type=click.Choice(["start", "end", "none"]), default=None,
    help="Buckets at whole multiples of the sampling labelled by start (default) or end; "
    "none: from the query start, labelled by their first point.",
)  # fmt: skip
@click.option(
    "--group-by", default=None,
    help="Comma-separated tags to group --aggregate by (default: all open tags, e.g. symbol); "
    "'' aggregates across them.",
)  # fmt: skip
def query(
    store_url: str,
    exchange: str,
    symbol: str | None,
    channel: str,
    start: str | None,
    end: str | None,
    output_format: str,
    output: Path | None,
    limit: int | None,
    fields: tuple[str, ...],
    aggregates: tuple[str, ...],
    sampling: str | None,
    align: str | None,
    group_by: str | None,
) -> None:
    """Print or export stored records (or server-side aggregates of them)."""
    try:
        frame = read(
            store_url, exchange=exchange, symbol=symbol, channel=channel, start=start, end=end,
            aggregate=list(aggregates) or None, sampling=sampling, align=align,
            group_by=group_by, fields=list(fields) or None,
        )  # fmt: skip
        total = len(frame)
        if limit is not None:
            frame = frame.iloc[:limit]
        if output_format == "table":
            _print_table(frame, total)
        elif output_format == "csv":
            if output is None:
                buffer = io.StringIO()
                frame.to_csv(buffer)
                click.echo(buffer.getvalue(), nl=False)
            else:
                frame.to_csv(output)
        else:
            if output is None:
                raise QueryError("--format parquet needs --output FILE")
            frame.to_parquet(output)
    except (QueryError, StoreError, OSError) as e:
        click.echo(f"hundi query: {e}", err=True)
        sys.exit(2)
