"""Two writers (runs, collectors) of one stream into one embedded store read back merged."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from hundi.records import Bbo, Candle, Channel
from hundi.stores.embedded import EmbeddedStore

T0 = 1_714_608_000_000_000_000  # 2024-05-02
DAY = date(2024, 5, 2)


def bbo(update_id: int, recv: int) -> Bbo:
    """A spot bookTicker: no exchange time, so ts is the receive time."""
    return Bbo(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=recv, recv_ts=recv,
        update_id=update_id, bid_price=100.0, bid_size=1.0, ask_price=101.0, ask_size=1.0,
    )  # fmt: skip


def write(root: Path, records: list[Bbo]) -> None:
    store = EmbeddedStore(str(root), fsync=False)
    store.write({Channel.BBO: records})
    store.flush()
    store.close()


def test_every_read_path_returns_each_update_once(tmp_path: Path) -> None:
    write(tmp_path, [bbo(u, T0 + u * 1000 + 7) for u in range(10)])  # collector A
    write(tmp_path, [bbo(u, T0 + u * 1000 + 3) for u in range(5, 15)])  # collector B
    store = EmbeddedStore(str(tmp_path), read_only=True)
    frame = store.read(exchange="binance", symbol="BTC-USDT", channel=Channel.BBO)
    assert frame["update_id"].tolist() == list(range(15))
    days = list(store.read_days(exchange="binance", symbol="BTC-USDT", channel=Channel.BBO))
    assert [t.column("update_id").to_pylist() for _, t in days] == [list(range(15))]
    only_ts = list(
        store.read_days(exchange="binance", symbol="BTC-USDT", channel=Channel.BBO, columns=["ts"])
    )
    assert only_ts[0][1].column_names == ["ts"] and only_ts[0][1].num_rows == 15
    day = store.read_day("binance", Channel.BBO, "BTC-USDT", DAY)
    assert day.table.num_rows == 15
    # B's copies (received first) win for 5..9
    recv = frame.set_index("update_id")["recv_ts"].astype("int64")
    assert recv.loc[5] == T0 + 5 * 1000 + 3


def test_an_incremental_read_across_two_runs_asks_for_the_whole_day(tmp_path: Path) -> None:
    write(tmp_path, [bbo(u, T0 + u * 1000 + 7) for u in range(10)])
    store = EmbeddedStore(str(tmp_path), read_only=True)
    first = store.read_day("binance", Channel.BBO, "BTC-USDT", DAY)
    write(tmp_path, [bbo(u, T0 + u * 1000 + 3) for u in range(5, 15)])
    assert store.read_day_since("binance", Channel.BBO, "BTC-USDT", DAY, first.manifest) is None


def test_a_time_range_read_returns_the_winning_copy_once(tmp_path: Path) -> None:
    """A's copy of update 1 (received first) lies just before a range's start, B's just after:
    the range from there must not return B's copy, the range before it returns A's, and the
    two adjacent ranges together are the whole read (each update once)."""
    bound = T0 + 10_000_000_000
    write(tmp_path, [bbo(0, bound - 5_000), bbo(1, bound - 1_000), bbo(2, bound + 9_000)])  # A
    write(tmp_path, [bbo(1, bound + 1_000), bbo(2, bound + 8_000), bbo(3, bound + 20_000)])  # B
    store = EmbeddedStore(str(tmp_path), read_only=True)

    def updates(start: int | None, end: int | None) -> list[int]:
        days = store.read_days(
            exchange="binance", symbol="BTC-USDT", channel=Channel.BBO,
            start_ns=start, end_ns=end, columns=["update_id"],
        )  # fmt: skip
        return [u for _, table in days for u in table.column("update_id").to_pylist()]

    assert updates(None, None) == [0, 1, 2, 3]
    assert updates(None, bound) == [0, 1]
    assert updates(bound, None) == [2, 3]  # not B's copy of 1
    frame = store.read(
        exchange="binance", symbol="BTC-USDT", channel=Channel.BBO,
        start=datetime.fromtimestamp(bound / 1e9, UTC),
    )  # fmt: skip
    assert frame["update_id"].tolist() == [2, 3]
    recv = frame.set_index("update_id")["recv_ts"].astype("int64")
    assert recv.loc[2] == bound + 8_000  # B's copy of 2 came first


def test_hundi_ls_counts_two_collectors_copies_once(tmp_path: Path) -> None:
    """Footers count every run's rows; where two runs overlap in time the day's rows are read
    (merged) instead. Runs one after the other (a restart) keep the footer count."""
    from hundi.listing import list_streams

    write(tmp_path, [bbo(u, T0 + u * 1000 + 7) for u in range(10)])  # collector A
    write(tmp_path, [bbo(u, T0 + u * 1000 + 3) for u in range(5, 15)])  # collector B
    store = EmbeddedStore(str(tmp_path), read_only=True)
    (stream,) = list_streams(store)
    assert stream.rows == 15 and stream.counted_from == "rows"
    later = tmp_path / "restarts"
    write(later, [bbo(u, T0 + u * 1000) for u in range(10)])
    write(later, [bbo(u, T0 + u * 1000) for u in range(10, 20)])
    (stream,) = list_streams(EmbeddedStore(str(later), read_only=True))
    assert stream.rows == 20 and stream.counted_from == "metadata"


def okx_candle(recv: int, close: float, closed: bool) -> Candle:
    """OKX stamps every update of a candle with the candle's start: one identity for all."""
    return Candle(
        exchange="okx", symbol="BTC-USDT", native_symbol="BTC-USDT", ts=T0, recv_ts=recv,
        interval="1m", open_time=T0, close_time=T0 + 59_999_000_000, open=100.0,
        high=max(100.0, close), low=min(100.0, close), close=close, volume=1.0,
        quote_volume=100.0, taker_buy_volume=0.0, trade_count=-1, closed=closed,
    )  # fmt: skip


def candle_updates(shift: int) -> list[Candle]:
    closes = [100.0, 101.0, 99.0, 102.5]
    return [okx_candle(T0 + (i + 1) * 10**9 + shift, c, i == 3) for i, c in enumerate(closes)]


def test_a_restart_mid_candle_reads_each_update_and_the_final_state_once(tmp_path: Path) -> None:
    """A received the candle first, was killed after two updates and restarted (a new run)
    while B ran throughout: the read holds each update once, the closed one last. Old code:
    A's first run won the candle (one key) and the closed update was lost."""
    a, b, again = candle_updates(1), candle_updates(4), candle_updates(9)
    for records in (a[:2], b, again[1:]):  # A's first run, B, A's restarted run
        store = EmbeddedStore(str(tmp_path), fsync=False)
        store.write({Channel.CANDLES: records})
        store.flush()
        store.close()
    read = EmbeddedStore(str(tmp_path), read_only=True)
    frame = read.read(exchange="okx", symbol="BTC-USDT", channel=Channel.CANDLES)
    assert frame["close"].tolist() == [100.0, 101.0, 99.0, 102.5]
    assert frame["closed"].tolist() == [False, False, False, True]
    winners = [a[0], a[1], b[2], b[3]]  # each update from the writer that received it first
    assert frame["recv_ts"].astype("int64").tolist() == [c.recv_ts for c in winners]
    day = read.read_day("okx", Channel.CANDLES, "BTC-USDT", DAY)
    assert day.table.column("closed").to_pylist().count(True) == 1


def test_copies_on_either_side_of_midnight_read_back_once(tmp_path: Path) -> None:
    """A's copy of update 1 was received at 23:59:59.999, B's at 00:00:00.001 (a spot
    bookTicker's ts is the receive time): two UTC-day partitions. Every read returns update 1
    once, A's copy (received first), whether it spans midnight, reads the whole store or only
    the second day. Old code: the merge ran per day, so both copies came back."""
    midnight = T0 + 86_400 * 10**9  # 2024-05-03T00:00:00Z
    ms = 1_000_000
    write(tmp_path, [bbo(0, midnight - 5 * ms), bbo(1, midnight - ms), bbo(2, midnight + 9 * ms)])
    write(tmp_path, [bbo(1, midnight + ms), bbo(2, midnight + 8 * ms), bbo(3, midnight + 20 * ms)])
    store = EmbeddedStore(str(tmp_path), read_only=True)
    whole = store.read(exchange="binance", symbol="BTC-USDT", channel=Channel.BBO)
    assert whole["update_id"].tolist() == [0, 1, 2, 3]
    assert whole.set_index("update_id")["recv_ts"].astype("int64").loc[1] == midnight - ms

    def utc(ns: int) -> datetime:
        return datetime.fromtimestamp(ns / 1e9, UTC)

    spanning = store.read(
        exchange="binance", symbol="BTC-USDT", channel=Channel.BBO,
        start=utc(midnight - 10**9), end=utc(midnight + 10**9),
    )  # fmt: skip
    assert spanning["update_id"].tolist() == [0, 1, 2, 3]

    def updates(start: int | None, end: int | None) -> list[int]:
        days = store.read_days(
            exchange="binance", symbol="BTC-USDT", channel=Channel.BBO,
            start_ns=start, end_ns=end, columns=["update_id"],
        )  # fmt: skip
        return [u for _, table in days for u in table.column("update_id").to_pylist()]

    assert updates(None, None) == [0, 1, 2, 3]
    assert updates(midnight - 10**9, midnight + 10**9) == [0, 1, 2, 3]
    assert updates(midnight, None) == [2, 3]  # the second day alone: not B's losing copy
    assert updates(None, midnight) == [0, 1]
    second = store.read_day("binance", Channel.BBO, "BTC-USDT", date(2024, 5, 3))
    assert second.table.column("update_id").to_pylist() == [2, 3]
    first = store.read_day("binance", Channel.BBO, "BTC-USDT", date(2024, 5, 2))
    assert first.table.column("update_id").to_pylist() == [0, 1]
