"""``book_at`` with two collectors on one book stream, one restarted next to the running one.

Collector A started (spot): its REST snapshot (id 100) is stamped with its receive time, after
the diffs 101..110 it buffered meanwhile. Collector B, restarted just then, looked up the
stream's last stored row (A's snapshot, id 100) and stored a restart ``gap`` for the ids it did
not see before its own snapshot (108). The merged stream is one unbroken chain from A's
snapshot: the gap's hole (101..107) lies inside the ids the replay has applied, so the book
stays synced. Before the fix ``book_at`` looked for that chain only in rows stamped after A's
snapshot, missed the buffered diffs and called the book unsynced.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bookreplay import as_dict, replay_book
from researchrows import MIDNIGHT, event, trade, write

from hundi.records import ASK, BID, BookChange, Channel
from hundi.research import book_at, trades_with_book
from hundi.stores.embedded import EmbeddedStore

S = 1_000_000_000
T0 = MIDNIGHT + 10 * 3600 * S
SNAPSHOT_AT = T0 + 10 * S + 50_000_000  # A's snapshot: after the diffs up to 110
LAST_DIFF = 130
TRADED = (116, 122, LAST_DIFF)  # trades at these diffs' times, after B's gap


def at(u: int) -> int:
    """Exchange time of diff ``u``: 101 at 9.1 s, 110 at 10.0 s, 130 at 12.0 s."""
    return T0 + (u - 10) * S // 10


def row(ts: int, side: int, price: float, size: float, u: int, *, snapshot: bool = False,
        recv_delay: int = 0) -> BookChange:  # fmt: skip
    return BookChange(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts,
        recv_ts=ts + recv_delay, side=side, price=price, size=size, snapshot=snapshot,
        first_update_id=-1 if snapshot else u, update_id=u, prev_update_id=-1,
    )  # fmt: skip


def diffs(first: int, last: int, recv_delay: int) -> list[BookChange]:
    """Odd ids move a bid (below 100), even ones an ask (above 120); size 0 deletes."""
    return [
        row(at(u), BID, 100.0 - u % 7, float(u % 3), u, recv_delay=recv_delay)
        if u % 2
        else row(at(u), ASK, 120.0 + u % 7, float(u % 3), u, recv_delay=recv_delay)
        for u in range(first, last + 1)
    ]


def snapshot(ts: int, u: int) -> list[BookChange]:
    return [row(ts, BID, 99.0, 1.0, u, snapshot=True), row(ts, ASK, 121.0, 1.0, u, snapshot=True)]


@pytest.fixture()
def pair_store(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    store = tmp_path / "store"
    a_rows = [*snapshot(SNAPSHOT_AT, 100), *diffs(101, LAST_DIFF, 1_000_000)]
    write(store, {Channel.BOOK: a_rows, Channel.TRADES: [trade(at(u), u, 110.0) for u in TRADED]})
    b_snapshot_at = at(108) + 2 * S
    b_gap = event(
        b_snapshot_at, "gap", "book", expected=101, received=108,
        detail="restart: updates after 100 up to 108 not received between runs (last stored at "
        f"{pd.Timestamp(SNAPSHOT_AT, unit='ns', tz='UTC').isoformat()}); the book restarts "
        "from a snapshot",
    )  # fmt: skip
    write(store, {Channel.BOOK: [*snapshot(b_snapshot_at, 108), *diffs(109, LAST_DIFF, 3_000_000)],
                  Channel.EVENTS: [b_gap]})  # fmt: skip
    reference = EmbeddedStore(str(tmp_path / "a-only"), fsync=False)
    reference.write({Channel.BOOK: a_rows})
    reference.close()
    a_alone = EmbeddedStore(str(tmp_path / "a-only"))
    frame = a_alone.read(exchange="binance", symbol="BTC-USDT", channel=Channel.BOOK)
    a_alone.close()
    return store, frame


@pytest.mark.parametrize("when_u", [108, 115, LAST_DIFF])
def test_book_stays_synced_across_a_covered_restart_gap(
    pair_store: tuple[Path, pd.DataFrame], when_u: int
) -> None:
    store, a_frame = pair_store
    when = pd.Timestamp(max(at(when_u), at(108) + 2 * S), unit="ns", tz="UTC")
    book = book_at(store, "binance", "BTC-USDT", when)
    expected, synced = replay_book(a_frame, when)
    assert synced
    assert book.attrs["synced"], book.attrs
    assert as_dict(book) == expected
    assert book.attrs["update_id"] >= 108


def test_trades_with_book_agrees(pair_store: tuple[Path, pd.DataFrame]) -> None:
    """``trades_with_book(source="book")`` judges the gap as ``book_at`` does: each trade gets
    the top of the synced book, not NaN."""
    store, _ = pair_store
    joined = trades_with_book(store, "binance", "BTC-USDT", source="book")
    assert len(joined) == len(TRADED)
    for ts, quote in joined.iterrows():
        book = book_at(store, "binance", "BTC-USDT", ts)
        assert book.attrs["synced"]
        best = book[book["level"] == 0].set_index("side")["price"]
        assert (quote["bid_price"], quote["ask_price"]) == (best[1], best[-1]), (ts, quote)


def test_a_hole_past_the_applied_ids_still_breaks(tmp_path: Path) -> None:
    """The same gap with a hole the merged rows do not hold (ids beyond the last stored) still
    unsyncs the book: only a hole inside the applied chain is covered."""
    store = tmp_path / "store"
    write(
        store,
        {Channel.BOOK: [*snapshot(SNAPSHOT_AT, 100), *diffs(101, LAST_DIFF, 1_000_000)]},
        {Channel.EVENTS: [event(at(LAST_DIFF) + S, "gap", "book", expected=LAST_DIFF + 1,
                                received=LAST_DIFF + 9, detail="U skips ahead")]},
    )  # fmt: skip
    book = book_at(store, "binance", "BTC-USDT", pd.Timestamp(at(LAST_DIFF) + 2 * S, unit="ns"))
    assert not book.attrs["synced"]


def test_a_pair_restarted_together_resyncs_after_the_hole_both_missed(tmp_path: Path) -> None:
    """Both collectors stopped after id 60 and restarted together: A's snapshot (100) restarts
    the book; B's restart gap names ids 61..108, a hole that starts before A's snapshot (which
    nobody has: the book before 100 is gone) and ends inside the chain applied from it. The
    book after A's snapshot is synced; before the fix B's gap, stamped after A's snapshot,
    unsynced it up to the next snapshot."""
    store = tmp_path / "store"
    b_snapshot_at = at(108) + 2 * S
    restart = "restart: updates after 60 up to {} not received between runs"
    a_rows = [*snapshot(SNAPSHOT_AT, 100), *diffs(101, LAST_DIFF, 1_000_000)]
    write(
        store,
        {Channel.BOOK: [*snapshot(at(50), 50), *diffs(51, 60, 1_000_000), *a_rows],
         Channel.EVENTS: [event(SNAPSHOT_AT, "gap", "book", expected=61, received=100,
                                detail=restart.format(100))]},
    )  # fmt: skip
    write(  # B: another writer
        store,
        {Channel.BOOK: [*snapshot(b_snapshot_at, 108), *diffs(109, LAST_DIFF, 3_000_000)],
         Channel.EVENTS: [event(b_snapshot_at, "gap", "book", expected=61, received=108,
                                detail=restart.format(108))]},
    )  # fmt: skip
    reference = EmbeddedStore(str(tmp_path / "a-only"), fsync=False)
    reference.write({Channel.BOOK: a_rows})
    reference.close()
    a_alone = EmbeddedStore(str(tmp_path / "a-only"))
    a_frame = a_alone.read(exchange="binance", symbol="BTC-USDT", channel=Channel.BOOK)
    a_alone.close()
    for when_u in (115, LAST_DIFF):
        when = pd.Timestamp(max(at(when_u), b_snapshot_at + 1), unit="ns", tz="UTC")
        book = book_at(store, "binance", "BTC-USDT", when)
        expected, synced = replay_book(a_frame, when)
        assert synced
        assert book.attrs["synced"], (when_u, book.attrs)
        assert as_dict(book) == expected
    during = book_at(store, "binance", "BTC-USDT", pd.Timestamp(at(80), unit="ns", tz="UTC"))
    assert during.attrs["update_id"] == 60  # the stored pre-stop book, until the hole


def test_a_live_gap_before_the_next_snapshot_still_unsyncs_trades_with_book(
    tmp_path: Path,
) -> None:
    """One collector: a gap at 10.05 s (ids 111..115 missed), the book frozen until a new
    snapshot whose id is the gap's ``received`` (115) at 11.5 s. The replay at the last trade
    applied 115, but the gap came before that replay's snapshot: a trade in between has no
    book (NaN), not the frozen pre-gap one; the trade after the snapshot has it."""
    store = tmp_path / "store"
    gap_at, resync_at = at(110) + S // 20, at(110) + 3 * S // 2
    write(
        store,
        {Channel.BOOK: [*snapshot(SNAPSHOT_AT - S, 100), *diffs(101, 110, 1_000_000),
                        *snapshot(resync_at, 115), *diffs(116, LAST_DIFF, 1_000_000)],
         Channel.EVENTS: [event(gap_at, "gap", "book", expected=111, received=115,
                                detail="U skips ahead")],
         Channel.TRADES: [trade(gap_at + S // 2, 1, 110.0), trade(at(LAST_DIFF) + S, 2, 110.0)]},
    )  # fmt: skip
    joined = trades_with_book(store, "binance", "BTC-USDT", source="book")
    assert len(joined) == 2
    assert pd.isna(joined["bid_price"].iloc[0]), joined
    assert not pd.isna(joined["bid_price"].iloc[1]), joined
