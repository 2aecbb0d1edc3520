"""Continuity rules: when a stored book change continues the one before it.

Each exchange declares its rule in its registration (``hundi.exchanges.exchange(name)
.book_rule``); readers of stored books (``book_at``, ``trades_with_book``, the book series)
all judge rows with :func:`continues`, so they never disagree about when a book broke.

A rule sees the sequence ids of a row (``first_update_id``, ``update_id``,
``prev_update_id``) and the ``update_id`` of the row before it, vectorized, and answers
separately for a row that follows a snapshot row and one that follows a diff. Rows without
sequence ids (``update_id < 0``, or no row before) always continue.
"""

from __future__ import annotations

from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


class ContinuityRule(Protocol):
    """How one exchange's stored diffs continue each other (all arguments are row-aligned)."""

    def after_snapshot(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        """Whether a diff continues the snapshot whose id is ``prev_u``."""
        ...

    def after_diff(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        """Whether a diff continues the diff whose ``update_id`` was ``prev_u``."""
        ...


class Unchecked:
    """No sequence to check: only a snapshot run restarts the book (venues without ids)."""

    def after_snapshot(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        return np.ones(len(update_id), np.bool_)

    def after_diff(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        return np.ones(len(update_id), np.bool_)


UNCHECKED: Final[ContinuityRule] = Unchecked()


def continues(
    rule: ContinuityRule,
    first_id: I64,
    update_id: I64,
    prev_id: I64,
    prev_u: I64,
    prev_snapshot: Bools,
) -> Bools:
    """Per row: it continues the row before it (``prev_u``, ``prev_snapshot``) under ``rule``."""
    sequenced = (update_id >= 0) & (prev_u >= 0)
    return ~sequenced | np.where(
        prev_snapshot,
        rule.after_snapshot(first_id, update_id, prev_id, prev_u),
        rule.after_diff(first_id, update_id, prev_id, prev_u),
    )
