"""``stream_groups``: the split of a flush by (exchange, symbol, time bucket) both stores use,
from the columns (no Python tuple per row, no Arrow group-by: that loads pandas)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hundi.stores.base import stream_groups

BUCKET = 1_000


def test_one_stream_in_one_bucket_is_the_whole_table_without_a_copy() -> None:
    table = pa.table({
        "exchange": pa.array(["x"] * 3).dictionary_encode(),
        "symbol": pa.array(["A"] * 3).dictionary_encode(),
        "ts": pa.array([5_000, 5_999, 5_500], pa.int64()),
    })  # fmt: skip
    assert stream_groups(table, BUCKET) == [("x", "A", 5, None)]


def test_plain_strings_in_several_chunks_group_by_value_in_arrival_order() -> None:
    """Not one dictionary chunk (a concatenation of flushes): encoded here, grouped by value,
    each group's rows ascending."""
    exchanges = ["x", "y", "x", "x", "y", "x"]
    symbols = ["A", "A", "B", "A", "A", "A"]
    ts = [1_500, 1_200, 1_100, 2_100, 1_900, 1_400]
    table = pa.Table.from_batches([
        pa.record_batch({"exchange": exchanges[:3], "symbol": symbols[:3],
                         "ts": pa.array(ts[:3], pa.timestamp("ns", tz="UTC"))}),
        pa.record_batch({"exchange": exchanges[3:], "symbol": symbols[3:],
                         "ts": pa.array(ts[3:], pa.timestamp("ns", tz="UTC"))}),
    ])  # fmt: skip
    groups = {
        (e, s, b): None if rows is None else rows.tolist()
        for e, s, b, rows in stream_groups(table, BUCKET)
    }
    assert groups == {
        ("x", "A", 1): [0, 5],
        ("y", "A", 1): [1, 4],
        ("x", "B", 1): [2],
        ("x", "A", 2): [3],
    }
    for _, _, _, rows in stream_groups(table, BUCKET):
        assert rows is not None and rows.dtype == np.int64
