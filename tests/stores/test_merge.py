"""Records delivered more than once are merged to one row per identity, the earliest kept."""

from __future__ import annotations

import pyarrow as pa

from hundi.records import BookChange, Channel, Trade, to_arrow
from hundi.stores.merge import deduplicate

T0 = 1_714_521_600_000_000_000


def trade(trade_id: int, ts: int, recv_ts: int, price: float = 1.0) -> Trade:
    return Trade(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=recv_ts,
        trade_id=trade_id, price=price, size=1.0, side=1, first_trade_id=trade_id,
        last_trade_id=trade_id,
    )  # fmt: skip


def test_copies_collapse_to_the_earliest_received() -> None:
    first = [trade(1, T0, T0 + 5, price=10.0), trade(2, T0, T0 + 6)]
    second = [trade(1, T0, T0 + 3, price=11.0), trade(2, T0, T0 + 9), trade(3, T0 + 1, T0 + 9)]
    table = pa.concat_tables([to_arrow(Channel.TRADES, first), to_arrow(Channel.TRADES, second)])
    merged = deduplicate(table, Channel.TRADES)
    # the first copies, in the order of the rows they came from
    assert merged.column("trade_id").to_pylist() == [2, 1, 3]
    assert merged.column("price").to_pylist() == [1.0, 11.0, 1.0]  # trade 1 from recv_ts + 3
    assert merged.column("recv_ts").cast(pa.int64()).to_pylist() == [T0 + 6, T0 + 3, T0 + 9]


def test_records_differing_in_any_key_field_are_all_kept() -> None:
    def level(side: int, price: float, update_id: int, symbol: str = "BTC-USDT") -> BookChange:
        return BookChange(
            exchange="binance", symbol=symbol, native_symbol="X", ts=T0, recv_ts=T0,
            side=side, price=price, size=1.0, snapshot=False, first_update_id=update_id,
            update_id=update_id, prev_update_id=update_id - 1,
        )  # fmt: skip

    distinct = [
        level(1, 10.0, 7),
        level(-1, 10.0, 7),
        level(1, 10.5, 7),
        level(1, 10.0, 8),
        level(1, 10.0, 7, symbol="ETH-USDT"),
    ]
    table = to_arrow(Channel.BOOK, distinct + distinct[:2])
    assert deduplicate(table, Channel.BOOK).num_rows == len(distinct)


def test_tiny_tables_pass_through() -> None:
    empty = to_arrow(Channel.TRADES, [])
    assert deduplicate(empty, Channel.TRADES).num_rows == 0
    one = to_arrow(Channel.TRADES, [trade(1, T0, T0)] * 2)
    assert deduplicate(one, Channel.TRADES).num_rows == 1
