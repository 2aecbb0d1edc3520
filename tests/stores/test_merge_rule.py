"""The merge rule of two collectors' rows (hundi.stores.merge) on hand-made tables."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa

from hundi.book.replay import Block, Levels, ReplayState, replay
from hundi.exchanges.registry import book_rule
from hundi.records import ASK, BID, Bbo, BookChange, Channel, Event, Trade, to_arrow
from hundi.stores.merge import covered_gaps, deduplicate, needed_columns, trade_holes

MS = 1_000_000
T0 = 1_714_608_000_000_000_000  # 2024-05-02


def bbo(update_id: int, recv: int, *, ts: int | None = None) -> Bbo:
    return Bbo(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT",
        ts=recv if ts is None else ts, recv_ts=recv, update_id=update_id,
        bid_price=100.0, bid_size=1.0, ask_price=101.0, ask_size=1.0,
    )  # fmt: skip


def trade(trade_id: int, recv: int) -> Trade:
    ts = T0 + trade_id * MS
    return Trade(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=recv,
        trade_id=trade_id, price=100.0 + trade_id, size=1.0, side=1,
        first_trade_id=trade_id, last_trade_id=trade_id,
    )  # fmt: skip


def gap(
    channel: Channel, ts: int, expected: int = -1, received: int = -1, detail: str = ""
) -> Event:
    return Event(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=ts,
        kind="gap", channel=channel.value, expected=expected, received=received, detail=detail,
    )  # fmt: skip


def test_spot_bbo_two_collectors_one_row_per_update_the_first_received_wins() -> None:
    a = [bbo(u, T0 + u * MS + 5) for u in range(1, 6)]  # A received each 5 ns after ...
    b = [bbo(u, T0 + u * MS + (2 if u % 2 else 9)) for u in range(1, 6)]  # ... B, or before
    merged = deduplicate(to_arrow(Channel.BBO, a + b), Channel.BBO)
    merged = merged.sort_by("update_id")  # each copy keeps its place: A's 2 and 4 come first
    assert merged.column("update_id").to_pylist() == [1, 2, 3, 4, 5]
    recv = merged.column("recv_ts").cast(pa.int64()).to_pylist()
    ts = merged.column("ts").cast(pa.int64()).to_pylist()
    assert recv == [T0 + u * MS + (2 if u % 2 else 5) for u in range(1, 6)]
    assert ts == recv  # the winner's local ts comes with it


def test_bbo_with_exchange_time_keeps_two_updates_sharing_an_id() -> None:
    # a venue whose update_id is a time fallback: ts (exchange time) tells the two apart
    rows = [bbo(7, T0 + 10, ts=T0 + 1), bbo(7, T0 + 11, ts=T0 + 2), bbo(7, T0 + 12, ts=T0 + 2)]
    merged = deduplicate(to_arrow(Channel.BBO, rows), Channel.BBO)
    assert merged.column("ts").cast(pa.int64()).to_pylist() == [T0 + 1, T0 + 2]
    assert merged.column("recv_ts").cast(pa.int64()).to_pylist() == [T0 + 10, T0 + 11]


def test_trades_once_each_in_order_earliest_copy() -> None:
    a = [trade(i, T0 + i * MS + 7) for i in range(1, 8)]
    b = [trade(i, T0 + i * MS + 3) for i in range(4, 11)]
    merged = deduplicate(to_arrow(Channel.TRADES, a + b), Channel.TRADES)
    assert merged.column("trade_id").to_pylist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    recv = merged.column("recv_ts").cast(pa.int64()).to_pylist()
    assert recv[3:7] == [T0 + i * MS + 3 for i in range(4, 8)]


def test_a_table_without_the_key_columns_is_returned_as_it_is() -> None:
    table = to_arrow(Channel.TRADES, [trade(1, T0), trade(1, T0 + 1)]).select(["ts"])
    assert deduplicate(table, Channel.TRADES).num_rows == 2
    assert {"trade_id", "recv_ts", "exchange", "symbol", "ts"} <= set(
        needed_columns(Channel.TRADES)
    )


class TrueBook:
    """A spot book moved by messages u = 1, 2, ...: the truth both collectors saw."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.levels: dict[tuple[int, float], float] = {}
        self.messages: list[list[tuple[int, float, float]]] = [[]]  # index = update id

    def step(self) -> None:
        changes = []
        touched: set[tuple[int, float]] = set()  # one row per level and message, as Binance
        for _ in range(self.rng.randint(1, 3)):
            side = self.rng.choice([BID, ASK])
            price = float(self.rng.randint(90, 99) if side == BID else self.rng.randint(101, 110))
            if (side, price) in touched:
                continue
            touched.add((side, price))
            size = float(self.rng.choice([0, 1, 2, 3]))
            changes.append((side, price, size))
            if size:
                self.levels[(side, price)] = size
            else:
                self.levels.pop((side, price), None)
        self.messages.append(changes)

    def snapshot(self, u: int, recv: int) -> list[BookChange]:
        state: dict[tuple[int, float], float] = {}
        for changes in self.messages[1 : u + 1]:
            for side, price, size in changes:
                if size:
                    state[(side, price)] = size
                else:
                    state.pop((side, price), None)
        return [
            BookChange(
                exchange="binance",
                symbol="BTC-USDT",
                native_symbol="BTCUSDT",
                ts=recv,
                recv_ts=recv,
                side=side,
                price=price,
                size=size,
                snapshot=True,
                first_update_id=-1,
                update_id=u,
                prev_update_id=-1,
            )
            for (side, price), size in sorted(state.items())
        ]

    def diffs(self, first: int, last: int, delay: int) -> list[BookChange]:
        return [
            BookChange(
                exchange="binance",
                symbol="BTC-USDT",
                native_symbol="BTCUSDT",
                ts=T0 + u * MS,
                recv_ts=T0 + u * MS + delay,
                side=side,
                price=price,
                size=size,
                snapshot=False,
                first_update_id=u,
                update_id=u,
                prev_update_id=-1,
            )
            for u in range(first, last + 1)
            for side, price, size in self.messages[u]
        ]


def _levels(table: pa.Table) -> tuple[bool, dict[float, float]]:
    state = replay(Block.from_table(table), ReplayState(Levels.empty()), book_rule("binance"))
    return state.synced, dict(
        zip(state.levels.key.tolist(), state.levels.size.tolist(), strict=True)
    )


def _truth(book: TrueBook) -> dict[float, float]:
    return {(-price if side == BID else price): size for (side, price), size in book.levels.items()}


def test_two_collectors_books_replay_to_the_true_book() -> None:
    book = TrueBook(7)
    for _ in range(60):
        book.step()
    # A: snapshot at 10, diffs 11..60. B: snapshot at 25 (fetched later), diffs 26..60.
    # A was killed after 40 and restarted: snapshot at 48, diffs 49..60.
    a = book.snapshot(10, T0 + 30 * MS) + book.diffs(11, 40, 5)
    a_again = book.snapshot(48, T0 + 50 * MS) + book.diffs(49, 60, 4)
    b = book.snapshot(25, T0 + 31 * MS) + book.diffs(26, 60, 6)
    table = to_arrow(Channel.BOOK, a + b + a_again)
    merged = deduplicate(table, Channel.BOOK)
    snapshots = merged.filter(merged.column("snapshot"))
    assert set(snapshots.column("update_id").to_pylist()) == {10}  # 25 and 48 are redundant
    diffs = merged.filter(pa.compute.invert(merged.column("snapshot")))
    ids = diffs.column("update_id").to_numpy()
    assert sorted(set(ids.tolist())) == list(range(11, 61))
    assert len(ids) == sum(len(book.messages[u]) for u in range(11, 61))  # each change once
    synced, levels = _levels(merged)
    assert synced and levels == _truth(book)
    # the unmerged rows interleave two books: the same replay is not the true book (or not
    # synced), which is what the rule prevents
    assert _levels(table) != (True, _truth(book)) or table.num_rows == merged.num_rows


def test_a_snapshot_after_a_break_both_have_stays_and_restarts_the_book() -> None:
    book = TrueBook(3)
    for _ in range(40):
        book.step()
    # both missed 21..24: A's chain stops at 20, B resynced at 30 (after the break)
    a = book.snapshot(5, T0 + 6 * MS) + book.diffs(6, 20, 5)
    b = book.snapshot(30, T0 + 31 * MS) + book.diffs(27, 40, 6)  # B stored 27..30 before it
    merged = deduplicate(to_arrow(Channel.BOOK, a + b), Channel.BOOK)
    snapshots = merged.filter(merged.column("snapshot"))
    assert sorted(set(snapshots.column("update_id").to_pylist())) == [5, 30]
    diff_ids = merged.filter(pa.compute.invert(merged.column("snapshot"))).column("update_id")
    assert 30 not in diff_ids.to_pylist()  # already in snapshot 30
    synced, levels = _levels(merged)
    assert synced and levels == _truth(book)
    events = to_arrow(Channel.EVENTS, [gap(Channel.BOOK, T0 + 25 * MS, 21, 30)])
    assert covered_gaps(events, Channel.BOOK, merged, rule=book_rule("binance")).tolist() == [False]


def test_book_gap_of_one_collector_is_covered_by_the_others_chain() -> None:
    book = TrueBook(5)
    for _ in range(40):
        book.step()
    a = book.snapshot(5, T0 + 6 * MS) + book.diffs(6, 20, 5) + book.snapshot(30, T0 + 31 * MS)
    b = book.snapshot(8, T0 + 9 * MS) + book.diffs(9, 40, 6)
    merged = deduplicate(to_arrow(Channel.BOOK, a + b), Channel.BOOK)
    events = to_arrow(
        Channel.EVENTS,
        [
            gap(Channel.BOOK, T0 + 30 * MS, 21, 30),  # A's restart gap, by ids
            gap(Channel.BOOK, T0 + 25 * MS),  # a gap without ids, by time
            gap(Channel.BOOK, T0 + 45 * MS),  # after everything: nothing runs on
        ],
    )
    covered = covered_gaps(events, Channel.BOOK, merged, rule=book_rule("binance"))
    assert covered.tolist() == [True, True, False]


def test_trade_gap_covered_only_when_every_id_is_stored() -> None:
    events = to_arrow(
        Channel.EVENTS, [gap(Channel.TRADES, T0, 5, 8), gap(Channel.TRADES, T0, 12, 14)]
    )
    data = to_arrow(Channel.TRADES, [trade(i, T0) for i in [*range(1, 13), 14]])
    assert covered_gaps(events, Channel.TRADES, data).tolist() == [True, False]


def test_two_collectors_gaps_over_the_same_absent_ids_are_one_hole() -> None:
    """Found by review: both lost ids 20..29, the slower one reconnected later and its gap ran
    to 40 over ids the other stored: two holes, one of them reaching ids that are there."""
    stored = [*range(0, 20), *range(30, 60)]
    data = to_arrow(Channel.TRADES, [trade(i, T0) for i in stored])
    events = to_arrow(
        Channel.EVENTS,
        [
            gap(Channel.TRADES, T0, 20, 30),  # A
            gap(Channel.TRADES, T0, 18, 41),  # B: the same absent ids, wider
            gap(Channel.TRADES, T0, 18, 29),  # a part of them: nothing A's does not report
            gap(Channel.TRADES, T0, 35, 45),  # all stored: covered
            gap(Channel.TRADES, T0, 60, 62),  # after the last stored id: a hole of its own
            gap(Channel.TRADES, T0, 25, 61),  # over A's hole and that one: both reported
            gap(Channel.TRADES, T0, 10, 21),  # A's first id and 10..19 (stored): A's hole
            gap(Channel.TRADES, T0, 61, 65),  # 61..64, three of them new: a hole
        ],
    )
    assert covered_gaps(events, Channel.TRADES, data).tolist() == [
        False, True, True, True, False, True, True, False,
    ]  # fmt: skip
    # gaps whose ids were fetched back stay gaps (as with one collector), but the second
    # collector's over the same hole is still that hole
    fetched = np.array([True, True, False, False, False, False, False, False])
    filled = to_arrow(Channel.TRADES, [trade(i, T0) for i in range(0, 60)])
    assert covered_gaps(events, Channel.TRADES, filled, fetched=fetched).tolist() == [
        False, True, True, True, False, True, True, False,
    ]  # fmt: skip


def test_trade_holes_agree_with_listing_the_ids() -> None:
    """Against the rule applied to listed ids: a gap's absent ids are counted, and it is
    covered when none is absent or all lie in the holes reported before it."""
    rng = random.Random(3)
    for _ in range(2_000):
        stored = sorted({rng.randrange(0, 60) for _ in range(rng.randrange(0, 50))})
        bounds = [(rng.randrange(-1, 60), rng.randrange(-1, 65)) for _ in range(5)]
        covered, _, _, count = trade_holes(
            np.asarray(stored, np.int64),
            np.asarray([e for e, _ in bounds], np.int64),
            np.asarray([r for _, r in bounds], np.int64),
        )
        reported: set[int] = set()
        for i, (expected, received) in enumerate(bounds):
            valid = 0 <= expected < received
            absent = {x for x in range(expected, received) if x not in stored} if valid else set()
            whole = valid and absent <= reported
            assert (count[i], covered[i]) == (len(absent), whole), (stored, bounds, i)
            if valid and not whole:
                reported |= set(range(expected, received))


def test_bbo_restart_gap_covered_when_its_window_holds_a_row() -> None:
    detail = "restart: nothing received between 2024-05-02T00:00:01.000+00:00 and {}+00:00"
    events = to_arrow(
        Channel.EVENTS,
        [
            gap(Channel.BBO, T0 + 2_000 * MS, detail=detail.format("2024-05-02T00:00:02.000")),
            gap(Channel.BBO, T0 + 9_000 * MS, detail=detail.format("2024-05-02T00:00:09.000")),
        ],
    )
    # rows at 1.0 s (the window's start: the last stored row), 1.5 s, 2.0 s
    window_rows = [bbo(1, T0 + 1_000 * MS), bbo(2, T0 + 1_500 * MS), bbo(3, T0 + 2_000 * MS)]
    assert covered_gaps(events, Channel.BBO, to_arrow(Channel.BBO, window_rows)).tolist() == [
        True,
        True,
    ]
    edges_only = [bbo(1, T0 + 1_000 * MS), bbo(3, T0 + 2_000 * MS)]
    assert covered_gaps(events, Channel.BBO, to_arrow(Channel.BBO, edges_only)).tolist() == [
        False,
        True,  # 1 s..9 s holds the row at 2 s
    ]
    no_window = to_arrow(Channel.EVENTS, [gap(Channel.BBO, T0 + 1_500 * MS, detail="socket")])
    assert not covered_gaps(no_window, Channel.BBO, to_arrow(Channel.BBO, window_rows)).any()


def test_dedup_is_vectorised_over_many_rows() -> None:
    rows = [bbo(u, T0 + u * 1000 + 1) for u in range(50_000)]
    twice = to_arrow(Channel.BBO, rows + [bbo(u, T0 + u * 1000 + 2) for u in range(50_000)])
    merged = deduplicate(twice, Channel.BBO)
    assert merged.num_rows == 50_000
    assert np.array_equal(merged.column("update_id").to_numpy(), np.arange(50_000))


def test_an_empty_window_shorter_than_any_restart_is_covered() -> None:
    """A 6 ms window: no collector restarts that fast, so the row at its start was another's,
    running then. A 3 s window without rows is a hole."""
    detail = "restart: nothing received between 2024-05-02T00:00:{} and 2024-05-02T00:00:{}"
    steady = [bbo(u, T0 + u * 10 * MS) for u in range(200)]  # 0 .. 1.99 s
    events = to_arrow(
        Channel.EVENTS,
        [
            gap(Channel.BBO, T0 + 1_006 * MS, detail=detail.format("01.000+00:00", "01.006+00:00")),
            gap(Channel.BBO, T0 + 5_000 * MS, detail=detail.format("02.000+00:00", "05.000+00:00")),
        ],
    )
    covered = covered_gaps(events, Channel.BBO, to_arrow(Channel.BBO, steady))
    assert covered.tolist() == [True, False]
