"""Coarser intervals from stored finer series: the API's roll-up equals bars computed from
the trades and book snapshots computed from the book changes at the coarser step, on real
Binance recordings replayed into the real Cassandra with the series the collector would store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from apiserver import SYMBOL, Api, replay, rows_frame, serve, write_series

import hundi
from hundi import series
from hundi.api.rollup import one_bar_per_time, roll_up_bars
from hundi.records import Channel

EXCHANGE = "binance"
EXACT = ("open", "high", "low", "close", "trade_count")
SUMS = ("volume", "quote_volume", "vwap", "buy_volume", "sell_volume")


def _get(api: Api, path: str, **params: object) -> tuple[str, pd.DataFrame]:
    reply = api.get(f"/api/v1/{path}?" + "&".join(f"{k}={v}" for k, v in params.items()))
    assert reply.status == 200, reply.body
    return reply.headers["X-Hundi-Source"], rows_frame(reply.body)


def _same_bars(got: pd.DataFrame, expected: pd.DataFrame, where: str) -> None:
    """Prices, counts and ids exactly; sums up to their last bits (added bar by bar)."""
    assert list(got.index) == list(expected.index), where
    for name in EXACT:
        np.testing.assert_array_equal(got[name], expected[name].astype(float), err_msg=where)
    for name in SUMS:
        np.testing.assert_allclose(
            got[name], expected[name], rtol=1e-12, equal_nan=True, err_msg=where
        )


@pytest.mark.slow
def test_stored_series_answer_coarser_intervals_exactly(
    cassandra_keyspace: str, recordings_dir: Path, tmp_path: Path
) -> None:
    url = cassandra_keyspace
    replay(recordings_dir, url, tmp_path)
    trades = hundi.read(url, exchange=EXCHANGE, symbol=SYMBOL, channel="trades")
    book = hundi.read(url, exchange=EXCHANGE, symbol=SYMBOL, channel="book")
    assert len(trades) > 10 and len(book) > 1000  # half a minute of a busy futures book
    first = min(trades.index.min(), book.index.min()).floor("1min")
    last = max(trades.index.max(), book.index.max()).ceil("1min")
    span = {
        "exchange": EXCHANGE,
        "symbol": SYMBOL,
        "from": first.value // 1_000_000,
        "to": last.value // 1_000_000,
    }
    # what a collector with --series bars:1s,bars:5s,book:5@1s would have stored
    write_series(
        url,
        {
            Channel.BARS: [series.time_bars(trades, "1s"), series.time_bars(trades, "5s")],
            Channel.BOOK_TOP: [series.book_snapshots(book, 5, "1s")],
        },
    )
    expected_sources = {
        "1s": "bars",
        "5s": "bars",
        "2s": "bars:1s->2s",
        "3s": "bars:1s->3s",
        "10s": "bars:5s->10s",  # the coarsest stored interval dividing the step
        "15s": "bars:5s->15s",
        "1m": "bars:5s->1m",
        "1500ms": "trades",  # no stored interval divides it
    }
    with serve(url, tmp_path) as api:
        for step, source in expected_sources.items():
            got_source, got = _get(api, "bars", **span, interval=step)
            assert got_source == source, step
            expected = hundi.bars(url, EXCHANGE, SYMBOL, step, start=first, end=last)
            assert got["trade_count"].sum() == len(trades), step
            _same_bars(got, expected, step)
        for step in ("1s", "2s", "5s", "10s"):
            got_source, got = _get(api, "book", **span, interval=step)
            assert got_source == ("book_top:5" if step == "1s" else f"book_top:5@1s->{step}")
            expected = series.book_snapshots(book, 5, step)
            assert len(got) > 1 and list(got.index) == list(expected.index), step
            for name in ("mid", "spread", "imbalance", "microprice", "bid_size", "ask_size"):
                np.testing.assert_array_equal(got[name], expected[name], err_msg=step)


def _trades(count: int, late_share: float) -> pd.DataFrame:
    """Trades over three hours with quiet minutes and quiet 10 s stretches, some arriving
    later than the grace."""
    rng = np.random.default_rng(7)
    start = pd.Timestamp("2024-05-01", tz="UTC").value
    ts = start + np.sort(rng.integers(0, 3 * 3600 * 10**9, count))
    slot = (ts - start) // (10 * 10**9)
    ts = ts[(slot // 6 % 13 != 4) & (slot % 7 != 2)]  # quiet minutes, quiet 10 s inside others
    n = len(ts)
    lag = np.where(rng.random(n) < late_share, rng.integers(0, 15 * 10**9, n), 3_000_000)
    ids = np.arange(n)
    return pd.DataFrame(
        {
            "exchange": "binance",
            "symbol": "BTC-USDT",
            "native_symbol": "BTCUSDT",
            "recv_ts": pd.to_datetime(ts + lag, utc=True),
            "trade_id": ids,
            "price": 60_000 + np.cumsum(rng.normal(0, 1, n)),
            "size": rng.exponential(0.05, n),
            "side": np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8),
            "first_trade_id": ids,
            "last_trade_id": ids,
        },
        index=pd.DatetimeIndex(pd.to_datetime(ts, utc=True), name="ts"),
    )


def test_roll_up_equals_direct_bars_with_late_trades_and_empty_bars() -> None:
    """Late trades (counted where they arrived) can put a later trade id into an earlier
    bar: open and close follow trade ids, not bar order, so the roll-up still matches."""
    trades = _trades(30_000, late_share=0.05)
    fine = series.time_bars(trades, "10s")
    assert (fine["trade_count"] == 0).sum() > 100
    for step in ("1m", "13m", "1h"):
        direct = series.time_bars(trades, step)
        rolled = roll_up_bars(fine, pd.Timedelta(step).value)
        _same_bars(rolled, direct, step)
        for name in ("first_trade_id", "last_trade_id"):
            np.testing.assert_array_equal(rolled[name], direct[name], err_msg=step)
    assert (series.time_bars(trades, "1m")["trade_count"] == 0).sum() > 2  # empty bars covered


def test_a_bar_stored_twice_counts_once() -> None:
    """Two collector runs overlapping on one bar: the fuller copy is kept, not both."""
    fine = series.time_bars(_trades(5_000, late_share=0.0), "10s")
    partial = fine.iloc[[3]].copy()
    partial["trade_count"] = 1
    twice = pd.concat([fine, partial]).sort_index(kind="stable")
    assert len(one_bar_per_time(twice)) == len(fine)
    _same_bars(
        roll_up_bars(one_bar_per_time(twice), 60 * 10**9),
        series.time_bars(_trades(5_000, late_share=0.0), "1m"),
        "1m",
    )
