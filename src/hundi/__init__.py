"""Wunder's ``hundi``: lossless high-frequency crypto market data, from exchange to DataFrame."""

from __future__ import annotations

import os
from collections.abc import Sequence
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
    aggregate: str | Sequence[str] | None = None,
    sampling: str | None = None,
    align: str | None = None,
    group_by: str | Sequence[str] | None = None,
    fields: str | Sequence[str] | None = None,
    interval: str | None = None,
) -> pd.DataFrame:
    """Read stored records as a pandas DataFrame indexed by exchange time (UTC).

    ``store`` is a store URL or path (``./data``, ``file:./data``...) or an open :class:`Store`.
    ``symbol`` may be the exchange's own name (``BTCUSDT``); an exchange, channel or symbol the
    store does not hold raises :class:`hundi.query.NotStored`, listing what it holds.
    ``start``/``end`` accept ISO strings or datetimes; naive values are UTC. ``interval`` keeps
    one series of a series channel (``"1m"``, ``"ticks:100"``). ``fields`` keeps only those
    columns; ``aggregate``/``sampling``/``align``/``group_by`` aggregate on stores
    that can (KairosDB), e.g. ``aggregate=["avg", "max"], sampling="1s"``.
    """
    from hundi.query import read as _read

    return _read(
        store, exchange=exchange, symbol=symbol, channel=channel, start=start, end=end,
        aggregate=aggregate, sampling=sampling, align=align, group_by=group_by, fields=fields,
        interval=interval,
    )  # fmt: skip


def __getattr__(name: str) -> object:
    """The research API (``hundi.bars``, ``hundi.book_at``, ``hundi.book_l3_at``,
    ``hundi.trades_with_book``, ``hundi.coverage``, ``hundi.iter_read``), imported on first
    use: the collector never pays for it."""
    if name in _RESEARCH:
        import hundi.research

        return getattr(hundi.research, name)
    raise AttributeError(f"module 'hundi' has no attribute {name!r}")


_RESEARCH = frozenset(
    {"bars", "book_at", "book_l3_at", "trades_with_book", "coverage", "iter_read", "iter_batches"}
)

__all__ = [
    "__version__",
    "bars",
    "book_at",
    "book_l3_at",
    "coverage",
    "iter_batches",
    "iter_read",
    "read",
    "trades_with_book",
]
