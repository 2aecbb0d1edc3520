"""The research API for notebooks: bars, the book at any time, trades joined to the book,
coverage and streaming reads, as pandas DataFrames with a UTC DatetimeIndex."""

from hundi.research._source import NotStored, ResearchError
from hundi.research.asof import trades_with_book
from hundi.research.bars import bars
from hundi.research.book import book_at
from hundi.research.book_l3 import book_l3_at
from hundi.research.coverage import coverage
from hundi.research.streaming import iter_batches, iter_read

__all__ = [
    "NotStored",
    "ResearchError",
    "bars",
    "book_at",
    "book_l3_at",
    "coverage",
    "iter_batches",
    "iter_read",
    "trades_with_book",
]
