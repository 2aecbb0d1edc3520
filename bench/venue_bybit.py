"""Bybit protocol microbenchmark: frames/s per core of ``receive``, no sockets in the timing.

No Bybit recording exists in ``../shared/recordings``, so the frames are the Bybit simulator's:
a ``BybitSimulator`` serves a linear category over a local socket, a client subscribes
``publicTrade``, ``orderbook.50``, ``orderbook.1``, ``tickers`` (snapshot + deltas) and
``allLiquidation`` of three symbols and keeps every frame for ``--capture`` seconds; then the
frames are fed in-process to fresh :class:`~hundi.exchanges.bybit.BybitProtocol` objects (the
instrument list answered first, as live) until ``--seconds`` of CPU time: the whole mix, then
its book frames alone.

CPU time is ``time.thread_time()`` (this thread) and ``time.process_time()`` (the process), so
the figure is per core. The sink is drained every 1024 frames, as the collector drains it. Run:
``.venv/bin/python bench/venue_bybit.py [--seconds 3] [--capture 4] [--frames FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from hundi.exchanges.base import RecordSink, RejectedFrame, RestResponse, VenueConfig
from hundi.exchanges.bybit import BybitProtocol, BybitVenue
from hundi.records import Channel
from hundi.simulator.bybit.server import BybitSimConfig, BybitSimulator

DRAIN_EVERY = 1024
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
CHANNELS = (
    Channel.TRADES, Channel.BOOK, Channel.BBO, Channel.TICKER, Channel.DERIVATIVE_TICKER,
    Channel.LIQUIDATIONS, Channel.EVENTS,
)  # fmt: skip


async def capture(seconds: float) -> tuple[bytes, list[tuple[int, bytes]]]:
    """The instrument list and ``seconds`` of the simulator's linear frames."""
    sim = BybitSimulator(BybitSimConfig(symbols=SYMBOLS, rate=2000.0, seed=3))
    frames: list[tuple[int, bytes]] = []
    async with sim, aiohttp.ClientSession() as session:
        url = f"{sim.rest_url}/v5/market/instruments-info?category=linear"
        async with session.get(url) as r:
            listing = await r.read()
        protocol = make(listing)
        async with session.ws_connect(f"{sim.ws_url}/v5/public/linear") as ws:
            for message in protocol.subscribe_messages():
                await ws.send_bytes(message)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    msg = await ws.receive(timeout=max(0.01, end - time.monotonic()))
                except TimeoutError:
                    break
                data = msg.data if isinstance(msg.data, bytes) else str(msg.data).encode()
                frames.append((time.time_ns(), data))
    return listing, frames


def make(listing: bytes) -> BybitProtocol:
    """A protocol that has read the instrument list, as it has before it subscribes."""
    protocol = BybitVenue(VenueConfig("linear", SYMBOLS, CHANNELS, options={"depth": "50"}))
    sink = RecordSink()
    (request,) = protocol.due_requests(time.time_ns())
    protocol.receive_response(request, RestResponse(200, listing), time.time_ns(), sink)
    return protocol


def run(listing: bytes, frames: list[tuple[int, bytes]], seconds: float) -> dict[str, Any]:
    """Loop ``frames`` through fresh protocols for ``seconds`` of CPU time."""
    frames_done = records = rejected = 0
    cpu = proc = 0.0
    while cpu < seconds:
        protocol = make(listing)
        sink = RecordSink()
        receive = protocol.receive
        start, start_proc = time.thread_time(), time.process_time()
        for i, (recv_ns, data) in enumerate(frames):
            try:
                receive("public", data, recv_ns, sink)
            except RejectedFrame:
                rejected += 1
            if i % DRAIN_EVERY == 0:
                records += len(sink)
                sink.drain()
        cpu += time.thread_time() - start
        proc += time.process_time() - start_proc
        records += len(sink)
        frames_done += len(frames)
    return {
        "frames": frames_done,
        "thread_cpu_s": round(cpu, 3),
        "process_cpu_s": round(proc, 3),
        "frames_per_s_per_core": round(frames_done / cpu),
        "records": records,
        "rejected": rejected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per source")
    parser.add_argument("--capture", type=float, default=4.0, help="simulator seconds captured")
    parser.add_argument("--frames", type=Path, default=None, help="keep the frames in FILE")
    args = parser.parse_args()
    if args.frames is not None and args.frames.exists():
        saved = msgspec.msgpack.decode(args.frames.read_bytes())
        listing, frames = saved[0], [(t, d) for t, d in saved[1]]
    else:
        listing, frames = asyncio.run(capture(args.capture))
        if args.frames is not None:
            args.frames.write_bytes(msgspec.msgpack.encode([listing, frames]))
    book = [(t, d) for t, d in frames if d.startswith(b'{"topic":"orderbook.50')]
    result = {
        "simulator_mix": run(listing, frames, args.seconds),
        "simulator_book_50": run(listing, book, args.seconds),
        "kinds": {
            kind: sum(1 for _, d in frames if d.startswith(b'{"topic":"' + kind.encode()))
            for kind in ("publicTrade", "orderbook.50", "orderbook.1.", "tickers", "allLiq")
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
