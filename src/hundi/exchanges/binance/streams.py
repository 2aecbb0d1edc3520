"""Which streams to open, on which connections, and the REST snapshot URLs.

Subscription style: each connection opens the bare combined-stream path (``/stream``) and sends
``SUBSCRIBE`` messages (at most ``subscribe_batch`` streams each), paced by
``max_outgoing_per_s``. Streams are not put in the URL because 1024 stream names make a ~30 KB
URL that proxies and servers refuse; acks (``{"result":null,"id":n}``) confirm each batch.

USD-M: since the 2026 split, ``depth``/``bookTicker`` (high-frequency) go to ``/public/stream``
and ``aggTrade``/``kline``/``ticker`` to ``/market/stream`` on ``fstream.binance.com``; the
``usdm_split=false`` option keeps the legacy single ``/stream`` path for everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from hundi.exchanges.base import StreamSpec
from hundi.exchanges.binance.markets import BinanceMarket
from hundi.exchanges.binance.symbols import SymbolInfo
from hundi.records import Channel

MAX_STREAMS_PER_CONNECTION = 1024
DEFAULT_SUBSCRIBE_BATCH = 200

KLINE_INTERVALS = frozenset(
    ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w",
     "1M")
)  # fmt: skip
TRADE_STREAMS = frozenset(("aggTrade", "trade"))
MARK_PRICE_STREAMS = frozenset(("markPrice@1s", "markPrice"))  # 1 s or 3 s updates
FUTURES_ONLY = frozenset((Channel.DERIVATIVE_TICKER, Channel.LIQUIDATIONS))
LOCAL_CHANNELS = frozenset((Channel.EVENTS, Channel.INSTRUMENTS))  # no stream (REST or ours)


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """One stream name and what it carries."""

    name: str  # e.g. btcusdt@aggTrade
    kind: str  # aggTrade, trade, bookTicker, ticker, kline, depth
    symbol: SymbolInfo
    group: str  # connection group: public, market (split paths) or stream (one path)


def stream_kind_name(
    channel: Channel,
    trade_stream: str,
    kline_interval: str,
    mark_price_stream: str = "markPrice@1s",
) -> tuple[str, str]:
    """Channel → (kind, stream-name suffix)."""
    if channel is Channel.TRADES:
        return trade_stream, trade_stream
    if channel is Channel.BBO:
        return "bookTicker", "bookTicker"
    if channel is Channel.TICKER:
        return "ticker", "ticker"
    if channel is Channel.BOOK:
        return "depth", "depth@100ms"
    if channel is Channel.CANDLES:
        return "kline", f"kline_{kline_interval}"
    if channel is Channel.DERIVATIVE_TICKER:
        return "markPrice", mark_price_stream
    if channel is Channel.LIQUIDATIONS:
        return "forceOrder", "forceOrder"
    raise ValueError(f"Binance has no stream for channel {channel.value!r}")


def connection_group(market: BinanceMarket, kind: str, split: bool) -> str:
    if not market.split_paths:
        return "public"
    if not split:
        return "stream"
    # The 2026 notice names depth and bookTicker as /public (high-frequency); the per-trade
    # ``trade`` stream is routed with them as high-frequency data (not confirmed by the notice).
    return "public" if kind in ("depth", "bookTicker", "trade") else "market"


def group_path(market: BinanceMarket, group: str) -> str:
    if market.split_paths and group in ("public", "market"):
        return f"/{group}/stream"
    return "/stream"


def plan_streams(
    market: BinanceMarket,
    symbols: tuple[SymbolInfo, ...],
    channels: tuple[Channel, ...],
    *,
    trade_stream: str,
    kline_interval: str,
    split: bool,
    mark_price_stream: str = "markPrice@1s",
) -> list[StreamPlan]:
    """Every stream, grouped per symbol so a symbol's streams share a connection."""
    if not market.futures:
        for channel in channels:
            if channel in FUTURES_ONLY:
                raise ValueError(
                    f"Binance {market.title} has no {channel.value!r} channel (futures only: "
                    "--market usdm or coinm)"
                )
    plans = []
    for symbol in symbols:
        for channel in channels:
            if channel in LOCAL_CHANNELS:
                continue  # produced locally or over REST, no stream
            kind, suffix = stream_kind_name(
                channel, trade_stream, kline_interval, mark_price_stream
            )
            plans.append(
                StreamPlan(
                    f"{symbol.stream}@{suffix}",
                    kind,
                    symbol,
                    connection_group(market, kind, split),
                )
            )
    return plans


def subscribe_messages(names: list[str], batch: int) -> tuple[bytes, ...]:
    """``SUBSCRIBE`` messages with ids 1, 2, ... per connection."""
    return tuple(
        msgspec.json.encode(
            {"method": "SUBSCRIBE", "params": names[i : i + batch], "id": i // batch + 1}
        )
        for i in range(0, len(names), batch)
    )


def build_connections(
    market: BinanceMarket,
    plans: list[StreamPlan],
    ws_base: str,
    *,
    per_connection: int,
    subscribe_batch: int,
) -> tuple[list[StreamSpec], dict[str, str]]:
    """Connections (keys ``<market>-<group>-<n>``) and the stream → connection-key map."""
    base = ws_base.rstrip("/")
    specs: list[StreamSpec] = []
    owner: dict[str, str] = {}
    groups: dict[str, list[StreamPlan]] = {}
    for plan in plans:
        groups.setdefault(plan.group, []).append(plan)
    for group, members in groups.items():
        for n, start in enumerate(range(0, len(members), per_connection)):
            names = [p.name for p in members[start : start + per_connection]]
            key = f"{market.market.value}-{group}-{n}"
            specs.append(
                StreamSpec(
                    key=key,
                    url=base + group_path(market, group),
                    subscribe=subscribe_messages(names, subscribe_batch),
                    max_outgoing_per_s=market.max_outgoing_per_s,
                )
            )
            owner.update(dict.fromkeys(names, key))
    return specs, owner


def depth_url(market: BinanceMarket, rest_base: str, native: str, limit: int) -> str:
    return f"{market.rest_url('depth', rest_base)}?symbol={native}&limit={limit}"
