"""``hundi.bars`` equals the series' offline ``time_bars`` (the collector's rule) and plain
pandas resampling where the rules coincide, including across midnight."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from researchrows import MIDNIGHT, MS, trade, write

import hundi
from hundi.records import Channel
from hundi.research import NotStored, ResearchError, bars
from hundi.series.offline import time_bars
from hundi.stores.embedded import EmbeddedStore


@pytest.mark.parametrize("market", ["spot", "usdm"])
@pytest.mark.parametrize("interval", ["1s", "250ms", "1m"])
def test_equal_to_the_series_offline_bars(
    market: str, interval: str, sim_stores: dict[str, Path]
) -> None:
    store = sim_stores[market]
    symbol = "BTC-USDT" if market == "spot" else "ETH-USDT-PERP"
    ours = bars(store, "binance", symbol, interval)
    theirs = time_bars(hundi.read(store, exchange="binance", symbol=symbol), interval)
    assert len(ours) > 0
    pd.testing.assert_frame_equal(ours, theirs)


def test_ohlcv_equals_pandas_resample_when_nothing_is_late(sim_stores: dict[str, Path]) -> None:
    store = sim_stores["spot"]
    trades = hundi.read(store, exchange="binance", symbol="ETH-USDT")
    # a grace longer than any delay: every trade counts in the bar of its exchange time
    ours = bars(store, "binance", "ETH-USDT", pd.Timedelta("500ms"), grace=pd.Timedelta("1h"))
    resampled = trades["price"].resample("500ms").ohlc()
    resampled["volume"] = trades["size"].resample("500ms").sum()
    resampled["trade_count"] = trades["price"].resample("500ms").count()
    traded = ours[ours["trade_count"] > 0]
    expected = resampled[resampled["trade_count"] > 0]
    assert list(traded.index) == list(expected.index)
    for column in ("open", "high", "low", "close", "trade_count"):
        assert np.array_equal(traded[column].to_numpy(), expected[column].to_numpy()), column
    assert np.allclose(traded["volume"], expected["volume"])


def test_across_midnight_with_a_late_trade(tmp_path: Path) -> None:
    trades = [trade(MIDNIGHT - 3000 * MS + i * 250 * MS, i, 100.0 + i % 7) for i in range(24)]
    # printed 100 ms before midnight, received 900 ms later: with 500 ms grace it counts after
    trades.append(trade(MIDNIGHT - 100 * MS, 24, 90.0, recv_delay=900 * MS))
    trades.sort(key=lambda t: t.ts)
    store = write(tmp_path / "data", {Channel.TRADES: trades})
    frame = hundi.read(store, exchange="binance")
    for interval in ("1s", "250ms", "7s"):
        pd.testing.assert_frame_equal(
            bars(store, "binance", "BTC-USDT", interval), time_bars(frame, interval)
        )
    second = bars(store, "binance", "BTC-USDT", "1s")
    late = second[second["last_trade_id"] == 24]
    assert late.index[0] == pd.Timestamp(MIDNIGHT, unit="ns", tz="UTC")


def test_window_and_errors(sim_stores: dict[str, Path]) -> None:
    store = sim_stores["spot"]
    trades = hundi.read(store, exchange="binance", symbol="BTC-USDT")
    start = trades.index[len(trades) // 2]
    part = bars(store, "binance", "BTC-USDT", "1s", start=start)
    assert part["trade_count"].sum() == (trades.index >= start).sum()
    # no trades stored for the symbol: an error naming the stored ones (it was an empty frame)
    with pytest.raises(NotStored, match="holds no trades of binance 'NOPE-USDT'"):
        bars(store, "binance", "NOPE-USDT", "1s")
    assert bars(store, "binance", "BTC-USDT", "1s", end="2000-01-01").empty  # known, no rows
    # the exchange's own name reads the stored symbol
    pd.testing.assert_frame_equal(
        bars(store, "binance", "BTCUSDT", "1s"), bars(store, "binance", "BTC-USDT", "1s")
    )
    with pytest.raises(ResearchError, match="interval"):
        bars(store, "binance", "BTC-USDT", "soon")


def test_more_bars_than_memory_holds_is_an_error_saying_so(tmp_path: Path) -> None:
    """Two trades a year apart in 1 ms bars: 31.5 billion bars, empty ones included (numpy's
    MemoryError before, after asking for tens of GiB)."""
    year = 365 * 86_400_000 * MS
    store = write(tmp_path / "data", {Channel.TRADES: [trade(MIDNIGHT, 0, 1.0),
                                                      trade(MIDNIGHT + year, 1, 2.0)]})  # fmt: skip
    with pytest.raises(ResearchError, match="'1ns': bars are a whole number of milliseconds"):
        bars(store, "binance", "BTC-USDT", "1ns")
    with pytest.raises(ResearchError, match="1ms bars over these trades would be more than"):
        bars(store, "binance", "BTC-USDT", "1ms")
    assert bars(store, "binance", "BTC-USDT", "1d")["trade_count"].sum() == 2


def test_bad_counts_and_windows_are_research_errors(sim_stores: dict[str, Path]) -> None:
    """Raw numpy/pyarrow errors (depth -1, chunk_rows 0) and a silent empty coverage for an
    end before its start, found by review."""
    store = sim_stores["spot"]
    at = hundi.read(store, exchange="binance", symbol="BTC-USDT").index[-1]
    for depth in (-1, 0, 1.5):
        with pytest.raises(ResearchError, match="depth must be a whole number >= 1"):
            hundi.book_at(store, "binance", "BTC-USDT", at, depth=depth)  # type: ignore[arg-type]
    assert len(hundi.book_at(store, "binance", "BTC-USDT", at, depth=1)) == 2
    with pytest.raises(ResearchError, match="chunk_rows must be a whole number >= 1"):
        next(hundi.iter_read(store, exchange="binance", chunk_rows=0))
    with pytest.raises(ResearchError, match="end is before start"):
        hundi.coverage(store, "binance", start="2026-12-05", end="2026-12-04")


def test_the_trades_are_read_once_and_name_the_bars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bars' ``native_symbol`` comes from the trades read for them: a day is not read a
    second time to find it (over Cassandra that doubled a bars request)."""
    trades = [trade(MIDNIGHT + i * 250 * MS, i, 100.0 + i) for i in range(40)]
    store = write(tmp_path / "data", {Channel.TRADES: trades})
    reads: list[object] = []
    original = EmbeddedStore.read_days

    def counted(self: EmbeddedStore, **kwargs: Any) -> Any:
        reads.append(kwargs.get("columns"))
        return original(self, **kwargs)

    monkeypatch.setattr(EmbeddedStore, "read_days", counted)
    frame = bars(store, "binance", "BTC-USDT", "1s")
    assert len(reads) == 1
    assert len(frame) == 10
    assert set(frame["native_symbol"]) == {"BTCUSDT"}
    # no trade in the range: no bar, and no second read to name none
    reads.clear()
    assert bars(
        store, "binance", "BTC-USDT", "1s", start=MIDNIGHT - 10_000 * MS, end=MIDNIGHT
    ).empty
    assert len(reads) == 1
