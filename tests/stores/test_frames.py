"""A read's DataFrame (``hundi.stores.base.to_frame``, both stores): the same frame as
``to_pandas()``, writable, with a name holding one value kept as one shared block instead of a
copy per row; and the merge's one-collector fast path across chunk boundaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from hundi.records import Channel
from hundi.stores.base import constant_nulls, constant_strings, single_string, to_frame
from hundi.stores.embedded.store import plain_strings
from hundi.stores.merge import deduplicate

N = 150_000


def _names(values: list[str]) -> pa.DictionaryArray:
    return pa.array(values).dictionary_encode()


def _table(count: int) -> pa.Table:
    ts = np.arange(count, dtype=np.int64) * 1_000
    return pa.table(
        {
            "exchange": _names(["binance"] * count),
            "symbol": pa.chunked_array(
                [["BTC-USDT"] * (count // 2), ["BTC-USDT"] * (count - count // 2)]
            ),
            "native_symbol": _names(["BTCUSDT", ""] * (count // 2) + ["x"] * (count % 2)),
            "detail": pa.array([f"d{i % 3}" for i in range(count)]),
            "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
            "recv_ts": pa.array(ts + 5, pa.timestamp("ns", tz="UTC")),
            "trade_id": pa.array(np.arange(count)),
            "price": pa.array(np.linspace(1.0, 2.0, count)),
            "side": pa.array(np.ones(count, np.int8)),
        }
    )


def test_to_frame_is_to_pandas_and_writable() -> None:
    table = _table(N)
    frame = to_frame(table)
    pd.testing.assert_frame_equal(frame, plain_strings(table).to_pandas().set_index("ts"))
    assert str(frame["exchange"].dtype) == str(frame["detail"].dtype)  # pandas strings, all
    frame.iloc[0, frame.columns.get_loc("price")] = -1.0  # a reader may change its frame
    frame.loc[frame.index[1], "symbol"] = "ETH-USDT"
    assert frame["price"].iloc[0] == -1.0
    assert list(frame["symbol"].iloc[:3]) == ["BTC-USDT", "ETH-USDT", "BTC-USDT"]
    empty = to_frame(table.slice(0, 0))
    pd.testing.assert_frame_equal(
        empty, plain_strings(table.slice(0, 0)).to_pandas().set_index("ts")
    )


def test_a_constant_name_is_one_shared_block() -> None:
    for large in (False, True):
        column = constant_strings("BTC-USDT", 1_000_000, large=large)  # written out: 12-16 MB
        assert column.to_pylist() == ["BTC-USDT"] * 1_000_000
        addresses = {chunk.buffers()[2].address for chunk in column.chunks}
        assert len(addresses) == 1 and column.num_chunks > 1
        held = {b.address: b.size for c in column.chunks for b in c.buffers() if b is not None}
        assert sum(held.values()) < 3 * 1024 * 1024  # one block of ~1 MB (and its offsets)
        assert single_string(column) == "BTC-USDT"
    assert constant_strings("", 5).to_pylist() == [""] * 5
    assert constant_strings("x", 0).to_pylist() == []
    assert constant_nulls(N, pa.int64()).null_count == N
    assert len(constant_nulls(N, pa.int64())) == N


def test_single_string_sees_every_value() -> None:
    assert single_string(pa.chunked_array([["a"] * 10, ["a"] * 9 + ["b"]])) is None
    assert single_string(pa.chunked_array([["a", None]])) is None
    assert single_string(pa.chunked_array([[]], pa.string())) is None
    mixed = pa.DictionaryArray.from_arrays(pa.array([0, 0, 0], pa.int32()), pa.array(["a", "b"]))
    assert single_string(pa.chunked_array([mixed])) == "a"  # "b" is in the dictionary, unused
    other = pa.DictionaryArray.from_arrays(pa.array([1], pa.int32()), pa.array(["a", "b"]))
    assert single_string(pa.chunked_array([mixed, other])) is None
    block = pa.array(["a"] * 5 + ["b"])  # slices of one block are checked slice by slice
    assert single_string(pa.chunked_array([block.slice(0, 5), block.slice(0, 5)])) == "a"
    assert single_string(pa.chunked_array([block.slice(0, 5), block.slice(1, 5)])) is None


def test_one_collectors_chunks_merge_across_chunk_boundaries() -> None:
    """Ids growing inside each chunk but repeated across two (a re-sent tail) are merged."""
    table = _table(10).drop_columns(["detail"])
    first, second = table.slice(0, 6), table.slice(5, 5)  # row 5 in both
    merged = deduplicate(pa.concat_tables([first, second]), Channel.TRADES)
    assert merged.column("trade_id").to_pylist() == list(range(10))
    whole = deduplicate(pa.concat_tables([table.slice(0, 6), table.slice(6, 4)]), Channel.TRADES)
    assert whole.num_rows == 10
