"""What the research functions share: argument parsing, time helpers and :class:`ResearchError`.

Rows come from the store contract (:class:`hundi.stores.base.Store`): ``read``, and for a
lot of rows ``read_days`` (a day of a few Arrow columns at a time, pruned by the store), with
``symbols``/``days`` to list what is stored, and for the book's checkpoints ``day_version``,
``read_day`` and ``read_day_since``. Nothing here knows a store's layout. Every research call
checks its exchange and symbol with :func:`hundi.query.resolve` (the same as ``hundi.read``
and the API): a native symbol is read as the stored one, a name the store does not hold raises
:class:`hundi.query.NotStored` listing what it holds.
"""

from __future__ import annotations

import os
from datetime import date, datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from hundi.query import NotStored, QueryError, parse_time, resolve, stored_native
from hundi.records import Channel
from hundi.stores.base import (
    Store,
    day_of_ns,
    day_start_ns,
    days_between,
    ns_of,
)

StoreLike = str | os.PathLike[str] | Store
TimeLike = str | datetime | pd.Timestamp | int | None

__all__ = [
    "NotStored",
    "ResearchError",
    "StoreLike",
    "TimeLike",
    "day_of",
    "day_start_ns",
    "days_between",
    "index_ns",
    "native_symbol",
    "ns_to_timestamp",
    "stored_symbol",
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
        stamp = value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
        return int(stamp.value)
    parsed = parse_time(value, name)
    assert parsed is not None
    return ns_of(parsed)  # beyond pandas' range (year 9999): the open bound, not an overflow


def time_window(start: TimeLike, end: TimeLike) -> tuple[int | None, int | None]:
    """``start`` and ``end`` in ns; ResearchError when end is before start."""
    first, last = to_ns(start, "start"), to_ns(end, "end")
    if first is not None and last is not None and last < first:
        raise ResearchError("end is before start")
    return first, last


def positive(value: int | None, name: str) -> None:
    """A count the caller gives (levels, rows): ResearchError unless a whole number >= 1."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ResearchError(f"{name} must be a whole number >= 1, not {value!r}")


def ns_to_timestamp(ns: int) -> pd.Timestamp:
    return pd.Timestamp(ns, unit="ns", tz="UTC")


def day_of(ns: int) -> date:
    return day_of_ns(ns)


def index_ns(frame: pd.DataFrame) -> npt.NDArray[np.int64]:
    """A frame's UTC DatetimeIndex as int ns."""
    return np.asarray(pd.DatetimeIndex(frame.index).asi8, np.int64)


def native_symbol(store: Store, exchange: str, channel: Channel, symbol: str) -> str:
    """How the exchange spells ``symbol`` (from its first stored day); ``symbol`` if none."""
    return stored_native(store, exchange, channel, symbol) or symbol


def stored_symbol(store: Store, exchange: str, symbol: str, channel: Channel) -> str:
    """``symbol`` as ``store`` holds it for ``channel`` (:func:`hundi.query.resolve`)."""
    found = resolve(store, exchange, symbol, channel)
    assert found is not None
    return found
