"""Streaming reads: a large range as a sequence of chunks instead of one DataFrame.

Chunks come one UTC day at a time (the store's partition unit), each day sorted by
(ts, recv_ts) like ``hundi.read`` and cut into pieces of at most ``chunk_rows`` rows, so memory
is bounded by one day of the selected symbols and columns, never by the whole range.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa

from hundi.query import AggregatingStore, parse_channel
from hundi.records import SCHEMAS, Channel
from hundi.research._source import (
    ResearchError,
    StoreLike,
    TimeLike,
    day_of,
    day_start_ns,
    days,
    days_between,
    embedded_root,
    live_files,
    ns_to_timestamp,
    read_files,
    sort_by_time,
    symbols,
    to_ns,
)
from hundi.stores.base import reading

DEFAULT_CHUNK_ROWS = 1_000_000


def iter_batches(
    store: StoreLike,
    *,
    exchange: str,
    symbol: str | None = None,
    channel: str | Channel = "trades",
    start: TimeLike = None,
    end: TimeLike = None,
    columns: Sequence[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ordered: bool = True,
) -> Iterator[pa.RecordBatch]:
    """Arrow record batches of ``start <= ts < end``, in time order, one day at a time.

    ``columns`` selects columns (``ts`` is always included). String columns are plain strings.
    ``ordered=False`` skips sorting each day by (ts, recv_ts): rows come in storage order,
    still day by day (for order-insensitive aggregations over many rows).
    """
    for _, table in iter_day_tables(
        store, exchange=exchange, symbol=symbol, channel=channel, start=start, end=end,
        columns=columns, ordered=ordered,
    ):  # fmt: skip
        yield from table.to_batches(max_chunksize=chunk_rows)


def iter_day_tables(
    store: StoreLike,
    *,
    exchange: str,
    symbol: str | None = None,
    channel: str | Channel = "trades",
    start: TimeLike = None,
    end: TimeLike = None,
    columns: Sequence[str] | None = None,
    ordered: bool = True,
) -> Iterator[tuple[date, pa.Table]]:
    """(day, Arrow table) per stored UTC day: the unit :func:`iter_batches` cuts into chunks.

    Days without rows are skipped. A store other than the embedded one cannot list its days,
    so it needs ``start`` and ``end`` and is read through ``Store.read`` one day at a time.
    """
    selected = parse_channel(channel)
    wanted = _columns(selected, columns)
    first_ns, end_ns = to_ns(start, "start"), to_ns(end, "end")
    if first_ns is not None and end_ns is not None and end_ns < first_ns:
        raise ResearchError("end is before start")
    with reading(store) as opened:
        root = embedded_root(opened)
        if root is not None:
            yield from _embedded_days(
                root, exchange, symbol, selected, wanted, first_ns, end_ns, ordered=ordered
            )
            return
        if isinstance(opened, AggregatingStore):
            raise ResearchError(
                f"{opened.describe()} keeps per-millisecond aggregates, not every record: read "
                "records from a lossless store (a folder or cassandra://), or use hundi.read with "
                "aggregate= for server-side aggregates"
            )
        if first_ns is None or end_ns is None:
            raise ResearchError(
                f"streaming from {opened.describe()} needs start and end (it cannot list days)"
            )
        for day in days_between(day_of(first_ns), day_of(end_ns - 1)):
            frame = opened.read(
                exchange=exchange,
                symbol=symbol,
                channel=selected,
                start=ns_to_timestamp(max(first_ns, day_start_ns(day))),
                end=ns_to_timestamp(min(end_ns, day_start_ns(day + timedelta(days=1)))),
            )
            table = pa.Table.from_pandas(frame.reset_index()[list(wanted)], preserve_index=False)
            if table.num_rows:
                yield day, table


def _embedded_days(
    root: Path,
    exchange: str,
    symbol: str | None,
    channel: Channel,
    wanted: tuple[str, ...],
    first_ns: int | None,
    end_ns: int | None,
    *,
    ordered: bool,
) -> Iterator[tuple[date, pa.Table]]:
    names = [symbol] if symbol is not None else symbols(root, exchange, channel.value)
    stored_days = sorted({d for name in names for d in days(root, exchange, channel.value, name)})
    for day in _within(stored_days, first_ns, end_ns):
        for _ in range(5):
            files = [f for name in names for f in live_files(root, exchange, channel, name, day)]
            try:
                table = read_files(
                    channel, files, _with_order(wanted) if ordered else wanted, first_ns, end_ns
                )
                break
            except FileNotFoundError:
                continue  # compaction removed a file between listing and reading
        else:
            raise ResearchError(f"store {str(root)!r} changed too fast to read consistently")
        if ordered:
            table = sort_by_time(table).select(list(wanted))
        if table.num_rows:
            yield day, table


def iter_read(
    store: StoreLike,
    *,
    exchange: str,
    symbol: str | None = None,
    channel: str | Channel = "trades",
    start: TimeLike = None,
    end: TimeLike = None,
    columns: Sequence[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """Like ``hundi.read`` but as DataFrame chunks (each indexed by UTC ``ts``), for ranges
    too large to hold at once; concatenated, the chunks equal ``hundi.read`` (for the same
    columns)."""
    for batch in iter_batches(
        store,
        exchange=exchange,
        symbol=symbol,
        channel=channel,
        start=start,
        end=end,
        columns=columns,
        chunk_rows=chunk_rows,
    ):
        yield batch.to_pandas().set_index("ts")


def _columns(channel: Channel, columns: Sequence[str] | None) -> tuple[str, ...]:
    names = SCHEMAS[channel].names
    if columns is None:
        return tuple(names)
    unknown = [c for c in columns if c not in names]
    if unknown:
        raise ResearchError(
            f"unknown column(s) {', '.join(unknown)} for {channel.value}; known: {', '.join(names)}"
        )
    return ("ts", *(c for c in columns if c != "ts"))


def _with_order(columns: tuple[str, ...]) -> list[str]:
    return list(columns) if "recv_ts" in columns else [*columns, "recv_ts"]


def _within(stored: list[date], first_ns: int | None, end_ns: int | None) -> list[date]:
    lo = day_of(first_ns) if first_ns is not None else None
    hi = day_of(end_ns - 1) if end_ns is not None else None
    return [d for d in stored if (lo is None or d >= lo) and (hi is None or d <= hi)]
