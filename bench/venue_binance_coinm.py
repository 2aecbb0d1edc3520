"""Binance COIN-M protocol microbenchmark: frames/s per core of ``receive``, no sockets timed.

Frames come from the COIN-M simulator (``hundi simulate binance --market coinm``): captured
once over a local WebSocket (aggTrade, bookTicker, depth@100ms, markPrice@1s, forceOrder of
``--symbols``), with each book's REST snapshot fetched right after subscribing, then looped
in-process through fresh :class:`~hundi.exchanges.binance.BinanceProtocol` (``coinm``) until
``--seconds`` of CPU time; snapshot requests are answered from the fetched bodies, so books
sync as live. Separately: the derivative-ticker/liquidation frames alone (hand-made
``markPrice@1s`` and ``forceOrder`` payloads, as the simulator sends them), since the market
sends few of them. There is no real COIN-M recording in ``../shared/recordings``.

CPU time is ``time.thread_time()`` (this thread) and ``time.process_time()`` (the process):
per core. The sink is drained every 1024 frames, as the collector drains its sink. Run:
``.venv/bin/python bench/venue_binance_coinm.py [--seconds 3] [--capture-s 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp

from hundi.exchanges.base import (
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestResponse,
    VenueConfig,
)
from hundi.exchanges.binance import BinanceVenue
from hundi.records import Channel
from hundi.simulator.binance.config import SimulatorConfig
from hundi.simulator.binance.server import BinanceSimulator

DRAIN_EVERY = 1024
STREAMS = ("aggTrade", "bookTicker", "depth@100ms", "markPrice@1s", "forceOrder")
CHANNELS = (
    Channel.TRADES, Channel.BBO, Channel.BOOK, Channel.DERIVATIVE_TICKER, Channel.LIQUIDATIONS,
    Channel.EVENTS,
)  # fmt: skip


async def capture(symbols: tuple[str, ...], seconds: float) -> tuple[list[bytes], dict[str, bytes]]:
    """Frames of the simulator's combined stream and each symbol's depth snapshot body."""
    config = SimulatorConfig(market="coinm", symbols=symbols, rate=0, seed=7)  # type: ignore[arg-type]
    frames: list[bytes] = []
    snapshots: dict[str, bytes] = {}
    async with BinanceSimulator(config) as sim, aiohttp.ClientSession() as session:
        names = [f"{s.lower()}@{k}" for s in symbols for k in STREAMS]
        async with session.ws_connect(f"{sim.ws_url}/stream") as ws:
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": names, "id": 1}))
            await ws.receive(timeout=5)  # the ack
            start = time.monotonic()
            while time.monotonic() < start + seconds:
                msg = await ws.receive(timeout=5)
                if msg.type is aiohttp.WSMsgType.TEXT:
                    frames.append(msg.data.encode())
                if not snapshots and time.monotonic() > start + 0.5:
                    # mid-stream, as a live collector asks: diffs before and after it
                    for symbol in symbols:
                        url = f"{sim.rest_url}/dapi/v1/depth?symbol={symbol}&limit=1000"
                        async with session.get(url) as answer:
                            snapshots[symbol] = await answer.read()
    return frames, snapshots


def derivative_frames(symbols: tuple[str, ...], count: int) -> list[bytes]:
    """``markPrice@1s`` and ``forceOrder`` payloads, 9 mark prices to 1 liquidation."""
    out = []
    now = int(time.time() * 1000)
    for n in range(count):
        symbol = symbols[n % len(symbols)]
        lower = symbol.lower()
        if n % 10:
            data = (
                f'{{"e":"markPriceUpdate","E":{now + n},"s":"{symbol}","p":"95000.1",'
                f'"P":"95001.2","i":"95001.2","r":"0.00010000","T":{now + 3600_000}}}'
            )
            out.append(f'{{"stream":"{lower}@markPrice@1s","data":{data}}}'.encode())
        else:
            order = (
                f'"s":"{symbol}","ps":"BTCUSD","S":"SELL","o":"LIMIT","f":"IOC","q":"3",'
                f'"p":"94990.0","ap":"94990.0","X":"FILLED","l":"3","z":"3","T":{now + n}'
            )
            data = f'{{"e":"forceOrder","E":{now + n},"o":{{{order}}}}}'
            out.append(f'{{"stream":"{lower}@forceOrder","data":{data}}}'.encode())
    return out


def run(
    symbols: tuple[str, ...], frames: list[bytes], snapshots: dict[str, bytes], seconds: float
) -> dict[str, Any]:
    done = records = rejected = 0
    kinds: dict[str, int] = {}
    for data in frames:
        kind = data.partition(b"@")[2].partition(b'"')[0].decode()
        kinds[kind] = kinds.get(kind, 0) + 1
    thread_cpu = process_cpu = 0.0
    synced = 0
    while thread_cpu < seconds:
        protocol = BinanceVenue(VenueConfig("coinm", symbols, CHANNELS))
        conn = protocol.connections()[0].key
        sink = RecordSink()
        receive = protocol.receive
        now = time.time_ns()
        t0, p0 = time.thread_time(), time.process_time()
        for i, data in enumerate(frames):
            recv_ns = now + i * 100_000  # 0.1 ms apart: REST spacing (100 ms) lets books ask
            try:
                receive(conn, data, recv_ns, sink)
            except RejectedFrame:
                rejected += 1
            if i % DRAIN_EVERY == 0:
                for request in protocol.due_requests(recv_ns):
                    if request.purpose is RestPurpose.BOOK_SNAPSHOT:
                        body = snapshots[request.key]
                        protocol.receive_response(request, RestResponse(200, body), recv_ns, sink)
                records += len(sink)
                sink.drain()
        thread_cpu += time.thread_time() - t0
        process_cpu += time.process_time() - p0
        records += len(sink)
        done += len(frames)
        synced = sum(book.synced for book in protocol.books())
    return {
        "frames": done,
        "thread_cpu_s": round(thread_cpu, 3),
        "process_cpu_s": round(process_cpu, 3),
        "frames_per_s_per_core": round(done / thread_cpu),
        "frames_per_s_process_cpu": round(done / process_cpu),
        "records": records,
        "rejected": rejected,
        "books_synced": synced,
        "frame_mix": kinds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per source")
    parser.add_argument("--capture-s", type=float, default=3.0, help="simulator capture time")
    parser.add_argument("--symbols", default="BTCUSD_PERP,ETHUSD_PERP,LINKUSD_260626")
    args = parser.parse_args()
    symbols = tuple(args.symbols.split(","))
    frames, snapshots = asyncio.run(capture(symbols, args.capture_s))
    mix = run(symbols, frames, snapshots, args.seconds)
    derivatives = run(symbols, derivative_frames(symbols, 20_000), snapshots, args.seconds)
    print(json.dumps({"simulator_mix": mix, "derivatives_only": derivatives}, indent=2))


if __name__ == "__main__":
    main()
