"""Moving closed days of row-per-record tables into the chunked layout (``hundi store migrate``).

Reads merge both layouts, so a store whose collectors switched to chunks keeps every old day
readable in rows; migrating moves them into chunks (~3x smaller on disk, read an order of
magnitude faster) and deletes the rows. For one closed (channel, exchange, symbol, day):

1. Hour by hour: the rows are read (with the write time and TTL of one regular column) and
   written as chunks of this run's writer (:func:`migration_writer`: one per run), at most
   ``CASSANDRA_CHUNK_ROWS`` records each and never cutting a run of equal ``ts``
   (:func:`~.compaction.cuts`), with the hour's longest remaining TTL (none when any row has
   none).
2. Every chunk written is read back by its key, and their record counts must add up.
3. The day's row keys are read again with their write times: a row the first read did not see
   that is stamped no later than the newest row read (a writer with a slow clock) would be
   deleted unread, so the rows stay for a later run, reported.
4. The rows go: one partition tombstone per partition key, stamped with the newest row write
   time read, so a row written after the read and stamped later survives it (reported: the
   next run moves it). The one window left is a row arriving between step 3 and the
   tombstone stamped no later than it: compaction makes the same clock assumption.

Exactly once across a crash anywhere: until step 4 the rows and the chunks hold the same
records, and a read's merge keeps one copy per record key (:func:`hundi.stores.merge.
deduplicate`: a row beside chunks is a writer of its own, and each run is a writer of its own,
so the chunks of a run that stopped early and of the one after it are read once; ``hundi
store compact`` then keeps one copy). A chunk's id is the digest of its data, so a run over
unchanged rows rewrites an earlier run's chunks in place.
Only days that ended more than ``CASSANDRA_COMPACT_CLOCK_MARGIN`` seconds ago (default 60) are
moved: a live writer never races the tombstone.

Which channels: those written as chunks (``CASSANDRA_CHUNKED_CHANNELS``) whose record keys
hold the exchange's time (trades, book_l3...). ``bbo`` and ``book`` stay in rows: their
copies from two writers may differ in a local receive time and are merged within a margin
that crosses hours and days, where every row counts as a writer of its own; one writer's
chunks would keep copies the merge drops today (see :func:`~.compaction.regroups_only`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from cassandra.query import PreparedStatement

from hundi.records import SCHEMAS, Channel
from hundi.stores.base import StoreError
from hundi.stores.cassandra.chunks import Chunk, chunk_table_spec, encode_chunks
from hundi.stores.cassandra.compaction import (
    MIGRATED,
    _in_read_order,
    cuts,
    indexed_partitions,
    insert_chunks,
    is_migrated,
    migration_writer,
    regroups_only,
)
from hundi.stores.cassandra.schema import NS_PER_DAY, NS_PER_HOUR, TableSpec, quote
from hundi.stores.cassandra.store import CassandraStore, _partition_keys, _table

_FETCH = 20_000  # rows per page


@dataclass(slots=True)
class MigrationReport:
    """One stream-day's outcome, for the command's line."""

    channel: Channel
    exchange: str
    symbol: str
    day: int
    rows: int = 0
    chunks: int = 0
    seconds: float = 0.0
    moved: bool = False  # the rows read were deleted (their records are in the chunks)
    open_day: bool = False  # not ended (or within the clock margin): not tried, not a failure
    left: str = ""  # why rows a run should have moved stay in the row table

    @property
    def failed(self) -> bool:
        return bool(self.left)


def migratable(store: CassandraStore, channel: Channel) -> str:
    """Why ``channel`` cannot be migrated in this store ("" when it can)."""
    channel = Channel(channel)
    if channel not in store.settings.chunked_channels:
        return (
            f"{channel.value} is written row per record here (CASSANDRA_CHUNKED_CHANNELS): "
            "collectors would keep adding rows"
        )
    if regroups_only(channel):
        return (
            f"{channel.value} stays in rows: copies from two writers differ in a local receive "
            "time and are merged across hours and days, which one writer's chunks would change"
        )
    return ""


def row_partitions(
    store: CassandraStore,
    *,
    exchange: str | None = None,
    channel: Channel | None = None,
    symbol: str | None = None,
    first_day: int | None = None,
    last_day: int | None = None,
) -> list[tuple[Channel, str, str, int]]:
    """The (channel, exchange, symbol, day) partitions the index lists for migratable
    channels (matching the filters, days inclusive) that still hold rows, in order."""

    def wanted(found: Channel) -> bool:
        return found in store._specs and not migratable(store, found)

    listed = indexed_partitions(
        store, wanted, exchange=exchange, channel=channel, symbol=symbol,
        first_day=first_day, last_day=last_day,
    )  # fmt: skip
    return [p for p in listed if _has_rows(store, store._specs[p[0]], *p[1:])]


def migrate_partition(
    store: CassandraStore,
    channel: Channel,
    exchange: str,
    symbol: str,
    day: int,
    *,
    now_ns: int | None = None,
    margin_s: float,
) -> MigrationReport:
    """Move one closed stream-day's rows into chunks (see the module docstring)."""
    began = time.perf_counter()
    channel = Channel(channel)
    report = MigrationReport(channel, exchange, symbol, day)
    now_ns = time.time_ns() if now_ns is None else now_ns
    why = migratable(store, channel)
    if why:
        raise StoreError(why)
    if (day + 1) * NS_PER_DAY > now_ns - int(margin_s * 1e9):
        report.open_day = True
        return report
    spec = store._specs[channel]
    select = _rows_select(store, spec)
    writer = migration_writer(secrets.randbits(61))
    stamp = now_us()
    newest_us = 0
    written: list[Chunk] = []
    read_keys: list[npt.NDArray[np.int64]] = []
    for hour in range(24):
        start = day * NS_PER_DAY + hour * NS_PER_HOUR
        table, written_us, ttl_s, keys = _hour_rows(
            store, spec, select, exchange, symbol, day, start
        )
        if table.num_rows == 0:
            continue
        report.rows += table.num_rows
        newest_us = max(newest_us, written_us)
        read_keys.append(keys)
        chunks = _chunks(store, channel, table)
        insert_chunks(store, channel, [(c, writer) for c in chunks], ttl_s, stamp)
        written.extend(chunks)
    report.chunks = len(written)
    if report.rows == 0:
        report.seconds = time.perf_counter() - began
        return report
    stored = _stored_records(store, channel, written)
    if stored != report.rows:
        report.left = f"{report.rows} rows read but {stored} records found in their chunks"
        report.seconds = time.perf_counter() - began
        return report
    read = np.sort(np.concatenate(read_keys))
    unread, newer = _rows_not_read(store, spec, exchange, symbol, day, read, newest_us)
    if unread:
        report.left = (
            f"{unread} row(s) written meanwhile stamped no later than the rows read (a writer "
            "with a slow clock): the rows stay for the next run"
        )
    else:
        _delete_rows(store, spec, exchange, symbol, day, newest_us)
        report.moved = True
        if newer:  # stamped later: the tombstone spared them
            report.left = f"{newer} row(s) written meanwhile stay in rows for the next run"
    report.seconds = time.perf_counter() - began
    return report


def now_us() -> int:
    return time.time_ns() // 1_000


def _day_keys(spec: TableSpec, exchange: str, symbol: str, day: int) -> list[tuple[Any, ...]]:
    """The partition keys of one stream-day (the day, or its 24 hours for an hourly table)."""
    return _partition_keys(spec, exchange, symbol, day, day * NS_PER_DAY, (day + 1) * NS_PER_DAY)


def _where(spec: TableSpec, marker: str = "%s") -> str:
    return " AND ".join(f"{quote(n)} = {marker}" for n in spec.partition_key)


def _table_name(store: CassandraStore, spec: TableSpec) -> str:
    return f"{quote(store.settings.keyspace)}.{quote(spec.name)}"


def _has_rows(store: CassandraStore, spec: TableSpec, exchange: str, symbol: str, day: int) -> bool:
    select = f"SELECT {quote('ts')} FROM {_table_name(store, spec)} WHERE {_where(spec)} LIMIT 1"
    return any(
        store._session.execute(select, key).one() is not None
        for key in _day_keys(spec, exchange, symbol, day)
    )


def _regular_column(spec: TableSpec) -> str:
    """A column outside the primary key: its cell carries the row's write time and TTL."""
    keys = {*spec.partition_key, *spec.clustering}
    for name in spec.fields:
        if name not in keys:
            return name
    raise StoreError(f"table {spec.name} has no regular column to read write times from")


def _rows_select(store: CassandraStore, spec: TableSpec) -> PreparedStatement:
    """A partition's rows of ``ts`` in [?, ?) with the write time and TTL of one cell."""
    fields = store._readable[spec.channel]
    cell = quote(_regular_column(spec))
    return store._session.prepare(
        f"SELECT {', '.join(quote(f) for f in fields)}, WRITETIME({cell}), TTL({cell}) "
        f"FROM {_table_name(store, spec)} WHERE {_where(spec, '?')} "
        f"AND {quote('ts')} >= ? AND {quote('ts')} < ?"
    )


def _hour_rows(
    store: CassandraStore,
    spec: TableSpec,
    select: PreparedStatement,
    exchange: str,
    symbol: str,
    day: int,
    start: int,
) -> tuple[pa.Table, int, int, npt.NDArray[np.int64]]:
    """One hour's rows (``select``: :func:`_rows_select`) as a table of the record schema, the
    newest write time (µs) among them, the TTL their chunks keep (0: none) and a hash of each
    row's key (its clustering columns, see :func:`_key_hash`)."""
    fields = store._readable[spec.channel]
    (key,) = _partition_keys(spec, exchange, symbol, day, start, start + NS_PER_HOUR)
    statement = select.bind((*key, start, start + NS_PER_HOUR))
    statement.fetch_size = _FETCH
    rows = list(store._session.execute(statement))
    if not rows:
        return SCHEMAS[spec.channel].empty_table(), 0, 0, np.empty(0, np.int64)
    count = len(fields)
    written = np.fromiter((r[count] or 0 for r in rows), np.int64, len(rows))
    ttls = np.fromiter((r[count + 1] or 0 for r in rows), np.int64, len(rows))
    at = [fields.index(name) for name in spec.clustering]
    keys = _key_hash(rows, at)
    table = _table(SCHEMAS[spec.channel], fields, [r[:count] for r in rows])
    ttl_s = 0 if (ttls == 0).any() else int(ttls.max())
    return table, int(written.max()), ttl_s, keys


def _key_hash(rows: list[Any], at: list[int]) -> npt.NDArray[np.int64]:
    """A 64-bit hash of each row's clustering values (at positions ``at``): the row's key
    within its partition (one process: Python's hash of the same values is the same)."""
    return np.fromiter((hash(tuple(r[i] for i in at)) for r in rows), np.int64, len(rows))


def _rows_not_read(
    store: CassandraStore,
    spec: TableSpec,
    exchange: str,
    symbol: str,
    day: int,
    read: npt.NDArray[np.int64],
    newest_us: int,
) -> tuple[int, int]:
    """The day's rows now that were not read: (those stamped at or before ``newest_us``, which
    the tombstone would delete unread; those stamped later, which it spares). ``read``: the
    sorted key hashes of the rows read. Rows read that expired meanwhile are in the chunks."""
    cell = quote(_regular_column(spec))
    select = store._session.prepare(
        f"SELECT {', '.join(quote(c) for c in spec.clustering)}, WRITETIME({cell}) "
        f"FROM {_table_name(store, spec)} WHERE {_where(spec, '?')}"
    )
    at = list(range(len(spec.clustering)))
    unread = newer = 0
    for key in _day_keys(spec, exchange, symbol, day):
        statement = select.bind(key)
        statement.fetch_size = _FETCH
        rows = list(store._session.execute(statement))
        if not rows:
            continue
        hashes = _key_hash(rows, at)
        written = np.fromiter((r[-1] or 0 for r in rows), np.int64, len(rows))
        found = np.searchsorted(read, hashes)
        known = (found < len(read)) & (read[np.minimum(found, len(read) - 1)] == hashes)
        unread += int(((~known) & (written <= newest_us)).sum())
        newer += int(((~known) & (written > newest_us)).sum())
    return unread, newer


def _chunks(store: CassandraStore, channel: Channel, table: pa.Table) -> list[Chunk]:
    """The hour's records in read order as chunks (one run of equal ``ts`` never split)."""
    table = _in_read_order(table, channel).cast(SCHEMAS[channel])
    ts = np.asarray(table.column("ts").cast(pa.int64()).to_numpy(), np.int64)
    settings = store.settings
    chunks: list[Chunk] = []
    for first, stop in cuts(ts, settings.chunk_rows):
        chunks.extend(
            encode_chunks(
                channel, table.slice(first, stop - first), codec=settings.chunk_codec,
                max_rows=stop - first,
            )
        )  # fmt: skip
    return chunks


def _stored_records(store: CassandraStore, channel: Channel, chunks: Iterable[Chunk]) -> int:
    """The records of ``chunks`` as stored now (each read back by its key)."""
    spec = chunk_table_spec(channel)
    select = store._session.prepare(
        f"SELECT records FROM {quote(store.settings.keyspace)}.{quote(spec.name)} WHERE "
        "exchange = ? AND symbol = ? AND ts_day = ? AND first_ts = ? AND chunk_id = ?"
    )
    total = 0
    for chunk in chunks:
        found = store._session.execute(
            select, (chunk.exchange, chunk.symbol, chunk.day, chunk.first_ts, chunk.chunk_id)
        ).one()
        total += 0 if found is None else int(found[0])
    return total


def _delete_rows(
    store: CassandraStore, spec: TableSpec, exchange: str, symbol: str, day: int, stamp_us: int
) -> None:
    delete = f"DELETE FROM {_table_name(store, spec)} USING TIMESTAMP %s WHERE {_where(spec)}"
    for key in _day_keys(spec, exchange, symbol, day):
        store._session.execute(delete, (stamp_us, *key))


__all__ = [
    "MIGRATED",
    "MigrationReport",
    "is_migrated",
    "migratable",
    "migrate_partition",
    "migration_writer",
    "row_partitions",
]
