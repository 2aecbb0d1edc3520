"""Binance's REST endpoints the collector uses: ``depth``, ``aggTrades``, ``exchangeInfo``,
``ping`` and ``time``, with request weights, ``X-MBX-USED-WEIGHT-1M`` and Binance's errors.

Answers come from the shared market (the published book, the recent trades), or from the
capture when replaying.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from hundi.simulator.binance.config import SimulatorConfig
from hundi.simulator.binance.faults import FaultInjector
from hundi.simulator.binance.frames import FrameEncoder
from hundi.simulator.binance.replay import ReplayData
from hundi.simulator.binance.rules import (
    AGG_TRADES_WEIGHT,
    EXCHANGE_INFO_WEIGHT,
    FUTURES,
    USDM_DEPTH_LIMITS,
    BinanceVariant,
    depth_weight,
)
from hundi.simulator.market import SyntheticMarket

QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY")
MISSING_SYMBOL = "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
BAD_LIMIT_CHARS = "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."
BAD_LIMIT = "Data sent for parameter 'limit' is not valid."
TOO_MANY_REQUESTS = (
    "Too many requests; please use the websocket for live updates to avoid polling the API."
)

_encode = msgspec.json.encode


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class BinanceRest:
    """The REST handlers; ``market`` and ``encoders`` for a synthetic run, ``replay`` for a
    replay (it answers with the captured bodies)."""

    def __init__(
        self,
        config: SimulatorConfig,
        injector: FaultInjector,
        market: SyntheticMarket | None,
        encoders: dict[str, FrameEncoder],
        replay: ReplayData | None,
    ) -> None:
        self.config = config
        self.variant: BinanceVariant = config.market
        self.injector = injector
        self.market = market
        self.encoders = encoders
        self.replay = replay
        self._weights: deque[tuple[float, int]] = deque()
        self.requests = 0

    def install(self, app: web.Application, root: str) -> None:
        """The endpoints under ``root`` (``/api/v3`` or ``/fapi/v1``)."""
        app.router.add_get(f"{root}/depth", self._depth)
        app.router.add_get(f"{root}/exchangeInfo", self._exchange_info)
        app.router.add_get(f"{root}/aggTrades", self._agg_trades)
        app.router.add_get(f"{root}/ping", self._ping)
        app.router.add_get(f"{root}/time", self._time)

    def _used_weight(self, add: int) -> int:
        now = time.monotonic()
        weights = self._weights
        while weights and now - weights[0][0] > 60:
            weights.popleft()
        weights.append((now, add))
        return sum(w for _, w in weights)

    def _answer(
        self,
        body: bytes | dict[str, Any],
        weight: int,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        self.requests += 1
        used = self._used_weight(weight)
        all_headers = {"X-MBX-USED-WEIGHT-1M": str(used), "Content-Type": "application/json"}
        if used > self.config.effective_rest_weight and status == 200:
            status = 429
            body = {
                "code": -1003,
                "msg": "Too many requests; current limit of IP is "
                f"{self.config.effective_rest_weight} requests per minute.",
            }
            all_headers["Retry-After"] = "60"
        all_headers.update(headers or {})
        data = body if isinstance(body, bytes) else _encode(body)
        return web.Response(body=data, status=status, headers=all_headers)

    def answer(self, body: bytes | dict[str, Any], weight: int, status: int = 200) -> web.Response:
        """An answer counted against the weight budget (endpoints served by other modules)."""
        return self._answer(body, weight, status)

    async def _ping(self, request: web.Request) -> web.Response:
        return self._answer(b"{}", 1)

    async def _time(self, request: web.Request) -> web.Response:
        return self._answer({"serverTime": _now_ms()}, 1)

    async def _depth(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        if not symbol:
            return self._answer({"code": -1102, "msg": MISSING_SYMBOL}, 1, 400)
        futures = self.variant in FUTURES
        raw_limit = request.query.get("limit", "500" if futures else "100")
        if not raw_limit.isdigit():
            return self._answer({"code": -1100, "msg": BAD_LIMIT_CHARS}, 1, 400)
        limit = int(raw_limit)
        if futures and limit not in USDM_DEPTH_LIMITS:
            return self._answer({"code": -1130, "msg": BAD_LIMIT}, 1, 400)
        limit = max(1, min(limit, 5000))
        weight = depth_weight(self.variant, limit)
        if self.injector.refuse_depth(symbol):
            return self._answer(
                {"code": -1003, "msg": TOO_MANY_REQUESTS}, weight, 429, {"Retry-After": "1"}
            )
        if self.replay is not None:
            answer = self.replay.rest_answer(request.path, symbol)
            if answer is None:
                return self._answer({"code": -1121, "msg": "Invalid symbol."}, weight, 400)
            return self._answer(answer[1], weight, answer[0])
        upper = symbol.upper()
        market = self.market
        if market is None or upper not in market.symbols or symbol != upper:
            return self._answer({"code": -1121, "msg": "Invalid symbol."}, weight, 400)
        book = self.injector.stale_snapshot(
            upper, market.published[upper], market.pre_warmup[upper]
        )
        body = self.encoders[upper].depth_snapshot(book[0], book[1], book[2], limit, _now_ms())
        return self._answer(body, weight)

    async def _agg_trades(self, request: web.Request) -> web.Response:
        """``aggTrades``: the newest ``trade_history`` aggTrades as streamed; older ids: ``[]``."""
        weight = AGG_TRADES_WEIGHT[self.variant]
        symbol = request.query.get("symbol", "")
        if not symbol:
            return self._answer({"code": -1102, "msg": MISSING_SYMBOL}, weight, 400)
        raw_limit = request.query.get("limit", "500")
        raw_from = request.query.get("fromId")
        if not raw_limit.isdigit() or (raw_from is not None and not raw_from.isdigit()):
            return self._answer({"code": -1100, "msg": BAD_LIMIT_CHARS}, weight, 400)
        limit = max(1, min(int(raw_limit), 1000))
        if self.replay is not None:
            return self._answer(b"[]", weight)
        upper = symbol.upper()
        market = self.market
        if market is None or upper not in market.symbols or symbol != upper:
            return self._answer({"code": -1121, "msg": "Invalid symbol."}, weight, 400)
        history = market.trades[upper]
        if raw_from is None:
            start = max(0, len(history) - limit)
        elif not history or int(raw_from) < history[0][0]:
            start = len(history)  # older than what is kept: the venue no longer has them
        else:
            start = min(len(history), int(raw_from) - history[0][0])  # ids are contiguous
        rows = list(itertools.islice(history, start, start + limit))
        return self._answer(self.encoders[upper].agg_trades_rest(rows), weight)

    async def _exchange_info(self, request: web.Request) -> web.Response:
        weight = EXCHANGE_INFO_WEIGHT[self.variant]
        if self.replay is not None:
            answer = self.replay.rest_answer(request.path, "")
            if answer is not None:
                return self._answer(answer[1], weight, answer[0])
        return self._answer(self.exchange_info(), weight)

    def exchange_info(self) -> dict[str, Any]:
        futures = self.variant in FUTURES
        limit = self.config.effective_rest_weight
        symbols = []
        names = list(self.encoders) or (self.replay.symbols() if self.replay else [])
        for name in names:
            quote = next((q for q in QUOTES if name.endswith(q) and name != q), name[-4:])
            base = name[: -len(quote)]
            enc = self.encoders.get(name)
            pd, qd = (enc.pd, enc.qd) if enc is not None else (8, 8)
            filters = [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": _unit(pd),
                    "maxPrice": "1000000",
                    "tickSize": _unit(pd),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": _unit(qd),
                    "maxQty": "9000000",
                    "stepSize": _unit(qd),
                },
            ]
            if self.variant is BinanceVariant.COINM:
                symbols.append(coinm_listing(name, pd, filters))
            elif futures:
                symbols.append(
                    {
                        "symbol": name,
                        "pair": name,
                        "contractType": "PERPETUAL",
                        "deliveryDate": PERPETUAL_DELIVERY_MS,
                        "status": "TRADING",
                        "baseAsset": base,
                        "quoteAsset": quote,
                        "marginAsset": quote,
                        "pricePrecision": pd,
                        "quantityPrecision": qd,
                        "filters": filters,
                    }
                )
            else:
                symbols.append(
                    {
                        "symbol": name,
                        "status": "TRADING",
                        "baseAsset": base,
                        "baseAssetPrecision": 8,
                        "quoteAsset": quote,
                        "quotePrecision": 8,
                        "quoteAssetPrecision": 8,
                        "isSpotTradingAllowed": True,
                        "filters": filters,
                        "permissions": ["SPOT"],
                    }
                )
        return {
            "timezone": "UTC",
            "serverTime": _now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": limit,
                },
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }


PERPETUAL_DELIVERY_MS = 4133404800000  # 2100-01-01: how Binance dates perpetuals


def coinm_listing(name: str, pd: int, filters: list[dict[str, str]]) -> dict[str, Any]:
    """A COIN-M ``exchangeInfo`` symbol: ``contractStatus``, ``contractSize`` (100 USD for
    BTC, 10 for the others), margined in the base asset; ``BTCUSD_260626`` is a quarterly
    delivering on that date at 08:00 UTC."""
    pair, _, suffix = name.partition("_")
    base = pair.removesuffix("USD")
    if suffix and suffix != "PERP":
        y, m, d = 2000 + int(suffix[:2]), int(suffix[2:4]), int(suffix[4:6])
        delivery = int(datetime(y, m, d, 8, tzinfo=UTC).timestamp() * 1000)
        contract = "CURRENT_QUARTER"
    else:
        delivery, contract = PERPETUAL_DELIVERY_MS, "PERPETUAL"
    return {
        "symbol": name,
        "pair": pair,
        "contractType": contract,
        "deliveryDate": delivery,
        "onboardDate": 1597042800000,
        "contractStatus": "TRADING",
        "contractSize": 100 if base == "BTC" else 10,
        "marginAsset": base,
        "baseAsset": base,
        "quoteAsset": "USD",
        "pricePrecision": pd,
        "quantityPrecision": 0,
        "filters": filters,
    }


def _unit(decimals: int) -> str:
    return "1" if decimals == 0 else f"0.{'0' * (decimals - 1)}1"
