"""The C fast path of Binance's most common frames (``_fastpath.c``), configured once.

``receive(data, recv_ns, routes, sink)`` turns an ``aggTrade`` or ``bookTicker`` frame of the
exact compact shape Binance sends into its record, or returns None without touching anything:
the frame then takes :meth:`MarketData.receive`'s Python path, which decides every case the C
code declines (holes, bad values, other streams, odd JSON). Without the built extension (a
checkout over an editable install, an exported tree) ``receive`` is None and every frame takes
the Python path, with one warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from hundi.exchanges.base import FrameStatus, RecordSink
from hundi.exchanges.binance.routes import AggTradeRoute, BookTickerRoute, Route
from hundi.exchanges.validity import MAX_CLOCK_SKEW_NS, MAX_VALUE
from hundi.records import BUY, SELL, Bbo, Trade

FastReceive = Callable[[bytes, int, dict[str, Route], RecordSink], "FrameStatus | None"]


def _load() -> FastReceive | None:
    try:
        from hundi.exchanges.binance import _fastpath

        _fastpath.configure(
            AggTradeRoute, BookTickerRoute, Trade, Bbo, BUY, SELL, FrameStatus.PROCESSED,
            MAX_VALUE, MAX_CLOCK_SKEW_NS,
        )  # fmt: skip
    except (ImportError, TypeError) as exc:  # not built, or built from another version
        logging.getLogger("hundi.exchanges.binance").warning(
            "the C fast path is not built (%s): every Binance frame takes the Python path", exc
        )
        return None
    return _fastpath.receive


receive: Final = _load()
