"""CPU microbenchmarks of the collector's hot path, no sockets: protocol, columns, store.

* ``BinanceVenue.receive`` over pre-generated frames (simulator market, see ``frames.py``) and
  over the real recordings in ``../shared/recordings`` (looped), per message type;
* the same frames through ``ConnectionManager``'s per-frame callback (what the socket calls:
  stats, receive, accounting), to show what the manager adds;
* ``records.to_arrow`` per channel, and ``EmbeddedStore`` write + flush of mixed batches.

Run alone: ``.venv/bin/python bench/micro.py``.
"""

from __future__ import annotations

import gc
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from frames import CHANNEL_OF_KIND, KINDS, Generated, generate

from hundi.accounting import Accounting
from hundi.connection.client import PicowsClient
from hundi.connection.manager import ConnectionManager
from hundi.exchanges.base import RecordSink, RestResponse, VenueConfig
from hundi.exchanges.binance import BinanceVenue
from hundi.exchanges.binance.protocol import EXCHANGE_INFO_KEY
from hundi.records import Channel, Record, to_arrow
from hundi.simulator.binance.rules import BinanceVariant
from hundi.stores.embedded import EmbeddedStore

RECORDINGS = Path(__file__).resolve().parents[1] / ".." / "shared" / "recordings"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
DRAIN_EVERY = 1024  # frames between sink drains, as the collector checks its sink


def _venue(market: BinanceVariant, symbols: Sequence[str], kinds: Sequence[str]) -> Any:
    channels = tuple(dict.fromkeys(Channel(CHANNEL_OF_KIND[k]) for k in kinds))
    options = {"trade_stream": "trade"} if "trade" in kinds else {}
    return BinanceVenue(VenueConfig(market.value, tuple(symbols), channels, options=options))


def _sync_books(venue: Any, frames: list[bytes], gen: Generated, sink: RecordSink) -> int:
    """Feed diffs until every book is synced, answering its snapshot request from the
    generated snapshots; returns how many frames that took (they are not timed)."""
    used = 0
    now = time.time_ns()
    while venue.books() and not all(b.synced for b in venue.books()) and used < len(frames):
        now += 50_000_000  # REST requests are paced by the venue's clock: let it advance
        venue.receive(_conn_of(venue, frames[used]), frames[used], now, sink)
        used += 1
        for request in venue.due_requests(now):
            body = gen.snapshots.get(request.key) or _exchange_info(venue, gen.symbols, request.key)
            venue.receive_response(request, RestResponse(200, body), now, sink)
    return used


def _exchange_info(venue: Any, symbols: Sequence[str], key: str) -> bytes:
    """The start-up ``exchangeInfo`` answer: every configured symbol listed as trading."""
    if key != EXCHANGE_INFO_KEY:
        raise KeyError(f"bench has no answer for REST request {key!r}")
    usdm = venue.market.value == BinanceVariant.USDM.value
    listed = [
        {
            "symbol": native,
            "status": "TRADING",
            "baseAsset": native.removesuffix("USDT"),
            "quoteAsset": "USDT",
            **({"contractType": "PERPETUAL"} if usdm else {}),
        }
        for native in symbols
    ]
    return json.dumps({"symbols": listed}).encode()


def _conn_of(venue: Any, frame: bytes) -> str:
    """The connection a stream lives on (USD-M splits streams over /public and /market)."""
    specs = venue.connections()
    if len(specs) == 1:
        return str(specs[0].key)
    stream = frame[11 : frame.index(b'"', 11)].decode()
    for spec in specs:
        if any(stream.encode() in message for message in spec.subscribe):
            return str(spec.key)
    return str(specs[0].key)


def _timed_receive(
    make_deliver: Callable[[], Callable[[bytes], None]],
    frames: list[bytes],
    sink: RecordSink,
    seconds: float,
    loop: bool,
) -> tuple[int, int, float]:
    """(frames, records, seconds) of the fastest pass; passes repeat until ``seconds``.

    Each pass gets a fresh venue from ``make_deliver`` (untimed): trade ids and depth ids must
    advance, and a replayed id is rejected as a duplicate, as it would be live. The fastest
    pass is reported because the box is shared: slower passes measure the neighbours."""
    best: tuple[int, int, float] | None = None
    total = 0.0
    gc.collect()
    while True:
        deliver = make_deliver()
        n_frames = n_records = 0
        start = time.perf_counter()
        for i in range(0, len(frames), DRAIN_EVERY):
            for data in frames[i : i + DRAIN_EVERY]:
                deliver(data)
            n_frames += min(DRAIN_EVERY, len(frames) - i)
            n_records += len(sink)
            sink.drain()
        elapsed = time.perf_counter() - start
        total += elapsed
        if best is None or n_frames / elapsed > best[0] / best[2]:
            best = (n_frames, n_records, elapsed)
        if not loop or total >= seconds:
            break
    return best


def protocol_bench(
    market: BinanceVariant, gen: Generated, kind: str, seconds: float, via_manager: bool = False
) -> dict[str, Any]:
    """One message type through a fresh venue per pass; depth runs once (a long diff run)."""
    all_frames = gen.of_kind(kind)
    sink = RecordSink()
    accounting = Accounting()
    skip = 0
    venues: list[Any] = []

    def make_deliver() -> Callable[[bytes], None]:
        nonlocal skip
        venue = _venue(market, gen.symbols, [kind])
        venues.append(venue)
        if kind == "depth":
            skip = _sync_books(venue, all_frames, gen, sink)
            sink.drain()
        key = _conn_of(venue, all_frames[skip])
        if via_manager:
            manager = ConnectionManager(venue, sink, accounting, PicowsClient())
            deliver_one = manager._deliver  # the socket callback's body (private, bench only)

            def deliver(data: bytes) -> None:
                deliver_one(key, data, time.time_ns())

            return deliver
        receive, count, time_ns = venue.receive, accounting.count, time.time_ns

        def deliver_plain(data: bytes) -> None:
            count(receive(key, data, time_ns(), sink))

        return deliver_plain

    frames = all_frames
    if kind == "depth":  # sync once up front so the timed pass starts on a live book
        deliver = make_deliver()
        frames = all_frames[skip:]

        def make_deliver_again() -> Callable[[bytes], None]:
            return deliver

        n, records, elapsed = _timed_receive(make_deliver_again, frames, sink, seconds, False)
    else:
        n, records, elapsed = _timed_receive(make_deliver, frames, sink, seconds, True)
    return {
        "source": "generated",
        "market": market.value,
        "kind": kind,
        "path": "manager._deliver" if via_manager else "venue.receive",
        "frames": n,
        "records": records,
        "seconds": round(elapsed, 3),
        "frames_per_s": round(n / elapsed),
        "records_per_s": round(records / elapsed),
        "avg_frame_bytes": round(sum(map(len, frames)) / max(1, len(frames))),
        "unsynced_books": sum(1 for b in venues[-1].books() if not b.synced),
        "rejected": accounting.rejected_total,
    }


def recordings_bench(seconds: float) -> list[dict[str, Any]]:
    """The real captured Binance frames, looped per stream type (stateless types only)."""
    results = []
    for name, market in (
        ("BINANCE.ws.1.0", BinanceVariant.SPOT),
        ("BINANCE_FUTURES.ws.1.0", BinanceVariant.USDM),
    ):
        path = RECORDINGS / name
        if not path.exists():
            continue
        by_kind: dict[str, list[bytes]] = {}
        symbols: dict[str, None] = {}
        recv_ns: dict[bytes, int] = {}  # the recorded receive time: the venue checks event times
        for line in path.read_bytes().splitlines():
            stamp, sep, body = line.partition(b": ")
            if not sep or not body.startswith(b'{"stream"'):
                continue
            recv_ns[body] = int(float(stamp) * 1e9)
            stream = body[11 : body.index(b'"', 11)].decode()
            symbol, _, suffix = stream.partition("@")
            kind = {"aggTrade": "aggTrade", "bookTicker": "bookTicker", "kline_1m": "kline"}.get(
                suffix
            )
            if kind is None:
                continue
            symbols[symbol.upper()] = None
            by_kind.setdefault(kind, []).append(body)
        for kind, frames in by_kind.items():
            if len(frames) < 50:
                continue  # too few to time (e.g. 2 spot aggTrades in the recording)
            sink = RecordSink()
            accounting = Accounting()
            kind_symbols = list(symbols)

            def make_deliver(
                kind: str = kind, frames: list[bytes] = frames, sink: RecordSink = sink,
                accounting: Accounting = accounting, kind_symbols: list[str] = kind_symbols,
                market: BinanceVariant = market, recv_ns: dict[bytes, int] = recv_ns,
            ) -> Callable[[bytes], None]:  # fmt: skip
                venue = _venue(market, kind_symbols, [kind])
                receive, count = venue.receive, accounting.count
                conn = {f: _conn_of(venue, f) for f in frames}

                def deliver(data: bytes) -> None:
                    count(receive(conn[data], data, recv_ns[data], sink))

                return deliver

            n, records, elapsed = _timed_receive(make_deliver, frames, sink, seconds, loop=True)
            results.append({
                "source": f"recording {name}",
                "market": market.value,
                "kind": kind,
                "path": "venue.receive",
                "frames": n,
                "records": records,
                "seconds": round(elapsed, 3),
                "frames_per_s": round(n / elapsed),
                "records_per_s": round(records / elapsed),
                "avg_frame_bytes": round(sum(map(len, frames)) / len(frames)),
                "unsynced_books": 0,
                "rejected": accounting.rejected_total,
            })  # fmt: skip
    return results


def records_of(market: BinanceVariant, gen: Generated) -> dict[Channel, list[Record]]:
    """Every generated frame through one venue: the records a collector would store."""
    kinds = sorted({k for k, _ in gen.frames})
    venue = _venue(market, gen.symbols, kinds)
    sink = RecordSink()
    frames = [data for _, data in gen.frames]
    depth = gen.of_kind("depth")
    if depth:
        _sync_books(venue, depth, gen, sink)
    for data in frames:
        venue.receive(_conn_of(venue, data), data, time.time_ns(), sink)
    return sink.drain()


def arrow_bench(records: dict[Channel, list[Record]], seconds: float) -> list[dict[str, Any]]:
    """``to_arrow`` per channel on batches of up to 50k records (a collector flush)."""
    results = []
    for channel, recs in records.items():
        if len(recs) < 1_000:
            continue  # a handful of events: nothing to time
        batch = recs[:50_000]
        n = 0
        gc.collect()
        start = time.perf_counter()
        while True:
            to_arrow(channel, batch)
            n += len(batch)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        results.append({
            "channel": channel.value,
            "batch": len(batch),
            "records_per_s": round(n / elapsed),
        })  # fmt: skip
    return results


def store_bench(
    records: dict[Channel, list[Record]], seconds: float, *, fsync: bool
) -> dict[str, Any]:
    """Mixed batches (every channel) written and flushed into a fresh embedded store."""
    batch = {c: r[:20_000] for c, r in records.items()}
    per_batch = sum(len(r) for r in batch.values())
    with tempfile.TemporaryDirectory(prefix="hundi-bench-store-") as tmp:
        store = EmbeddedStore(tmp, fsync=fsync)
        n = flushes = 0
        gc.collect()
        start = time.perf_counter()
        while True:
            store.write(batch)
            store.flush()
            n += per_batch
            flushes += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        store.close()
        files = sum(1 for _ in Path(tmp).rglob("*.parquet"))
    return {
        "fsync": fsync,
        "records_per_flush": per_batch,
        "flushes": flushes,
        "records_per_s": round(n / elapsed),
        "flush_ms": round(1000 * elapsed / flushes, 1),
        "files": files,
    }


def run_all(seconds: float = 1.0, log: Callable[[str], None] = print) -> dict[str, Any]:
    log("microbench: generating frames from the simulator market")
    protocol: list[dict[str, Any]] = []
    mixed: dict[Channel, list[Record]] = {}
    for market in (BinanceVariant.SPOT, BinanceVariant.USDM):
        gen = generate(market, SYMBOLS, 60_000, kinds=KINDS, slow_every=50)
        depth = generate(market, SYMBOLS, 2_000, kinds=("depth",))
        gen.frames.extend(depth.frames)  # a long continuous diff run (kept apart by kind)
        gen.snapshots = depth.snapshots
        for kind in ("aggTrade", "trade", "bookTicker", "kline", "ticker"):
            protocol.append(protocol_bench(market, gen, kind, seconds))
        protocol.append(protocol_bench(market, depth, "depth", seconds))
        protocol.append(protocol_bench(market, gen, "aggTrade", seconds, via_manager=True))
        protocol.append(protocol_bench(market, gen, "bookTicker", seconds, via_manager=True))
        if market is BinanceVariant.SPOT:
            feed = generate(market, SYMBOLS, 120_000, kinds=("aggTrade", "bookTicker", "depth"))
            mixed = records_of(market, feed)
        log(f"microbench: protocol {market.value} done")
    protocol.extend(recordings_bench(seconds / 2))
    log("microbench: to_arrow and store")
    arrow = arrow_bench(mixed, seconds / 2)
    store = [store_bench(mixed, seconds, fsync=True), store_bench(mixed, seconds, fsync=False)]
    return {"protocol": protocol, "to_arrow": arrow, "store": store}


if __name__ == "__main__":
    import json

    print(json.dumps(run_all(), indent=1))
