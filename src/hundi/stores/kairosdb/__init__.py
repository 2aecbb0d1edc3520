"""The KairosDB store (URL schemes ``kairosdb+http`` and ``kairosdb+https``): market data as
time series for dashboards and server-side aggregation; the lossless copy lives elsewhere."""

from hundi.stores.kairosdb.reader import Aggregation
from hundi.stores.kairosdb.store import KairosHttpsStore, KairosStore

__all__ = ["Aggregation", "KairosHttpsStore", "KairosStore"]
