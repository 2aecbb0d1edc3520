"""Derivatives data from hand-written frames: markPrice merged with polled open interest into
full derivative tickers, sampled forceOrder liquidations, exchangeInfo instruments (at start,
then only changes), COIN-M's connections and limits, and the configuration errors."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from hundi.exchanges.base import (
    FrameStatus,
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestRequest,
    RestResponse,
    VenueConfig,
)
from hundi.exchanges.binance import BinanceVenue
from hundi.exchanges.binance.protocol import EXCHANGE_INFO_KEY, BinanceProtocol
from hundi.records import BASE, BUY, CONTRACTS, SAMPLED, SELL, Channel

S = 1_000_000_000
MS = 1_000_000
T0 = 1_767_225_600_000  # 2026-01-01 in ms
NOW = T0 * MS


def venue(market: str, symbols: tuple[str, ...], *channels: Channel, **options: str):
    return BinanceVenue(VenueConfig(market, symbols, channels, options=options))


def frame(stream: str, data: dict[str, Any]) -> bytes:
    return json.dumps({"stream": stream, "data": data}).encode()


def mark(symbol: str, at_ms: int, p: str, i: str, r: str, t: int) -> bytes:
    data = {"e": "markPriceUpdate", "E": at_ms, "s": symbol, "p": p, "P": p, "i": i, "r": r,
            "T": t}  # fmt: skip
    return frame(f"{symbol.lower()}@markPrice@1s", data)


def force(symbol: str, side: str, at_ms: int, q: str = "0.5", p: str = "60000") -> bytes:
    order = {"s": symbol, "S": side, "o": "LIMIT", "f": "IOC", "q": q, "p": p, "ap": "60010",
             "X": "FILLED", "l": q, "z": q, "T": at_ms}  # fmt: skip
    return frame(f"{symbol.lower()}@forceOrder", {"e": "forceOrder", "E": at_ms + 1, "o": order})


def receive(protocol: BinanceProtocol, data: bytes, now: int = NOW) -> RecordSink:
    out = RecordSink()
    conn = protocol.connections()[0].key
    assert protocol.receive(conn, data, now, out) is FrameStatus.PROCESSED
    return out


def requests(protocol: BinanceProtocol, now: int) -> dict[str, RestRequest]:
    return {r.key: r for r in protocol.due_requests(now)}


def oi_body(symbol: str, oi: str, at_ms: int) -> bytes:
    return json.dumps({"symbol": symbol, "openInterest": oi, "time": at_ms}).encode()


# ---------------------------------------------------------------- derivative ticker
def test_usdm_mark_price_and_open_interest_merge_into_full_records() -> None:
    protocol = venue("usdm", ("BTCUSDT",), Channel.DERIVATIVE_TICKER)
    [spec] = protocol.connections()
    assert spec.url == "wss://fstream.binance.com/market/stream"  # not high-frequency: /market
    assert json.loads(spec.subscribe[0])["params"] == ["btcusdt@markPrice@1s"]

    first = receive(protocol, mark("BTCUSDT", T0, "60000.5", "59990.1", "0.00010000", T0 + 3600e3))
    [t] = first.derivative_ticker
    assert (t.symbol, t.source, t.ts, t.recv_ts) == ("BTC-USDT-PERP", "markPrice", NOW, NOW)
    assert (t.mark_price, t.index_price, t.funding_rate) == (60000.5, 59990.1, 0.0001)
    assert t.next_funding_time == (T0 + 3_600_000) * MS
    assert math.isnan(t.open_interest) and math.isnan(t.open_interest_value)  # not yet known
    assert math.isnan(t.predicted_funding_rate)  # Binance publishes none
    assert t.size_unit == BASE

    due = requests(protocol, NOW)
    oi_request = due["BTCUSDT@openInterest"]
    assert oi_request.url == "https://fapi.binance.com/fapi/v1/openInterest?symbol=BTCUSDT"
    assert oi_request.weight == 1
    out = RecordSink()
    protocol.receive_response(
        oi_request, RestResponse(200, oi_body("BTCUSDT", "1234.5", T0 + 10)), NOW + MS, out
    )
    [o] = out.derivative_ticker
    assert (o.source, o.ts, o.open_interest) == ("openInterest", (T0 + 10) * MS, 1234.5)
    assert o.mark_price == 60000.5  # the previous value, merged
    assert o.open_interest_value == 1234.5 * 60000.5  # base units times the mark price

    [t2] = receive(
        protocol, mark("BTCUSDT", T0 + 1000, "60100", "60090", "0.0002", 0)
    ).derivative_ticker
    assert (t2.open_interest, t2.open_interest_value) == (1234.5, 1234.5 * 60100)
    assert "BTCUSDT@openInterest" not in requests(protocol, NOW + 59 * S)
    assert "BTCUSDT@openInterest" in requests(protocol, NOW + 61 * S)  # default 60 s


def test_open_interest_failures_are_retried_never_raised() -> None:
    protocol = venue("usdm", ("BTCUSDT",), Channel.DERIVATIVE_TICKER, open_interest_interval_s="5")
    for body, status in (
        (b'{"code":-1003,"msg":"Too many requests"}', 500),
        (b"not json", 200),
        (oi_body("ETHUSDT", "1", T0), 200),  # another symbol's answer
        (oi_body("BTCUSDT", "-1", T0), 200),  # an impossible value
    ):
        now = NOW
        while "BTCUSDT@openInterest" not in (due := requests(protocol, now)):
            now += S
        out = RecordSink()
        protocol.receive_response(due["BTCUSDT@openInterest"], RestResponse(status, body), now, out)
        assert len(out) == 0
    while "BTCUSDT@openInterest" not in (due := requests(protocol, now)):
        now += S
    out = RecordSink()
    protocol.receive_response(
        due["BTCUSDT@openInterest"], RestResponse(200, oi_body("BTCUSDT", "7", T0)), now, out
    )
    assert [r.open_interest for r in out.derivative_ticker] == [7.0]


def test_coinm_delivery_has_no_funding_and_contracts_value_in_usd() -> None:
    protocol = venue("coinm", ("BTCUSD_260626",), Channel.DERIVATIVE_TICKER, Channel.INSTRUMENTS)
    [spec] = protocol.connections()
    assert spec.url == "wss://dstream.binance.com/stream"
    due = requests(protocol, NOW)
    assert set(due) == {EXCHANGE_INFO_KEY, "BTCUSD_260626@openInterest"}
    assert due[EXCHANGE_INFO_KEY].url == "https://dapi.binance.com/dapi/v1/exchangeInfo"
    info = {"symbols": [{"symbol": "BTCUSD_260626", "pair": "BTCUSD",
                         "contractType": "CURRENT_QUARTER", "deliveryDate": 1782460800000,
                         "contractStatus": "TRADING", "contractSize": 100, "marginAsset": "BTC",
                         "baseAsset": "BTC", "quoteAsset": "USD", "filters": [
                             {"filterType": "PRICE_FILTER", "tickSize": "0.1"},
                             {"filterType": "LOT_SIZE", "stepSize": "1"}]}]}  # fmt: skip
    out = RecordSink()
    protocol.receive_response(
        due[EXCHANGE_INFO_KEY], RestResponse(200, json.dumps(info).encode()), NOW, out
    )
    [inst] = out.instruments
    assert (inst.symbol, inst.contract_type, inst.inverse) == ("BTC-USD-20260626", "future", True)
    assert (inst.base_asset, inst.quote_asset, inst.settle_asset) == ("BTC", "USD", "BTC")
    assert (inst.contract_size, inst.size_unit, inst.tick_size, inst.lot_size) == (
        100.0, CONTRACTS, 0.1, 1.0
    )  # fmt: skip
    assert (inst.expiry, inst.status) == (1782460800000 * MS, "TRADING")
    assert out.events == []  # listed and trading: no invalid_symbol

    [t] = receive(protocol, mark("BTCUSD_260626", T0, "95000", "94900", "", 0)).derivative_ticker
    assert math.isnan(t.funding_rate) and t.next_funding_time == 0  # a delivery
    out = RecordSink()
    protocol.receive_response(
        due["BTCUSD_260626@openInterest"],
        RestResponse(200, oi_body("BTCUSD_260626", "3000", T0)), NOW, out,
    )  # fmt: skip
    [o] = out.derivative_ticker
    assert (o.open_interest, o.open_interest_value, o.size_unit) == (3000.0, 300000.0, CONTRACTS)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (mark("BTCUSDT", T0, "60000", "59990", "abc", 0), "invalid_value"),  # funding rate
        (mark("BTCUSDT", T0, "0", "59990", "0.0001", 0), "invalid_value"),  # mark price
        (mark("BTCUSDT", T0 - 3 * 86_400_000, "1", "1", "0", 0), "invalid_value"),  # time
        (frame("btcusdt@markPrice@1s", {"e": "markPriceUpdate", "E": T0}), "invalid_message"),
        (frame("btcusdt@markPrice@1s", {"e": "aggTrade", "E": T0}), "unknown_event"),
        (force("BTCUSDT", "HOLD", T0), "invalid_value"),
        (force("ETHUSDT", "SELL", T0).replace(b"ethusdt@", b"btcusdt@"), "invalid_message"),
        (force("BTCUSDT", "SELL", T0, q="0"), "invalid_value"),
    ],
)
def test_bad_derivative_frames_are_rejected_with_their_reason(data: bytes, reason: str) -> None:
    protocol = venue("usdm", ("BTCUSDT",), Channel.DERIVATIVE_TICKER, Channel.LIQUIDATIONS)
    with pytest.raises(RejectedFrame) as caught:
        protocol.receive("usdm-market-0", data, NOW, RecordSink())
    assert caught.value.reason == reason


# ---------------------------------------------------------------- liquidations
def test_force_orders_are_sampled_liquidations_in_the_market_unit() -> None:
    protocol = venue("usdm", ("BTCUSDT",), Channel.LIQUIDATIONS)
    assert json.loads(protocol.connections()[0].subscribe[0])["params"] == ["btcusdt@forceOrder"]
    [sell] = receive(protocol, force("BTCUSDT", "SELL", T0)).liquidations
    assert (sell.symbol, sell.ts, sell.side, sell.price, sell.size) == (
        "BTC-USDT-PERP", T0 * MS, SELL, 60000.0, 0.5
    )  # fmt: skip
    assert (sell.size_unit, sell.completeness) == (BASE, SAMPLED)
    assert sell.detail == "status=FILLED filled=0.5 avg_price=60010 type=LIMIT/IOC"
    [buy] = receive(protocol, force("BTCUSDT", "BUY", T0 + 1000)).liquidations
    assert buy.side == BUY  # a short was liquidated

    coinm = venue("coinm", ("BTCUSD_PERP",), Channel.LIQUIDATIONS)
    [liq] = receive(coinm, force("BTCUSD_PERP", "SELL", T0, q="12")).liquidations
    assert (liq.symbol, liq.size, liq.size_unit) == ("BTC-USD-PERP", 12.0, CONTRACTS)


# ---------------------------------------------------------------- instruments
def usdm_listing(tick: str) -> bytes:
    symbols = [
        {"symbol": "BTCUSDT", "pair": "BTCUSDT", "contractType": "PERPETUAL",
         "deliveryDate": 4133404800000, "status": "TRADING", "baseAsset": "BTC",
         "quoteAsset": "USDT", "marginAsset": "USDT",
         "filters": [{"filterType": "PRICE_FILTER", "tickSize": tick},
                     {"filterType": "LOT_SIZE", "stepSize": "0.001"}]},
        {"symbol": "BTCUSDT_260626", "pair": "BTCUSDT", "contractType": "CURRENT_QUARTER",
         "deliveryDate": 1782460800000, "status": "TRADING", "baseAsset": "BTC",
         "quoteAsset": "USDT", "marginAsset": "USDT", "filters": []},
        {"symbol": "ETHUSDT", "contractType": "PERPETUAL", "status": "TRADING",
         "baseAsset": "ETH", "quoteAsset": "USDT", "filters": []},
    ]  # fmt: skip
    return json.dumps({"symbols": symbols}).encode()


def test_instruments_at_start_then_only_changes_on_the_slow_poll() -> None:
    protocol = venue(
        "usdm", ("BTCUSDT", "BTCUSDT_260626"), Channel.TRADES, Channel.INSTRUMENTS,
        instruments_interval_s="600",
    )  # fmt: skip
    out = RecordSink()
    protocol.receive_response(
        requests(protocol, NOW)[EXCHANGE_INFO_KEY], RestResponse(200, usdm_listing("0.10")), NOW,
        out,
    )  # fmt: skip
    perp, future = out.instruments
    assert (perp.symbol, perp.contract_type, perp.expiry, perp.inverse) == (
        "BTC-USDT-PERP", "perpetual", 0, False
    )  # fmt: skip
    assert (perp.contract_size, perp.size_unit, perp.tick_size, perp.lot_size) == (
        1.0, BASE, 0.1, 0.001
    )  # fmt: skip
    assert perp.settle_asset == "USDT"
    assert (future.symbol, future.contract_type) == ("BTC-USDT-20260626", "future")
    assert future.expiry == 1782460800000 * MS
    assert math.isnan(future.tick_size)  # no filter: the venue does not say

    assert EXCHANGE_INFO_KEY not in requests(protocol, NOW + 599 * S)
    assert protocol.next_wakeup_ns() == NOW + 600 * S
    again = requests(protocol, NOW + 600 * S)[EXCHANGE_INFO_KEY]
    out = RecordSink()
    protocol.receive_response(again, RestResponse(200, usdm_listing("0.10")), NOW + 600 * S, out)
    assert len(out) == 0  # unchanged: nothing; and no second invalid_symbol check
    changed = requests(protocol, NOW + 1200 * S)[EXCHANGE_INFO_KEY]
    protocol.receive_response(changed, RestResponse(200, usdm_listing("0.50")), NOW, out)
    [row] = out.instruments
    assert (row.symbol, row.tick_size) == ("BTC-USDT-PERP", 0.5)


def test_spot_instruments_and_no_repoll_without_the_channel() -> None:
    protocol = venue("spot", ("BTCUSDT",), Channel.INSTRUMENTS, Channel.BBO)
    filters = [
        {"filterType": "PRICE_FILTER", "tickSize": "0.01000000"},
        {"filterType": "LOT_SIZE", "stepSize": "0.00001000"},
    ]
    entry = {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT"}
    listing = {"symbols": [{**entry, "filters": filters}]}
    out = RecordSink()
    protocol.receive_response(
        requests(protocol, NOW)[EXCHANGE_INFO_KEY],
        RestResponse(200, json.dumps(listing).encode()), NOW, out,
    )  # fmt: skip
    [row] = out.instruments
    assert (row.symbol, row.contract_type, row.settle_asset, row.lot_size) == (
        "BTC-USDT", "spot", "USDT", 0.00001
    )  # fmt: skip
    plain = venue("spot", ("BTCUSDT",), Channel.BBO)
    out = RecordSink()
    plain.receive_response(
        requests(plain, NOW)[EXCHANGE_INFO_KEY],
        RestResponse(200, json.dumps(listing).encode()), NOW, out,
    )  # fmt: skip
    assert out.instruments == [] and plain.next_wakeup_ns() is None  # checked once, no re-poll


# ---------------------------------------------------------------- COIN-M and config
def test_coinm_streams_limits_and_rest_paths() -> None:
    symbols = tuple(f"C{n:03d}USD_PERP" for n in range(150))
    protocol = venue("coinm", symbols, Channel.TRADES, Channel.BOOK)
    specs = protocol.connections()
    assert [s.key for s in specs] == ["coinm-public-0", "coinm-public-1"]  # 300 streams, 200 max
    assert {s.url for s in specs} == {"wss://dstream.binance.com/stream"}
    assert protocol.normalize_symbol("C007USD_PERP") == "C007-USD-PERP"
    data = {"e": "depthUpdate", "E": T0, "s": "C000USD_PERP", "U": 5, "u": 6, "pu": 4, "b": [],
            "a": []}  # fmt: skip
    diff = frame("c000usd_perp@depth@100ms", data)
    protocol.receive("coinm-public-0", diff, NOW, RecordSink())
    [snapshot] = [r for r in protocol.due_requests(NOW) if r.purpose is RestPurpose.BOOK_SNAPSHOT]
    assert snapshot.url == "https://dapi.binance.com/dapi/v1/depth?symbol=C000USD_PERP&limit=1000"
    assert snapshot.weight == 20
    with pytest.raises(ValueError, match="max_streams_per_connection"):
        venue("coinm", ("BTCUSD_PERP",), max_streams_per_connection="201")


@pytest.mark.parametrize(
    ("market", "symbols", "channels", "options", "message"),
    [
        ("spot", ("BTCUSDT",), (Channel.DERIVATIVE_TICKER,), {}, "futures only"),
        ("spot", ("BTCUSDT",), (Channel.LIQUIDATIONS,), {}, "futures only"),
        ("usdm", ("BTCUSDT",), (Channel.DERIVATIVE_TICKER,), {"mark_price_stream": "x"},
         "mark_price_stream"),
        ("usdm", ("BTCUSDT",), (Channel.TRADES,), {"open_interest_interval_s": "-1"},
         "open_interest_interval_s"),
        ("usdm", ("BTCUSDT",), (Channel.TRADES,), {"instruments_interval_s": "1"},
         "instruments_interval_s"),
        ("coinm", ("BTCUSD_2606",), (Channel.TRADES,), {}, "PAIR_YYMMDD"),
        ("coinm", ("BTCXYZ_PERP",), (Channel.TRADES,), {}, "cannot split"),
    ],
)  # fmt: skip
def test_config_errors_are_one_line(
    market: str,
    symbols: tuple[str, ...],
    channels: tuple[Channel, ...],
    options: dict[str, str],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        venue(market, symbols, *channels, **options)
    assert "\n" not in str(caught.value)


def test_mark_price_stream_option_picks_the_3s_stream() -> None:
    protocol = venue(
        "coinm", ("BTCUSD_PERP",), Channel.DERIVATIVE_TICKER, mark_price_stream="markPrice"
    )
    assert json.loads(protocol.connections()[0].subscribe[0])["params"] == ["btcusd_perp@markPrice"]
    off = venue("coinm", ("BTCUSD_PERP",), Channel.DERIVATIVE_TICKER, open_interest_interval_s="0")
    assert all(r.key == EXCHANGE_INFO_KEY for r in off.due_requests(NOW))


def test_open_interest_polls_stay_within_the_weight_budget() -> None:
    """Weight 1 each, counted by the shared scheduler: a budget of 20 a minute lets 20 of 30
    symbols poll now and the rest a minute later, never more."""
    symbols = tuple(f"C{n:02d}USDT" for n in range(30))
    protocol = venue(
        "usdm", symbols, Channel.DERIVATIVE_TICKER, rest_weight_per_minute="21",
        depth_limit="1000",
    )  # fmt: skip
    first = [k for k in requests(protocol, NOW) if k.endswith("@openInterest")]
    assert len(first) == 20  # 21 - 1 for the exchangeInfo sent with them
    assert not [k for k in requests(protocol, NOW + 30 * S) if k.endswith("@openInterest")]
    later = [k for k in requests(protocol, NOW + 61 * S) if k.endswith("@openInterest")]
    assert len(later) == 10


def test_an_odd_unconfigured_listing_entry_does_not_block_the_listing() -> None:
    """One symbol of hundreds without ``status``/``contractStatus`` (not ours) refused the whole
    exchangeInfo, retried forever: no instruments, no symbol check."""
    protocol = venue("usdm", ("BTCUSDT",), Channel.INSTRUMENTS)
    listing = json.loads(usdm_listing("0.10"))
    listing["symbols"].append({"symbol": "ODDUSDT", "baseAsset": "ODD", "quoteAsset": "USDT"})
    out = RecordSink()
    protocol.receive_response(
        requests(protocol, NOW)[EXCHANGE_INFO_KEY],
        RestResponse(200, json.dumps(listing).encode()), NOW, out,
    )  # fmt: skip
    assert [row.symbol for row in out.instruments] == ["BTC-USDT-PERP"]
    # ours without a status is still refused and asked again
    listing["symbols"][0].pop("status")
    refused = venue("usdm", ("BTCUSDT",), Channel.INSTRUMENTS)
    out = RecordSink()
    refused.receive_response(
        requests(refused, NOW)[EXCHANGE_INFO_KEY],
        RestResponse(200, json.dumps(listing).encode()), NOW, out,
    )  # fmt: skip
    assert not out.instruments
    assert EXCHANGE_INFO_KEY in requests(refused, NOW + 60 * S)


def test_an_inverse_contract_without_contract_size_is_unknown_not_one_usd() -> None:
    """COIN-M sizes are contracts of ``contractSize`` USD; a listing that does not say it must
    not become 1 USD (open interest value 100x off for BTC), but NaN."""
    protocol = venue("coinm", ("BTCUSD_PERP",), Channel.INSTRUMENTS, Channel.DERIVATIVE_TICKER)
    entry = {"symbol": "BTCUSD_PERP", "pair": "BTCUSD", "contractType": "PERPETUAL",
             "contractStatus": "TRADING", "baseAsset": "BTC", "quoteAsset": "USD",
             "marginAsset": "BTC", "filters": []}  # fmt: skip
    due = requests(protocol, NOW)
    out = RecordSink()
    protocol.receive_response(
        due[EXCHANGE_INFO_KEY], RestResponse(200, json.dumps({"symbols": [entry]}).encode()),
        NOW, out,
    )  # fmt: skip
    [row] = out.instruments
    assert row.inverse and math.isnan(row.contract_size)
    oi = due["BTCUSD_PERP@openInterest"]
    protocol.receive_response(oi, RestResponse(200, oi_body("BTCUSD_PERP", "7", T0)), NOW, out)
    [ticker] = out.derivative_ticker
    assert ticker.open_interest == 7 and math.isnan(ticker.open_interest_value)


def test_open_interest_interval_must_fit_half_the_weight_budget() -> None:
    """200 COIN-M symbols at the default minute: 200 weight of the 1200 (fits). A given interval
    the budget cannot honour is a one-line error, not polls silently falling behind; the
    default stretches (the book snapshots keep the other half)."""
    symbols = tuple(f"C{n:03d}USD_PERP" for n in range(200))
    fits = venue("coinm", symbols, Channel.DERIVATIVE_TICKER)
    assert fits.market_data.open_interest is not None
    assert fits.market_data.open_interest.interval_ns == 60 * S
    with pytest.raises(ValueError, match="give at least 20 ") as raised:
        venue("coinm", symbols, Channel.DERIVATIVE_TICKER, open_interest_interval_s="10")
    assert "\n" not in str(raised.value) and "1200 REST weight a minute" in str(raised.value)
    small = venue("coinm", symbols, Channel.DERIVATIVE_TICKER, rest_weight_per_minute="100")
    assert small.market_data.open_interest is not None
    assert small.market_data.open_interest.interval_ns == 240 * S  # 200 a minute would be 2x
    assert (
        venue(
            "coinm", symbols, Channel.DERIVATIVE_TICKER, open_interest_interval_s="0"
        ).market_data.open_interest
        is None
    )
