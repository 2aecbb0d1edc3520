"""The Bybit v5 public protocol, sans-I/O, on hand-written frames."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import pytest

from hundi.exchanges.base import (
    FrameStatus,
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestResponse,
    VenueConfig,
)
from hundi.exchanges.bybit import BybitVenue
from hundi.exchanges.bybit.book import BOOK_RULE
from hundi.exchanges.bybit.protocol import CONN, PING, BybitProtocol, trade_id
from hundi.exchanges.bybit.symbols import guess
from hundi.records import BASE, COMPLETE, QUOTE, Channel, EventKind

S = 1_000_000_000
MS = 1_000_000
T0_MS = 1_795_000_000_000
T0 = T0_MS * MS
ALL = (
    Channel.TRADES, Channel.BOOK, Channel.BBO, Channel.TICKER, Channel.CANDLES,
    Channel.DERIVATIVE_TICKER, Channel.LIQUIDATIONS, Channel.INSTRUMENTS, Channel.EVENTS,
)  # fmt: skip


def make(
    market: str = "linear",
    symbols: tuple[str, ...] = ("BTCUSDT",),
    channels: tuple[Channel, ...] = ALL,
    **options: str,
) -> BybitProtocol:
    return BybitVenue(VenueConfig(market, symbols, channels, options=options))


def info(symbol: str, base: str, quote: str, ctype: str, delivery: int = 0, **kw: Any) -> Any:
    entry = {
        "symbol": symbol, "status": "Trading", "baseCoin": base, "quoteCoin": quote,
        "settleCoin": kw.get("settle", quote), "contractType": ctype,
        "deliveryTime": str(delivery), "priceFilter": {"tickSize": kw.get("tick", "0.10")},
        "lotSizeFilter": {"qtyStep": "0.001", "basePrecision": "0.000001"},
    }  # fmt: skip
    return entry


def listing(p: BybitProtocol, entries: list[Any], out: RecordSink, cursor: str = "") -> None:
    (request,) = p.due_requests(T0)
    assert request.purpose is RestPurpose.SYMBOL_LISTING
    assert "/v5/market/instruments-info?category=" + p.market in request.url
    body = {"retCode": 0, "retMsg": "OK", "result": {"list": entries, "nextPageCursor": cursor}}
    p.receive_response(request, RestResponse(200, msgspec.json.encode(body)), T0, out)


def ready(market: str = "linear", symbols: tuple[str, ...] = ("BTCUSDT",), **kw: Any) -> Any:
    p = make(market, symbols, **kw)
    out = RecordSink()
    entries = {
        "linear": [info("BTCUSDT", "BTC", "USDT", "LinearPerpetual")],
        "inverse": [info("BTCUSD", "BTC", "USD", "InversePerpetual", settle="BTC")],
        "spot": [info("BTCUSDT", "BTC", "USDT", "")],
    }[market]
    listing(p, entries, out)
    (spec,) = p.connections()
    assert p.opening(spec, T0) is not None
    p.on_open(CONN, T0, out)
    return p, out


def push(topic: str, data: Any, kind: str = "snapshot", ts: int = T0_MS, **extra: Any) -> bytes:
    return msgspec.json.encode({"topic": topic, "type": kind, "ts": ts, "data": data, **extra})


def book(u: int, bids: Any = (), asks: Any = (), symbol: str = "BTCUSDT", seq: int = 7) -> Any:
    return {"s": symbol, "b": list(bids), "a": list(asks), "u": u, "seq": seq}


# -- symbols ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("market", "native", "symbol"),
    [
        ("spot", "BTCUSDT", "BTC-USDT"),
        ("spot", "ETHBTC", "ETH-BTC"),
        ("linear", "BTCUSDT", "BTC-USDT-PERP"),
        ("linear", "BTCPERP", "BTC-USDC-PERP"),
        ("linear", "BTC-26DEC25", "BTC-USDC-20251226"),
        ("linear", "BTCUSDT-27MAR26", "BTC-USDT-20260327"),
        ("inverse", "BTCUSD", "BTC-USD-PERP"),
    ],
)
def test_spelling_alone_names_the_documented_symbols(market: str, native: str, symbol: str) -> None:
    contract = guess(market, native)
    assert contract is not None and contract.symbol == symbol


def test_inverse_dated_futures_need_the_instrument_list() -> None:
    assert guess("inverse", "BTCUSDH26") is None
    p = make("inverse", ("BTCUSDH26",), (Channel.TRADES, Channel.INSTRUMENTS))
    (spec,) = p.connections()
    assert p.opening(spec, T0) is None  # waits for instruments-info
    out = RecordSink()
    delivery = 1_774_598_400_000  # 2026-03-27 08:00 UTC
    listing(p, [info("BTCUSDH26", "BTC", "USD", "InverseFutures", delivery, settle="BTC")], out)
    assert p.normalize_symbol("BTCUSDH26") == "BTC-USD-20260327"
    (inst,) = out.instruments
    assert (inst.contract_type, inst.inverse, inst.size_unit, inst.settle_asset) == (
        "future", True, QUOTE, "BTC",
    )  # fmt: skip
    assert inst.expiry == delivery * MS and inst.tick_size == 0.1 and inst.lot_size == 0.001
    opening = p.opening(spec, T0)
    assert opening is not None
    assert msgspec.json.decode(opening.messages[0]) == {
        "op": "subscribe", "args": ["publicTrade.BTCUSDH26"], "req_id": "s0",
    }  # fmt: skip


def test_unlisted_symbols_are_an_event_and_not_subscribed() -> None:
    p = make("linear", ("BTCUSDT", "NOPEUSDT"), (Channel.TRADES,))
    out = RecordSink()
    listing(p, [info("BTCUSDT", "BTC", "USDT", "LinearPerpetual")], out)
    (event,) = out.events
    assert event.kind == EventKind.INVALID_SYMBOL and event.native_symbol == "NOPEUSDT"
    (spec,) = p.connections()
    opening = p.opening(spec, T0)
    assert opening is not None
    assert msgspec.json.decode(opening.messages[0])["args"] == ["publicTrade.BTCUSDT"]
    with pytest.raises(RejectedFrame) as e:
        p.receive(CONN, push("publicTrade.NOPEUSDT", []), T0, RecordSink())
    assert e.value.reason == "unknown_symbol"


def test_a_paged_instrument_list_is_read_to_its_end() -> None:
    p = make("linear", ("ETHUSDT",), (Channel.TRADES,))
    out = RecordSink()
    listing(p, [info("BTCUSDT", "BTC", "USDT", "LinearPerpetual")], out, cursor="page2")
    (page,) = p.due_requests(T0)
    assert "cursor=page2" in page.url
    body = {"retCode": 0, "result": {"list": [info("ETHUSDT", "ETH", "USDT", "LinearPerpetual")]}}
    p.receive_response(page, RestResponse(200, msgspec.json.encode(body)), T0, out)
    assert not out.events and p.active == ["ETHUSDT"]


def test_an_unavailable_instrument_list_falls_back_to_the_spelling() -> None:
    p = make("linear", ("BTCUSDT",), (Channel.TRADES,))
    out = RecordSink()
    for attempt in range(3):
        (request,) = p.due_requests(T0 + attempt * 10 * S)
        p.receive_response(request, RestResponse(403, b"blocked"), T0 + attempt * 10 * S, out)
    (spec,) = p.connections()
    assert p.opening(spec, T0) is not None
    assert p.normalize_symbol("BTCUSDT") == "BTC-USDT-PERP"
    assert [e.kind for e in out.events] == [EventKind.INVALID_SYMBOL]  # says the list is missing


def test_instruments_are_polled_and_only_changes_emitted() -> None:
    p, out = ready("linear", instruments_interval_s="60")
    assert len(out.instruments) == 1 and out.instruments[0].size_unit == BASE
    assert p.next_wakeup_ns() is not None
    later = T0 + 61 * S
    (poll,) = p.due_requests(later)
    same = {"retCode": 0, "result": {"list": [info("BTCUSDT", "BTC", "USDT", "LinearPerpetual")]}}
    out2 = RecordSink()
    p.receive_response(poll, RestResponse(200, msgspec.json.encode(same)), later, out2)
    assert not out2.instruments
    (poll,) = p.due_requests(later + 61 * S)
    changed = {"retCode": 0, "result": {"list": [info("BTCUSDT", "BTC", "USDT",
               "LinearPerpetual", tick="0.5")]}}  # fmt: skip
    p.receive_response(poll, RestResponse(200, msgspec.json.encode(changed)), later, out2)
    assert [i.tick_size for i in out2.instruments] == [0.5]


# -- config -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("market", "channels", "options", "message"),
    [
        ("options", (Channel.TRADES,), {}, "bybit market must be spot, linear or inverse"),
        ("spot", (Channel.LIQUIDATIONS,), {}, "bybit spot has no liquidations"),
        ("linear", (Channel.ORDERS,), {}, "bybit does not serve orders"),
        ("linear", (Channel.BOOK,), {"depth": "25"}, "option depth must be one of"),
        ("linear", (Channel.CANDLES,), {"kline_interval": "2"}, "option kline_interval must"),
        ("linear", (Channel.TRADES,), {"nope": "1"}, "unknown bybit option(s): nope"),
    ],
)
def test_config_errors_are_one_line(
    market: str, channels: tuple[Channel, ...], options: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        BybitVenue(VenueConfig(market, ("BTCUSDT",), channels, options=options))
    assert "\n" not in str(e.value)


def test_a_misspelled_symbol_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="is not a Bybit symbol"):
        make("spot", ("btc/usdt",), (Channel.TRADES,))


# -- subscriptions and control frames ---------------------------------------------------------
def test_subscriptions_are_batched_ten_args_a_request() -> None:
    symbols = tuple(f"C{i}USDT" for i in range(6))
    p = make("spot", symbols, (Channel.TRADES, Channel.BOOK))
    (spec,) = p.connections()
    args = [msgspec.json.decode(m)["args"] for m in spec.subscribe]
    assert [len(a) for a in args] == [10, 2]
    assert args[0][:2] == ["publicTrade.C0USDT", "orderbook.50.C0USDT"]
    assert spec.url == "wss://stream.bybit.com/v5/public/spot"


def test_acks_and_pongs_are_filtered_and_a_refusal_is_an_event() -> None:
    p, _ = ready()
    out = RecordSink()
    ack = b'{"success":true,"ret_msg":"","conn_id":"c","op":"subscribe"}'
    spot_pong = b'{"success":true,"ret_msg":"pong","conn_id":"c","op":"ping"}'
    pong = b'{"req_id":"","op":"pong","args":["1675418560633"],"conn_id":"c"}'
    for frame in (ack, spot_pong, pong):
        assert p.receive(CONN, frame, T0, out) is FrameStatus.FILTERED
    refused = b'{"success":false,"ret_msg":"Invalid symbol :[orderbook.50.X]","op":"subscribe"}'
    assert p.receive(CONN, refused, T0, out) is FrameStatus.PROCESSED
    (event,) = out.events
    assert event.kind == EventKind.INVALID_SYMBOL and "Invalid symbol" in event.detail


def test_a_ping_goes_out_every_20_seconds() -> None:
    p, out = ready()
    assert p.take_messages() == []
    p.receive(CONN, b'{"op":"pong"}', T0 + 20 * S, out)
    assert p.take_messages() == [(CONN, PING)]
    assert p.take_messages() == []
    assert p.next_wakeup_ns() == T0 + 40 * S


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\xff\xfe", "malformed_json"),
        (b"{not json", "malformed_json"),
        (b'{"topic":"publicTrade.BTCUSDT","ts":1,"data":{"x":1}}', "invalid_message"),
        (b'{"foo":1}', "unknown_message"),
        (b'{"topic":"spread.BTCUSDT","type":"snapshot","ts":1,"data":[]}', "unknown_topic"),
        (b'{"topic":"orderbook.200.BTCUSDT","type":"snapshot","ts":1,"data":{}}', "unknown_topic"),
    ],
)
def test_bad_frames_are_rejected_with_their_reason(frame: bytes, reason: str) -> None:
    p, _ = ready()
    with pytest.raises(RejectedFrame) as e:
        p.receive(CONN, frame, T0, RecordSink())
    assert e.value.reason == reason


# -- trades -----------------------------------------------------------------------------------
def test_trades_with_uuid_and_numeric_ids() -> None:
    p, _ = ready()
    out = RecordSink()
    uuid = "8c3d2cd4-1b4a-5b5b-8c6e-6e4f1c3d2b1a"
    data = [
        {"T": T0_MS, "s": "BTCUSDT", "S": "Buy", "v": "0.5", "p": "60000.5", "i": uuid},
        {"T": T0_MS, "s": "BTCUSDT", "S": "Sell", "v": "1", "p": "60000", "i": "2290000000061"},
    ]
    assert p.receive(CONN, push("publicTrade.BTCUSDT", data), T0, out) is FrameStatus.PROCESSED
    a, b = out.trades
    assert (a.symbol, a.side, a.price, a.size, a.ts) == ("BTC-USDT-PERP", 1, 60000.5, 0.5, T0)
    assert a.trade_id == trade_id(uuid) and 0 <= a.trade_id < 2**63
    assert trade_id(uuid) == trade_id(uuid) != trade_id(uuid.replace("8", "9"))
    assert (b.side, b.trade_id) == (-1, 2290000000061)


def test_a_bad_trade_rejects_the_whole_frame() -> None:
    p, _ = ready()
    out = RecordSink()
    data = [
        {"T": T0_MS, "s": "BTCUSDT", "S": "Buy", "v": "1", "p": "1", "i": "1"},
        {"T": T0_MS, "s": "BTCUSDT", "S": "Hold", "v": "1", "p": "1", "i": "2"},
    ]
    with pytest.raises(RejectedFrame) as e:
        p.receive(CONN, push("publicTrade.BTCUSDT", data), T0, out)
    assert e.value.reason == "invalid_field" and not out.trades
    data[1]["S"], data[1]["p"] = "Sell", "-1"
    with pytest.raises(RejectedFrame) as e:
        p.receive(CONN, push("publicTrade.BTCUSDT", data), T0, out)
    assert e.value.reason == "invalid_value"


# -- books ------------------------------------------------------------------------------------
def test_book_snapshot_deltas_and_rows() -> None:
    p, _ = ready(channels=(Channel.BOOK, Channel.EVENTS))
    out = RecordSink()
    topic = "orderbook.50.BTCUSDT"
    snap = book(100, [["10", "1"], ["9", "2"]], [["11", "1"]], seq=900)
    p.receive(CONN, push(topic, snap), T0, out)
    assert [e.kind for e in out.events] == [EventKind.SYNCED]
    assert len(out.book) == 3
    assert all(r.snapshot and (r.first_update_id, r.update_id) == (100, 900) for r in out.book)
    out = RecordSink()
    diff = book(101, [["10", "0"]], [["10.5", "3"]], seq=905)
    p.receive(CONN, push(topic, diff, "delta"), T0, out)
    assert [(r.side, r.price, r.size, r.first_update_id, r.update_id, r.prev_update_id)
            for r in out.book] == [
        (1, 10.0, 0.0, 101, 905, 900), (-1, 10.5, 3.0, 101, 905, 900),
    ]  # fmt: skip
    (status,) = p.books()
    assert status.synced and (status.best_bid, status.best_ask, status.last_update_id) == (
        9.0, 10.5, 101,
    )  # fmt: skip


def test_a_skipped_u_is_a_gap_and_a_resubscribe_in_place() -> None:
    p, _ = ready(channels=(Channel.BOOK, Channel.EVENTS))
    topic = "orderbook.50.BTCUSDT"
    out = RecordSink()
    p.receive(CONN, push(topic, book(100, [["10", "1"]], [["11", "1"]])), T0, out)
    out = RecordSink()
    p.receive(CONN, push(topic, book(102, [["10", "2"]]), "delta"), T0, out)
    gap, resync = out.events
    assert (gap.kind, gap.expected, gap.received) == (EventKind.GAP, 101, 102)
    assert resync.kind == EventKind.RESYNC and not out.book
    sent = [msgspec.json.decode(m) for _, m in p.take_messages()]
    assert sent == [
        {"op": "unsubscribe", "args": [topic]},
        {"op": "subscribe", "args": [topic], "req_id": "r1"},
    ]
    # deltas before the fresh snapshot are not applied
    stale = push(topic, book(103, [["10", "5"]]), "delta")
    assert p.receive(CONN, stale, T0, RecordSink()) is FrameStatus.FILTERED
    out = RecordSink()
    p.receive(CONN, push(topic, book(200, [["10", "4"]], [["11", "1"]])), T0, out)
    assert [e.kind for e in out.events] == [EventKind.SYNCED] and p.books()[0].synced


def test_a_resubscribe_that_brings_no_snapshot_reconnects() -> None:
    p, _ = ready(channels=(Channel.BOOK,))
    topic = "orderbook.50.BTCUSDT"
    p.receive(CONN, push(topic, book(5, [["10", "1"]], [["11", "1"]])), T0, RecordSink())
    p.receive(CONN, push(topic, book(9, [], []), "delta"), T0, RecordSink())
    assert p.take_reconnects() == []
    p.receive(CONN, b'{"op":"pong"}', T0 + 31 * S, RecordSink())
    assert p.take_reconnects() == [CONN]


def test_u_1_snapshot_is_a_service_restart_that_overwrites_the_book() -> None:
    p, _ = ready(channels=(Channel.BOOK, Channel.EVENTS))
    topic = "orderbook.50.BTCUSDT"
    p.receive(
        CONN, push(topic, book(500, [["10", "1"], ["9", "1"]], [["11", "1"]])), T0, RecordSink()
    )
    out = RecordSink()
    p.receive(CONN, push(topic, book(1, [["8", "1"]], [["12", "1"]])), T0, out)
    (event,) = out.events
    assert event.kind == EventKind.RESYNC and "restarted" in event.detail
    assert all(r.snapshot and r.first_update_id == 1 for r in out.book)
    (status,) = p.books()
    assert (status.bids, status.best_bid, status.best_ask) == (1, 8.0, 12.0)
    p.receive(CONN, push(topic, book(2, [["8.5", "1"]]), "delta"), T0, out)
    assert p.books()[0].best_bid == 8.5


def test_a_crossing_delta_is_a_gap() -> None:
    p, _ = ready(channels=(Channel.BOOK, Channel.EVENTS))
    topic = "orderbook.50.BTCUSDT"
    p.receive(CONN, push(topic, book(1, [["10", "1"]], [["11", "1"]])), T0, RecordSink())
    out = RecordSink()
    p.receive(CONN, push(topic, book(2, [["12", "1"]]), "delta"), T0, out)
    assert out.events[0].kind == EventKind.GAP and "crossed" in out.events[0].detail
    assert not p.books()[0].synced


def test_bbo_from_orderbook_1_keeps_the_other_side_and_resnapshots_with_the_same_u() -> None:
    p, _ = ready(channels=(Channel.BBO,))
    topic = "orderbook.1.BTCUSDT"
    out = RecordSink()
    p.receive(CONN, push(topic, book(7, [["10", "1"]], [["11", "2"]])), T0, out)
    p.receive(CONN, push(topic, book(8, [], [["10.5", "1"]]), "delta"), T0, out)
    p.receive(CONN, push(topic, book(8, [], [["10.5", "1"]])), T0, out)  # the 3 s re-snapshot
    assert [(b.bid_price, b.bid_size, b.ask_price, b.ask_size, b.update_id) for b in out.bbo] == [
        (10.0, 1.0, 11.0, 2.0, 7), (10.0, 1.0, 10.5, 1.0, 8), (0.0, 0.0, 10.5, 1.0, 8),
    ]  # fmt: skip
    assert not out.book and not [e for e in out.events if e.kind == EventKind.GAP]


def test_a_dropped_connection_is_a_gap_for_synced_books() -> None:
    p, _ = ready(channels=(Channel.BOOK, Channel.EVENTS))
    p.receive(CONN, push("orderbook.50.BTCUSDT", book(3, [["1", "1"]], [])), T0, RecordSink())
    out = RecordSink()
    p.on_close(CONN, T0, out)
    (gap,) = out.events
    assert gap.kind == EventKind.GAP and gap.expected == 4 and not p.books()[0].synced


def test_the_book_rule_wants_the_previous_rows_seq() -> None:
    prev = np.array([100, 100], np.int64)  # update_id (seq) of the row before
    u = np.array([7, 8], np.int64)
    seq = np.array([104, 109], np.int64)
    prev_seq = np.array([100, 103], np.int64)
    assert BOOK_RULE.after_diff(u, seq, prev_seq, prev).tolist() == [True, False]
    assert BOOK_RULE.after_snapshot(u, seq, prev_seq, prev).tolist() == [True, False]
    # a delta stored just before a snapshot of the same seq sorts after it: its own state
    same = np.array([100], np.int64)
    assert BOOK_RULE.after_snapshot(u[:1], same, np.array([94], np.int64), same).tolist() == [True]
    assert BOOK_RULE.after_diff(u[:1], same, np.array([94], np.int64), same).tolist() == [False]


# -- tickers ----------------------------------------------------------------------------------
LINEAR_TICKER = {
    "symbol": "BTCUSDT", "lastPrice": "60000", "prevPrice24h": "59000", "highPrice24h": "61000",
    "lowPrice24h": "58000", "volume24h": "100", "turnover24h": "6000000", "markPrice": "60001",
    "indexPrice": "60002", "fundingRate": "0.0001", "nextFundingTime": str(T0_MS + 3600_000),
    "openInterest": "5000", "openInterestValue": "300005000", "price24hPcnt": "0.0169",
}  # fmt: skip


def test_ticker_deltas_merge_into_full_records() -> None:
    p, _ = ready()
    out = RecordSink()
    p.receive(CONN, push("tickers.BTCUSDT", LINEAR_TICKER, cs=1), T0, out)
    p.receive(CONN, push("tickers.BTCUSDT", {"symbol": "BTCUSDT", "markPrice": "60100"},
                         "delta"), T0 + MS, out)  # fmt: skip
    p.receive(CONN, push("tickers.BTCUSDT", {"symbol": "BTCUSDT", "lastPrice": "60200"},
                         "delta"), T0 + 2 * MS, out)  # fmt: skip
    first, merged = out.derivative_ticker
    assert (first.mark_price, first.index_price, first.funding_rate) == (60001, 60002, 0.0001)
    assert first.next_funding_time == (T0_MS + 3600_000) * MS and first.size_unit == BASE
    assert (merged.mark_price, merged.index_price, merged.open_interest) == (60100, 60002, 5000)
    assert math.isnan(merged.predicted_funding_rate)
    assert [t.last_price for t in out.ticker] == [60000, 60200]  # no ticker for a mark-only delta
    last = out.ticker[-1]
    assert (last.open_price, last.high_price, last.volume, last.quote_volume) == (
        59000, 61000, 100, 6000000,
    )  # fmt: skip
    assert last.price_change == 1200 and last.vwap == 60000


def test_a_ticker_delta_before_its_snapshot_is_filtered_and_unknown_fields_are_nan() -> None:
    p, _ = ready()
    out = RecordSink()
    delta = push("tickers.BTCUSDT", {"symbol": "BTCUSDT", "markPrice": "1"}, "delta")
    assert p.receive(CONN, delta, T0, out) is FrameStatus.FILTERED
    p.receive(CONN, push("tickers.BTCUSDT", {"symbol": "BTCUSDT", "markPrice": "2"}), T0, out)
    (d,) = out.derivative_ticker
    assert d.mark_price == 2 and math.isnan(d.index_price) and d.next_funding_time == 0


def test_a_rejected_ticker_delta_leaves_the_merged_state() -> None:
    p, _ = ready()
    out = RecordSink()
    p.receive(CONN, push("tickers.BTCUSDT", LINEAR_TICKER), T0, out)
    bad = push("tickers.BTCUSDT", {"symbol": "BTCUSDT", "markPrice": "x", "indexPrice": "1"},
               "delta")  # fmt: skip
    with pytest.raises(RejectedFrame):
        p.receive(CONN, bad, T0, out)
    p.receive(CONN, push("tickers.BTCUSDT", {"symbol": "BTCUSDT", "fundingRate": "0.0002"},
                         "delta"), T0, out)  # fmt: skip
    last = out.derivative_ticker[-1]
    assert (last.mark_price, last.index_price, last.funding_rate) == (60001, 60002, 0.0002)


def test_19_digit_spot_trade_ids_are_kept_as_numbers() -> None:
    assert trade_id("2290000000061666327") == 2290000000061666327
    assert trade_id("9999999999999999999") != 9999999999999999999  # above 2**63 - 1: hashed


def test_inverse_tickers_swap_volumes_and_count_open_interest_in_usd() -> None:
    p, _ = ready("inverse", ("BTCUSD",))
    out = RecordSink()
    data = {**LINEAR_TICKER, "symbol": "BTCUSD", "volume24h": "6000000", "turnover24h": "100"}
    p.receive(CONN, push("tickers.BTCUSD", data), T0, out)
    assert out.ticker[0].volume == 100 and out.ticker[0].quote_volume == 6000000
    assert out.derivative_ticker[0].size_unit == QUOTE
    # the value is in the quote currency: the USD open interest, not Bybit's value in the coin
    oi = float(LINEAR_TICKER["openInterest"])
    assert out.derivative_ticker[0].open_interest == oi
    assert out.derivative_ticker[0].open_interest_value == oi
    assert oi != float(LINEAR_TICKER["openInterestValue"])
    assert out.ticker[0].symbol == "BTC-USD-PERP"


def test_spot_tickers() -> None:
    p, _ = ready("spot", channels=(Channel.TICKER,))
    out = RecordSink()
    data = {k: LINEAR_TICKER[k] for k in ("symbol", "lastPrice", "prevPrice24h", "volume24h")}
    p.receive(CONN, push("tickers.BTCUSDT", data), T0, out)
    assert out.ticker[0].symbol == "BTC-USDT" and not out.derivative_ticker


# -- candles and liquidations ------------------------------------------------------------------
def test_klines_become_candles() -> None:
    p, _ = ready(kline_interval="60")
    out = RecordSink()
    k = {
        "start": T0_MS, "end": T0_MS + 3599_999, "interval": "60", "open": "1", "close": "2",
        "high": "3", "low": "0.5", "volume": "10", "turnover": "15", "confirm": False,
        "timestamp": T0_MS + 5,
    }  # fmt: skip
    p.receive(CONN, push("kline.60.BTCUSDT", [k]), T0, out)
    (c,) = out.candles
    assert (c.interval, c.open_time, c.close_time, c.high, c.volume, c.closed) == (
        "1h", T0, (T0_MS + 3599_999) * MS, 3.0, 10.0, False,
    )  # fmt: skip
    k["high"] = "0.1"
    with pytest.raises(RejectedFrame):
        p.receive(CONN, push("kline.60.BTCUSDT", [k]), T0, RecordSink())


def test_liquidations_take_the_order_side_opposite_the_position() -> None:
    p, _ = ready()
    out = RecordSink()
    data = [
        {"T": T0_MS, "s": "BTCUSDT", "S": "Buy", "v": "0.5", "p": "59000"},
        {"T": T0_MS, "s": "BTCUSDT", "S": "Sell", "v": "0.25", "p": "61000"},
    ]
    p.receive(CONN, push("allLiquidation.BTCUSDT", data), T0, out)
    long_liq, short_liq = out.liquidations
    assert (long_liq.side, long_liq.price, long_liq.size) == (-1, 59000, 0.5)
    assert short_liq.side == 1 and long_liq.completeness == COMPLETE
    assert long_liq.size_unit == BASE
    assert (long_liq.position, short_liq.position) == (0, 1)


def test_identical_liquidations_of_one_message_stay_two_records() -> None:
    p, _ = ready()
    out = RecordSink()
    same = {"T": T0_MS, "s": "BTCUSDT", "S": "Buy", "v": "0.5", "p": "59000"}
    p.receive(CONN, push("allLiquidation.BTCUSDT", [same, dict(same)]), T0, out)
    keys = {tuple(getattr(r, f) for f in ("ts", *r.IDENTITY)) for r in out.liquidations}
    assert len(out.liquidations) == len(keys) == 2


def test_liquidation_order_side_must_be_buy_or_sell() -> None:
    p, _ = ready()
    data = [{"T": T0_MS, "s": "BTCUSDT", "S": "Buy", "v": "0.5", "p": "59000"}]
    data[0]["S"] = "Long"
    with pytest.raises(RejectedFrame):
        p.receive(CONN, push("allLiquidation.BTCUSDT", data), T0, RecordSink())


def test_stored_book_after_a_u_1_restart_reads_back_as_the_live_book(tmp_path: Any) -> None:
    """Readers order a symbol's stored rows by ``update_id``: after a ``u = 1`` service restart
    the rows must still sort after the book they replaced (``update_id`` is the cross sequence
    ``seq``, not ``u``), so the stored book at a time is the live one."""
    from hundi.research.book import book_at
    from hundi.stores.embedded import EmbeddedStore

    p, _ = ready(channels=(Channel.BOOK, Channel.EVENTS))
    topic = "orderbook.50.BTCUSDT"
    out = RecordSink()
    frames = [
        (book(500, [["10", "1"], ["9", "1"]], [["11", "1"]], seq=9000), "snapshot"),
        (book(501, [["9.5", "2"]], seq=9004), "delta"),
        (book(1, [["8", "1"]], [["12", "1"]], seq=9010), "snapshot"),  # service restart
        (book(2, [["8.5", "1"]], seq=9011), "delta"),
    ]
    for i, (data, kind) in enumerate(frames):
        at = T0_MS + 10 * i
        assert p.receive(CONN, push(topic, data, kind, ts=at), at * MS, out) is (
            FrameStatus.PROCESSED
        )
    store = EmbeddedStore(str(tmp_path), fsync=False)
    store.write({Channel.BOOK: out.book, Channel.EVENTS: out.events})
    store.close()
    reader = EmbeddedStore(str(tmp_path))
    before = book_at(reader, "bybit", "BTC-USDT-PERP", (T0_MS + 15) * MS)
    after = book_at(reader, "bybit", "BTC-USDT-PERP", (T0_MS + 35) * MS)

    def levels(frame: Any) -> list[tuple[int, float, float]]:
        return sorted(zip(frame["side"], frame["price"], frame["size"], strict=True))

    assert levels(before) == [(-1, 11.0, 1.0), (1, 9.0, 1.0), (1, 9.5, 2.0), (1, 10.0, 1.0)]
    assert levels(after) == [(-1, 12.0, 1.0), (1, 8.0, 1.0), (1, 8.5, 1.0)]
    assert after.attrs["synced"]
    (status,) = p.books()
    assert (status.best_bid, status.best_ask) == (8.5, 12.0)


def test_a_refused_subscription_names_its_topics_and_symbols() -> None:
    """Bybit echoes a request's ``req_id`` in its answer: a refusal is an event per refused
    topic, naming its symbol (a symbol-less event says nothing about which data is missing)."""
    listing_entries = [
        info("BTCUSDT", "BTC", "USDT", "LinearPerpetual"),
        info("ETHUSDT", "ETH", "USDT", "LinearPerpetual"),
    ]
    p = make("linear", ("BTCUSDT", "ETHUSDT"), (Channel.TRADES, Channel.EVENTS))
    listing(p, listing_entries, RecordSink())
    (spec,) = p.connections()
    opening = p.opening(spec, T0)
    assert opening is not None
    (request,) = [msgspec.json.decode(m) for m in opening.messages]
    assert request["args"] == ["publicTrade.BTCUSDT", "publicTrade.ETHUSDT"] and request["req_id"]
    p.on_open(CONN, T0, RecordSink())
    refusal = {"success": False, "ret_msg": "error:handler not found", "conn_id": "c",
               "req_id": request["req_id"], "op": "subscribe"}  # fmt: skip
    out = RecordSink()
    assert p.receive(CONN, msgspec.json.encode(refusal), T0, out) is FrameStatus.PROCESSED
    assert [(e.kind, e.native_symbol, e.symbol) for e in out.events] == [
        (EventKind.INVALID_SYMBOL, "BTCUSDT", "BTC-USDT-PERP"),
        (EventKind.INVALID_SYMBOL, "ETHUSDT", "ETH-USDT-PERP"),
    ]
    assert all("publicTrade." in e.detail and "handler not found" in e.detail for e in out.events)


def test_uuid_trades_get_ids_in_exchange_order_so_bars_open_and_close_right() -> None:
    """Readers (the bar series) order a symbol's trades by ``trade_id``. Derivatives' ``i`` is a
    UUID, so a hash of it orders trades at random: the ids follow Bybit's cross sequence
    ``seq`` (then the trade's place among the fills of that ``seq``), which grows with time."""
    import numpy as np

    from hundi.series.core import TimeBarBuilder

    p, _ = ready()
    out = RecordSink()
    uuids = [f"{n:08x}-1b4a-5b5b-8c6e-6e4f1c3d2b1a" for n in (0xF0, 0x10, 0xA0, 0x05, 0x77)]
    fills = [  # (price, seq): one sweep of three fills (one seq), then two later trades
        ("100", 5000),
        ("101", 5000),
        ("102", 5000),
        ("99", 5003),
        ("103", 5009),
    ]
    for (price, seq), uuid in zip(fills, uuids, strict=True):
        row = {"T": T0_MS, "s": "BTCUSDT", "S": "Buy", "v": "1", "p": price, "i": uuid, "seq": seq}
        p.receive(CONN, push("publicTrade.BTCUSDT", [row]), T0, out)
    ids = [t.trade_id for t in out.trades]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    builder = TimeBarBuilder(60 * S, 0)
    builder.add({
        "ts": np.array([t.ts for t in out.trades], np.int64),
        "recv_ts": np.array([t.recv_ts for t in out.trades], np.int64),
        "price": np.array([t.price for t in out.trades]),
        "size": np.array([t.size for t in out.trades]),
        "side": np.array([t.side for t in out.trades], np.int8),
        "trade_id": np.array(ids, np.int64),
    })  # fmt: skip
    bars = builder.close(T0 + 120 * S)
    assert bars is not None
    assert (bars["open"][0], bars["close"][0]) == (100.0, 103.0)
