"""Futures derivatives data of the simulator (USD-M and COIN-M): ``markPrice`` and
``forceOrder`` streams and REST ``openInterest``, on the shared market, with ground truth.

* ``<symbol>@markPrice`` every 3 s, ``<symbol>@markPrice@1s`` every second: the mark is the
  market's mid price, the index a few ticks off; perpetuals carry a funding rate and the next
  8-hourly funding time, deliveries (``BTCUSD_260626``) ``"r":""`` and ``"T":0`` as COIN-M does.
* ``<symbol>@forceOrder``: now and then a liquidation order near the touch, at most one per
  symbol per 1000 ms (Binance's snapshot rule).
* ``GET /fapi/v1/openInterest`` / ``/dapi/v1/openInterest``: a slowly drifting open interest
  (weight 1; -1102 without a symbol, -1121 for an unknown one).

Everything that reached a subscriber (and every REST answer) is kept for ``stats()``:
``derivatives`` = {SYMBOL: {``mark_prices``: [[E, p, i, r, T], ...], ``liquidations``:
[[T, S, p, q], ...], ``open_interest``: [[time, oi], ...]}} (texts as sent).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from aiohttp import web

from hundi.simulator.binance.fanout import FanOut
from hundi.simulator.binance.frames import FrameEncoder
from hundi.simulator.binance.rest import MISSING_SYMBOL, BinanceRest
from hundi.simulator.binance.rules import OPEN_INTEREST_WEIGHT, BinanceVariant
from hundi.simulator.market import SyntheticMarket

FUNDING_PERIOD_MS = 8 * 3600 * 1000
LIQUIDATION_PERIOD_S = 1.0  # a symbol's liquidation chance comes at most once a second
LIQUIDATION_CHANCE = 0.5
TRUTH_LIMIT = 100_000  # ground-truth rows kept per symbol and kind (bounded memory)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def is_perpetual(symbol: str) -> bool:
    """``BTCUSDT`` and ``BTCUSD_PERP`` fund; ``BTCUSD_260626`` (a delivery) does not."""
    _, sep, suffix = symbol.partition("_")
    return not sep or suffix == "PERP"


class DerivativesFeed:
    """Publishes mark prices and liquidations on a clock and answers ``openInterest``."""

    def __init__(
        self,
        variant: BinanceVariant,
        seed: int,
        market: SyntheticMarket,
        fanout: FanOut,
        encoders: dict[str, FrameEncoder],
    ) -> None:
        self.variant = variant
        self.coinm = variant is BinanceVariant.COINM
        self.market = market
        self.fanout = fanout
        self.encoders = encoders
        self.rng = random.Random(f"{seed}:derivatives")
        self.open_interest = {s: self.rng.randrange(10_000, 1_000_000) for s in market.symbols}
        self.truth: dict[str, dict[str, list[list[Any]]]] = {
            s: {"mark_prices": [], "liquidations": [], "open_interest": []} for s in market.symbols
        }
        self._mark_due = {"markPrice@1s": 0.0, "markPrice": 0.0}
        self._liquidation_due = 0.0

    def _keep(self, symbol: str, kind: str, row: list[Any]) -> None:
        rows = self.truth[symbol][kind]
        if len(rows) < TRUTH_LIMIT:
            rows.append(row)

    # -- streams ----------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            self.tick(time.monotonic(), _now_ms())
            await asyncio.sleep(0.05)

    def tick(self, now: float, now_ms: int) -> None:
        sent = False
        for suffix, period in (("markPrice@1s", 1.0), ("markPrice", 3.0)):
            if now >= self._mark_due[suffix]:
                self._mark_due[suffix] = now + period
                sent |= self._marks(suffix, now_ms)
        if now >= self._liquidation_due:
            self._liquidation_due = now + LIQUIDATION_PERIOD_S
            sent |= self._liquidations(now_ms)
        if sent:
            self.fanout.flush_all()

    def _marks(self, suffix: str, now_ms: int) -> bool:
        sent = False
        subs = self.fanout.subs
        for symbol, book in self.market.symbols.items():
            stream = f"{symbol.lower()}@{suffix}"
            if stream not in subs:
                continue
            enc = self.encoders[symbol]
            bid, _, ask, _ = book.top
            mark_ticks = (bid + ask) // 2
            index_ticks = max(1, mark_ticks + self.rng.randint(-3, 3))
            mark, index = enc.price(mark_ticks), enc.price(index_ticks)
            if is_perpetual(symbol):
                rate = f"{0.0001 + self.rng.randint(-50, 50) * 1e-6:.8f}"
                next_funding = (now_ms // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS
            else:
                rate, next_funding = "", 0
            head = f'"e":"markPriceUpdate","E":{now_ms},"s":"{symbol}","p":"{mark}"'
            if self.coinm:  # COIN-M lists P before i
                body = f'{head},"P":"{index}","i":"{index}","r":"{rate}","T":{next_funding}'
            else:
                body = f'{head},"i":"{index}","P":"{index}","r":"{rate}","T":{next_funding}'
            self.fanout.publish(stream, f"{{{body}}}".encode(), -1, -1)
            self._keep(symbol, "mark_prices", [now_ms, mark, index, rate, next_funding])
            sent = True
        return sent

    def _liquidations(self, now_ms: int) -> bool:
        sent = False
        subs = self.fanout.subs
        for symbol, book in self.market.symbols.items():
            stream = f"{symbol.lower()}@forceOrder"
            if stream not in subs or self.rng.random() >= LIQUIDATION_CHANCE:
                continue
            enc = self.encoders[symbol]
            bid, _, ask, _ = book.top
            side = "SELL" if self.rng.random() < 0.5 else "BUY"
            ticks = (
                bid - self.rng.randint(1, 10) if side == "SELL" else ask + self.rng.randint(1, 10)
            )
            price = enc.price(max(1, ticks))
            lots = self.rng.randint(1, 50) * (1 if self.coinm else 10 ** max(0, enc.qd - 2))
            qty = enc.qty(lots)
            pair = f',"ps":"{symbol.partition("_")[0]}"' if self.coinm else ""
            order = (
                f'"s":"{symbol}"{pair},"S":"{side}","o":"LIMIT","f":"IOC","q":"{qty}",'
                f'"p":"{price}","ap":"{price}","X":"FILLED","l":"{qty}","z":"{qty}",'
                f'"T":{now_ms}'
            )
            payload = f'{{"e":"forceOrder","E":{now_ms + 1},"o":{{{order}}}}}'.encode()
            self.fanout.publish(stream, payload, -1, -1)
            self._keep(symbol, "liquidations", [now_ms, side, price, qty])
            sent = True
        return sent

    # -- REST -------------------------------------------------------------------------------
    def install(self, app: web.Application, root: str, rest: BinanceRest) -> None:
        async def open_interest(request: web.Request) -> web.Response:
            symbol = request.query.get("symbol", "")
            if not symbol:
                return rest.answer({"code": -1102, "msg": MISSING_SYMBOL}, 1, 400)
            if symbol not in self.open_interest:
                return rest.answer({"code": -1121, "msg": "Invalid symbol."}, 1, 400)
            oi = self.open_interest[symbol] = max(
                1, self.open_interest[symbol] + self.rng.randint(-500, 500)
            )
            now_ms = _now_ms()
            text = self.encoders[symbol].qty(oi)
            self._keep(symbol, "open_interest", [now_ms, text])
            if self.coinm:
                contract = "PERPETUAL" if is_perpetual(symbol) else "CURRENT_QUARTER"
                body = {"symbol": symbol, "pair": symbol.partition("_")[0], "openInterest": text,
                        "contractType": contract, "time": now_ms}  # fmt: skip
            else:
                body = {"openInterest": text, "symbol": symbol, "time": now_ms}
            return rest.answer(body, OPEN_INTEREST_WEIGHT)

        app.router.add_get(f"{root}/openInterest", open_interest)
