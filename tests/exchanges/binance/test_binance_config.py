"""Configuration: symbol names, stream plans, connection URLs, SUBSCRIBE batches."""

from __future__ import annotations

import json

import pytest

from hundi.exchanges import venue_factory
from hundi.exchanges.base import VenueConfig
from hundi.exchanges.binance import BinanceVenue
from hundi.exchanges.binance.protocol import BinanceProtocol
from hundi.exchanges.binance.streams import depth_url
from hundi.exchanges.binance.symbols import Market, normalize, parse_market
from hundi.records import Channel


def venue(market: str, symbols: tuple[str, ...], *channels: Channel, **options: str):
    return BinanceVenue(
        VenueConfig(
            market=market, symbols=symbols, channels=channels or (Channel.TRADES,), options=options
        )
    )


def subscribed(protocol: BinanceProtocol) -> dict[str, list[str]]:
    streams: dict[str, list[str]] = {}
    for spec in protocol.connections():
        for n, message in enumerate(spec.subscribe, 1):
            body = json.loads(message)
            assert body["method"] == "SUBSCRIBE" and body["id"] == n
            streams.setdefault(spec.key, []).extend(body["params"])
    return streams


@pytest.mark.parametrize(
    ("native", "market", "normalized"),
    [
        ("BTCUSDT", Market.SPOT, "BTC-USDT"),
        ("btcusdt", Market.SPOT, "BTC-USDT"),
        ("ETHBTC", Market.SPOT, "ETH-BTC"),
        ("BTCFDUSD", Market.SPOT, "BTC-FDUSD"),  # longest suffix wins over USD-ish ones
        ("USDCUSDT", Market.SPOT, "USDC-USDT"),
        ("RUNEEUR", Market.SPOT, "RUNE-EUR"),
        ("BTCUSDT", Market.USDM, "BTC-USDT-PERP"),
        ("ETHUSDC", Market.USDM, "ETH-USDC-PERP"),
        ("BTCUSDT_260626", Market.USDM, "BTC-USDT-20260626"),
        ("BTCUSD_PERP", Market.COINM, "BTC-USD-PERP"),
        ("LINKUSD_211231", Market.COINM, "LINK-USD-20211231"),
        ("ethusd_260925", Market.COINM, "ETH-USD-20260925"),
        ("DOTUSD_PERP", Market.COINM, "DOT-USD-PERP"),  # not DO-TUSD: COIN-M quotes are USD
    ],
)
def test_symbol_normalization(native: str, market: Market, normalized: str) -> None:
    assert normalize(native, market).normalized == normalized


def test_unknown_quote_is_a_clear_config_error_with_escape_hatches() -> None:
    with pytest.raises(ValueError, match="quote_assets"):
        venue("spot", ("ABCXYZ",))
    assert venue("spot", ("ABCXYZ",), quote_assets="XYZ").normalize_symbol("ABCXYZ") == "ABC-XYZ"
    mapped = venue("spot", ("ABCXYZ",), symbol_map="ABCXYZ=AB-CXYZ")
    assert mapped.normalize_symbol("ABCXYZ") == "AB-CXYZ"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"trade_stream": "trades"}, "trade_stream"),
        ({"kline_interval": "7m"}, "kline_interval"),
        ({"depth_limit": "250"}, "depth_limit"),  # not a USD-M limit
        ({"usdm_split": "maybe"}, "usdm_split"),
        ({"max_streams_per_connection": "2000"}, "max_streams_per_connection"),
        ({"colour": "blue"}, "unknown Binance option"),
    ],
)
def test_bad_options_fail_at_config_time(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        venue("usdm", ("BTCUSDT",), **options)


def test_bad_market_and_empty_config() -> None:
    with pytest.raises(ValueError, match="unknown Binance market"):
        parse_market("options")
    assert parse_market("futures") is Market.USDM
    assert parse_market("coinm") is parse_market("COIN-M") is Market.COINM
    with pytest.raises(ValueError, match="no symbols"):
        venue("spot", ())
    with pytest.raises(ValueError, match="no market-data channels"):
        venue("spot", ("BTCUSDT",), Channel.EVENTS)


def test_entry_point_builds_the_binance_venue() -> None:
    factory = venue_factory("binance")
    protocol = factory(VenueConfig("spot", ("BTCUSDT",), (Channel.BBO,)))
    assert isinstance(protocol, BinanceProtocol)
    assert protocol.exchange == "binance"


def test_spot_streams_on_one_connection_via_subscribe() -> None:
    protocol = venue(
        "spot", ("BTCUSDT", "ETHBTC"), Channel.TRADES, Channel.BBO, Channel.TICKER, Channel.BOOK,
        Channel.CANDLES,
    )  # fmt: skip
    [spec] = protocol.connections()
    assert (spec.key, spec.url) == ("spot-public-0", "wss://stream.binance.com:9443/stream")
    assert spec.max_outgoing_per_s == 5
    assert subscribed(protocol)["spot-public-0"] == [
        "btcusdt@aggTrade", "btcusdt@bookTicker", "btcusdt@ticker", "btcusdt@depth@100ms",
        "btcusdt@kline_1m", "ethbtc@aggTrade", "ethbtc@bookTicker", "ethbtc@ticker",
        "ethbtc@depth@100ms", "ethbtc@kline_1m",
    ]  # fmt: skip


def test_options_pick_trade_stream_and_kline_interval() -> None:
    protocol = venue(
        "spot", ("BTCUSDT",), Channel.TRADES, Channel.CANDLES, trade_stream="trade",
        kline_interval="5m",
    )  # fmt: skip
    assert subscribed(protocol)["spot-public-0"] == ["btcusdt@trade", "btcusdt@kline_5m"]


def test_usdm_split_routes_public_and_market_streams() -> None:
    protocol = venue(
        "usdm", ("BTCUSDT",), Channel.TRADES, Channel.BBO, Channel.TICKER, Channel.BOOK,
        Channel.CANDLES,
    )  # fmt: skip
    urls = {spec.key: spec.url for spec in protocol.connections()}
    assert urls == {
        "usdm-market-0": "wss://fstream.binance.com/market/stream",
        "usdm-public-0": "wss://fstream.binance.com/public/stream",
    }
    assert subscribed(protocol) == {
        "usdm-market-0": ["btcusdt@aggTrade", "btcusdt@ticker", "btcusdt@kline_1m"],
        "usdm-public-0": ["btcusdt@bookTicker", "btcusdt@depth@100ms"],
    }
    assert {spec.max_outgoing_per_s for spec in protocol.connections()} == {10}


def test_endpoints_are_configuration() -> None:
    protocol = BinanceVenue(
        VenueConfig(
            "usdm", ("BTCUSDT",), (Channel.BOOK,), endpoint="ws://127.0.0.1:9000/",
            rest_endpoint="http://127.0.0.1:9001",
        )
    )  # fmt: skip
    assert [spec.url for spec in protocol.connections()] == ["ws://127.0.0.1:9000/public/stream"]
    assert protocol.book("BTCUSDT").native == "BTCUSDT"
    spot = BinanceVenue(
        VenueConfig(
            "spot", ("BTCUSDT",), (Channel.BOOK,), rest_endpoint="http://h:1",
            options={"depth_limit": "100"},
        )
    )  # fmt: skip
    half = spot.market_data
    assert depth_url(half.market, half.rest_base, "BTCUSDT", half.depth_limit) == (
        "http://h:1/api/v3/depth?symbol=BTCUSDT&limit=100"
    )
    assert half.depth_weight == 5
    assert protocol.market_data.depth_weight == 20  # USD-M limit 1000


def test_more_than_1024_streams_split_into_stable_connections() -> None:
    symbols = tuple(f"C{i:04d}USDT" for i in range(600))
    protocol = venue("spot", symbols, Channel.TRADES, Channel.BBO)
    specs = protocol.connections()
    assert [s.key for s in specs] == ["spot-public-0", "spot-public-1"]
    streams = subscribed(protocol)
    assert [len(streams[k]) for k in ("spot-public-0", "spot-public-1")] == [1024, 176]
    assert all(len(json.loads(m)["params"]) <= 200 for s in specs for m in s.subscribe)
    # A symbol's streams stay on one connection (its book and its trades share a fate).
    assert streams["spot-public-0"][-2:] == ["c0511usdt@aggTrade", "c0511usdt@bookTicker"]
    assert streams["spot-public-1"][0] == "c0512usdt@aggTrade"
    assert protocol.connections() == specs  # stable across calls


def test_smaller_connections_on_request() -> None:
    protocol = venue(
        "usdm", ("BTCUSDT", "ETHUSDT", "XRPUSDT"), Channel.BOOK, max_streams_per_connection="2",
        subscribe_batch="1",
    )  # fmt: skip
    assert [(s.key, len(s.subscribe)) for s in protocol.connections()] == [
        ("usdm-public-0", 2),
        ("usdm-public-1", 1),
    ]
