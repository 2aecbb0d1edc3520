"""Coinbase's ISO-8601 times (``2021-04-17T16:43:37.075687Z``) → ns since the epoch, fast.

Every match, ticker and book update carries one; ``datetime.fromisoformat`` per frame would
dominate the hot path, so the whole-second part is converted once per distinct second (frames
arrive in time order, so the last one is nearly always the one wanted) and the fraction is read
as digits (up to nanoseconds, as Coinbase sends 6 or 9).
"""

from __future__ import annotations

import calendar

from hundi.exchanges.base import RejectedFrame

# (the whole-second text, its epoch seconds): one tuple, so a reader never pairs one call's
# key with another's seconds
_last: tuple[str, int] = ("", 0)


def parse_time(text: str) -> int:
    """ns since the epoch; :class:`RejectedFrame` ``invalid_field`` for anything else."""
    global _last
    key = text[:19]
    last = _last
    if key == last[0]:
        seconds = last[1]
    else:
        seconds = _seconds(text, key)
        _last = (key, seconds)
    rest = text[19:]
    if rest == "Z":
        return seconds * 1_000_000_000
    if len(rest) < 3 or rest[0] != "." or rest[-1] != "Z":
        raise RejectedFrame("invalid_field", f"time {text!r}")
    digits = rest[1:-1]
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 9:
        raise RejectedFrame("invalid_field", f"time {text!r}")
    return seconds * 1_000_000_000 + int(digits.ljust(9, "0"))


def _seconds(text: str, key: str) -> int:
    if (
        len(key) != 19
        or key[4] != "-"
        or key[7] != "-"
        or key[10] != "T"
        or key[13] != ":"
        or key[16] != ":"
    ):
        raise RejectedFrame("invalid_field", f"time {text!r}")
    parts = (key[0:4], key[5:7], key[8:10], key[11:13], key[14:16], key[17:19])
    if not all(p.isascii() and p.isdigit() for p in parts):  # isdigit alone takes "²"
        raise RejectedFrame("invalid_field", f"time {text!r}")
    year, month, day, hour, minute, second = (int(p) for p in parts)
    if not (1 <= month <= 12 and hour < 24 and minute < 60 and second < 61):
        raise RejectedFrame("invalid_field", f"time {text!r}")
    if not 1 <= day <= calendar.monthrange(year, month)[1]:  # timegm rolls Feb 31 over
        raise RejectedFrame("invalid_field", f"time {text!r}")
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
