"""OKX protocol microbenchmark: frames/s per core of ``receive``, no sockets in the timing.

Two sources, each looped through a fresh protocol until ``--seconds`` of CPU time:

* the real recording ``../shared/recordings/OKX.ws.1.0`` (v5, 2022: books with a WS snapshot
  and a CRC32 checksum verified on every push, trades, tickers of spot, swap and futures);
* 2026-format frames built here: a REST snapshot (400 levels a side) then ``books`` pushes
  chained by ``seqId``/``prevSeqId`` (checksum 0), ``trades`` and ``mark-price`` pushes, fed to
  a BTC-USDT-SWAP protocol; the book pushes alone, then the mix.

CPU time is ``time.thread_time()`` (this thread) and ``time.process_time()`` (the process), so
the figure is per core. The sink is drained every 1024 frames, as the collector drains it. Run:
``.venv/bin/python bench/venue_okx.py [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import msgspec

from hundi.capture.events import CaptureKind
from hundi.capture.infer import infer_config
from hundi.capture.reader import read_capture
from hundi.exchanges.base import RecordSink, RejectedFrame, RestPurpose, RestResponse, VenueConfig
from hundi.exchanges.okx import OkxVenue
from hundi.exchanges.okx.protocol import OkxProtocol
from hundi.records import Channel

RECORDINGS = Path(__file__).resolve().parents[1] / ".." / "shared" / "recordings"
DRAIN_EVERY = 1024
T0 = 1_780_000_000_000
INST = "BTC-USDT-SWAP"


def run(make: Any, frames: list[tuple[int, bytes]], seconds: float) -> dict[str, Any]:
    """Loop ``frames`` through fresh protocols from ``make()`` for ``seconds`` of CPU time."""
    frames_done = records = rejected = verified = mismatches = 0
    cpu = proc = 0.0
    while cpu < seconds:
        protocol = make()
        sink = RecordSink()
        receive = protocol.receive
        start, pstart = time.thread_time(), time.process_time()
        for i, (recv_ns, data) in enumerate(frames):
            try:
                receive("public", data, recv_ns, sink)
            except RejectedFrame:
                rejected += 1
            if i % DRAIN_EVERY == 0:
                records += len(sink)
                sink.drain()
        cpu += time.thread_time() - start
        proc += time.process_time() - pstart
        records += len(sink)
        frames_done += len(frames)
        verified += sum(b.checksums_verified for b in protocol.book_of.values())
        mismatches += sum(b.checksum_mismatches for b in protocol.book_of.values())
    return {
        "frames": frames_done,
        "thread_cpu_s": round(cpu, 3),
        "process_cpu_s": round(proc, 3),
        "frames_per_s_per_core": round(frames_done / cpu),
        "frames_per_s_process_cpu": round(frames_done / proc),
        "records": records,
        "rejected": rejected,
        "checksums_verified": verified,
        "checksum_mismatches": mismatches,
    }


def recording() -> tuple[Any, list[tuple[int, bytes]]]:
    files = sorted(RECORDINGS.glob("OKX.*"))
    config = infer_config(files, "okx", None)
    frames = [(e.ts, e.data) for e in read_capture(files) if e.kind is CaptureKind.RECV]
    return (lambda: OkxVenue(config)), frames


def synthetic(n: int, mix: bool) -> tuple[Any, list[tuple[int, bytes]]]:
    """A REST snapshot at seqId 1000, then ``n`` frames (book pushes, or a mix)."""
    rng = random.Random(7)
    bids = {60_000.0 - i * 0.1: 1.0 for i in range(400)}
    asks = {60_000.1 + i * 0.1: 1.0 for i in range(400)}
    snap = {"code": "0", "msg": "", "data": [{
        "asks": [[f"{p:.1f}", "1", "0", "1"] for p in sorted(asks)],
        "bids": [[f"{p:.1f}", "1", "0", "1"] for p in sorted(bids, reverse=True)],
        "ts": str(T0), "seqId": 1000}]}  # fmt: skip
    snapshot = msgspec.json.encode(snap)
    frames: list[tuple[int, bytes]] = []
    seq, trade_id = 1000, 5_000_000
    for i in range(n):
        ts = T0 + i
        kind = rng.random() if mix else 0.0
        if kind < 0.7:
            changes: dict[str, list[list[str]]] = {"asks": [], "bids": []}
            for _ in range(rng.randrange(1, 8)):
                side = "bids" if rng.random() < 0.5 else "asks"
                price = 60_000.0 - rng.randrange(1, 300) * 0.1 if side == "bids" else (
                    60_000.1 + rng.randrange(0, 300) * 0.1)  # fmt: skip
                size = "0" if rng.random() < 0.3 else f"{rng.randrange(1, 500) / 100}"
                changes[side].append([f"{price:.1f}", size, "0", "1"])
            nxt = seq + rng.randrange(1, 20)
            body = {"arg": {"channel": "books", "instId": INST}, "action": "update",
                    "data": [{**changes, "ts": str(ts), "checksum": 0, "prevSeqId": seq,
                              "seqId": nxt}]}  # fmt: skip
            seq = nxt
        elif kind < 0.95:
            trade_id += 1
            body = {"arg": {"channel": "trades", "instId": INST}, "data": [{
                "instId": INST, "tradeId": str(trade_id), "px": "60000.1", "sz": "3",
                "side": "buy", "ts": str(ts), "count": "1"}]}  # fmt: skip
        else:
            mark = {"instId": INST, "instType": "SWAP", "markPx": "60000.05", "ts": str(ts)}
            body = {"arg": {"channel": "mark-price", "instId": INST}, "data": [mark]}
        frames.append((ts * 1_000_000, msgspec.json.encode(body)))

    def make() -> OkxProtocol:
        channels = (Channel.BOOK, Channel.TRADES, Channel.DERIVATIVE_TICKER)
        p = OkxVenue(VenueConfig("swap", (INST,), channels))
        sink = RecordSink()
        p.receive("public", frames[0][1], frames[0][0], sink)
        (request,) = [r for r in p.due_requests(T0 * 1_000_000)
                      if r.purpose is RestPurpose.BOOK_SNAPSHOT]  # fmt: skip
        p.receive_response(request, RestResponse(200, snapshot), T0 * 1_000_000, sink)
        assert p.book_of[INST].synced
        return p

    return make, frames[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--frames", type=int, default=50_000)
    args = parser.parse_args()
    results = {}
    if RECORDINGS.is_dir():
        make, frames = recording()
        results["recording OKX.ws.1.0 (checksums)"] = run(make, frames, args.seconds)
    make, frames = synthetic(args.frames, mix=False)
    results["2026 books pushes (seqId chain)"] = run(make, frames, args.seconds)
    make, frames = synthetic(args.frames, mix=True)
    results["2026 mix (books, trades, mark-price)"] = run(make, frames, args.seconds)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
