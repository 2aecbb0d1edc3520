"""Record rows → CQL wire values, without the driver's per-row ``bind``.

``PreparedStatement.bind`` checks and serializes every value through generic type objects: about
8 µs per trade row, which was most of the writer's CPU (and GIL time the collector needs). Our
tables use a handful of fixed CQL types whose wire form (native protocol spec, section 6) is a
big-endian number or UTF-8 text, so one precompiled packer per column does a row in about 1 µs.
The values go to Cassandra through :attr:`cassandra.query.BoundStatement.values`, the documented
attribute the driver sends (the routing key for token-aware routing is read from it too).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any, Final

Packer = Callable[[Any], bytes]

_PACKERS: Final[dict[str, Packer]] = {
    "bigint": struct.Struct(">q").pack,
    "int": struct.Struct(">i").pack,
    "smallint": struct.Struct(">h").pack,
    "tinyint": struct.Struct(">b").pack,
    "double": struct.Struct(">d").pack,
    "float": struct.Struct(">f").pack,
    "boolean": struct.Struct("?").pack,  # one byte, 0 or 1
    "text": str.encode,  # UTF-8
    "blob": bytes,
}


class UnstorableRow(ValueError):
    """A value does not fit its column (e.g. an id beyond bigint): a bug upstream, not an outage."""


class RowEncoder:
    """Serializes rows (values in column order) of one table for its prepared INSERT."""

    __slots__ = ("names", "packers", "where")

    def __init__(self, where: str, columns: Sequence[tuple[str, str]]) -> None:
        self.where = where
        self.names = tuple(name for name, _ in columns)
        self.packers = tuple(_PACKERS[cql] for _, cql in columns)

    def encode(self, row: Sequence[Any]) -> list[bytes]:
        """The row's wire values; :class:`UnstorableRow` names the field that does not fit."""
        try:
            return [pack(value) for pack, value in zip(self.packers, row, strict=True)]
        except (struct.error, TypeError, AttributeError, ValueError):
            raise UnstorableRow(self._explain(row)) from None

    def _explain(self, row: Sequence[Any]) -> str:
        """Which field cannot be stored (only on the error path)."""
        for name, pack, value in zip(self.names, self.packers, row, strict=False):
            try:
                pack(value)
            except (struct.error, TypeError, AttributeError, ValueError) as exc:
                return f"{self.where}: field {name}={value!r} cannot be stored: {exc}"
        return f"{self.where}: row has {len(row)} values for {len(self.names)} columns"
