"""Server-side WebSocket frames written straight to the transport.

Server frames are unmasked, so a frame is a 2-10 byte header plus the payload. Building them
here lets the simulator join thousands of frames into one ``transport.write`` instead of one
awaited ``send_str`` per message: that is what ``--rate 0`` needs to saturate a client.
"""

from __future__ import annotations

import struct

OP_TEXT = 0x1
OP_PING = 0x9
OP_PONG = 0xA


def ws_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final (FIN) frame carrying ``payload``."""
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload
