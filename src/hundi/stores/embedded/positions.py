"""Where a stored stream of the embedded store ends: its last day's live files, two columns.

Reads only the ``ts`` column (and the sequence id column when asked) of the newest day that has
files, so the cost at a collector's start is one day's worth of two columns per stream, not a
scan of the store. A file removed by a concurrent compaction makes it list again.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from hundi.stores.base import StreamPosition
from hundi.stores.embedded.layout import day_of_ns, list_parts, split_live

_RETRIES = 5


def _day(name: str) -> date | None:
    try:
        return date.fromisoformat(name.removeprefix("date="))
    except ValueError:
        return None  # not a partition folder


def last_position(
    root: Path, exchange: str, channel: str, symbol: str, id_field: str | None, before_ns: int
) -> StreamPosition | None:
    """The last ``ts`` (and highest ``id_field``) among the stream's rows with ``ts <
    before_ns``, from the newest day that has such rows."""
    symbol_dir = root / f"exchange={exchange}" / f"channel={channel}" / f"symbol={symbol}"
    try:
        days = sorted((p for p in symbol_dir.iterdir() if p.name.startswith("date=")), reverse=True)
    except (FileNotFoundError, NotADirectoryError):
        return None
    columns = ["ts"] if id_field is None else ["ts", id_field]
    last_day = day_of_ns(before_ns)
    for day_dir in days:
        day = _day(day_dir.name)
        if day is None or day > last_day:
            continue
        for attempt in range(_RETRIES):
            live, _ = split_live(list_parts(day_dir))
            try:
                tables = [pq.read_table(part.path, columns=columns) for part in live]
            except FileNotFoundError:
                if attempt == _RETRIES - 1:
                    raise
                continue  # compacted meanwhile: list again
            break
        rows = [t.filter(pc.less(t.column("ts").cast("int64"), before_ns)) for t in tables]
        rows = [t for t in rows if t.num_rows]
        if not rows:
            continue
        last_ts = max(int(pc.max(t.column("ts").cast("int64")).as_py()) for t in rows)
        last_id = -1
        if id_field is not None:
            last_id = max(int(pc.max(t.column(id_field)).as_py()) for t in rows)
        return StreamPosition(ts=last_ts, last_id=last_id)
    return None
