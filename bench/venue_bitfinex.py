"""Bitfinex protocol microbenchmark: frames/s per core through ``BitfinexProtocol.receive``.

Two inputs, each replayed ``--repeats`` times through a fresh protocol, timed with the thread's
CPU time (``time.thread_time``, not wall time):

1. the real recording ``../shared/recordings/BITFINEX.ws.*`` (ticker, trades, P0 books with
   sequence numbers, heartbeats; no checksums: it was made with flags 65536 only);
2. a synthetic P0 book stream with both flags: level updates, each followed by its ``cs``
   checksum frame (the costly path: CRC32 over the top 25 levels of each side).

Run: ``.venv/bin/python bench/venue_bitfinex.py`` (``--recordings DIR`` elsewhere).
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import msgspec

from hundi.capture.events import CaptureKind
from hundi.capture.infer import infer_config
from hundi.capture.reader import read_capture
from hundi.exchanges.base import RecordSink, VenueConfig
from hundi.exchanges.bitfinex import BitfinexVenue
from hundi.exchanges.bitfinex.checksum import book_checksum
from hundi.exchanges.bitfinex.protocol import BitfinexProtocol
from hundi.records import Channel

ROOT = Path(__file__).resolve().parent.parent
CONN = "public-0"


def recording_frames(recordings: Path) -> tuple[VenueConfig, list[tuple[bytes, int]]]:
    files = sorted(recordings.glob("BITFINEX.*"))
    if not files:
        raise SystemExit(f"no BITFINEX recordings in {recordings}")
    config = infer_config(files, "bitfinex", None)
    config.authenticate = False
    frames = [(e.data, e.ts) for e in read_capture(files) if e.kind is CaptureKind.RECV]
    return config, frames


def synthetic_frames(updates: int, seed: int = 1) -> tuple[VenueConfig, list[tuple[bytes, int]]]:
    """A P0 book of 100 levels a side; ``updates`` level changes, each with its checksum."""
    rng = random.Random(seed)
    now = time.time_ns()
    bids = {round(100.0 - i * 0.01, 2): rng.randint(1, 500) / 100 for i in range(100)}
    asks = {round(100.01 + i * 0.01, 2): rng.randint(1, 500) / 100 for i in range(100)}
    seq = 0

    def frame(payload: object) -> tuple[bytes, int]:
        nonlocal seq
        seq += 1
        return msgspec.json.encode([1, payload, seq]), now

    frames = [
        (b'{"event":"info","version":2}', now),
        (b'{"event":"conf","status":"OK","flags":196608}', now),
        (b'{"event":"subscribed","channel":"book","chanId":1,"symbol":"tBTCUSD"}', now),
        frame([[p, 1, a] for p, a in bids.items()] + [[p, 1, -a] for p, a in asks.items()]),
    ]
    for _ in range(updates):
        side, sign = (bids, 1) if rng.random() < 0.5 else (asks, -1)
        price = rng.choice(list(side))
        if rng.random() < 0.2 and len(side) > 30:
            del side[price]
            frames.append(frame([price, 0, sign]))
        else:
            side[price] = rng.randint(1, 500) / 100
            frames.append(frame([price, 1, sign * side[price]]))
        seq += 1
        cs = [1, "cs", book_checksum(bids, asks), seq]
        frames.append((msgspec.json.encode(cs), now))
    config = VenueConfig("spot", ("tBTCUSD",), (Channel.BOOK,))
    return config, frames


def run(config: VenueConfig, frames: list[tuple[bytes, int]], repeats: int) -> tuple[float, int]:
    """Best frames/s (CPU time) over ``repeats`` passes; also the checksums verified a pass."""
    best = 0.0
    verified = 0
    for _ in range(repeats):
        protocol = BitfinexVenue(config)
        assert isinstance(protocol, BitfinexProtocol)
        receive = protocol.receive
        sink = RecordSink()
        start = time.thread_time()
        for data, ts in frames:
            receive(CONN, data, ts, sink)  # neither input has a frame to reject
            if len(sink) > 10_000:
                sink.drain()
        elapsed = time.thread_time() - start
        best = max(best, len(frames) / elapsed)
        assert protocol.market is not None
        verified = protocol.market.checksums_verified
        assert protocol.market.checksum_mismatches == 0
    return best, verified


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=Path, default=ROOT.parent / "shared" / "recordings")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--updates", type=int, default=20_000)
    args = parser.parse_args()
    config, frames = recording_frames(args.recordings)
    rate, _ = run(config, frames, args.repeats)
    print(f"recording BITFINEX: {len(frames)} frames, {rate:,.0f} frames/s per core")
    config, frames = synthetic_frames(args.updates)
    rate, verified = run(config, frames, max(1, args.repeats // 10))
    print(
        f"synthetic P0 book with checksums: {len(frames)} frames ({verified} checksums "
        f"verified), {rate:,.0f} frames/s per core"
    )


if __name__ == "__main__":
    main()
