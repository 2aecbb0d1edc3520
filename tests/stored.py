"""Reading every channel of a store in tests, where a channel it does not hold counts as empty.

``hundi.read`` refuses a channel the store does not hold (an error listing what it holds);
tests that compare every channel of two stores, or a summary's counts, want zero rows for it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import hundi
from hundi.query import NotStored


def read_channel(store: Path | str, exchange: str, channel: str) -> pd.DataFrame:
    try:
        return hundi.read(store, exchange=exchange, channel=channel)
    except NotStored:
        return pd.DataFrame()


def anything_stored(store: Path) -> bool:
    """True once an embedded store holds a row: a Parquet part, or an entry in the log that
    flushes write first (parts come later, at a size or age threshold)."""
    if any(store.rglob("*.parquet")):
        return True
    try:
        return any(p.stat().st_size for p in (store / ".wal").glob("*.wal"))
    except FileNotFoundError:
        return False
