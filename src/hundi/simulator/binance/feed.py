"""The synthetic feed: drives the shared market at the configured rate and publishes what it
does as Binance stream frames (aggTrade, trade, bookTicker, diff depth, kline, 24 h ticker)."""

from __future__ import annotations

import asyncio
import time

from hundi.simulator.binance.config import SimulatorConfig
from hundi.simulator.binance.fanout import FanOut
from hundi.simulator.binance.faults import FaultInjector
from hundi.simulator.binance.frames import FrameEncoder
from hundi.simulator.binance.rules import BinanceVariant
from hundi.simulator.binance.streams import DEFAULT_DEPTH_MS, StreamName
from hundi.simulator.market import Kline, SymbolMarket, SyntheticMarket

MAX_BATCH_STEPS = 500  # market actions between two flushes when running flat out
KLINE_PUSH_MS = {"1s": 1000}  # every other interval pushes every 2 s
TICKER_PUSH_MS = 1000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class BinanceFeed:
    """One task (:meth:`run`) steps the market and fans the frames out; timers push the diffs,
    candles and tickers Binance sends on a clock."""

    def __init__(
        self,
        config: SimulatorConfig,
        market: SyntheticMarket,
        fanout: FanOut,
        injector: FaultInjector,
    ) -> None:
        self.config = config
        self.variant: BinanceVariant = config.market
        self.market = market
        self.fanout = fanout
        self.injector = injector
        self.encoders = {
            symbol: FrameEncoder(m.spec, self.variant) for symbol, m in market.symbols.items()
        }
        self.depth_names: dict[tuple[str, int], list[str]] = {}  # (symbol, speed) -> streams
        self._depth_due: dict[int, float] = {}  # speed ms -> next flush (monotonic)
        self._kline_due: dict[str, float] = {}
        self._ticker_due = 0.0
        self.flat_out = config.rate == 0 or injector.flood
        self.generated = 0  # stream messages produced (sent or not)
        self.steps = 0  # market actions
        self.paused = False  # True: no market action (tests compare final books)
        self.ensure_depth_speed(config.depth_interval_ms)

    def ensure_depth_speed(self, speed_ms: int) -> None:
        if not self.market.add_depth_speed(speed_ms):
            return
        self._depth_due[speed_ms] = time.monotonic() + speed_ms / 1000
        default = DEFAULT_DEPTH_MS[self.variant]
        for symbol in self.market.symbols:
            names = [f"{symbol.lower()}@depth@{speed_ms}ms"]
            if speed_ms == default:
                names.append(f"{symbol.lower()}@depth")
            self.depth_names[(symbol, speed_ms)] = names

    def ensure_stream(self, stream: StreamName) -> None:
        """Start producing what a new subscription needs (a diff speed, a candle interval)."""
        market = self.market.symbols.get(stream.symbol)
        if market is None:
            return
        if stream.kind == "depth":
            self.ensure_depth_speed(stream.depth_ms)
        elif stream.kind == "kline":
            market.kline(stream.interval)
            self._kline_due.setdefault(
                stream.interval, time.monotonic() + KLINE_PUSH_MS.get(stream.interval, 2000) / 1000
            )

    async def run(self) -> None:
        rate = self.config.rate
        start = time.monotonic()
        market = self.market
        markets = market.symbols
        flush_all = self.fanout.flush_all
        while True:
            now = time.monotonic()
            now_ms = _now_ms()
            for symbol_market in markets.values():
                symbol_market.now_ms = now_ms
                for k in symbol_market.roll_klines(now_ms):
                    self._emit_kline(symbol_market, k, now_ms, closed=True)
            budget = MAX_BATCH_STEPS
            if not self.flat_out:
                budget = min(MAX_BATCH_STEPS, int((now - start) * rate) - self.generated)
            if self.paused:
                budget = 0  # the market stands still; diffs already folded still go out
            steps_left = 4 * MAX_BATCH_STEPS  # actions that change no stream still take time
            while budget > 0 and steps_left > 0:
                steps_left -= 1
                stepped = market.step()
                if stepped.events:
                    produced = self._emit_events(stepped, now_ms)
                    self.generated += produced
                    budget -= produced
            self.steps += 4 * MAX_BATCH_STEPS - steps_left
            self._timers(now, now_ms)
            flush_all()
            if self.flat_out:
                await asyncio.sleep(0)
            else:
                deficit = self.generated - (time.monotonic() - start) * rate
                await asyncio.sleep(min(0.01, max(0.001, deficit / rate)))

    def _emit_events(self, market: SymbolMarket, now_ms: int) -> int:
        """Turn the market's new events into frames; returns how many messages they make."""
        symbol = market.spec.symbol
        enc = self.encoders[symbol]
        lower = symbol.lower()
        produced = 0
        spot = self.variant is BinanceVariant.SPOT
        history = self.market.trades[symbol]
        subs = self.fanout.subs
        publish = self.fanout.publish
        trade_gaps = self.injector.trade_gap_armed
        for event in market.events:
            if event[0] == "A":
                _, agg_id, price, qty, first, last, maker, fills = event
                history.append((agg_id, price, qty, first, last, now_ms, maker))
                stream = f"{lower}@aggTrade"
                if stream in subs and symbol in trade_gaps:
                    trade_gaps.discard(symbol)
                    self.injector.log.record(
                        "gap",
                        symbol=symbol,
                        stream=stream,
                        first_id=agg_id,
                        last_id=agg_id,
                        detail="aggTrade frame not sent",
                    )
                elif stream in subs:
                    payload = enc.agg_trade(now_ms, agg_id, price, qty, first, last, now_ms, maker)
                    publish(stream, payload, agg_id, agg_id)
                produced += 1
                if spot:
                    trade_stream = f"{lower}@trade"
                    if trade_stream in subs:
                        for tid, fill_qty in fills:
                            payload = enc.trade(now_ms, tid, price, fill_qty, now_ms, maker)
                            publish(trade_stream, payload, tid, tid)
                    produced += len(fills)
            else:
                _, uid, bid, bid_qty, ask, ask_qty = event
                stream = f"{lower}@bookTicker"
                if stream in subs:
                    payload = enc.book_ticker(now_ms, uid, bid, bid_qty, ask, ask_qty)
                    publish(stream, payload, -1, -1)
                produced += 1
        market.events.clear()
        return produced

    def _timers(self, now: float, now_ms: int) -> None:
        for speed, due in list(self._depth_due.items()):
            if now >= due:
                self._depth_due[speed] = max(due + speed / 1000, now)
                self._flush_depth(speed, now_ms)
        for interval, due in list(self._kline_due.items()):
            if now >= due:
                self._kline_due[interval] = max(due + KLINE_PUSH_MS.get(interval, 2000) / 1000, now)
                for market in self.market.symbols.values():
                    k = market.klines.get(interval)
                    if k is not None:
                        self._emit_kline(market, k, now_ms, closed=False)
        if now >= self._ticker_due:
            self._ticker_due = now + TICKER_PUSH_MS / 1000
            for symbol, market in self.market.symbols.items():
                stream = f"{symbol.lower()}@ticker"
                if stream in self.fanout.subs:
                    payload = self.encoders[symbol].ticker(now_ms, market.stats, *market.top)
                    self.fanout.publish(stream, payload, -1, -1)
        self.injector.stream_faults(now, self.market.order, self.depth_names)

    def _emit_kline(self, market: SymbolMarket, k: Kline, now_ms: int, closed: bool) -> None:
        symbol = market.spec.symbol
        stream = f"{symbol.lower()}@kline_{k.interval}"
        if stream in self.fanout.subs:
            self.fanout.publish(stream, self.encoders[symbol].kline(now_ms, k, closed), -1, -1)

    def _flush_depth(self, speed: int, now_ms: int) -> None:
        base = speed == self.config.depth_interval_ms
        subs = self.fanout.subs
        gaps = self.injector.gap_armed
        for symbol, diff in self.market.take_depth(speed):
            first, last, prev, bids, asks = diff
            if base:
                self.generated += 1
                self.market.publish_depth(symbol, diff)
            names = self.depth_names[(symbol, speed)]
            if (symbol, speed) in gaps:
                gaps.discard((symbol, speed))
                self.injector.log.record(
                    "gap",
                    symbol=symbol,
                    stream=names[0],
                    first_id=first,
                    last_id=last,
                    detail="depth frame not sent",
                )
                continue
            if not any(name in subs for name in names):
                continue
            payload = self.encoders[symbol].depth_update(now_ms, first, last, prev, bids, asks)
            for name in names:
                self.fanout.publish(name, payload, first, last)
