"""The Bitfinex book rule: how stored book rows continue one another.

With sequence numbers (``conf`` flag 65536) every stored row carries the connection's sequence
number of its frame as ``update_id`` and that of the book's previous change as
``prev_update_id`` (the snapshot's for the first diff). The numbers are per connection, shared by
every channel on it, so one book's rows are not consecutive; the live protocol checks the
connection's numbers, and a stored row continues the row before it when it names that row's
``update_id``. Without sequence numbers rows store ``-1`` and only snapshots restart a book.
"""

from __future__ import annotations

from typing import Final

from hundi.book.rule import I64, Bools


class BitfinexBookRule:
    """:class:`hundi.book.rule.ContinuityRule` of Bitfinex's P0-P4 books."""

    def after_snapshot(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        """The first diff after a snapshot names the snapshot's sequence number."""
        continued: Bools = prev_id == prev_u
        return continued

    def after_diff(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        """A diff names the sequence number of the book's diff before it."""
        continued: Bools = prev_id == prev_u
        return continued


BOOK_RULE: Final = BitfinexBookRule()
