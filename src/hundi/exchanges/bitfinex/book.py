"""The Bitfinex book rule: how stored book rows continue one another.

With sequence numbers (``conf`` flag 65536) every frame ends with the connection's sequence
number, shared by every channel on it and starting again on every new socket. Readers put a
symbol's rows in ``update_id`` order, so a stored ``update_id`` must grow across sockets (and
collector runs): it is ``greeting second << 31 | sequence number``, the second of the socket's
``info`` greeting (kept increasing within a run) above the number. ``prev_update_id`` is the id
of the book's previous change (the snapshot's for the first diff): one book's ids are not
consecutive (other channels take numbers in between), so a stored row continues the row before
it when it names that row's ``update_id``; the live protocol checks the connection's numbers
themselves. Without sequence numbers rows store ``-1`` and only snapshots restart a book.
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
