"""What a raw capture holds: the I/O a collector saw, in receive order.

Both our own capture files and the cryptofeed line format of ``../shared/recordings`` are read
into these events, so replay, the simulator's ``--replay`` and tests share one model.
"""

from __future__ import annotations

import enum

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


class CaptureEvent(msgspec.Struct, frozen=True, gc=False, array_like=True):
    kind: CaptureKind
    ts: int  # local receive (or send) time, ns UTC
    conn: str  # connection key (a StreamSpec.key, or the recording file's connection)
    url: str = ""
    data: bytes = b""
    status: int = 0  # REST status code
