"""``BookSide``: one side of a live book, best price through deletes, reinserts and churn."""

from __future__ import annotations

from hundi.book import BookSide


def test_book_side_tracks_best_through_deletes_and_reinserts() -> None:
    bids = BookSide(-1)
    bids.load([(1.0, 1.0), (2.0, 1.0), (3.0, 1.0)])
    assert bids.best() == 3.0
    bids.set(3.0, 0.0)
    assert bids.best() == 2.0
    bids.set(3.0, 5.0)
    bids.set(2.5, 1.0)
    assert bids.best() == 3.0
    for price in (3.0, 2.5, 2.0, 1.0):
        bids.set(price, 0.0)
    assert bids.best() is None
    asks = BookSide(1)
    for i in range(500):  # churn: the lazy heap is compacted, best stays right
        asks.set(10.0 + i % 7, 1.0)
        asks.set(10.0 + (i + 3) % 7, 0.0)
    assert asks.best() == min(asks.levels)
    assert len(asks._heap) <= 2 * len(asks.levels) + 64
