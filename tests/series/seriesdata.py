"""Small hand-made inputs for the series tests, shaped as ``hundi.read`` returns them."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pyarrow as pa

from hundi.records import ASK, BID, Bbo, BookChange, Channel, Record, Trade, to_arrow

S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * S  # a whole minute


def trade(
    i: int, at_s: float, price: float, size: float, side: int, recv_s: float | None = None
) -> Trade:
    ts = T0 + round(at_s * S)
    recv = ts if recv_s is None else T0 + round(recv_s * S)
    return Trade(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=recv,
        trade_id=i, price=price, size=size, side=side, first_trade_id=i, last_trade_id=i,
    )  # fmt: skip


def change(
    at_s: float, side: int, price: float, size: float, uid: int, snapshot: bool = False
) -> BookChange:
    ts = T0 + round(at_s * S)
    return BookChange(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=ts,
        side=side, price=price, size=size, snapshot=snapshot, first_update_id=uid,
        update_id=uid, prev_update_id=-1,
    )  # fmt: skip


def quote(symbol: str, at_s: float, bid: float, ask: float, uid: int) -> Bbo:
    ts = T0 + round(at_s * S)
    return Bbo(
        exchange="binance", symbol=symbol, native_symbol=symbol.replace("-", ""), ts=ts,
        recv_ts=ts, update_id=uid, bid_price=bid, bid_size=1.0, ask_price=ask, ask_size=1.0,
    )  # fmt: skip


def frame(channel: Channel, records: Sequence[Record]) -> pd.DataFrame:
    """Records → the DataFrame a store read gives (sorted stably by ts, recv_ts)."""
    table = to_arrow(channel, records)
    columns = [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    result: pd.DataFrame = (
        pa.Table.from_arrays(columns, names=table.column_names).to_pandas().set_index("ts")
    )
    order = sorted(range(len(result)), key=lambda i: (result.index[i], result["recv_ts"].iloc[i]))
    return result.iloc[order]


def at(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(T0 + round(seconds * S), tz="UTC")


BOOK = [
    change(1.0, BID, 100.0, 1.0, 10, snapshot=True),
    change(1.0, BID, 99.0, 2.0, 10, snapshot=True),
    change(1.0, ASK, 101.0, 3.0, 10, snapshot=True),
    change(1.0, ASK, 102.0, 1.0, 10, snapshot=True),
    change(1.5, BID, 100.0, 0.0, 11),
    change(1.5, ASK, 101.0, 1.0, 11),
    change(2.5, BID, 100.5, 4.0, 12),
]
