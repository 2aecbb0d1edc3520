"""Receive throughput of candidate WebSocket clients (``websockets``, ``aiohttp``, ``picows``).

Why: the collector spends most of its time receiving small JSON frames, so the client library
is chosen by measurement, not by taste. A raw-socket server in a *separate process* pushes
pre-encoded Binance-sized text frames as fast as the socket accepts them (it is never the
bottleneck: it only copies a pre-built buffer), and each client counts frames until the close.

Run: ``.venv/bin/python bench/ws_clients.py [--frames N] [--rounds R]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import multiprocessing
import socket
import statistics
import time
from collections.abc import Awaitable, Callable

from hundi.simulator.wire import ws_frame

PAYLOAD = (
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1633998511123,"s":"BTCUSDT",'
    b'"a":912345678,"p":"57321.01000000","q":"0.01234000","f":1091234567,"l":1091234569,'
    b'"T":1633998511121,"m":false,"M":true}}'
)
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def _serve_client(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frames: int
) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    key = b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    chunk_frames = 1000
    chunk = ws_frame(PAYLOAD) * chunk_frames
    sent = 0
    while sent < frames:
        writer.write(chunk)
        sent += chunk_frames
        await writer.drain()
    writer.write(bytes([0x88, 2]) + (1000).to_bytes(2, "big"))
    await writer.drain()
    with contextlib.suppress(TimeoutError, ConnectionError):
        await asyncio.wait_for(reader.read(), 5)
    writer.close()


def _server_main(sock: socket.socket, frames: int) -> None:
    async def run() -> None:
        server = await asyncio.start_server(lambda r, w: _serve_client(r, w, frames), sock=sock)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


async def _websockets(url: str) -> int:
    from websockets.asyncio.client import connect

    count = 0
    async with connect(url, max_size=2**24, compression=None, max_queue=1024) as ws:
        async for _ in ws:
            count += 1
    return count


async def _aiohttp(url: str) -> int:
    import aiohttp

    count = 0
    async with aiohttp.ClientSession() as session, session.ws_connect(url, autoping=True) as ws:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT or msg.type is aiohttp.WSMsgType.BINARY:
                count += 1
    return count


async def _picows(url: str) -> int:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    class Counter(WSListener):
        count = 0

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is WSMsgType.TEXT:
                frame.get_payload_as_bytes()
                self.count += 1
            elif frame.msg_type is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    transport, listener = await ws_connect(Counter, url)
    await transport.wait_disconnected()
    return listener.count


CLIENTS: dict[str, Callable[[str], Awaitable[int]]] = {
    "websockets": _websockets,
    "aiohttp": _aiohttp,
    "picows": _picows,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = multiprocessing.get_context("fork").Process(
        target=_server_main, args=(sock, args.frames), daemon=True
    )
    server.start()
    url = f"ws://127.0.0.1:{port}/ws"
    print(
        f"{args.frames} frames of {len(PAYLOAD)} B, {args.rounds} rounds, best/median msgs/s",
        flush=True,
    )
    try:
        for name, client in CLIENTS.items():
            rates = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                got = asyncio.run(client(url))
                elapsed = time.perf_counter() - start
                assert got == args.frames, (name, got)
                rates.append(got / elapsed)
            print(f"{name:<11} {max(rates):>12,.0f} {statistics.median(rates):>12,.0f}")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
