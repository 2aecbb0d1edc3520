"""A listener speaking just enough of the CQL native protocol to give the driver one answer.

For the server answers a real node gives only in states the test node cannot be put in on
demand: a node of an older version refusing the protocol version, a login its ``system_auth``
replicas cannot check. Frames are read whole and each request is answered by ``answer``
(opcode, body) -> (opcode, body), or the connection is closed (None).
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ERROR, STARTUP, READY, AUTHENTICATE, OPTIONS, SUPPORTED, AUTH_RESPONSE = (
    0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x0F
)  # fmt: skip
PROTOCOL_ERROR, BAD_CREDENTIALS = 0x000A, 0x0100

Answer = Callable[[int, bytes], tuple[int, bytes] | None]


def string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def error(code: int, message: str) -> tuple[int, bytes]:
    return ERROR, struct.pack(">i", code) + string(message)


def supported() -> tuple[int, bytes]:
    """The OPTIONS answer: CQL 3.4.5, no compression."""
    body = struct.pack(">H", 2) + string("CQL_VERSION") + struct.pack(">H", 1) + string("3.4.5")
    return SUPPORTED, body + string("COMPRESSION") + struct.pack(">H", 0)


def _read_exactly(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _serve_connection(conn: socket.socket, answer: Answer, version: int) -> None:
    with conn:
        try:
            while (head := _read_exactly(conn, 9)) is not None:
                _, _, stream, opcode, length = struct.unpack(">BBhBi", head)
                body = _read_exactly(conn, length) if length else b""
                if body is None:
                    return
                reply = answer(opcode, body)
                if reply is None:
                    return
                out_opcode, out = reply
                conn.sendall(struct.pack(">BBhBi", 0x80 | version, 0, stream, out_opcode,
                                         len(out)) + out)  # fmt: skip
        except OSError:
            return


@contextmanager
def cql_node(answer: Answer, version: int = 4) -> Iterator[int]:
    """A listener on 127.0.0.1 answering in protocol ``version`` framing; yields its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_serve_connection, args=(conn, answer, version),
                             daemon=True).start()  # fmt: skip

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()
