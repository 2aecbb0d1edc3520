"""Merging records that more than one write delivered: one row per record identity.

A store whose writes may overlap (a re-sent Cassandra chunk, two collectors recording the same
feed with different flush boundaries) reads every copy back and keeps one per
``(exchange, symbol, ts, *IDENTITY)``: the one received first (earliest ``recv_ts``). Columnar
in Arrow (one multi-key sort and a comparison of neighbours), no Python per row.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from hundi.records import RECORD_TYPES, Channel


def deduplicate(table: pa.Table, channel: Channel) -> pa.Table:
    """``table`` with one row per record identity, the earliest ``recv_ts`` of each, in
    (key, recv_ts) order."""
    if table.num_rows < 2:
        return table
    keys = ["exchange", "symbol", "ts", *RECORD_TYPES[Channel(channel)].IDENTITY]
    # A column with one value cannot tell rows apart: sorting by it is wasted work.
    varying = [k for k in keys if _varies(table.column(k))]
    order = pc.sort_indices(table, sort_keys=[(k, "ascending") for k in (*varying, "recv_ts")])
    ordered = table.take(order)
    if not varying:
        return ordered.slice(0, 1)
    first = None
    for key in varying:
        column = ordered.column(key)
        changed = pc.not_equal(column.slice(1), column.slice(0, len(column) - 1))
        changed = pc.fill_null(changed, True)
        first = changed if first is None else pc.or_(first, changed)
    keep = pa.concat_arrays([pa.array([True]), *pa.chunked_array(first).chunks])
    return ordered.filter(keep)


def _varies(column: pa.ChunkedArray) -> bool:
    """More than one value (min/max: a cheap scan, unlike counting distinct values by hash)."""
    if column.null_count:
        return True
    low, high = pc.min_max(column).values()
    return bool(low != high)
