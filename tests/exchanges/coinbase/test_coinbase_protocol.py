"""The Coinbase protocol on hand-written ws-feed frames and REST answers."""

from __future__ import annotations

import base64
import json
import math
import time
from typing import Any

import pytest

from hundi.exchanges.base import (
    FrameStatus,
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestRequest,
    RestResponse,
    StreamSpec,
    VenueConfig,
    VenueProtocol,
)
from hundi.exchanges.coinbase import CoinbaseVenue
from hundi.exchanges.coinbase import protocol as coinbase_protocol
from hundi.exchanges.coinbase.full import FULL_CONN
from hundi.exchanges.coinbase.protocol import LEVEL2, MATCHES, CoinbaseProtocol
from hundi.exchanges.coinbase.symbols import normalize
from hundi.exchanges.coinbase.timeparse import parse_time
from hundi.records import ASK, BID, BUY, SELL, Channel, Event

T0 = "2026-12-03T06:00:00.123456Z"
T0_NS = parse_time(T0)
RECV = T0_NS + 5_000_000
ALL = (Channel.TRADES, Channel.TICKER, Channel.BBO, Channel.BOOK, Channel.EVENTS)


def venue(*symbols: str, channels: tuple[Channel, ...] = ALL, **options: str) -> CoinbaseProtocol:
    return CoinbaseVenue(
        VenueConfig(
            market="spot", symbols=symbols or ("BTC-USD",), channels=channels, options=dict(options)
        )
    )


def frame(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def match(tid: int, *, side: str = "sell", product: str = "BTC-USD", kind: str = "match") -> bytes:
    return frame(
        type=kind,
        trade_id=tid,
        maker_order_id="m",
        taker_order_id="t",
        side=side,
        size="0.5",
        price="100.25",
        product_id=product,
        sequence=tid * 10,
        time=T0,
    )


def snapshot(bids: list[list[str]], asks: list[list[str]], product: str = "BTC-USD") -> bytes:
    return frame(type="snapshot", product_id=product, bids=bids, asks=asks, time=T0)


def l2update(*changes: list[str], product: str = "BTC-USD") -> bytes:
    return frame(type="l2update", product_id=product, changes=list(changes), time=T0)


def feed(p: CoinbaseProtocol, data: bytes, conn: str = MATCHES) -> tuple[FrameStatus, RecordSink]:
    out = RecordSink()
    return p.receive(conn, data, RECV, out), out


def rejected(p: CoinbaseProtocol, data: bytes, conn: str = MATCHES) -> str:
    with pytest.raises(RejectedFrame) as caught:
        feed(p, data, conn)
    return caught.value.reason


def synced_book(p: CoinbaseProtocol) -> None:
    status, _ = feed(p, snapshot([["100", "1"], ["99", "2"]], [["101", "1.5"]]), LEVEL2)
    assert status is FrameStatus.PROCESSED


# -------------------------------------------------------------------- config and connections


def test_connections_subscribe_matches_heartbeat_ticker_and_level2_batch_apart() -> None:
    p = venue("BTC-USD", "ETH-EUR")
    specs = p.connections()
    assert [s.key for s in specs] == [MATCHES, LEVEL2]
    assert all(s.url == "wss://ws-feed.exchange.coinbase.com" for s in specs)
    first = json.loads(specs[0].subscribe[0])
    assert first == {
        "type": "subscribe",
        "product_ids": ["BTC-USD", "ETH-EUR"],
        "channels": ["matches", "heartbeat", "ticker"],
    }
    second = json.loads(specs[1].subscribe[0])
    assert second["channels"] == ["level2_batch", "heartbeat"]
    assert p.rest_url == "https://api.exchange.coinbase.com"


def test_only_the_connections_the_channels_need() -> None:
    assert [s.key for s in venue(channels=(Channel.BOOK,)).connections()] == [LEVEL2]
    specs = venue(channels=(Channel.BBO,)).connections()
    assert [json.loads(s.subscribe[0])["channels"] for s in specs] == [["ticker"]]


def test_endpoint_overrides() -> None:
    p = CoinbaseVenue(
        VenueConfig(
            market="spot",
            symbols=("BTC-USD",),
            channels=ALL,
            endpoint="ws://127.0.0.1:9/",
            rest_endpoint="http://h:1/",
        )
    )
    assert {s.url for s in p.connections()} == {"ws://127.0.0.1:9"}
    assert p.due_requests(1)[0].url == "http://h:1/products"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"symbols": ("btc-usd",)}, "not a Coinbase product id: 'btc-usd'"),
        ({"symbols": ("BTCUSD",)}, "expected BASE-QUOTE"),
        ({"symbols": ()}, "no symbols"),
        ({"channels": (Channel.CANDLES,)}, "coinbase does not serve candles"),
        ({"market": "usdm"}, "one market, spot"),
        ({"options": {"nope": "1"}}, "unknown coinbase option 'nope'"),
        ({"options": {"backfill_requests_per_gap": "x"}}, "not an integer"),
        ({"options": {"level2_channel": "level3"}}, "level2_channel='level3'"),
        ({"options": {"level2_channel": "level2"}}, "needs an authenticated subscribe"),
    ],
)
def test_bad_configuration_is_one_line_value_error(config: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"market": "spot", "symbols": ("BTC-USD",), "channels": ALL}
    values.update(config)
    with pytest.raises(ValueError, match=r"^[^\n]+$") as caught:
        CoinbaseVenue(VenueConfig(**values))
    assert message in str(caught.value)


def test_level2_unbatched_is_accepted_for_replays() -> None:
    config = VenueConfig(
        market="spot",
        symbols=("BTC-USD",),
        channels=ALL,
        options={"level2_channel": "level2"},
        authenticate=False,
    )
    assert (
        json.loads(CoinbaseVenue(config).connections()[1].subscribe[0])["channels"][0] == "level2"
    )


def test_symbols_native_is_normalized() -> None:
    assert normalize("BTC-USD") == "BTC-USD"
    assert venue().normalize_symbol("BTC-USD") == "BTC-USD"


def test_time_parsing() -> None:
    assert parse_time("1970-01-01T00:00:01Z") == 1_000_000_000
    assert parse_time("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_time("1970-01-01T00:00:01.123456789Z") == 1_123_456_789
    for bad in (
        "",
        "1970-01-01 00:00:01Z",
        "1970-01-01T00:00:01.Z",
        "1970-13-01T00:00:01Z",
        "1970-01-01T00:00:01.12x",
        "x970-01-01T00:00:01Z",
        "1970-01-01T00:00:0\u00b2Z",  # "²" passes str.isdigit, then int() raises
        "1970-01-01T00:00:01.\u00b2Z",
        "2026-02-31T00:00:00Z",  # timegm would roll it over to March 3
        "2026-04-31T00:00:00.5Z",
    ):
        with pytest.raises(RejectedFrame):
            parse_time(bad)


# -------------------------------------------------------------------- frames


def test_match_is_a_trade_with_the_taker_side() -> None:
    p = venue()
    status, out = feed(p, match(7, side="sell"))
    assert status is FrameStatus.PROCESSED
    (t,) = out.trades
    assert (t.exchange, t.symbol, t.native_symbol) == ("coinbase", "BTC-USD", "BTC-USD")
    assert (t.trade_id, t.price, t.size, t.ts, t.recv_ts) == (7, 100.25, 0.5, T0_NS, RECV)
    assert t.side == BUY  # the maker sold: the taker bought
    assert (t.first_trade_id, t.last_trade_id) == (7, 7)
    _, out = feed(p, match(8, side="buy"))
    assert out.trades[0].side == SELL


def test_last_match_is_stored_once_and_a_duplicate_is_filtered() -> None:
    p = venue()
    feed(p, match(4, kind="last_match"))  # the run's first: starts the id window only
    assert feed(p, match(5))[0] is FrameStatus.PROCESSED
    status, out = feed(p, match(5))
    assert status is FrameStatus.FILTERED and not out.trades
    status, out = feed(p, match(5, kind="last_match"))  # a resubscribe's last_match
    assert status is FrameStatus.FILTERED and not out.trades


def test_ticker_gives_ticker_and_bbo() -> None:
    p = venue()
    data = frame(
        type="ticker",
        sequence=99,
        product_id="BTC-USD",
        price="101",
        open_24h="100",
        volume_24h="12.5",
        low_24h="90",
        high_24h="110",
        volume_30d="300",
        best_bid="100.5",
        best_bid_size="2",
        best_ask="101.5",
        best_ask_size="3",
        side="buy",
        time=T0,
        trade_id=8,
        last_size="0.1",
    )
    status, out = feed(p, data)
    assert status is FrameStatus.PROCESSED
    (bbo,) = out.bbo
    assert (bbo.bid_price, bbo.bid_size, bbo.ask_price, bbo.ask_size) == (100.5, 2, 101.5, 3)
    assert bbo.update_id == 99
    (tk,) = out.ticker
    assert (tk.last_price, tk.last_size, tk.open_price, tk.high_price, tk.low_price) == (
        101,
        0.1,
        100,
        110,
        90,
    )
    assert tk.volume == 12.5 and math.isnan(tk.quote_volume) and math.isnan(tk.vwap)
    assert tk.price_change == 1 and tk.price_change_pct == pytest.approx(1.0)
    assert tk.last_trade_id == 8 and tk.close_time == T0_NS


def test_a_ticker_without_sizes_makes_no_bbo() -> None:
    data = frame(
        type="ticker",
        sequence=1,
        product_id="BTC-USD",
        price="101",
        open_24h="100",
        best_bid="100",
        best_ask="102",
        time=T0,
        trade_id=1,
        last_size="1",
    )
    _, out = feed(venue(), data)
    assert out.ticker and not out.bbo
    p = venue(channels=(Channel.BBO,))
    assert rejected(p, data) == "invalid_message"


def test_a_crossed_ticker_bbo_is_rejected() -> None:
    data = frame(
        type="ticker",
        sequence=1,
        product_id="BTC-USD",
        price="101",
        open_24h="100",
        best_bid="103",
        best_bid_size="1",
        best_ask="102",
        best_ask_size="1",
        time=T0,
        trade_id=1,
        last_size="1",
    )
    assert rejected(venue(), data) == "invalid_value"


def test_acks_and_book_connection_heartbeats_are_filtered() -> None:
    p = venue()
    ack = frame(type="subscriptions", channels=[{"name": "matches", "product_ids": ["BTC-USD"]}])
    assert feed(p, ack)[0] is FrameStatus.FILTERED
    hb = frame(type="heartbeat", sequence=1, last_trade_id=10, product_id="BTC-USD", time=T0)
    assert feed(p, hb, LEVEL2)[0] is FrameStatus.FILTERED
    assert feed(p, hb, MATCHES)[0] is FrameStatus.FILTERED  # no trade seen yet: nothing owed


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (frame(type="mystery", product_id="BTC-USD"), "unknown_message"),
        (frame(product_id="BTC-USD"), "invalid_message"),
        (frame(type="match", product_id="BTC-USD"), "invalid_message"),
        (match(1, product="DOGE-USD"), "unknown_symbol"),
        (match(1, side="up"), "invalid_field"),
        (
            frame(
                type="match",
                trade_id=1,
                side="buy",
                size="0",
                price="1",
                product_id="BTC-USD",
                time=T0,
            ),
            "invalid_value",
        ),
        (
            frame(
                type="match",
                trade_id=1,
                side="buy",
                size="1",
                price="nan",
                product_id="BTC-USD",
                time=T0,
            ),
            "invalid_value",
        ),
        (
            frame(
                type="match",
                trade_id=1,
                side="buy",
                size="1",
                price="1",
                product_id="BTC-USD",
                time="yesterday",
            ),
            "invalid_field",
        ),
        (
            frame(
                type="match",
                trade_id=1,
                side="buy",
                size="1",
                price="1",
                product_id="BTC-USD",
                time="2001-01-01T00:00:00Z",
            ),
            "invalid_value",
        ),
        (
            frame(
                type="error", message="Failed to subscribe", reason="BAD-USD is not a valid product"
            ),
            "venue_error",
        ),
        (l2update(["up", "1", "1"]), "invalid_field"),
        (l2update(["buy", "-1", "1"]), "invalid_value"),
        (l2update(["buy", "1", "-1"]), "invalid_value"),
        (snapshot([["0", "1"]], []), "invalid_value"),
    ],
)
def test_bad_frames_are_rejected_with_their_reason(data: bytes, reason: str) -> None:
    assert rejected(venue(), data) == reason


def test_channels_not_configured_are_rejected() -> None:
    p = venue(channels=(Channel.TRADES,))
    assert rejected(p, snapshot([["1", "1"]], [["2", "1"]]), LEVEL2) == "unexpected_channel"
    assert rejected(p, l2update(["buy", "1", "1"]), LEVEL2) == "unexpected_channel"
    data = frame(type="ticker", sequence=1, product_id="BTC-USD", price="1", time=T0)
    assert rejected(p, data) == "unexpected_channel"
    assert rejected(venue(channels=(Channel.BOOK,)), match(1)) == "unexpected_channel"


# -------------------------------------------------------------------- trade ids and backfill


def trades_request(p: CoinbaseProtocol, now: int = RECV) -> RestRequest:
    requests = [r for r in p.due_requests(now) if r.purpose is RestPurpose.TRADE_BACKFILL]
    assert len(requests) == 1, requests
    return requests[0]


def answer(
    p: CoinbaseProtocol, request: RestRequest, rows: list[dict[str, Any]], status: int = 200
) -> RecordSink:
    out = RecordSink()
    p.receive_response(request, RestResponse(status, json.dumps(rows).encode()), RECV, out)
    return out


def rest_trade(tid: int) -> dict[str, Any]:
    return {"time": T0, "trade_id": tid, "price": "100", "size": "0.01", "side": "buy"}


def no_listing(p: CoinbaseProtocol) -> None:
    """Answer the product listing, so the REST pacing only sees backfills."""
    (request,) = p.due_requests(0)
    assert request.purpose is RestPurpose.SYMBOL_LISTING
    products = [{"id": n, "status": "online", "trading_disabled": False} for n in p.symbols]
    p.receive_response(request, RestResponse(200, json.dumps(products).encode()), 0, RecordSink())


def test_a_skipped_trade_id_is_a_gap_fetched_back_over_rest() -> None:
    p = venue()
    no_listing(p)
    feed(p, match(10))
    status, out = feed(p, match(14))
    assert status is FrameStatus.PROCESSED and [t.trade_id for t in out.trades] == [14]
    (gap,) = out.events
    assert (gap.kind, gap.channel, gap.expected, gap.received) == ("gap", "trades", 11, 14)
    request = trades_request(p)
    assert (
        request.url == "https://api.exchange.coinbase.com/products/BTC-USD/trades?after=14&limit=3"
    )
    assert p.owed_ids() == 3
    out = answer(p, request, [rest_trade(13), rest_trade(12), rest_trade(11)])
    assert [t.trade_id for t in out.trades] == [13, 12, 11]
    assert all(t.side == SELL for t in out.trades)  # maker bought: the taker sold
    (event,) = out.events
    assert (event.kind, event.expected, event.received) == ("backfilled", 11, 14)
    assert p.owed_ids() == 0 and p.finishing_requests(RECV) is None
    _, out = feed(p, match(12))  # late live copy: not stored twice
    assert not out.trades


def test_a_long_gap_is_paged_from_its_top_down() -> None:
    p = venue()
    no_listing(p)
    feed(p, match(1))
    feed(p, match(2502))
    first = trades_request(p, RECV)
    assert first.url.endswith("after=2502&limit=1000")
    answer(p, first, [rest_trade(i) for i in range(2501, 1501, -1)])
    assert p.due_requests(RECV) == []  # paced: one REST call per interval
    second = trades_request(p, RECV + 10**9)
    assert second.url.endswith("after=1502&limit=1000")
    out = answer(p, second, [rest_trade(i) for i in range(1501, 501, -1)])
    third = trades_request(p, RECV + 2 * 10**9)
    assert third.url.endswith("after=502&limit=500")
    out = answer(p, third, [rest_trade(i) for i in range(501, 1, -1)])
    assert len(out.trades) == 500 and p.owed_ids() == 0


def test_ids_the_venue_does_not_return_are_unrecoverable() -> None:
    p = venue()
    no_listing(p)
    feed(p, match(10))
    feed(p, match(20))
    out = answer(p, trades_request(p), [rest_trade(18), rest_trade(17)])  # short page
    kinds = [(e.kind, e.expected, e.received) for e in out.events]
    assert kinds == [("unrecoverable", 19, 20), ("backfilled", 17, 19), ("unrecoverable", 11, 17)]
    out = answer_nothing = RecordSink()
    feed(p, match(30))
    p.receive_response(trades_request(p, RECV + 10**9), RestResponse(200, b"[]"), RECV, out)
    assert [(e.kind, e.expected, e.received) for e in answer_nothing.events] == [
        ("unrecoverable", 21, 30)
    ]


def test_failed_backfill_requests_are_retried_within_the_budget() -> None:
    p = venue(backfill_requests_per_gap="2")
    no_listing(p)
    feed(p, match(1))
    feed(p, match(5))
    out = answer(p, trades_request(p), [], status=500)
    assert not out.events
    out = RecordSink()
    p.receive_response(trades_request(p, RECV + 10**9), RestResponse(200, b"garbage"), RECV, out)
    assert [(e.kind, e.expected, e.received) for e in out.events] == [("unrecoverable", 2, 5)]


def test_rate_limited_backfill_backs_off_without_spending_the_budget() -> None:
    p = venue(backfill_requests_per_gap="1")
    no_listing(p)
    feed(p, match(1))
    feed(p, match(5))
    answer(p, trades_request(p), [], status=429)
    assert p.due_requests(RECV + 500_000_000) == []  # backing off a second
    assert p.next_wakeup_ns() == RECV + 1_000_000_000
    out = answer(p, trades_request(p, RECV + 10**9), [rest_trade(4), rest_trade(3), rest_trade(2)])
    assert len(out.trades) == 3


def test_a_heartbeat_ahead_of_the_last_match_is_a_gap() -> None:
    p = venue()
    no_listing(p)
    feed(p, match(10))
    hb = frame(type="heartbeat", sequence=5, last_trade_id=13, product_id="BTC-USD", time=T0)
    status, out = feed(p, hb)
    assert status is FrameStatus.PROCESSED
    (gap,) = out.events
    assert (gap.kind, gap.expected, gap.received) == ("gap", 11, 14)
    assert "heartbeat" in gap.detail
    _, out = feed(p, match(14))  # the next live id continues: no second gap
    assert not out.events and [t.trade_id for t in out.trades] == [14]
    _, out = feed(p, match(12))  # a late one fills the hole
    assert [t.trade_id for t in out.trades] == [12]
    out = answer(p, trades_request(p), [rest_trade(13), rest_trade(12), rest_trade(11)])
    assert [t.trade_id for t in out.trades] == [13, 11]
    assert feed(p, hb)[0] is FrameStatus.FILTERED  # nothing new owed


def test_a_reconnect_whose_last_match_is_ahead_is_a_gap() -> None:
    p = venue()
    feed(p, match(10))
    p.on_close(MATCHES, RECV, RecordSink())
    p.on_open(MATCHES, RECV, RecordSink())
    _, out = feed(p, match(15, kind="last_match"))
    assert [(e.kind, e.expected, e.received) for e in out.events] == [("gap", 11, 15)]


def test_stopping_with_trades_owed_says_them_unrecoverable() -> None:
    p = venue()
    no_listing(p)
    feed(p, match(1))
    feed(p, match(4))
    finishing = p.finishing_requests(RECV)
    assert finishing is not None and len(finishing) == 1
    out = RecordSink()
    p.abandon(RECV, out)
    assert [(e.kind, e.expected, e.received) for e in out.events] == [("unrecoverable", 2, 4)]
    assert "stopped first" in out.events[0].detail


def test_backfill_off_says_a_gap_unrecoverable_at_once() -> None:
    p = venue(backfill_requests_per_gap="0")
    feed(p, match(1))
    _, out = feed(p, match(4))
    assert [e.kind for e in out.events] == ["gap", "unrecoverable"]


# -------------------------------------------------------------------- product listing


def test_products_not_listed_or_not_online_are_invalid_symbols() -> None:
    p = venue("BTC-USD", "ETH-EUR", "OLD-USD")
    (request,) = p.due_requests(0)
    assert request.url.endswith("/products") and request.purpose is RestPurpose.SYMBOL_LISTING
    assert p.due_requests(10**12) == []  # in flight
    listing = [
        {"id": "BTC-USD", "status": "online", "trading_disabled": False},
        {"id": "OLD-USD", "status": "delisted", "trading_disabled": True},
    ]
    out = RecordSink()
    p.receive_response(request, RestResponse(200, json.dumps(listing).encode()), RECV, out)
    assert [(e.kind, e.native_symbol) for e in out.events] == [
        ("invalid_symbol", "ETH-EUR"),
        ("invalid_symbol", "OLD-USD"),
    ]
    assert "does not list ETH-EUR" in out.events[0].detail
    assert p.invalid_symbols == ["ETH-EUR", "OLD-USD"]


def test_an_unusable_listing_is_asked_again() -> None:
    p = venue()
    (request,) = p.due_requests(0)
    p.receive_response(request, RestResponse(503, b""), 0, RecordSink())
    assert p.next_wakeup_ns() == 10**9  # backing off a second, doubling on each failure
    assert p.due_requests(10**9 - 1) == []
    (again,) = p.due_requests(10**9)
    assert again.purpose is RestPurpose.SYMBOL_LISTING
    p.receive_response(again, RestResponse(599, b""), 10**9, RecordSink())
    assert p.next_wakeup_ns() == 3 * 10**9


# -------------------------------------------------------------------- book


def test_snapshot_syncs_the_book_and_updates_move_it() -> None:
    p = venue()
    status, out = feed(p, snapshot([["100", "1"], ["99", "2"]], [["101", "1.5"]]), LEVEL2)
    assert status is FrameStatus.PROCESSED
    assert [(r.side, r.price, r.size, r.snapshot) for r in out.book] == [
        (BID, 100, 1, True),
        (BID, 99, 2, True),
        (ASK, 101, 1.5, True),
    ]
    assert all(r.update_id == -1 and r.ts == T0_NS for r in out.book)
    assert [e.kind for e in out.events] == ["synced"]
    (book,) = p.books()
    assert (book.synced, book.best_bid, book.best_ask, book.bids, book.asks) == (
        True,
        100,
        101,
        2,
        1,
    )
    status, out = feed(
        p, l2update(["buy", "100.5", "3"], ["sell", "101", "0"], ["sell", "102", "1"]), LEVEL2
    )
    assert status is FrameStatus.PROCESSED
    assert [(r.side, r.price, r.size, r.snapshot) for r in out.book] == [
        (BID, 100.5, 3, False),
        (ASK, 101, 0, False),
        (ASK, 102, 1, False),
    ]
    (book,) = p.books()
    assert (book.best_bid, book.best_ask) == (100.5, 102)


def test_updates_before_the_snapshot_are_filtered() -> None:
    p = venue()
    status, out = feed(p, l2update(["buy", "100", "1"]), LEVEL2)
    assert status is FrameStatus.FILTERED and not out.book
    assert p.books()[0].waiting == "waiting for the level2 snapshot"


def test_an_update_crossing_the_book_is_a_gap_and_a_resubscribe() -> None:
    p = venue()
    synced_book(p)
    status, out = feed(p, l2update(["buy", "101.5", "1"]), LEVEL2)
    assert status is FrameStatus.PROCESSED and not out.book  # the crossing change is not stored
    assert [(e.kind, e.channel) for e in out.events] == [("gap", "book"), ("resync", "book")]
    assert "crossed" in out.events[0].detail
    assert p.take_reconnects() == [LEVEL2] and p.take_reconnects() == []
    assert not p.books()[0].synced
    assert "re-subscribing" in p.books()[0].waiting


def test_the_resubscribe_snapshot_is_brought_forward_with_the_updates_since_the_break() -> None:
    """Make-before-break: the old socket delivers on while the new one's snapshot is held, and
    the new socket's copies of those updates are dropped; the snapshot must catch up."""
    p = venue()
    synced_book(p)
    feed(p, l2update(["buy", "101.5", "1"]), LEVEL2)  # breaks the book
    status, out = feed(p, l2update(["sell", "103", "4"], ["buy", "99", "0"]), LEVEL2)
    assert status is FrameStatus.PROCESSED and not out.book  # kept, not stored yet
    feed(p, l2update(["sell", "103", "5"]), LEVEL2)
    status, out = feed(p, snapshot([["100", "1"], ["99", "2"]], [["101", "1.5"]]), LEVEL2)
    assert status is FrameStatus.PROCESSED
    assert sorted((r.side, r.price, r.size) for r in out.book) == [
        (ASK, 101, 1.5),
        (ASK, 103, 5),
        (BID, 100, 1),
    ]
    assert all(r.snapshot for r in out.book)
    (synced,) = out.events
    assert synced.kind == "synced" and "brought forward with 2 updates" in synced.detail
    assert p.books()[0].synced
    # the rollover's copy for a book that stayed continuous changes nothing
    status, out = feed(p, snapshot([["1", "1"]], [["2", "1"]]), LEVEL2)
    assert status is FrameStatus.FILTERED and not out.book and p.books()[0].best_bid == 100


def test_a_hard_reconnect_takes_its_snapshot_as_it_is() -> None:
    p = venue()
    synced_book(p)
    feed(p, l2update(["buy", "101.5", "1"]), LEVEL2)
    feed(p, l2update(["sell", "103", "4"]), LEVEL2)
    p.on_close(LEVEL2, RECV, (closed := RecordSink()))
    assert not closed.events  # already broken: no second gap
    p.on_open(LEVEL2, RECV, RecordSink())
    assert feed(p, l2update(["buy", "50", "1"]), LEVEL2)[0] is FrameStatus.FILTERED
    _, out = feed(p, snapshot([["100", "1"]], [["101", "1"]]), LEVEL2)
    assert sorted((r.side, r.price) for r in out.book) == [(ASK, 101), (BID, 100)]
    assert out.events[0].detail == "level2 snapshot"


def test_a_crossed_snapshot_is_not_trusted() -> None:
    p = venue()
    status, out = feed(p, snapshot([["102", "1"]], [["101", "1"]]), LEVEL2)
    assert status is FrameStatus.PROCESSED and not out.book
    assert [e.kind for e in out.events] == ["gap", "resync"]
    assert p.take_reconnects() == [LEVEL2]


def test_a_dropped_book_connection_is_a_gap_and_trades_are_untouched() -> None:
    p = venue()
    synced_book(p)
    out = RecordSink()
    p.on_close(MATCHES, RECV, out)
    assert not out.events and p.books()[0].synced
    p.on_close(LEVEL2, RECV, out)
    assert [(e.kind, e.channel, e.detail) for e in out.events] == [("gap", "book", "level2 closed")]
    assert p.books()[0].waiting.startswith("connection closed")


# -------------------------------------------------------------------- sub-protocols


class FakeFull(VenueProtocol):
    """Stands in for the order-level feed the integrator attaches (``sub_protocols``)."""

    exchange = "coinbase"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def connections(self) -> list[StreamSpec]:
        return [StreamSpec("full", "wss://ws-feed.exchange.coinbase.com")]

    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        self.calls.append(f"receive {conn_key}")
        return FrameStatus.FILTERED

    def on_open(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        self.calls.append(f"open {conn_key}")

    def due_requests(self, now_ns: int) -> list[RestRequest]:
        return [RestRequest("book3:BTC-USD", "https://x/products/BTC-USD/book?level=3")]

    def receive_response(
        self, request: RestRequest, response: RestResponse, recv_ns: int, out: RecordSink
    ) -> None:
        self.calls.append(f"answer {request.key}")


def test_sub_protocols_get_their_connections_frames_and_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    full = FakeFull()
    monkeypatch.setattr(coinbase_protocol, "sub_protocols", lambda config: [full])
    p = venue()
    assert [s.key for s in p.connections()] == [MATCHES, LEVEL2, "full"]
    p.on_open("full", 1, RecordSink())
    assert p.receive("full", b"anything", 1, RecordSink()) is FrameStatus.FILTERED
    requests = p.due_requests(0)
    mine = next(r for r in requests if r.key == "book3:BTC-USD")
    p.receive_response(mine, RestResponse(200, b"{}"), 1, RecordSink())
    assert full.calls == ["open full", "receive full", "answer book3:BTC-USD"]


def test_the_first_subscribe_waits_for_the_listing_and_leaves_unlisted_products_out() -> None:
    """Coinbase refuses a whole subscribe that names one product it does not list."""
    p = venue("BTC-USD", "OLD-USD")
    matches, level2 = p.connections()
    assert p.opening(matches, 1) is None  # the listing is not in yet
    (request,) = p.due_requests(1)
    listing = [{"id": "BTC-USD", "status": "online", "trading_disabled": False}]
    p.receive_response(request, RestResponse(200, json.dumps(listing).encode()), 2, RecordSink())
    for spec in (matches, level2):
        opening = p.opening(spec, 3)
        assert opening is not None and opening.url == spec.url
        (message,) = opening.messages
        sent = json.loads(message)
        assert sent["product_ids"] == ["BTC-USD"]
        assert sent["channels"] == json.loads(spec.subscribe[0])["channels"]


def test_without_a_listing_the_subscribe_goes_out_as_configured_after_a_while() -> None:
    p = venue("BTC-USD", "ETH-USD")
    spec = p.connections()[0]
    assert p.opening(spec, 1) is None
    assert p.opening(spec, 1 + 9 * 10**9) is None
    opening = p.opening(spec, 1 + 10 * 10**9)
    assert opening is not None and opening.messages == spec.subscribe


def test_nothing_listed_opens_no_connection() -> None:
    """Coinbase drops a socket that sends no subscribe within 5 s: none is opened (the
    invalid_symbol events say why, and the run ends with nothing collected)."""
    p = venue("OLD-USD")
    (request,) = p.due_requests(1)
    p.receive_response(request, RestResponse(200, b"[]"), 2, RecordSink())
    assert all(p.opening(spec, 3) is None for spec in p.connections())
    assert all(p.opening(spec, 3 + 60 * 10**9) is None for spec in p.connections())


def test_a_gap_between_two_runs_is_fetched_back() -> None:
    p = venue()
    no_listing(p)
    feed(p, match(100))  # this run starts at 100; the previous one stored up to 96
    gap = Event(
        exchange="coinbase",
        symbol="BTC-USD",
        native_symbol="BTC-USD",
        ts=RECV,
        recv_ts=RECV,
        kind="gap",
        channel="trades",
        expected=97,
        received=100,
        detail="between runs",
    )
    assert p.recover(gap, RECV, RecordSink())
    request = trades_request(p)
    assert request.url.endswith("after=100&limit=3")
    out = answer(p, request, [rest_trade(99), rest_trade(98), rest_trade(97)])
    assert [t.trade_id for t in out.trades] == [99, 98, 97]
    book_gap = Event(
        exchange="coinbase",
        symbol="BTC-USD",
        native_symbol="BTC-USD",
        ts=RECV,
        recv_ts=RECV,
        kind="gap",
        channel="book",
        expected=-1,
        received=-1,
        detail="",
    )
    assert not p.recover(book_gap, RECV, RecordSink())


def test_an_open_without_a_close_is_a_switch_that_keeps_the_books() -> None:
    """Replays of our captures show the OPEN of a make-before-break switch: no break."""
    p = venue()
    p.on_open(LEVEL2, RECV, RecordSink())
    synced_book(p)
    p.on_open(LEVEL2, RECV, RecordSink())
    assert p.books()[0].synced
    p.on_close(LEVEL2, RECV, RecordSink())
    p.on_open(LEVEL2, RECV, RecordSink())
    assert not p.books()[0].synced


def test_book_l3_mounts_the_full_feed_on_its_own_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``book_l3`` needs the user's key (a one-line error naming it without one) and then
    runs the ``full`` feed beside the public channels, with its options accepted."""
    for name in ("COINBASE_API_KEY", "COINBASE_API_SECRET", "COINBASE_API_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir("/")
    config = VenueConfig(
        market="spot",
        symbols=("BTC-USD",),
        channels=(Channel.TRADES, Channel.BOOK_L3),
        options={"full_max_buffer": "1000"},
    )
    with pytest.raises(ValueError, match="book_l3"):
        CoinbaseVenue(config)
    monkeypatch.setenv("COINBASE_API_KEY", "k")
    monkeypatch.setenv("COINBASE_API_SECRET", base64.b64encode(b"s").decode())
    monkeypatch.setenv("COINBASE_API_PASSPHRASE", "p")
    keys = {spec.key for spec in CoinbaseVenue(config).connections()}
    assert keys == {MATCHES, FULL_CONN}


# -------------------------------------------------------------------- review findings

MS_NS = 1_000_000


def at(ms: int) -> str:
    """Coinbase time text ``ms`` milliseconds after T0."""
    seconds, frac = divmod(T0_NS + ms * MS_NS, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def l2at(ms: int, *changes: list[str]) -> bytes:
    return frame(type="l2update", product_id="BTC-USD", changes=list(changes), time=at(ms))


def snapshot_at(ms: int, bids: list[list[str]], asks: list[list[str]]) -> bytes:
    return frame(type="snapshot", product_id="BTC-USD", bids=bids, asks=asks, time=at(ms))


def test_a_snapshot_taken_before_the_break_is_not_used() -> None:
    """A break during a rollover: the held snapshot predates it, and the updates the old
    socket delivered between the two are in neither it nor ``pending``."""
    p = venue()
    assert (
        feed(p, snapshot_at(0, [["100", "1"]], [["101", "1"]]), LEVEL2)[0] is FrameStatus.PROCESSED
    )
    feed(p, l2at(10, ["buy", "99.5", "2"]), LEVEL2)  # delivered by the old socket
    feed(p, l2at(20, ["buy", "101.5", "1"]), LEVEL2)  # crosses: a break
    assert p.take_reconnects() == [LEVEL2]
    status, out = feed(p, snapshot_at(5, [["100", "1"]], [["101", "1"]]), LEVEL2)
    assert status is FrameStatus.FILTERED and not out.book and not p.books()[0].synced
    assert "predates the break" in p.books()[0].waiting
    assert p.take_reconnects() == [LEVEL2]  # asks again for a newer one
    status, out = feed(p, snapshot_at(30, [["100", "1"], ["99.5", "2"]], [["101", "1"]]), LEVEL2)
    assert status is FrameStatus.PROCESSED and p.books()[0].synced
    assert sorted((r.side, r.price) for r in out.book) == [(ASK, 101), (BID, 99.5), (BID, 100)]


def test_an_older_batch_from_the_other_socket_is_dropped() -> None:
    """``level2_batch`` is cut per connection: a rollover's new socket carries the same events
    in other batches, which the byte dedup lets through; re-applied they would cross."""
    p = venue()
    feed(p, snapshot_at(0, [["100", "1"]], [["101", "1"]]), LEVEL2)
    feed(p, l2at(10, ["sell", "101", "0"], ["sell", "101.3", "1"], ["buy", "101.2", "1"]), LEVEL2)
    feed(p, l2at(20, ["buy", "101.2", "0"], ["sell", "101.1", "1"]), LEVEL2)
    status, out = feed(p, l2at(15, ["buy", "101.2", "1"]), LEVEL2)  # the other socket's cut
    assert status is FrameStatus.FILTERED and not out.book and not out.events
    (book,) = p.books()
    assert book.synced and (book.best_bid, book.best_ask) == (100, 101.1)
    assert p.take_reconnects() == []
    # several updates at one instant are normal on one socket (the recording has 1442): kept
    status, out = feed(p, l2at(20, ["buy", "100.5", "1"]), LEVEL2)
    assert status is FrameStatus.PROCESSED and len(out.book) == 1


def test_an_update_older_than_the_brought_forward_snapshot_is_dropped() -> None:
    p = venue()
    feed(p, snapshot_at(0, [["100", "1"]], [["101", "1"]]), LEVEL2)
    feed(p, l2at(10, ["buy", "101.5", "1"]), LEVEL2)  # break
    feed(p, l2at(20, ["sell", "101.1", "1"]), LEVEL2)  # pending
    feed(p, snapshot_at(15, [["100", "1"]], [["101", "0.5"]]), LEVEL2)
    assert p.books()[0].synced
    status, out = feed(p, l2at(18, ["buy", "101.2", "1"]), LEVEL2)  # new socket, older
    assert status is FrameStatus.FILTERED and not out.events and p.books()[0].synced


def test_overflowing_pending_updates_asks_for_a_new_snapshot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rollover never calls on_open: without a new request the book would wait forever."""
    monkeypatch.setattr(coinbase_protocol, "MAX_PENDING_UPDATES", 2)
    p = venue()
    feed(p, snapshot_at(0, [["100", "1"]], [["101", "1"]]), LEVEL2)
    feed(p, l2at(10, ["buy", "101.5", "1"]), LEVEL2)  # break
    assert p.take_reconnects() == [LEVEL2]
    feed(p, l2at(11, ["sell", "102", "1"]), LEVEL2)
    feed(p, l2at(12, ["sell", "103", "1"]), LEVEL2)
    status, _ = feed(p, l2at(13, ["sell", "104", "1"]), LEVEL2)  # one too many
    assert status is FrameStatus.FILTERED
    assert p.take_reconnects() == [LEVEL2]
    assert feed(p, l2at(14, ["sell", "105", "1"]), LEVEL2)[0] is FrameStatus.PROCESSED  # kept
    status, out = feed(p, snapshot_at(13, [["100", "1"]], [["101", "1"], ["104", "1"]]), LEVEL2)
    assert status is FrameStatus.PROCESSED and p.books()[0].synced
    assert sorted(r.price for r in out.book if r.side == ASK) == [101, 104, 105]


def ticker(sequence: int, trade_id: int, when: str = T0) -> bytes:
    return frame(
        type="ticker", sequence=sequence, product_id="BTC-USD", price="101", open_24h="100",
        volume_24h="1", low_24h="90", high_24h="110", best_bid="100", best_bid_size="1",
        best_ask="102", best_ask_size="1", side="buy", time=when, trade_id=trade_id,
        last_size="0.1",
    )  # fmt: skip


def test_the_ticker_resent_on_subscribe_is_stored_once() -> None:
    p = venue()
    status, out = feed(p, ticker(99, 8))
    assert status is FrameStatus.PROCESSED and len(out.ticker) == len(out.bbo) == 1
    status, out = feed(p, ticker(99, 8))  # a re-subscribe's copy
    assert status is FrameStatus.FILTERED and not out.ticker and not out.bbo
    assert feed(p, ticker(98, 7))[0] is FrameStatus.FILTERED
    status, out = feed(p, ticker(100, 9))
    assert status is FrameStatus.PROCESSED and len(out.ticker) == 1


def test_the_first_last_match_of_a_run_only_starts_the_id_window() -> None:
    """An earlier run may have stored it; if not, the restart gap fetches it back."""
    p = venue()
    status, out = feed(p, match(5, kind="last_match"))
    assert status is FrameStatus.FILTERED and not out.trades and not out.events
    status, out = feed(p, match(6))
    assert [t.trade_id for t in out.trades] == [6] and not out.events
    _, out = feed(p, match(9, kind="last_match"))  # a reconnect's: ahead, stored, gap 7..8
    assert [t.trade_id for t in out.trades] == [9]
    assert [(e.kind, e.expected, e.received) for e in out.events] == [("gap", 7, 9)]


def test_old_subscribe_time_frames_of_a_quiet_product_are_filtered_not_rejected() -> None:
    """An illiquid product's last_match and ticker can be days old at subscribe time."""
    old = "2026-11-30T06:00:00.000000Z"  # three days before RECV
    p = venue()
    assert feed(p, ticker(50, 5, old))[0] is FrameStatus.FILTERED
    assert feed(p, match_at(5, old, kind="last_match"))[0] is FrameStatus.FILTERED
    p.on_close(MATCHES, RECV, RecordSink())
    p.on_open(MATCHES, RECV, RecordSink())
    assert feed(p, ticker(50, 5, old))[0] is FrameStatus.FILTERED
    assert feed(p, match_at(5, old, kind="last_match"))[0] is FrameStatus.FILTERED
    # one old last_match ahead of the window: the ids up to it (itself too) are a gap
    status, out = feed(p, match_at(7, old, kind="last_match"))
    assert status is FrameStatus.PROCESSED and not out.trades
    assert [(e.kind, e.expected, e.received) for e in out.events] == [("gap", 6, 8)]


def match_at(tid: int, when: str, kind: str = "match") -> bytes:
    return frame(
        type=kind, trade_id=tid, side="sell", size="0.5", price="100.25", product_id="BTC-USD",
        sequence=tid * 10, time=when,
    )  # fmt: skip


def test_a_backfilled_trade_refused_or_skipped_is_reported_unrecoverable() -> None:
    p = venue()
    no_listing(p)
    feed(p, match(10))
    feed(p, match(16))
    bad = {**rest_trade(14), "side": "sideways"}
    out = answer(p, trades_request(p), [rest_trade(15), bad, rest_trade(12), rest_trade(11)])
    assert [t.trade_id for t in out.trades] == [15, 12, 11]
    kinds = sorted((e.kind, e.expected, e.received) for e in out.events)
    assert kinds == [
        ("backfilled", 11, 16),
        ("unrecoverable", 13, 14),  # not returned, inside the page
        ("unrecoverable", 14, 15),  # returned, refused
    ]
    refused = next(e for e in out.events if e.expected == 14)
    assert "refused" in refused.detail and "side" in refused.detail


def test_a_refused_subscribe_is_stored_and_the_connection_reopened_with_back_off() -> None:
    p = venue()
    no_listing(p)
    error = frame(type="error", message="Failed to subscribe", reason="BTC-XXX is not valid")
    out = RecordSink()
    with pytest.raises(RejectedFrame) as caught:
        p.receive(MATCHES, error, RECV, out)
    assert caught.value.reason == "venue_error"
    (event,) = out.events
    assert event.kind == "reconnect" and "refused the subscribe" in event.detail
    assert "BTC-XXX is not valid" in event.detail
    assert p.take_reconnects() == []  # backing off a second
    assert p.next_wakeup_ns() == RECV + 10**9
    p.due_requests(RECV + 10**9)  # time passes
    assert p.take_reconnects() == [MATCHES] and p.take_reconnects() == []
    with pytest.raises(RejectedFrame):
        p.receive(MATCHES, error, RECV + 10**9, (out := RecordSink()))
    assert "reconnecting in 2 s" in out.events[0].detail  # doubling
    ack = frame(type="subscriptions", channels=[])
    p.receive(MATCHES, ack, RECV + 3 * 10**9, RecordSink())
    with pytest.raises(RejectedFrame):
        p.receive(MATCHES, error, RECV + 4 * 10**9, (out := RecordSink()))
    assert "reconnecting in 1 s" in out.events[0].detail  # an accepted subscribe resets it


def test_the_first_last_match_is_stored_when_the_gap_between_runs_fetches_it() -> None:
    """The previous run stored up to 96; this run starts with last_match 100 and no trade
    since: the restart gap 97..100 is fetched, 100 included (this run never stored it)."""
    p = venue()
    no_listing(p)
    assert feed(p, match(100, kind="last_match"))[0] is FrameStatus.FILTERED
    gap = Event(
        exchange="coinbase", symbol="BTC-USD", native_symbol="BTC-USD", ts=RECV, recv_ts=RECV,
        kind="gap", channel="trades", expected=97, received=101, detail="between runs",
    )  # fmt: skip
    assert p.recover(gap, RECV, RecordSink())
    out = answer(p, trades_request(p), [rest_trade(i) for i in (100, 99, 98, 97)])
    assert [t.trade_id for t in out.trades] == [100, 99, 98, 97]
    _, out = feed(p, match(101))
    assert [t.trade_id for t in out.trades] == [101] and not out.events
    assert feed(p, match(100))[0] is FrameStatus.FILTERED  # stored once
