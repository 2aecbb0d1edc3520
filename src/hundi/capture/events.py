"""What a raw capture holds: the I/O a collector saw, in receive order.

Both our own capture files and the cryptofeed line format of ``../shared/recordings`` are read
into these events, so replay, the simulator's ``--replay`` and tests share one model.
"""

from __future__ import annotations

import enum
import re
from typing import Final

import msgspec


class CaptureKind(enum.StrEnum):
    OPEN = "open"  # a WebSocket connection opened (``url``)
    SENT = "sent"  # a message we sent (subscribe, pong...)
    RECV = "recv"  # a frame received from the exchange, verbatim
    REST = "rest"  # a REST response (``url``, ``status``, body in ``data``)
    CLOSE = "close"  # the connection closed (``data`` = reason)


# The ``status`` of a REST event that records no answer: the collector asked, then stopped
# before the answer came (the request was cancelled). A replay leaves that request unanswered,
# as it was live, instead of calling the capture incomplete. Real answers have an HTTP status
# (or 599 for a transport failure), never 0.
NO_ANSWER_AT_STOP = 0
NO_ANSWER_DETAIL = b"no answer: the collector stopped before it came"

# The marks a clean stop leaves in the capture (REST events on one of the venue's connection
# keys, never an answer, negative statuses), so a replay asks the venue for what the live REST
# loop asked, not for what fell due between the loop's last look and the stop (that made
# faithful captures incomplete):
# ``STOPPED_ASKING``: the stop took one last look at what was due (asked) and asks nothing new
# after it, only what is still owed (``finishing_requests``);
# ``FINISHED_OWED``: nothing was owed any more (``finishing_requests`` said None);
# ``ABANDONED_OWED``: the stop's time for what was owed ran out, and the venue recorded what
# stays missing (``abandon``).
# What a replay asks after STOPPED_ASKING and the capture does not answer, the live stop never
# got to ask (its looks are not the replay's): counted as stopped, not as missing.
STOPPED_ASKING = -1
STOPPED_ASKING_DETAIL = b"the collector is stopping: no new REST requests after this"
ABANDONED_OWED = -2
ABANDONED_OWED_DETAIL = b"the collector stopped fetching back what was still owed"
FINISHED_OWED = -3
FINISHED_OWED_DETAIL = b"the collector fetched back everything owed at the stop"


def is_answer(status: int) -> bool:
    """A REST event's ``status`` is an answer (HTTP, or 599 for a transport failure), not a
    mark of a stop (or of a request the stop came before)."""
    return status > NO_ANSWER_AT_STOP


# A capture of several venues (one ``hundi collect`` of a multi-feed config) names each event's
# connection ``EXCHANGE/MARKET|KEY``: venues share connection keys ("public" is Bybit's,
# Kraken's, Bitstamp's and both OKX markets'), and a replay of one venue must take its own
# events only. A one-venue capture keeps the bare key (as captures before this did).
VENUE_MARK: Final = "|"
_VENUE_ID: Final = re.compile(r"^[a-z0-9_-]+/[a-z0-9_-]+$")


def venue_id(exchange: str, market: str) -> str:
    return f"{exchange}/{market}"


def qualified(venue: str, conn: str) -> str:
    """``conn`` as a capture of several venues names it."""
    return f"{venue}{VENUE_MARK}{conn}"


def split_venue(conn: str) -> tuple[str | None, str]:
    """(venue id or None, connection key) of a captured ``conn``: a bare key (a one-venue
    capture, or a key that merely holds the mark) has no venue."""
    venue, mark, key = conn.partition(VENUE_MARK)
    if mark and _VENUE_ID.match(venue):
        return venue, key
    return None, conn


class CaptureEvent(msgspec.Struct, frozen=True, gc=False, array_like=True):
    kind: CaptureKind
    ts: int  # local receive (or send) time, ns UTC
    conn: str  # connection key (a StreamSpec.key, or the recording file's connection; see
    # VENUE_MARK for a capture of several venues)
    url: str = ""
    data: bytes = b""
    status: int = 0  # REST status code
