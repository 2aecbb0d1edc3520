"""Order-book sync rules: unit cases and Hypothesis properties over hostile diff streams."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from binance_replay import RowBook
from hypothesis import event, given, settings
from hypothesis import strategies as st

from hundi.book import UNCHECKED, Block, Levels, ReplayState, replay
from hundi.exchanges import exchange
from hundi.exchanges.base import RecordSink
from hundi.exchanges.binance.book import BOOK_RULE, OrderBook
from hundi.exchanges.binance.messages import DepthSnapshotMsg, DepthUpdateMsg, Level
from hundi.exchanges.registry import book_rule
from hundi.records import BookChange, Channel, EventKind, to_arrow

Sides = tuple[dict[float, float], dict[float, float]]


def make_book(usdm: bool, max_buffer: int = 1000) -> OrderBook:
    return OrderBook(
        exchange="binance", symbol="X-Y", native="XY", usdm=usdm, max_buffer=max_buffer
    )


def diff(
    first: int, final: int, bids: list[Level], asks: list[Level], prev: int = -1
) -> DepthUpdateMsg:
    return DepthUpdateMsg(
        event_time=1, first_id=first, final_id=final, bids=bids, asks=asks, prev_final_id=prev
    )


def snapshot(last: int, bids: list[Level], asks: list[Level]) -> DepthSnapshotMsg:
    return DepthSnapshotMsg(last_update_id=last, bids=bids, asks=asks)


# ------------------------------------------------------------------------------------ unit cases
def test_spot_stale_snapshot_is_refused_then_a_fresh_one_syncs() -> None:
    book = make_book(usdm=False)
    out = RecordSink()
    book.on_diff(diff(101, 105, [(1.0, 1.0)], []), 1, out)
    assert book.needs_request
    book.on_snapshot(snapshot(90, [(1.0, 2.0)], [(2.0, 1.0)]), 2, out)  # 91 < U=101: too old
    assert not book.synced and book.needs_request
    assert [e.kind for e in out.events] == [EventKind.RESYNC]
    assert not out.book  # never built on it
    book.on_snapshot(snapshot(102, [(1.0, 2.0)], [(2.0, 1.0)]), 3, out)
    assert book.synced and book.last_update_id == 105
    assert [r.snapshot for r in out.book] == [True, True, False]
    assert out.events[-1].kind == EventKind.SYNCED


def test_spot_snapshot_ahead_of_buffer_waits_for_the_straddling_diff() -> None:
    book = make_book(usdm=False)
    out = RecordSink()
    book.on_diff(diff(101, 105, [], []), 1, out)
    book.on_snapshot(snapshot(107, [(1.0, 2.0)], [(2.0, 1.0)]), 2, out)
    assert not book.synced and not book.needs_request  # held, not refetched
    book.on_diff(diff(106, 107, [], []), 3, out)  # u <= lastUpdateId: dropped
    assert not book.synced
    book.on_diff(diff(108, 110, [(1.5, 1.0)], []), 4, out)
    assert book.synced and book.last_update_id == 110


def test_spot_gap_emits_gap_and_resync_and_rebuffers() -> None:
    book = make_book(usdm=False)
    out = RecordSink()
    book.on_diff(diff(11, 12, [], []), 1, out)
    book.on_snapshot(snapshot(10, [(1.0, 1.0)], [(2.0, 1.0)]), 2, out)
    assert book.synced
    book.on_diff(diff(13, 14, [], []), 3, out)
    book.on_diff(diff(13, 14, [(1.0, 9.0)], []), 4, out)  # duplicate: ignored
    assert book.bids.levels == {1.0: 1.0}
    book.on_diff(diff(16, 17, [], []), 5, out)  # 15 missing
    assert not book.synced and book.needs_request
    gap, resync = out.events[-2:]
    assert (gap.kind, gap.expected, gap.received) == (EventKind.GAP, 15, 16)
    assert resync.kind == EventKind.RESYNC
    assert not book.bids.levels and len(book.buffer) == 1


def test_usdm_requires_pu_chain() -> None:
    book = make_book(usdm=True)
    out = RecordSink()
    book.on_diff(diff(95, 105, [], [], prev=90), 1, out)
    book.on_snapshot(snapshot(100, [(1.0, 1.0)], [(2.0, 1.0)]), 2, out)
    assert book.synced and book.last_update_id == 105
    book.on_diff(diff(108, 110, [], [], prev=105), 3, out)
    assert book.last_update_id == 110
    book.on_diff(diff(115, 120, [], [], prev=112), 4, out)
    assert not book.synced
    assert (out.events[-2].kind, out.events[-2].expected, out.events[-2].received) == (
        EventKind.GAP, 110, 112,
    )  # fmt: skip


def test_crossing_diff_is_a_gap_and_its_rows_are_not_emitted() -> None:
    book = make_book(usdm=False)
    out = RecordSink()
    book.on_diff(diff(11, 11, [], []), 1, out)
    book.on_snapshot(snapshot(10, [(1.0, 1.0)], [(2.0, 1.0)]), 2, out)
    rows_before = len(out.book)
    book.on_diff(diff(12, 12, [(2.5, 1.0)], []), 3, out)
    assert not book.synced
    assert len(out.book) == rows_before
    assert out.events[-2].kind == EventKind.GAP and "cross" in out.events[-2].detail


def test_buffer_overflow_is_a_gap_and_keeps_the_newest() -> None:
    book = make_book(usdm=False, max_buffer=3)
    out = RecordSink()
    for i in range(4):
        book.on_diff(diff(10 + i, 10 + i, [], []), i, out)
    assert [e.kind for e in out.events] == [EventKind.GAP, EventKind.RESYNC]
    assert [m.first_id for m, _ in book.buffer] == [13]
    assert book.needs_request


def test_disconnect_of_a_synced_book_records_a_gap() -> None:
    book = make_book(usdm=False)
    out = RecordSink()
    book.on_diff(diff(11, 11, [], []), 1, out)
    book.on_snapshot(snapshot(10, [(1.0, 1.0)], [(2.0, 1.0)]), 2, out)
    book.disconnect(5, out)
    assert not book.synced and not book.bids.levels and not book.needs_request
    assert [e.kind for e in out.events[-2:]] == [EventKind.GAP, EventKind.RESYNC]
    assert out.events[-2].detail == "disconnect"


# ------------------------------------------------------------------------------ properties
@dataclass
class Truth:
    """A consistent exchange book and the diff stream that produced it."""

    diffs: list[DepthUpdateMsg]
    states: dict[int, Sides]  # final update id → book after that diff


PRICES = st.sampled_from([float(p) for p in range(1, 13)])


@st.composite
def truths(draw: st.DrawFn, usdm: bool) -> Truth:
    bids: dict[float, float] = {4.0: 1.0}
    asks: dict[float, float] = {8.0: 1.0}
    last = 100
    states = {last: (dict(bids), dict(asks))}
    diffs = []
    for _ in range(draw(st.integers(1, 25))):
        touched_b: dict[float, float] = {}
        touched_a: dict[float, float] = {}
        for _ in range(draw(st.integers(0, 4))):
            price = draw(PRICES)
            size = draw(st.sampled_from([0.0, 1.0, 2.5]))
            if draw(st.booleans()):
                touched_b[price] = size
                if size:
                    bids[price] = size
                    for p in [p for p in asks if p <= price]:  # the exchange never crosses
                        del asks[p]
                        touched_a[p] = 0.0
                else:
                    bids.pop(price, None)
            else:
                touched_a[price] = size
                if size:
                    asks[price] = size
                    for p in [p for p in bids if p >= price]:
                        del bids[p]
                        touched_b[p] = 0.0
                else:
                    asks.pop(price, None)
        first = last + 1 + (draw(st.integers(0, 3)) if usdm else 0)
        final = first + draw(st.integers(0, 3))
        diffs.append(
            DepthUpdateMsg(
                event_time=final, first_id=first, final_id=final,
                bids=list(touched_b.items()), asks=list(touched_a.items()),
                prev_final_id=last if usdm else -1,
            )
        )  # fmt: skip
        last = final
        states[last] = (dict(bids), dict(asks))
    return Truth(diffs, states)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[bool, Truth, list[int], list[int]]:
    """A truth, a hostile delivery order (drops, duplicates, swaps) and snapshot lags."""
    usdm = draw(st.booleans())
    truth = draw(truths(usdm))
    order: list[int] = []
    for i in range(len(truth.diffs)):
        action = draw(st.sampled_from(["keep", "keep", "keep", "drop", "dup", "swap"]))
        if action == "drop":
            continue
        order.append(i)
        if action == "dup":
            order.append(draw(st.integers(0, i)))
        elif action == "swap" and len(order) >= 2:
            order[-1], order[-2] = order[-2], order[-1]
    lags = draw(st.lists(st.integers(-3, 2), min_size=1, max_size=8))
    return usdm, truth, order, lags


@settings(max_examples=300, deadline=None)
@given(scenarios())
@pytest.mark.slow
def test_book_is_never_crossed_or_stale_without_a_gap(
    scenario: tuple[bool, Truth, list[int], list[int]],
) -> None:
    usdm, truth, order, lags = scenario
    book = make_book(usdm=usdm, max_buffer=6)
    ids = sorted(truth.states)
    rebuilt = RowBook()
    lag_iter = iter(lags * 50)
    delivered_max = -1
    was_synced = False
    for step, index in enumerate(order):
        out = RecordSink()
        book.on_diff(truth.diffs[index], step, out)
        delivered_max = max(delivered_max, index)
        if book.needs_request:
            # The exchange answers with its book "now": around the newest diff seen, sometimes
            # older (a slow snapshot), sometimes ahead (diffs still in flight).
            at = min(max(delivered_max + 1 + next(lag_iter), 0), len(ids) - 1)
            bids, asks = truth.states[ids[at]]
            book.on_snapshot(snapshot(ids[at], list(bids.items()), list(asks.items())), step, out)
        rebuilt.apply(out.book)
        kinds = [e.kind for e in out.events]
        if was_synced and not book.synced:
            assert EventKind.GAP in kinds
        if book.synced:
            expected = truth.states[book.last_update_id]
            assert (book.bids.levels, book.asks.levels) == expected  # not stale, not wrong
            assert rebuilt.books["X-Y"] == expected  # the stored rows tell the same story
            best_bid, best_ask = book.bids.best(), book.asks.best()
            assert best_bid is None or best_ask is None or best_bid < best_ask
        was_synced = book.synced
        for kind in kinds:
            event(f"emitted {kind}")
    event(f"ends synced={book.synced}")


@pytest.mark.parametrize("usdm", [False, True])
def test_in_order_stream_syncs_once_and_stays_synced(usdm: bool) -> None:
    book = make_book(usdm=usdm)
    out = RecordSink()
    last = 100
    book.on_diff(diff(101, 102, [(1.0, 1.0)], [], prev=last), 1, out)
    book.on_snapshot(snapshot(101, [(1.0, 3.0)], [(5.0, 1.0)]), 2, out)
    for i in range(50):
        first = 103 + 2 * i
        book.on_diff(diff(first, first + 1, [(1.0 + i % 3, 1.0)], [], prev=first - 1), 3, out)
    assert book.synced and book.last_update_id == 202
    assert [e.kind for e in out.events] == [EventKind.SYNCED]


# ---------------------------------------------------------------- the stored rows' continuity
def replayed(rows: list[BookChange]) -> ReplayState:
    """The stored rows replayed as every reader of stored books does (``hundi.book``)."""
    block = Block.from_table(to_arrow(Channel.BOOK, rows))
    return replay(block, ReplayState(Levels.empty()), exchange("binance").book_rule or UNCHECKED)


def test_binance_registers_its_book_rule() -> None:
    assert exchange("binance").book_rule is BOOK_RULE
    assert book_rule("binance") is BOOK_RULE
    assert book_rule("no-such-venue") is UNCHECKED


@pytest.mark.parametrize("usdm", [False, True])
def test_the_rows_a_live_book_stores_replay_to_the_same_book(usdm: bool) -> None:
    """What the live sync applied, the registered rule accepts; a dropped diff it does not."""
    book = make_book(usdm=usdm)
    out = RecordSink()
    book.on_diff(diff(101, 102, [(1.0, 1.0)], [], prev=100), 1, out)
    book.on_snapshot(snapshot(101, [(1.0, 3.0)], [(5.0, 1.0)]), 2, out)
    for i in range(20):
        first = 103 + 2 * i
        book.on_diff(
            diff(first, first + 1, [(1.0 + i % 3, 1.0 + i)], [(5.0 + i % 2, 2.0)], prev=first - 1),
            3,
            out,
        )
    assert book.synced
    state = replayed(out.book)
    assert state.synced and state.update_id == book.last_update_id
    pairs = zip(state.levels.key.tolist(), state.levels.size.tolist(), strict=True)
    levels = {abs(key): size for key, size in pairs}
    assert levels == {**book.bids.levels, **book.asks.levels}
    # a store that lost one applied diff: the rule sees the break, the book stays unsynced
    lost = [row for row in out.book if row.update_id != 110]
    assert not replayed(lost).synced
