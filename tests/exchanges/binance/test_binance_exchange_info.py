"""The start-up exchangeInfo check: configured symbols Binance cannot serve are said, not silent."""

from __future__ import annotations

from typing import Any

import msgspec

from hundi.exchanges.base import RecordSink, RestRequest, RestResponse, VenueConfig
from hundi.exchanges.binance import BinanceVenue
from hundi.exchanges.binance.protocol import EXCHANGE_INFO_KEY, BinanceProtocol
from hundi.records import Channel, Event, EventKind

S = 1_000_000_000
MS = 1_000_000
SPACING = 100 * MS  # default rest_min_interval_ms


def venue(market: str, *symbols: str) -> BinanceProtocol:
    return BinanceVenue(VenueConfig(market, symbols, (Channel.BOOK, Channel.TRADES)))


def listing(*symbols: tuple[str, str, str, str], futures: bool = False) -> bytes:
    """An exchangeInfo body: (symbol, base, quote, status[/contractType]) with real extras."""
    entries: list[dict[str, Any]] = []
    for name, base, quote, state in symbols:
        status, _, contract = state.partition("/")
        entry: dict[str, Any] = {
            "symbol": name, "status": status, "baseAsset": base, "quoteAsset": quote,
            "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.01"}],
        }  # fmt: skip
        if futures:
            entry["contractType"] = contract or "PERPETUAL"
        entries.append(entry)
    return msgspec.json.encode(
        {"timezone": "UTC", "serverTime": 1, "rateLimits": [], "symbols": entries}
    )


def ask_info(protocol: BinanceProtocol, now: int) -> RestRequest:
    [request] = protocol.due_requests(now)
    assert request.key == EXCHANGE_INFO_KEY
    return request


def answer(protocol: BinanceProtocol, response: RestResponse, now: int) -> list[Event]:
    out = RecordSink()
    protocol.receive_response(ask_info(protocol, now), response, now + MS, out)
    assert len(out) == len(out.events)  # nothing but events
    return out.events


def buffer_diff(protocol: BinanceProtocol, native: str, now: int) -> None:
    frame = (
        f'{{"stream":"{native.lower()}@depth@100ms","data":{{"e":"depthUpdate","E":1,'
        f'"s":"{native}","U":100,"u":101,"b":[],"a":[]}}}}'
    ).encode()
    protocol.receive("spot-public-0", frame, now, RecordSink())


def test_request_url_weight_and_key_per_market() -> None:
    spot = ask_info(venue("spot", "BTCUSDT"), 0)
    assert (spot.url, spot.weight) == ("https://api.binance.com/api/v3/exchangeInfo", 20)
    usdm = ask_info(venue("usdm", "BTCUSDT"), 0)
    assert (usdm.url, usdm.weight) == ("https://fapi.binance.com/fapi/v1/exchangeInfo", 1)
    custom = BinanceVenue(
        VenueConfig("spot", ("BTCUSDT",), (Channel.TRADES,), rest_endpoint="http://h:1/")
    )
    assert ask_info(custom, 0).url == "http://h:1/api/v3/exchangeInfo"


def test_listed_trading_symbols_give_no_event_and_are_never_asked_again() -> None:
    protocol = venue("spot", "BTCUSDT", "ETHBTC")
    body = listing(("ETHBTC", "ETH", "BTC", "TRADING"), ("BTCUSDT", "BTC", "USDT", "TRADING"))
    assert answer(protocol, RestResponse(200, body), 0) == []
    assert protocol.invalid_symbols == []
    assert protocol.due_requests(3600 * S) == []
    assert protocol.next_wakeup_ns() is None


def test_unlisted_symbol_is_one_invalid_symbol_event() -> None:
    protocol = venue("spot", "XYZUSDT", "BTCUSDT")
    body = listing(("BTCUSDT", "BTC", "USDT", "TRADING"))
    [event] = answer(protocol, RestResponse(200, body), 5 * S)
    assert (event.kind, event.symbol, event.native_symbol, event.channel) == (
        EventKind.INVALID_SYMBOL, "XYZ-USDT", "XYZUSDT", "",
    )  # fmt: skip
    assert event.detail == "BINANCE spot does not list XYZUSDT (exchangeInfo)"
    assert (event.ts, event.recv_ts, event.expected, event.received) == (
        5 * S + MS, 5 * S + MS, -1, -1,
    )  # fmt: skip
    assert event.exchange == "binance"
    assert protocol.invalid_symbols == ["XYZUSDT"]


def test_listed_but_not_trading_names_the_status() -> None:
    protocol = venue("spot", "LUNAUSDT", "BTCUSDT")
    body = listing(("LUNAUSDT", "LUNA", "USDT", "BREAK"), ("BTCUSDT", "BTC", "USDT", "TRADING"))
    [event] = answer(protocol, RestResponse(200, body), 0)
    assert (event.kind, event.native_symbol) == (EventKind.INVALID_SYMBOL, "LUNAUSDT")
    assert event.detail == (
        "BINANCE spot lists LUNAUSDT (LUNA/USDT) with status BREAK, not TRADING (exchangeInfo)"
    )


def test_usdm_symbol_collected_as_perp_must_be_a_perpetual() -> None:
    protocol = venue("usdm", "BTCUSDT", "XAUUSDT", "BTCUSDT_260626")
    body = listing(
        ("BTCUSDT", "BTC", "USDT", "TRADING/PERPETUAL"),
        ("XAUUSDT", "XAU", "USDT", "TRADING/TRADIFI_PERPETUAL"),
        ("BTCUSDT_260626", "BTC", "USDT", "TRADING/CURRENT_QUARTER"),  # a delivery, named so
        futures=True,
    )
    [event] = answer(protocol, RestResponse(200, body), 0)
    assert (event.symbol, event.native_symbol) == ("XAU-USDT-PERP", "XAUUSDT")
    assert event.detail == (
        "BINANCE usdm lists XAUUSDT (XAU/USDT) as TRADIFI_PERPETUAL, not PERPETUAL, yet it is "
        "collected as XAU-USDT-PERP (exchangeInfo)"
    )
    assert protocol.invalid_symbols == ["XAUUSDT"]


def test_malformed_answers_are_retried_with_back_off_never_raised() -> None:
    protocol = venue("spot", "XYZUSDT")
    now = 0
    for body in (
        b"<html>bad gateway</html>",
        b'{"code":-1121,"msg":"Invalid symbol."}',
        b'{"symbols":[{"symbol":1,"status":"TRADING"}]}',
        b'{"symbols":[{"symbol":"XYZUSDT"}]}',  # no status: cannot tell
        b'{"symbols":"\xff"}',
    ):
        assert answer(protocol, RestResponse(200, body), now) == []
        wake = protocol.next_wakeup_ns()
        assert wake is not None and wake > now + MS  # backed off, then asked again
        assert protocol.due_requests(wake - 1) == []
        now = wake
    assert protocol.invalid_symbols == []
    [event] = answer(protocol, RestResponse(200, listing()), now)
    assert event.native_symbol == "XYZUSDT"


def test_429_then_success() -> None:
    protocol = venue("spot", "XYZUSDT")
    limited = RestResponse(429, b'{"code":-1003}', {"Retry-After": "3"})
    assert answer(protocol, limited, 0) == []
    assert protocol.next_wakeup_ns() == MS + 3 * S
    assert protocol.due_requests(MS + 3 * S - 1) == []
    [event] = answer(protocol, RestResponse(200, listing()), MS + 3 * S)
    assert event.kind == EventKind.INVALID_SYMBOL


def test_exchange_info_neither_waits_for_nor_delays_book_snapshots() -> None:
    protocol = venue("spot", "BTCUSDT", "ETHUSDT")
    buffer_diff(protocol, "BTCUSDT", 0)
    buffer_diff(protocol, "ETHUSDT", 0)
    assert [r.key for r in protocol.due_requests(0)] == ["BTCUSDT", EXCHANGE_INFO_KEY]
    assert protocol.next_wakeup_ns() == SPACING  # after BTCUSDT only
    assert [r.key for r in protocol.due_requests(SPACING)] == ["ETHUSDT"]


def test_failing_exchange_info_never_delays_book_snapshots() -> None:
    """Server errors on exchangeInfo back off only exchangeInfo, not the books' snapshots."""
    protocol = venue("spot", "BTCUSDT", "ETHUSDT", "XYZUSDT")
    now = 0
    for status in (503, 599, 500, 502):
        request = ask_info(protocol, now)
        protocol.receive_response(request, RestResponse(status, b""), now + MS, RecordSink())
        retry = protocol.next_wakeup_ns()
        assert retry is not None and retry >= now + MS + 250 * MS  # its own back-off
        if status == 502:
            break
        now = retry
    # Books want snapshots during that back-off: only their own spacing paces them.
    buffer_diff(protocol, "BTCUSDT", now + 2 * MS)
    buffer_diff(protocol, "ETHUSDT", now + 2 * MS)
    assert protocol.next_wakeup_ns() == now + 2 * MS
    assert [r.key for r in protocol.due_requests(now + 2 * MS)] == ["BTCUSDT"]
    assert [r.key for r in protocol.due_requests(now + 2 * MS + SPACING)] == ["ETHUSDT"]
    retry = protocol.next_wakeup_ns()
    assert retry is not None and retry > now + 2 * MS + SPACING  # exchangeInfo, backing off
    body = listing(("BTCUSDT", "BTC", "USDT", "TRADING"), ("ETHUSDT", "ETH", "USDT", "TRADING"))
    [event] = answer(protocol, RestResponse(200, body), retry)
    assert event.native_symbol == "XYZUSDT"
    assert protocol.invalid_symbols == ["XYZUSDT"]
