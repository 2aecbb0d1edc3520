"""Typed wire formats of the Coinbase Exchange ``full`` channel and its level-3 REST snapshot.

One msgspec Struct decodes every frame of the ``full`` connection (``received``, ``open``,
``match``, ``change``, ``done``, ``activate``, ``heartbeat``, ``subscriptions``, ``error``):
the fields a type does not carry keep their defaults, unknown fields are ignored (Coinbase
adds fields; new message types are to be ignored per its docs), and numbers stay the decimal
strings Coinbase sends until the protocol reads the few it needs. Formats, as documented
(docs.cdp.coinbase.com/exchange/websocket-feed/channels, "Full channel"; REST
``GET /products/{product_id}/book?level=3``):

* ``received``: ``order_id``, ``side``, ``order_type``; ``size`` and ``price`` for a limit
  order, ``funds`` (and maybe ``size``) for a market order;
* ``open``: the order rests: ``price``, ``remaining_size``;
* ``match``: ``maker_order_id`` (resting), ``taker_order_id``, ``trade_id``, ``price``,
  ``size``; ``side`` is the maker's;
* ``change``: ``new_size``/``old_size`` (self-trade prevention, or an order modified in place),
  ``price`` or ``new_price``/``old_price`` (a modified price), ``new_funds`` for market orders;
* ``done``: ``reason`` ``filled``/``canceled``, ``remaining_size`` and ``price`` (both absent
  for market orders); its price may differ from the open price (a modified order);
* ``subscriptions``: ``channels: [{"name": "full", "product_ids": [...]}]``, what the
  server actually subscribed;
* the snapshot: ``{"sequence": N, "bids": [[price, size, order_id], ...], "asks": [...],
  "time": ..., "auction_mode": false}``.
"""

from __future__ import annotations

import calendar
import math

import msgspec

from hundi.exchanges.base import RejectedFrame


class FullMessage(msgspec.Struct, frozen=True, gc=False):
    """Any frame of the ``full`` connection; which fields are set depends on ``type``."""

    type: str
    product_id: str = ""
    sequence: int = -1
    time: str = ""
    order_id: str = ""
    side: str = ""
    order_type: str = ""
    price: str | None = None
    size: str | None = None
    remaining_size: str | None = None
    funds: str | None = None
    reason: str = ""
    maker_order_id: str = ""
    taker_order_id: str = ""
    trade_id: int = -1
    new_size: str | None = None
    old_size: str | None = None
    new_price: str | None = None
    old_price: str | None = None
    new_funds: str | None = None
    message: str = ""  # ``error``: what went wrong
    channels: list[SubscribedChannel] = []  # ``subscriptions``: what the server subscribed


class SubscribedChannel(msgspec.Struct, frozen=True, gc=False):
    """One channel of a ``subscriptions`` acknowledgement and the products it covers."""

    name: str = ""
    product_ids: list[str] = []


class Level3Snapshot(msgspec.Struct, frozen=True, gc=False):
    """``GET /products/{id}/book?level=3``: every resting order, oldest first per price."""

    sequence: int
    bids: list[tuple[str, str, str]]
    asks: list[tuple[str, str, str]]
    time: str = ""
    auction_mode: bool = False  # an opening auction: the book may cross until it ends


FULL_DECODER = msgspec.json.Decoder(FullMessage)
SNAPSHOT_DECODER = msgspec.json.Decoder(Level3Snapshot)


def number(field: str, text: str | None) -> float:
    """A decimal string of the wire → a finite float; :class:`RejectedFrame` otherwise."""
    if text is None:
        raise RejectedFrame("invalid_field", f"{field} missing")
    try:
        value = float(text)
    except ValueError:
        raise RejectedFrame("invalid_field", f"{field} not a number: {text!r}") from None
    if not math.isfinite(value):
        raise RejectedFrame("invalid_field", f"{field} not a number: {text!r}")
    return value


def optional_number(field: str, text: str | None) -> float:
    """Like :func:`number`, 0.0 when the field is absent or null (market orders)."""
    return 0.0 if text is None else number(field, text)


class TimeParser:
    """Coinbase's ISO-8601 UTC times (``2026-12-03T06:10:33.123456Z``) → ns, fast.

    Frames come in time order, so the whole-second part is converted once per distinct second
    and the fraction read as digits (Coinbase sends 6; up to 9 are read).
    """

    __slots__ = ("_key", "_seconds")

    def __init__(self) -> None:
        self._key = ""
        self._seconds = 0

    def __call__(self, text: str) -> int:
        key = text[:19]
        if key != self._key:
            self._seconds = _seconds(text, key)
            self._key = key
        rest = text[19:]
        if rest == "Z":
            return self._seconds * 1_000_000_000
        digits = rest[1:-1]
        if rest[:1] != "." or rest[-1:] != "Z" or not digits.isdigit() or len(digits) > 9:
            raise RejectedFrame("invalid_field", f"time {text!r}")
        return self._seconds * 1_000_000_000 + int(digits.ljust(9, "0"))


def _seconds(text: str, key: str) -> int:
    if len(key) != 19 or key[4] != "-" or key[7] != "-" or key[10] != "T" or key[13] != ":":
        raise RejectedFrame("invalid_field", f"time {text!r}")
    parts = (key[0:4], key[5:7], key[8:10], key[11:13], key[14:16], key[17:19])
    if key[16] != ":" or not all(p.isdigit() for p in parts):
        raise RejectedFrame("invalid_field", f"time {text!r}")
    year, month, day, hour, minute, second = (int(p) for p in parts)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise RejectedFrame("invalid_field", f"time {text!r}")
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
