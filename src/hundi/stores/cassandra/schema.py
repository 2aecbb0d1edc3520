"""Tables generated from :data:`hundi.records.SCHEMAS`, created and migrated idempotently.

One table per channel, named after it, holding every record field::

    PRIMARY KEY ((exchange, symbol, ts_day), ts, *IDENTITY)

* The partition is one symbol-day of one channel: bounded (a busy book is a few million rows a
  day), and a time-range read touches only the days it covers. A channel of
  :data:`HOURLY_CHANNELS` (order-level ``book_l3``: tens of millions of rows per busy symbol
  and day) also splits the day by UTC hour: ``PRIMARY KEY ((exchange, symbol, ts_day,
  ts_hour), ...)``; the partition index still lists (symbol, day) and a read asks for the
  hours of the day its range covers.
* Clustering by exchange time and then the record type's ``IDENTITY`` (exchange ids) makes a row
  key name one record, so writing it again (a retried batch, a second collector) overwrites the
  same row instead of duplicating it, and records sharing a millisecond, even a nanosecond, stay
  apart.
* Timestamps are ``bigint`` nanoseconds: CQL ``timestamp`` holds milliseconds and would lose
  precision. ``side`` (int8) is ``tinyint``.
* TimeWindowCompactionStrategy with one-day windows and ``default_time_to_live`` from
  ``CASSANDRA_TTL``: whole SSTables expire together, never rewritten by compaction.

The ``hundi_partitions`` index table lists which (symbol, day) partitions exist per (exchange,
channel), so reads without a symbol or a time range find their partitions without a scan. It has
no TTL: a stale entry costs one empty query; a missing one would hide data.

Channels written in the chunked layout also get a ``<channel>_chunks`` table
(:mod:`hundi.stores.cassandra.chunks`), with the same TWCS and TTL.

Migration compares ``system_schema.columns`` with the record schema: a field the record type
gained is added with ``ALTER TABLE ... ADD`` (old rows read it as null); a changed type or key is
an error, since Cassandra cannot change either in place.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
from cassandra import InvalidRequest, Unauthorized
from cassandra.cluster import Session

from hundi.records import RECORD_TYPES, SCHEMAS, Channel
from hundi.stores.base import StoreError

log = logging.getLogger("hundi.stores.cassandra")

DAY_COLUMN = "ts_day"  # days since the epoch of ``ts`` (UTC); part of the partition key
HOUR_COLUMN = "ts_hour"  # UTC hour of ``ts`` within its day (0-23), for HOURLY_CHANNELS
PARTITION_KEY = ("exchange", "symbol", DAY_COLUMN)
HOURLY_PARTITION_KEY = (*PARTITION_KEY, HOUR_COLUMN)
HOURLY_CHANNELS = frozenset((Channel.BOOK_L3,))  # too many rows per symbol-day for one partition
INDEX_TABLE = "hundi_partitions"
NS_PER_DAY = 86_400 * 1_000_000_000
NS_PER_HOUR = 3_600 * 1_000_000_000


def hour_of(ts_ns: int) -> int:
    """The UTC hour (0-23) of a time within its day: an hourly table's last key column."""
    return (ts_ns % NS_PER_DAY) // NS_PER_HOUR


def hours_within(day: int, low: int, high: int) -> range:
    """The hours of ``day`` (days since the epoch) that may hold rows with
    ``low <= ts < high``, oldest first (empty when the range misses the day)."""
    start = day * NS_PER_DAY
    first = max(0, (max(low, start) - start) // NS_PER_HOUR)
    last = min(23, (min(high, start + NS_PER_DAY) - 1 - start) // NS_PER_HOUR)
    return range(first, last + 1) if high > start and low < start + NS_PER_DAY else range(0)


def cql_type(arrow_type: pa.DataType) -> str:
    """The CQL column type that holds an Arrow field's values exactly."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_timestamp(arrow_type):
        return "bigint"  # the integer in the field's unit (ns): lossless
    simple = {
        pa.int64(): "bigint",
        pa.int32(): "int",
        pa.int16(): "smallint",
        pa.int8(): "tinyint",
        pa.float64(): "double",
        pa.float32(): "float",
        pa.bool_(): "boolean",
        pa.string(): "text",
        pa.large_string(): "text",
        pa.binary(): "blob",
    }
    found = simple.get(arrow_type)
    if found is None:
        raise StoreError(f"the Cassandra store cannot hold Arrow type {arrow_type}")
    return found


def quote(name: str) -> str:
    """Quoted identifier: field names like ``open``/``interval`` stay legal, case is kept."""
    return '"' + name.replace('"', '""') + '"'


class TableLike(Protocol):
    """What creating and migrating a table needs: a channel's row table or chunk table."""

    @property
    def name(self) -> str: ...
    @property
    def columns(self) -> dict[str, str]: ...
    @property
    def partition_key(self) -> tuple[str, ...]: ...
    @property
    def clustering(self) -> tuple[str, ...]: ...
    def create_cql(self, keyspace: str, ttl_s: int) -> str: ...


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One channel's table: columns in record-field order, then the day (and hour) column."""

    channel: Channel
    name: str
    fields: tuple[str, ...]  # record fields, in struct order (the INSERT order)
    columns: dict[str, str]  # every column → CQL type, including the day (and hour) column
    clustering: tuple[str, ...]
    hourly: bool = False  # the partition key ends with the hour of the day

    @property
    def partition_key(self) -> tuple[str, ...]:
        return HOURLY_PARTITION_KEY if self.hourly else PARTITION_KEY

    @property
    def buckets(self) -> tuple[str, ...]:
        """The key columns computed from ``ts`` (after the record fields in an INSERT)."""
        return self.partition_key[2:]

    def _where(self) -> str:
        return " AND ".join(f"{quote(n)} = ?" for n in self.partition_key)

    def create_cql(self, keyspace: str, ttl_s: int) -> str:
        columns = ", ".join(f"{quote(n)} {t}" for n, t in self.columns.items())
        partition = ", ".join(quote(n) for n in self.partition_key)
        clustering = ", ".join(quote(n) for n in self.clustering)
        order = ", ".join(f"{quote(n)} ASC" for n in self.clustering)
        return (
            f"CREATE TABLE IF NOT EXISTS {quote(keyspace)}.{quote(self.name)} ({columns}, "
            f"PRIMARY KEY (({partition}), {clustering})) "
            f"WITH CLUSTERING ORDER BY ({order}) "
            "AND compaction = {'class': 'TimeWindowCompactionStrategy', "
            "'compaction_window_unit': 'DAYS', 'compaction_window_size': '1'} "
            f"AND default_time_to_live = {int(ttl_s)}"
        )

    def insert_cql(self, keyspace: str) -> str:
        names = (*self.fields, *self.buckets)
        return (
            f"INSERT INTO {quote(keyspace)}.{quote(self.name)} "
            f"({', '.join(quote(n) for n in names)}) VALUES ({', '.join('?' * len(names))})"
        )

    def last_row_cql(self, keyspace: str, fields: tuple[str, ...]) -> str:
        """The newest row of one partition before a time (``ts`` leads the clustering)."""
        return (
            f"SELECT {', '.join(quote(n) for n in fields)} "
            f"FROM {quote(keyspace)}.{quote(self.name)} "
            f"WHERE {self._where()} AND {quote('ts')} < ? ORDER BY {quote('ts')} DESC LIMIT 1"
        )

    def select_cql(self, keyspace: str, fields: tuple[str, ...]) -> str:
        return (
            f"SELECT {', '.join(quote(n) for n in fields)} "
            f"FROM {quote(keyspace)}.{quote(self.name)} "
            f"WHERE {self._where()} AND {quote('ts')} >= ? AND {quote('ts')} < ?"
        )


def table_spec(channel: Channel, schema: pa.Schema | None = None) -> TableSpec:
    """The table for a channel from its record schema (``schema`` overrides, for migrations)."""
    schema = SCHEMAS[channel] if schema is None else schema
    record_type = RECORD_TYPES[channel]
    identity = getattr(record_type, "IDENTITY", None)
    if not identity:
        raise StoreError(f"record type {record_type.__name__} declares no IDENTITY")
    columns = {f.name: cql_type(f.type) for f in schema}
    hourly = channel in HOURLY_CHANNELS
    for bucket in (DAY_COLUMN, HOUR_COLUMN) if hourly else (DAY_COLUMN,):
        if bucket in columns:
            raise StoreError(f"record field {bucket!r} clashes with the Cassandra {bucket} column")
        columns[bucket] = "int"
    clustering = ("ts", *(name for name in identity if name not in PARTITION_KEY))
    missing = [name for name in (*PARTITION_KEY[:2], *clustering) if name not in columns]
    if missing:
        raise StoreError(f"channel {channel.value!r} has no field(s) {missing} for its key")
    return TableSpec(channel, channel.value, tuple(schema.names), columns, clustering, hourly)


def index_create_cql(keyspace: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {quote(keyspace)}.{INDEX_TABLE} ("
        f"exchange text, channel text, symbol text, {DAY_COLUMN} int, "
        f"PRIMARY KEY ((exchange, channel), symbol, {DAY_COLUMN}))"
    )


def index_insert_cql(keyspace: str) -> str:
    return (
        f"INSERT INTO {quote(keyspace)}.{INDEX_TABLE} (exchange, channel, symbol, {DAY_COLUMN}) "
        "VALUES (?, ?, ?, ?)"
    )


def index_keys_cql(keyspace: str) -> str:
    """Every (exchange, channel) the index has entries for: its partition keys, a small scan."""
    return f"SELECT DISTINCT exchange, channel FROM {quote(keyspace)}.{INDEX_TABLE}"


def index_select_cql(keyspace: str, *, with_symbol: bool) -> str:
    where = "exchange = ? AND channel = ?" + (" AND symbol = ?" if with_symbol else "")
    return f"SELECT symbol, {DAY_COLUMN} FROM {quote(keyspace)}.{INDEX_TABLE} WHERE {where}"


# --- live schema -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveTable:
    """What ``system_schema`` says about one existing table."""

    columns: dict[str, str]  # name → CQL type
    partition_key: tuple[str, ...]
    clustering: tuple[str, ...]
    ttl_s: int


def live_tables(session: Session, keyspace: str) -> dict[str, LiveTable]:
    """Existing tables of the keyspace (empty when the keyspace does not exist)."""
    described: dict[str, list[tuple[str, str, str, int]]] = {}
    rows = session.execute(
        "SELECT table_name, column_name, type, kind, position FROM system_schema.columns "
        "WHERE keyspace_name = %s",
        (keyspace,),
    )
    for table, column, cql, kind, position in rows:
        described.setdefault(table, []).append((column, cql, kind, position))
    ttls = {
        table: int(ttl)
        for table, ttl in session.execute(
            "SELECT table_name, default_time_to_live FROM system_schema.tables "
            "WHERE keyspace_name = %s",
            (keyspace,),
        )
    }
    return {
        table: LiveTable(
            columns={column: cql for column, cql, _, _ in columns},
            partition_key=_key_columns(columns, "partition_key"),
            clustering=_key_columns(columns, "clustering"),
            ttl_s=ttls.get(table, 0),
        )
        for table, columns in described.items()
    }


def _key_columns(columns: list[tuple[str, str, str, int]], kind: str) -> tuple[str, ...]:
    """Names of the columns of one key kind, in key position order."""
    return tuple(name for name, _, k, _ in sorted(columns, key=lambda c: c[3]) if k == kind)


def keyspace_exists(session: Session, keyspace: str) -> bool:
    rows = session.execute(
        "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
    )
    return rows.one() is not None


@dataclass(frozen=True, slots=True)
class Change:
    """One DDL statement the schema needs, with what it does for messages."""

    what: str  # "create table ks.t", "add column ks.t.x", ...
    permission: str  # the Cassandra permission it needs: CREATE or ALTER
    cql: str


def schema_changes(
    session: Session,
    keyspace: str,
    replication_cql: str,
    ttl_s: int,
    specs: Mapping[Channel, TableSpec],
    chunk_specs: Sequence[TableLike] = (),
) -> list[Change]:
    """The DDL that would bring the keyspace to the record schema; empty when it is current.

    Reads only ``system_schema`` (any role may), so a writer or reader role finds out without
    needing CREATE or ALTER. Raises :class:`StoreError` for changes Cassandra cannot make.
    """
    if not keyspace_exists(session, keyspace):
        create_keyspace = (
            f"CREATE KEYSPACE IF NOT EXISTS {quote(keyspace)} WITH replication = {replication_cql}"
        )
        changes = [Change(f"create keyspace {keyspace}", "CREATE", create_keyspace)]
        changes.append(
            Change(f"create table {keyspace}.{INDEX_TABLE}", "CREATE", index_create_cql(keyspace))
        )
        changes += [
            Change(
                f"create table {keyspace}.{spec.name}", "CREATE", spec.create_cql(keyspace, ttl_s)
            )
            for spec in (*specs.values(), *chunk_specs)
        ]
        return changes
    existing = live_tables(session, keyspace)
    changes = []
    if INDEX_TABLE not in existing:
        changes.append(
            Change(f"create table {keyspace}.{INDEX_TABLE}", "CREATE", index_create_cql(keyspace))
        )
    tables: list[TableLike] = [*specs.values(), *chunk_specs]
    for spec in tables:
        live = existing.get(spec.name)
        if live is None:
            changes.append(
                Change(
                    f"create table {keyspace}.{spec.name}",
                    "CREATE",
                    spec.create_cql(keyspace, ttl_s),
                )
            )
        else:
            changes += _migrations(keyspace, spec, live, ttl_s)
    return changes


def ensure_schema(
    session: Session,
    keyspace: str,
    replication_cql: str,
    ttl_s: int,
    specs: Mapping[Channel, TableSpec],
    chunk_specs: Sequence[TableLike] = (),
    *,
    user: str | None = None,
    init_hint: str = "hundi store init",
) -> list[Change]:
    """Create the keyspace and every table if missing; add columns records gained; set the TTL.

    Idempotent, and safe against another process doing the same at the same time (``IF NOT
    EXISTS``; a column someone else added first is fine). Issues no DDL at all when the schema
    is current, so a least-privilege role (SELECT + MODIFY) opens a current keyspace; when it
    is not and the role may not change it, one :class:`StoreError` names the missing permission,
    what is missing and the bootstrap command (``init_hint``). Returns the changes made.
    """
    changes = schema_changes(session, keyspace, replication_cql, ttl_s, specs, chunk_specs)
    for number, change in enumerate(changes):
        try:
            session.execute(change.cql)
        except Unauthorized:
            missing = ", ".join(c.what for c in changes[number:][:4])
            more = len(changes) - number - 4
            raise StoreError(
                f"the schema of Cassandra keyspace {keyspace!r} is not current "
                f"({missing}{f' and {more} more' if more > 0 else ''}) and role "
                f"{user or '(anonymous)'!r} has no {change.permission} permission to change it: "
                f"run `{init_hint}` with the admin role (bootstrap), then start again"
            ) from None
        except InvalidRequest as exc:
            if "already exist" not in str(exc):  # another process made it first: fine
                raise
        log.info("%s", change.what)
    return changes


def _migrations(keyspace: str, spec: TableLike, live: LiveTable, ttl_s: int) -> list[Change]:
    table = f"{keyspace}.{spec.name}"
    if live.partition_key != spec.partition_key or live.clustering != spec.clustering:
        raise StoreError(
            f"Cassandra table {table} has key ({', '.join(live.partition_key)}), "
            f"{', '.join(live.clustering)} but records need ({', '.join(spec.partition_key)}), "
            f"{', '.join(spec.clustering)}; a key cannot be changed in place: migrate the data "
            "to a new keyspace"
        )
    changes = []
    for name, cql in spec.columns.items():
        have = live.columns.get(name)
        if have is None:
            changes.append(
                Change(
                    f"add column {name} {cql} to Cassandra table {table}",
                    "ALTER",
                    f"ALTER TABLE {quote(keyspace)}.{quote(spec.name)} ADD {quote(name)} {cql}",
                )
            )
        elif have != cql:
            raise StoreError(
                f"Cassandra column {table}.{name} is {have} but records need {cql}; "
                "Cassandra cannot change a column type: migrate the data to a new keyspace"
            )
    if live.ttl_s != ttl_s:
        changes.append(
            Change(
                f"set default_time_to_live of {table} to {ttl_s} s",
                "ALTER",
                f"ALTER TABLE {quote(keyspace)}.{quote(spec.name)} "
                f"WITH default_time_to_live = {int(ttl_s)}",
            )
        )
    return changes
