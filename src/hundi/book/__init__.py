"""The order book, shared by every reader and writer of books.

* :mod:`hundi.book.side`: one side of a live book (price → size, best price).
* :mod:`hundi.book.rule`: continuity rules, how stored diffs continue each other; each exchange
  declares its own (``hundi.exchanges.exchange(name).book_rule``).
* :mod:`hundi.book.replay`: applying stored rows: the book after any prefix of them, the book
  at a time (rows plus stored gap events), and its top after every message.

The live book (a venue's sync), ``book_at``, ``trades_with_book`` and the book series all use
it, so they agree on when a book is synced. A low-level package: it imports only
:mod:`hundi.records`.
"""

from __future__ import annotations

from hundi.book.replay import (
    BOOK_COLUMNS,
    Block,
    Levels,
    ReplayState,
    Sequence,
    Walk,
    advance,
    book_at,
    broken,
    empty_rows,
    replay,
    sequence,
    tops,
    walk,
)
from hundi.book.rule import UNCHECKED, ContinuityRule, Unchecked, continues
from hundi.book.side import BookSide

__all__ = [
    "BOOK_COLUMNS",
    "UNCHECKED",
    "Block",
    "BookSide",
    "ContinuityRule",
    "Levels",
    "ReplayState",
    "Sequence",
    "Unchecked",
    "Walk",
    "advance",
    "book_at",
    "broken",
    "continues",
    "empty_rows",
    "replay",
    "sequence",
    "tops",
    "walk",
]
