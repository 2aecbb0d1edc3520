"""The definition of "the book at T", written as the plainest possible loop over stored rows.

Rows with ``ts <= T`` in exchange sequence order (update_id, snapshot rows first); a snapshot
run restarts the book; a diff message that continues the sequence is applied level by level;
one that does not leaves the book frozen and unsynced until the next snapshot.
"""

from __future__ import annotations

import pandas as pd


def replay_book(
    rows: pd.DataFrame, at: pd.Timestamp
) -> tuple[dict[tuple[int, float], float], bool]:
    """``({(side, price): size}, synced)`` at ``at`` from all stored book rows of one symbol."""
    frame = rows.reset_index()
    frame = frame[frame["ts"] <= at]
    frame = frame.assign(order=range(len(frame)), diff=~frame["snapshot"])
    frame = frame.sort_values(["update_id", "diff", "order"], kind="stable")
    book: dict[tuple[int, float], float] = {}
    synced = False
    previous: tuple[int, bool] | None = None  # (update_id, snapshot) of the previous row
    for row in frame.itertuples(index=False):
        new_message = previous is None or (row.update_id, row.snapshot) != previous
        if new_message and row.snapshot:
            book = {}
            synced = True
        elif new_message and previous is not None:
            last_u, last_was_snapshot = previous
            if row.prev_update_id >= 0:  # USD-M
                ok = (
                    row.first_update_id <= last_u <= row.update_id
                    if last_was_snapshot
                    else row.prev_update_id == last_u
                )
            else:  # spot
                ok = (
                    row.first_update_id <= last_u + 1 <= row.update_id
                    if last_was_snapshot
                    else row.first_update_id == last_u + 1
                )
            if not ok:
                synced = False
        previous = (row.update_id, row.snapshot)
        if synced:
            if row.size > 0:
                book[(row.side, row.price)] = row.size
            else:
                book.pop((row.side, row.price), None)
    return book, synced


def as_dict(book: pd.DataFrame) -> dict[tuple[int, float], float]:
    """A ``book_at`` frame in the reference's shape."""
    return {
        (int(side), float(price)): float(size)
        for side, price, size in zip(book["side"], book["price"], book["size"], strict=True)
    }
