"""Merging records that more than one write delivered: one row per record identity.

A store whose writes may overlap (a re-sent Cassandra chunk, two collectors recording the same
feed with different flush boundaries) reads every copy back and keeps one per
``(exchange, symbol, ts, *IDENTITY)``: the one received first (earliest ``recv_ts``). Columnar
in Arrow (one multi-key sort and a comparison of neighbours), no Python per row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hundi.records import RECORD_TYPES, Channel


def deduplicate(table: pa.Table, channel: Channel) -> pa.Table:
    """``table`` with one row per record identity, the earliest ``recv_ts`` of each, in
    (key, recv_ts) order (``table`` itself when it has no copies and is in that order)."""
    if table.num_rows < 2:
        return table

    def plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
        """A dictionary-encoded name compares by its string."""
        return (
            column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
        )

    def varies(column: pa.ChunkedArray) -> bool:
        """More than one value (min/max: a cheap scan, unlike counting distinct by hash)."""
        if column.null_count:
            return True
        low, high = pc.min_max(column).values()
        return bool(low != high)

    def in_place(indices: pa.Array) -> bool:
        """``indices`` is 0, 1, 2, ...: taking it would copy for nothing."""
        positions = pa.array(np.arange(len(indices), dtype=np.uint64))
        return bool(pc.all(pc.equal(indices, positions)).as_py())

    names = ["exchange", "symbol", "ts", *RECORD_TYPES[Channel(channel)].IDENTITY]
    columns = {name: plain(table.column(name)) for name in (*names, "recv_ts")}
    # A column with one value cannot tell rows apart: sorting by it would be wasted work.
    varying = [name for name in names if varies(columns[name])]
    keyed = pa.table({name: columns[name] for name in (*varying, "recv_ts")})
    order = pc.sort_indices(keyed, sort_keys=[(k, "ascending") for k in (*varying, "recv_ts")])
    if not varying:
        return table.take(order.slice(0, 1))
    if not in_place(order):
        keyed = keyed.take(order)
    first: pa.ChunkedArray | pa.Array | None = None
    for name in varying:
        column = keyed.column(name)
        changed = pc.fill_null(
            pc.not_equal(column.slice(1), column.slice(0, len(column) - 1)), True
        )
        first = changed if first is None else pc.or_(first, changed)
    keep = pa.concat_arrays([pa.array([True]), *pa.chunked_array(first).chunks])
    selection = order.filter(keep)
    if len(selection) == table.num_rows and in_place(selection):
        return table
    return table.take(selection)
