"""The per-market rows, the tagged REST requests, and the two halves of the protocol."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest

from hundi.exchanges.base import RecordSink, RestPurpose, RestRequest, RestResponse, VenueConfig
from hundi.exchanges.binance import BinanceVenue
from hundi.exchanges.binance.backfill import agg_trades_url
from hundi.exchanges.binance.marketdata import EXCHANGE_INFO_KEY, MarketData
from hundi.exchanges.binance.markets import MARKETS, SPOT, USDM, Market
from hundi.exchanges.binance.options import BinanceOptions
from hundi.exchanges.binance.streams import depth_url
from hundi.exchanges.binance.symbols import normalize
from hundi.exchanges.binance.userdata import FuturesUserData, SpotUserData
from hundi.records import Channel


def test_every_market_has_its_row() -> None:
    assert set(MARKETS) == set(Market)
    assert all(row.market is market for market, row in MARKETS.items())


@pytest.mark.parametrize(
    ("limit", "spot", "usdm"),
    [(5, 5, 2), (50, 5, 2), (51, 5, 5), (100, 5, 5), (101, 25, 10), (500, 25, 10),
     (501, 50, 20), (1000, 50, 20), (1001, 250, 20), (5000, 250, 20)],
)  # fmt: skip
def test_depth_weights_are_binances(limit: int, spot: int, usdm: int) -> None:
    assert (SPOT.depth_weight(limit), USDM.depth_weight(limit)) == (spot, usdm)


def test_rows_say_binances_paths_weights_and_limits() -> None:
    assert depth_url(SPOT, "https://h/", "BTCUSDT", 100) == (
        "https://h/api/v3/depth?symbol=BTCUSDT&limit=100"
    )
    assert depth_url(USDM, "https://h", "BTCUSDT", 5) == (
        "https://h/fapi/v1/depth?symbol=BTCUSDT&limit=5"
    )
    assert agg_trades_url(USDM, "https://h", "BTCUSDT", 7, 10) == (
        "https://h/fapi/v1/aggTrades?symbol=BTCUSDT&fromId=7&limit=10"
    )
    assert SPOT.rest_url("exchangeInfo") == "https://api.binance.com/api/v3/exchangeInfo"
    assert (SPOT.exchange_info_weight, USDM.exchange_info_weight) == (20, 1)
    assert (SPOT.agg_trades_weight, USDM.agg_trades_weight) == (4, 20)
    assert (SPOT.weight_budget, USDM.weight_budget) == (6000, 2400)
    assert (SPOT.user_data, USDM.user_data) == (SpotUserData, FuturesUserData)
    assert SPOT.validate_depth_limit(5000) == 5000
    with pytest.raises(ValueError, match=r"spot depth_limit must be 1\.\.5000"):
        SPOT.validate_depth_limit(5001)
    with pytest.raises(ValueError, match="USD-M depth_limit must be one of"):
        USDM.validate_depth_limit(200)


def test_every_request_says_what_it_is_for() -> None:
    protocol = BinanceVenue(VenueConfig("usdm", ("BTCUSDT",), (Channel.BOOK, Channel.TRADES)))
    diff = b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"U":5,"u":6,'
    diff += b'"pu":4,"b":[],"a":[]}}'
    protocol.receive("usdm-public-0", diff, 0, RecordSink())
    trade = '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"a":%d,"p":"1",'
    trade += '"q":"1","f":1,"l":1,"T":1,"m":true}}'
    for agg_id in (10, 20):  # ids 11..19 missed: fetched again
        protocol.receive("usdm-market-0", (trade % agg_id).encode(), 0, RecordSink())
    requests = protocol.due_requests(0)
    assert [(r.key, r.purpose) for r in requests] == [
        ("BTCUSDT", RestPurpose.BOOK_SNAPSHOT),
        (EXCHANGE_INFO_KEY, RestPurpose.SYMBOL_LISTING),
        ("aggTrades:BTCUSDT", RestPurpose.TRADE_BACKFILL),
    ]


def test_answers_are_routed_by_the_tag_not_the_key() -> None:
    protocol = BinanceVenue(VenueConfig("spot", ("BTCUSDT",), (Channel.TRADES,)))
    (info,) = protocol.due_requests(0)
    assert info.purpose is RestPurpose.SYMBOL_LISTING
    empty = msgspec.json.encode({"symbols": []})
    out = RecordSink()
    untagged = RestRequest(EXCHANGE_INFO_KEY, info.url)  # the key alone means nothing
    protocol.receive_response(untagged, RestResponse(200, empty), 1, out)
    assert (out.events, protocol.invalid_symbols) == ([], [])
    protocol.receive_response(info, RestResponse(200, empty), 2, out)
    assert [e.native_symbol for e in out.events] == ["BTCUSDT"] == protocol.invalid_symbols


def test_the_halves_own_their_connections() -> None:
    config = VenueConfig("usdm", ("BTCUSDT",), (Channel.TRADES, Channel.ORDERS), authenticate=False)
    protocol = BinanceVenue(config)
    assert protocol.userdata is not None
    keys = [s.key for s in protocol.connections()]
    assert (
        keys
        == [
            *(s.key for s in protocol.market_data.connections()),
            *(s.key for s in protocol.userdata.connections()),
        ]
        == ["usdm-market-0", "userdata"]
    )


def test_a_market_is_one_declared_row() -> None:
    """A futures row with other hosts, paths and no split (COIN-M's shape) needs no code."""
    inverse = dataclasses.replace(
        USDM, title="inverse", ws_base="wss://d.example", rest_base="https://d.example",
        rest_path="/dapi/v1", private_ws_base="wss://d.example", split_paths=False,
    )  # fmt: skip
    opts = BinanceOptions.parse({}, inverse)
    info = normalize("BTCUSD_PERP", Market.USDM, ("USD",))
    assert info.normalized == "BTC-USD-PERP"
    half = MarketData(
        inverse, opts, {info.native: info}, (Channel.BOOK,), inverse.ws_base, inverse.rest_base,
        None,
    )  # fmt: skip
    assert [s.url for s in half.connections()] == ["wss://d.example/stream"]
    diff = b'{"stream":"btcusd_perp@depth@100ms","data":{"e":"depthUpdate","E":1,"U":5,"u":6,'
    diff += b'"pu":4,"b":[],"a":[]}}'
    half.receive(half.connections()[0].key, diff, 0, RecordSink())
    assert [r.url for r in half.due_requests(0)] == [
        "https://d.example/dapi/v1/depth?symbol=BTCUSD_PERP&limit=1000",
        "https://d.example/dapi/v1/exchangeInfo",
    ]
    userdata = inverse.user_data.for_market(inverse, None, str, opts, None, inverse.rest_base)
    assert isinstance(userdata, FuturesUserData)
    assert userdata.rest_url == "https://d.example/dapi/v1/listenKey"
    assert userdata.ws_path == "wss://d.example/ws/"
