"""As-of join of trades to the book: the best bid and ask in force when each trade printed.

Two sources: the stored ``bbo`` stream (cheap, one vectorized ``merge_asof``; note that Binance
spot ``bookTicker`` has no exchange time, so its ``ts`` is the local receive time), or the L2
book rebuilt from stored changes (exact exchange-time top of book after every depth message,
starting from a :mod:`hundi.research.book` checkpoint rather than the start of the day).
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd

from hundi.exchanges.binance.book import BookSide
from hundi.records import BID, Channel
from hundi.research._source import (
    ResearchError,
    StoreLike,
    TimeLike,
    day_of,
    day_start_ns,
    days_between,
    embedded_root,
    index_ns,
    ns_to_timestamp,
    read_partition_days,
    to_ns,
)
from hundi.research.book import (
    BOOK_COLUMNS,
    CHECKPOINT_ROWS,
    Block,
    BookState,
    cache_for,
    empty_rows,
    walk,
)
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
    """
    if source not in ("bbo", "book"):
        raise ResearchError(f"source must be 'bbo' or 'book', not {source!r}")
    with reading(store) as opened:
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
    the state at ``first`` (columns as :data:`QUOTE_COLUMNS`, ``quote_ts`` nondecreasing)."""
    with reading(store) as opened:
        root = embedded_root(opened)
        if root is None:
            raise ResearchError(
                f"the rebuilt book needs the embedded store; not {opened.describe()}"
            )
        cache = cache_for(root, None, checkpoint_rows)
        parts: list[pd.DataFrame] = []
        for day in days_between(day_of(first_ns), day_of(last_ns)):
            index = cache.index(exchange, symbol, day)
            if index is None or index.day < day:
                if index is not None and not parts:
                    parts.append(_tops_of_state(index.states[-1], first_ns))
                continue
            lo = max(first_ns, day_start_ns(day))
            position = index.locate(lo - 1)
            start = index.states[position]
            rows = read_partition_days(
                root, exchange, Channel.BOOK, symbol, [day], BOOK_COLUMNS,
                index.as_of[position] + 1, last_ns, end_inclusive=True,
            )  # fmt: skip
            block = Block.from_table(rows, index.carry_in if position == 0 else None)
            parts.append(_tops(block, start, lo))
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype="float64") for c in QUOTE_COLUMNS})
        tops = pd.concat(parts, ignore_index=True)
        tops["quote_ts"] = pd.to_datetime(tops["quote_ts"], unit="ns", utc=True)
        return tops


def _tops_of_state(state: BookState, at_ns: int) -> pd.DataFrame:
    return _tops(Block.from_table(empty_rows()), state, at_ns)


def _tops(block: Block, start: BookState, first_ns: int) -> pd.DataFrame:
    """Replay ``block`` from ``start`` with a heap per side, recording the top per message.

    Messages before ``first_ns`` only build state; one row at ``first_ns`` gives the state
    there. Times are the running maximum of ``ts``, the moment a top became known (a spot
    snapshot's buffered diffs take effect at the snapshot).
    """
    verdict = walk(block, start)
    bids, asks = BookSide(-1), BookSide(1)
    for key, size in zip(start.levels.key.tolist(), start.levels.size.tolist(), strict=True):
        (bids if key < 0 else asks).set(abs(key), size)
    n = len(block)
    message_end = np.ones(n, np.bool_)
    if n:
        message_end[:-1] = (block.update_id[1:] != block.update_id[:-1]) | (
            block.snapshot[1:] != block.snapshot[:-1]
        )
    resets = np.zeros(n, np.bool_)
    resets[verdict.resets] = True
    effective = np.maximum.accumulate(block.ts) if n else block.ts
    stamps: list[int] = []
    rows: list[tuple[float, float, float, float]] = []
    synced = start.synced
    emitted_start = False
    side, price, size, applied = (
        block.side.tolist(),
        block.price.tolist(),
        block.size.tolist(),
        verdict.applied.tolist(),
    )
    ends, reset_list, eff = message_end.tolist(), resets.tolist(), effective.tolist()
    for i in range(n):
        if eff[i] >= first_ns and not emitted_start:
            stamps.append(first_ns)
            rows.append(_top(bids, asks, synced))
            emitted_start = True
        if reset_list[i]:
            bids.clear()
            asks.clear()
        synced = applied[i]
        if synced:
            (bids if side[i] == BID else asks).set(price[i], size[i])
        if ends[i] and eff[i] >= first_ns:
            stamps.append(eff[i])
            rows.append(_top(bids, asks, synced))
    if not emitted_start:
        stamps.insert(0, first_ns)
        rows.insert(0, _top(bids, asks, synced))
    frame = pd.DataFrame(rows, columns=QUOTE_COLUMNS[:-1])
    frame["quote_ts"] = np.asarray(stamps, np.int64)
    return frame


def _top(bids: BookSide, asks: BookSide, synced: bool) -> tuple[float, float, float, float]:
    if not synced:
        return (math.nan, math.nan, math.nan, math.nan)
    bid, ask = bids.best(), asks.best()
    return (
        math.nan if bid is None else bid,
        math.nan if bid is None else bids.levels[bid],
        math.nan if ask is None else ask,
        math.nan if ask is None else asks.levels[ask],
    )
