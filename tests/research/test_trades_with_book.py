"""Trades joined to the top of book in force at each trade: stored BBO and the rebuilt book."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hundi
from hundi.records import ASK, BID
from hundi.research import ResearchError, book_at, trades_with_book


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_bbo_join_is_the_last_quote_at_or_before_each_trade(
    market: str, sim_stores: dict[str, Path]
) -> None:
    store = sim_stores[market]
    symbol = "BTC-USDT" if market == "spot" else "BTC-USDT-PERP"
    joined = trades_with_book(store, "binance", symbol)
    trades = hundi.read(store, exchange="binance", symbol=symbol)
    bbo = hundi.read(store, exchange="binance", symbol=symbol, channel="bbo")
    assert len(joined) == len(trades) and (joined.index == trades.index).all()
    where = np.searchsorted(bbo.index.asi8, trades.index.asi8, side="right") - 1
    known = where >= 0
    assert known.sum() > 0
    expected = bbo["bid_price"].to_numpy()[where[known]]
    assert np.array_equal(joined["bid_price"].to_numpy()[known], expected)
    assert np.array_equal(joined["quote_ts"].to_numpy()[known], bbo.index.to_numpy()[where[known]])
    assert joined["bid_price"].isna().sum() == (~known).sum()


@pytest.mark.parametrize("market", ["spot", "usdm"])
@pytest.mark.slow
def test_book_join_equals_book_at_each_trade(market: str, sim_stores: dict[str, Path]) -> None:
    store = sim_stores[market]
    symbol = "ETH-USDT" if market == "spot" else "ETH-USDT-PERP"
    joined = trades_with_book(store, "binance", symbol, source="book")
    checked = 0
    for at, row in joined.iloc[:: max(1, len(joined) // 40)].iterrows():
        book = book_at(store, "binance", symbol, at)
        if not book.attrs["synced"]:
            assert np.isnan(row["bid_price"])
            continue
        bids, asks = book[book["side"] == BID], book[book["side"] == ASK]
        assert row["bid_price"] == bids["price"].iloc[0] and row["bid_size"] == bids["size"].iloc[0]
        assert row["ask_price"] == asks["price"].iloc[0] and row["ask_size"] == asks["size"].iloc[0]
        checked += 1
    assert checked > 10


def test_window_and_errors(sim_stores: dict[str, Path]) -> None:
    store = sim_stores["spot"]
    trades = hundi.read(store, exchange="binance", symbol="BTC-USDT")
    whole = trades_with_book(store, "binance", "BTC-USDT", source="book")
    start, end = trades.index[len(trades) // 3], trades.index[2 * len(trades) // 3]
    part = trades_with_book(store, "binance", "BTC-USDT", start, end, source="book")
    inside = (trades.index >= start) & (trades.index < end)
    assert len(part) == inside.sum() > 5
    # starting mid-way gives the same quotes as joining everything
    columns = ["bid_price", "bid_size", "ask_price", "ask_size"]
    assert part[columns].equals(whole[inside][columns])
    assert part["bid_price"].notna().all()
    assert trades_with_book(store, "binance", "BTC-USDT", "2001-01-01", "2001-01-02").empty
    with pytest.raises(ResearchError, match="source"):
        trades_with_book(store, "binance", "BTC-USDT", source="l3")
