"""The chunked layout: one Cassandra row per writer flush of one stream-hour, as Arrow columns.

A row-per-record table costs Cassandra ~30 µs of server CPU per record and the client a tuple
per record on the way back. A chunk table holds, per (exchange, symbol, UTC day) partition, one
row per chunk: the records one ``write`` call handed over for that stream and UTC hour, as an
Arrow IPC stream with zstd-compressed buffers (measured against LZ4 in
``bench/cassandra_chunks.py``: smaller on disk at about the same decode speed), plus what a
read needs without decoding it::

    PRIMARY KEY ((exchange, symbol, ts_day), first_ts, chunk_id)
    last_ts, first_id, last_id, records, data, writer

* ``chunk_id`` is the BLAKE2b-128 digest of ``data``: the chunk's checksum (verified on every
  read: a damaged chunk is a :class:`DamagedChunk` error naming it, never skipped) and its
  identity. A re-sent chunk (the writer retrying, the spool draining) has the same bytes, so
  it lands on the same row and replaces itself; a different chunk can never overwrite another
  one, so nothing is lost when two collectors, or one collector before and after a restart,
  cut the same stream at different boundaries. Their overlapping records are merged on read
  by :func:`hundi.stores.merge.deduplicate`.
* ``writer`` names the store instance (one collector run) that wrote the chunk, a random
  63-bit number, as the embedded store's run id does: a read passes it to the merge as each
  row's :data:`~hundi.stores.merge.SOURCE`, so one writer's records that share a key (OKX
  candle updates, Kraken and Coinbase book levels changed twice within one exchange
  timestamp) all stay, and only another writer's copies go. A chunk without it (a table
  written before the column existed) is a writer of its own.
* A chunk never crosses a UTC hour, so a read of ``low <= ts < high`` asks for
  ``first_ts >= hour(low) AND first_ts < high AND last_ts >= low``: pruning by chunk bounds on
  the clustering key, at most one hour of chunks scanned (and filtered by the server) before
  ``low``. Each hour is its own query, so even one symbol-day is fetched in parallel.
* ``exchange`` and ``symbol`` are the partition key and are not repeated inside ``data``;
  names are dictionary-encoded there. Timestamps keep nanoseconds, floats keep NaN.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from hundi.records import SCHEMAS, SEQUENCE_FIELDS, Channel, numpy_array
from hundi.stores.base import (
    StoreError,
    constant_nulls,
    constant_strings,
    plain_schema,
    single_string,
    stream_groups,
)
from hundi.stores.cassandra.schema import DAY_COLUMN, NS_PER_DAY, NS_PER_HOUR, quote

CHUNK_SUFFIX = "_chunks"
CHUNK_PARTITION_KEY = ("exchange", "symbol", DAY_COLUMN)
CHUNK_CLUSTERING = ("first_ts", "chunk_id")
CHUNK_COLUMNS = {
    "exchange": "text",
    "symbol": "text",
    DAY_COLUMN: "int",
    "first_ts": "bigint",
    "chunk_id": "blob",
    "last_ts": "bigint",
    "first_id": "bigint",
    "last_id": "bigint",
    "records": "int",
    "data": "blob",
    "writer": "bigint",  # not in Chunk: the store adds its own (see the module docstring)
}
CODECS = ("zstd", "lz4")  # Arrow IPC buffer compressions (lz4 = LZ4 frame)
# Below this many records a chunk's buffers are left uncompressed. A live collector flushes
# every ~0.5 s, so a busy stream writes chunks of ~20 records; zstd saves ~7 % of such a chunk
# (its schema and framing dominate) but costs ~10 µs per record to read back (a decompression
# context per buffer), 5x the uncompressed read (measured in bench/cassandra_small_chunks.py).
# Cassandra compresses its SSTables anyway.
SMALL_CHUNK_ROWS = 64
_UNCOMPRESSED = pa.ipc.IpcWriteOptions(compression=None, use_threads=False)
_KEY_NAMES = ("exchange", "symbol")  # in the partition key, not in ``data``


class DamagedChunk(StoreError):
    """A stored chunk whose bytes do not match its checksum, or do not decode."""


@dataclass(frozen=True, slots=True)
class ChunkTableSpec:
    """One channel's chunk table: its name and its CQL."""

    channel: Channel
    name: str

    @property
    def columns(self) -> dict[str, str]:
        return dict(CHUNK_COLUMNS)

    @property
    def partition_key(self) -> tuple[str, ...]:
        return CHUNK_PARTITION_KEY

    @property
    def clustering(self) -> tuple[str, ...]:
        return CHUNK_CLUSTERING

    def create_cql(self, keyspace: str, ttl_s: int) -> str:
        columns = ", ".join(f"{quote(n)} {t}" for n, t in CHUNK_COLUMNS.items())
        partition = ", ".join(quote(n) for n in CHUNK_PARTITION_KEY)
        clustering = ", ".join(quote(n) for n in CHUNK_CLUSTERING)
        return (
            f"CREATE TABLE IF NOT EXISTS {quote(keyspace)}.{quote(self.name)} ({columns}, "
            f"PRIMARY KEY (({partition}), {clustering})) "
            "WITH CLUSTERING ORDER BY (first_ts ASC, chunk_id ASC) "
            "AND compaction = {'class': 'TimeWindowCompactionStrategy', "
            "'compaction_window_unit': 'DAYS', 'compaction_window_size': '1'} "
            f"AND default_time_to_live = {int(ttl_s)}"
        )

    def insert_cql(self, keyspace: str) -> str:
        names = ", ".join(quote(n) for n in CHUNK_COLUMNS)
        marks = ", ".join("?" * len(CHUNK_COLUMNS))
        return f"INSERT INTO {quote(keyspace)}.{quote(self.name)} ({names}) VALUES ({marks})"

    def select_cql(self, keyspace: str, *, writer: bool = True) -> str:
        """Chunks of one partition with ``first_ts`` in [?, ?) and ``last_ts >= ?``: the
        partition is one key, so the server filters ``last_ts`` within it (ALLOW FILTERING
        scans that one partition's slice, not the table). ``writer``: the table has that
        column (a table created before it was added may not)."""
        what = "first_ts, chunk_id, last_ts, last_id, records, data"
        what += ", writer" if writer else ""
        return (
            f"SELECT {what} FROM {quote(keyspace)}.{quote(self.name)} "
            "WHERE exchange = ? AND symbol = ? AND ts_day = ? "
            "AND first_ts >= ? AND first_ts < ? AND last_ts >= ? ALLOW FILTERING"
        )

    def keys_cql(self, keyspace: str) -> str:
        """The keys of the chunks :meth:`select_cql` selects, same restrictions and values."""
        return (
            f"SELECT first_ts, chunk_id FROM {quote(keyspace)}.{quote(self.name)} "
            "WHERE exchange = ? AND symbol = ? AND ts_day = ? "
            "AND first_ts >= ? AND first_ts < ? AND last_ts >= ? ALLOW FILTERING"
        )

    def exact_cql(self, keyspace: str, *, writer: bool = True) -> str:
        """One chunk by its key, the columns of :meth:`select_cql`."""
        what = "first_ts, chunk_id, last_ts, last_id, records, data"
        what += ", writer" if writer else ""
        return (
            f"SELECT {what} FROM {quote(keyspace)}.{quote(self.name)} "
            "WHERE exchange = ? AND symbol = ? AND ts_day = ? AND first_ts = ? AND chunk_id = ?"
        )


def chunk_table_spec(channel: Channel) -> ChunkTableSpec:
    return ChunkTableSpec(Channel(channel), f"{Channel(channel).value}{CHUNK_SUFFIX}")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One encoded chunk: its key and bounds, ready for the INSERT."""

    exchange: str
    symbol: str
    day: int
    first_ts: int
    chunk_id: bytes
    last_ts: int
    first_id: int | None
    last_id: int | None
    records: int
    data: bytes

    def values(self, writer: int) -> tuple[object, ...]:
        """In :data:`CHUNK_COLUMNS` order, ``writer`` last."""
        return (
            self.exchange, self.symbol, self.day, self.first_ts, self.chunk_id, self.last_ts,
            self.first_id, self.last_id, self.records, self.data, writer,
        )  # fmt: skip


def digest(data: bytes) -> bytes:
    """The chunk checksum and identity: BLAKE2b-128 (hashlib, C speed, ~1 GB/s)."""
    return hashlib.blake2b(data, digest_size=16).digest()


def chunk_schema(channel: Channel) -> pa.Schema:
    """What ``data`` holds: the record schema without the partition-key names."""
    schema = SCHEMAS[Channel(channel)]
    for name in _KEY_NAMES:
        schema = schema.remove(schema.get_field_index(name))
    return schema


def encode_chunks(
    channel: Channel, table: pa.Table, *, codec: str = "zstd", max_rows: int = 100_000
) -> Iterator[Chunk]:
    """A channel's records (an Arrow table of its schema) → chunks, one per (exchange, symbol,
    UTC hour), split every ``max_rows``; rows keep their order."""
    if table.num_rows == 0:
        return
    channel = Channel(channel)
    options = pa.ipc.IpcWriteOptions(compression=codec, use_threads=False)
    stored = chunk_schema(channel)
    id_field = SEQUENCE_FIELDS.get(channel)
    body = table.select(stored.names)
    for exchange, symbol, hour, rows in stream_groups(table, NS_PER_HOUR):
        # one stream-hour (a flush of one busy stream) is the whole table: no copy
        part = body if rows is None else body.take(numpy_array(rows, pa.int64()))
        for first in range(0, part.num_rows, max_rows):
            yield _chunk(exchange, symbol, hour * NS_PER_HOUR // NS_PER_DAY,
                         part.slice(first, max_rows), id_field, options)  # fmt: skip


def _chunk(
    exchange: str,
    symbol: str,
    day: int,
    part: pa.Table,
    id_field: str | None,
    options: pa.ipc.IpcWriteOptions,
) -> Chunk:
    if part.num_rows < SMALL_CHUNK_ROWS:  # a live flush's chunk: see SMALL_CHUNK_ROWS
        options = _UNCOMPRESSED
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, part.schema, options=options) as writer:
        writer.write_table(part, max_chunksize=part.num_rows)
    data = sink.getvalue().to_pybytes()
    bounds = pc.min_max(part.column("ts").cast(pa.int64()))
    first_id = last_id = None
    if id_field is not None:
        ids = pc.min_max(part.column(id_field))
        first_id, last_id = ids["min"].as_py(), ids["max"].as_py()
    return Chunk(
        exchange=exchange,
        symbol=symbol,
        day=day,
        first_ts=bounds["min"].as_py(),
        chunk_id=digest(data),
        last_ts=bounds["max"].as_py(),
        first_id=first_id,
        last_id=last_id,
        records=part.num_rows,
        data=data,
    )


def read_chunk(
    channel: Channel,
    exchange: str,
    symbol: str,
    *,
    first_ts: int,
    chunk_id: bytes,
    records: int,
    data: bytes,
    fields: Collection[str] | None = None,
) -> pa.Table:
    """A stored chunk's columns as written (:func:`chunk_schema` of its time; only ``fields``
    of them when given: the others are not even decompressed), after checking its checksum
    and record count: a mismatch is a :class:`DamagedChunk` naming it."""
    where = f"{Channel(channel).value} chunk of {exchange} {symbol} starting at ts={first_ts}"
    if not isinstance(data, bytes) or not isinstance(records, int):  # a cell nulled outside
        raise DamagedChunk(f"damaged {where}: its data or record count is missing")
    if digest(data) != chunk_id:
        raise DamagedChunk(f"damaged {where}: its checksum does not match its data")
    try:
        included = None
        if fields is not None:  # indices in this chunk's own schema (older chunks lack fields)
            names = pa.ipc.open_stream(data).schema.names
            included = [i for i, name in enumerate(names) if name in fields]
        options = pa.ipc.IpcReadOptions(use_threads=False, included_fields=included)
        stored = pa.ipc.open_stream(data, options=options).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DamagedChunk(f"damaged {where}: {exc}") from None
    if stored.num_rows != records:
        raise DamagedChunk(f"damaged {where}: {stored.num_rows} records, expected {records}")
    return stored


def assemble(channel: Channel, exchange: str, symbol: str, stored: list[pa.Table]) -> pa.Table:
    """One stream's chunks (as :func:`read_chunk` gave them) → one table of the channel's plain
    schema (names as strings), without copying: each column keeps the chunks' buffers (a
    DataFrame or a sort copies them once, later), and a name holding one value (``exchange``,
    ``symbol``, usually ``native_symbol``) is :func:`constant_strings`. A field older chunks
    lack is null for their rows."""
    plain = plain_schema(SCHEMAS[Channel(channel)])
    if not stored:
        return plain.empty_table()
    table = pa.concat_tables(stored, promote_options="default")
    count = table.num_rows
    arrays: list[pa.Array | pa.ChunkedArray] = []
    for field in plain:
        if field.name in _KEY_NAMES:
            arrays.append(constant_strings(exchange if field.name == "exchange" else symbol, count))
        elif field.name in table.column_names:
            column = table.column(field.name)
            text = single_string(column) if pa.types.is_dictionary(column.type) else None
            if text is not None:
                arrays.append(constant_strings(text, count))
            else:
                arrays.append(column if column.type == field.type else column.cast(field.type))
        else:
            arrays.append(constant_nulls(count, field.type))
    return pa.Table.from_arrays(arrays, schema=plain)


# Who wrote a chunk (its ``writer`` column). A collector run's writer is a random non-negative
# 63-bit number (the store instance's); the others are negative, so no collector has them.

#: The writer of compacted chunks that were written before the ``writer`` column existed.
LEGACY_COMPACTED = -1


def compacted_writer(writer: int | None) -> int:
    """The writer of a compacted chunk holding ``writer``'s rows: negative, so no collector
    has it, derived deterministically (compacting twice gives the same chunks), and itself
    for an already compacted writer."""
    if writer is None:
        return LEGACY_COMPACTED
    if writer < 0:
        return writer
    digest = hashlib.blake2b(writer.to_bytes(8, "big"), digest_size=8).digest()
    return -2 - int.from_bytes(digest, "big") % (2**62)


#: Writers of ``hundi store migrate``'s chunks: ``MIGRATED - run`` for a random 61-bit run
#: number. Negative like a compacted writer (no collector has one) and below
#: :func:`compacted_writer`'s range, so compacting them keeps them.
MIGRATED = -(2**62) - 2
_MIGRATION_RUNS = 2**61


def migration_writer(run: int) -> int:
    """The writer of one migration run's chunks."""
    return MIGRATED - run % _MIGRATION_RUNS


def is_migrated(writer: int | None) -> bool:
    """Whether a chunk's writer is a migration run's."""
    return writer is not None and MIGRATED - _MIGRATION_RUNS < writer <= MIGRATED


def process_writer(writer: int | None) -> int | None:
    """The one collector run that wrote a chunk's rows, the same number whether or not their
    hour was compacted since (:func:`compacted_writer` of it); None where no single run did:
    chunks written before the ``writer`` column, a migration's, or compacted from those."""
    if writer is None or writer == LEGACY_COMPACTED or is_migrated(writer):
        return None
    return compacted_writer(writer)


__all__ = [
    "CHUNK_SUFFIX",
    "CODECS",
    "LEGACY_COMPACTED",
    "MIGRATED",
    "SMALL_CHUNK_ROWS",
    "Chunk",
    "ChunkTableSpec",
    "DamagedChunk",
    "assemble",
    "chunk_table_spec",
    "compacted_writer",
    "encode_chunks",
    "is_migrated",
    "migration_writer",
    "process_writer",
    "read_chunk",
]
