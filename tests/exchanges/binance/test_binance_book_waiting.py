"""A book that is not synced says why (``BookStatus.waiting``, shown by the status screen)."""

from __future__ import annotations

import math

from hundi.exchanges.base import RecordSink
from hundi.exchanges.binance.book import OrderBook
from hundi.exchanges.binance.messages import DepthSnapshotMsg, DepthUpdateMsg, Level


def diff(first: int, final: int, bids: list[Level] | None = None) -> DepthUpdateMsg:
    return DepthUpdateMsg(
        event_time=1, first_id=first, final_id=final, bids=bids or [], asks=[], prev_final_id=-1
    )


def snapshot(last: int) -> DepthSnapshotMsg:
    return DepthSnapshotMsg(last_update_id=last, bids=[(1.0, 1.0)], asks=[(2.0, 1.0)])


def test_each_unsynced_state_says_what_it_waits_for_and_what_broke_it() -> None:
    book = OrderBook(exchange="binance", symbol="X-Y", native="XY", usdm=False, max_buffer=100)
    out = RecordSink()
    state = book.state()
    assert not state.synced and state.waiting == "waiting for the first diff"
    assert math.isnan(state.best_bid)  # an empty side: the screen prints "-", never "nan"
    book.on_diff(diff(11, 12), 1, out)
    assert book.state().waiting == "waiting for a depth snapshot"
    book.on_snapshot(snapshot(20), 2, out)  # newer than every diff so far: held
    assert book.state().waiting.startswith("snapshot ahead of the diffs")
    book.on_diff(diff(13, 21), 3, out)
    synced = book.state()
    assert synced.synced and synced.waiting == ""
    assert (synced.best_bid, synced.best_ask) == (1.0, 2.0)
    book.on_diff(diff(25, 26), 4, out)  # 22..24 missing
    assert book.state().waiting == "waiting for a depth snapshot (after gap: U skips ahead)"
    book.on_snapshot(snapshot(3), 5, out)  # older than the buffered diff: refused
    assert book.state().waiting == "waiting for a depth snapshot (after stale snapshot)"
    book.disconnect(6, out)
    assert book.state().waiting == "waiting for the first diff (after disconnect)"
