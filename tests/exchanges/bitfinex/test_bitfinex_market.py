"""Bitfinex public market data on hand-written frames and on the real recording."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import msgspec
import pytest

from hundi.accounting import Accounting
from hundi.capture.infer import infer_config
from hundi.capture.reader import read_capture
from hundi.capture.replay import Batch, replay_events
from hundi.exchanges import exchanges
from hundi.exchanges.base import (
    FrameStatus,
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestResponse,
    VenueConfig,
)
from hundi.exchanges.bitfinex import BitfinexVenue
from hundi.exchanges.bitfinex.checksum import book_checksum, js_number
from hundi.exchanges.bitfinex.protocol import BitfinexProtocol
from hundi.exchanges.bitfinex.symbols import native, normalize
from hundi.records import ASK, BID, BUY, SELL, Channel, EventKind

T0 = 1_700_000_000_000_000_000
T0_MS = T0 // 1_000_000
CONN = "public-0"
ALL = (Channel.TRADES, Channel.BOOK, Channel.TICKER, Channel.CANDLES, Channel.EVENTS)


def venue(
    channels: tuple[Channel, ...] = ALL, symbols: tuple[str, ...] = ("tBTCUSD",), **options: str
) -> BitfinexProtocol:
    return BitfinexVenue(VenueConfig("spot", symbols, channels, options=dict(options)))


def send(p: BitfinexProtocol, frame: object, out: RecordSink | None = None) -> FrameStatus:
    data = frame if isinstance(frame, bytes) else msgspec.json.encode(frame)
    return p.receive(CONN, data, T0, out if out is not None else RecordSink())


def opened(flags: int = 65536 + 131072, **options: str) -> BitfinexProtocol:
    """A protocol whose connection greeted, acknowledged ``flags`` and subscribed all four
    channels of tBTCUSD as chanIds 1 (book), 2 (trades), 3 (ticker), 4 (candles)."""
    p = venue(**options)
    p.on_open(CONN, T0, RecordSink())
    send(p, {"event": "info", "version": 2, "platform": {"status": 1}})
    send(p, {"event": "conf", "status": "OK", "flags": flags})
    send(p, {"event": "subscribed", "channel": "book", "chanId": 1, "symbol": "tBTCUSD",
             "prec": "P0", "freq": "F0", "len": "25", "pair": "BTCUSD"})  # fmt: skip
    send(p, {"event": "subscribed", "channel": "trades", "chanId": 2, "symbol": "tBTCUSD"})
    send(p, {"event": "subscribed", "channel": "ticker", "chanId": 3, "symbol": "tBTCUSD"})
    send(p, {"event": "subscribed", "channel": "candles", "chanId": 4,
             "key": "trade:1m:tBTCUSD"})  # fmt: skip
    return p


class Seq:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        self.n += 1
        return self.n


SNAPSHOT = [[100.0, 1, 2.0], [99.5, 2, 1.5], [101.0, 1, -1.0], [102.0, 3, -0.25]]


def synced(out: RecordSink | None = None) -> tuple[BitfinexProtocol, Seq]:
    p, seq = opened(), Seq()
    send(p, [1, SNAPSHOT, seq()], out)
    return p, seq


# -- connections and config -----------------------------------------------------------------


def test_connections_send_conf_then_one_subscribe_per_channel_and_symbol() -> None:
    (spec,) = venue().connections()
    assert spec.url == "wss://api-pub.bitfinex.com/ws/2"
    sent = [msgspec.json.decode(m) for m in spec.subscribe]
    assert sent[0] == {"event": "conf", "flags": 65536 + 131072}
    assert sent[1] == {"event": "subscribe", "channel": "book", "symbol": "tBTCUSD",
                       "prec": "P0", "freq": "F0", "len": "25"}  # fmt: skip
    assert {"event": "subscribe", "channel": "candles", "key": "trade:1m:tBTCUSD"} in sent
    assert len(sent) == 5


def test_subscriptions_are_spread_25_a_connection() -> None:
    symbols = tuple(f"t{c}{c}{c}USD" for c in "ABCDEFGHIJKLM")  # 13 symbols x 2 channels
    specs = venue((Channel.TRADES, Channel.BOOK), symbols).connections()
    assert [len(s.subscribe) - 1 for s in specs] == [25, 1]
    assert [s.key for s in specs] == ["public-0", "public-1"]


def test_upper_cased_config_symbols_keep_bitfinex_spelling() -> None:
    (spec,) = venue((Channel.TRADES,), ("TBTCUSD", "TTESTBTC:TESTUSD")).connections()
    assert b'"symbol":"tBTCUSD"' in spec.subscribe[1]
    assert b'"symbol":"tTESTBTC:TESTUSD"' in spec.subscribe[2]


def test_options_and_endpoint() -> None:
    config = VenueConfig("spot", ("tETHUSD",), (Channel.BOOK,), endpoint="ws://127.0.0.1:9",
                         options={"book_precision": "P2", "book_length": "100",
                                  "checksum": "false", "sequence": "false"})  # fmt: skip
    (spec,) = BitfinexVenue(config).connections()
    assert spec.url == "ws://127.0.0.1:9/ws/2"
    assert msgspec.json.decode(spec.subscribe[0]) == {"event": "conf", "flags": 0}
    assert b'"prec":"P2"' in spec.subscribe[1] and b'"len":"100"' in spec.subscribe[1]


@pytest.mark.parametrize(
    ("symbols", "options", "message"),
    [
        (("tBTCUSD",), {"book_precision": "R0"}, "book_precision must be one of"),
        (("tBTCUSD",), {"book_length": "50"}, "book_length must be one of"),
        (("tBTCUSD",), {"checksum": "yes"}, "checksum must be true or false"),
        (("tBTCUSD",), {"candle_interval": "2m"}, "candle_interval must be one of"),
        (("tBTCUSD",), {"nonsense": "1"}, "unknown Bitfinex option"),
        (("BTCUSD",), {}, "not a Bitfinex trading pair"),
        (("tbtcusd",), {}, "not a Bitfinex trading pair"),
        (("tBTCUSDX",), {}, "not a Bitfinex trading pair"),
        ((), {}, "needs --symbols"),
    ],
)
def test_config_errors_are_one_line(
    symbols: tuple[str, ...], options: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as error:
        BitfinexVenue(VenueConfig("spot", symbols, (Channel.TRADES,), options=options))
    assert "\n" not in str(error.value)


def test_symbols() -> None:
    assert normalize("tBTCUSD") == "BTC-USD"
    assert normalize("tETHUSD") == "ETH-USD"
    assert normalize("tBTCUST") == "BTC-USDT"
    assert normalize("tTESTBTC:TESTUSD") == "TESTBTC-TESTUSD"
    assert normalize("tAVAX:UST") == "AVAX-USDT"
    assert normalize("tIOTETH") == "IOTA-ETH"
    assert native("BTC-USDT") == "tBTCUST" and native("TESTBTC-TESTUSD") == "tTESTBTC:TESTUSD"


# -- symbol listing -------------------------------------------------------------------------


def listing_answers(pairs: list[str], currencies: list[str]) -> dict[str, bytes]:
    return {
        "pub:list:pair:exchange": msgspec.json.encode([pairs]),
        "pub:list:pair:future": b'[["BTCF0:USTF0"]]',
        "pub:list:currency": msgspec.json.encode([currencies]),
    }


def test_symbols_are_checked_against_bitfinex_lists_once() -> None:
    p = venue((Channel.TRADES,), ("tBTCUSD", "tNOPUSD", "tBTCF0:USTF0"))
    requests = p.due_requests(T0)
    assert [r.url for r in requests] == [
        "https://api-pub.bitfinex.com/v2/conf/pub:list:pair:exchange",
        "https://api-pub.bitfinex.com/v2/conf/pub:list:pair:future",
        "https://api-pub.bitfinex.com/v2/conf/pub:list:currency",
    ]
    assert {r.purpose for r in requests} == {RestPurpose.SYMBOL_LISTING}
    assert p.due_requests(T0) == []  # in flight
    answers = listing_answers(["BTCUSD"], ["BTC", "USD", "BTCF0", "USTF0"])
    out = RecordSink()
    for request in requests:
        p.receive_response(request, RestResponse(200, answers[request.key]), T0, out)
    (event,) = out.events
    assert (event.kind, event.native_symbol) == (EventKind.INVALID_SYMBOL, "tNOPUSD")
    assert p.due_requests(T0 + 10**12) == [] and p.next_wakeup_ns() is None


def test_failed_listing_is_retried_then_given_up_without_blocking_data() -> None:
    p = venue((Channel.TRADES,))
    now = T0
    for _ in range(3):
        requests = p.due_requests(now)
        assert requests
        for request in requests:
            p.receive_response(request, RestResponse(599, b"timeout"), now, RecordSink())
        wake = p.next_wakeup_ns()
        now = wake if wake is not None else now + 10**12
    assert p.due_requests(now + 10**12) == [] and p.next_wakeup_ns() is None


def test_rest_endpoint_override() -> None:
    config = VenueConfig("spot", ("tBTCUSD",), (Channel.TRADES,), rest_endpoint="http://sim:1/")
    (first, *_) = BitfinexVenue(config).due_requests(T0)
    assert first.url == "http://sim:1/v2/conf/pub:list:pair:exchange"


# -- control events -------------------------------------------------------------------------


def test_control_events() -> None:
    p = opened()
    out = RecordSink()
    assert send(p, {"event": "info", "code": 20051, "msg": "Stopping"}, out).name == "PROCESSED"
    assert p.take_reconnects() == [CONN]
    assert send(p, {"event": "info", "code": 20060, "msg": "Maintenance"}, out).name == "PROCESSED"
    assert p.take_reconnects() == []
    assert send(p, {"event": "info", "code": 20061, "msg": "Resync"}, out).name == "PROCESSED"
    assert p.take_reconnects() == [CONN]
    kinds = [e.kind for e in out.events]
    assert kinds == [EventKind.RECONNECT, EventKind.SHUTDOWN, EventKind.RECONNECT]
    assert send(p, [1, "hb", 1]).name == "FILTERED"
    assert send(p, {"event": "pong", "cid": 1}).name == "FILTERED"


def test_refused_symbol_is_an_invalid_symbol_event() -> None:
    out = RecordSink()
    error = {"event": "error", "msg": "symbol: invalid", "code": 10300,
             "channel": "trades", "symbol": "tNOPEUSD"}  # fmt: skip
    assert send(opened(), error, out).name == "PROCESSED"
    (event,) = out.events
    assert event.kind == EventKind.INVALID_SYMBOL and event.native_symbol == "tNOPEUSD"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b'{"event":"wat"}', "unknown_event"),
        (b'{"event":"error","code":10000,"msg":"Unknown event"}', "server_error"),
        (b'{"event":"conf","status":"FAILED","flags":1}', "conf_refused"),
        (b'{"event":"subscribed","channel":"book","chanId":9,"symbol":"tETHUSD"}',
         "unknown_subscription"),
        (b'[77,[1,2,3],2]', "unknown_channel"),
        (b'[1,[100.0,1],2]', "invalid_message"),
        (b'[1,[-5.0,1,1.0],2]', "invalid_value"),
        (b'[1,[100.0,1,0],2]', "invalid_value"),
        (b'[2,"te",[5,1700000000000,0,100.0],2]', "invalid_value"),
        (b'[2,"te",[5,1,1.0,100.0],2]', "invalid_value"),
        (b'[2,"fte",[5,1700000000000,1.0,100.0],2]', "unknown_event"),
        (b'[3,"te",[5,1700000000000,1.0,100.0],2]', "unknown_event"),
        (b'[4,[1700000000000,10,11,9,10.5,1],2]', "invalid_value"),
        (b'[1,[100.0,1,1.0]]', "malformed_json"),
    ],
)  # fmt: skip
def test_bad_frames_are_rejected_with_their_reason(frame: bytes, reason: str) -> None:
    p, _ = synced()
    with pytest.raises(RejectedFrame) as rejected:
        send(p, frame)
    assert rejected.value.reason == reason


# -- books ----------------------------------------------------------------------------------


def test_book_snapshot_then_updates() -> None:
    out = RecordSink()
    p, seq = synced(out)
    assert [(r.side, r.price, r.size, r.snapshot) for r in out.book] == [
        (BID, 100.0, 2.0, True), (BID, 99.5, 1.5, True),
        (ASK, 101.0, 1.0, True), (ASK, 102.0, 0.25, True),
    ]  # fmt: skip
    assert out.events[-1].kind == EventKind.SYNCED
    out = RecordSink()
    send(p, [1, [100.5, 1, 0.5], seq()], out)  # a new best bid
    send(p, [1, [101.0, 0, -1], seq()], out)  # the best ask deleted
    send(p, [1, [99.5, 0, 1], seq()], out)  # a bid deleted
    e = (T0 // 1_000_000_000) << 31  # the greeting's second above the sequence number
    assert [(r.side, r.price, r.size, r.update_id, r.prev_update_id) for r in out.book] == [
        (BID, 100.5, 0.5, e | 2, e | 1), (ASK, 101.0, 0.0, e | 3, e | 2),
        (BID, 99.5, 0.0, e | 4, e | 3),
    ]  # fmt: skip
    (book,) = p.books()
    assert (book.synced, book.best_bid, book.best_ask, book.bids, book.asks) == (
        True, 100.5, 102.0, 2, 1,
    )  # fmt: skip


def test_bbo_is_the_top_of_the_p0_book_stored_when_it_changes() -> None:
    p = venue((Channel.BBO,))
    (spec,) = p.connections()
    assert b'"channel":"book"' in spec.subscribe[1], "no BBO channel: the book brings it"
    out = RecordSink()
    p.on_open(CONN, T0, out)
    send(p, {"event": "info", "version": 2})
    send(p, {"event": "conf", "status": "OK", "flags": 65536})
    send(p, {"event": "subscribed", "channel": "book", "chanId": 1, "symbol": "tBTCUSD"})
    send(p, [1, SNAPSHOT, 1], out)
    send(p, [1, [99.0, 1, 3.0], 2], out)  # below the best bid: the top is unchanged
    send(p, [1, [101.0, 1, -0.5], 3], out)  # the best ask's size
    send(p, [1, [101.0, 0, -1], 4], out)  # the best ask gone
    assert out.book == [], "bbo only: no book rows"
    e = (T0 // 1_000_000_000) << 31
    assert [(b.update_id, b.bid_price, b.bid_size, b.ask_price, b.ask_size) for b in out.bbo] == [
        (e | 1, 100.0, 2.0, 101.0, 1.0), (e | 3, 100.0, 2.0, 101.0, 0.5),
        (e | 4, 100.0, 2.0, 102.0, 0.25),
    ]  # fmt: skip


def test_checksum_is_crc32_of_top_25_interleaved_in_javascript_spelling() -> None:
    bids = {100.0: 2.0, 99.5: 1.5}
    asks = {101.0: 1.0, 102.0: 0.25}
    text = "100:2:101:-1:99.5:1.5:102:-0.25"
    expected = zlib.crc32(text.encode())
    assert book_checksum(bids, asks) == (expected - (1 << 32) if expected >= 1 << 31 else expected)
    many = {float(p): 1.0 for p in range(1, 40)}
    assert book_checksum(many, {}) == book_checksum({p: 1.0 for p in range(15, 40)}, {})


@pytest.mark.parametrize(
    ("value", "text"),
    [(277520.0, "277520"), (0.00002505, "0.00002505"), (1e-7, "1e-7"), (1.5e-7, "1.5e-7"),
     (0.000001, "0.000001"), (-0.25, "-0.25"), (2.2626931299999997, "2.2626931299999997"),
     (1e21, "1e+21"), (123456789012345680000.0, "123456789012345680000")],
)  # fmt: skip
def test_js_number(value: float, text: str) -> None:
    assert js_number(value) == text


def two_books(out: RecordSink | None = None) -> tuple[BitfinexProtocol, Seq]:
    """tBTCUSD and tETHUSD books (chanIds 1, 2) synced on one connection."""
    p, seq = venue((Channel.BOOK,), ("tBTCUSD", "tETHUSD")), Seq()
    send(p, {"event": "info", "version": 2})
    send(p, {"event": "conf", "status": "OK", "flags": 65536 + 131072})
    for chan, symbol in ((1, "tBTCUSD"), (2, "tETHUSD")):
        send(p, {"event": "subscribed", "channel": "book", "chanId": chan, "symbol": symbol})
        send(p, [chan, SNAPSHOT, seq()], out)
    return p, seq


def test_matching_checksum_is_counted_a_mismatch_resubscribes_that_book_alone() -> None:
    p, seq = two_books()
    good = book_checksum({100.0: 2.0, 99.5: 1.5}, {101.0: 1.0, 102.0: 0.25})
    assert send(p, [1, "cs", good, seq()]).name == "FILTERED"
    assert p.market is not None and p.market.checksums_verified == 1
    out = RecordSink()
    assert send(p, [1, "cs", good + 1, seq()], out).name == "PROCESSED"
    gap, resync = out.events
    assert (gap.kind, gap.channel, gap.detail) == (EventKind.GAP, "book", "checksum mismatch")
    assert (gap.expected, gap.received, gap.symbol) == (good + 1, good, "BTC-USD")
    assert (resync.kind, resync.channel) == (EventKind.RESYNC, "book")
    assert p.market.checksum_mismatches == 1
    assert p.take_reconnects() == [], "the connection stays open"
    assert p.take_messages() == [(CONN, b'{"event":"unsubscribe","chanId":1}')]
    assert p.take_messages() == []
    assert [b.synced for b in p.books()] == [False, True], "the other book is untouched"
    assert send(p, [1, [100.5, 1, 0.5], seq()]).name == "FILTERED"  # broken: not applied
    assert send(p, [2, [100.5, 1, 0.5], seq()]).name == "PROCESSED"
    assert send(p, [1, "cs", good + 7, seq()]).name == "FILTERED"  # no second gap meanwhile
    assert send(p, {"event": "unsubscribed", "status": "OK", "chanId": 1}).name == "FILTERED"
    (subscribe,) = p.take_messages()
    assert subscribe[0] == CONN and msgspec.json.decode(subscribe[1]) == {
        "event": "subscribe", "channel": "book", "symbol": "tBTCUSD", "prec": "P0",
        "freq": "F0", "len": "25",
    }  # fmt: skip
    with pytest.raises(RejectedFrame, match="unknown_channel"):
        send(p, [1, [100.5, 1, 0.5], seq()])  # the old chanId is gone
    out = RecordSink()
    send(p, {"event": "subscribed", "channel": "book", "chanId": 7, "symbol": "tBTCUSD"})
    send(p, [7, SNAPSHOT, seq()], out)
    assert [b.synced for b in p.books()] == [True, True]
    assert out.events[-1].kind == EventKind.SYNCED and out.book[0].snapshot
    assert send(p, [7, "cs", good, seq()]).name == "FILTERED"
    assert p.market.checksums_verified == 2


def test_a_new_socket_drops_resubscribes_owed_and_stray_answers_are_filtered() -> None:
    p, seq = two_books()
    send(p, [1, "cs", 5, seq()])  # mismatch: an unsubscribe is owed
    send(p, {"event": "info", "version": 2})  # the connection was replaced meanwhile
    assert p.take_messages() == []
    # an unsubscribe / resubscribe that reached the new socket is answered with errors
    stray = {"event": "error", "code": 10400, "msg": "unsubscribe: invalid", "chanId": 1}
    assert send(p, stray).name == "FILTERED"
    send(p, {"event": "subscribed", "channel": "book", "chanId": 3, "symbol": "tBTCUSD"})
    dup = {"event": "error", "code": 10301, "msg": "subscribe: dup", "channel": "book",
           "symbol": "tBTCUSD"}  # fmt: skip
    out = RecordSink()
    assert send(p, dup, out).name == "FILTERED" and not out.events


def test_a_refused_or_unanswered_resubscribe_falls_back_to_a_new_connection() -> None:
    p, seq = two_books()
    send(p, [1, "cs", 5, seq()])
    refused = {"event": "error", "code": 10400, "msg": "unsubscribe: invalid", "chanId": 1}
    assert send(p, refused).name == "FILTERED"
    assert p.take_reconnects() == [CONN]
    p, seq = two_books()
    send(p, [1, "cs", 5, seq()])
    send(p, {"event": "unsubscribed", "status": "OK", "chanId": 1})
    p.receive(CONN, msgspec.json.encode([2, "hb", seq()]), T0 + 29_000_000_000, RecordSink())
    assert p.take_reconnects() == [], "30 s to resync in place"
    p.receive(CONN, msgspec.json.encode([2, "hb", seq()]), T0 + 31_000_000_000, RecordSink())
    assert p.take_reconnects() == [CONN]


def test_replay_without_taking_messages_gives_the_same_records() -> None:
    """A replay never sends: the protocol's state follows what was received."""

    def run(take: bool) -> list[object]:
        out = RecordSink()
        p, seq = two_books(out)
        send(p, [1, "cs", 5, seq()], out)
        if take:
            p.take_messages()
        send(p, {"event": "unsubscribed", "status": "OK", "chanId": 1}, out)
        if take:
            p.take_messages()
        send(p, {"event": "subscribed", "channel": "book", "chanId": 9, "symbol": "tBTCUSD"})
        send(p, [9, SNAPSHOT, seq()], out)
        send(p, [9, [100.5, 1, 0.5], seq()], out)
        return [*out.book, *out.events]

    assert run(take=True) == run(take=False)


def test_skipped_sequence_is_a_gap_for_books_and_trades_and_a_resync() -> None:
    p, seq = synced()
    send(p, [3, [1, 2, 3, 4, 5, 6, 7, 8, 9, 6], seq()])
    out = RecordSink()
    send(p, [2, "te", [7, T0_MS, 0.5, 100.0], seq() + 1], out)  # one number skipped
    gaps = [e for e in out.events if e.kind == EventKind.GAP]
    assert sorted(e.channel for e in gaps) == ["book", "trades"]
    assert (gaps[0].expected, gaps[0].received) == (3, 4)
    assert [e.channel for e in out.events if e.kind == EventKind.RESYNC] == ["book"]
    assert len(out.trades) == 1, "the frame revealing the gap still carries its trade"
    assert p.take_reconnects() == [CONN]
    assert not p.books()[0].synced


def test_closed_connection_is_a_gap_and_the_reopened_one_resyncs() -> None:
    p, _ = synced()
    out = RecordSink()
    p.on_close(CONN, T0, out)
    assert sorted(e.channel for e in out.events) == ["book", "trades"]
    assert not p.books()[0].synced
    p.on_open(CONN, T0, out)
    with pytest.raises(RejectedFrame, match="unknown_channel"):
        send(p, [1, [100.5, 1, 0.5], 2])  # old channel ids mean nothing on a new socket


def test_stored_ids_grow_across_sockets_though_sequence_numbers_restart() -> None:
    p, seq = synced()
    out = RecordSink()
    send(p, [1, [100.5, 1, 0.5], seq()], out)
    send(p, {"event": "info", "version": 2})  # a new socket greets within the same second
    send(p, {"event": "conf", "status": "OK", "flags": 65536})
    send(p, {"event": "subscribed", "channel": "book", "chanId": 5, "symbol": "tBTCUSD"})
    send(p, [5, SNAPSHOT, 1], out)
    first, second = out.book[0], out.book[-1]
    assert second.snapshot and second.update_id > first.update_id
    assert second.update_id & ((1 << 31) - 1) == 1


def test_no_sequence_flag_stores_minus_one_ids() -> None:
    p = opened(flags=0)
    out = RecordSink()
    send(p, [1, SNAPSHOT], out)
    send(p, [1, [100.5, 1, 0.5]], out)
    assert {r.update_id for r in out.book} == {-1}


# Two P0 books with the checksums Bitfinex sent for them, from the tests of Bitfinex's own
# Python client (bitfinexcom/bitfinex-api-py, bfxapi/tests/test_ws_orderbook.py): the second
# has prices JavaScript spells ``7e-7``, ``6e-8``.
XRPBTC_SNAPSHOT = (
    b"[[0.0000886,1,1060.55466114],[0.00008859,1,1000],[0.00008858,1,2713.47159343],["
    b"0.00008857,1,4276.92870916],[0.00008856,2,6764.75562319],["
    b"0.00008854,1,5641.48532401],[0.00008853,1,2255.92632223],[0.0000885,1,2256.69584601],["
    b"0.00008848,2,3630.3],[0.00008845,1,28195.70625766],[0.00008844,1,15571.7],["
    b"0.00008843,1,2500],[0.00008841,1,64196.16117814],[0.00008838,1,7500],["
    b"0.00008837,2,2764.12999012],[0.00008834,2,10886.476298],[0.00008831,1,20000],["
    b"0.0000883,1,1000],[0.00008829,2,2517.22175358],[0.00008828,1,450.45],["
    b"0.00008827,1,13000],[0.00008824,1,1500],[0.0000882,1,300],[0.00008817,1,3000],["
    b"0.00008816,1,100],[0.00008864,1,-481.8549041],[0.0000887,2,-2141.77009092],["
    b"0.00008871,1,-2256.45433182],[0.00008872,1,-2707.58122743],["
    b"0.00008874,1,-5640.31794092],[0.00008876,1,-29004.93294912],[0.00008878,1,-2500],["
    b"0.0000888,1,-20000],[0.00008881,2,-2880.15595827],[0.00008882,1,-27705.42933984],["
    b"0.00008883,1,-4509.83708214],[0.00008884,1,-1500],[0.00008885,1,-2500],["
    b"0.00008888,1,-902.91405442],[0.00008889,1,-900],[0.00008891,1,-7500],["
    b"0.00008894,1,-775.08564697],[0.00008896,1,-150],[0.00008899,3,-11628.02590049],["
    b"0.000089,2,-1299.7],[0.00008902,2,-4841.8],[0.00008904,3,-25320.46250083],["
    b"0.00008909,1,-14000],[0.00008913,1,-123947.999],[0.00008915,2,-28019.6]]"
)
XRPBTC_UPDATES = [[0.00008915, 0, -1], [0.00008837, 1, 56.54876269], [0.00008873, 1, -15699.9]]
VETBTC_SNAPSHOT = (
    b"[[0.00000121,5,249013.0209708],[0.0000012,6,518315.33310128],["
    b"0.00000119,4,566200.89],[0.00000118,2,260000],[0.00000117,1,100000],["
    b"0.00000116,2,160000],[0.00000114,1,60000],[0.00000113,2,198500],[0.00000112,1,60000],["
    b"0.0000011,1,60000],[0.00000106,2,113868.87735849],[0.00000105,2,105000],["
    b"0.00000103,1,3000],[0.00000102,2,105000],[0.00000101,2,202970],[0.000001,2,21000],["
    b"7e-7,1,10000],[6.6e-7,1,10000],[6e-7,1,100000],[4.9e-7,1,10000],[2.5e-7,1,2000],["
    b"6e-8,1,100000],[5e-8,1,200000],[1e-8,4,640000],[0.00000122,7,-312043.19],["
    b"0.00000123,6,-415094.8939744],[0.00000124,5,-348181.23],[0.00000125,1,-12000],["
    b"0.00000126,2,-143872.31],[0.00000127,1,-5000],[0.0000013,1,-5000],["
    b"0.00000134,1,-8249.18938656],[0.00000135,2,-230043.1337899],["
    b"0.00000136,1,-13161.25184766],[0.00000145,1,-2914],[0.0000015,3,-54448.5],["
    b"0.00000152,2,-5538.54849594],[0.00000153,1,-62691.75475079],[0.00000159,1,-2914],["
    b"0.0000016,1,-52631.10296831],[0.00000164,1,-4000],[0.00000166,1,-3831.46784605],["
    b"0.00000171,1,-14575.17730379],[0.00000174,1,-3124.81815395],[0.0000018,1,-18000],["
    b"0.00000182,1,-16000],[0.00000186,1,-4000],[0.00000189,1,-10000.686624],["
    b"0.00000191,1,-14500]]"
)
VETBTC_UPDATES = [[0.00000121, 4, 228442.6609708], [0.00000121, 6, 304023.8109708]]


@pytest.mark.parametrize(
    ("snapshot", "updates", "checksum"),
    [(XRPBTC_SNAPSHOT, XRPBTC_UPDATES, 30026640), (VETBTC_SNAPSHOT, VETBTC_UPDATES, 1770440002)],
)
def test_checksums_bitfinex_published_verify(
    snapshot: bytes, updates: list[list[float]], checksum: int
) -> None:
    p = opened(flags=131072)
    send(p, b"[1," + snapshot + b"]")
    for update in updates:
        send(p, [1, update])
    assert send(p, [1, "cs", checksum]).name == "FILTERED"
    assert p.market is not None
    assert (p.market.checksums_verified, p.market.checksum_mismatches) == (1, 0)


# -- trades, ticker, candles ----------------------------------------------------------------


def test_each_trade_is_stored_once_te_tu_and_snapshots() -> None:
    p, seq = synced()
    out = RecordSink()
    snapshot = [[11, T0_MS, -0.5, 100.0], [10, T0_MS - 1000, 0.25, 99.0]]
    assert send(p, [2, snapshot, seq()], out).name == "PROCESSED"
    assert send(p, [2, "te", [12, T0_MS, 1.5, 101.0], seq()], out).name == "PROCESSED"
    assert send(p, [2, "tu", [12, T0_MS, 1.5, 101.0], seq()], out).name == "FILTERED"
    assert send(p, [2, "tu", [13, T0_MS, -2.0, 102.0], seq()], out).name == "PROCESSED"
    again = [[13, T0_MS, -2.0, 102.0], [12, T0_MS, 1.5, 101.0], [11, T0_MS, -0.5, 100.0]]
    assert send(p, [2, again, seq()], out).name == "FILTERED"  # a resubscribe's snapshot
    assert [(t.trade_id, t.side, t.size, t.price) for t in out.trades] == [
        (10, BUY, 0.25, 99.0), (11, SELL, 0.5, 100.0), (12, BUY, 1.5, 101.0),
        (13, SELL, 2.0, 102.0),
    ]  # fmt: skip
    assert out.trades[0].symbol == "BTC-USD" and out.trades[0].native_symbol == "tBTCUSD"


def test_trade_snapshot_history_beyond_a_day_is_skipped() -> None:
    p, seq = synced()
    out = RecordSink()
    old = [[11, T0_MS, 1.0, 100.0], [3, T0_MS - 2 * 86_400_000, 1.0, 90.0]]
    send(p, [2, old, seq()], out)
    assert [t.trade_id for t in out.trades] == [11]


def test_ticker() -> None:
    p, seq = synced()
    out = RecordSink()
    send(p, [3, [99.0, 1.0, 101.0, 2.0, -5.0, -0.05, 100.0, 1234.5, 110.0, 90.0], seq()], out)
    (t,) = out.ticker
    assert (t.last_price, t.open_price, t.high_price, t.low_price, t.volume) == (
        100.0, 105.0, 110.0, 90.0, 1234.5,
    )  # fmt: skip
    assert t.price_change == -5.0 and t.price_change_pct == pytest.approx(-5.0)


def test_candles_snapshot_updates_and_closing() -> None:
    p, seq = synced()
    out = RecordSink()
    m0 = T0_MS - T0_MS % 60_000
    history = [[m0, 10, 11, 12, 9, 5], [m0 - 60_000, 9, 10, 10.5, 8.5, 3]]
    send(p, [4, history, seq()], out)
    assert [(c.open_time // 1_000_000, c.closed) for c in out.candles] == [
        (m0 - 60_000, True), (m0, False),
    ]  # fmt: skip
    out = RecordSink()
    send(p, [4, [m0, 10, 11.5, 12, 9, 6], seq()], out)
    send(p, [4, [m0 + 60_000, 11.5, 11.5, 11.5, 11.5, 0.1], seq()], out)
    assert [(c.open_time // 1_000_000, c.close, c.closed) for c in out.candles] == [
        (m0, 11.5, False), (m0, 11.5, True), (m0 + 60_000, 11.5, False),
    ]  # fmt: skip
    assert out.candles[0].close_time == (m0 + 60_000) * 1_000_000 - 1
    assert send(p, [4, [m0, 10, 11.5, 12, 9, 6], seq()]).name == "FILTERED"


# -- the real recording ---------------------------------------------------------------------


def recording(recordings_dir: Path) -> list[Path]:
    files = sorted(recordings_dir.glob("BITFINEX.*"))
    if not files:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no BITFINEX recordings in {recordings_dir}")
        pytest.skip("no recordings")
    return files


def test_recording_every_frame_accounted_every_sequence_number_checked(
    recordings_dir: Path,
) -> None:
    files = recording(recordings_dir)
    config = infer_config(files, "bitfinex", None)
    assert config.options["sequence"] == "true" and config.options["checksum"] == "false"
    assert config.endpoint == "wss://api.bitfinex.com"
    assert set(config.channels) == {Channel.TICKER, Channel.BOOK, Channel.TRADES, Channel.EVENTS}
    assert "tTESTBTC:TESTUSD" in config.symbols
    config.authenticate = False
    protocol = exchanges()["bitfinex"].venue(config)
    assert isinstance(protocol, BitfinexProtocol) and protocol.market is not None
    accounting = Accounting()
    batches: list[Batch] = []
    stats = replay_events(read_capture(files), protocol, batches.append, accounting)
    # the recording's NAME.0 answers the three conf lists the protocol asks for
    assert (stats.rest_answered, stats.rest_unused, stats.rest_unanswered) == (3, 0, 0)
    assert protocol.market.invalid_symbols == []
    assert (accounting.received, accounting.processed, accounting.filtered) == (1693, 1628, 65)
    assert accounting.rejected_total == 0
    market = protocol.market
    # the recording asked for sequence numbers only (conf flags 65536): it holds no checksums
    assert market.sequence_checked == 1669
    assert (market.checksums_verified, market.checksum_mismatches) == (0, 0)
    events = [e for b in batches for e in b.get(Channel.EVENTS, [])]
    assert [e.kind for e in events] == [EventKind.SYNCED] * 7, "no gap in the recording"
    assert all(book.synced for book in protocol.books())
    assert sum(len(b.get(Channel.TICKER, [])) for b in batches) == 21
