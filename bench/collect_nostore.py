"""``hundi collect`` with a store that keeps nothing: the collector's own cost, for the bench.

hundi has no store-less mode (a collector that stores nothing would be a bug in production), so
the comparison bench runs the real ``hundi collect`` command with one extra store scheme,
``null:``, that only this script knows: ``write`` and ``flush`` accept and drop the batches.
Everything else — sockets, protocol, accounting, sink, drain, writer thread and its bounded
queue, summary — is the collector's own code, unchanged.

Run: ``python bench/collect_nostore.py collect binance ... --store null: ...``
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import hundi.pipeline.cli as collect_cli
from hundi.cli import main
from hundi.records import Channel, Record
from hundi.stores.base import Store

if TYPE_CHECKING:  # pandas only when read: importing it would add to the collector's CPU
    import pandas as pd


class NullStore(Store):
    """Takes every batch and keeps none of it (bench only)."""

    scheme = "null"

    def write(self, batches: Mapping[Channel, Sequence[Record]]) -> None:
        """Dropped on purpose: the bench measures the collector without a store's cost."""

    def flush(self) -> None:
        """Nothing buffered, nothing to make durable."""

    def read(
        self,
        *,
        exchange: str,
        symbol: str | None,
        channel: Channel,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame()


_open_store = collect_cli.open_store


def _open_with_null(url: str, **options: Any) -> Store:
    return NullStore(url) if url.startswith("null:") else _open_store(url, **options)


def install() -> None:
    """Make ``--store null:`` open a :class:`NullStore` in this process's ``hundi collect``."""
    collect_cli.open_store = _open_with_null  # type: ignore[assignment]


if __name__ == "__main__":
    install()
    main()
