"""``to_arrow`` builds its columns from numpy buffers (pyarrow's own conversion loads pandas):
for every channel it must give exactly what ``pa.array`` gives, and refuse what it refuses."""

from __future__ import annotations

from typing import Any

import msgspec
import pyarrow as pa
import pytest

from hundi.records import (
    _GETTERS,
    RECORD_TYPES,
    SCHEMAS,
    Channel,
    Record,
    Trade,
    numpy_view,
    to_arrow,
)

NAMES = ["BTC-USDT", "ETH-USD", "ü€-ß", "", "BTC-USDT"]  # repeats, non-ASCII, empty


def reference(channel: Channel, records: list[Record]) -> pa.Table:
    """The same table through pyarrow's own conversion of Python values."""
    arrays = [pa.array(list(map(get, records)), kind) for get, kind in _GETTERS[channel]]
    return pa.Table.from_arrays(arrays, schema=SCHEMAS[channel])


def value(name: str, kind: Any, i: int, varied: bool) -> Any:
    if name == "side":
        return (1, -1)[i % 2]
    if kind is bool:
        return i % 3 == 0
    if kind is int:
        return (i, -i, 2**62 + i, 0)[i % 4] if varied else 1_700_000_000_000_000_000 + i
    if kind is float:
        return (0.1 * i, -1e300, float("inf"), 0.0, 3)[i % 5] if varied else 100.0 + i
    return NAMES[i % len(NAMES)] if varied else "BTC-USDT"


def records_of(channel: Channel, n: int, varied: bool) -> list[Record]:
    kind = RECORD_TYPES[channel]
    fields = msgspec.structs.fields(kind)
    return [kind(**{f.name: value(f.name, f.type, i, varied) for f in fields}) for i in range(n)]


@pytest.mark.parametrize("varied", [False, True], ids=["one-name", "varied"])
@pytest.mark.parametrize("channel", list(RECORD_TYPES), ids=lambda c: c.value)
def test_to_arrow_equals_pyarrows_own_conversion(channel: Channel, varied: bool) -> None:
    records = records_of(channel, 257, varied)
    table, expected = to_arrow(channel, records), reference(channel, records)
    table.validate(full=True)
    assert table.schema == expected.schema
    for name in table.column_names:
        got, want = table.column(name), expected.column(name)
        if pa.types.is_dictionary(got.type):  # same values; the dictionary in first-seen order
            assert got.chunk(0).dictionary.to_pylist() == want.chunk(0).dictionary.to_pylist()
        assert got.to_pylist() == want.to_pylist(), name  # (the values hold no NaN)


def test_no_records_give_the_channels_empty_table() -> None:
    assert to_arrow(Channel.TRADES, []) == SCHEMAS[Channel.TRADES].empty_table()


def trade(**changes: Any) -> Trade:
    base = records_of(Channel.TRADES, 1, varied=False)[0]
    assert isinstance(base, Trade)
    return msgspec.structs.replace(base, **changes)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"trade_id": 2**64}, OverflowError),  # beyond int64
        ({"price": "x"}, TypeError),  # not a number
        ({"symbol": 5, "exchange": 6}, TypeError),  # a name that is not a str (dictionary)
        ({"side": 300}, OverflowError),  # beyond int8
        ({"trade_id": 7.5}, TypeError),  # a float in an int column is not truncated
        ({"ts": 1.0}, TypeError),
        ({"size": "1.5"}, TypeError),  # nor a str parsed into a float column
        ({"trade_id": 7.0}, TypeError),  # even an int-valued float: the type says int
        ({"price": None}, TypeError),  # no nulls: the columns are not nullable
    ],
)
def test_a_value_the_column_cannot_hold_raises_as_a_conversion_does(
    changes: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        to_arrow(Channel.TRADES, [trade(), trade(**changes)])


@pytest.mark.parametrize("flag", [None, 2, "false", 1.5])
def test_a_bool_column_takes_bools_only(flag: Any) -> None:
    """numpy would store 2, "false" and 1.5 as True and None as False."""
    book = records_of(Channel.BOOK, 2, varied=False)
    bad = msgspec.structs.replace(book[1], snapshot=flag)
    with pytest.raises(TypeError, match="expected bool"):
        to_arrow(Channel.BOOK, [book[0], bad])


def test_numpy_view_reads_chunks_and_slices_as_to_numpy_does() -> None:
    one = pa.array(range(10), pa.int64())
    chunked = pa.chunked_array([one.slice(3, 4), pa.array([], pa.int64()), one.slice(0, 2)])
    assert numpy_view(one.slice(3, 4), "int64").tolist() == [3, 4, 5, 6]
    assert numpy_view(chunked, "int64").tolist() == [3, 4, 5, 6, 0, 1]
    stamps = pa.array([5, 7], pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    assert numpy_view(stamps, "int64").tolist() == [5, 7]
    assert numpy_view(pa.chunked_array([], pa.int32()), "int32").tolist() == []
