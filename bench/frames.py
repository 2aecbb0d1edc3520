"""Pre-generated Binance combined-stream frames from the simulator's own synthetic market.

Why: the CPU microbench and the replay scenario need many realistic, *consistent* frames
(continuous depth ids that sync against a matching REST snapshot) without a socket in the way.
The simulator's :class:`SymbolMarket` and :class:`FrameEncoder` are used as they are, so the
bytes are what ``hundi simulate binance`` sends.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from hundi.simulator.binance.frames import FrameEncoder
from hundi.simulator.binance.rules import BinanceVariant
from hundi.simulator.market import SymbolMarket, SymbolSpec

WARMUP_STEPS = 500  # as the simulator: the book has some history before frames start
KINDS = ("aggTrade", "trade", "bookTicker", "depth", "kline", "ticker")
STREAM_SUFFIX = {
    "aggTrade": "aggTrade",
    "trade": "trade",
    "bookTicker": "bookTicker",
    "depth": "depth@100ms",
    "kline": "kline_1m",
    "ticker": "ticker",
}
CHANNEL_OF_KIND = {
    "aggTrade": "trades",
    "trade": "trades",
    "bookTicker": "bbo",
    "depth": "book",
    "kline": "candles",
    "ticker": "ticker",
}


@dataclass(slots=True)
class Generated:
    """Frames in generation order, each tagged with its stream kind, plus REST snapshots."""

    market: BinanceVariant
    symbols: tuple[str, ...]
    frames: list[tuple[str, bytes]] = field(default_factory=list)  # (kind, envelope bytes)
    snapshots: dict[str, bytes] = field(default_factory=dict)  # native symbol → REST body
    start_ms: int = 0
    steps: int = 0

    def of_kind(self, kind: str) -> list[bytes]:
        return [data for k, data in self.frames if k == kind]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for kind, _ in self.frames:
            out[kind] = out.get(kind, 0) + 1
        return out


def generate(
    market: BinanceVariant,
    symbols: tuple[str, ...],
    n_frames: int,
    *,
    kinds: tuple[str, ...] = ("aggTrade", "bookTicker", "depth"),
    depth_every: int = 200,
    slow_every: int = 2_000,
    seed: int = 1,
    start_ms: int | None = None,
) -> Generated:
    """About ``n_frames`` frames of ``kinds`` for ``symbols``, interleaved as a feed would be.

    Per symbol a depth diff is cut every ``depth_every`` market steps (at full speed the
    simulator folds a few hundred steps into each 100 ms diff), and kline/ticker updates come
    every ``slow_every`` steps. Event times advance 1 ms per step from ``start_ms`` (default
    now) so they stay plausible; a test that receives them at a fixed time passes its own.
    """
    now_ms = time.time_ns() // 1_000_000 if start_ms is None else start_ms
    out = Generated(market=market, symbols=symbols, start_ms=now_ms)
    rng = random.Random(seed)
    markets: list[tuple[SymbolMarket, FrameEncoder, str, int]] = []
    for symbol in symbols:
        spec = SymbolSpec.derive(symbol, random.Random(f"{seed}:{symbol}:spec"))
        sm = SymbolMarket(spec, seed, now_ms)
        for _ in range(WARMUP_STEPS):
            sm.step()
        sm.events.clear()
        sm.add_channel(100)
        enc = FrameEncoder(spec, market)
        if "kline" in kinds:
            sm.kline("1m")
        markets.append((sm, enc, symbol.lower(), 0))
    want = set(kinds)
    symbol_of = list(symbols)
    frames = out.frames
    steps = [0] * len(markets)
    spot = market is BinanceVariant.SPOT

    def emit(kind: str, lower: str, payload: bytes) -> None:
        stream = f"{lower}@{STREAM_SUFFIX[kind]}"
        frames.append((kind, b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"))

    while len(frames) < n_frames:
        i = rng.randrange(len(markets))
        sm, enc, lower, _ = markets[i]
        now_ms += 1
        sm.now_ms = now_ms
        sm.step()
        steps[i] += 1
        for event in sm.events:
            if event[0] == "A":
                _, agg_id, price, qty, first, last, maker, fills = event
                if "aggTrade" in want:
                    emit("aggTrade", lower, enc.agg_trade(now_ms, agg_id, price, qty, first, last,
                                                          now_ms, maker))  # fmt: skip
                if "trade" in want:
                    for tid, fill_qty in fills if spot else [(agg_id, qty)]:
                        emit("trade", lower, enc.trade(now_ms, tid, price, fill_qty, now_ms, maker))
            elif "bookTicker" in want:
                _, uid, bid, bid_qty, ask, ask_qty = event
                emit("bookTicker", lower, enc.book_ticker(now_ms, uid, bid, bid_qty, ask, ask_qty))
        sm.events.clear()
        if steps[i] == depth_every // 2:
            # Mid-interval, as a live REST call lands: the first diff straddles the snapshot
            # (spot: U <= lastUpdateId + 1 <= u; USD-M: U <= lastUpdateId <= u).
            last_id, bids, asks = sm.snapshot()
            out.snapshots[symbol_of[i]] = enc.depth_snapshot(last_id, bids, asks, 1000, now_ms)
        if "depth" in want and steps[i] % depth_every == 0:
            taken = sm.channels[0].take()
            if taken is not None:
                first, last, prev, bids, asks = taken
                emit("depth", lower, enc.depth_update(now_ms, first, last, prev, bids, asks))
        if steps[i] % slow_every == 0:
            if "kline" in want:
                emit("kline", lower, enc.kline(now_ms, sm.kline("1m"), closed=False))
            if "ticker" in want:
                emit("ticker", lower, enc.ticker(now_ms, sm.stats, *sm.top))
    out.steps = sum(steps)
    return out


def write_recording(gen: Generated, directory: Path, name: str = "BENCH") -> list[Path]:
    """The frames as files in the ``../shared/recordings`` line format, for ``--replay``.

    ``NAME.ws.1.0`` holds the frames (1 µs apart), ``NAME.http.0.0`` the REST snapshots, dated
    before the first frame so the replayed REST endpoint serves them.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ws = directory / f"{name}.ws.1.0"
    http = directory / f"{name}.http.0.0"
    t0_us = gen.start_ms * 1000
    rest_host = (
        "https://api.binance.com"
        if gen.market is BinanceVariant.SPOT
        else "https://fapi.binance.com"
    )
    rest_path = "/api/v3/depth" if gen.market is BinanceVariant.SPOT else "/fapi/v1/depth"
    with ws.open("wb") as f:
        f.write(b"wss://bench/stream <-> %d.%06d\n" % divmod(t0_us, 1_000_000))
        for n, (_, data) in enumerate(gen.frames, 1):
            f.write(b"%d.%06d: " % divmod(t0_us + n, 1_000_000) + data + b"\n")
    with http.open("wb") as f:
        for symbol, body in gen.snapshots.items():
            url = f"{rest_host}{rest_path}?symbol={symbol}&limit=1000"
            f.write(url.encode() + b" -> %d.%06d: " % divmod(t0_us, 1_000_000) + body + b"\n")
    return [ws, http]
