"""Derived market-data series: bars, book snapshots, flow and risk, cross-market basis.

Computed live by the collector (``hundi collect ... --series bars:1s,book:10@1s``; see
:mod:`hundi.series.engine`) and stored like any channel, and recomputable offline from stored
raw data with the functions below, which give equal results (:mod:`hundi.series.core`).
"""

from typing import TYPE_CHECKING, Any

from hundi.series.spec import SeriesPlan, SeriesSpecError, parse_series

if TYPE_CHECKING:
    from hundi.series.offline import (
        basis,
        book_levels,
        book_snapshots,
        flow,
        flow_imbalance,
        realized_volatility,
        tick_bars,
        time_bars,
        volume_bars,
    )

_OFFLINE = frozenset(
    {"basis", "book_levels", "book_snapshots", "flow", "flow_imbalance", "realized_volatility",
     "tick_bars", "time_bars", "volume_bars"}
)  # fmt: skip


def __getattr__(name: str) -> Any:
    """The offline functions on first use: they need pandas, which the collector (importing
    :mod:`hundi.series.engine`) does not load."""
    if name in _OFFLINE:
        from hundi.series import offline

        return getattr(offline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SeriesPlan",
    "SeriesSpecError",
    "basis",
    "book_levels",
    "book_snapshots",
    "flow",
    "flow_imbalance",
    "parse_series",
    "realized_volatility",
    "tick_bars",
    "time_bars",
    "volume_bars",
]
