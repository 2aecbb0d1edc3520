"""Bybit's stored book rows: ``u`` grows by one per ``orderbook`` message.

Rows store ``first_update_id = update_id = u`` and, on deltas, ``prev_update_id = u - 1``; a
delta continues the row before it (snapshot or delta) when its ``u`` is that row's ``u + 1``.
Snapshots (the subscription's first message, a resubscribe after a gap, ``u = 1`` after a
service restart) restart the book, whatever their ``u``.
"""

from __future__ import annotations

from typing import Final

from hundi.book.rule import I64, Bools


class BybitBookRule:
    """:class:`hundi.book.rule.ContinuityRule` of Bybit's ``orderbook.{depth}`` rows."""

    def after_snapshot(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        continued: Bools = first_id == prev_u + 1
        return continued

    def after_diff(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        continued: Bools = first_id == prev_u + 1
        return continued


BOOK_RULE: Final = BybitBookRule()
