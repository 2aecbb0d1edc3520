"""The venue's ``options`` (strings in :class:`VenueConfig`) parsed and checked once.

Unknown or out-of-range options fail at configuration time with a message naming the option,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hundi.exchanges.authretry import AUTH_RETRY_OPTIONS, AuthRetry
from hundi.exchanges.binance import streams
from hundi.exchanges.binance.markets import MARKETS, BinanceMarket
from hundi.exchanges.binance.symbols import parse_symbol_map
from hundi.exchanges.options import int_option as _int

# The largest depth_limit any market takes; each market then checks its own.
MAX_DEPTH_LIMIT = max(m.max_depth_limit for m in MARKETS.values())

OPTION_HELP = {
    "trade_stream": "aggTrade (default) or trade",
    "kline_interval": "kline interval, default 1m",
    "mark_price_stream": "derivative_ticker stream: markPrice@1s (default) or markPrice (3 s)",
    "usdm_split": "true (default): USD-M /public + /market paths; false: legacy /stream",
    "depth_limit": "REST snapshot depth, default 1000",
    "book_buffer": "max diffs buffered per unsynced book, default 2000",
    "max_streams_per_connection": "default: the market's limit (1024 spot/USD-M, 200 COIN-M)",
    "open_interest_interval_s": "derivative_ticker: seconds between REST openInterest polls of a "
    "symbol (weight 1 each; all symbols' polls within half the REST budget), default 60, "
    "stretched to fit; 0: no polling (mark price and funding only)",
    "instruments_interval_s": "instruments: seconds between exchangeInfo polls, default 3600",
    "subscribe_batch": "streams per SUBSCRIBE message, default 200",
    "rest_weight_per_minute": "REST weight budget, default half of Binance's (3000 / 1200)",
    "rest_min_interval_ms": "minimal gap between REST requests, default 100",
    "seed": "seed of the back-off jitter RNG, default 0",
    "backfill_requests_per_gap": "aggTrades REST requests (1000 trades each) spent fetching the "
    "missed trades of one gap, oldest gap first, default 5; 0 turns backfilling off",
    "quote_assets": "extra quote assets, comma separated",
    "symbol_map": "explicit names, NATIVE=BASE-QUOTE,...",
    # authenticated streams (channels orders, fills)
    "private_endpoint": "user-data WS base (spot: the WebSocket API host), default: --endpoint "
    "if given, else Binance's",
    "listen_key_keepalive_s": "USD-M listen key keep-alive period, default 1800",
    "recv_window_ms": "spot user-data subscription recvWindow, default 5000",
    **AUTH_RETRY_OPTIONS,
}


def _bool(options: Mapping[str, str], name: str, default: bool) -> bool:
    text = options.get(name)
    if text is None:
        return default
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"option {name} must be true or false, got {text!r}")


@dataclass(frozen=True, slots=True)
class BinanceOptions:
    trade_stream: str
    kline_interval: str
    mark_price_stream: str
    usdm_split: bool
    depth_limit: int
    book_buffer: int
    max_streams_per_connection: int
    open_interest_interval_s: int
    open_interest_interval_given: bool  # set by the user (else the default, stretched to fit)
    instruments_interval_s: int
    subscribe_batch: int
    rest_weight_per_minute: int
    rest_min_interval_ms: int
    seed: int
    backfill_requests_per_gap: int
    quote_assets: tuple[str, ...]
    symbol_map: dict[str, str]
    private_endpoint: str | None
    listen_key_keepalive_s: int
    recv_window_ms: int
    auth_retry: AuthRetry  # fresh: the user-data stream's back-off after refused credentials

    @classmethod
    def parse(cls, options: Mapping[str, str], market: BinanceMarket) -> BinanceOptions:
        unknown = set(options) - set(OPTION_HELP)
        if unknown:
            raise ValueError(
                f"unknown Binance option(s) {sorted(unknown)}; known: {sorted(OPTION_HELP)}"
            )
        trade_stream = options.get("trade_stream", "aggTrade")
        if trade_stream not in streams.TRADE_STREAMS:
            raise ValueError(f"option trade_stream must be aggTrade or trade, got {trade_stream!r}")
        kline_interval = options.get("kline_interval", "1m")
        if kline_interval not in streams.KLINE_INTERVALS:
            raise ValueError(f"unknown kline_interval {kline_interval!r}")
        mark_price_stream = options.get("mark_price_stream", "markPrice@1s")
        if mark_price_stream not in streams.MARK_PRICE_STREAMS:
            raise ValueError(
                f"option mark_price_stream must be markPrice@1s or markPrice, got "
                f"{mark_price_stream!r}"
            )
        depth_limit = market.validate_depth_limit(
            _int(options, "depth_limit", 1000, 1, MAX_DEPTH_LIMIT)
        )
        budget = market.weight_budget  # Binance's; by default we spend at most half of it
        return cls(
            trade_stream=trade_stream,
            kline_interval=kline_interval,
            mark_price_stream=mark_price_stream,
            usdm_split=_bool(options, "usdm_split", True),
            depth_limit=depth_limit,
            book_buffer=_int(options, "book_buffer", 2000, 1, 1_000_000),
            max_streams_per_connection=_int(
                options, "max_streams_per_connection", market.max_streams, 1, market.max_streams
            ),
            open_interest_interval_s=_int(options, "open_interest_interval_s", 60, 0, 86_400),
            open_interest_interval_given="open_interest_interval_s" in options,
            instruments_interval_s=_int(options, "instruments_interval_s", 3600, 10, 7 * 86_400),
            subscribe_batch=_int(
                options, "subscribe_batch", streams.DEFAULT_SUBSCRIBE_BATCH, 1, 1024
            ),
            rest_weight_per_minute=_int(
                options,
                "rest_weight_per_minute",
                budget // 2,
                market.depth_weight(depth_limit),
                budget,
            ),
            rest_min_interval_ms=_int(options, "rest_min_interval_ms", 100, 0, 60_000),
            seed=_int(options, "seed", 0, 0, 2**63 - 1),
            backfill_requests_per_gap=_int(options, "backfill_requests_per_gap", 5, 0, 1000),
            quote_assets=tuple(
                q.strip().upper() for q in options.get("quote_assets", "").split(",") if q.strip()
            ),
            symbol_map=parse_symbol_map(options.get("symbol_map", "")),
            private_endpoint=options.get("private_endpoint") or None,
            listen_key_keepalive_s=_int(options, "listen_key_keepalive_s", 1800, 1, 3300),
            recv_window_ms=_int(options, "recv_window_ms", 5000, 1, 60_000),
            auth_retry=AuthRetry.from_options(options),
        )
