"""The simulator's trade history as Kraken's REST ``GET /0/public/Trades`` serves it.

Every trade the market makes is kept (up to :data:`MAX_HISTORY` a pair, oldest dropped first),
with the same ``trade_id`` and time as on the WebSocket. A page holds the trades strictly after
``since`` (nanoseconds; seconds are accepted too, as Kraken does), oldest first, at most
``count`` (1..1000, default 1000): ``{"error": [], "result": {"<pair>": [[price, volume, time,
side, ordertype, misc, trade_id], ...], "last": "<ns of the last trade returned>"}}``. Prices
are decimal strings at the pair's precision, volumes at 8 decimals, the time epoch seconds
with microseconds (a JSON number), side ``b``/``s``, order type ``l``. The result key is the
pair without its ``/`` (Kraken's key is its own internal name, which clients must not rely on).
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any, Final

import msgspec

from hundi.simulator.market import fixed

PAGE: Final = 1000
MAX_HISTORY: Final = 500_000
VOLUME_DECIMALS: Final = 8
NS: Final = 1_000_000_000


class TradeHistory:
    """One pair's trades: their times (ns, non-decreasing) and REST rows, in id order."""

    __slots__ = ("rows", "times")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.rows: list[list[Any]] = []

    def add(
        self, trade_id: int, ns: int, price: int, qty: int, price_decimals: int, qty_decimals: int,
        buy: bool,
    ) -> None:  # fmt: skip
        seconds, fraction = divmod(ns, NS)
        time_text = f"{seconds}.{fraction // 1000:06d}".encode()  # the WebSocket's microseconds
        self.times.append(ns - ns % 1000)
        self.rows.append([
            fixed(price, price_decimals), fixed(qty, qty_decimals, VOLUME_DECIMALS),
            msgspec.Raw(time_text), "b" if buy else "s", "l", "", trade_id,
        ])  # fmt: skip
        if len(self.times) > MAX_HISTORY:
            del self.times[: MAX_HISTORY // 2], self.rows[: MAX_HISTORY // 2]

    def page(self, since_ns: int, count: int) -> tuple[list[list[Any]], int]:
        """The trades after ``since_ns``, at most ``count``, and the ``last`` cursor."""
        start = bisect_right(self.times, since_ns)
        end = min(len(self.times), start + count)
        last = self.times[end - 1] if end > start else since_ns
        return self.rows[start:end], last


def trades_answer(histories: dict[str, TradeHistory], query: dict[str, str]) -> dict[str, Any]:
    """The JSON answer to a ``Trades`` query (an ``error`` array for a bad one, as Kraken)."""
    pair = query.get("pair", "")
    history = histories.get(pair)
    if history is None:
        return {"error": ["EQuery:Unknown asset pair"]}
    try:
        since = int(query.get("since", "0"))
        count = int(query.get("count", str(PAGE)))
    except ValueError:
        return {"error": ["EGeneral:Invalid arguments"]}
    if not 1 <= count <= PAGE or since < 0:
        return {"error": ["EGeneral:Invalid arguments"]}
    if since < 10**12:  # seconds
        since *= NS
    rows, last = history.page(since, count)
    return {"error": [], "result": {pair.replace("/", ""): rows, "last": str(last)}}
