"""What a venue cannot mean: the plausibility rules every venue applies before storing a record.

A number that decodes may still be impossible, and stored it poisons what is built on it (a
trade at price 0, a crossed quote, a ``date=1970-01-01`` partition). The rules (also in
``docs/validity.md``):

* prices: finite, ``> 0`` and ``<= MAX_VALUE``;
* trade and fill sizes: finite, ``> 0`` and ``<= MAX_VALUE``;
* BBO: each side is ``price > 0`` and ``size > 0``, or empty (price and size both 0); with both
  sides present ``bid <= ask`` (touching may happen, crossed cannot);
* book levels: price ``> 0``; size ``>= 0`` (0 deletes the level);
* candles: open, high, low, close ``> 0`` with ``low <= open, close <= high``; volumes ``>= 0``;
* tickers: prices and volumes ``>= 0`` (0: no trade in the window), signed changes finite;
* every value ``<= MAX_VALUE`` in magnitude: no real price, size or volume comes near it, and
  the product of two such values stays finite;
* the exchange time of a record within ``MAX_CLOCK_SKEW_NS`` of its receive time.

A violation raises :class:`~hundi.exchanges.base.RejectedFrame` with reason ``invalid_value``
and a detail that starts with the field's name (``price: 0.0``): the frame is counted as
rejected and quarantined, nothing of it is stored. The checks are plain float comparisons
(``nan`` fails every one of them), with nothing allocated unless a value is refused.
"""

from __future__ import annotations

import datetime
from typing import Final

from hundi.exchanges.base import RejectedFrame

INVALID_VALUE: Final = "invalid_value"
#: No price, size or volume of any market reaches it (the largest token supplies are ~1e15
#: units), and a product of two values below it (a notional) is still finite.
MAX_VALUE: Final = 1e18
#: Farthest an exchange time may be from the receive time: clocks and queues are off by
#: milliseconds to seconds; a day off is a wrong unit or a corrupt field, not latency.
MAX_CLOCK_SKEW_NS: Final = 86_400 * 1_000_000_000


def invalid(field: str, value: object) -> RejectedFrame:
    return RejectedFrame(INVALID_VALUE, f"{field}: {value!r}")


def check_time(field: str, ts: int, recv_ns: int) -> None:
    """``ts`` (exchange time, ns) is within ``MAX_CLOCK_SKEW_NS`` of ``recv_ns``."""
    if not -MAX_CLOCK_SKEW_NS <= ts - recv_ns <= MAX_CLOCK_SKEW_NS:
        raise RejectedFrame(
            INVALID_VALUE,
            f"{field}: {_iso(ts)} is {(ts - recv_ns) / 3.6e12:+.1f} h from the receive time "
            f"{_iso(recv_ns)} (bound: {MAX_CLOCK_SKEW_NS / 3.6e12:g} h)",
        )


def check_positive(field: str, value: float) -> None:
    """A price or a trade size: ``0 < value <= MAX_VALUE``."""
    if not 0.0 < value <= MAX_VALUE:
        raise invalid(field, value)


def check_amount(field: str, value: float) -> None:
    """A volume, or a price that may be 0 for "none": ``0 <= value <= MAX_VALUE``."""
    if not 0.0 <= value <= MAX_VALUE:
        raise invalid(field, value)


def check_signed(field: str, value: float) -> None:
    """A change: ``-MAX_VALUE <= value <= MAX_VALUE``."""
    if not -MAX_VALUE <= value <= MAX_VALUE:
        raise invalid(field, value)


def check_trade(price: float, size: float, ts: int, recv_ns: int) -> None:
    """A trade or a fill."""
    if not 0.0 < price <= MAX_VALUE:
        raise invalid("price", price)
    if not 0.0 < size <= MAX_VALUE:
        raise invalid("size", size)
    if not -MAX_CLOCK_SKEW_NS <= ts - recv_ns <= MAX_CLOCK_SKEW_NS:
        check_time("trade time", ts, recv_ns)


def check_bbo(
    bid: float, bid_size: float, ask: float, ask_size: float, ts: int, recv_ns: int
) -> None:
    """Best bid and offer: both sides plausible (or empty), not crossed."""
    if not (0.0 < bid <= MAX_VALUE and 0.0 < bid_size <= MAX_VALUE):
        _check_empty_side("bid", bid, bid_size)
    if not (0.0 < ask <= MAX_VALUE and 0.0 < ask_size <= MAX_VALUE):
        _check_empty_side("ask", ask, ask_size)
    if bid > ask and ask > 0.0:
        raise RejectedFrame(INVALID_VALUE, f"crossed: bid {bid!r} > ask {ask!r}")
    if not -MAX_CLOCK_SKEW_NS <= ts - recv_ns <= MAX_CLOCK_SKEW_NS:
        check_time("event time", ts, recv_ns)


def _check_empty_side(side: str, price: float, size: float) -> None:
    if price == 0.0 and size == 0.0:
        return  # nothing on this side of the book
    if not 0.0 < price <= MAX_VALUE:
        raise invalid(f"{side} price", price)
    raise invalid(f"{side} size", size)


def check_levels(side: str, levels: list[tuple[float, float]]) -> None:
    """Book levels ``(price, size)``: price ``> 0``, size ``>= 0`` (0 deletes the level)."""
    for price, size in levels:
        if not (0.0 < price <= MAX_VALUE and 0.0 <= size <= MAX_VALUE):
            if not 0.0 < price <= MAX_VALUE:
                raise invalid(f"{side} level price", price)
            raise invalid(f"{side} level size", size)


def check_candle(
    open_: float,
    high: float,
    low: float,
    close: float,
    volume: float,
    quote_volume: float,
    taker_buy_volume: float,
    ts: int,
    recv_ns: int,
) -> None:
    """OHLC positive and consistent (``low <= open, close <= high``), volumes ``>= 0``."""
    check_positive("open", open_)
    check_positive("high", high)
    check_positive("low", low)
    check_positive("close", close)
    if high < low or high < open_ or high < close:
        raise RejectedFrame(
            INVALID_VALUE, f"high: {high!r} below low {low!r}, open {open_!r} or close {close!r}"
        )
    if low > open_ or low > close:
        raise RejectedFrame(INVALID_VALUE, f"low: {low!r} above open {open_!r} or close {close!r}")
    check_amount("volume", volume)
    check_amount("quote volume", quote_volume)
    check_amount("taker buy volume", taker_buy_volume)
    check_time("event time", ts, recv_ns)


def check_ticker(
    last: float,
    last_size: float,
    open_: float,
    high: float,
    low: float,
    vwap: float,
    volume: float,
    quote_volume: float,
    price_change: float,
    price_change_pct: float,
    ts: int,
    recv_ns: int,
) -> None:
    """Rolling-window statistics: ``>= 0`` (0 when nothing traded in the window), changes
    finite."""
    check_amount("last price", last)
    check_amount("last size", last_size)
    check_amount("open", open_)
    check_amount("high", high)
    check_amount("low", low)
    check_amount("vwap", vwap)
    check_amount("volume", volume)
    check_amount("quote volume", quote_volume)
    check_signed("price change", price_change)
    check_signed("price change pct", price_change_pct)
    check_time("event time", ts, recv_ns)


def _iso(ns: int) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
