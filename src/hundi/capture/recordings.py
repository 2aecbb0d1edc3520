"""Reader for the cryptofeed line format used by ``../shared/recordings`` (see its README).

Lines: ``URL <-> TS`` (connection opened), ``URL <- TS: MSG`` (sent), ``TS: MSG`` (received),
``URL -> TS: BODY`` (REST response). TS is decimal seconds; it is converted to int ns exactly
(string arithmetic, no float rounding).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from hundi.capture.events import CaptureEvent, CaptureKind

_TS = r"(\d+(?:\.\d+)?)"
_OPEN = re.compile(rf"^(\S+) <-> {_TS}\s*$")
_SENT = re.compile(rf"^(\S+) <- {_TS}: ")
_REST = re.compile(rf"^(\S+) -> {_TS}: ")
_RECV = re.compile(rf"^{_TS}: ")


class RecordingFormatError(ValueError):
    """A line that is not in the recordings format."""


def seconds_to_ns(text: str) -> int:
    """``"1633998512.0633569"`` → ns, exactly."""
    whole, _, frac = text.partition(".")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def parse_line(line: str, conn: str) -> CaptureEvent | None:
    """One line → event; ``None`` for blank lines and the ``configuration:`` line."""
    line = line.rstrip("\r\n")
    if not line.strip() or line.startswith("configuration:"):
        return None
    if m := _RECV.match(line):
        return CaptureEvent(
            CaptureKind.RECV, seconds_to_ns(m[1]), conn, data=line[m.end() :].encode()
        )
    if m := _REST.match(line):
        return CaptureEvent(
            CaptureKind.REST,
            seconds_to_ns(m[2]),
            conn,
            url=m[1],
            data=line[m.end() :].encode(),
            status=200,
        )
    if m := _SENT.match(line):
        return CaptureEvent(
            CaptureKind.SENT, seconds_to_ns(m[2]), conn, url=m[1], data=line[m.end() :].encode()
        )
    if m := _OPEN.match(line):
        return CaptureEvent(CaptureKind.OPEN, seconds_to_ns(m[2]), conn, url=m[1])
    raise RecordingFormatError(f"not a recording line: {line[:80]!r}")


def connection_key(path: Path) -> str:
    """``NAME.ws.1.0`` → ``NAME.ws.1``; REST files share ``NAME.http``."""
    parts = path.name.split(".")
    if len(parts) >= 3 and parts[1] in ("ws", "http"):
        return ".".join(parts[:3]) if parts[1] == "ws" else f"{parts[0]}.http"
    return parts[0]


def is_recording(path: Path) -> bool:
    """True for files named like the recordings (``NAME.0``, ``NAME.ws.N.M``, ``NAME.http.N.M``)."""
    parts = path.name.split(".")
    return (len(parts) == 2 and parts[1].isdigit()) or (
        len(parts) == 4 and parts[1] in ("ws", "http") and parts[2].isdigit()
    )


def read_recording(path: Path) -> Iterator[CaptureEvent]:
    conn = connection_key(path)
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                event = parse_line(line, conn)
            except RecordingFormatError as e:
                raise RecordingFormatError(f"{path}:{number}: {e}") from None
            if event is not None:
                yield event
