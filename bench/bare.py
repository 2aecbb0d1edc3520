"""The floor the collector is measured against: picows receive + one msgspec decode per frame.

No protocol, no records, no store: the same client library and the same subscription as
``hundi collect`` (``SUBSCRIBE`` on ``/stream``), every frame fully decoded by msgspec into
builtins. Prints one JSON line: frames, bytes, first/last frame time (wall ns).

Run: ``python bench/bare.py --url ws://HOST:PORT/stream --streams btcusdt@aggTrade,...``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import msgspec
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect


class Counter(WSListener):
    """Counts and decodes data frames; answers pings (the simulator may send them)."""

    def __init__(self, decode: bool) -> None:
        self.frames = 0
        self.bytes = 0
        self.first_ns = 0
        self.last_ns = 0
        self.decode = msgspec.json.Decoder().decode if decode else None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT:
            data = frame.get_payload_as_bytes()
            if self.decode is not None:
                self.decode(data)
            self.frames += 1
            self.bytes += len(data)
            now = time.time_ns()
            if not self.first_ns:
                self.first_ns = now
            self.last_ns = now
        elif kind is WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
        elif kind is WSMsgType.CLOSE:
            transport.disconnect()


async def run(
    url: str, streams: list[str], duration: float, idle: float, decode: bool
) -> dict[str, int]:
    transport, listener = await ws_connect(lambda: Counter(decode), url, max_frame_size=1 << 26)
    assert isinstance(listener, Counter)
    subscribe = {"method": "SUBSCRIBE", "params": streams, "id": 1}
    transport.send(WSMsgType.TEXT, msgspec.json.encode(subscribe))
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if listener.last_ns and time.time_ns() - listener.last_ns > idle * 1e9:
            break  # a finite replay is over
    transport.send_close()
    transport.disconnect()
    return {
        "frames": listener.frames,
        "bytes": listener.bytes,
        "first_ns": listener.first_ns,
        "last_ns": listener.last_ns,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--streams", required=True)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--idle", type=float, default=1.0, help="stop after this long silent")
    parser.add_argument("--no-decode", action="store_true", help="receive only")
    args = parser.parse_args()
    result = asyncio.run(
        run(args.url, args.streams.split(","), args.duration, args.idle, not args.no_decode)
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
