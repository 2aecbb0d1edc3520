"""Wunder's ``hundi``: lossless high-frequency crypto market data, from exchange to DataFrame."""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    import pandas as pd

    from hundi.stores.base import Store


def read(
    store: str | os.PathLike[str] | Store,
    *,
    exchange: str,
    symbol: str | None = None,
    channel: str = "trades",
    start: str | datetime | None = None,
    end: str | datetime | None = None,
) -> pd.DataFrame:
    """Read stored records as a pandas DataFrame indexed by exchange time (UTC).

    ``store`` is a store URL or path (``./data``, ``file:./data``...) or an open :class:`Store`.
    ``start``/``end`` accept ISO strings or datetimes; naive values are UTC.
    """
    from hundi.query import read as _read

    return _read(store, exchange=exchange, symbol=symbol, channel=channel, start=start, end=end)


__all__ = ["__version__", "read"]
