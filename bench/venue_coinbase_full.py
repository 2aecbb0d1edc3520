"""CPU microbenchmark of the Coinbase ``full`` protocol (``CoinbaseFullProtocol.receive``).

No recording of the ``full`` channel exists (``../shared/recordings/COINBASE.*`` holds level2,
ticker and matches), so the frames come from the simulator's order model
(:class:`hundi.simulator.coinbase.full.CoinbaseFullFeed` on the shared synthetic market):
received/open/match/change/done in the proportions the market's actions make. The protocol is
synced from the model's level-3 snapshot first (not timed), then every frame is received into a
sink drained every 1024 frames, as the collector does. Figures are frames per second of this
thread's CPU time (``time.thread_time``), so a busy machine does not distort them.

Run: ``.venv/bin/python bench/venue_coinbase_full.py [--steps N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from collections import Counter

import msgspec

from hundi.exchanges.base import RecordSink, RestResponse, VenueConfig
from hundi.exchanges.coinbase.full import FULL_CONN, CoinbaseFullProtocol
from hundi.exchanges.coinbase.full_auth import CoinbaseCredentials
from hundi.exchanges.credentials import Secret
from hundi.records import Channel
from hundi.simulator.coinbase.full import CoinbaseFullFeed
from hundi.simulator.market import SyntheticMarket

PRODUCTS = ("BTC-USD", "ETH-EUR")
DRAIN_EVERY = 1024
SECRET = base64.b64encode(b"bench").decode()
CREDS = CoinbaseCredentials(Secret("k"), Secret(SECRET), Secret("p"), "bench")


Truth = dict[str, dict[int, list[tuple[float, str, float]]]]


def generate(steps: int, seed: int = 1) -> tuple[dict[str, bytes], list[tuple[bytes, int]], Truth]:
    """(level-3 snapshot body per product, frames with their receive times, the model's final
    book per product)."""
    now = time.time_ns()
    market = SyntheticMarket(PRODUCTS, seed, now // 1_000_000, 10)
    feed = CoinbaseFullFeed({p: market.symbols[p] for p in PRODUCTS}, seed)
    snapshots = {p: feed.snapshot_body(p, now) for p in PRODUCTS}
    frames: list[tuple[bytes, int]] = []
    for _ in range(steps):
        now += 200_000
        frames.extend((frame, now) for _, frame in feed.on_step(market.step(), now))
    return snapshots, frames, {p: feed.book(p) for p in PRODUCTS}


def synced_protocol(snapshots: dict[str, bytes], start_ns: int) -> CoinbaseFullProtocol:
    config = VenueConfig(market="spot", symbols=PRODUCTS, channels=(Channel.BOOK_L3,))
    protocol = CoinbaseFullProtocol(config, credentials=CREDS)
    sink = RecordSink()
    ack = {"type": "subscriptions", "channels": [{"name": "full", "product_ids": PRODUCTS}]}
    protocol.receive(FULL_CONN, msgspec.json.encode(ack), start_ns, sink)
    for request in protocol.due_requests(start_ns):
        response = RestResponse(200, snapshots[request.key.removeprefix("full:")])
        protocol.receive_response(request, response, start_ns, sink)
    assert all(b.synced for b in protocol.books())
    return protocol


def run(steps: int, repeat: int) -> dict[str, object]:
    snapshots, frames, truth = generate(steps)
    kinds = Counter(msgspec.json.decode(f)["type"] for f, _ in frames)
    best = 0.0
    records = events = 0
    statuses: Counter[str] = Counter()
    books_equal = False
    for _ in range(repeat):
        protocol = synced_protocol(snapshots, frames[0][1])
        sink = RecordSink()
        receive = protocol.receive
        records = events = 0
        statuses = Counter()
        started = time.thread_time()
        for i, (frame, recv_ns) in enumerate(frames):
            statuses[receive(FULL_CONN, frame, recv_ns, sink).name.lower()] += 1
            if i % DRAIN_EVERY == 0:
                drained = sink.drain()
                records += len(drained.get(Channel.BOOK_L3, ()))
                events += len(drained.get(Channel.EVENTS, ()))
        elapsed = time.thread_time() - started
        drained = sink.drain()
        records += len(drained.get(Channel.BOOK_L3, ()))
        events += len(drained.get(Channel.EVENTS, ()))
        best = max(best, len(frames) / elapsed)
        assert all(b.synced for b in protocol.books())
        books_equal = all(_book(protocol, p) == _truth(truth[p]) for p in PRODUCTS)
    return {
        "source": "simulator order model (CoinbaseFullFeed)",
        "frames": len(frames),
        "records": records,
        "events": events,  # gaps/resyncs while timed: none expected
        "statuses": dict(statuses),
        "books_equal_model": books_equal,
        "kinds": dict(kinds),
        "frames_per_s_per_core": round(best),
    }


def _book(protocol: CoinbaseFullProtocol, product: str) -> list[tuple[int, float, str, float]]:
    book = protocol.state[product].book
    return [
        (side, price, o.order_id, round(o.size, 9))
        for side in (1, -1)
        for price in book.prices(side)
        for o in book.queue(side, price)
    ]


def _truth(sides: dict[int, list[tuple[float, str, float]]]) -> list[tuple[int, float, str, float]]:
    return [(side, p, o, round(z, 9)) for side in (1, -1) for p, o, z in sides[side]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="market actions to generate")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    args = parser.parse_args()
    print(json.dumps(run(args.steps, args.repeat), indent=2))


if __name__ == "__main__":
    main()
