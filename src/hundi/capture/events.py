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


class CaptureEvent(msgspec.Struct, frozen=True, gc=False, array_like=True):
    kind: CaptureKind
    ts: int  # local receive (or send) time, ns UTC
    conn: str  # connection key (a StreamSpec.key, or the recording file's connection)
    url: str = ""
    data: bytes = b""
    status: int = 0  # REST status code
