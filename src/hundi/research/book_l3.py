"""``book_l3_at``: the order-level (L3) book at any time, from stored ``book_l3`` rows.

"The L3 book at T" is the last stored snapshot at or before T (its ``snapshot`` rows: one per
resting order, sharing one ``ts`` and ``sequence``) with every stored event of a later
``sequence`` and ``ts <= T`` applied in sequence order, in a :class:`hundi.book.orders.OrderBook`
(the book the live protocols keep; :meth:`~hundi.book.orders.OrderBook.apply` says what each
event kind does). ``received`` changes nothing but takes a sequence number.

The book is known (``synced``) only while the sequence numbers continue one another: a hole in
``sequence`` (a lost event) or a stored ``gap``/``stopped`` event of the channel after the
snapshot makes it unknown until the next snapshot, as :func:`hundi.research.book_at` does for
L2 books; the book shown is then the last consistent one.

A live event may carry an exchange time a little before the snapshot it follows (the collector
times a snapshot when its response arrived, after the events buffered while it was fetched), so
events are read from :data:`SNAPSHOT_SLACK_NS` before the snapshot and chosen by sequence.

No checkpoints: each call replays from the last snapshot, which a collector takes at every
(re)sync and every ``full_snapshot_interval_s`` (an hour by default), so a query replays at most
about that much history, read in windows of :data:`REPLAY_WINDOW_NS`. A snapshot's rows carry
their place in it (``trade_id``), which restores every level's queue whatever order the store
returns them in. :func:`l2_from_l3` gives the same book aggregated to L2, which is what
:func:`hundi.research.book_at` returns for a symbol stored only as ``book_l3``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hundi.book.orders import OrderBook
from hundi.query import NotStored
from hundi.records import ASK, BID, Channel, EventKind
from hundi.research._source import (
    ResearchError,
    StoreLike,
    TimeLike,
    day_of,
    day_start_ns,
    ns_to_timestamp,
    stored_symbol,
    to_ns,
)
from hundi.stores.base import Store, Unsupported, reading

SNAPSHOT_SLACK_NS: Final = 60 * 1_000_000_000
SEARCH_WINDOW_NS: Final = 3_600 * 1_000_000_000  # the first look back for a snapshot
REPLAY_WINDOW_NS: Final = 3_600 * 1_000_000_000  # events read and applied per step
_EVENT_COLUMNS: Final = ("ts", "order_id", "side", "price", "size", "kind", "sequence", "trade_id")


@dataclass(slots=True)
class L3State:
    """The rebuilt book and how far it is known."""

    book: OrderBook
    synced: bool
    sequence: int  # the last sequence applied (-1: no snapshot at or before the time)
    snapshot_ts: int  # -1: none


def _last_snapshot(store: Store, exchange: str, symbol: str, at_ns: int) -> tuple[int, int] | None:
    """(ts, sequence) of the newest snapshot stored at or before ``at_ns``.

    Read backwards in windows that double from :data:`SEARCH_WINDOW_NS` (three columns only),
    so a collector snapshotting every hour costs about an hour of rows, not whole days."""
    days = [d for d in store.days(exchange, Channel.BOOK_L3, symbol) if d <= day_of(at_ns)]
    if not days:
        return None
    first_ns = day_start_ns(days[0])
    end, width = at_ns + 1, SEARCH_WINDOW_NS
    while end > first_ns:
        start = max(end - width, first_ns)
        found: tuple[int, int] | None = None
        for _, table in store.read_days(
            exchange=exchange, symbol=symbol, channel=Channel.BOOK_L3, start_ns=start,
            end_ns=end, columns=["ts", "kind", "sequence"], ordered=False,
        ):  # fmt: skip
            kinds = table.column("kind").cast(pa.string())
            snapshots = table.filter(pc.equal(kinds, "snapshot"))
            if snapshots.num_rows:
                ts = snapshots.column("ts").cast(pa.int64()).to_pylist()
                sequences = snapshots.column("sequence").to_pylist()
                # two snapshots of one time (the venue's clock): the later sequence is newer
                newest = max(zip(ts, sequences, strict=True))
                found = newest if found is None else max(found, newest)
        if found is not None:
            return found
        end, width = start, width * 2
    return None


def _window(store: Store, exchange: str, symbol: str, start_ns: int, end_ns: int) -> pa.Table:
    """The rows of ``start_ns <= ts < end_ns`` (the replayed columns), in storage order."""
    tables = [
        table.select(list(_EVENT_COLUMNS))
        for _, table in store.read_days(
            exchange=exchange, symbol=symbol, channel=Channel.BOOK_L3, start_ns=start_ns,
            end_ns=end_ns, columns=list(_EVENT_COLUMNS), ordered=False,
        )
    ]  # fmt: skip
    if not tables:
        return pa.table({name: pa.array([], pa.int64()) for name in _EVENT_COLUMNS})
    return pa.concat_tables([t.cast(tables[0].schema) for t in tables])


def _columns(rows: pa.Table) -> tuple[list[int], list[str], list[int], list[float], list[float],
                                      list[str], list[int], list[int]]:  # fmt: skip
    return (
        rows.column("ts").cast(pa.int64()).to_pylist(),
        rows.column("order_id").cast(pa.string()).to_pylist(),
        rows.column("side").to_pylist(),
        rows.column("price").to_pylist(),
        rows.column("size").to_pylist(),
        rows.column("kind").cast(pa.string()).to_pylist(),
        rows.column("sequence").to_pylist(),
        rows.column("trade_id").to_pylist(),
    )


def _gap_times(store: Store, exchange: str, symbol: str, since_ns: int, at_ns: int) -> list[int]:
    """Times of the channel's stored ``gap``/``stopped`` events in (since_ns, at_ns]."""
    events = store.read(
        exchange=exchange,
        symbol=symbol,
        channel=Channel.EVENTS,
        start=ns_to_timestamp(since_ns // 1000 * 1000).to_pydatetime(),
        end=ns_to_timestamp((at_ns // 1000 + 1) * 1000).to_pydatetime(),
    )
    if events.empty:
        return []
    times = pd.DatetimeIndex(events.index).as_unit("ns").asi8
    kinds = events["kind"].astype(str).to_numpy()
    channels = events["channel"].astype(str).to_numpy()
    chosen = (
        (times > since_ns)
        & (times <= at_ns)
        & np.isin(kinds, [EventKind.GAP.value, EventKind.STOPPED.value])
        & (channels == Channel.BOOK_L3.value)
    )
    return sorted(int(t) for t in times[chosen])


def _load_snapshot(
    store: Store, exchange: str, symbol: str, snapshot_ts: int, snapshot_seq: int
) -> OrderBook:
    """The book a stored snapshot lists, each level's orders in the snapshot's order: its rows
    carry their place in the snapshot in ``trade_id`` (a store may return rows sharing a key
    prefix in any order, Cassandra by order id); rows without a place keep storage order."""
    rows = _window(store, exchange, symbol, snapshot_ts, snapshot_ts + 1)
    ts, order_ids, sides, prices, sizes, kinds, sequences, places = _columns(rows)
    chosen = [
        i
        for i in range(len(ts))
        if kinds[i] == "snapshot" and ts[i] == snapshot_ts and sequences[i] == snapshot_seq
    ]
    chosen.sort(key=lambda i: places[i])  # stable: places of -1 (older rows) keep their order
    book = OrderBook()
    for i in chosen:
        book.add(order_ids[i], sides[i], prices[i], sizes[i], snapshot_ts)
    return book


def replay_l3(store: Store, exchange: str, symbol: str, at_ns: int) -> L3State:
    """The L3 book of a stored symbol after every row with ``ts <= at_ns`` (see the module).

    The events after the snapshot are read and applied one :data:`REPLAY_WINDOW_NS` of time at
    a time (each window sorted by sequence), so memory stays bounded by a window's rows."""
    found = _last_snapshot(store, exchange, symbol, at_ns)
    if found is None:
        return L3State(OrderBook(), synced=False, sequence=-1, snapshot_ts=-1)
    snapshot_ts, snapshot_seq = found
    book = _load_snapshot(store, exchange, symbol, snapshot_ts, snapshot_seq)
    last = snapshot_seq
    synced = True
    start = snapshot_ts - SNAPSHOT_SLACK_NS
    while synced and start <= at_ns:
        end = min(start + REPLAY_WINDOW_NS, at_ns + 1)
        rows = _window(store, exchange, symbol, start, end)
        start = end
        if not rows.num_rows:
            continue
        kinds_column = rows.column("kind").cast(pa.string())
        rows = rows.filter(
            pc.and_(
                pc.greater(rows.column("sequence"), last),
                pc.not_equal(kinds_column, "snapshot"),
            )
        )
        rows = rows.take(pc.sort_indices(rows, [("sequence", "ascending"), ("ts", "ascending")]))
        ts, order_ids, sides, prices, sizes, kinds, sequences, _ = _columns(rows)
        for i in range(len(ts)):
            if sequences[i] == last:
                continue  # one event stored twice under two times: applied once
            if sequences[i] != last + 1:
                synced = False  # a lost event: unknown until the next snapshot
                break
            book.apply(kinds[i], order_ids[i], sides[i], prices[i], sizes[i], ts[i])
            last = sequences[i]
    if synced and _gap_times(store, exchange, symbol, snapshot_ts, at_ns):
        synced = False
    return L3State(book, synced=synced, sequence=last, snapshot_ts=snapshot_ts)


def _state_at(store: StoreLike, exchange: str, symbol: str, at: TimeLike) -> tuple[L3State, int]:
    at_ns = to_ns(at, "ts")
    if at_ns is None:
        raise ResearchError("book_l3_at needs a time")
    with reading(store) as opened:
        symbol = stored_symbol(opened, exchange, symbol, Channel.BOOK_L3)
        return replay_l3(opened, exchange, symbol, at_ns), at_ns


def _attrs(frame: pd.DataFrame, state: L3State, at_ns: int) -> pd.DataFrame:
    frame.attrs.update(
        as_of=ns_to_timestamp(at_ns),
        synced=state.synced,
        update_id=state.sequence,
        snapshot_ts=ns_to_timestamp(state.snapshot_ts) if state.snapshot_ts >= 0 else None,
    )
    return frame


def book_l3_at(
    store: StoreLike, exchange: str, symbol: str, ts: TimeLike, *, depth: int | None = None
) -> pd.DataFrame:
    """The order-level book of ``symbol`` at ``ts`` (inclusive), from stored ``book_l3`` rows.

    One row per resting order: ``side`` (1 bid, -1 ask), ``price``, ``level`` (0 = best),
    ``position`` (0 = front of the level's queue), ``order_id``, ``size``; bids best first then
    asks best first, each level in queue (arrival) order; indexed by the time the order took its
    place (UTC; the snapshot's time for orders it listed). ``depth`` keeps the best N levels per
    side. ``attrs``: ``as_of``, ``synced`` (False after a lost event until the next snapshot:
    the book shown is the last consistent one), ``update_id`` (last applied sequence) and
    ``snapshot_ts``. A symbol without stored ``book_l3`` rows raises :class:`NotStored`.
    """
    state, at_ns = _state_at(store, exchange, symbol, ts)
    book = state.book
    columns: dict[str, list[object]] = {
        k: [] for k in ("side", "price", "level", "position", "order_id", "size")
    }
    times: list[int] = []
    for side in (BID, ASK):
        prices = book.prices(side)
        for level, price in enumerate(prices if depth is None else prices[:depth]):
            for position, order in enumerate(book.queue(side, price)):
                for name, value in (
                    ("side", side), ("price", price), ("level", level), ("position", position),
                    ("order_id", order.order_id), ("size", order.size),
                ):  # fmt: skip
                    columns[name].append(value)
                times.append(order.ts)
    frame = pd.DataFrame(
        {
            "side": np.asarray(columns["side"], np.int8),
            "price": np.asarray(columns["price"], np.float64),
            "level": np.asarray(columns["level"], np.int64),
            "position": np.asarray(columns["position"], np.int64),
            "order_id": pd.Series(columns["order_id"], dtype=object).to_numpy(),
            "size": np.asarray(columns["size"], np.float64),
        },
        index=pd.DatetimeIndex(
            pd.to_datetime(np.asarray(times, np.int64), unit="ns", utc=True), name="ts"
        ),
    )
    return _attrs(frame, state, at_ns)


def l2_from_l3(state: L3State, at_ns: int, depth: int | None) -> pd.DataFrame:
    """The L3 book aggregated to L2 in :func:`hundi.research.book_at`'s shape: one row per
    price with the summed size, indexed by the newest time of its orders."""
    parts = []
    for side in (BID, ASK):
        prices = state.book.prices(side)
        prices = prices if depth is None else prices[:depth]
        levels = [state.book.level(side, p) for p in prices]
        parts.append(
            pd.DataFrame(
                {
                    "side": np.full(len(prices), side, np.int8),
                    "price": np.asarray(prices, np.float64),
                    "size": np.asarray([size for size, _ in levels], np.float64),
                    "level": np.arange(len(prices), dtype=np.int64),
                },
                index=pd.DatetimeIndex(
                    pd.to_datetime(
                        np.asarray([t for _, t in levels], np.int64), unit="ns", utc=True
                    ),
                    name="ts",
                ),
            )
        )
    return _attrs(pd.concat(parts), state, at_ns)


def l3_only_symbol(store: Store, exchange: str, symbol: str) -> str | None:
    """The stored name of ``symbol`` when the store holds it as ``book_l3`` but not as an L2
    ``book`` (then :func:`hundi.research.book_at` aggregates the L3 book); None otherwise."""
    try:
        stored_symbol(store, exchange, symbol, Channel.BOOK)
        return None
    except NotStored:
        pass
    except Unsupported:
        return None
    try:
        return stored_symbol(store, exchange, symbol, Channel.BOOK_L3)
    except NotStored:
        return None


def l2_book_from_l3(
    store: Store, exchange: str, symbol: str, at_ns: int, depth: int | None
) -> pd.DataFrame:
    """:func:`l2_from_l3` of the stored symbol at ``at_ns``."""
    return l2_from_l3(replay_l3(store, exchange, symbol, at_ns), at_ns, depth)
