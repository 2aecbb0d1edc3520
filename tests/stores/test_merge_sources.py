"""The merge only ever drops another writer's copy (hundi.stores.merge.SOURCE)."""

from __future__ import annotations

import msgspec
import numpy as np
import pyarrow as pa

from hundi.records import BID, BookChange, Candle, Channel, to_arrow
from hundi.stores.merge import SOURCE, deduplicate

MS = 1_000_000
T0 = 1_714_608_000_000_000_000  # 2024-05-02
START = T0 - T0 % (60_000 * MS)


def okx_candle(recv: int, close: float, closed: bool) -> Candle:
    """OKX stamps every update of a candle with the candle's start: one key for all of them."""
    return Candle(
        exchange="okx", symbol="BTC-USDT", native_symbol="BTC-USDT", ts=START, recv_ts=recv,
        interval="1m", open_time=START, close_time=START + 60_000 * MS - MS, open=100.0,
        high=max(100.0, close), low=min(100.0, close), close=close, volume=1.0,
        quote_volume=100.0, taker_buy_volume=0.0, trade_count=-1, closed=closed,
    )  # fmt: skip


def with_source(table: pa.Table, sources: list[int]) -> pa.Table:
    return table.append_column(SOURCE, pa.array(np.asarray(sources, np.int32)))


def updates(shift: int) -> list[Candle]:
    closes = [100.0, 101.0, 99.0, 102.5]
    return [okx_candle(START + (i + 1) * MS + shift, c, i == 3) for i, c in enumerate(closes)]


def test_one_writers_updates_sharing_a_key_all_stay() -> None:
    table = with_source(to_arrow(Channel.CANDLES, updates(0)), [0, 0, 0, 0])
    merged = deduplicate(table, Channel.CANDLES)
    assert SOURCE not in merged.column_names
    assert merged.column("close").to_pylist() == [100.0, 101.0, 99.0, 102.5]
    assert merged.column("closed").to_pylist()[-1] is True


def test_two_writers_keep_the_first_receivers_rows_of_a_key_all_of_them() -> None:
    a, b = updates(7), updates(3)  # B receives each update first
    table = with_source(to_arrow(Channel.CANDLES, a + b), [0] * 4 + [1] * 4)
    merged = deduplicate(table, Channel.CANDLES)
    assert merged.column("close").to_pylist() == [100.0, 101.0, 99.0, 102.5]
    recv = merged.column("recv_ts").cast(pa.int64()).to_pylist()
    assert recv == [c.recv_ts for c in b]


def test_a_restarted_writer_and_the_other_still_merge_by_value() -> None:
    # runs 0 (A before its kill), 1 (B throughout), 2 (A again): distinct records once each
    a1, b, a2 = updates(9)[:2], updates(4), updates(1)[2:]
    table = with_source(to_arrow(Channel.CANDLES, a1 + b + a2), [0, 0, 1, 1, 1, 1, 2, 2])
    merged = deduplicate(table, Channel.CANDLES)
    # each update (one candle, its values) from the writer that received it first: B's
    # updates 0 and 1 (+4 ns before A's first run at +9), A's restarted run's 2 and 3 (+1 ns)
    assert merged.num_rows == 4
    recv = set(merged.column("recv_ts").cast(pa.int64()).to_pylist())
    assert recv == {b[0].recv_ts, b[1].recv_ts, a2[0].recv_ts, a2[1].recv_ts}


def test_without_sources_copies_merge_by_value() -> None:
    """Cassandra's row tables pass no SOURCE (one row per key already): a candle's updates
    that differ in value stay, equal copies merge."""
    merged = deduplicate(to_arrow(Channel.CANDLES, updates(0)), Channel.CANDLES)
    assert merged.num_rows == 4
    merged = deduplicate(to_arrow(Channel.CANDLES, updates(0) + updates(5)), Channel.CANDLES)
    assert merged.column("recv_ts").cast(pa.int64()).to_pylist() == [c.recv_ts for c in updates(0)]


def bitfinex_level(update_id: int, recv: int, price: float, size: float) -> BookChange:
    """Bitfinex book rows: ``ts`` is the receive time, ``update_id`` the connection's number."""
    return BookChange(
        exchange="bitfinex", symbol="BTC-USD", native_symbol="tBTCUSD", ts=recv, recv_ts=recv,
        side=BID, price=price, size=size, snapshot=False, first_update_id=update_id,
        update_id=update_id, prev_update_id=update_id - 1,
    )  # fmt: skip


def test_connection_numbered_ids_do_not_merge_two_collectors_different_messages() -> None:
    """Two collectors greeted in one second number their connections' messages alike: A's
    message 5 and B's message 5 are different changes of one level, both stay."""
    epoch = 1_714_608_000 << 31
    a = bitfinex_level(epoch | 5, T0 + 10, 100.0, 1.5)
    b = bitfinex_level(epoch | 5, T0 + 20_000_000, 100.0, 0.0)
    table = with_source(to_arrow(Channel.BOOK, [a, b]), [0, 1])
    merged = deduplicate(table, Channel.BOOK)
    assert merged.column("size").to_pylist() == [1.5, 0.0]


def test_rows_with_a_null_key_field_are_merged_not_dropped() -> None:
    """A part written before a record type's IDENTITY gained a field (``Liquidation.position``)
    reads that field as null. Two runs' copies of such a row are one record; a distinct row
    with a null key field must not vanish from the merge."""
    a = updates(7)
    b = updates(3)
    table = to_arrow(Channel.CANDLES, [a[0], a[1], b[0]])
    interval = table.schema.get_field_index("interval")
    table = table.set_column(interval, "interval", pa.array([None, "1m", None], pa.string()))
    merged = deduplicate(with_source(table, [0, 0, 1]), Channel.CANDLES)
    # a[0] and b[0]: one key (null interval), B received it first; a[1]: another key
    recv = sorted(merged.column("recv_ts").cast(pa.int64()).to_pylist())
    assert recv == sorted([b[0].recv_ts, a[1].recv_ts])


def test_any_venues_per_connection_ids_keep_both_collectors_different_messages() -> None:
    """No venue is named: a venue (here not Bitfinex) whose local-time rows carry ids numbered
    per connection keeps two collectors' different messages that share an id, and still
    merges two copies of one message (equal in every exchange-sent field)."""
    epoch = 1_714_608_000 << 31
    a = msgspec.structs.replace(bitfinex_level(epoch | 5, T0 + 10, 100.0, 1.5), exchange="v")
    b = msgspec.structs.replace(bitfinex_level(epoch | 5, T0 + 20, 100.0, 0.0), exchange="v")
    copy = msgspec.structs.replace(a, ts=T0 + 30, recv_ts=T0 + 30)
    table = with_source(to_arrow(Channel.BOOK, [a, b, copy]), [0, 1, 2])
    merged = deduplicate(table, Channel.BOOK)
    assert merged.column("size").to_pylist() == [1.5, 0.0]
    assert merged.column("recv_ts").cast(pa.int64()).to_pylist() == [T0 + 10, T0 + 20]


def test_a_restart_mid_candle_keeps_every_update_and_the_final_state_once() -> None:
    """A received the candle's first update first, then was killed mid-candle and restarted;
    B ran throughout. The merge is by value (every exchange-sent field), not by who received
    the candle first: the final (closed) update is kept once, each update once. Old code:
    A's first run won the candle's one key and every later update (the closed one) was lost."""
    a1, b, a2 = updates(1)[:2], updates(4), updates(9)[1:]  # A2 re-sends update 1 too
    table = with_source(to_arrow(Channel.CANDLES, a1 + b + a2), [0, 0, 1, 1, 1, 1, 2, 2, 2])
    merged = deduplicate(table, Channel.CANDLES)
    assert sorted(merged.column("close").to_pylist()) == sorted([100.0, 101.0, 99.0, 102.5])
    assert merged.column("closed").to_pylist().count(True) == 1
    winners = sorted(merged.column("recv_ts").cast(pa.int64()).to_pylist())
    # updates 0 and 1: A's first run (received first); 2 and 3: B (at +4 ns, before A2)
    assert winners == sorted([a1[0].recv_ts, a1[1].recv_ts, b[2].recv_ts, b[3].recv_ts])


def test_one_writers_repeated_candle_values_all_stay() -> None:
    """A writer's two pushes with equal values are both kept (never merged with each other);
    another writer's copies of that value go."""
    same = updates(0)[:1]
    repeat = [msgspec.structs.replace(same[0], recv_ts=same[0].recv_ts + 500 * MS)]
    other = [msgspec.structs.replace(same[0], recv_ts=same[0].recv_ts + 3)]
    table = with_source(to_arrow(Channel.CANDLES, same + repeat + other), [0, 0, 1])
    merged = deduplicate(table, Channel.CANDLES)
    assert merged.column("recv_ts").cast(pa.int64()).to_pylist() == [
        same[0].recv_ts, repeat[0].recv_ts
    ]  # fmt: skip
