"""Streaming reads: a large range as a sequence of chunks instead of one DataFrame.

Chunks come one UTC day at a time (the store's partition unit), each day sorted by
(ts, recv_ts) like ``hundi.read`` and cut into pieces of at most ``chunk_rows`` rows, so memory
is bounded by one day of the selected symbols and columns, never by the whole range.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date

import pandas as pd
import pyarrow as pa

from hundi.query import parse_channel, resolve
from hundi.records import SCHEMAS, Channel
from hundi.research._source import (
    ResearchError,
    StoreLike,
    TimeLike,
    positive,
    time_window,
)
from hundi.stores.base import AggregatingStore, Unsupported, reading

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
    positive(chunk_rows, "chunk_rows")
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

    Days without rows are skipped. Read through the store's ``read_days``; a store that cannot
    list its days needs ``start`` and ``end``. Names are checked as by ``hundi.read``
    (:func:`hundi.query.resolve`).
    """
    selected = parse_channel(channel)
    wanted = _columns(selected, columns)
    first_ns, end_ns = time_window(start, end)
    with reading(store) as opened:
        if isinstance(opened, AggregatingStore):
            raise ResearchError(
                f"{opened.describe()} keeps per-millisecond aggregates, not every record: read "
                "records from a lossless store (a folder or cassandra://), or use hundi.read with "
                "aggregate= for server-side aggregates"
            )
        symbol = resolve(opened, exchange, symbol, selected)
        try:
            yield from opened.read_days(
                exchange=exchange, symbol=symbol, channel=selected, start_ns=first_ns,
                end_ns=end_ns, columns=wanted, ordered=ordered,
            )  # fmt: skip
        except Unsupported as exc:
            raise ResearchError(f"streaming: {exc}") from None


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


def _columns(channel: Channel, columns: Sequence[str] | None) -> list[str]:
    names = SCHEMAS[channel].names
    if columns is None:
        return list(names)
    unknown = [c for c in columns if c not in names]
    if unknown:
        raise ResearchError(
            f"unknown column(s) {', '.join(unknown)} for {channel.value}; known: {', '.join(names)}"
        )
    return ["ts", *(c for c in columns if c != "ts")]
