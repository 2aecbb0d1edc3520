"""As-of join of trades to the book: the best bid and ask in force when each trade printed.

Two sources: the stored ``bbo`` stream (cheap, one vectorized ``merge_asof``; note that Binance
spot ``bookTicker`` has no exchange time, so its ``ts`` is the local receive time), or the L2
book rebuilt from stored changes (exact exchange-time top of book after every depth message,
starting from a :mod:`hundi.research.book` checkpoint rather than the start of the day).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from hundi.book.replay import Block, ReplayState, empty_rows, replay, tops
from hundi.exchanges.registry import book_rule
from hundi.records import Channel
from hundi.research._source import (
    ResearchError,
    StoreLike,
    TimeLike,
    day_of,
    day_start_ns,
    days_between,
    index_ns,
    ns_to_timestamp,
    stored_symbol,
    to_ns,
)
from hundi.research.book import CHECKPOINT_ROWS, book_gaps, cache_for, day_rows
from hundi.stores.base import reading

QUOTE_COLUMNS = ["bid_price", "bid_size", "ask_price", "ask_size", "quote_ts"]


def trades_with_book(
    store: StoreLike,
    exchange: str,
    symbol: str,
    start: TimeLike = None,
    end: TimeLike = None,
    *,
    source: str = "bbo",
    lookback: timedelta = timedelta(minutes=1),
) -> pd.DataFrame:
    """Trades of ``start <= ts < end`` with the top of book as of each trade (inclusive).

    Adds ``bid_price``, ``bid_size``, ``ask_price``, ``ask_size`` and ``quote_ts`` (when that
    top of book took effect); NaN where none is known (before the first quote, or while the
    rebuilt book is unsynced). ``source="bbo"`` joins the stored bbo stream, looking back
    ``lookback`` before ``start`` for the first quote; ``source="book"`` uses the L2 book.
    A symbol without stored trades or without that source raises :class:`hundi.query.NotStored`.
    """
    if source not in ("bbo", "book"):
        raise ResearchError(f"source must be 'bbo' or 'book', not {source!r}")
    with reading(store) as opened:
        symbol = stored_symbol(opened, exchange, symbol, Channel.TRADES)
        stored_symbol(opened, exchange, symbol, Channel.BBO if source == "bbo" else Channel.BOOK)
        trades = opened.read(
            exchange=exchange,
            symbol=symbol,
            channel=Channel.TRADES,
            start=_stamp(to_ns(start, "start")),
            end=_stamp(to_ns(end, "end")),
        )
        if trades.empty:
            quotes = pd.DataFrame({c: pd.Series(dtype="float64") for c in QUOTE_COLUMNS[:-1]})
            quotes["quote_ts"] = pd.Series(dtype="datetime64[ns, UTC]")
            return trades.join(quotes, how="left")
        stamps = index_ns(trades)
        first, last = int(stamps[0]), int(stamps[-1])
        if source == "bbo":
            bbo = opened.read(
                exchange=exchange,
                symbol=symbol,
                channel=Channel.BBO,
                start=ns_to_timestamp(first) - lookback,
                end=ns_to_timestamp(last + 1),
            )
            quotes = bbo[QUOTE_COLUMNS[:-1]].assign(quote_ts=bbo.index)
        else:
            quotes = book_tops(opened, exchange, symbol, first, last)
        joined = pd.merge_asof(
            trades.reset_index(),
            quotes.reset_index(drop=True).assign(ts=quotes["quote_ts"].to_numpy()),
            on="ts",
            direction="backward",
            allow_exact_matches=True,
        )
        return joined.set_index("ts")


def _stamp(ns: int | None) -> pd.Timestamp | None:
    return None if ns is None else ns_to_timestamp(ns)


def book_tops(
    store: StoreLike,
    exchange: str,
    symbol: str,
    first_ns: int,
    last_ns: int,
    *,
    checkpoint_rows: int = CHECKPOINT_ROWS,
) -> pd.DataFrame:
    """Top of the rebuilt book after every depth message with ``first <= ts <= last``, plus
    the state at ``first`` (columns as :data:`QUOTE_COLUMNS`, ``quote_ts`` nondecreasing).

    The book is :func:`hundi.research.book.book_at`'s: the exchange's continuity rule judges
    the rows, and a stored book ``gap`` event after the book's snapshot unsyncs it (NaN) from
    the gap on until the next snapshot (unless the replay to the last trade applied every id
    of its hole)."""
    with reading(store) as opened:
        cache = cache_for(opened, None, checkpoint_rows)
        rule = book_rule(exchange)
        # (block, start state, first time, last time, keep the row at the first time) per day
        replays: list[tuple[Block, ReplayState, int, int, bool]] = []
        for day in days_between(day_of(first_ns), day_of(last_ns)):
            index = cache.index(opened, exchange, symbol, day)
            until = min(last_ns, day_start_ns(day + timedelta(days=1)) - 1)
            if index is None or index.day < day:
                if index is not None:  # no rows this day: the last day's end state holds
                    lo = max(first_ns, day_start_ns(day))
                    empty = Block.from_table(empty_rows())
                    replays.append((empty, index.states[-1], lo, until, not replays))
                continue
            lo = max(first_ns, day_start_ns(day))
            position = index.locate(lo - 1)
            rows = day_rows(opened, exchange, symbol, day, index.as_of[position] + 1, last_ns)
            block = Block.from_table(rows, index.carry_in if position == 0 else None)
            replays.append((block, index.states[position], lo, until, True))
        if not replays:
            return pd.DataFrame({c: pd.Series(dtype="float64") for c in QUOTE_COLUMNS})
        since = min(
            start.snapshot_ts if start.snapshot_ts >= 0 else lo - 1
            for _, start, lo, _, _ in replays
        )
        since = min([since, *(int(block.ts.min()) - 1 for block, *_ in replays if len(block))])
        # a gap whose hole the replay to ``last_ns`` applied (another collector's rows filled
        # it) breaks nothing, as in book_at
        block, start, *_ = replays[-1]
        gaps = book_gaps(
            opened, exchange, symbol, since, last_ns, replayed=replay(block, start, rule)
        )
        parts: list[pd.DataFrame] = []
        for block, start, lo, until, keep_first in replays:
            stamps, rows_ = tops(block, start, rule, gaps, lo, until)
            frame = pd.DataFrame(rows_, columns=QUOTE_COLUMNS[:-1])
            frame["quote_ts"] = np.asarray(stamps, np.int64)
            parts.append(frame if keep_first else frame.iloc[1:])
        quotes = pd.concat(parts, ignore_index=True)
        quotes["quote_ts"] = pd.to_datetime(quotes["quote_ts"], unit="ns", utc=True)
        return quotes
