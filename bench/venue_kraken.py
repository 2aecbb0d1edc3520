"""Kraken protocol microbenchmark: frames/s per core of ``receive``, no sockets in the timing.

Two sources, each looped through a fresh protocol until ``--seconds`` of CPU time:

* the real v1 recording ``../shared/recordings/KRAKEN.ws.50.0`` (book-1000 of 10 pairs, every
  update checksummed) through :class:`~hundi.exchanges.kraken.KrakenV1Protocol`;
* v2 frames of the Kraken simulator (instrument, book depth 100 with checksums, trade, ticker,
  ohlc), captured once from a ``KrakenSimulator`` over a local socket and then fed in-process
  to :class:`~hundi.exchanges.kraken.KrakenProtocol`: the whole mix, then its book frames
  alone.

CPU time is ``time.thread_time()`` (this thread only), so the figure is per core. The sink is
drained every 1024 frames, as the collector drains its sink. Run:
``.venv/bin/python bench/venue_kraken.py [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from hundi.capture.events import CaptureKind
from hundi.capture.infer import infer_config
from hundi.capture.reader import read_capture
from hundi.exchanges.base import RecordSink, RejectedFrame, VenueConfig
from hundi.exchanges.kraken import KrakenVenue
from hundi.records import Channel
from hundi.simulator.kraken.server import KrakenSimConfig, KrakenSimulator

RECORDINGS = Path(__file__).resolve().parents[1] / ".." / "shared" / "recordings"
DRAIN_EVERY = 1024
PAIRS = ("BTC/USD", "ETH/USD", "SOL/USD", "XRP/EUR")
BOOK_ONLY = ("instrument", "book")
V2_CHANNELS = (Channel.TRADES, Channel.BBO, Channel.BOOK, Channel.CANDLES, Channel.EVENTS)


def run(make: Any, frames: list[tuple[int, bytes]], seconds: float) -> dict[str, Any]:
    """Loop ``frames`` through fresh protocols from ``make()`` for ``seconds`` of CPU time."""
    frames_done = records = rejected = verified = mismatches = 0
    cpu = 0.0
    while cpu < seconds:
        protocol = make()
        sink = RecordSink()
        receive = protocol.receive
        start = time.thread_time()
        for i, (recv_ns, data) in enumerate(frames):
            try:
                receive("public", data, recv_ns, sink)
            except RejectedFrame:
                rejected += 1
            if i % DRAIN_EVERY == 0:
                records += len(sink)
                sink.drain()
        cpu += time.thread_time() - start
        records += len(sink)
        frames_done += len(frames)
        verified += protocol.checksums_verified
        mismatches += protocol.checksum_mismatches
    return {
        "frames": frames_done,
        "cpu_s": round(cpu, 3),
        "frames_per_s_per_core": round(frames_done / cpu),
        "records": records,
        "rejected": rejected,
        "checksums_verified": verified,
        "checksum_mismatches": mismatches,
    }


def recording_source() -> tuple[Any, list[tuple[int, bytes]]]:
    files = sorted(RECORDINGS.glob("KRAKEN.*"))
    config = infer_config(files, "kraken", None)
    config.authenticate = False
    frames = [(e.ts, e.data) for e in read_capture(files) if e.kind is CaptureKind.RECV]
    return (lambda: KrakenVenue(config)), frames


async def _capture_simulator(seconds: float) -> tuple[str, list[tuple[int, bytes]]]:
    """v2 frames of the simulator at a high rate, as a collector subscribed would get them."""
    config = KrakenSimConfig(symbols=PAIRS, rate=3000, book_interval_s=0.02, seed=7)
    protocol = KrakenVenue(VenueConfig("spot", PAIRS, V2_CHANNELS, options={"depth": "100"}))
    frames: list[tuple[int, bytes]] = []
    async with (
        KrakenSimulator(config) as sim,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.ws_url}/v2") as ws,
    ):
        for message in protocol.connections()[0].subscribe:
            await ws.send_str(message.decode())
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = await ws.receive(timeout=5)
            frames.append((time.time_ns(), msg.data.encode()))
    return "simulator v2", frames


def simulator_source(seconds: float) -> tuple[Any, list[tuple[int, bytes]]]:
    _, frames = asyncio.run(_capture_simulator(seconds))
    config = VenueConfig("spot", PAIRS, V2_CHANNELS, options={"depth": "100"})
    return (lambda: KrakenVenue(config)), frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per source")
    args = parser.parse_args()
    results = []
    if RECORDINGS.is_dir():
        make, frames = recording_source()
        results.append(
            {"source": "recording KRAKEN.ws.50.0 (v1)", **run(make, frames, args.seconds)}
        )
    make, frames = simulator_source(3.0)
    kinds: dict[str, int] = {}
    for _, data in frames:
        head = json.loads(data)
        kind = head.get("channel") or head.get("method") or "?"
        kinds[kind] = kinds.get(kind, 0) + 1
    results.append({"source": "simulator v2", "mix": kinds, **run(make, frames, args.seconds)})
    books = [(ts, data) for ts, data in frames if json.loads(data).get("channel") in BOOK_ONLY]
    results.append({"source": "simulator v2, book frames only (depth 100)",
                    **run(make, books, args.seconds)})  # fmt: skip
    for result in results:
        print(json.dumps(result))
    assert all(r["rejected"] == 0 and r["checksum_mismatches"] == 0 for r in results), results


if __name__ == "__main__":
    main()
