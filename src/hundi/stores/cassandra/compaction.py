"""Compaction of chunk tables: one closed stream-hour's many small chunks → a few big ones.

At live rates a collector flushes every ~0.5 s, so a stream-hour holds thousands of chunks of
~20 records, and a read decodes as many Arrow streams (~25x slower per record than a few big
chunks). :func:`compact_partition` rewrites each *closed* hour of one (channel, exchange,
symbol, day) partition: an hour whose end is older than now minus a clock margin
(``CASSANDRA_COMPACT_CLOCK_MARGIN``, default 60 s), so a live writer never races it.

For one hour it (1) reads every chunk, checks it (a :class:`DamagedChunk` leaves the hour as it
is and is reported), (2) merges the records as a read does, (3) writes them as chunks of at
most ``CASSANDRA_CHUNK_ROWS`` records, one set per surviving writer (never cutting a run of
equal ``ts``: :func:`cuts`), and only then (4) deletes the old chunks with one range tombstone
over the hour. A writer whose copies lost keeps its first row of every minute
(:func:`_merged_keeping_presence`), so coverage still tells which runs were receiving.

Writers. A compacted chunk's ``writer`` is :func:`compacted_writer` of its rows' writer: a
negative number derived from it (a collector's writer id is never negative), and the same
again for a compacted one. A different source than the original on purpose: after a crash
between (3) and (4) the old chunks and their compacted copies are both stored, and the read's
merge (:func:`hundi.stores.merge.deduplicate`) keeps one writer's rows per key, so each record
is read once; a chunk the writer re-sends after its hour was compacted (the spool draining
late) is likewise a copy, not a second record. What a writer adds to an hour *after* it was
compacted, with a key it already stored there, is another writer's copy too: the margin is
there so that never happens for a live writer.

What is merged. For channels whose record key holds the exchange's ``ts`` every key lies in one
hour, so merging an hour alone gives what a read of any range gives: of each key's rows only
one writer's stay (all of them: one writer's rows sharing a key are distinct records; the
writer holding most of them, the first receiver among equals). ``bbo`` and ``book`` keys may
hold a local receive time, whose two copies can lie on either side of an hour, and a book
snapshot is judged against the whole chain: for those the hour's chunks are only regrouped per
writer (no record dropped: only a writer's exact copies of its own rows, see
:func:`_without_copies`; the read merges as before), and chunks written before the ``writer``
column existed are left as they are.

Deleting. The tombstone is ``DELETE ... USING TIMESTAMP T WHERE <partition> AND first_ts >=
hour AND first_ts < hour + 1 h`` with T the newest write time (``WRITETIME``) of the
chunks read, and the compacted chunks are written at a later timestamp, so they survive it by
Cassandra's last-write-wins. Clock assumption: a chunk that arrives for the hour between the
read and the delete was stamped by its writer's clock later than T (the newest chunk already
there). Right before deleting, the hour is read again; any chunk not read before and stamped
at or before T makes the compactor delete the old chunks by their exact keys instead.
The compacted chunks keep the longest remaining TTL of the chunks they replace.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from cassandra.query import BatchStatement, BatchType, SimpleStatement

from hundi.records import RECORD_TYPES, SCHEMAS, Channel
from hundi.settings import ConfigError, env_with_files
from hundi.stores.base import StoreError
from hundi.stores.cassandra.chunks import (
    LEGACY_COMPACTED,
    MIGRATED,
    Chunk,
    DamagedChunk,
    assemble,
    chunk_table_spec,
    compacted_writer,
    encode_chunks,
    is_migrated,
    migration_writer,
    process_writer,
    read_chunk,
)
from hundi.stores.cassandra.schema import NS_PER_DAY, NS_PER_HOUR, quote
from hundi.stores.cassandra.settings import ENV_FILE
from hundi.stores.cassandra.store import CassandraStore
from hundi.stores.merge import SOURCE, deduplicate, local_ts_merges

CLOCK_MARGIN_ENV = "CASSANDRA_COMPACT_CLOCK_MARGIN"
DEFAULT_CLOCK_MARGIN_S = 60.0
_ORIGIN = "__compact_origin"
_ROW = "__compact_row"
_MINUTE_NS = 60 * 1_000_000_000
_FETCH = 32  # chunk rows per page, as the store reads them
_KEYS_FETCH = 1_000_000  # chunk keys per page: an hour's in one
_DELETE_BATCH = 200  # exact-key deletes per UNLOGGED batch (one partition: one mutation)


def clock_margin_s() -> float:
    """``CASSANDRA_COMPACT_CLOCK_MARGIN`` (seconds, >= 0) from the environment or
    ``.cassandra.env``, as the store's settings are read; else 60."""
    try:
        env = env_with_files(ENV_FILE)
    except ConfigError as exc:
        raise StoreError(str(exc)) from None
    text = env.get(CLOCK_MARGIN_ENV, "").strip()
    if not text:
        return DEFAULT_CLOCK_MARGIN_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < math.inf:
        raise StoreError(f"{CLOCK_MARGIN_ENV}={text!r}: expected seconds >= 0")
    return value


def regroups_only(channel: Channel) -> bool:
    """Whether the channel's merge is not hour-local (see the module docstring)."""
    return local_ts_merges(channel) or Channel(channel) is Channel.BOOK


def closed_hours(day: int, now_ns: int, margin_s: float) -> list[int]:
    """The hours (0-23) of ``day`` that ended before ``now - margin``."""
    start = day * NS_PER_DAY
    limit = now_ns - int(margin_s * 1e9)
    return [h for h in range(24) if start + (h + 1) * NS_PER_HOUR <= limit]


@dataclass(frozen=True, slots=True)
class OldChunk:
    first_ts: int
    chunk_id: bytes
    writer: int | None
    records: int
    written_us: int  # WRITETIME(data)


@dataclass(slots=True)
class HourPlan:
    """What compacting one hour does: the chunks it replaces and the ones it writes."""

    channel: Channel
    exchange: str
    symbol: str
    day: int
    hour: int
    old: list[OldChunk]
    new: list[tuple[Chunk, int]] = field(default_factory=list)  # chunk, writer
    ttl_s: int = 0
    newest_us: int = 0  # the tombstone's timestamp: the newest old chunk's write time
    spared: set[tuple[int, bytes]] = field(default_factory=set)  # chunks left as they are
    settled: bool = False  # nothing to merge (one chunk, or as a compaction left it)
    changed: bool = False  # the hour changed while it was read: left for the next run

    @property
    def start(self) -> int:
        return self.day * NS_PER_DAY + self.hour * NS_PER_HOUR

    @property
    def noop(self) -> bool:
        """Writing would store exactly what is there."""
        if self.settled:
            return True
        have = {(c.first_ts, c.chunk_id, c.writer) for c in self.old}
        return have == {(c.first_ts, c.chunk_id, w) for c, w in self.new}

    @property
    def records(self) -> int:
        return sum(c.records for c, _ in self.new)


@dataclass(slots=True)
class PartitionReport:
    """One partition's outcome, for the command's line."""

    channel: Channel
    exchange: str
    symbol: str
    day: int
    chunks_before: int = 0
    chunks_after: int = 0
    records: int = 0
    hours: int = 0  # hours rewritten
    changed: int = 0  # hours that changed while read, left for the next run
    seconds: float = 0.0
    damaged: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.damaged)


def _select_cql(store: CassandraStore, channel: Channel, *, data: bool) -> str:
    spec = chunk_table_spec(channel)
    what = "first_ts, chunk_id, last_ts, records, writer, WRITETIME(records), TTL(records)"
    return (
        f"SELECT {what}{', data' if data else ''} "
        f"FROM {quote(store.settings.keyspace)}.{quote(spec.name)} "
        "WHERE exchange = %s AND symbol = %s AND ts_day = %s AND first_ts >= %s AND first_ts < %s"
    )


def _hour_rows(
    store: CassandraStore, channel: Channel, key: tuple[str, str, int], start: int, *, data: bool
) -> list[tuple[Any, ...]]:
    """The hour's chunk rows, a few per page (a chunk's data may be megabytes)."""
    statement = SimpleStatement(_select_cql(store, channel, data=data), fetch_size=_FETCH)
    return list(store._session.execute(statement, (*key, start, start + NS_PER_HOUR)))


def _listed(
    store: CassandraStore, channel: Channel, key: tuple[str, str, int], start: int
) -> set[tuple[int, bytes]]:
    """The hour's chunk keys now, in one page."""
    statement = SimpleStatement(_keys_cql(store, channel), fetch_size=_KEYS_FETCH)
    return {
        (r[0], r[1]) for r in store._session.execute(statement, (*key, start, start + NS_PER_HOUR))
    }


def _keys_cql(store: CassandraStore, channel: Channel) -> str:
    spec = chunk_table_spec(channel)
    return (
        "SELECT first_ts, chunk_id, WRITETIME(records), writer "
        f"FROM {quote(store.settings.keyspace)}.{quote(spec.name)} "
        "WHERE exchange = %s AND symbol = %s AND ts_day = %s AND first_ts >= %s AND first_ts < %s"
    )


def plan_hour(
    store: CassandraStore, channel: Channel, exchange: str, symbol: str, day: int, hour: int
) -> HourPlan:
    """Read and check the hour's chunks and merge them into the chunks that replace them.

    Raises :class:`DamagedChunk` for a chunk that fails its checksum (nothing is planned)."""
    channel = Channel(channel)
    start = day * NS_PER_DAY + hour * NS_PER_HOUR
    key = (exchange, symbol, day)
    regroup = regroups_only(channel)
    plan = _planned(channel, key, hour, _hour_rows(store, channel, key, start, data=False))
    if len(plan.old) < 2 or _already_compact(plan.old, store.settings.chunk_rows):
        plan.settled = True  # nothing decoded: a second run over a compacted day costs little
        return plan
    rows = _hour_rows(store, channel, key, start, data=True)
    plan = _planned(channel, key, hour, rows)
    if len(plan.old) < 2:  # gone meanwhile (another compactor)
        plan.settled = True
        return plan
    if _listed(store, channel, key, start) != {(r[0], r[1]) for r in rows}:
        # Paging is no snapshot: a compactor (or a late chunk) that changed the hour while it
        # was read in pages may have left this read a part of it, and chunks planned from a
        # part, stored under the same compacted writer as the other's, would be read twice
        # for good (found by review). The hour is left for the next run.
        plan.settled = plan.changed = True
        return plan
    rows = [r for r in rows if (r[0], r[1]) not in plan.spared]
    old = plan.old
    stored: list[pa.Table] = []
    codes: dict[object, int] = {}
    sources: list[int] = []
    writers: dict[int, int] = {}  # source code -> writer of its compacted chunks
    raw: dict[int, int | None] = {}  # source code -> its chunks' writer
    for first_ts, chunk_id, _, records, writer, _, _, data in rows:
        stored.append(
            read_chunk(
                channel, exchange, symbol, first_ts=first_ts, chunk_id=chunk_id,
                records=records, data=data,
            )
        )  # fmt: skip
        source = writer if writer is not None else (symbol, chunk_id)
        code = codes.setdefault(source, len(codes))
        writers[code] = compacted_writer(writer)
        raw[code] = writer
        sources.extend([code] * records)
    table = assemble(channel, exchange, symbol, stored)
    origin = pa.array(np.asarray(sources, np.int64))
    if not regroup:
        # A writer's rows and their compacted copies are one writer's (exact copies dropped
        # first): as two sources, the merge's "first receiving writer" would break their tie on
        # recv_ts by chunk order, and for a key one writer repeats (candle updates) a partial
        # re-send could win over the whole set. Legacy chunks stay a source each.
        table = _without_copies(table.append_column(_ORIGIN, origin), _with_writer(writers))
        kept = np.asarray(table.column(_ORIGIN).to_numpy(), np.int64)
        merged: dict[object, int] = {}
        as_one = {
            code: merged.setdefault((code,) if writer == LEGACY_COMPACTED else writer, len(merged))
            for code, writer in writers.items()
        }
        source = np.fromiter(map(as_one.__getitem__, kept.tolist()), np.int64, count=len(kept))
        # presence only of collector runs: a legacy or migrated chunk's rows tell no run, and
        # legacy chunks all compact into one writer, which a read never merges within
        runs = [code for code, writer in raw.items() if process_writer(writer) is not None]
        table = _merged_keeping_presence(table, source, channel, np.isin(kept, runs))
    else:
        table = _without_copies(table.append_column(_ORIGIN, origin), writers)
    table = _in_read_order(table, channel)
    origins = np.asarray(table.column(_ORIGIN).to_numpy(), np.int64)
    table = table.drop_columns([_ORIGIN]).cast(SCHEMAS[channel])
    by_writer: dict[int, list[int]] = {}
    for code, writer in writers.items():
        by_writer.setdefault(writer, []).append(code)
    settings = store.settings
    for writer, members in sorted(by_writer.items()):
        part = table.filter(pa.array(np.isin(origins, members)))
        ts = np.asarray(part.column("ts").cast(pa.int64()).to_numpy(), np.int64)
        for first, stop in cuts(ts, settings.chunk_rows):
            for chunk in encode_chunks(
                channel, part.slice(first, stop - first), codec=settings.chunk_codec,
                max_rows=stop - first,
            ):  # fmt: skip
                plan.new.append((chunk, writer))
    plan.ttl_s = max((int(r[6] or 0) for r in rows), default=0)
    if any(int(r[6] or 0) == 0 for r in rows):
        plan.ttl_s = 0  # a chunk without expiry: its records must not get one
    plan.newest_us = max(c.written_us for c in old)
    return plan


def _merged_keeping_presence(
    table: pa.Table,
    source: npt.NDArray[np.int64],
    channel: Channel,
    eligible: npt.NDArray[np.bool_],
) -> pa.Table:
    """The hour merged (each record once, as a read merges it), plus each writer's first row
    of every minute it held rows in, where another writer's copy won: a compacted hour still
    tells which collector runs were receiving around a moment, which coverage asks to judge
    a restart beside a running collector (:func:`hundi.stores.merge.ran_through`). Those few
    rows (at most 60 a writer and hour, and only where two writers overlap) are copies that
    every read merges away, as it did before compaction. Only ``eligible`` rows (of a
    collector run's chunks) are kept so. Compacting again keeps the same
    rows: a writer's first row of a minute is among its rows kept."""
    rows = np.arange(table.num_rows, dtype=np.int64)
    merged = deduplicate(
        table.append_column(_ROW, pa.array(rows)).append_column(SOURCE, pa.array(source)),
        channel,
    )
    won = np.asarray(merged.column(_ROW).to_numpy(), np.int64)
    if len(won) == table.num_rows:
        return table
    minute = np.asarray(table.column("ts").cast(pa.int64()).to_numpy(), np.int64) // _MINUTE_NS
    order = np.lexsort((rows, minute, source))  # per writer and minute, in row order
    firsts = order[np.r_[True, (np.diff(source[order]) != 0) | (np.diff(minute[order]) != 0)]]
    keep = np.zeros(table.num_rows, np.bool_)
    keep[won] = True
    keep[firsts[eligible[firsts]]] = True
    return table.filter(pa.array(keep))


def _without_copies(table: pa.Table, writers: dict[int, int]) -> pa.Table:
    """``table`` (with its rows' sources in column ``_ORIGIN``) without :func:`copies`."""
    origins = _ints(table.column(_ORIGIN))
    dropped = copies(table.drop_columns([_ORIGIN]), origins, writers)
    if not len(dropped):
        return table
    keep = np.ones(table.num_rows, np.bool_)
    keep[dropped] = False
    return table.filter(pa.array(keep))


def copies(
    table: pa.Table, origins: npt.NDArray[np.int64], writers: dict[int, int]
) -> npt.NDArray[np.int64]:
    """The rows (ascending) that are copies: of the sources (``origins``: each row's source
    code) that go to one compacted writer (``writers``: source code -> compacted writer), each
    distinct row stays as often as the source holding it most often.

    A writer's rows and their compacted copies (a compactor that died between writing and
    deleting; a chunk the writer re-sent after the hour was compacted) land in one compacted
    writer, whose rows a read keeps all of: for bbo and book a second pass once doubled them.
    A copy is the same row in every column (recv_ts too), so equal rows of two such sources
    are one record; equal rows within one source stay (one writer's distinct records, e.g.
    ``update_id`` -1). Only the rows of such sources are compared.

    In row order, a row is kept when its rank among its source's equal rows exceeds the
    highest rank any source of its compacted writer reached for that row before it: the
    count kept is then the largest source's. Vectorised (rows numbered by Arrow's hash of
    their exact values, two sorts, a segmented running maximum): measured on a 400k-row book
    hour and its compacted copy, 0.3-0.9 s and ~210 MB where a Counter of Python tuples took
    3.1 s and ~660 MB."""
    groups: dict[int, list[int]] = {}
    for code, writer in writers.items():
        groups.setdefault(writer, []).append(code)
    shared = [code for codes in groups.values() if len(codes) > 1 for code in codes]
    none = np.zeros(0, np.int64)
    if not shared:
        return none
    rows = np.flatnonzero(np.isin(origins, shared))
    if len(rows) < 2:
        return none
    compared = table if len(rows) == table.num_rows else table.take(pa.array(rows))
    value = _row_ids(compared)
    source_of = origins[rows]
    lookup = np.zeros(int(source_of.max()) + 1, np.int64)
    for source, writer in writers.items():
        if source < len(lookup):
            lookup[source] = writer
    target = lookup[source_of]
    position = np.arange(len(rows), dtype=np.int64)
    rank = np.empty(len(rows), np.int64)
    by_source = np.lexsort((position, value, source_of))
    rank[by_source] = _ranks_in_runs(source_of[by_source], value[by_source])
    by_target = np.lexsort((position, value, target))
    sorted_rank = rank[by_target]
    run = _run_ids(target[by_target], value[by_target])
    offset = run * (len(rows) + 1)
    reached = np.maximum.accumulate(sorted_rank + offset) - offset
    before = np.zeros(len(rows), np.int64)
    before[1:] = reached[:-1]
    before[np.r_[True, run[1:] != run[:-1]]] = 0  # a run's first row: nothing reached yet
    return np.sort(rows[by_target[sorted_rank <= before]])


def _row_ids(table: pa.Table) -> npt.NDArray[np.int64]:
    """Each row's number among ``table``'s distinct rows (equal numbers exactly for equal
    rows): the rows' exact values side by side as one fixed-size binary value each, numbered
    by Arrow's hash kernel (``np.unique(axis=0)`` sorted them, slower than the Python loop)."""
    width = sum(2 if column.null_count else 1 for column in table.columns)
    rows = np.empty((table.num_rows, width), np.int64)  # filled a column at a time
    at = 0
    for column in table.columns:
        for values in _exact_values(column):
            rows[:, at] = values
            at += 1
    width *= rows.itemsize
    packed = pa.Array.from_buffers(pa.binary(width), len(rows), [None, pa.py_buffer(rows)])
    ids = pc.dictionary_encode(packed).indices
    return np.asarray(ids.to_numpy(zero_copy_only=False), np.int64)


def _run_ids(*keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Sorted ``keys``' rows numbered by run of equal keys (0, 0, 1, ...)."""
    change = np.zeros(len(keys[0]), np.bool_)
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    return np.cumsum(change, dtype=np.int64)


def _ranks_in_runs(*keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """1, 2, ... within each run of equal sorted ``keys``."""
    run = _run_ids(*keys)
    starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
    return np.arange(len(run), dtype=np.int64) - starts[run] + 1


def _ints(column: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.int64]:
    return np.asarray(column.to_numpy(), np.int64)


def _with_writer(writers: dict[int, int]) -> dict[int, int]:
    """The sources that have a writer (legacy chunks are a source each, never merged)."""
    return {code: writer for code, writer in writers.items() if writer != LEGACY_COMPACTED}


def _exact_values(column: pa.ChunkedArray) -> list[npt.NDArray[np.int64]]:
    """A column as int64 arrays equal row for row exactly when the stored values are: floats
    by their bits (NaN equals NaN, -0.0 equals 0.0, as Python compares them), strings by
    their index in one dictionary of the column's values, timestamps as ns, and a null as
    its own flag."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(array.type):
        array = array.cast(array.type.value_type)
    flags = []
    if array.null_count:
        flags = [np.asarray(array.is_null().to_numpy(zero_copy_only=False), np.int64)]
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        indices = pc.dictionary_encode(array).indices.fill_null(-1)
        return [*flags, np.asarray(indices.to_numpy(zero_copy_only=False), np.int64)]
    if pa.types.is_timestamp(array.type) or pa.types.is_boolean(array.type):
        array = array.cast(pa.int64())
    if pa.types.is_floating(array.type):
        floats = np.asarray(array.fill_null(0.0).to_numpy(zero_copy_only=False), np.float64)
        floats = np.where(np.isnan(floats), np.nan, floats + 0.0)  # one NaN, no -0.0
        return [*flags, floats.view(np.int64)]
    values = array.fill_null(0) if array.null_count else array
    return [*flags, np.asarray(values.to_numpy(zero_copy_only=False), np.int64)]


def cuts(ts: npt.NDArray[np.int64], max_rows: int) -> list[tuple[int, int]]:
    """(start, stop) slices of rows sorted by ``ts``, each at most ``max_rows`` long and never
    cutting a run of equal ``ts`` (unless the run alone is longer): a record key holds ``ts``,
    so no key's rows are split over two chunks, and a compactor that stops after writing some
    of an hour's chunks has written each key's rows whole or not at all (a key's rows of one
    writer are all kept on read, so a partial set winning over the old chunks would lose some).
    """
    slices, first, count = [], 0, len(ts)
    while first < count:
        stop = min(first + max_rows, count)
        if stop < count and ts[stop] == ts[stop - 1]:
            back = int(np.searchsorted(ts, ts[stop], "left"))
            stop = back if back > first else int(np.searchsorted(ts, ts[stop], "right"))
        slices.append((first, stop))
        first = stop
    return slices


def _planned(
    channel: Channel, key: tuple[str, str, int], hour: int, rows: list[tuple[Any, ...]]
) -> HourPlan:
    """The plan's old chunks from the hour's rows; for :func:`regroups_only` channels, the
    chunks without a writer are spared (a writer of their own each: merging them with others
    would change what a read merges)."""
    spared = set()
    if regroups_only(channel):
        spared = {(r[0], r[1]) for r in rows if r[4] is None}
    old = [
        OldChunk(r[0], r[1], r[4], r[3], int(r[5] or 0)) for r in rows if (r[0], r[1]) not in spared
    ]
    return HourPlan(channel, *key, hour, old, spared=spared)


def _already_compact(old: list[OldChunk], chunk_rows: int) -> bool:
    """Every chunk is a compacted writer's and at most one per writer is not full: what a
    compaction leaves (and no writer added since), so nothing needs decoding. Two migration
    runs' chunks are not: a run stopped before deleting the rows and the next one both hold
    those records (read once; merging keeps one copy)."""
    if len({c.writer for c in old if is_migrated(c.writer)}) > 1:
        return False
    partial: dict[int, int] = {}
    for chunk in old:
        if chunk.writer is None or chunk.writer >= 0:
            return False
        if chunk.records < chunk_rows:
            partial[chunk.writer] = partial.get(chunk.writer, 0) + 1
    return all(count <= 1 for count in partial.values())


def _in_read_order(table: pa.Table, channel: Channel) -> pa.Table:
    """Sorted stably by (ts, recv_ts, the integer identity fields), as reads sort."""
    tie = [
        name
        for name in RECORD_TYPES[channel].IDENTITY
        if name in table.column_names and pa.types.is_integer(table.schema.field(name).type)
    ]
    keys = [(name, "ascending") for name in ("ts", "recv_ts", *tie)]
    table = table.combine_chunks()
    return table.take(pc.sort_indices(table, sort_keys=keys))


def write_compacted(store: CassandraStore, plan: HourPlan) -> int:
    """Step (3): the new chunks, stamped after every chunk they replace. Returns that stamp."""
    stamp = max(plan.newest_us + 1, time.time_ns() // 1_000)
    insert_chunks(store, plan.channel, plan.new, plan.ttl_s, stamp)
    return stamp


def insert_chunks(
    store: CassandraStore,
    channel: Channel,
    chunks: list[tuple[Chunk, int]],
    ttl_s: int,
    stamp_us: int,
) -> None:
    """Write (chunk, writer) pairs with one TTL (0: none) and write time (µs)."""
    spec = chunk_table_spec(channel)
    names = ", ".join(quote(n) for n in ("exchange", "symbol", "ts_day", "first_ts", "chunk_id",
                                         "last_ts", "first_id", "last_id", "records", "data",
                                         "writer"))  # fmt: skip
    insert = store._session.prepare(
        f"INSERT INTO {quote(store.settings.keyspace)}.{quote(spec.name)} ({names}) "
        f"VALUES ({', '.join('?' * 11)}) USING TTL ? AND TIMESTAMP ?"
    )
    for chunk, writer in chunks:
        store._session.execute(insert, (*chunk.values(writer), ttl_s, stamp_us))


def delete_replaced(store: CassandraStore, plan: HourPlan) -> None:
    """Step (4): the old chunks go (see the module docstring: one range tombstone stamped at
    the newest of them, or exact keys when a chunk arrived meanwhile stamped no later)."""
    spec = chunk_table_spec(plan.channel)
    table = f"{quote(store.settings.keyspace)}.{quote(spec.name)}"
    key = (plan.exchange, plan.symbol, plan.day)
    known = {(c.first_ts, c.chunk_id) for c in plan.old}
    known |= {(c.first_ts, c.chunk_id) for c, _ in plan.new}
    now = store._session.execute(
        _keys_cql(store, plan.channel), (*key, plan.start, plan.start + NS_PER_HOUR)
    )
    late = [r for r in now if (r[0], r[1]) not in known and int(r[2] or 0) <= plan.newest_us]
    if plan.spared or late:
        _delete_exact(store, table, plan)
        return
    store._session.execute(
        f"DELETE FROM {table} USING TIMESTAMP %s WHERE exchange = %s AND symbol = %s "
        "AND ts_day = %s AND first_ts >= %s AND first_ts < %s",
        (plan.newest_us, *key, plan.start, plan.start + NS_PER_HOUR),
    )


def _delete_exact(store: CassandraStore, table: str, plan: HourPlan) -> None:
    keep = {(c.first_ts, c.chunk_id) for c, _ in plan.new}
    gone = [c for c in plan.old if (c.first_ts, c.chunk_id) not in keep]
    delete = store._session.prepare(
        f"DELETE FROM {table} USING TIMESTAMP ? WHERE exchange = ? AND symbol = ? "
        "AND ts_day = ? AND first_ts = ? AND chunk_id = ?"
    )
    for first in range(0, len(gone), _DELETE_BATCH):
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for chunk in gone[first : first + _DELETE_BATCH]:
            batch.add(
                delete,
                (plan.newest_us, plan.exchange, plan.symbol, plan.day, chunk.first_ts,
                 chunk.chunk_id),
            )  # fmt: skip
        store._session.execute(batch)


def compact_hour(store: CassandraStore, plan: HourPlan) -> bool:
    """Steps (3) and (4) of a planned hour; False when there was nothing to do, or the hour
    changed since it was read (``plan.changed``: left for the next run)."""
    if plan.noop:
        return False
    read = {(c.first_ts, c.chunk_id) for c in plan.old} | plan.spared
    if _listed(store, plan.channel, (plan.exchange, plan.symbol, plan.day), plan.start) != read:
        plan.changed = True  # another compactor, or a late chunk, since it was planned
        return False
    write_compacted(store, plan)
    delete_replaced(store, plan)
    return True


def compact_partition(
    store: CassandraStore,
    channel: Channel,
    exchange: str,
    symbol: str,
    day: int,
    *,
    now_ns: int | None = None,
    margin_s: float | None = None,
) -> PartitionReport:
    """Compact every closed hour of one partition (see the module docstring). An hour with a
    damaged chunk is left as it is and named in the report's ``damaged``."""
    began = time.perf_counter()
    channel = Channel(channel)
    now_ns = time.time_ns() if now_ns is None else now_ns
    margin_s = clock_margin_s() if margin_s is None else margin_s
    report = PartitionReport(channel, exchange, symbol, day)
    for hour in closed_hours(day, now_ns, margin_s):
        try:
            plan = plan_hour(store, channel, exchange, symbol, day, hour)
        except DamagedChunk as exc:
            report.damaged.append(f"hour {hour:02d} left as it is: {exc}")
            before = _count(store, channel, exchange, symbol, day, hour)
            report.chunks_before += before
            report.chunks_after += before
            continue
        kept = len(plan.spared)
        report.chunks_before += len(plan.old) + kept
        if plan.noop or not compact_hour(store, plan):
            report.chunks_after += len(plan.old) + kept
            report.records += sum(c.records for c in plan.old)
            report.changed += plan.changed
            continue
        report.hours += 1
        report.chunks_after += len(plan.new) + kept
        report.records += plan.records
    report.seconds = time.perf_counter() - began
    return report


def _count(
    store: CassandraStore, channel: Channel, exchange: str, symbol: str, day: int, hour: int
) -> int:
    start = day * NS_PER_DAY + hour * NS_PER_HOUR
    rows = store._session.execute(
        _keys_cql(store, channel), (exchange, symbol, day, start, start + NS_PER_HOUR)
    )
    return sum(1 for _ in rows)


def indexed_partitions(
    store: CassandraStore,
    wanted: Callable[[Channel], bool],
    *,
    exchange: str | None = None,
    channel: Channel | None = None,
    symbol: str | None = None,
    first_day: int | None = None,
    last_day: int | None = None,
) -> list[tuple[Channel, str, str, int]]:
    """The (channel, exchange, symbol, day) partitions the partition index lists for the
    channels ``wanted`` accepts, matching the filters (days inclusive), in order."""
    found = []
    for found_exchange, name in store._index_keys():
        if exchange is not None and found_exchange != exchange:
            continue
        try:
            found_channel = Channel(name)
        except ValueError:
            continue
        if channel is not None and found_channel is not Channel(channel):
            continue
        if not wanted(found_channel):
            continue
        for found_symbol, day in store._index(found_exchange, found_channel, symbol):
            if (first_day is None or day >= first_day) and (last_day is None or day <= last_day):
                found.append((found_channel, found_exchange, found_symbol, day))
    return sorted(found, key=lambda p: (p[0].value, p[1], p[2], p[3]))


def chunked_partitions(
    store: CassandraStore,
    *,
    exchange: str | None = None,
    channel: Channel | None = None,
    symbol: str | None = None,
    first_day: int | None = None,
    last_day: int | None = None,
) -> Iterable[tuple[Channel, str, str, int]]:
    """The partitions of chunk tables the partition index lists (see
    :func:`indexed_partitions`)."""
    return indexed_partitions(
        store, lambda c: store._chunk_table(c) is not None, exchange=exchange, channel=channel,
        symbol=symbol, first_day=first_day, last_day=last_day,
    )  # fmt: skip


__all__ = [
    "CLOCK_MARGIN_ENV",
    "MIGRATED",
    "HourPlan",
    "PartitionReport",
    "chunked_partitions",
    "clock_margin_s",
    "closed_hours",
    "compact_hour",
    "compact_partition",
    "compacted_writer",
    "copies",
    "cuts",
    "delete_replaced",
    "indexed_partitions",
    "insert_chunks",
    "is_migrated",
    "migration_writer",
    "plan_hour",
    "write_compacted",
]
