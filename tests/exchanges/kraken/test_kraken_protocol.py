"""Kraken WebSocket v2 protocol on hand-written frames: every message kind, the book checksum,
truncation to the depth, gap + in-place resync, trade dedup and gaps, bad input, config."""

from __future__ import annotations

import math
import zlib

import msgspec
import pytest

from hundi.exchanges.base import FrameStatus, RecordSink, RejectedFrame, VenueConfig
from hundi.exchanges.kraken import KrakenProtocol, KrakenVenue
from hundi.exchanges.kraken.symbols import native_v1, native_v2, normalize
from hundi.records import ASK, BID, BUY, SELL, Channel

NOW = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z
TS = "2023-11-14T22:13:20.123456Z"
ALL = (Channel.TRADES, Channel.BBO, Channel.TICKER, Channel.BOOK, Channel.CANDLES, Channel.EVENTS)


def make(channels: tuple[Channel, ...] = ALL, **options: str) -> KrakenProtocol:
    config = VenueConfig("spot", ("BTC/USD",), channels, options={"depth": "10", **options})
    protocol = KrakenVenue(config)
    assert isinstance(protocol, KrakenProtocol)
    return protocol


def feed(p: KrakenProtocol, message: object, out: RecordSink | None = None) -> FrameStatus:
    return p.receive(
        "public", msgspec.json.encode(message), NOW, out if out is not None else RecordSink()
    )


def instrument(p: KrakenProtocol) -> None:
    pairs = [{"symbol": "BTC/USD", "base": "BTC", "quote": "USD", "price_precision": 1,
              "qty_precision": 8, "status": "online"}]  # fmt: skip
    msg = {"channel": "instrument", "type": "snapshot", "data": {"assets": [], "pairs": pairs}}
    assert feed(p, msg) is FrameStatus.PROCESSED


def crc(*levels: str) -> int:
    return zlib.crc32("".join(levels).encode())


def book(kind: str, bids: list[tuple[float, float]], asks: list[tuple[float, float]],
         checksum: int) -> dict[str, object]:  # fmt: skip
    entry: dict[str, object] = {
        "symbol": "BTC/USD",
        "bids": [{"price": p, "qty": q} for p, q in bids],
        "asks": [{"price": p, "qty": q} for p, q in asks],
        "checksum": checksum,
    }
    if kind == "update":
        entry["timestamp"] = TS
    return {"channel": "book", "type": kind, "data": [entry]}


# asks low→high, then bids high→low; "." removed, leading zeros stripped (documented rule)
SNAP_CRC = crc("1000101000000", "1002200000000", "99950000000", "9981")


def synced() -> tuple[KrakenProtocol, RecordSink]:
    p = make()
    instrument(p)
    out = RecordSink()
    snap = book("snapshot", [(99.9, 0.5), (99.8, 0.00000001)], [(100.0, 1.01), (100.2, 2.0)],
                SNAP_CRC)  # fmt: skip
    assert feed(p, snap, out) is FrameStatus.PROCESSED
    return p, out


def test_symbols() -> None:
    assert normalize("BTC/USD") == normalize("XBT/USD") == "BTC-USD"
    assert normalize("XDG/EUR") == "DOGE-EUR"
    assert native_v2("BTC-USD") == "BTC/USD" and native_v1("BTC-USD") == "XBT/USD"
    with pytest.raises(ValueError, match="not a Kraken pair"):
        normalize("BTCUSD")


def test_subscribes_instrument_first_then_each_channel() -> None:
    (spec,) = make(ohlc_interval="5").connections()
    assert spec.url == "wss://ws.kraken.com/v2"
    sent = [msgspec.json.decode(m) for m in spec.subscribe]
    assert [m["params"]["channel"] for m in sent] == [
        "instrument",
        "book",
        "trade",
        "ticker",
        "ohlc",
    ]
    assert sent[1]["params"] == {"channel": "book", "symbol": ["BTC/USD"], "depth": 10,
                                 "snapshot": True}  # fmt: skip
    assert sent[3]["params"]["event_trigger"] == "bbo"
    assert sent[4]["params"]["interval"] == 5


def test_snapshot_checksum_verified_and_synced() -> None:
    p, out = synced()
    assert p.checksums_verified == 1 and p.checksum_mismatches == 0
    assert [(r.side, r.price, r.snapshot, r.update_id) for r in out.book] == [
        (BID, 99.9, True, -1), (BID, 99.8, True, -1), (ASK, 100.0, True, -1), (ASK, 100.2, True, -1)
    ]  # fmt: skip
    assert [e.kind for e in out.events] == ["synced"]
    (status,) = p.books()
    assert status.synced and status.best_bid == 99.9 and status.best_ask == 100.0
    assert out.book[0].symbol == "BTC-USD" and out.book[0].native_symbol == "BTC/USD"


def test_update_applies_deletes_and_verifies() -> None:
    p, _ = synced()
    out = RecordSink()
    expected = crc("1002200000000", "99950000000", "9981")  # ask 100.0 deleted
    assert feed(p, book("update", [], [(100.0, 0.0)], expected), out) is FrameStatus.PROCESSED
    assert [(r.side, r.price, r.size, r.snapshot) for r in out.book] == [(ASK, 100.0, 0.0, False)]
    assert out.book[0].ts == 1_700_000_000_123_456_000
    assert p.checksums_verified == 2 and out.events == []


def test_a_rollovers_second_snapshot_does_not_reset_a_synced_book() -> None:
    """Make-before-break: the new socket's snapshot comes after updates the old socket gave
    (and the new socket's copies of those are dropped as duplicates), so it is not applied."""
    p, _ = synced()
    expected = crc("1002200000000", "99950000000", "9981")
    assert feed(p, book("update", [], [(100.0, 0.0)], expected)) is FrameStatus.PROCESSED
    out = RecordSink()
    again = book("snapshot", [(99.9, 0.5), (99.8, 0.00000001)], [(100.0, 1.01), (100.2, 2.0)],
                 SNAP_CRC)  # fmt: skip
    assert feed(p, again, out) is FrameStatus.FILTERED
    assert out.book == [] and out.events == []
    (status,) = p.books()
    assert status.synced and status.best_ask == 100.2
    (spec,) = p.connections()
    assert spec.max_lifetime_s == math.inf  # Kraken documents no lifetime: no routine rollover


def test_checksum_uses_the_wire_decimals_not_a_float() -> None:
    """A float prints 1234567890.12345678 back as ...672: the text is kept instead."""
    p = make()
    pairs = [{"symbol": "BTC/USD", "price_precision": 2, "qty_precision": 8}]
    msg = {"channel": "instrument", "type": "snapshot", "data": {"pairs": pairs}}
    feed(p, msg)
    expected = crc("10050", "123456789012345678", "10000", "1")
    raw = (
        b'{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD",'
        b'"bids":[{"price":100.0,"qty":1e-8}],"asks":[{"price":100.5,"qty":1234567890.12345678}],'
        b'"checksum":' + str(expected).encode() + b"}]}"
    )
    out = RecordSink()
    assert p.receive("public", raw, NOW, out) is FrameStatus.PROCESSED
    assert p.checksums_verified == 1 and p.checksum_mismatches == 0, out.events
    assert [(r.side, r.size) for r in out.book] == [(BID, 1e-8), (ASK, 1234567890.12345678)]


def test_a_snapshot_without_a_checksum_syncs_and_the_next_update_verifies() -> None:
    p = make()
    instrument(p)
    out = RecordSink()
    feed(p, book("snapshot", [(99.9, 0.5)], [(100.0, 1.01)], -1), out)
    assert p.books()[0].synced and [e.kind for e in out.events] == ["synced"]
    assert p.checksums_verified == 0
    feed(p, book("update", [(99.8, 0.00000001)], [], crc("1000101000000", "99950000000", "9981")))
    assert p.checksums_verified == 1 and p.checksum_mismatches == 0


def test_levels_pushed_beyond_the_depth_are_dropped_and_stored_as_deletes() -> None:
    p, _ = synced()
    # fill the bids to the depth of 10, then insert a better one: the worst leaves the book
    bids = [(99.0 - i / 10, 1.0) for i in range(8)]  # 99.0 ... 98.3, 10 bids with the snapshot
    book_ = p.book["BTC/USD"]
    for price, qty in bids:
        book_.bids.set(price, qty, f"{price:.1f}", "1.0")  # wire texts: formatted when hashed
    assert len(book_.bids.keys) == 10
    inserted = [(99.5, 1.0)]
    new_bids = [(99.9, 0.5), (99.8, 0.00000001), (99.5, 1.0)] + [
        (99.0 - i / 10, 1.0) for i in range(7)
    ]
    qty_texts = {1.0: "100000000", 0.5: "50000000", 0.00000001: "1"}
    texts = [f"{p_:.1f}".replace(".", "") + qty_texts[q] for p_, q in new_bids]
    expected = crc("1000101000000", "1002200000000", *texts[:10])
    out = RecordSink()
    feed(p, book("update", inserted, [], expected), out)
    assert p.checksum_mismatches == 0 and out.events == [], out.events
    assert (BID, 98.3, 0.0) in [(r.side, r.price, r.size) for r in out.book]
    assert len(book_.bids.keys) == 10


def test_checksum_mismatch_is_a_gap_then_an_in_place_resubscribe() -> None:
    p, _ = synced()
    out = RecordSink()
    assert feed(p, book("update", [(99.95, 1.0)], [], 12345), out) is FrameStatus.PROCESSED
    assert [e.kind for e in out.events] == ["gap", "resync"]
    assert out.events[0].received == 12345 and "checksum mismatch" in out.events[0].detail
    assert p.checksum_mismatches == 1 and not p.books()[0].synced
    sent = [(k, msgspec.json.decode(m)) for k, m in p.take_messages()]
    assert [(k, m["method"], m["params"]["channel"], m["params"]["symbol"]) for k, m in sent] == [
        ("public", "unsubscribe", "book", ["BTC/USD"]),
        ("public", "subscribe", "book", ["BTC/USD"]),
    ]
    assert p.take_messages() == []
    # updates before the fresh snapshot are not applied
    assert feed(p, book("update", [(99.95, 1.0)], [], 1)) is FrameStatus.FILTERED
    out = RecordSink()
    snap = book("snapshot", [(99.9, 0.5), (99.8, 0.00000001)], [(100.0, 1.01), (100.2, 2.0)],
                SNAP_CRC)  # fmt: skip
    feed(p, snap, out)
    assert [e.kind for e in out.events] == ["synced"] and p.books()[0].synced


def test_a_book_failing_again_before_an_update_verified_is_resubscribed_with_a_back_off() -> None:
    p, _ = synced()
    snapshot = book("snapshot", [(99.9, 0.5), (99.8, 0.00000001)], [(100.0, 1.01), (100.2, 2.0)],
                    SNAP_CRC)  # fmt: skip
    feed(p, book("update", [(99.95, 1.0)], [], 1))
    assert len(p.take_messages()) == 2  # the first resync: at once
    feed(p, snapshot)
    out = RecordSink()
    feed(p, book("update", [(99.95, 1.0)], [], 1), out)  # fails again, nothing verified since
    assert p.take_messages() == [] and out.events[-1].detail == "unsubscribe and subscribe in 1s"
    assert "in 1s" in p.books()[0].waiting
    p.receive("public", b'{"channel":"heartbeat"}', NOW + 999_000_000, RecordSink())
    assert p.take_messages() == []
    p.receive("public", b'{"channel":"heartbeat"}', NOW + 1_000_000_000, RecordSink())
    assert [msgspec.json.decode(m)["method"] for _, m in p.take_messages()] == [
        "unsubscribe", "subscribe"
    ]  # fmt: skip
    # an update that verifies restarts the back-off: the next failure resubscribes at once
    feed(p, snapshot)
    feed(p, book("update", [], [(100.0, 0.0)], crc("1002200000000", "99950000000", "9981")))
    assert p.checksums_verified == 4  # three snapshots and this update
    feed(p, book("update", [(99.95, 1.0)], [], 1))
    assert len(p.take_messages()) == 2


def test_snapshot_before_the_precision_waits_and_resubscribes_once_it_is_known() -> None:
    p = make()
    snap = book("snapshot", [(99.9, 0.5)], [(100.0, 1.0)], 1)
    feed(p, snap)
    assert not p.books()[0].synced and "precision" in p.books()[0].waiting
    instrument(p)
    assert [msgspec.json.decode(m)["method"] for _, m in p.take_messages()] == [
        "unsubscribe",
        "subscribe",
    ]


def test_close_is_a_gap_and_drops_owed_resubscribes() -> None:
    p, _ = synced()
    feed(p, book("update", [(99.95, 1.0)], [], 1))  # a mismatch: a re-subscribe is owed
    feed(p, book("snapshot", [(99.9, 0.5), (99.8, 0.00000001)], [(100.0, 1.01), (100.2, 2.0)],
                 SNAP_CRC))  # fmt: skip
    out = RecordSink()
    p.on_close("public", NOW, out)
    assert [(e.kind, e.channel) for e in out.events] == [("gap", "book")]
    assert not p.books()[0].synced
    p.on_open("public", NOW, RecordSink())
    assert p.books()[0].waiting == "connection closed: waiting for a snapshot"
    assert p.take_messages() == []


def trade(trade_id: int, side: str = "buy") -> dict[str, object]:
    return {"symbol": "BTC/USD", "side": side, "price": 100.5, "qty": 0.25, "ord_type": "limit",
            "trade_id": trade_id, "timestamp": TS}  # fmt: skip


def test_a_snapshot_newest_first_is_stored_in_id_order() -> None:
    p = make()
    out = RecordSink()
    feed(p, {"channel": "trade", "type": "snapshot", "data": [trade(9), trade(8), trade(7)]}, out)
    assert [t.trade_id for t in out.trades] == [7, 8, 9] and out.events == []


def test_trades_deduplicated_by_id_and_a_jump_is_a_gap() -> None:
    p = make()
    out = RecordSink()
    feed(p, {"channel": "trade", "type": "snapshot", "data": [trade(1), trade(2, "sell")]}, out)
    assert [(t.trade_id, t.side, t.price, t.size) for t in out.trades] == [
        (1, BUY, 100.5, 0.25), (2, SELL, 100.5, 0.25)
    ]  # fmt: skip
    assert out.trades[0].ts == 1_700_000_000_123_456_000
    out = RecordSink()
    status = feed(p, {"channel": "trade", "type": "snapshot", "data": [trade(2), trade(1)]}, out)
    assert status is FrameStatus.FILTERED and out.trades == []
    feed(p, {"channel": "trade", "type": "update", "data": [trade(5)]}, out)
    assert [t.trade_id for t in out.trades] == [5]
    assert [(e.kind, e.channel, e.expected, e.received) for e in out.events] == [
        ("gap", "trades", 3, 5)
    ]


def test_a_pair_the_instrument_snapshot_does_not_list_is_an_invalid_symbol() -> None:
    p = KrakenVenue(VenueConfig("spot", ("BTC/USD", "FOO/USD"), (Channel.TRADES,)))
    (spec,) = p.connections()
    assert [msgspec.json.decode(m)["params"]["channel"] for m in spec.subscribe] == [
        "instrument", "trade"
    ]  # fmt: skip
    pairs = [{"symbol": "BTC/USD", "price_precision": 1, "qty_precision": 8, "status": "online"}]
    out = RecordSink()
    msg = {"channel": "instrument", "type": "snapshot", "data": {"assets": [], "pairs": pairs}}
    p.receive("public", msgspec.json.encode(msg), NOW, out)
    assert [(e.kind, e.native_symbol, e.detail) for e in out.events] == [
        ("invalid_symbol", "FOO/USD", "KRAKEN does not list FOO/USD (instrument channel)")
    ]
    out = RecordSink()
    p.receive("public", msgspec.json.encode(msg), NOW, out)
    assert out.events == []  # said once


@pytest.mark.parametrize(
    ("status", "invalid"),
    [("maintenance", False), ("reduce_only", False), ("work_in_progress", False),
     ("delisted", True)],
)  # fmt: skip
def test_only_a_delisted_pair_is_an_invalid_symbol(status: str, invalid: bool) -> None:
    """Maintenance and the like are temporary: the pair's data comes back with it."""
    p = KrakenVenue(VenueConfig("spot", ("BTC/USD",), (Channel.TRADES,)))
    pairs = [{"symbol": "BTC/USD", "price_precision": 1, "qty_precision": 8, "status": status}]
    out = RecordSink()
    msg = {"channel": "instrument", "type": "snapshot", "data": {"assets": [], "pairs": pairs}}
    p.receive("public", msgspec.json.encode(msg), NOW, out)
    assert [e.kind for e in out.events] == (["invalid_symbol"] if invalid else [])


def test_ticker_is_bbo_and_ticker() -> None:
    p = make()
    out = RecordSink()
    data = [{"symbol": "BTC/USD", "bid": 99.9, "bid_qty": 1.5, "ask": 100.0, "ask_qty": 2.0,
             "last": 100.0, "volume": 10.0, "vwap": 99.0, "low": 95.0, "high": 101.0,
             "change": 2.0, "change_pct": 2.04, "timestamp": TS}]  # fmt: skip
    assert (
        feed(p, {"channel": "ticker", "type": "update", "data": data}, out) is FrameStatus.PROCESSED
    )
    (bbo,) = out.bbo
    assert (bbo.bid_price, bbo.bid_size, bbo.ask_price, bbo.ask_size) == (99.9, 1.5, 100.0, 2.0)
    (ticker,) = out.ticker
    assert ticker.open_price == 98.0 and ticker.quote_volume == 990.0 and ticker.vwap == 99.0
    crossed = [{**data[0], "bid": 101.0}]
    with pytest.raises(RejectedFrame, match="crossed"):
        feed(p, {"channel": "ticker", "type": "update", "data": crossed})


def test_ohlc_is_a_candle() -> None:
    p = make(ohlc_interval="5")
    out = RecordSink()
    data = [{"symbol": "BTC/USD", "open": 99.0, "high": 101.0, "low": 98.0, "close": 100.0,
             "trades": 7, "volume": 2.0, "vwap": 99.5,
             "interval_begin": "2023-11-14T22:10:00.000000000Z", "interval": 5,
             "timestamp": "2023-11-14T22:13:20.000000Z"}]  # fmt: skip
    feed(p, {"channel": "ohlc", "type": "update", "data": data}, out)
    (candle,) = out.candles
    assert candle.interval == "5m" and candle.trade_count == 7 and not candle.closed
    assert candle.open_time == 1_699_999_800_000_000_000
    assert candle.close_time == candle.open_time + 300_000_000_000 - 1


@pytest.mark.parametrize(
    "message",
    [
        {"channel": "heartbeat"},
        {"channel": "status", "type": "update", "data": [{"system": "online"}]},
        {"method": "subscribe", "success": True, "result": {"channel": "book"}},
        {"method": "pong"},
    ],
)
def test_control_frames_are_filtered(message: object) -> None:
    assert feed(make(), message) is FrameStatus.FILTERED


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b'{"channel":"spread","type":"update","data":[]}', "unknown_message"),
        (b'{"method":"subscribe","success":false,"error":"Currency pair not supported"}',
         "subscription_failed"),
        (b'{"channel":"trade","type":"update","data":[{"symbol":"ETH/USD","side":"buy",'
         b'"price":1,"qty":1,"trade_id":1,"timestamp":"2023-11-14T22:13:20Z"}]}', "unknown_symbol"),
        (b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy",'
         b'"price":0,"qty":1,"trade_id":1,"timestamp":"2023-11-14T22:13:20Z"}]}', "invalid_value"),
        (b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"up",'
         b'"price":1,"qty":1,"trade_id":1,"timestamp":"2023-11-14T22:13:20Z"}]}', "invalid_field"),
        (b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy",'
         b'"price":1,"qty":1,"trade_id":1,"timestamp":"yesterday"}]}', "invalid_field"),
        (b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":'
         b'[{"price":"x","qty":1}]}]}', "invalid_field"),
        (b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":'
         b'[{"price":-1,"qty":1}]}]}', "invalid_value"),
        (b'{"channel":"book","type":"delta","data":[]}', "unknown_message"),
        (b'{"channel":"instrument","type":"snapshot","data":{"pairs":[{"symbol":"BTC/USD",'
         b'"price_precision":1,"qty_precision":40}]}}', "invalid_field"),
    ],
)  # fmt: skip
def test_bad_frames_rejected_with_their_reason(data: bytes, reason: str) -> None:
    with pytest.raises(RejectedFrame) as caught:
        make().receive("public", data, NOW, RecordSink())
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (VenueConfig("spot", ("BTC/USD",), (Channel.ORDERS,)), "does not serve orders"),
        (VenueConfig("spot", (), (Channel.TRADES,)), "no symbols"),
        (VenueConfig("spot", ("BTCUSD",), (Channel.TRADES,)), "not a Kraken pair"),
        (VenueConfig("spot", ("XBT/USD",), (Channel.TRADES,)), "v2 spells it BTC/USD"),
        (VenueConfig("spot", ("BTC/USD", "BTC/USD"), (Channel.TRADES,)), "listed twice"),
        (VenueConfig("spot", ("btc/usd",), (Channel.TRADES,)), "upper case.*'BTC/USD'"),
        (VenueConfig("usdm", ("BTC/USD",), (Channel.TRADES,)), "spot market only"),
        (VenueConfig("spot", ("BTC/USD",), (Channel.BOOK,), options={"depth": "50"}),
         "depth must be one of"),
        (VenueConfig("spot", ("BTC/USD",), (Channel.BOOK,), options={"api": "v3"}), "api must"),
        (VenueConfig("spot", ("BTC/USD",), (Channel.CANDLES,), options={"ohlc_interval": "7"}),
         "ohlc_interval must be one of"),
        (VenueConfig("spot", ("BTC/USD",), (Channel.BOOK,), options={"dept": "10"}),
         "unknown kraken option"),
        (VenueConfig("spot", ("XBT/USD",), (Channel.TRADES,), options={"api": "v1"}),
         "v1.*does not serve trades"),
    ],
)  # fmt: skip
def test_config_errors_are_one_line_value_errors(config: VenueConfig, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        KrakenVenue(config)
    assert "\n" not in str(caught.value)
