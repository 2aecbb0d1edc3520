"""Two collectors on one stream: how their stored records merge into one clean stream.

Several collectors (an A/B pair of one shard, or a restarted one next to a running one) may
write the same exchange stream into one store. Their rows of one exchange record are not
byte-identical: ``recv_ts`` always differs, and where ``ts`` is local (Binance spot
``bookTicker`` and REST book snapshots carry no exchange time, so ``ts == recv_ts``) so does
``ts``. Readers call :func:`deduplicate` on a day's combined rows, so every read returns each
exchange record once (docs/guarantees.md, "Two collectors on one stream"):

* One record is ``(exchange, symbol, *IDENTITY)`` plus ``ts`` (exchange-sent fields, see
  :class:`hundi.records.Record`). Where ``ts`` is local (``ts == recv_ts``) and the identity
  holds a sequence id (bbo and book rows with ``update_id >= 0``), ``ts`` is left out of the
  key and the row's other exchange-sent fields (:func:`content_fields`: prices, sizes, the
  other ids) take its place: two collectors' copies of one message are equal in all of them,
  while two messages that merely share an id (a venue numbering messages per connection, as
  Bitfinex does: two collectors greeted in one second number different messages alike) are
  not, and both stay. No venue is named: the rows tell.
* Of the copies of one record the one received first (smallest ``recv_ts``) wins, with its
  ``ts``; the rows keep their order.
* Copies are only ever another writer's: where a reader tells each row's writer (the embedded
  store's run, column :data:`SOURCE`), the key's rows of one writer all stay and only other
  writers' rows of that key go: the writer holding most of the key's rows, the one that
  received it first among equals (a writer that lost its connection between two rows of a key
  holds fewer of them); for a key standing for a local ts, the first receiver always. One
  collector's rows are never merged with each other, so a key that is not unique on its own
  (Coinbase and Kraken book rows carry no sequence id: a level set and deleted within one
  exchange timestamp; OKX candle updates all stamped with the candle's start) loses nothing.
  Cassandra's chunk tables store each chunk's writer, so their reads pass it too; its row
  tables keep one row per key already, so a row is a source of its own there. Without
  :data:`SOURCE` the key alone decides.
* Books: two collectors' REST snapshots would restart the book in the middle of the other's
  changes. A snapshot whose id lies inside a stretch of changes the merged stream already holds
  continuously (by the rows' own sequence ids: :class:`SequenceIds`) after an earlier
  snapshot that joins the same stretch is redundant and dropped, and a change whose
  ``update_id`` equals a surviving snapshot's is already in it and dropped; so the replay is
  one snapshot followed by one unbroken chain wherever either collector had the data.
* Gaps (:func:`covered_gaps`): a ``gap`` (or ``stopped``) event of one collector is covered
  where the merged data of its stream runs on across it; a hole both have stays a hole. A
  restart window is covered where one writer's unmerged rows lie on both sides of its end
  (:func:`ran_through`), where the store records writers.

Everything is vectorised (Arrow group-by, numpy searches); Python loops only run per symbol
and per gap event, never per row.
"""

from __future__ import annotations

import bisect
import re
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from hundi.book.rule import ContinuityRule
from hundi.records import RECORD_TYPES, SCHEMAS, Channel, EventKind
from hundi.stores.base import single_string

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

# Channels whose ``update_id`` with the row's exchange-sent values names a record even where
# ``ts`` is the local receive time.
_SEQUENCED_LOCAL_TS: Final = frozenset({Channel.BBO, Channel.BOOK})
# A read of a time range of these channels with several writers' rows merges the rows within
# this margin around the range, then cuts the range: two copies of one record whose local
# ``ts`` lie on either side of a bound merge (the earlier one wins, in or out of the range), so
# adjacent ranges never both return the record. Copies received further apart stay apart.
LOCAL_TS_MARGIN_NS: Final = 60 * 1_000_000_000


# Channels whose identity names a stream of updates rather than one message (OKX stamps every
# update of a candle with the candle's start): their rows are named by all their exchange-sent
# values too, so two writers' copies of one update merge and their different updates stay.
_BY_VALUE: Final = frozenset({Channel.CANDLES})


def local_ts_merges(channel: Channel) -> bool:
    """Whether two writers' copies of one record of ``channel`` may differ in ``ts``."""
    return Channel(channel) in _SEQUENCED_LOCAL_TS


# Fields a record's copies share that are neither its identity nor its names and times.
_NOT_CONTENT: Final = frozenset({"exchange", "symbol", "native_symbol", "ts", "recv_ts"})
_BOOK_SEQUENCE: Final = ("snapshot", "first_update_id", "update_id", "prev_update_id")
_MS: Final = 1_000_000
_RANK: Final = "__merge_rank"
_ROW: Final = "__merge_row"
# Optional int column a reader adds: which writer (collector run) stored the row. Dropped from
# what :func:`deduplicate` returns.
SOURCE: Final = "__merge_source"
_KEY_TS: Final = "__merge_ts"
# Shorter than any restart of a collector (its import alone takes ~1.4 s; it then connects and
# subscribes): a restart window this short did not come from a lone collector's downtime.
RESTART_FLOOR_NS: Final = 250 * _MS
RESTART_DETAIL: Final = "restart:"  # how a restart gap's detail starts (hundi.pipeline.resume)
# A restart gap's detail names the silent window (hundi.pipeline.resume).
_WINDOW = re.compile(r"between (\S+) and (\S+?)[;)]?(?:\s|$)")
# How a restart gap starts whose window is the stream's own: its last stored row before the
# restart and the restarted collector's first row (hundi.pipeline.resume.gap_event).
OWN_WINDOW_DETAIL: Final = f"{RESTART_DETAIL} nothing received between "
# How far from a restart's window :func:`ran_through` looks for another collector's rows: a
# compacted hour keeps only the rows each writer won, so a running collector's copies at the
# window's two ends may have gone to the restarted one.
RUN_THROUGH_HORIZON_NS: Final = 10 * 60 * 1_000_000_000


def needed_columns(channel: Channel) -> list[str]:
    """Columns :func:`deduplicate` reads besides the ones asked for (readers add them)."""
    identity = RECORD_TYPES[Channel(channel)].IDENTITY
    extra = _BOOK_SEQUENCE if Channel(channel) is Channel.BOOK else ()
    fields = ["exchange", "symbol", "ts", "recv_ts", *identity, *extra, *content_fields(channel)]
    return list(dict.fromkeys(fields))


def content_fields(channel: Channel) -> list[str]:
    """The exchange-sent fields that, with the identity, name a row whose ``ts`` is local
    (bbo and book), or every row (candles: one identity for all of a candle's updates); none
    for other channels."""
    channel = Channel(channel)
    if channel not in _SEQUENCED_LOCAL_TS and channel not in _BY_VALUE:
        return []
    identity = set(RECORD_TYPES[channel].IDENTITY)
    return [n for n in SCHEMAS[channel].names if n not in _NOT_CONTENT and n not in identity]


Range = tuple[int | None, int | None]


def deduplicate(table: pa.Table, channel: Channel, *, returned: Range | None = None) -> pa.Table:
    """``table`` with each exchange record once (the copy received first), rows in their order.

    A table lacking a key column (a reader asked for a few columns only) is returned as it is:
    readers add :func:`needed_columns` first. ``returned``: the ``ts`` range ``[low, high)``
    the caller cuts from the result (it merged rows around it): a book change is only dropped
    as already in a snapshot that is returned, never for one the cut then removes.
    """
    channel = Channel(channel)
    source: I64 | None = None
    if SOURCE in table.column_names:
        source = _ints(table, SOURCE)
        table = table.drop_columns([SOURCE])
        if len(source) and bool((source == source[0]).all()):
            return table  # one writer: its rows are each a record of their own
    if table.num_rows < 2 or channel not in RECORD_TYPES:
        return table
    names = set(table.column_names)
    if not set(needed_columns(channel)) <= names:
        return table
    table = _first_copies(table, channel, source)
    if channel is Channel.BOOK:
        table = _without_redundant_snapshots(table, returned)
    return table


def _ints(table: pa.Table, name: str) -> I64:
    column = table.column(name)
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)


def _first_copies(table: pa.Table, channel: Channel, source: I64 | None) -> pa.Table:
    identity = list(RECORD_TYPES[channel].IDENTITY)
    if _surely_unique(table, identity[0]):
        return table
    ts = _ints(table, "ts")
    recv = _ints(table, "recv_ts")
    key_ts = ts
    content: dict[str, pa.Array | pa.ChunkedArray] = {}
    if channel in _BY_VALUE:
        content = {name: _plain(table.column(name)) for name in content_fields(channel)}
    elif channel in _SEQUENCED_LOCAL_TS:
        local = (ts == recv) & (_ints(table, "update_id") >= 0)
        if local.any():
            key_ts = np.where(local, np.int64(-1), ts)
            # in place of the local ts: the row's exchange-sent values (null where ts is the
            # exchange's, so those keys are as before)
            mask = pa.array(local)
            for name in content_fields(channel):
                column = table.column(name)
                content[name] = pc.if_else(mask, column, pa.nulls(len(local), column.type))
    # rank = place in receive order; the smallest rank per key is the first copy received
    order = np.argsort(recv, kind="stable")
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    # one exchange and symbol (a symbol's read): not worth hashing with every row
    keys = [name for name in ("exchange", "symbol") if not _one_value(table, name)]
    keys += identity
    keys += [f"__merge_{name}" for name in content]
    keyed = pa.table(
        {
            **{name: _plain(table.column(name)) for name in keys if name in table.column_names},
            **{f"__merge_{name}": values for name, values in content.items()},
            _KEY_TS: key_ts,
            _RANK: rank,
        }
    )
    firsts = keyed.group_by([*keys, _KEY_TS], use_threads=False).aggregate([(_RANK, "min")])
    if firsts.num_rows == table.num_rows:
        return table
    table = table.combine_chunks()  # take over hundreds of chunks (a day of chunks) is slow
    winners = order[np.asarray(firsts.column(f"{_RANK}_min").to_numpy(), np.int64)]
    if source is None:
        return table.take(pa.array(np.sort(winners)))
    # every row of the key from the writer whose copy came first: a writer's own rows that
    # share a key are distinct records. Each key's rows come from the same group-by, so a
    # null key field (a column older files lack) groups like any value: a hash join would
    # match no null key and drop those rows silently.
    keyed = keyed.append_column(_ROW, pa.array(np.arange(len(source), dtype=np.int64)))
    per_key = keyed.group_by([*keys, _KEY_TS], use_threads=False).aggregate([(_ROW, "list")])
    members = per_key.column(f"{_ROW}_list").combine_chunks()
    rows = np.asarray(members.flatten().to_numpy(), np.int64)
    counts = np.asarray(pc.list_value_length(members).to_numpy(), np.int64)
    key_of = np.repeat(np.arange(len(counts), dtype=np.int64), counts)  # per listed row
    # Per key, the writer holding most of its rows wins, the first to receive it among equals:
    # where a key repeats within a writer (book levels without ids set and deleted in one
    # exchange timestamp), a writer that lost its connection between two of them holds fewer
    # and must not win over the one that holds them all. Not for a key that stands for a local
    # ts: its copies may lie on either side of a day or range bound, and a read of one side
    # relies on the earlier copy winning (the earliest receiver alone decides there).
    _, writer = np.unique(source[rows], return_inverse=True)
    writer = writer.reshape(-1)
    writers = int(writer.max()) + 1
    pairs, pair_of, held = np.unique(
        key_of * writers + writer, return_inverse=True, return_counts=True
    )
    pair_of = pair_of.reshape(-1)
    first = np.full(len(pairs), len(order), np.int64)
    np.minimum.at(first, pair_of, rank[rows])
    local_key = np.zeros(len(pairs), np.bool_)
    local_key[pair_of] = key_ts[rows] == -1
    held = np.where(local_key, 0, held)
    pair_key = pairs // writers
    best = np.lexsort((first, -held, pair_key))
    leads = np.r_[True, pair_key[best][1:] != pair_key[best][:-1]]
    won = pairs[best[leads]]  # per key (numbered 0, 1, ... in order): its writer's pair
    mine = pairs[pair_of] == won[key_of]
    return table.take(pa.array(np.sort(rows[mine])))


def _surely_unique(table: pa.Table, first_identity: str) -> bool:
    """One exchange and symbol, and an integer first identity field (trade or update id) that
    strictly grows row by row: no two rows share a key. One collector's rows read in file
    order usually are, so they skip the hash (a few ns a row instead of ~0.4 us)."""
    column = table.column(first_identity)
    if not pa.types.is_integer(column.type) or column.null_count:
        return False
    last: int | None = None  # chunk by chunk (a day of chunks): no concatenated copy
    for chunk in column.chunks:
        if not len(chunk):
            continue
        ids = np.asarray(chunk.to_numpy(), np.int64)
        if (last is not None and ids[0] <= last) or not bool((ids[1:] > ids[:-1]).all()):
            return False
        last = int(ids[-1])
    return _one_value(table, "exchange") and _one_value(table, "symbol")


def _one_value(table: pa.Table, name: str) -> bool:
    """Every row holds the same name (a symbol's read): a min/max pass, not a hash per row."""
    return single_string(table.column(name)) is not None


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(pa.string()) if pa.types.is_dictionary(column.type) else column


class SequenceIds:
    """The continuity rule read from the rows' own sequence ids, for any venue.

    Stores must not import the venues (``hundi.exchanges``), so they cannot ask a venue for its
    rule; this one judges by the ids every sequenced book row carries, as Binance defines them:
    a change continues the one before when its ``prev_update_id`` (where sent, >= 0) equals the
    previous ``update_id``, else when its ``first_update_id`` is the previous one plus one; the
    first change after a snapshot straddles its id. It is conservative: a venue whose ids mean
    something else shows breaks, and a break only keeps a snapshot that could have been
    dropped (never drops one that is needed).
    """

    def after_snapshot(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        ok: Bools = (first_id >= 0) & np.where(
            prev_id >= 0,
            (first_id <= prev_u) & (prev_u <= update_id),
            (first_id <= prev_u + 1) & (prev_u + 1 <= update_id),
        )
        return ok

    def after_diff(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        follows = (first_id >= 0) & (first_id == prev_u + 1)
        ok: Bools = np.where(prev_id >= 0, prev_id == prev_u, follows)
        return ok


SEQUENCE_IDS: Final[ContinuityRule] = SequenceIds()


class Chain:
    """A symbol's diff messages in sequence order and the unbroken stretches they form."""

    def __init__(self, rule: ContinuityRule, first: I64, update: I64, prev: I64, ts: I64):
        order = np.argsort(update, kind="stable")
        update, first, prev, ts = update[order], first[order], prev[order], ts[order]
        starts = np.ones(len(update), np.bool_)
        starts[1:] = update[1:] != update[:-1]
        self.update, self.first, self.prev = update[starts], first[starts], prev[starts]
        self.ts = ts[starts]
        n = len(self.update)
        breaks = np.zeros(n, np.int64)
        if n > 1:
            ok = rule.after_diff(self.first[1:], self.update[1:], self.prev[1:], self.update[:-1])
            breaks[1:] = ~ok
        self.stretch = np.cumsum(breaks)
        self.rule = rule

    def __len__(self) -> int:
        return len(self.update)

    def joins(self, snapshot_ids: I64) -> tuple[I64, Bools]:
        """For each snapshot id: the message that continues it (the first with ``u >= id``, as
        USD-M's ``U <= id <= u``, else the first with ``u > id``, as spot's ``U <= id+1 <= u``)
        and whether there is one."""
        n = len(self.update)
        if n == 0:
            return np.zeros(len(snapshot_ids), np.int64), np.zeros(len(snapshot_ids), np.bool_)
        at_or_after = np.searchsorted(self.update, snapshot_ids, side="left")
        after = np.searchsorted(self.update, snapshot_ids, side="right")
        joined_at = self._continues(snapshot_ids, at_or_after)
        joined_after = self._continues(snapshot_ids, after)
        at = np.where(joined_at, at_or_after, np.minimum(after, n - 1))
        joined: Bools = joined_at | joined_after
        return at, joined

    def _continues(self, snapshot_ids: I64, position: I64) -> Bools:
        valid = position < len(self.update)
        at = np.minimum(position, len(self.update) - 1)
        ok: Bools = valid & self.rule.after_snapshot(
            self.first[at], self.update[at], self.prev[at], snapshot_ids
        )
        return ok

    def across(self, last_before: I64, first_after: I64) -> Bools:
        """Per pair of message positions: both exist and one unbroken stretch holds them."""
        n = len(self.update)
        valid = (last_before >= 0) & (first_after < n) & (last_before <= first_after)
        lo = np.clip(last_before, 0, max(n - 1, 0))
        hi = np.clip(first_after, 0, max(n - 1, 0))
        if n == 0:
            return np.zeros(len(last_before), np.bool_)
        same: Bools = valid & (self.stretch[lo] == self.stretch[hi])
        return same


def _without_redundant_snapshots(table: pa.Table, returned: Range | None = None) -> pa.Table:
    update = _ints(table, "update_id")
    if (update < 0).any():
        return table  # no exchange sequence: snapshots are the only restarts, keep them all
    snapshot = np.asarray(table.column("snapshot").to_numpy(zero_copy_only=False), np.bool_)
    if not snapshot.any():
        return table
    first = _ints(table, "first_update_id")
    prev = _ints(table, "prev_update_id")
    ts = _ints(table, "ts")
    stream = pc.binary_join_element_wise(
        _plain(table.column("exchange")), _plain(table.column("symbol")), "\x00"
    )
    codes = np.asarray(
        pc.dictionary_encode(stream).combine_chunks().indices.to_numpy(zero_copy_only=False)
    )
    keep = np.ones(table.num_rows, np.bool_)
    for code in np.unique(codes).tolist():  # per symbol, not per row
        rows = np.flatnonzero(codes == code)
        diff = rows[~snapshot[rows]]
        snap = rows[snapshot[rows]]
        chain = Chain(SEQUENCE_IDS, first[diff], update[diff], prev[diff], ts[diff])
        if len(chain) == 0 or len(snap) == 0:
            continue
        ids = np.unique(update[snap])
        at, joined = chain.joins(ids)
        stretch = chain.stretch[at]
        # the first joined snapshot of each stretch restarts it; later ones in it are redundant
        leads, first_at = np.unique(stretch[joined], return_index=True)
        leader = np.full(len(ids), -1, np.int64)
        if len(leads):
            place = np.clip(np.searchsorted(leads, stretch), 0, len(leads) - 1)
            found = leads[place] == stretch
            leader[found] = ids[joined][first_at][place[found]]
        redundant = joined & (leader >= 0) & (ids > leader)
        dropped = ids[redundant]
        keep[snap[np.isin(update[snap], dropped)]] = False
        # a change with a surviving snapshot's id that does not continue it is already in it
        # (when that snapshot is returned: cut away, the change is all the range has of it)
        kept = ~redundant & ~(joined & (chain.update[at] == ids))
        if returned is not None:
            low, high = returned
            inside = np.ones(len(snap), np.bool_)
            if low is not None:
                inside &= ts[snap] >= low
            if high is not None:
                inside &= ts[snap] < high
            kept &= np.isin(ids, update[snap[inside]])
        keep[diff[np.isin(update[diff], ids[kept])]] = False
    return table if keep.all() else table.filter(pa.array(keep))


def covered_gaps(
    events: pa.Table,
    channel: Channel,
    data: pa.Table,
    *,
    rule: ContinuityRule | None = None,
    fetched: Bools | None = None,
) -> Bools:
    """Per row of ``events`` (one stream's ``gap``/``stopped`` events of ``channel``): whether
    the merged ``data`` of that stream runs on across it, so the hole is another collector's
    covered one.

    Trades: every id in ``[expected, received)`` is stored. Books: one unbroken chain of diffs
    holds the message before ``expected`` and the one reaching ``received`` (without ids: the
    messages just before and after the event's time). Other channels (no sequence ids): the
    gap's silent window (its detail, "between A and B": a restart's, or a damaged log entry's)
    holds a stored row, or, for a restart, is shorter than :data:`RESTART_FLOOR_NS`: no
    collector restarts that fast, so the row stored at its start came from another collector,
    running then (a pair's window when the restarted one's look-up found the other's latest
    row). The stream's own spacing is no evidence: a lone collector restarted within it still
    missed what was sent meanwhile. An event without a window is never covered.

    ``fetched`` (trades): the gaps whose ids were fetched back over REST, which stay gaps (as
    with one collector) though every id is stored now, unless an earlier gap is the same hole.
    """
    n = events.num_rows
    covered = np.zeros(n, np.bool_)
    if n == 0 or data.num_rows == 0:
        return covered
    channel = Channel(channel)
    expected = _ints(events, "expected")
    received = _ints(events, "received")
    at = _ints(events, "ts")
    if channel is Channel.TRADES:
        ids = np.unique(_ints(data, "trade_id"))
        return trade_holes(ids, expected, received, fetched)[0]
    if channel is Channel.BOOK:
        snapshot = np.asarray(data.column("snapshot").to_numpy(zero_copy_only=False), np.bool_)
        diff = ~snapshot
        chain = Chain(
            rule if rule is not None else SEQUENCE_IDS,
            _ints(data, "first_update_id")[diff],
            _ints(data, "update_id")[diff],
            _ints(data, "prev_update_id")[diff],
            _ints(data, "ts")[diff],
        )
        by_id = (expected >= 0) & (received >= 0)
        before_id = np.searchsorted(chain.update, expected, "left") - 1
        after_id = np.searchsorted(chain.update, received, "left")
        # by time: the messages (in time order of the chain, which is sequence order) around it
        running = np.maximum.accumulate(chain.ts) if len(chain) else chain.ts
        before_ts = np.searchsorted(running, at, "right") - 1
        after_ts = np.searchsorted(running, at, "right")
        return np.where(by_id, chain.across(before_id, after_id), chain.across(before_ts, after_ts))
    stamps = np.sort(_ints(data, "ts"))
    details = events.column("detail").to_pylist()
    for i, detail in enumerate(details):  # per event (a few), not per row
        window = _window(str(detail))
        if window is None:
            continue
        lo, hi = window  # milliseconds, rounded down: the row stored at A is not inside
        inside = np.searchsorted(stamps, hi, "left") - np.searchsorted(stamps, lo + _MS, "left")
        restart = str(detail).startswith(RESTART_DETAIL)
        covered[i] = inside > 0 or (restart and hi - lo < RESTART_FLOOR_NS)
    return covered


def own_restart_window(detail: str) -> tuple[int, int] | None:
    """The (start, end) ns of a restart gap's window between the stream's own rows (its last
    stored row and the restarted collector's first, milliseconds rounded down); None for any
    other gap (a companion's window from another channel, a live gap)."""
    return _window(detail) if detail.startswith(OWN_WINDOW_DETAIL) else None


def ran_through(copies: pa.Table, high: int, interruptions: I64) -> bool:
    """Whether another collector ran through a restart's silent window ending at ``high``
    (from :func:`own_restart_window`): one writer (collector run) holds rows of the stream
    before ``high`` and after ``high``'s millisecond, and no connection of the exchange
    dropped or went stale (``interruptions``, sorted event times) between those two rows.

    ``copies`` (``ts``, ``writer``: :meth:`hundi.stores.base.Store.copies`) are unmerged, so
    a copy the merge dropped for the restarted collector's still counts. The restarted
    collector cannot pass: its earlier run and this one are two writers, this run's rows
    start at ``high``, and the earlier run's end there at the latest (OKX stamps every update
    of a candle with its start: a run killed in the middle of the candle the restarted one
    begins with holds rows stamped ``high``, never after it; found by review). Rows inside the
    window count only as such a writer's: the dead run's own rows stored after the restart
    looked (its outage spool drained late) and a collector that died inside the window are
    no evidence that anyone received what was sent after them. A writer that ran on but lost
    messages meanwhile stored its own gap event for them, or its reconnect is among
    ``interruptions``; one that joined inside the window stored its own restart gap for the
    time before it."""
    if not copies.num_rows:
        return False
    ts = _ints(copies, "ts")
    writer = _ints(copies, "writer")
    before = ts < high
    after = ts >= high + _MS
    for run in np.intersect1d(writer[before], writer[after]).tolist():  # per writer: a few
        last = int(ts[before & (writer == run)].max())
        first = int(ts[after & (writer == run)].min())
        cut = np.searchsorted(interruptions, first, "right") - np.searchsorted(
            interruptions, last, "left"
        )
        if cut == 0:
            return True
    return False


def trade_holes(
    ids: I64, expected: I64, received: I64, fetched: Bools | None = None
) -> tuple[Bools, I64, I64, I64]:
    """Per trade gap (``[expected, received)``, in event order): whether it is covered, the
    id range of the hole it reports (its own range, narrowed below), and how many of its ids
    no one stored.

    Covered: every id is stored (unless ``fetched``: fetched back over REST, which stays a
    gap, as with one collector), or it is the same hole as gaps reported before it: two
    collectors that lost the same ids report gaps of different bounds (the slower one's
    reaches ids the other stored), which were two holes and counted ids the other stored
    (found by review). A gap is that same hole when every id of it that no one stored lies
    in the union of the holes reported before; one collector's own gaps never overlap (its
    ids only advance), so overlapping gaps are two collectors', and the ids lost by both are
    their intersection: a reported hole is narrowed to it by each such gap, for counting the
    ids fetched back (so a backfill of one member does not count ids the other stored live;
    ids no one stored are counted over the gap's own range). Counting uses binary searches on
    ``ids`` (sorted, unique) and the reported holes' union kept as sorted disjoint ranges."""
    counted = (expected >= 0) & (received > expected)
    stored_in = np.searchsorted(ids, received) - np.searchsorted(ids, expected)
    count = np.where(counted, (received - expected) - stored_in, 0)
    covered: Bools = counted & (count == 0)
    if fetched is not None:
        covered &= ~fetched
    low, high = expected.copy(), received.copy()

    def absent(a: int, b: int) -> int:
        if b <= a:
            return 0
        return (b - a) - int(np.searchsorted(ids, b) - np.searchsorted(ids, a))

    starts: list[int] = []  # the union of reported holes: disjoint ranges, sorted
    ends: list[int] = []
    holes: list[list[int]] = []  # the events whose holes each range holds
    for i in np.flatnonzero(counted).tolist():
        lo, hi = int(expected[i]), int(received[i])
        j = k = bisect.bisect_right(ends, lo)
        while k < len(starts) and starts[k] < hi:
            k += 1
        if covered[i] or j == k:
            folded = bool(covered[i] and j < k)
        else:
            inside = sum(absent(max(lo, starts[x]), min(hi, ends[x])) for x in range(j, k))
            folded = inside == int(count[i])
            covered[i] = folded
        if folded:  # narrow the holes it overlaps to what both lost
            for x in range(j, k):
                for h in holes[x]:
                    if low[h] < hi and lo < high[h]:
                        low[h], high[h] = max(low[h], lo), min(high[h], hi)
            continue
        if covered[i]:
            continue
        merged = [h for x in range(j, k) for h in holes[x]] + [i]
        span = (min([lo, *starts[j:k]]), max([hi, *ends[j:k]]))
        starts[j:k], ends[j:k], holes[j:k] = [span[0]], [span[1]], [merged]
    return covered, low, high, count


def window_time(ns: int) -> str:
    """A gap detail's time, as :func:`_window` parses it back (UTC, milliseconds)."""
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")


def _window(detail: str) -> tuple[int, int] | None:
    """The (start, end) ns of a restart gap's silent window, from its detail."""
    found = _WINDOW.search(detail)
    if found is None:
        return None
    try:
        start = np.datetime64(found.group(1).rstrip("Z").replace("+00:00", ""), "ns")
        end = np.datetime64(found.group(2).rstrip("Z").replace("+00:00", ""), "ns")
    except ValueError:
        return None
    return int(start.astype(np.int64)), int(end.astype(np.int64))


GAP_KINDS: Final = (EventKind.GAP.value, EventKind.STOPPED.value)

__all__ = [
    "GAP_KINDS",
    "LOCAL_TS_MARGIN_NS",
    "RUN_THROUGH_HORIZON_NS",
    "SEQUENCE_IDS",
    "SOURCE",
    "Chain",
    "covered_gaps",
    "deduplicate",
    "local_ts_merges",
    "needed_columns",
    "own_restart_window",
    "ran_through",
    "trade_holes",
]
