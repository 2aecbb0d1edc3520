"""The Binance markets, one declaration each: hosts, REST paths, weights, limits, naming rules.

Every market-dependent choice of the venue protocol reads the market's :class:`BinanceMarket`
row, never tests which market it is, so a market is added by declaring one more row in
:data:`MARKETS` (and its names in :class:`Market` / ``_ALIASES``). The rows are Binance's own
documentation (2026); COIN-M (``dapi``, inverse contracts such as ``BTCUSD_PERP``, sized in
contracts of ``contractSize`` USD) is a futures row like USD-M, with its own hosts, REST prefix,
weights, stream limit and size unit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hundi.exchanges.binance.userdata import FuturesUserData, SpotUserData, UserDataStream


class Market(enum.StrEnum):
    SPOT = "spot"
    USDM = "usdm"  # USDⓈ-M futures (fstream / fapi)
    COINM = "coinm"  # COIN-M futures (dstream / dapi): inverse perpetuals and deliveries


_ALIASES = {
    "spot": Market.SPOT,
    "usdm": Market.USDM,
    "usd-m": Market.USDM,
    "usds-m": Market.USDM,
    "um": Market.USDM,
    "futures": Market.USDM,
    "usdm-futures": Market.USDM,
    "coinm": Market.COINM,
    "coin-m": Market.COINM,
    "cm": Market.COINM,
    "delivery": Market.COINM,
    "coinm-futures": Market.COINM,
}


def parse_market(name: str) -> Market:
    try:
        return _ALIASES[name.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(_ALIASES))
        raise ValueError(f"unknown Binance market {name!r}; known: {known}") from None


@dataclass(frozen=True, slots=True)
class BinanceMarket:
    """Everything that differs between two Binance markets."""

    market: Market
    title: str  # in messages: "spot", "USD-M"
    ws_base: str  # market-data streams
    rest_base: str
    rest_path: str  # REST API prefix: /api/v3, /fapi/v1
    private_ws_base: str  # user-data host (spot: the WebSocket API)
    user_data: type[UserDataStream]  # how own orders and fills are streamed
    # Futures: symbol names carry the contract (``-PERP`` or the delivery date), exchangeInfo
    # says each symbol's contract type, and the book follows the ``pu`` chaining rules.
    futures: bool
    # Since the 2026 split, high-frequency streams on ``/public``, the others on ``/market``
    # (option ``usdm_split``); False: one ``/stream`` path.
    split_paths: bool
    max_outgoing_per_s: float  # client messages per connection and second
    weight_budget: int  # REQUEST_WEIGHT per minute and IP
    exchange_info_weight: int  # a full (all symbols) exchangeInfo
    agg_trades_weight: int
    # depth snapshot weight by limit: (largest limit, weight), ascending; the last row's limit
    # is the largest limit the market accepts
    depth_weights: tuple[tuple[int, int], ...]
    depth_limits: tuple[int, ...] | None  # the only limits accepted; None: any up to the largest
    # Inverse contracts (COIN-M): sized in contracts of ``contractSize`` USD each, margined and
    # settled in the base asset; otherwise sizes are in the base asset.
    inverse: bool = False
    max_streams: int = 1024  # streams one connection may carry
    quote_assets: tuple[str, ...] = ()  # if set, this market's only quote assets (COIN-M: USD)
    open_interest_weight: int = 1  # GET openInterest (futures)

    @property
    def max_depth_limit(self) -> int:
        return self.depth_weights[-1][0]

    def rest_url(self, endpoint: str, rest_base: str | None = None) -> str:
        """``endpoint`` (``depth``, ``exchangeInfo``...) under ``rest_base`` (default ours)."""
        base = (rest_base or self.rest_base).rstrip("/")
        return f"{base}{self.rest_path}/{endpoint}"

    def depth_weight(self, limit: int) -> int:
        """Request weight of a depth snapshot of ``limit`` levels."""
        for largest, weight in self.depth_weights:
            if limit <= largest:
                return weight
        return self.depth_weights[-1][1]

    def validate_depth_limit(self, limit: int) -> int:
        if self.depth_limits is not None and limit not in self.depth_limits:
            raise ValueError(
                f"{self.title} depth_limit must be one of {self.depth_limits}, got {limit}"
            )
        if not 1 <= limit <= self.max_depth_limit:
            raise ValueError(
                f"{self.title} depth_limit must be 1..{self.max_depth_limit}, got {limit}"
            )
        return limit


SPOT = BinanceMarket(
    market=Market.SPOT,
    title="spot",
    ws_base="wss://stream.binance.com:9443",
    rest_base="https://api.binance.com",
    rest_path="/api/v3",
    private_ws_base="wss://ws-api.binance.com:443",
    user_data=SpotUserData,
    futures=False,
    split_paths=False,
    max_outgoing_per_s=5.0,
    weight_budget=6000,
    exchange_info_weight=20,
    agg_trades_weight=4,
    depth_weights=((100, 5), (500, 25), (1000, 50), (5000, 250)),
    depth_limits=None,
)

USDM = BinanceMarket(
    market=Market.USDM,
    title="USD-M",
    ws_base="wss://fstream.binance.com",
    rest_base="https://fapi.binance.com",
    rest_path="/fapi/v1",
    private_ws_base="wss://fstream.binance.com",
    user_data=FuturesUserData,
    futures=True,
    split_paths=True,
    max_outgoing_per_s=10.0,
    weight_budget=2400,
    exchange_info_weight=1,
    agg_trades_weight=20,
    depth_weights=((50, 2), (100, 5), (500, 10), (1000, 20)),
    depth_limits=(5, 10, 20, 50, 100, 500, 1000),
)

# COIN-M (dapi), Binance's 2026 documentation: the same families of streams, REST endpoints and
# book rule (``pu`` chaining) as USD-M; 2400 weight a minute; depth weights 2/5/10/20 by limit;
# "a single connection can listen to a maximum of 200 streams", 10 incoming messages a second.
# The 2026 /public + /market split of fstream concerns USD-M only: dstream keeps ``/stream``.
COINM = BinanceMarket(
    market=Market.COINM,
    title="COIN-M",
    ws_base="wss://dstream.binance.com",
    rest_base="https://dapi.binance.com",
    rest_path="/dapi/v1",
    private_ws_base="wss://dstream.binance.com",
    user_data=FuturesUserData,
    futures=True,
    split_paths=False,
    max_outgoing_per_s=10.0,
    weight_budget=2400,
    exchange_info_weight=1,
    agg_trades_weight=20,
    depth_weights=((50, 2), (100, 5), (500, 10), (1000, 20)),
    depth_limits=(5, 10, 20, 50, 100, 500, 1000),
    inverse=True,
    max_streams=200,
    quote_assets=("USD",),
)

MARKETS: dict[Market, BinanceMarket] = {m.market: m for m in (SPOT, USDM, COINM)}
