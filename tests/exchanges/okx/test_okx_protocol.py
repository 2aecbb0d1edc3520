"""OKX protocol on hand-written frames: every message kind, bad input, config errors."""

from __future__ import annotations

import msgspec
import pytest

from hundi.exchanges.base import FrameStatus, RecordSink, RejectedFrame, VenueConfig
from hundi.exchanges.okx import OkxVenue
from hundi.exchanges.okx.protocol import OkxProtocol
from hundi.exchanges.okx.symbols import market_of, native, normalize, underlying
from hundi.records import BUY, SELL, Channel, EventKind

T0 = 1_780_000_000_000  # ms, 2026
NS = T0 * 1_000_000


def proto(
    market: str = "spot",
    symbols: tuple[str, ...] = ("BTC-USDT",),
    channels: tuple[Channel, ...] = (Channel.TRADES,),
    **options: str,
) -> OkxProtocol:
    return OkxVenue(VenueConfig(market, symbols, channels, options=dict(options)))


def frame(channel: str, inst: str, data: object, **extra: object) -> bytes:
    return msgspec.json.encode({"arg": {"channel": channel, "instId": inst}, "data": data, **extra})


# ------------------------------------------------------------------ symbols and config
@pytest.mark.parametrize(
    ("okx", "hundi", "market"),
    [
        ("BTC-USDT", "BTC-USDT", "spot"),
        ("BTC-USDT-SWAP", "BTC-USDT-PERP", "swap"),
        ("BTC-USD-SWAP", "BTC-USD-PERP", "swap"),
        ("BTC-USD-261225", "BTC-USD-20261225", "futures"),
        ("ETH-USDT-270326", "ETH-USDT-20270326", "futures"),
    ],
)
def test_symbols_round_trip(okx: str, hundi: str, market: str) -> None:
    assert normalize(okx) == hundi
    assert native(hundi) == okx
    assert market_of(okx) == market


def test_underlying() -> None:
    assert underlying("BTC-USDT-SWAP") == "BTC-USDT"
    assert underlying("BTC-USD-261225") == "BTC-USD"


@pytest.mark.parametrize("bad", ["BTCUSDT", "BTC-USD-261225-100000-C", "btc-usdt", "BTC-USD-2612"])
def test_bad_symbol_is_one_line_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="not an OKX") as e:
        proto(symbols=(bad,))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"market": "options"}, "market must be"),
        ({"market": "spot", "symbols": ("BTC-USDT-SWAP",)}, "is swap, not of market spot"),
        ({"channels": (Channel.BOOK_L3,)}, "does not serve book_l3"),
        ({"channels": (Channel.DERIVATIVE_TICKER,)}, "needs swap or futures"),
        ({"channels": (Channel.LIQUIDATIONS,)}, "needs swap or futures"),
        ({"symbols": ()}, "no symbols"),
        ({"nonsense": "1"}, "unknown okx option"),
        ({"candle_interval": "7m"}, "candle_interval must be"),
        ({"instruments_interval_s": "-1"}, "must be positive"),
        ({"max_buffer": "x"}, "positive integer"),
    ],
)
def test_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as e:
        proto(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(e.value)


def test_connections_and_subscriptions() -> None:
    p = proto(
        "swap,futures",
        ("BTC-USDT-SWAP", "BTC-USD-261225"),
        (
            Channel.TRADES,
            Channel.BOOK,
            Channel.CANDLES,
            Channel.DERIVATIVE_TICKER,
            Channel.LIQUIDATIONS,
        ),
    )
    specs = {s.key: s for s in p.connections()}
    assert specs["public"].url == "wss://ws.okx.com:8443/ws/v5/public"
    assert specs["business"].url == "wss://ws.okx.com:8443/ws/v5/business"
    args = [a for msg in specs["public"].subscribe for a in msgspec.json.decode(msg)["args"]]
    assert {"channel": "books", "instId": "BTC-USD-261225"} in args
    assert {"channel": "index-tickers", "instId": "BTC-USDT"} in args
    assert {"channel": "index-tickers", "instId": "BTC-USD"} in args
    assert {"channel": "funding-rate", "instId": "BTC-USDT-SWAP"} in args
    assert {"channel": "funding-rate", "instId": "BTC-USD-261225"} not in args  # no funding
    assert {"channel": "liquidation-orders", "instType": "FUTURES"} in args
    assert {"channel": "liquidation-orders", "instType": "SWAP"} in args
    business = msgspec.json.decode(specs["business"].subscribe[0])
    assert business["args"] == [
        {"channel": "candle1m", "instId": "BTC-USDT-SWAP"},
        {"channel": "candle1m", "instId": "BTC-USD-261225"},
    ]


def test_subscriptions_chunked_and_endpoint_override() -> None:
    symbols = tuple(f"C{i}-USDT" for i in range(150))
    p = OkxVenue(
        VenueConfig(
            "spot",
            symbols,
            (Channel.TRADES, Channel.CANDLES),
            endpoint="ws://127.0.0.1:9/ws/v5/public",
        )
    )
    specs = {s.key: s for s in p.connections()}
    assert [len(msgspec.json.decode(x)["args"]) for x in specs["public"].subscribe] == [100, 50]
    assert specs["business"].url == "ws://127.0.0.1:9/ws/v5/business"


# ------------------------------------------------------------------ control frames
def test_acks_pong_and_errors() -> None:
    p = proto()
    out = RecordSink()
    ack = b'{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"a"}'
    assert p.receive("public", ack, NS, out) is FrameStatus.FILTERED
    assert p.receive("public", b"pong", NS, out) is FrameStatus.FILTERED
    err = b'{"event":"error","code":"60018","msg":"Wrong URL or channel:trades,instId:BTC-USDT doesn\'t exist","connId":"a"}'  # noqa: E501
    assert p.receive("public", err, NS, out) is FrameStatus.PROCESSED
    assert [e.kind for e in out.events] == [EventKind.INVALID_SYMBOL]
    with pytest.raises(RejectedFrame) as e:
        p.receive("public", b'{"event":"error","code":"60012","msg":"Invalid request"}', NS, out)
    assert e.value.reason == "venue_error"
    notice = b'{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade."}'  # noqa: E501
    assert p.receive("public", notice, NS, out) is FrameStatus.PROCESSED
    assert out.events[-1].kind == EventKind.SHUTDOWN
    assert p.take_reconnects() == ["public"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe", "malformed_json"),
        (b"{not json", "malformed_json"),
        (b'{"arg":{"channel":"trades","instId":"ETH-USDT"},"data":[]}', "unknown_symbol"),
        (b'{"arg":{"channel":"nope","instId":"BTC-USDT"},"data":[]}', "unknown_message"),
        (b'{"data":[]}', "unknown_message"),
        (b'{"event":"weird"}', "unknown_message"),
        (b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"x":1}]}', "invalid_message"),
    ],
)
def test_bad_frames_rejected_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(RejectedFrame) as e:
        proto().receive("public", data, NS, RecordSink())
    assert e.value.reason == reason


def test_ping_after_silence() -> None:
    p = proto()
    p.on_open("public", NS, RecordSink())
    p.due_requests(NS + 10 * 10**9)
    assert p.take_messages() == []
    p.due_requests(NS + 21 * 10**9)
    assert p.take_messages() == [("public", b"ping")]
    p.receive("public", b"pong", NS + 22 * 10**9, RecordSink())
    p.due_requests(NS + 30 * 10**9)
    assert p.take_messages() == []


# ------------------------------------------------------------------ trades
def trade(tid: int, side: str = "buy", count: int = 1, px: str = "100.5") -> dict[str, str]:
    return {
        "instId": "BTC-USDT",
        "tradeId": str(tid),
        "px": px,
        "sz": "0.25",
        "side": side,
        "ts": str(T0),
        "count": str(count),
    }


def test_trades_ids_gaps_and_duplicates() -> None:
    p = proto()
    out = RecordSink()
    p.receive("public", frame("trades", "BTC-USDT", [trade(10), trade(11, "sell")]), NS, out)
    assert [(t.trade_id, t.side, t.price, t.size) for t in out.trades] == [
        (10, BUY, 100.5, 0.25),
        (11, SELL, 100.5, 0.25),
    ]
    assert out.trades[0].symbol == "BTC-USDT" and out.trades[0].ts == NS
    p.receive("public", frame("trades", "BTC-USDT", [trade(14, count=3)]), NS, out)
    assert (out.trades[-1].first_trade_id, out.trades[-1].last_trade_id) == (12, 14)
    assert out.events == []
    p.receive("public", frame("trades", "BTC-USDT", [trade(11)]), NS, out)  # duplicate
    assert len(out.trades) == 3
    p.receive("public", frame("trades", "BTC-USDT", [trade(20)]), NS, out)
    gap = out.events[-1]
    assert (gap.kind, gap.channel, gap.expected, gap.received) == ("gap", "trades", 15, 20)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"side": "up"}, "invalid_field"),
        ({"tradeId": "x"}, "invalid_field"),
        ({"px": "0"}, "invalid_value"),
        ({"px": "nan"}, "invalid_field"),
        ({"ts": "1"}, "invalid_value"),
    ],
)
def test_bad_trade_rejected_and_nothing_stored(bad: dict[str, str], reason: str) -> None:
    out = RecordSink()
    with pytest.raises(RejectedFrame) as e:
        proto().receive(
            "public", frame("trades", "BTC-USDT", [trade(1), {**trade(2), **bad}]), NS, out
        )
    assert e.value.reason == reason
    assert out.trades == []


# ------------------------------------------------------------------ bbo, tickers, candles
def test_bbo_tbt() -> None:
    p = proto(channels=(Channel.BBO,))
    out = RecordSink()
    data = [
        {
            "asks": [["101", "2", "0", "1"]],
            "bids": [["100", "3", "0", "2"]],
            "ts": str(T0),
            "seqId": 77,
        }
    ]
    p.receive("public", frame("bbo-tbt", "BTC-USDT", data), NS, out)
    b = out.bbo[0]
    assert (b.bid_price, b.bid_size, b.ask_price, b.ask_size, b.update_id) == (100, 3, 101, 2, 77)
    crossed = [{**data[0], "bids": [["102", "1", "0", "1"]]}]
    with pytest.raises(RejectedFrame, match="crossed"):
        p.receive("public", frame("bbo-tbt", "BTC-USDT", crossed), NS, out)


def ticker(inst: str, inst_type: str) -> dict[str, str]:
    return {
        "instType": inst_type,
        "instId": inst,
        "last": "110",
        "lastSz": "1",
        "askPx": "111",
        "askSz": "1",
        "bidPx": "109",
        "bidSz": "2",
        "open24h": "100",
        "high24h": "120",
        "low24h": "90",
        "volCcy24h": "5000",
        "vol24h": "50",
        "ts": str(T0),
    }


def test_spot_and_swap_tickers_units() -> None:
    out = RecordSink()
    proto(channels=(Channel.TICKER,)).receive(
        "public", frame("tickers", "BTC-USDT", [ticker("BTC-USDT", "SPOT")]), NS, out
    )
    t = out.ticker[0]
    assert (t.last_price, t.volume, t.quote_volume, t.price_change) == (110, 50, 5000, 10)
    assert t.price_change_pct == pytest.approx(10.0)
    out = RecordSink()
    proto("swap", ("BTC-USDT-SWAP",), (Channel.TICKER,)).receive(
        "public", frame("tickers", "BTC-USDT-SWAP", [ticker("BTC-USDT-SWAP", "SWAP")]), NS, out
    )
    assert out.ticker[0].volume == 5000  # volCcy24h: base units of a derivative
    assert out.ticker[0].symbol == "BTC-USDT-PERP"


def test_candles_on_business() -> None:
    p = proto(channels=(Channel.CANDLES,))
    out = RecordSink()
    row = [str(T0), "100", "110", "95", "105", "12", "1260", "1260", "0"]
    p.receive("business", frame("candle1m", "BTC-USDT", [row]), NS, out)
    c = out.candles[0]
    assert (c.open, c.high, c.low, c.close, c.volume, c.quote_volume) == (
        100,
        110,
        95,
        105,
        12,
        1260,
    )
    assert (c.interval, c.open_time, c.close_time, c.closed) == (
        "1m",
        NS,
        NS + 59_999_000_000,
        False,
    )
    with pytest.raises(RejectedFrame):
        p.receive("business", frame("candle1m", "BTC-USDT", [row[:5]]), NS, out)
    with pytest.raises(RejectedFrame, match="high"):
        p.receive("business", frame("candle1m", "BTC-USDT", [[*row[:2], "90", *row[3:]]]), NS, out)


def test_candle_interval_option() -> None:
    p = proto(channels=(Channel.CANDLES,), candle_interval="1H")
    assert "candle1H" in p.connections()[0].subscribe[0].decode()
    out = RecordSink()
    row = [str(T0), "100", "110", "95", "105", "12", "1260", "1260", "1"]
    p.receive("business", frame("candle1H", "BTC-USDT", [row]), NS, out)
    assert (out.candles[0].interval, out.candles[0].closed) == ("1h", True)
