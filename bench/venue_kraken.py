"""Kraken protocol microbenchmark: frames/s per core of ``receive``, no sockets in the timing.

Two sources, each looped through a fresh protocol until ``--seconds`` of CPU time:

* the real v1 recording ``../shared/recordings/KRAKEN.ws.50.0`` (book-1000 of 10 pairs, every
  update checksummed) through :class:`~hundi.exchanges.kraken.KrakenV1Protocol`;
* v2 frames of the Kraken simulator (instrument, book depth 100 with checksums, trade, ticker,
  ohlc), captured once from a ``KrakenSimulator`` over a local socket and then fed in-process
  to :class:`~hundi.exchanges.kraken.KrakenProtocol`: the whole mix, then its book frames
  alone;
* REST ``Trades`` pages of 1000 trades answering a 1000-id trade gap (the backfill: decode,
  dedupe by id, records and events), in trades/s.

CPU time is ``time.thread_time()`` (this thread only), so the figure is per core. The sink is
drained every 1024 frames, as the collector drains its sink. Run:
``.venv/bin/python bench/venue_kraken.py [--seconds 3] [--depth 100] [--frames FILE]``.
``--frames`` keeps the simulator frames in FILE (captured once if it does not exist), so two
versions of the protocol (``PYTHONPATH=<other checkout>/src``) are measured on the same frames.
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

from hundi.capture.events import CaptureKind
from hundi.capture.infer import infer_config
from hundi.capture.reader import read_capture
from hundi.exchanges.base import RecordSink, RejectedFrame, RestResponse, VenueConfig
from hundi.exchanges.kraken import KrakenVenue
from hundi.exchanges.kraken.backfill import PAGE
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


def backfill_pages(seconds: float) -> dict[str, Any]:
    """CPU time of ``receive_response`` on full ``Trades`` pages, each filling a fresh gap."""
    t0 = 1_700_000_000_000_000_000
    rows = [
        [
            f"{60000 + i % 50}.{i % 10}0000",
            "0.01250000",
            msgspec.Raw(f"1700000000.{i:06d}".encode()),
            "bs"[i % 2],
            "l",
            "",
            2 + i,
        ]
        for i in range(PAGE)
    ]  # fmt: skip  (times as JSON numbers, as Kraken sends them)
    body = msgspec.json.encode({"error": [], "result": {"XXBTZUSD": rows, "last": str(t0)}})
    config = VenueConfig("spot", ("BTC/USD",), (Channel.TRADES, Channel.EVENTS))
    snapshot = {"channel": "trade", "type": "snapshot", "data": [
        {"symbol": "BTC/USD", "side": "buy", "price": 1.0, "qty": 1.0, "ord_type": "limit",
         "trade_id": trade_id, "timestamp": "2023-11-14T22:13:20.000000Z"}
        for trade_id in (1, 2 + PAGE)
    ]}  # fmt: skip
    frame = json.dumps(snapshot).encode()
    pages = trades = 0
    cpu = 0.0
    while cpu < seconds:
        protocol = KrakenVenue(config)
        sink = RecordSink()
        protocol.receive("public", frame, t0, sink)
        (request,) = protocol.due_requests(t0)
        start = time.thread_time()
        protocol.receive_response(request, RestResponse(200, body), t0, sink)
        cpu += time.thread_time() - start
        assert len(sink.trades) == 2 + PAGE and protocol.owed_ids() == 0, "a page not stored"
        pages += 1
        trades += PAGE
    return {
        "pages": pages,
        "cpu_s": round(cpu, 3),
        "trades_per_s_per_core": round(trades / cpu),
        "pages_per_s_per_core": round(pages / cpu, 1),
    }


def recording_source() -> tuple[Any, list[tuple[int, bytes]]]:
    files = sorted(RECORDINGS.glob("KRAKEN.*"))
    config = infer_config(files, "kraken", None)
    config.authenticate = False
    frames = [(e.ts, e.data) for e in read_capture(files) if e.kind is CaptureKind.RECV]
    return (lambda: KrakenVenue(config)), frames


async def _capture_simulator(seconds: float, depth: int) -> tuple[str, list[tuple[int, bytes]]]:
    """v2 frames of the simulator at a high rate, as a collector subscribed would get them."""
    config = KrakenSimConfig(symbols=PAIRS, rate=3000, book_interval_s=0.02, seed=7)
    options = {"depth": str(depth)}
    protocol = KrakenVenue(VenueConfig("spot", PAIRS, V2_CHANNELS, options=options))
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


def simulator_source(
    seconds: float, depth: int, keep: Path | None
) -> tuple[Any, list[tuple[int, bytes]]]:
    if keep is not None and keep.exists():
        frames = [(ts, data) for ts, data in msgspec.msgpack.decode(keep.read_bytes())]
    else:
        _, frames = asyncio.run(_capture_simulator(seconds, depth))
        if keep is not None:
            keep.write_bytes(msgspec.msgpack.encode(frames))
    config = VenueConfig("spot", PAIRS, V2_CHANNELS, options={"depth": str(depth)})
    return (lambda: KrakenVenue(config)), frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per source")
    parser.add_argument("--depth", type=int, default=100, help="v2 book depth subscribed")
    parser.add_argument("--frames", type=Path, help="simulator frames kept in (or read from)")
    args = parser.parse_args()
    results = []
    if RECORDINGS.is_dir():
        make, frames = recording_source()
        results.append(
            {"source": "recording KRAKEN.ws.50.0 (v1)", **run(make, frames, args.seconds)}
        )
    make, frames = simulator_source(3.0, args.depth, args.frames)
    kinds: dict[str, int] = {}
    for _, data in frames:
        head = json.loads(data)
        kind = head.get("channel") or head.get("method") or "?"
        kinds[kind] = kinds.get(kind, 0) + 1
    results.append({"source": "simulator v2", "mix": kinds, **run(make, frames, args.seconds)})
    books = [(ts, data) for ts, data in frames if json.loads(data).get("channel") in BOOK_ONLY]
    results.append({"source": f"simulator v2, book frames only (depth {args.depth})",
                    **run(make, books, args.seconds)})  # fmt: skip
    backfill = {"source": "REST Trades pages (1000 trades each, one gap)",
                **backfill_pages(args.seconds)}  # fmt: skip
    for result in results:
        print(json.dumps(result))
    print(json.dumps(backfill))
    assert all(r["rejected"] == 0 and r["checksum_mismatches"] == 0 for r in results), results


if __name__ == "__main__":
    main()
