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


def test_dictionaries_of_other_index_widths_or_repeated_names_are_encoded_again() -> None:
    """Not the one-chunk int32 dictionary of distinct names ``to_arrow`` makes: an int64 or
    int8 index, a name twice in the dictionary; grouped by name all the same."""
    ts = pa.array([1_000, 1_100, 1_200, 1_300], pa.int64())
    for exchange in (
        pa.DictionaryArray.from_arrays(pa.array([0, 1, 0, 1], pa.int64()), ["x", "y"]),
        pa.DictionaryArray.from_arrays(pa.array([0, 1, 0, 1], pa.int8()), ["x", "y"]),
        pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, 1], pa.int32()), ["x", "y", "x"]),
    ):
        table = pa.table({"exchange": exchange, "symbol": ["A"] * 4, "ts": ts})
        groups = {
            (e, s, b): None if rows is None else rows.tolist()
            for e, s, b, rows in stream_groups(table, BUCKET)
        }
        assert groups == {("x", "A", 1): [0, 2], ("y", "A", 1): [1, 3]}, exchange.type
