"""Where research functions get their rows: the embedded store's files directly, columns only.

``Store.read`` loads every column of a whole range into pandas. Research functions need a few
columns of a lot of rows (bars: ts/price/size of millions of trades), so for the embedded store
they read the live Parquet files of the partitions they need with pyarrow, pruned by file and
row-group statistics. Other stores fall back to ``Store.read``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from hundi.query import QueryError, parse_time
from hundi.records import SCHEMAS, Channel
from hundi.stores.base import Store, StoreError
from hundi.stores.embedded import EmbeddedStore
from hundi.stores.embedded.layout import list_parts, partition_dir, split_live

StoreLike = str | os.PathLike[str] | Store
TimeLike = str | datetime | pd.Timestamp | int | None
_RETRIES = 5


class ResearchError(QueryError):
    """A research call that cannot be answered as asked; the message says why."""


def to_ns(value: TimeLike, name: str) -> int | None:
    """ISO string, datetime, pandas Timestamp or int ns → int ns UTC (naive means UTC)."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, pd.Timestamp):
        stamp = value
    else:
        parsed = parse_time(value, name)
        assert parsed is not None
        stamp = pd.Timestamp(parsed)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value)


def ns_to_timestamp(ns: int) -> pd.Timestamp:
    return pd.Timestamp(ns, unit="ns", tz="UTC")


def day_of(ns: int) -> date:
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).date()


def day_start_ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000_000


def _subdirs(directory: Path, prefix: str) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith(prefix))
    except (FileNotFoundError, NotADirectoryError):
        return []


def embedded_root(store: Store) -> Path | None:
    return store.root if isinstance(store, EmbeddedStore) else None


def exchanges(root: Path) -> list[str]:
    return [p.name.removeprefix("exchange=") for p in _subdirs(root, "exchange=")]


def channels(root: Path, exchange: str) -> list[str]:
    base = root / f"exchange={exchange}"
    return [p.name.removeprefix("channel=") for p in _subdirs(base, "channel=")]


def symbols(root: Path, exchange: str, channel: str) -> list[str]:
    base = root / f"exchange={exchange}" / f"channel={channel}"
    return [p.name.removeprefix("symbol=") for p in _subdirs(base, "symbol=")]


def days(root: Path, exchange: str, channel: str, symbol: str) -> list[date]:
    base = root / f"exchange={exchange}" / f"channel={channel}" / f"symbol={symbol}"
    found = []
    for directory in _subdirs(base, "date="):
        try:
            found.append(date.fromisoformat(directory.name.removeprefix("date=")))
        except ValueError:
            continue
    return found


def live_files(root: Path, exchange: str, channel: str, symbol: str, day: date) -> list[Path]:
    """The partition's files a reader must read (superseded compaction inputs excluded)."""
    live, _ = split_live(list_parts(partition_dir(root, exchange, channel, symbol, day)))
    return [p.path for p in live]


def read_files(
    channel: Channel,
    files: Sequence[Path],
    columns: Sequence[str] | None,
    start_ns: int | None,
    end_ns: int | None,
    *,
    end_inclusive: bool = False,
) -> pa.Table:
    """Rows of ``files`` with ``start <= ts < end`` (``<= end`` if inclusive), unsorted.

    Dictionary columns come back as plain strings; a file deleted by compaction between
    listing and reading is the caller's cue to list again (FileNotFoundError propagates).
    """
    schema = SCHEMAS[channel]
    wanted = list(columns) if columns is not None else schema.names
    if not files:
        return _plain(schema.empty_table().select(wanted))
    dataset = ds.dataset([os.fspath(f) for f in files], schema=schema, format="parquet")
    ts = ds.field("ts")
    ts_type = schema.field("ts").type
    condition: ds.Expression | None = None
    if start_ns is not None:
        condition = ts >= pa.scalar(start_ns, pa.int64()).cast(ts_type)
    if end_ns is not None:
        upper = pa.scalar(end_ns, pa.int64()).cast(ts_type)
        bound = ts <= upper if end_inclusive else ts < upper
        condition = bound if condition is None else condition & bound
    table = dataset.to_table(columns=wanted, filter=condition)
    return _plain(table)


def _plain(table: pa.Table) -> pa.Table:
    columns = [
        col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col for col in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


def read_partition_days(
    root: Path,
    exchange: str,
    channel: Channel,
    symbol: str,
    day_list: Sequence[date],
    columns: Sequence[str] | None,
    start_ns: int | None,
    end_ns: int | None,
    *,
    end_inclusive: bool = False,
) -> pa.Table:
    """One symbol's rows over some days, retried when compaction removes a file mid-read."""
    for _ in range(_RETRIES):
        files = [f for d in day_list for f in live_files(root, exchange, channel.value, symbol, d)]
        try:
            return read_files(
                channel, files, columns, start_ns, end_ns, end_inclusive=end_inclusive
            )
        except FileNotFoundError:
            continue
    raise StoreError(f"store {str(root)!r} changed too fast to read consistently")


def sort_by_time(table: pa.Table) -> pa.Table:
    """Stable (ts, recv_ts) order, the order ``Store.read`` returns (no copy if already so)."""
    if table.num_rows > 1 and "recv_ts" in table.column_names:
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        recv = table.column("recv_ts").cast(pa.int64()).to_numpy()
        step = np.diff(ts)
        if (step >= 0).all() and (np.diff(recv)[step == 0] >= 0).all():
            return table
    keys = [("ts", "ascending")]
    if "recv_ts" in table.column_names:
        keys.append(("recv_ts", "ascending"))
    return table.take(pc.sort_indices(table, sort_keys=keys))


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def index_ns(frame: pd.DataFrame) -> npt.NDArray[np.int64]:
    """A frame's UTC DatetimeIndex as int ns."""
    return np.asarray(pd.DatetimeIndex(frame.index).asi8, np.int64)


def native_symbol(store: Store, exchange: str, channel: Channel, symbol: str) -> str:
    """How the exchange spells ``symbol`` (read from one stored row); ``symbol`` if none."""
    root = embedded_root(store)
    if root is None:
        frame = store.read(exchange=exchange, symbol=symbol, channel=channel)
        return str(frame["native_symbol"].iloc[0]) if len(frame) else symbol
    for day in days(root, exchange, channel.value, symbol):
        for path in live_files(root, exchange, channel.value, symbol, day):
            with contextlib.suppress(FileNotFoundError, IndexError):
                column = pq.ParquetFile(path).read_row_group(0, columns=["native_symbol"])
                return str(column.column(0)[0])
    return symbol
