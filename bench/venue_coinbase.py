"""CPU microbenchmark of the Coinbase protocol (``CoinbaseProtocol.receive``), no sockets.

* the real recording ``../shared/recordings/COINBASE.ws.28.0`` (level2 + ticker + matches of
  10 products), replayed whole through a fresh protocol per pass, with the recorded receive
  times (the protocol checks event times against them);
* generated frames per message type: ``l2update`` on a synced book, ``match`` with consecutive
  trade ids, ``ticker`` with the BBO sizes.

Figures are frames per second of CPU time of this thread (``time.thread_time``), i.e. per
core. Run: ``.venv/bin/python bench/venue_coinbase.py [seconds per case]``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hundi.exchanges.base import RecordSink, VenueConfig
from hundi.exchanges.coinbase import CoinbaseVenue
from hundi.exchanges.coinbase.protocol import LEVEL2, MATCHES, CoinbaseProtocol
from hundi.records import Channel

RECORDING = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "recordings" / "COINBASE.ws.28.0"
)
CHANNELS = (Channel.TRADES, Channel.TICKER, Channel.BBO, Channel.BOOK, Channel.EVENTS)
DRAIN_EVERY = 1024


def venue(products: list[str], options: dict[str, str] | None = None) -> CoinbaseProtocol:
    config = VenueConfig("spot", tuple(products), CHANNELS, options=options or {})
    config.authenticate = False
    return CoinbaseVenue(config)


def timed(run_once: Callable[[], int], seconds: float) -> tuple[int, float]:
    """Repeat ``run_once`` (returns frames handled) for ``seconds`` of thread CPU time."""
    frames = 0
    start = time.thread_time()
    while True:
        frames += run_once()
        used = time.thread_time() - start
        if used >= seconds:
            return frames, used


def recording_case(seconds: float) -> dict[str, Any] | None:
    if not RECORDING.exists():
        return None
    frames: list[tuple[bytes, int]] = []
    products: dict[str, None] = {}
    for line in RECORDING.read_bytes().splitlines():
        stamp, sep, body = line.partition(b": ")
        if not sep or not body.startswith(b"{") or b" <- " in stamp:
            if b" <- " in stamp:
                for product in json.loads(body).get("product_ids", []):
                    products[product] = None
            continue
        frames.append((body, int(float(stamp) * 1e9)))
    rejected = 0
    records = 0

    def run_once() -> int:
        nonlocal rejected, records
        protocol = venue(list(products), {"level2_channel": "level2"})
        sink = RecordSink()
        receive = protocol.receive
        for i, (body, recv_ns) in enumerate(frames):
            try:
                receive(LEVEL2, body, recv_ns, sink)
            except Exception:
                rejected += 1
            if i % DRAIN_EVERY == 0:
                records += len(sink)
                sink.drain()
        records += len(sink)
        return len(frames)

    handled, used = timed(run_once, seconds)
    return {"case": "recording COINBASE.ws.28.0", "frames": handled, "cpu_s": used,
            "frames_per_s": handled / used, "rejected": rejected, "records": records}  # fmt: skip


def generated_cases(seconds: float) -> list[dict[str, Any]]:
    now_ns = time.time_ns()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_ns // 10**9)) + ".123456Z"
    snapshot = json.dumps({"type": "snapshot", "product_id": "BTC-USD", "time": stamp,
        "bids": [[f"{50000 - i * 0.5:.2f}", "1.5"] for i in range(1000)],
        "asks": [[f"{50001 + i * 0.5:.2f}", "1.5"] for i in range(1000)]}).encode()  # fmt: skip
    updates = [
        json.dumps({"type": "l2update", "product_id": "BTC-USD", "time": stamp, "changes": [
            ["buy", f"{49990 - (i % 200) * 0.5:.2f}", f"{(i % 7) * 0.25:.2f}"],
            ["sell", f"{50010 + (i % 200) * 0.5:.2f}", f"{(i % 5) * 0.5:.2f}"]]}).encode()
        for i in range(4096)
    ]  # fmt: skip
    # tickers carry increasing sequences (a repeated one is a resend, filtered)
    ticker_template = (
        b'{"type":"ticker","sequence":%d,"product_id":"BTC-USD","price":"50000.5",'
        b'"open_24h":"49000","volume_24h":"1234.5","low_24h":"48000","high_24h":"51000",'
        b'"volume_30d":"99999","best_bid":"50000.00","best_bid_size":"0.5",'
        b'"best_ask":"50000.50","best_ask_size":"0.7","side":"buy","time":"%s","trade_id":%d,'
        b'"last_size":"0.01"}'
    )
    results = []
    book = venue(["BTC-USD"])
    sink = RecordSink()
    book.receive(LEVEL2, snapshot, now_ns, sink)

    def run_updates() -> int:
        for body in updates:
            book.receive(LEVEL2, body, now_ns, sink)
        sink.drain()
        return len(updates)

    trades = venue(["BTC-USD"])
    next_id = [1]

    def run_matches() -> int:
        first = next_id[0]
        for tid in range(first, first + 4096):
            body = (b'{"type":"match","trade_id":%d,"maker_order_id":"a","taker_order_id":"b",'
                    b'"side":"sell","size":"0.01","price":"50000.5","product_id":"BTC-USD",'
                    b'"sequence":%d,"time":"%s"}') % (tid, tid, stamp.encode())  # fmt: skip
            trades.receive(MATCHES, body, now_ns, sink)
        next_id[0] = first + 4096
        sink.drain()
        return 4096

    ticker = venue(["BTC-USD"])
    next_sequence = [1]

    def run_tickers() -> int:
        first = next_sequence[0]
        for seq in range(first, first + 4096):
            ticker.receive(MATCHES, ticker_template % (seq, stamp.encode(), seq), now_ns, sink)
        next_sequence[0] = first + 4096
        sink.drain()
        return 4096

    for case, run in (("l2update", run_updates), ("match", run_matches), ("ticker", run_tickers)):
        handled, used = timed(run, seconds)
        results.append({"case": f"generated {case}", "frames": handled, "cpu_s": used,
                        "frames_per_s": handled / used})  # fmt: skip
    return results


def main(seconds: float = 2.0) -> list[dict[str, Any]]:
    results = generated_cases(seconds)
    found = recording_case(seconds)
    if found is not None:
        results.insert(0, found)
    for r in results:
        extra = f"  rejected {r['rejected']}" if "rejected" in r else ""
        print(f"{r['case']:32s} {r['frames_per_s']:>12,.0f} frames/s per core{extra}")
    return results


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
