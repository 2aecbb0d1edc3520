"""Every research call takes the exchange's own symbol (``BTCUSDT``, what ``collect`` takes)
and says so when the store does not hold what it was asked for, listing what it holds; a
stored stream with nothing in the range stays an empty answer."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from researchrows import MIDNIGHT, MS, trade, write

import hundi
from hundi.records import ASK, BID, BookChange, Channel
from hundi.research import NotStored, bars, book_at, iter_read, trades_with_book


def change(ts: int, side: int, price: float, size: float, u: int) -> BookChange:
    return BookChange(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=ts,
        side=side, price=price, size=size, snapshot=True, first_update_id=-1, update_id=u,
        prev_update_id=-1,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """BTC-USDT trades and book, ETH-USDT trades; no bbo."""
    trades = [trade(MIDNIGHT + i * 100 * MS, i, 100.0 + i) for i in range(20)]
    trades += [trade(MIDNIGHT + i * 100 * MS, i, 10.0, symbol="ETH-USDT") for i in range(5)]
    book = [change(MIDNIGHT, BID, 99.5, 2.0, 7), change(MIDNIGHT, ASK, 100.5, 3.0, 7)]
    return write(tmp_path / "data", {Channel.TRADES: trades, Channel.BOOK: book})


def test_the_exchange_s_own_symbol_is_read_as_the_stored_one(store: Path) -> None:
    at = pd.Timestamp(MIDNIGHT + 500 * MS, tz="UTC")
    pd.testing.assert_frame_equal(
        book_at(store, "binance", "BTCUSDT", at), book_at(store, "binance", "BTC-USDT", at)
    )
    assert len(book_at(store, "binance", "BTCUSDT", at)) == 2
    native_bars = bars(store, "binance", "BTCUSDT", "1s")
    assert set(native_bars["symbol"]) == {"BTC-USDT"} and native_bars["trade_count"].sum() == 20
    joined = trades_with_book(store, "binance", "BTCUSDT", source="book")
    assert len(joined) == 20 and (joined["bid_price"] == 99.5).all()
    assert sum(len(c) for c in iter_read(store, exchange="binance", symbol="ethusdt")) == 5


def test_what_is_not_stored_is_an_error_listing_what_is(store: Path) -> None:
    """Each of these answered an empty frame, like a quiet market."""
    at = pd.Timestamp(MIDNIGHT + 500 * MS, tz="UTC")
    with pytest.raises(
        NotStored,
        match=re.escape(
            "no book of binance 'ETHUSDT' (ETH-USDT has trades); symbols with book: BTC"
        ),
    ):
        book_at(store, "binance", "ETHUSDT", at)
    with pytest.raises(NotStored, match="holds no exchange 'bitfinex'; it holds: binance"):
        book_at(store, "bitfinex", "BTC-USDT", at)
    with pytest.raises(NotStored, match="holds no trades of binance 'SOL-USDT'") as raised:
        bars(store, "binance", "SOL-USDT", "1s")
    assert sorted(raised.value.choices) == ["BTC-USDT", "ETH-USDT"]
    # the default source of quotes (bbo) was never collected: NaN quotes looked like no quotes
    with pytest.raises(NotStored, match="holds no bbo of binance; it holds: "):
        trades_with_book(store, "binance", "BTC-USDT")
    with pytest.raises(NotStored, match="holds no exchange 'binanse'"):
        hundi.read(store, exchange="binanse")


def test_a_stored_stream_without_rows_in_the_range_is_empty(store: Path) -> None:
    before = pd.Timestamp(MIDNIGHT - 1, tz="UTC")
    empty = book_at(store, "binance", "BTCUSDT", before)
    assert empty.empty and not empty.attrs["synced"]
    assert bars(store, "binance", "BTC-USDT", "1s", end=before).empty
    assert trades_with_book(store, "binance", "BTC-USDT", end=before, source="book").empty
    assert list(iter_read(store, exchange="binance", symbol="BTCUSDT", end=before)) == []


def test_coverage_takes_the_native_symbol_and_refuses_what_is_not_stored(store: Path) -> None:
    native = hundi.coverage(store, "binance", symbol="BTCUSDT", channel="trades")
    stored = hundi.coverage(store, "binance", symbol="BTC-USDT", channel="trades")
    pd.testing.assert_frame_equal(native, stored)
    assert int(native["rows"].sum()) == 20
    with pytest.raises(NotStored, match="ETH-USDT"):  # closest first
        hundi.coverage(store, "binance", symbol="ETH-USD", channel="trades")
    with pytest.raises(NotStored, match="holds no exchange 'bitfinex'"):
        hundi.coverage(store, "bitfinex")
