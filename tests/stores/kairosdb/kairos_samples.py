"""Records for the KairosDB store tests, with the same-ms collisions the scheme must handle."""

from __future__ import annotations

import uuid

import msgspec
import numpy as np
import pandas as pd

from hundi.records import (
    Bbo,
    BookChange,
    Candle,
    Channel,
    Event,
    OrderEvent,
    Record,
    Ticker,
    Trade,
)
from hundi.stores.kairosdb import KairosStore

T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z
MS = 1_000_000
SECOND = 1_000_000_000
HEAD = {"exchange": "binance", "symbol": "BTC-USDT", "native_symbol": "BTCUSDT"}


def new_prefix() -> str:
    return f"test{uuid.uuid4().hex[:12]}"


def trade(
    i: int, ms: int, *, price: float, size: float, side: int, symbol: str = "BTC-USDT"
) -> Trade:
    return Trade(
        exchange="binance", symbol=symbol, native_symbol=symbol.replace("-", ""),
        ts=T0 + ms * MS + (i % 7) * 1000, recv_ts=T0 + ms * MS + 5_000_000, trade_id=i,
        price=price, size=size, side=side, first_trade_id=i, last_trade_id=i,
    )  # fmt: skip


def bbo(ms: int, sub_ns: int, bid: float, *, symbol: str = "BTC-USDT") -> Bbo:
    return Bbo(
        exchange="binance", symbol=symbol, native_symbol=symbol.replace("-", ""),
        ts=T0 + ms * MS + sub_ns, recv_ts=T0 + ms * MS + sub_ns, update_id=ms * 10 + sub_ns,
        bid_price=bid, bid_size=1e-05, ask_price=bid + 0.5, ask_size=3.0,
    )  # fmt: skip


def one_of_each() -> dict[Channel, list[Record]]:
    """Every record type, with same-ms collisions where the scheme has to handle them."""
    return {
        Channel.TRADES: [
            trade(1, 0, price=100.0, size=0.5, side=1),
            trade(2, 0, price=101.0, size=0.25, side=-1),
            trade(3, 0, price=99.5, size=1.0, side=1),
            trade(4, 3, price=102.0, size=2.0, side=-1),
        ],
        Channel.BBO: [bbo(0, 100, 1.0), bbo(0, 900, 2.0), bbo(1, 0, 3.0)],
        Channel.TICKER: [
            Ticker(**HEAD, ts=T0, recv_ts=T0 + 1, last_price=1.0, last_size=2.0,
                   open_price=0.9, high_price=1.1, low_price=0.8, volume=1e6,
                   quote_volume=1e6, vwap=0.95, price_change=0.1, price_change_pct=11.1,
                   trade_count=123, open_time=T0 - 86_400 * SECOND, close_time=T0,
                   first_trade_id=1, last_trade_id=123),
        ],
        Channel.BOOK: [
            BookChange(**HEAD, ts=T0, recv_ts=T0 + 1, side=1, price=10.0, size=1.0,
                       snapshot=True, first_update_id=-1, update_id=100, prev_update_id=-1),
        ],
        Channel.BOOK_L3: [
            OrderEvent(**HEAD, ts=T0, recv_ts=T0 + 1, order_id="a", side=1, price=10.0,
                       size=1.0, kind="snapshot", sequence=7, other_order_id="", trade_id=-1,
                       reason=""),
            OrderEvent(**HEAD, ts=T0, recv_ts=T0 + 1, order_id="a", side=1, price=10.0,
                       size=0.5, kind="match", sequence=8, other_order_id="b", trade_id=3,
                       reason=""),
        ],
        Channel.CANDLES: [
            Candle(**HEAD, ts=T0 + 2 * SECOND, recv_ts=T0 + 2 * SECOND, interval="1m",
                   open_time=T0, close_time=T0 + 60 * SECOND - 1, open=1.0, high=2.0, low=0.5,
                   close=1.5, volume=10.0, quote_volume=15.0, taker_buy_volume=4.0,
                   trade_count=7, closed=False),
            Candle(**HEAD, ts=T0 + 60 * SECOND, recv_ts=T0 + 60 * SECOND, interval="1m",
                   open_time=T0, close_time=T0 + 60 * SECOND - 1, open=1.0, high=2.5, low=0.5,
                   close=2.25, volume=12.0, quote_volume=19.0, taker_buy_volume=5.0,
                   trade_count=9, closed=True),
            Candle(**HEAD, ts=T0 + 60 * SECOND, recv_ts=T0 + 60 * SECOND, interval="1s",
                   open_time=T0, close_time=T0 + SECOND - 1, open=1.0, high=1.0, low=1.0,
                   close=1.0, volume=1.0, quote_volume=1.0, taker_buy_volume=0.0,
                   trade_count=1, closed=True),
        ],
        Channel.EVENTS: [
            Event(**HEAD, ts=T0, recv_ts=T0, kind="gap", channel="book", expected=5,
                  received=9, detail="U > last+1"),
            Event(**HEAD, ts=T0 + 10, recv_ts=T0, kind="gap", channel="book", expected=12,
                  received=15, detail="U > last+1"),
            Event(**HEAD, ts=T0 + 20, recv_ts=T0, kind="resync", channel="book", expected=-1,
                  received=-1, detail=""),
            Event(exchange="binance", symbol="", native_symbol="", ts=T0, recv_ts=T0,
                  kind="reconnect", channel="", expected=-1, received=-1, detail="spot: closed"),
        ],
    }  # fmt: skip


def expected_trades_ms(trades: list[Trade]) -> pd.DataFrame:
    """What the per-ms trade aggregate must be, computed independently in pandas."""
    df = pd.DataFrame([msgspec.structs.asdict(t) for t in trades]).drop_duplicates("trade_id")
    df = df.sort_values(["ts", "trade_id"])
    df["ms"] = df["ts"] // MS
    df["quote"] = df["price"] * df["size"]
    df["buy"] = np.where(df["side"] > 0, df["size"], 0.0)
    df["sell"] = np.where(df["side"] < 0, df["size"], 0.0)
    g = df.groupby("ms")
    out = pd.DataFrame(
        {
            "count": g.size().astype("float64"),
            "volume": g["size"].sum(),
            "quote_volume": g["quote"].sum(),
            "buy_volume": g["buy"].sum(),
            "sell_volume": g["sell"].sum(),
            "first_price": g["price"].first(),
            "high_price": g["price"].max(),
            "low_price": g["price"].min(),
            "last_price": g["price"].last(),
        }
    )
    out["vwap"] = out["quote_volume"] / out["volume"]
    out.index = pd.DatetimeIndex(pd.to_datetime(out.index, unit="ms", utc=True), name="ts")
    return out


def stored_trades_ms(store: KairosStore, symbol: str = "BTC-USDT") -> pd.DataFrame:
    frame = store.read(exchange="binance", symbol=symbol, channel=Channel.TRADES)
    assert (frame["exchange"] == "binance").all()
    assert (frame["symbol"] == symbol).all()
    return frame.drop(columns=["exchange", "symbol"])
