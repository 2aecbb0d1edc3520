"""``to_arrow`` builds its columns from buffers (pyarrow's own conversion loads pandas): for every
channel it must give exactly what ``pa.array`` gives, and refuse what it refuses, whether the C
extraction (``hundi._columns``) or the Python path (``python_columns``) converts the batch."""

from __future__ import annotations

from typing import Any

import msgspec
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hundi import _columns
from hundi.records import (
    _EXTRACT,
    _GETTERS,
    RECORD_TYPES,
    SCHEMAS,
    Channel,
    Record,
    Trade,
    numpy_view,
    python_columns,
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


CONVERTERS = {"to_arrow": to_arrow, "python": python_columns}


def extracted_in_c(channel: Channel, records: list[Record]) -> bool:
    record_type, fields, _ = _EXTRACT[channel]
    return _columns.extract(records, record_type, fields) is not None


@pytest.mark.parametrize("path", list(CONVERTERS))
@pytest.mark.parametrize("varied", [False, True], ids=["one-name", "varied"])
@pytest.mark.parametrize("channel", list(RECORD_TYPES), ids=lambda c: c.value)
def test_to_arrow_equals_pyarrows_own_conversion(channel: Channel, varied: bool, path: str) -> None:
    records = records_of(channel, 257, varied)
    table, expected = CONVERTERS[path](channel, records), reference(channel, records)
    table.validate(full=True)
    assert table.schema == expected.schema
    for name in table.column_names:
        got, want = table.column(name), expected.column(name)
        if pa.types.is_dictionary(got.type):  # same values; the dictionary in first-seen order
            assert got.chunk(0).dictionary.to_pylist() == want.chunk(0).dictionary.to_pylist()
        assert got.to_pylist() == want.to_pylist(), name  # (the values hold no NaN)


@pytest.mark.parametrize("channel", list(RECORD_TYPES), ids=lambda c: c.value)
def test_records_as_venues_build_them_take_the_c_path(channel: Channel) -> None:
    """Exact types (what every venue builds) are extracted in C; a float column holding an int
    (``varied`` has a ``3``) or a tuple of records is left to Python, which converts it."""
    assert extracted_in_c(channel, records_of(channel, 300, varied=False))
    floats = any(f.type is float for f in msgspec.structs.fields(RECORD_TYPES[channel]))
    assert extracted_in_c(channel, records_of(channel, 300, varied=True)) is not floats


def test_a_record_of_another_type_leaves_the_batch_to_python() -> None:
    trades = records_of(Channel.TRADES, 3, varied=False)
    other = records_of(Channel.BBO, 1, varied=False)
    record_type, fields, _ = _EXTRACT[Channel.TRADES]
    assert _columns.extract([*trades, *other], record_type, fields) is None
    with pytest.raises(AttributeError):  # the Python path: a Bbo has no trade_id
        to_arrow(Channel.TRADES, [*trades, *other])


def test_extract_refuses_a_field_of_another_type() -> None:
    record_type, _, _ = _EXTRACT[Channel.TRADES]
    bbo_field = _EXTRACT[Channel.BBO][1][-1]
    with pytest.raises(TypeError, match="field"):
        _columns.extract(records_of(Channel.TRADES, 1, False), record_type, (bbo_field,))


def test_many_names_in_one_batch_take_the_c_path_and_keep_first_seen_order() -> None:
    """Past a handful of distinct names the C path hashes them (an instruments batch has one
    symbol per record): still first-seen order, equal names one code even when they are
    different str objects, as the Python path."""
    records = records_of(Channel.TRADES, 3000, varied=False)
    names = [f"SYM{i % 700}" for i in range(3000)]  # 700 distinct, fresh objects each time
    records = [
        msgspec.structs.replace(r, symbol="".join(["S", name[1:]]), native_symbol=name)
        for r, name in zip(records, names, strict=True)
    ]
    assert extracted_in_c(Channel.TRADES, records)
    table = to_arrow(Channel.TRADES, records)
    symbols = table.column("symbol").chunk(0)
    assert symbols.dictionary.to_pylist() == list(dict.fromkeys(names))
    assert symbols.to_pylist() == names
    assert table.equals(python_columns(Channel.TRADES, records))


class Name(str):
    """A str subclass: the C path leaves it to Python."""


ODD_VALUES = {
    int: st.one_of(
        st.integers(-(2**63), 2**63 - 1), st.integers(), st.booleans(), st.floats(), st.none()
    ),
    float: st.one_of(st.floats(), st.integers(-(2**70), 2**70), st.booleans(), st.text(max_size=3)),
    bool: st.one_of(st.booleans(), st.integers(-1, 2), st.none()),
    str: st.one_of(
        st.sampled_from(NAMES), st.text(max_size=4), st.integers(), st.builds(Name, st.text())
    ),
}


@st.composite
def batches(draw: st.DrawFn) -> tuple[Channel, list[Record]]:
    """A channel and records that are mostly plain, some with values of the wrong type or range."""
    channel = draw(st.sampled_from([Channel.TRADES, Channel.BOOK, Channel.BBO, Channel.EVENTS]))
    plain = records_of(channel, draw(st.integers(1, 6)), varied=draw(st.booleans()))
    fields = msgspec.structs.fields(RECORD_TYPES[channel])
    records = []
    for record in plain:
        if draw(st.booleans()):
            f = draw(st.sampled_from(fields))
            strategy = st.integers(-200, 200) if f.name == "side" else ODD_VALUES[f.type]
            record = msgspec.structs.replace(record, **{f.name: draw(strategy)})
        records.append(record)
    return channel, records


def outcome(convert: Any, channel: Channel, records: list[Record]) -> Any:
    try:
        rows = convert(channel, records).to_pylist()
    except (TypeError, ValueError, OverflowError, AttributeError) as exc:
        return type(exc)
    return [{k: "nan" if v != v else v for k, v in row.items()} for row in rows]  # NaN == NaN


@settings(max_examples=300, deadline=None)
@given(batches())
def test_c_and_python_paths_agree_on_any_values(batch: tuple[Channel, list[Record]]) -> None:
    """Whatever a batch holds, to_arrow gives the Python path's table, or its error."""
    channel, records = batch
    assert outcome(to_arrow, channel, records) == outcome(python_columns, channel, records)


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
