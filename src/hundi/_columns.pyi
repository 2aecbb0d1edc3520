"""Types of the C extension ``hundi._columns`` (src/hundi/_columns.c)."""

from typing import Any

def extract(
    records: list[Any], record_type: type, fields: tuple[tuple[Any, int], ...]
) -> list[Any] | None: ...
