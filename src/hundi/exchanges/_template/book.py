"""The book rule: how this venue's stored L2 rows continue one another (copy and adapt).

Readers of stored books (``hundi.book``: ``book_at``, ``trades_with_book``, the book series)
judge every stored :class:`~hundi.records.BookChange` row with the rule the exchange registers
as ``book_rule`` (``__init__.py``), so they agree with the live sync in ``protocol.py`` about
when a book broke. The rule is vectorized (numpy arrays, one element per row) and gets each
row's ``first_update_id``, ``update_id`` and ``prev_update_id`` and the ``update_id`` of the row
before it (``prev_u``); it answers separately after a snapshot row and after a diff.

This template's imaginary venue numbers every book message: a diff carries its own ``seq`` and
the ``prev_seq`` of the message before it, stored as ``update_id`` and ``prev_update_id``.

* A venue without sequence ids registers no rule (``book_rule=None``: only snapshots restart a
  book, :data:`hundi.book.rule.UNCHECKED`), and stores ``update_id = -1``.
* A venue whose ids increase by one per message checks ``first_id == prev_u + 1`` instead.
"""

from __future__ import annotations

from typing import Final

from hundi.book.rule import I64, Bools


class TemplateBookRule:
    """:class:`hundi.book.rule.ContinuityRule` of the template venue."""

    def after_snapshot(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        """The first diff after a snapshot continues it if it names the snapshot's ``seq``."""
        continued: Bools = prev_id == prev_u
        return continued

    def after_diff(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        """A diff continues the diff before it if it names that diff's ``seq``."""
        continued: Bools = prev_id == prev_u
        return continued


BOOK_RULE: Final = TemplateBookRule()
