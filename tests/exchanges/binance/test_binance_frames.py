"""Frame handling: control frames, rejections with stable reasons, shutdown, every payload type."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hundi.exchanges.base import FrameStatus, RecordSink, RejectedFrame, RestResponse, VenueConfig
from hundi.exchanges.binance import BinanceVenue
from hundi.exchanges.binance.protocol import EXCHANGE_INFO_KEY, BinanceProtocol
from hundi.exchanges.validity import MAX_CLOCK_SKEW_NS
from hundi.records import Channel, EventKind, to_arrow

ALL = (Channel.TRADES, Channel.BBO, Channel.TICKER, Channel.BOOK, Channel.CANDLES)
MS = 1_000_000


@pytest.fixture
def spot() -> BinanceProtocol:
    return BinanceVenue(VenueConfig("spot", ("BNBBTC", "BTCUSDT"), ALL))


def reject_reason(protocol: BinanceProtocol, data: bytes) -> str:
    out = RecordSink()
    with pytest.raises(RejectedFrame) as info:
        protocol.receive("spot-public-0", data, 1, out)
    assert len(out) == 0
    return info.value.reason


def test_subscribe_ack_is_filtered(spot: BinanceProtocol) -> None:
    out = RecordSink()
    assert spot.receive("spot-public-0", b'{"result":null,"id":1}', 1, out) is FrameStatus.FILTERED
    assert len(out) == 0


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b'{"code": 2, "msg": "Invalid request: unknown variable"}', "server_error"),
        (b'{"error": {"code": 2, "msg": "Invalid request"}, "id": 3}', "server_error"),
        (b'{"stream":"bnbbtc@aggTrade","data":{"e":"aggTrade"', "malformed_json"),
        (b"not json", "malformed_json"),
        (b'{"e":"\x80serverShutdown","E":1}', "malformed_json"),  # invalid UTF-8
        (b'{"stream":"bnbbtc@aggTrade","data":{"e":"\xff"}}', "malformed_json"),
        (b"", "malformed_json"),
        (b'{"x":' * 100_000 + b"1" + b"}" * 100_000, "malformed_json"),  # nested too deep
        (b'{"stream":"bnbbtc@aggTrade","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
         "malformed_json"),
        (b"[1, 2]", "invalid_message"),
        (b'{"stream": 5}', "invalid_message"),
        (b'{"stream":"bnbbtc@aggTrade"}', "invalid_message"),
        (b'{"stream":"bnbbtc@aggTrade","data":{"e":"aggTrade","E":1}}', "invalid_message"),
        (b'{"stream":"bnbbtc@aggTrade","data":{"e":"aggTrade","E":1,"a":1,"p":"x","q":"1",'
         b'"f":1,"l":1,"T":1,"m":true}}', "invalid_message"),  # price not a number
        (b'{"stream":"bnbbtc@aggTrade","data":[]}', "invalid_message"),
        (b'{"stream":"bnbbtc@aggTrade","data":{"e":"markPriceUpdate","E":1}}', "unknown_event"),
        (b'{"stream":"bnbbtc@markPrice","data":{"e":"markPriceUpdate"}}', "unknown_stream"),
        (b'{"stream":"ethusdt@aggTrade","data":{"e":"aggTrade"}}', "unknown_symbol"),
        (b'{"e":"outboundAccountPosition","E":1}', "unknown_event"),
        (b'{"e":"serverShutdown","E":99999999999999999999}', "invalid_message"),
        (b'{"event":{"e":"somethingElse"}}', "invalid_message"),
        (b'{"id": 7}', "invalid_message"),
    ],
)  # fmt: skip
def test_bad_frames_are_rejected_with_stable_reasons(
    spot: BinanceProtocol, frame: bytes, reason: str
) -> None:
    assert reject_reason(spot, frame) == reason


def test_server_shutdown_asks_for_a_reconnect(spot: BinanceProtocol) -> None:
    out = RecordSink()
    status = spot.receive("spot-public-0", b'{"e":"serverShutdown","E":1770123456789}', 5, out)
    assert status is FrameStatus.PROCESSED
    [event] = out.events
    assert (event.kind, event.ts, event.recv_ts) == (EventKind.SHUTDOWN, 1770123456789 * MS, 5)
    assert "spot-public-0" in event.detail
    assert spot.take_reconnects() == ["spot-public-0"]
    assert spot.take_reconnects() == []
    # Also inside a combined-stream envelope and the WebSocket-API wrapper.
    spot.receive("spot-public-1", b'{"stream":"x","data":{"e":"serverShutdown","E":1}}', 6, out)
    spot.receive("spot-public-1", b'{"event":{"e":"serverShutdown","E":1}}', 7, out)
    assert spot.take_reconnects() == ["spot-public-1"]
    assert [e.kind for e in out.events] == [EventKind.SHUTDOWN] * 3


def test_ticker_and_trade_payloads() -> None:
    protocol = BinanceVenue(
        VenueConfig("spot", ("BNBBTC",), ALL, options={"trade_stream": "trade"})
    )
    out = RecordSink()
    ticker = (
        b'{"stream":"bnbbtc@ticker","data":{"e":"24hrTicker","E":1672515782136,"s":"BNBBTC",'
        b'"p":"0.0015","P":"250.00","w":"0.0018","x":"0.0009","c":"0.0025","Q":"10","b":"0.0024",'
        b'"B":"10","a":"0.0026","A":"100","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000",'
        b'"q":"18","O":0,"C":86400000,"F":0,"L":18150,"n":18151}}'
    )
    trade = (
        b'{"stream":"bnbbtc@trade","data":{"e":"trade","E":1672515782136,"s":"BNBBTC",'
        b'"t":12345,"p":"0.001","q":"100","T":1672515782130,"m":true,"M":true}}'
    )
    recv_ns = 1672515782140 * MS
    assert protocol.receive("spot-public-0", ticker, recv_ns, out) is FrameStatus.PROCESSED
    assert protocol.receive("spot-public-0", trade, recv_ns, out) is FrameStatus.PROCESSED
    [t] = out.ticker
    assert (t.last_price, t.last_size, t.open_price, t.high_price, t.low_price) == (
        0.0025, 10.0, 0.001, 0.0025, 0.001,
    )  # fmt: skip
    assert (t.volume, t.quote_volume, t.vwap, t.price_change, t.price_change_pct) == (
        10000.0, 18.0, 0.0018, 0.0015, 250.0,
    )  # fmt: skip
    assert (t.trade_count, t.open_time, t.close_time, t.first_trade_id, t.last_trade_id) == (
        18151, 0, 86400000 * MS, 0, 18150,
    )  # fmt: skip
    assert t.ts == 1672515782136 * MS
    [tr] = out.trades
    assert (tr.trade_id, tr.first_trade_id, tr.last_trade_id, tr.price, tr.size, tr.side) == (
        12345, 12345, 12345, 0.001, 100.0, -1,
    )  # fmt: skip
    assert tr.ts == 1672515782130 * MS


def test_depth_frames_while_unsynced_are_processed_and_request_a_snapshot(
    spot: BinanceProtocol,
) -> None:
    out = RecordSink()
    frame = (
        b'{"stream":"bnbbtc@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BNBBTC",'
        b'"U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}'
    )
    assert spot.receive("spot-public-0", frame, 1_000, out) is FrameStatus.PROCESSED
    assert len(out) == 0  # buffered until a snapshot arrives
    assert spot.next_wakeup_ns() == 1_000
    request, info = spot.due_requests(1_000)  # and the start-up exchangeInfo, unspaced
    assert info.key == EXCHANGE_INFO_KEY
    assert request.key == "BNBBTC"
    assert request.url == "https://api.binance.com/api/v3/depth?symbol=BNBBTC&limit=1000"
    assert request.weight == 50
    assert spot.due_requests(2_000) == []  # one in flight per symbol
    assert spot.next_wakeup_ns() is None


def test_on_close_unsyncs_books_on_that_connection_only() -> None:
    protocol = BinanceVenue(VenueConfig("usdm", ("BTCUSDT",), (Channel.BOOK, Channel.TRADES)))
    out = RecordSink()
    diff = (
        b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT",'
        b'"U":10,"u":12,"pu":9,"b":[["100.0","1"]],"a":[["101.0","1"]]}}'
    )
    protocol.receive("usdm-public-0", diff, 1, out)
    request, info = protocol.due_requests(1)
    assert info.key == EXCHANGE_INFO_KEY  # left unanswered: it changes nothing for the book
    body = b'{"lastUpdateId":11,"E":2,"T":2,"bids":[["99.0","1"]],"asks":[["102.0","1"]]}'
    protocol.receive_response(request, RestResponse(200, body), 2, out)
    assert [b.synced for b in protocol.books()] == [True]
    protocol.on_close("usdm-market-0", 3, out)
    assert [b.synced for b in protocol.books()] == [True]
    protocol.on_close("usdm-public-0", 4, out)
    [state] = protocol.books()
    assert not state.synced and state.bids == 0
    assert [e.kind for e in out.events] == [EventKind.SYNCED, EventKind.GAP, EventKind.RESYNC]
    assert out.events[1].detail == "disconnect" and out.events[1].expected == 12
    protocol.on_open("usdm-public-0", 5, out)
    assert protocol.due_requests(10**12) == []  # waits for diffs to buffer first
    protocol.receive("usdm-public-0", diff.replace(b'"U":10', b'"U":11'), 6, out)
    assert [r.key for r in protocol.due_requests(10**12)] == ["BTCUSDT"]


TEMPLATES = [
    b'{"stream":"bnbbtc@aggTrade","data":{"e":"aggTrade","E":1,"s":"BNBBTC","a":1,"p":"0.1",'
    b'"q":"2","f":1,"l":1,"T":1,"m":true,"M":true}}',
    b'{"stream":"bnbbtc@bookTicker","data":{"u":4,"s":"BNBBTC","b":"0.1","B":"1","a":"0.2",'
    b'"A":"1"}}',
    b'{"stream":"bnbbtc@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BNBBTC","U":1,"u":2,'
    b'"b":[["0.1","1"]],"a":[["0.2","0"]]}}',
    b'{"stream":"bnbbtc@kline_1m","data":{"e":"kline","E":1,"s":"BNBBTC","k":{"t":0,"T":59999,'
    b'"s":"BNBBTC","i":"1m","f":1,"L":2,"o":"1","c":"1","h":"1","l":"1","v":"1","n":2,"x":true,'
    b'"q":"1","V":"1","Q":"1","B":"0"}}}',
    b'{"result":null,"id":1}',
    b'{"e":"serverShutdown","E":1}',
]

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["stream", "data", "e", "E", "p", "b", "u", "U", "result",
                                       "code", "event", "k"]), children, max_size=4),
    max_leaves=12,
)  # fmt: skip


@st.composite
def hostile_frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["mutate", "random", "json"]))
    if kind == "random":
        return draw(st.binary(max_size=64))
    if kind == "json":
        value = draw(JSON_VALUES)
        if draw(st.booleans()):
            value = {
                "stream": draw(
                    st.sampled_from(
                        ["bnbbtc@aggTrade", "bnbbtc@depth@100ms", "bnbbtc@kline_1m", "x@y"]
                    )
                ),
                "data": value,
            }
        return json.dumps(value).encode()
    frame = bytearray(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(frame) - 1))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            frame[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del frame[at : at + draw(st.integers(1, 8))]
        else:
            frame[at:at] = draw(st.sampled_from([b'"', b"-", b"1e999", b"nan", b"[", b"}", b","]))
        if not frame:
            break
    return bytes(frame)


@settings(max_examples=400, deadline=None)
@given(st.lists(hostile_frames(), min_size=1, max_size=5))
@pytest.mark.slow
def test_hostile_frames_only_ever_raise_rejected_frame(frames: list[bytes]) -> None:
    protocol = BinanceVenue(VenueConfig("spot", ("BNBBTC",), ALL))
    out = RecordSink()
    for frame in frames:
        try:
            status = protocol.receive("spot-public-0", frame, 1, out)
        except RejectedFrame as e:
            assert e.reason in {
                "malformed_json", "invalid_message", "unknown_stream", "unknown_symbol",
                "unknown_event", "server_error", "duplicate_trade", "expired_trade",
                "invalid_value",
            }  # fmt: skip
        else:
            assert status in (FrameStatus.PROCESSED, FrameStatus.FILTERED)
    for channel, records in out.items():  # what was accepted is storable: int64 times, >= 0
        assert all(record.ts >= 0 for record in records)
        assert to_arrow(channel, records).num_rows == len(records)
        if channel is not Channel.EVENTS:  # and plausible (docs/validity.md)
            assert all(abs(record.ts - 1) <= MAX_CLOCK_SKEW_NS for record in records)
    assert all(t.price > 0 and t.size > 0 for t in out.trades)
    assert all(b.price > 0 and b.size >= 0 for b in out.book)
    assert not [b for b in out.bbo if b.bid_price > b.ask_price > 0]


def _agg(agg_id: int) -> bytes:
    return (
        b'{"stream":"bnbbtc@aggTrade","data":{"e":"aggTrade","E":5,"s":"BNBBTC","a":%d,'
        b'"p":"0.001","q":"2","f":%d,"l":%d,"T":4,"m":false,"M":true}}' % (agg_id, agg_id, agg_id)
    )


def test_trade_id_gap_is_recorded_and_duplicate_rejected(spot: BinanceProtocol) -> None:
    out = RecordSink()
    for agg_id in (10, 11, 14):
        assert spot.receive("spot-public-0", _agg(agg_id), 7, out) is FrameStatus.PROCESSED
    assert [t.trade_id for t in out.trades] == [10, 11, 14]
    [gap] = out.events
    assert (gap.kind, gap.channel, gap.expected, gap.received) == ("gap", "trades", 12, 14)
    assert reject_reason(spot, _agg(11)) == "duplicate_trade"
    late = RecordSink()
    assert spot.receive("spot-public-0", _agg(12), 8, late) is FrameStatus.PROCESSED
    assert [t.trade_id for t in late.trades] == [12] and not late.events


def test_late_trades_fill_holes_after_many_gaps(spot: BinanceProtocol) -> None:
    """More than 64 holes, then late trades into them: each is stored once, resends rejected."""
    out = RecordSink()
    spot.receive("spot-public-0", _agg(0), 7, out)
    for n in range(1, 101):
        spot.receive("spot-public-0", _agg(n * 10), 7, out)  # holes n*10-9 .. n*10-1
    assert len(out.events) == 100
    late = RecordSink()
    for agg_id in (5, 1, 995, 505, 9, 5):
        try:
            spot.receive("spot-public-0", _agg(agg_id), 8, late)
        except RejectedFrame as e:
            assert (agg_id, e.reason) == (5, "duplicate_trade")
    assert [t.trade_id for t in late.trades] == [5, 1, 995, 505, 9]
    assert not late.events
    assert reject_reason(spot, _agg(500)) == "duplicate_trade"


def test_trade_in_a_hole_declared_final_is_rejected_as_expired(spot: BinanceProtocol) -> None:
    """Past the remembered holes the oldest is final: a late id there is neither stored nor
    called a duplicate, but rejected (and quarantined by the caller) as ``expired_trade``."""
    out = RecordSink()
    spot.receive("spot-public-0", _agg(0), 7, out)
    for n in range(1, 1100):
        spot.receive("spot-public-0", _agg(n * 10), 7, out)
    assert reject_reason(spot, _agg(5)) == "expired_trade"
    assert reject_reason(spot, _agg(10)) == "expired_trade"
    late = RecordSink()
    assert spot.receive("spot-public-0", _agg(10_985), 8, late) is FrameStatus.PROCESSED
    assert [t.trade_id for t in late.trades] == [10_985] and not late.events


# --- impossible values: rejected as ``invalid_value``, naming the field (docs/validity.md) ---

NOW_MS = 1_770_000_000_000  # receive time of the frames below (2026-02-02)
DAY_MS = 86_400_000
VALID_PAYLOADS: dict[str, dict[str, object]] = {
    "bnbbtc@aggTrade": {"e": "aggTrade", "E": NOW_MS, "s": "BNBBTC", "a": 1, "p": "0.1",
                        "q": "2", "f": 1, "l": 1, "T": NOW_MS, "m": True, "M": True},
    "bnbbtc@trade": {"e": "trade", "E": NOW_MS, "s": "BNBBTC", "t": 1, "p": "0.1", "q": "2",
                     "T": NOW_MS, "m": True, "M": True},
    "bnbbtc@bookTicker": {"u": 4, "s": "BNBBTC", "b": "0.1", "B": "1", "a": "0.2", "A": "1"},
    "bnbbtc@depth@100ms": {"e": "depthUpdate", "E": NOW_MS, "s": "BNBBTC", "U": 1, "u": 2,
                           "b": [["0.1", "1"]], "a": [["0.2", "0"]]},
    "bnbbtc@kline_1m": {"e": "kline", "E": NOW_MS, "s": "BNBBTC", "k": {
        "t": NOW_MS - 60_000, "T": NOW_MS - 1, "s": "BNBBTC", "i": "1m", "f": 1, "L": 2,
        "o": "1.5", "c": "1.2", "h": "2", "l": "1", "v": "1", "n": 2, "x": True, "q": "1",
        "V": "1", "Q": "1", "B": "0"}},
    "bnbbtc@ticker": {"e": "24hrTicker", "E": NOW_MS, "s": "BNBBTC", "p": "-0.0015",
                      "P": "-25.00", "w": "0.0018", "x": "0.0009", "c": "0.0025", "Q": "10",
                      "b": "0.0024", "B": "10", "a": "0.0026", "A": "100", "o": "0.0040",
                      "h": "0.0045", "l": "0.0010", "v": "10000", "q": "18",
                      "O": NOW_MS - DAY_MS, "C": NOW_MS, "F": 0, "L": 18150, "n": 18151},
}  # fmt: skip


def market_data(stream: str, changes: dict[str, object]) -> tuple[BinanceProtocol, bytes]:
    """A protocol subscribed to ``stream`` and a frame of it with ``changes`` applied
    (``k.x`` changes the kline field ``x``)."""
    trade_stream = "trade" if stream.endswith("@trade") else "aggTrade"
    protocol = BinanceVenue(
        VenueConfig("spot", ("BNBBTC",), ALL, options={"trade_stream": trade_stream})
    )
    payload = json.loads(json.dumps(VALID_PAYLOADS[stream]))
    for name, value in changes.items():
        target = payload["k"] if name.startswith("k.") else payload
        target[name.removeprefix("k.")] = value
    return protocol, json.dumps({"stream": stream, "data": payload}).encode()


@pytest.mark.parametrize(
    ("stream", "changes"),
    [
        *[(stream, {}) for stream in VALID_PAYLOADS],
        ("bnbbtc@bookTicker", {"b": "0.2", "a": "0.2"}),  # touching (bid == ask) may happen
        ("bnbbtc@bookTicker", {"b": "0", "B": "0"}),  # empty bid side
        ("bnbbtc@depth@100ms", {"b": [["0.1", "0"]]}),  # size 0 deletes a level
        ("bnbbtc@aggTrade", {"T": NOW_MS - DAY_MS + 1}),  # just inside the clock bound
    ],
)
def test_plausible_values_are_stored(stream: str, changes: dict[str, object]) -> None:
    protocol, frame = market_data(stream, changes)
    assert protocol.receive("spot-public-0", frame, NOW_MS * MS, RecordSink()) is (
        FrameStatus.PROCESSED
    )


# Non-finite or negative numbers never get past the typed decoders (``invalid_message`` naming
# the JSON path); numbers that decode but cannot be true are ``invalid_value`` naming the field.
DECODER = "invalid_message"


@pytest.mark.parametrize(
    ("stream", "changes", "field"),
    [
        ("bnbbtc@aggTrade", {"p": "0"}, "price"),
        ("bnbbtc@aggTrade", {"p": "0.00000000"}, "price"),
        ("bnbbtc@aggTrade", {"p": "1e-400"}, "price"),  # parses to 0.0
        ("bnbbtc@aggTrade", {"p": "1e308"}, "price"),
        ("bnbbtc@aggTrade", {"q": "0"}, "size"),
        ("bnbbtc@aggTrade", {"q": "1e308"}, "size"),
        ("bnbbtc@aggTrade", {"T": 1}, "trade time"),  # 1970
        ("bnbbtc@aggTrade", {"T": 9_000_000_000_000}, "trade time"),  # 2255
        ("bnbbtc@aggTrade", {"T": NOW_MS + DAY_MS + 1}, "trade time"),
        ("bnbbtc@trade", {"p": "0"}, "price"),
        ("bnbbtc@trade", {"q": "1e-400"}, "size"),
        ("bnbbtc@trade", {"T": 1}, "trade time"),
        ("bnbbtc@bookTicker", {"b": "70000", "a": "100"}, "crossed"),
        ("bnbbtc@bookTicker", {"b": "0"}, "bid price"),  # a price 0 with a size
        ("bnbbtc@bookTicker", {"A": "0"}, "ask size"),  # a size 0 with a price
        ("bnbbtc@bookTicker", {"a": "1e308"}, "ask price"),
        ("bnbbtc@bookTicker", {"B": "1e308"}, "bid size"),
        ("bnbbtc@bookTicker", {"E": 1}, "event time"),  # USD-M sends one
        ("bnbbtc@depth@100ms", {"b": [["0", "1"]]}, "bid level price"),
        ("bnbbtc@depth@100ms", {"a": [["0.2", "1"], ["1e-400", "0"]]}, "ask level price"),
        ("bnbbtc@depth@100ms", {"b": [["0.1", "1e308"]]}, "bid level size"),
        ("bnbbtc@depth@100ms", {"E": 9_000_000_000_000}, "event time"),
        ("bnbbtc@kline_1m", {"k.o": "0"}, "open"),
        ("bnbbtc@kline_1m", {"k.h": "0.5"}, "high"),  # below the low
        ("bnbbtc@kline_1m", {"k.l": "1.3"}, "low"),  # above the close
        ("bnbbtc@kline_1m", {"k.v": "1e308"}, "volume"),
        ("bnbbtc@kline_1m", {"E": 1}, "event time"),
        ("bnbbtc@ticker", {"c": "1e308"}, "last price"),
        ("bnbbtc@ticker", {"v": "1e308"}, "volume"),
        ("bnbbtc@ticker", {"p": "-1e308"}, "price change"),
        ("bnbbtc@ticker", {"E": 9_000_000_000_000}, "event time"),
        ("bnbbtc@aggTrade", {"p": "inf"}, DECODER),
        ("bnbbtc@aggTrade", {"p": "nan"}, DECODER),
        ("bnbbtc@aggTrade", {"q": "-1"}, DECODER),
        ("bnbbtc@bookTicker", {"a": "inf"}, DECODER),
        ("bnbbtc@depth@100ms", {"a": [["nan", "1"]]}, DECODER),
        ("bnbbtc@depth@100ms", {"b": [["0.1", "-1"]]}, DECODER),
        ("bnbbtc@kline_1m", {"k.v": "inf"}, DECODER),
        ("bnbbtc@ticker", {"v": "nan"}, DECODER),
    ],
)
def test_impossible_values_are_rejected_naming_the_field(
    stream: str, changes: dict[str, object], field: str
) -> None:
    protocol, frame = market_data(stream, changes)
    out = RecordSink()
    with pytest.raises(RejectedFrame) as info:
        protocol.receive("spot-public-0", frame, NOW_MS * MS, out)
    if field == DECODER:
        assert info.value.reason == DECODER
        path = "$.k." + next(iter(changes))[2:] if "k." in str(changes) else "$."
        assert f"`{path}" in info.value.detail  # names where in the payload
    else:
        assert (info.value.reason, info.value.detail.split(":")[0]) == ("invalid_value", field)
    assert len(out) == 0  # nothing stored: no record, no event


def test_a_rejected_trade_leaves_a_hole_that_a_valid_resend_fills() -> None:
    protocol, bad = market_data("bnbbtc@aggTrade", {"a": 2, "f": 2, "l": 2, "p": "0"})
    out = RecordSink()
    protocol.receive("spot-public-0", market_data("bnbbtc@aggTrade", {})[1], NOW_MS * MS, out)
    with pytest.raises(RejectedFrame):
        protocol.receive("spot-public-0", bad, NOW_MS * MS, out)
    _, third = market_data("bnbbtc@aggTrade", {"a": 3, "f": 3, "l": 3})
    protocol.receive("spot-public-0", third, NOW_MS * MS, out)
    assert [(e.kind, e.expected, e.received) for e in out.events] == [("gap", 2, 3)]
    _, resend = market_data("bnbbtc@aggTrade", {"a": 2, "f": 2, "l": 2})
    protocol.receive("spot-public-0", resend, NOW_MS * MS, out)
    assert [t.trade_id for t in out.trades] == [1, 3, 2]


def test_an_implausible_snapshot_is_refetched_not_stored() -> None:
    protocol = BinanceVenue(VenueConfig("usdm", ("BTCUSDT",), (Channel.BOOK,)))
    out = RecordSink()
    diff = (
        b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":%d,"T":%d,'
        b'"s":"BTCUSDT","U":10,"u":12,"pu":9,"b":[["100.0","1"]],"a":[["101.0","1"]]}}'
        % (NOW_MS, NOW_MS)
    )
    protocol.receive("usdm-public-0", diff, NOW_MS * MS, out)
    [request, _] = protocol.due_requests(NOW_MS * MS)
    body = b'{"lastUpdateId":11,"E":%d,"T":%d,"bids":[["0","1"]],"asks":[["102.0","1"]]}'
    protocol.receive_response(request, RestResponse(200, body % (NOW_MS, NOW_MS)), NOW_MS * MS, out)
    assert not protocol.book("BTCUSDT").synced and not out.book
    [again] = protocol.due_requests(NOW_MS * MS + 10**12)
    assert again.key == "BTCUSDT"
    body = b'{"lastUpdateId":11,"E":1,"T":1,"bids":[["99.0","1"]],"asks":[["102.0","1"]]}'
    protocol.receive_response(again, RestResponse(200, body), NOW_MS * MS + 10**12, out)
    assert not protocol.book("BTCUSDT").synced and not out.book
