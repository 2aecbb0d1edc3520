"""``book_at`` and ``trades_with_book(source="book")`` agree about when a stored book broke.

Both replay the stored rows with :mod:`hundi.book` under the exchange's registered continuity
rule and judge them against the stored book ``gap`` events, so a trade gets a top of book
exactly when ``book_at`` at its time is synced, and then the same best bid and ask.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hundi.records import ASK, BID, BookChange, Channel, Event, EventKind, Trade
from hundi.research import book as book_module
from hundi.research import book_at, trades_with_book
from hundi.stores.embedded import EmbeddedStore

S = 1_000_000_000
T0 = int(datetime(2024, 5, 2, 10, tzinfo=UTC).timestamp()) * S


def change(at_s: float, side: int, price: float, size: float, u: int, *, first: int = -1,
           snapshot: bool = False) -> BookChange:  # fmt: skip
    ts = T0 + round(at_s * S)
    return BookChange(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=ts,
        side=side, price=price, size=size, snapshot=snapshot,
        first_update_id=-1 if snapshot else first, update_id=u, prev_update_id=-1,
    )  # fmt: skip


def snapshot(at_s: float, u: int, bid: float, ask: float) -> list[BookChange]:
    return [change(at_s, BID, bid, 1.0, u, snapshot=True),
            change(at_s, ASK, ask, 1.0, u, snapshot=True)]  # fmt: skip


def diff(at_s: float, u: int, bid: float) -> BookChange:
    return change(at_s, BID, bid, 2.0, u, first=u)


def trade(i: int, at_s: float) -> Trade:
    ts = T0 + round(at_s * S)
    return Trade(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=ts,
        trade_id=i, price=100.0, size=1.0, side=1, first_trade_id=i, last_trade_id=i,
    )  # fmt: skip


def gap(at_s: float) -> Event:
    ts = T0 + round(at_s * S)
    return Event(
        exchange="binance",
        symbol="BTC-USDT",
        native_symbol="BTCUSDT",
        ts=ts,
        recv_ts=ts,
        kind=EventKind.GAP.value,
        channel=Channel.BOOK.value,
        expected=106,
        received=110,
        detail="U skips ahead",
    )


def store_of(tmp_path: Path, book: list[BookChange], events: list[Event]) -> Path:
    root = tmp_path / "data"
    target = EmbeddedStore(str(root), fsync=False)
    trades = [trade(i, 0.25 + i * 0.5) for i in range(28)]  # every half second, 0.25 .. 13.75
    target.write({Channel.BOOK: book, Channel.TRADES: trades, Channel.EVENTS: events})
    target.close()
    book_module._CACHES.clear()
    return root


def assert_agree(root: Path) -> tuple[list[bool], list[float]]:
    """Per trade: book_at synced, and the joined bid (NaN when unsynced): checked equal."""
    joined = trades_with_book(root, "binance", "BTC-USDT", source="book")
    synced, bids = [], []
    for ts, row in joined.iterrows():
        book = book_at(root, "binance", "BTC-USDT", ts)
        synced.append(bool(book.attrs["synced"]))
        bids.append(float(row["bid_price"]))
        if book.attrs["synced"]:
            best = book[book["side"] == BID]["price"].max()
            assert row["bid_price"] == best, ts
            assert row["ask_price"] == book[book["side"] == ASK]["price"].min(), ts
        else:
            assert math.isnan(row["bid_price"]) and math.isnan(row["ask_price"]), ts
    return synced, bids


def epochs() -> list[BookChange]:
    """Snapshot 100 at 1 s, diffs 101..105 at 2..6 s; snapshot 200 at 10 s, 201.. at 11..13 s."""
    rows = snapshot(1.0, 100, 99.0, 101.0)
    rows += [diff(1.0 + i, 100 + i, 99.0 + i * 0.1) for i in range(1, 6)]
    rows += snapshot(10.0, 200, 90.0, 91.0)
    rows += [diff(10.0 + i, 200 + i, 90.0 + i * 0.1) for i in range(1, 4)]
    return rows


def test_a_stored_gap_event_unsyncs_the_book_in_both(tmp_path: Path) -> None:
    """The collector stored a book gap at 4.5 s (and, as it does, no diff until the next
    snapshot; here the rows after it are kept to show they are not trusted either)."""
    root = store_of(tmp_path, epochs(), [gap(4.5)])
    synced, bids = assert_agree(root)
    times = [0.25 + i * 0.5 for i in range(28)]
    expected = [1.0 <= t < 4.5 or t >= 10.0 for t in times]
    assert synced == expected
    assert bids[times.index(4.25)] == pytest.approx(99.3)


def test_a_broken_stored_sequence_unsyncs_the_book_in_both(tmp_path: Path) -> None:
    """Diff 104 (5 s) is missing from the store: 105 does not continue 103, so the book is
    unsynced from 6 s until the snapshot at 10 s."""
    rows = [row for row in epochs() if row.update_id != 104]
    root = store_of(tmp_path, rows, [])
    synced, _ = assert_agree(root)
    times = [0.25 + i * 0.5 for i in range(28)]
    assert synced == [1.0 <= t < 6.0 or t >= 10.0 for t in times]


def test_a_gap_at_the_snapshot_is_the_one_it_repaired(tmp_path: Path) -> None:
    root = store_of(tmp_path, epochs(), [gap(1.0)])
    synced, _ = assert_agree(root)
    times = [0.25 + i * 0.5 for i in range(28)]
    assert synced == [t >= 1.0 for t in times]
