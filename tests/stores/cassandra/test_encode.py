"""Our row encoding produces exactly the bytes the driver's own serializers produce."""

from __future__ import annotations

import pytest
from cassandra import cqltypes

from hundi.stores.cassandra.encode import RowEncoder, UnstorableRow

DRIVER_TYPES = {
    "bigint": cqltypes.LongType,
    "int": cqltypes.Int32Type,
    "smallint": cqltypes.ShortType,
    "tinyint": cqltypes.ByteType,
    "double": cqltypes.DoubleType,
    "float": cqltypes.FloatType,
    "boolean": cqltypes.BooleanType,
    "text": cqltypes.UTF8Type,
    "blob": cqltypes.BytesType,
}
VALUES = {
    "bigint": [0, -1, 2**63 - 1, -(2**63), 1_714_521_600_000_000_123],
    "int": [0, -1, 2**31 - 1, -(2**31), 19_844],
    "smallint": [0, -1, 2**15 - 1, -(2**15)],
    "tinyint": [0, 1, -1, 127, -128],
    "double": [0.0, -0.0, 1e-300, 5e300, 0.1 + 0.2, float("inf"), 60_000.01],
    "float": [0.0, 1.5, -2.25],
    "boolean": [True, False],
    "text": ["", "BTC-USDT", "héllo ✓", "日本"],
    "blob": [b"", b"\x00\xff"],
}


@pytest.mark.parametrize("cql", sorted(DRIVER_TYPES))
def test_values_serialize_like_the_driver(cql: str) -> None:
    encoder = RowEncoder("ks.t", [("v", cql)])
    for value in VALUES[cql]:
        assert encoder.encode([value]) == [DRIVER_TYPES[cql].serialize(value, 5)], value


def test_a_value_out_of_range_names_table_and_field() -> None:
    encoder = RowEncoder("ks.trades", [("symbol", "text"), ("trade_id", "bigint")])
    with pytest.raises(UnstorableRow, match=r"ks\.trades: field trade_id=18446744073709551616"):
        encoder.encode(["BTC-USDT", 2**64])
