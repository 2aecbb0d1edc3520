"""The research API for notebooks: bars, the book at any time, trades joined to the book,
coverage, and streaming reads, all as pandas DataFrames with a UTC DatetimeIndex."""

from hundi.research._source import ResearchError
from hundi.research.book import book_at

__all__ = ["ResearchError", "book_at"]
