"""Bybit's stored book rows: ``u`` grows by one per ``orderbook`` message, ``seq`` orders them.

``u`` restarts at 1 when Bybit's book service restarts, so it cannot be the stored
``update_id`` (readers order a symbol's rows by it: post-restart rows would sort before the
book they replaced). Rows store ``first_update_id = u``, ``update_id = seq`` (the cross
sequence: "for the smaller seq, the data is generated earlier") and, on deltas,
``prev_update_id`` = the ``seq`` of the message before it: the protocol stores a delta only when
its ``u`` is the previous ``u + 1``, so a delta continues the row before it (snapshot or delta)
when its ``prev_update_id`` is that row's ``update_id``. Snapshots (the subscription's first
message, a resubscribe after a gap, ``u = 1`` after a service restart) restart the book; a
delta with the snapshot's own ``seq`` (stored before it, sorted after it) continues it.
"""

from __future__ import annotations

from typing import Final

from hundi.book.rule import I64, Bools


class BybitBookRule:
    """:class:`hundi.book.rule.ContinuityRule` of Bybit's ``orderbook.{depth}`` rows."""

    def after_snapshot(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        # A snapshot (a resubscribe, a reconnect, a restart) often carries the same ``seq`` as
        # the last delta stored before it, and readers sort a snapshot before the diffs of its
        # id: that delta is the snapshot's own state (its sizes are the snapshot's), not a gap.
        continued: Bools = (prev_id == prev_u) | (update_id == prev_u)
        return continued

    def after_diff(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        continued: Bools = prev_id == prev_u
        return continued


BOOK_RULE: Final = BybitBookRule()
