"""Types of the C extension ``hundi._columns`` (src/hundi/_columns.c)."""

from typing import Any

def extract(
    records: list[Any], record_type: type, fields: tuple[tuple[Any, int], ...]
) -> list[Any] | None: ...
def tally(
    records: list[Any], record_type: type, exchange_field: Any, symbol_field: Any
) -> tuple[str, list[str], list[int], list[Any]] | None: ...
