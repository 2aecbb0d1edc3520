"""CPU microbenchmark of the Bitstamp protocol, in-process, no sockets: frames/s per core.

* **recording**: the real ``../shared/recordings/BITSTAMP.*`` replayed as ``hundi replay`` does
  (books synced from the recording's REST snapshots), repeated with a fresh protocol each time;
  the figure covers the replay loop too (REST matching, accounting), so it is a lower bound.
* **simulator**: frames the Bitstamp simulator's encoder writes for its seeded market
  (``diff_order_book`` and ``live_trades``), fed to ``BitstampProtocol.receive`` on synced books.

CPU time is the thread's (``time.thread_time``), not wall time. Run alone:
``.venv/bin/python bench/venue_bitstamp.py [--steps N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import msgspec

from hundi.accounting import Accounting
from hundi.capture.infer import infer_config
from hundi.capture.reader import read_capture
from hundi.capture.replay import replay_events
from hundi.exchanges.base import RecordSink, RestResponse, VenueConfig
from hundi.exchanges.bitstamp import BitstampVenue
from hundi.exchanges.bitstamp.protocol import CONN
from hundi.records import Channel
from hundi.simulator.bitstamp.server import DEPTH_KEY, BitstampSimConfig, BitstampSimulator

RECORDINGS = Path(__file__).resolve().parents[1] / ".." / "shared" / "recordings"
PAIRS = ("btcusd", "etheur", "xrpusd")
DRAIN_EVERY = 1024


def recording_bench(repeat: int) -> dict[str, Any]:
    files = sorted(RECORDINGS.glob("BITSTAMP.*"))
    if not files:
        raise SystemExit(f"no BITSTAMP recording in {RECORDINGS}")
    events = list(read_capture(files))
    config = infer_config(files, "bitstamp", None)
    frames = records = 0
    cpu = 0.0
    for _ in range(repeat):
        protocol = BitstampVenue(config)
        accounting = Accounting()
        start = time.thread_time()
        replay_events(events, protocol, lambda batch: None, accounting)
        cpu += time.thread_time() - start
        assert accounting.rejected_total == 0
        frames += accounting.received
        records += sum(accounting.records.values())
    return {"source": "recording BITSTAMP.*", "frames": frames, "records": records, "cpu_s": cpu}


def simulator_frames(steps: int) -> tuple[list[bytes], dict[str, bytes]]:
    """``steps`` market actions as the simulator encodes them, and each pair's REST snapshot
    from before the first of them."""
    sim = BitstampSimulator(BitstampSimConfig(symbols=PAIRS, seed=3))
    frames: list[bytes] = []

    async def capture(channel: str, frame: bytes, trade_id: int) -> None:
        frames.append(frame)

    sim._broadcast = capture  # type: ignore[method-assign]
    snapshots = {
        pair: msgspec.json.encode(
            sim._book_body(pair, sim.market.published[pair], sim.published_us[pair], 10**9)
        )
        for pair in PAIRS
    }

    async def run() -> None:
        for step in range(steps):
            market = sim.market.step()
            for event in market.events:
                if event[0] == "A":
                    await sim._trades(market.spec.symbol, event)
            market.events.clear()
            if step % 5 == 4:  # a diff every few actions, as a tick folds them
                for pair, diff in list(sim.market.take_depth(DEPTH_KEY)):
                    await sim._diff(pair, diff)

    asyncio.run(run())
    return frames, snapshots


def simulator_bench(steps: int, repeat: int) -> dict[str, Any]:
    frames, snapshots = simulator_frames(steps)
    config = VenueConfig("spot", PAIRS, (Channel.TRADES, Channel.BOOK, Channel.EVENTS))
    cpu = 0.0
    records = 0
    for _ in range(repeat):
        protocol = BitstampVenue(config)
        sink = RecordSink()
        now = time.time_ns()
        protocol.on_open(CONN, now, sink)
        for pair in PAIRS:
            ack = b'{"event":"bts:subscription_succeeded","channel":"diff_order_book_%s","data":{}}'
            protocol.receive(CONN, ack % pair.encode(), now, sink)
        for pair in PAIRS:  # a diff at the snapshot's time vouches for it (held until one does)
            mt = msgspec.json.decode(snapshots[pair])["microtimestamp"]
            vouch = msgspec.json.encode({
                "data": {"microtimestamp": mt, "bids": [], "asks": []},
                "channel": f"diff_order_book_{pair}", "event": "data",
            })  # fmt: skip
            protocol.receive(CONN, vouch, now, sink)
        for offset in range(len(PAIRS) + 1):  # snapshot requests are spaced 100 ms
            for request in protocol.due_requests(now + offset * 200_000_000):
                body = snapshots.get(request.key, b"[]")
                protocol.receive_response(request, RestResponse(200, body), now, sink)
        assert all(book.synced for book in protocol.books())
        sink.drain()
        receive = protocol.receive
        start = time.thread_time()
        for i, frame in enumerate(frames):
            receive(CONN, frame, now, sink)
            if not i % DRAIN_EVERY:
                records += len(sink)
                sink.drain()
        cpu += time.thread_time() - start
        records += len(sink)
        assert all(book.synced for book in protocol.books()), protocol.books()
    return {"source": "simulator frames", "frames": len(frames) * repeat, "records": records,
            "cpu_s": cpu}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60_000, help="simulator market actions")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    for result in (recording_bench(args.repeat), simulator_bench(args.steps, 3)):
        rate = result["frames"] / result["cpu_s"] if result["cpu_s"] else float("inf")
        print(
            f"{result['source']:>22}: {result['frames']:>9,} frames, {result['records']:>10,} "
            f"records in {result['cpu_s']:.3f} CPU s = {rate:,.0f} frames/s per core"
        )


if __name__ == "__main__":
    main()
