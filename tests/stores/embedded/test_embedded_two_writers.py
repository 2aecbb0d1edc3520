"""Two writers (runs, collectors) of one stream into one embedded store read back merged."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from hundi.records import Bbo, Channel
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
