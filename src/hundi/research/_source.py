"""What the research functions share: argument parsing, time helpers and :class:`ResearchError`.

Rows come from the store contract (:class:`hundi.stores.base.Store`): ``read``, and for a
lot of rows ``read_days`` (a day of a few Arrow columns at a time, pruned by the store), with
``symbols``/``days`` to list what is stored. Nothing here knows a store's layout.

The embedded-store helpers at the end (``embedded_root``, ``days``, ``read_files``,
``read_partition_days``) delegate to :class:`hundi.stores.embedded.EmbeddedStore`; they remain
for :mod:`hundi.research.book` and :mod:`hundi.research.asof` until those read through the
contract too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from hundi.query import QueryError, parse_time
from hundi.records import Channel
from hundi.stores.base import (
    NS_PER_DAY,
    Store,
    day_of_ns,
    day_start_ns,
    days_between,
)
from hundi.stores.embedded import EmbeddedStore
from hundi.stores.embedded.store import scan_files

StoreLike = str | os.PathLike[str] | Store
TimeLike = str | datetime | pd.Timestamp | int | None

__all__ = [
    "ResearchError",
    "StoreLike",
    "TimeLike",
    "day_of",
    "day_start_ns",
    "days",
    "days_between",
    "embedded_root",
    "index_ns",
    "native_symbol",
    "ns_to_timestamp",
    "read_files",
    "read_partition_days",
    "to_ns",
]


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
    return day_of_ns(ns)


def index_ns(frame: pd.DataFrame) -> npt.NDArray[np.int64]:
    """A frame's UTC DatetimeIndex as int ns."""
    return np.asarray(pd.DatetimeIndex(frame.index).asi8, np.int64)


def native_symbol(store: Store, exchange: str, channel: Channel, symbol: str) -> str:
    """How the exchange spells ``symbol`` (from its first stored day); ``symbol`` if none."""
    for _, table in store.read_days(
        exchange=exchange, symbol=symbol, channel=channel, columns=["native_symbol"],
        ordered=False,
    ):  # fmt: skip
        return str(table.column("native_symbol")[0])
    return symbol


# --- embedded store only (book.py, asof.py) ---------------------------------------------------


def embedded_root(store: Store) -> Path | None:
    return store.root if isinstance(store, EmbeddedStore) else None


def _embedded(root: Path) -> EmbeddedStore:
    return EmbeddedStore(os.fspath(root), read_only=True)


def days(root: Path, exchange: str, channel: str, symbol: str) -> list[date]:
    """The stored days of one symbol's channel: :meth:`EmbeddedStore.days`."""
    return _embedded(root).days(exchange, Channel(channel), symbol)


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
    if end_inclusive and end_ns is not None:
        end_ns += 1
    return scan_files(channel, files, columns, start_ns, end_ns)


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
    """One symbol's rows over some days, unsorted: :meth:`EmbeddedStore.read_days` per day."""
    if end_inclusive and end_ns is not None:
        end_ns += 1
    store = _embedded(root)
    tables = []
    for day in sorted(set(day_list)):
        first = day_start_ns(day)
        lo = first if start_ns is None else max(start_ns, first)
        hi = first + NS_PER_DAY if end_ns is None else min(end_ns, first + NS_PER_DAY)
        tables += [
            table
            for _, table in store.read_days(
                exchange=exchange, symbol=symbol, channel=channel, start_ns=lo, end_ns=hi,
                columns=columns, ordered=False,
            )
        ]  # fmt: skip
    if not tables:
        return scan_files(channel, [], columns, None, None)
    return pa.concat_tables(tables)
