"""The Cassandra store (URL scheme ``cassandra``): lossless tick tables on a Cassandra cluster.

Tables and keys: :mod:`hundi.stores.cassandra.schema`. Settings and credentials:
:mod:`hundi.stores.cassandra.settings`.

Writing: ``write`` groups each channel's records by partition (exchange, symbol, UTC day), sends
them as single-partition UNLOGGED batches of prepared INSERTs (``CASSANDRA_BATCH_ROWS`` rows;
one partition per batch, so the batch costs the coordinator nothing and is applied as one
mutation) with at most ``CASSANDRA_CONCURRENCY`` requests in flight, and returns once every
request is acknowledged at ``CASSANDRA_CONSISTENCY``. So ``flush`` has nothing left to do, and a
failed ``write`` leaves nothing half-known: it raises :class:`StoreError` and the writer sends the
same batch again, which rewrites the same rows (keys are exchange ids) without duplicates. Rows
are serialized by :mod:`hundi.stores.cassandra.encode`, not the driver's ``bind`` (5x the CPU).

Reading: the partition index gives the (symbol, day) partitions of the request; each is read by
its clustering range ``start <= ts < end`` and the rows become Arrow columns with the record
schema's types, then the same DataFrame the embedded store returns (index ``ts`` as UTC
nanosecond timestamps, names as strings, ``side`` int8), so notebooks can switch stores.
Chunk tables (:mod:`hundi.stores.cassandra.chunks`) are read beside the row tables, and the
records of both merged by :mod:`hundi.stores.merge` with each chunk's ``writer`` as its rows'
source (each row of a row table a source of its own).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cassandra import (
    AuthenticationFailed,
    CoordinationFailure,
    DriverException,
    FunctionFailure,
    RequestExecutionException,
    RequestValidationException,
    UnsupportedOperation,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    Session,
    UnresolvableContactPoints,
)
from cassandra.concurrent import execute_concurrent
from cassandra.connection import ConnectionException, ProtocolVersionUnsupported
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.protocol import ProtocolException
from cassandra.query import (
    BatchStatement,
    BatchType,
    BoundStatement,
    PreparedStatement,
    Statement,
    tuple_factory,
)

from hundi.records import RECORD_TYPES, SCHEMAS, SEQUENCE_FIELDS, Channel, Record, to_arrow
from hundi.stores.base import (
    MAX_NS,
    MIN_NS,
    Store,
    StoreError,
    StoreUnavailable,
    StreamPosition,
    arrow_storable,
    day_of_ns,
    ns_of,
    plain_schema,
    to_frame,
)
from hundi.stores.cassandra.chunks import (
    ChunkTableSpec,
    assemble,
    chunk_table_spec,
    encode_chunks,
    process_writer,
    read_chunk,
)
from hundi.stores.cassandra.encode import RowEncoder, UnstorableRow
from hundi.stores.cassandra.schema import (
    NS_PER_DAY,
    NS_PER_HOUR,
    Change,
    TableSpec,
    ensure_schema,
    hour_of,
    hours_within,
    index_insert_cql,
    index_keys_cql,
    index_select_cql,
    keyspace_exists,
    live_tables,
    table_spec,
)
from hundi.stores.cassandra.settings import (
    load_settings,
    options_override,
    replication_cql,
)
from hundi.stores.merge import (
    LOCAL_TS_MARGIN_NS,
    SOURCE,
    deduplicate,
    local_ts_merges,
    needed_columns,
    window_time,
)

if TYPE_CHECKING:
    import pandas as pd  # read paths only: a collector never loads it

log = logging.getLogger("hundi.stores.cassandra")

_DRIVER_ERRORS = (
    DriverException,
    RequestExecutionException,
    NoHostAvailable,
    ConnectionException,
    OSError,
)
_READ_WINDOW = 16  # partition reads in flight
_FETCH_SIZE = 20_000  # rows per page
_CHUNK_FETCH_SIZE = 32  # chunks per page: up to ~2 MB each
_KEYS_FETCH_SIZE = 1_000_000  # chunk keys per page: an hour's in one (~7,200 at live rates)
_SETTLE_TRIES = 8  # listings of an hour read in pages before giving up (see _read_meanwhile)
_DECODE_THREADS = 4  # at most, and no more than the cores
_MIN_TS = MIN_NS
_MAX_TS = MAX_NS

_PartitionKey = tuple[str, str, int]  # exchange, symbol, day
_Key = TypeVar("_Key")


def _refused(exc: BaseException) -> bool:
    """The server answered and said no (bad request, no permission, bad login): retrying the
    same thing cannot help, unlike a timeout or a node that is not there."""
    if isinstance(exc, NoHostAvailable):
        return any(_refused(e) for e in exc.errors.values())
    return isinstance(exc, RequestValidationException | AuthenticationFailed)


# What the driver raises (a plain DriverException) when a node does not speak the protocol
# version set explicitly (CASSANDRA_PROTOCOL_VERSION): a refusal, however often asked.
_EXPLICIT_VERSION_REFUSED = "while using explicitly set client protocol_version"


def _transient(exc: BaseException) -> bool:
    """Whether asking again later may succeed: no node answered or a request timed out, also
    where the server said so in a refusal's words (a login read at QUORUM while replicas are
    down: "Cannot achieve consistency level"); not for a refusal, nor for a failure that the
    same request meets again (a read over too many tombstones, a failing function, a request
    or protocol the server does not support)."""
    if isinstance(exc, NoHostAvailable):
        return all(_transient(e) for e in exc.errors.values())
    text = str(exc)
    if _EXPLICIT_VERSION_REFUSED in text:
        return False  # ProtocolVersionUnsupported as the driver re-raises it (plain)
    if "Cannot achieve consistency level" in text or "Operation timed out" in text:
        return True
    # ProtocolException: what a node refusing the version in other words raises (3.x: "Beta
    # version of the protocol used (5/v5-beta), but USE_BETA flag is unset")
    deterministic = (CoordinationFailure, FunctionFailure, UnsupportedOperation,
                     ProtocolVersionUnsupported, ProtocolException)  # fmt: skip
    return not isinstance(exc, deterministic) and not _refused(exc)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


class CassandraStore(Store):
    """Records in Cassandra tables, one per channel; see the module docstring.

    Options: ``read_only`` (nothing is created or written; the keyspace must exist),
    ``existing_only`` (the keyspace must exist; its tables are brought up to date),
    ``maintenance`` (a ``hundi store`` command: an unreachable cluster is not logged as writes
    waiting for it), and any
    :class:`CassandraSettings` field (``batch_rows``, ``concurrency``, ...) to override the
    environment, e.g. for benchmarks. Unknown options are ignored.
    """

    scheme = "cassandra"
    idempotent = True  # rows are keyed by exchange ids: the writer may re-send (outage spool)

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url)
        settings = load_settings(url)
        overrides = options_override(settings, options)
        self.settings = dataclasses.replace(settings, **overrides) if overrides else settings
        self.read_only = _as_bool(options.get("read_only", False))
        # the keyspace must exist (tables are still brought up to date): maintenance commands,
        # where a mistyped keyspace must be an error, not a new empty one
        self.existing_only = _as_bool(options.get("existing_only", False))
        # opened by a hundi store command, not a collector: no spooling, so no such warning
        self.maintenance = _as_bool(options.get("maintenance", False))
        self._specs = {channel: table_spec(channel) for channel in RECORD_TYPES}
        # Chunk tables this store writes (the configured channels) and reads (every one that
        # exists: a channel may have been chunked before its configuration changed).
        self._chunk_writes = {c: chunk_table_spec(c) for c in self.settings.chunked_channels}
        self._chunk_reads: dict[Channel, ChunkTableSpec] = {}
        # Which of those have the ``writer`` column (tables created before it may not).
        self._chunk_writer_column: dict[Channel, bool] = {}
        self._chunk_inserts: dict[Channel, PreparedStatement] = {}
        self._chunk_queries: dict[Channel, _ChunkStatements] = {}
        # This store's chunks are this writer's (hundi.stores.merge.SOURCE on reads): one run's
        # records sharing a key are distinct records, another run's are copies.
        self._writer = secrets.randbits(63)
        self._writing_as = threading.local()
        self._table_exists: PreparedStatement | None = None
        self._inserts: dict[Channel, _Insert] = {}
        self._selects: dict[tuple[Channel, tuple[str, ...]], PreparedStatement] = {}
        # Fields each table has; a read-only store does not migrate, so older tables may lack
        # fields records gained since: those read as nulls.
        self._readable = {channel: spec.fields for channel, spec in self._specs.items()}
        self._indexed: set[tuple[Channel, _PartitionKey]] = set()
        self._decoding: ThreadPoolExecutor | None = None  # chunk decoders (_decoder)
        self._unreachable = False  # the last connect failed for want of a node (not a login)
        self._opened = False
        # The writer thread and a restart look-up's thread may both open a store that the
        # cluster's outage left unopened: one connects, the other then finds it open (two at
        # once leaked a cluster, or shut down the one kept).
        self._opening = threading.Lock()
        self._open_failures = 0  # attempts to open that failed
        self._open_failure: StoreError | None = None  # the last one's error
        self._closing = threading.Lock()  # closed vs opened: one of the two sees the other
        self._closed = False
        self.schema_changes: list[Change] = []  # the DDL the last open made (hundi store init)
        try:
            self._open()
        except StoreError as exc:
            # A collector must not refuse to start because the cluster is briefly down (a
            # reboot, a rolling restart): it starts, its writer spools, and the store connects
            # on a later write. Bad credentials and bad names still stop it here, clearly.
            if self.read_only or not self._unreachable:
                raise
            if not self.maintenance:  # a maintenance command says "not reachable" itself
                log.warning("%s; writes wait until it answers (a collector spools them)", exc)

    def _open(self) -> None:
        """Connect and create/migrate the schema (again on each write until it succeeds).

        A thread that waited while another one tried gets that try's error instead of a
        second connect (against a silent node each costs the connect timeout); a store
        closed meanwhile is not left connected."""
        failures = self._open_failures
        with self._opening:
            if self._opened:
                return
            if self._closed:  # a look-up the stop gave up on, still running
                raise self._closed_error()
            failed = self._open_failure
            if self._open_failures != failures and failed is not None:
                raise type(failed)(str(failed)) from None  # failed while this one waited
            try:
                cluster, self._session = self._connect()
            except StoreError as exc:
                self._failed_to_open(exc)
                raise
            self._cluster = cluster
            try:
                self._prepare_schema()
            except BaseException as exc:
                cluster.shutdown()
                self._failed_to_open(exc)
                raise
            with self._closing:
                if not self._closed:
                    self._opened = True
            if not self._opened:
                cluster.shutdown()
                raise self._closed_error()

    def _closed_error(self) -> StoreError:
        return StoreError(f"Cassandra {self.settings.where}: the store was closed")

    def _failed_to_open(self, exc: BaseException) -> None:
        self._open_failure = exc if isinstance(exc, StoreError) else None
        self._open_failures += 1

    # -- connection ------------------------------------------------------------------------

    def describe(self) -> str:
        return f"cassandra://{self.settings.where}"

    def _fail(self, doing: str, exc: BaseException) -> NoReturn:
        """Raise one clear StoreError: where, what, why; the password scrubbed from the cause.
        :class:`StoreUnavailable` unless the server refused the request (asking again may
        then succeed: a restart's look-up does, see hundi.pipeline.resume)."""
        cause = self._cause(exc)
        error = StoreUnavailable if _transient(exc) else StoreError
        raise error(f"Cassandra {self.settings.where}: {doing} failed: {cause}") from None

    def _cause(self, exc: BaseException) -> str:
        if isinstance(exc, NoHostAvailable):
            errors = list(exc.errors.values())
            refused_logins = all(isinstance(e, AuthenticationFailed) for e in errors)
            if errors and refused_logins and not _transient(exc):
                if self.settings.user is None:
                    text = "the server requires a login: set CASSANDRA_USER and CASSANDRA_PASSWORD"
                else:
                    text = (
                        f"authentication failed for user {self.settings.user!r} "
                        "(check CASSANDRA_USER/CASSANDRA_PASSWORD)"
                    )
            elif errors:
                parts = [f"{host}: {type(e).__name__}: {e}" for host, e in exc.errors.items()]
                text = "no host available (" + "; ".join(parts) + ")"
            else:
                text = "no host available"
        else:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        password = self.settings.password
        return text.replace(password, "***") if password else text

    def _connect(self) -> tuple[Cluster, Session]:
        s = self.settings
        auth = None
        if s.user is not None:
            if s.password is None:
                raise StoreError(
                    f"Cassandra {s.where}: user {s.user!r} given but no CASSANDRA_PASSWORD "
                    "(set it in .secret.cassandra.env or the environment)"
                )
            auth = PlainTextAuthProvider(username=s.user, password=s.password)
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=s.local_dc)),
            consistency_level=s.consistency,
            request_timeout=s.request_timeout_s,
            row_factory=tuple_factory,
        )
        try:
            cluster = Cluster(
                contact_points=list(s.hosts),
                port=s.port,
                protocol_version=s.protocol_version,
                auth_provider=auth,
                execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                connect_timeout=s.connect_timeout_s,
                control_connection_timeout=s.connect_timeout_s,
                # Back within 10 s of a node restart (the writer retries or spools meanwhile).
                reconnection_policy=ExponentialReconnectionPolicy(0.5, 10.0),
                # The driver leaves Nagle on: a chunk INSERT's last partial segment then waits
                # for the server's delayed ACK (~20 ms a 5k-record chunk, measured).
                sockopts=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            )
        except UnresolvableContactPoints:
            raise StoreError(
                f"Cassandra {s.where}: cannot resolve the host name(s) {', '.join(s.hosts)}"
            ) from None
        try:
            session = cluster.connect()
        except Exception as exc:  # the driver raises NoHostAvailable, but also plain errors
            cluster.shutdown()
            # for want of a node, also a login its replicas could not check (a rolling restart)
            self._unreachable = isinstance(exc, NoHostAvailable) and _transient(exc)
            self._fail("connecting", exc)
        session.default_fetch_size = _FETCH_SIZE
        return cluster, session

    def _prepare_schema(self) -> None:
        s = self.settings
        try:
            if self.read_only:
                if not keyspace_exists(self._session, s.keyspace):
                    raise StoreError(f"Cassandra {s.where}: no keyspace {s.keyspace!r}")
                present = live_tables(self._session, s.keyspace)
                self._specs = {c: t for c, t in self._specs.items() if t.name in present}
                self._readable = {
                    c: tuple(f for f in t.fields if f in present[t.name].columns)
                    for c, t in self._specs.items()
                }
            else:
                if self.existing_only and not keyspace_exists(self._session, s.keyspace):
                    raise StoreError(f"Cassandra {s.where}: no keyspace {s.keyspace!r}")
                # the chunk tables written now, and those written before (a channel switched
                # back to rows is still read): all keep CASSANDRA_TTL and the columns reads need
                existing = live_tables(self._session, s.keyspace)
                chunk_specs = [
                    spec
                    for channel in RECORD_TYPES
                    if (spec := chunk_table_spec(channel)).name in existing
                    or channel in self._chunk_writes
                ]
                self.schema_changes = ensure_schema(
                    self._session,
                    s.keyspace,
                    replication_cql(s.replication),
                    s.ttl_s,
                    self._specs,
                    chunk_specs,
                    user=s.user,
                    init_hint=f"hundi store init {self.describe()}",
                )
                self._index_insert = self._session.prepare(index_insert_cql(s.keyspace))
                present = live_tables(self._session, s.keyspace)
            self._chunk_reads = {
                channel: spec
                for channel in RECORD_TYPES
                if (spec := chunk_table_spec(channel)).name in present
            }
            self._chunk_writer_column = {
                channel: "writer" in present[spec.name].columns
                for channel, spec in self._chunk_reads.items()
            }
            self._index_by_symbol = self._session.prepare(
                index_select_cql(s.keyspace, with_symbol=True)
            )
            self._index_all = self._session.prepare(index_select_cql(s.keyspace, with_symbol=False))
        except StoreError:
            raise
        except _DRIVER_ERRORS as exc:
            # The cluster going down between connecting and preparing (a timeout, no host left)
            # is an outage like any other; only an answer that refuses the request (invalid,
            # unauthorized) is a setup error. A collector started just as the cluster stopped
            # exited with code 2 here instead of spooling.
            self._unreachable = _transient(exc)
            self._fail("preparing the schema", exc)

    def close(self) -> None:
        """Nothing is buffered (``write`` waits for acknowledgements): just disconnect."""
        if self._decoding is not None:
            self._decoding.shutdown(cancel_futures=True)
            self._decoding = None
        with self._closing:
            self._closed = True
            opened = self._opened
        if opened:
            self._cluster.shutdown()

    # -- writing ---------------------------------------------------------------------------

    def _insert_for(self, channel: Channel) -> _Insert:
        found = self._inserts.get(channel)
        if found is None:
            spec = self._specs[channel]
            prepared = self._session.prepare(spec.insert_cql(self.settings.keyspace))
            encoder = RowEncoder(
                f"{self.settings.keyspace}.{spec.name}", list(spec.columns.items())
            )
            found = _Insert(prepared, attrgetter(*spec.fields), encoder)
            self._inserts[channel] = found
        return found

    def write(self, batches: Mapping[Channel, Sequence[Record]]) -> None:
        """Send every record and wait until all are acknowledged (see the module docstring)."""
        if self.read_only:
            raise StoreError(f"Cassandra {self.settings.where} was opened read-only")
        if not self._opened:
            self._open()  # raises StoreError while the cluster is still down: the writer spools
        statements: list[tuple[Statement, None]] = []
        new_index: list[tuple[Channel, _PartitionKey]] = []
        try:
            for channel, records in batches.items():
                if not records:
                    continue
                if Channel(channel) in self._chunk_writes:
                    self._chunk_statements(Channel(channel), records, statements, new_index)
                else:
                    self._statements(Channel(channel), records, statements, new_index)
        except _DRIVER_ERRORS as exc:
            self._fail("preparing statements", exc)
        if not statements:
            return
        try:
            results = execute_concurrent(
                self._session,
                statements,
                concurrency=self.settings.concurrency,
                raise_on_first_error=False,
            )
        except Exception as exc:  # failures normally come back as results; anything else too
            self._fail("writing", exc)
        failures = [outcome for ok, outcome in results if not ok]
        if failures:
            rows = sum(len(records) for records in batches.values())
            self._fail(
                f"writing {rows} records ({len(failures)} of {len(statements)} requests)",
                failures[0],
            )
        self._indexed.update(new_index)

    def _statements(
        self,
        channel: Channel,
        records: Sequence[Record],
        out: list[tuple[Statement, None]],
        new_index: list[tuple[Channel, _PartitionKey]],
    ) -> None:
        """Append the requests for one channel's records: index entries, then data.

        A record with a value its column cannot hold (a bug upstream) is left out, so it cannot
        block every record after it, and refused (:meth:`Store.refuse`: counted as lost).
        """
        insert = self._insert_for(channel)
        row_of, encode = insert.row_of, insert.encoder.encode
        # (exchange, symbol, day, hour): hour is 0 for a table without hourly partitions
        partitions: dict[tuple[str, str, int, int], list[list[bytes]]] = {}
        hourly = self._specs[channel].hourly
        for record in records:
            day = record.ts // NS_PER_DAY
            hour = hour_of(record.ts) if hourly else 0
            try:
                values = encode((*row_of(record), day, hour) if hourly else (*row_of(record), day))
            except UnstorableRow as exc:
                self.refuse(channel, record, str(exc))  # counted lost, a gap event stored
                continue
            partition = (record.exchange, record.symbol, day, hour)
            rows = partitions.get(partition)
            if rows is None:
                rows = partitions[partition] = []
            rows.append(values)
        indexed: dict[_PartitionKey, None] = {(e, s, d): None for e, s, d, _ in partitions}
        for key in indexed:
            if (channel, key) not in self._indexed:
                exchange, symbol, day = key
                index_entry = self._index_insert.bind((exchange, channel.value, symbol, day))
                out.append((index_entry, None))
                new_index.append((channel, key))
        prepared, size = insert.prepared, self.settings.batch_rows
        for rows in partitions.values():
            for first in range(0, len(rows), size):
                chunk = rows[first : first + size]
                if len(chunk) == 1:
                    out.append((_bound(prepared, chunk[0]), None))
                    continue
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for values in chunk:
                    batch.add(_bound(prepared, values))
                out.append((batch, None))

    def _chunk_statements(
        self,
        channel: Channel,
        records: Sequence[Record],
        out: list[tuple[Statement, None]],
        new_index: list[tuple[Channel, _PartitionKey]],
    ) -> None:
        """Append the requests for one chunked channel's records: index entries, then one
        INSERT per chunk (:func:`encode_chunks`: one per stream and UTC hour)."""
        insert = self._chunk_inserts.get(channel)
        if insert is None:
            spec = self._chunk_writes[channel]
            insert = self._session.prepare(spec.insert_cql(self.settings.keyspace))
            self._chunk_inserts[channel] = insert
        table = self._columns(channel, records)
        chunks = encode_chunks(
            channel, table, codec=self.settings.chunk_codec, max_rows=self.settings.chunk_rows
        )
        for chunk in chunks:
            key = (chunk.exchange, chunk.symbol, chunk.day)
            if (channel, key) not in self._indexed and (channel, key) not in new_index:
                entry = self._index_insert.bind((chunk.exchange, channel.value, *key[1:]))
                out.append((entry, None))
                new_index.append((channel, key))
            out.append((insert.bind(chunk.values(self._current_writer())), None))

    def _columns(self, channel: Channel, records: Sequence[Record]) -> pa.Table:
        """The records as Arrow columns. A record with a value its column cannot hold (a bug
        upstream) is refused and left out, as in the row layout, so it cannot block the others;
        finding it costs a conversion per record, on that error path only."""
        try:
            return to_arrow(channel, records)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            pass
        spec = self._specs[channel]
        encoder = RowEncoder(f"{self.settings.keyspace}.{spec.name}", list(spec.columns.items()))
        row_of = attrgetter(*spec.fields)
        good, bad = arrow_storable(channel, records)
        for record, why in bad:
            buckets = (0,) * len(spec.buckets)
            try:
                encoder.encode((*row_of(record), *buckets))
                reason = f"{self.settings.keyspace}.{spec.name}: {why}"
            except UnstorableRow as unstorable:
                reason = str(unstorable)
            self.refuse(channel, record, reason)  # counted lost, a gap event stored
        return to_arrow(channel, good)

    def writer_id(self) -> str:
        """The chunk tables' ``writer`` of this instance's chunks."""
        return str(self._writer)

    @contextmanager
    def writing_as(self, writer: str | None) -> Iterator[None]:
        """Chunks written within the block carry ``writer`` (a spooled batch's, maybe of an
        earlier run: :meth:`Store.writing_as`)."""
        # per thread: another writer thread may write through this object meanwhile
        local = self._writing_as
        before = getattr(local, "writer", None)
        if writer is not None and writer.isdigit():
            local.writer = int(writer)
        try:
            yield
        finally:
            local.writer = before

    def _current_writer(self) -> int:
        """This thread's writer: its :meth:`writing_as` block's, else this instance's."""
        writer: int | None = getattr(self._writing_as, "writer", None)
        return self._writer if writer is None else writer

    def flush(self) -> None:
        """Nothing to do: ``write`` returns only once Cassandra acknowledged every record."""

    def discard(self) -> None:
        """Nothing to forget: a failed ``write`` keeps nothing to retry by itself."""

    # -- reading ---------------------------------------------------------------------------

    def read(
        self,
        *,
        exchange: str,
        symbol: str | None,
        channel: Channel,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Rows with ``start <= ts < end``, sorted stably by (ts, recv_ts), indexed by ``ts``."""
        channel = Channel(channel)
        low = ns_of(start) if start is not None else _MIN_TS
        high = ns_of(end) if end is not None else _MAX_TS
        if local_ts_merges(channel):
            # merged day by day, as read_days and the embedded store do: several writers'
            # book snapshots are judged within one day's rows, so both reads give one answer
            days = self.read_days(
                exchange=exchange, symbol=symbol, channel=channel,
                start_ns=None if start is None else low, end_ns=None if end is None else high,
            )  # fmt: skip
            tables = [table for _, table in days]
            if not tables:
                return to_frame(plain_schema(SCHEMAS[channel]).empty_table())
            return to_frame(pa.concat_tables(tables) if len(tables) > 1 else tables[0])
        try:
            partitions = self._partitions(exchange, channel, symbol, low, high)
            table = self._rows(exchange, channel, partitions, low, high, None)
        except _DRIVER_ERRORS as exc:
            self._fail(f"reading {channel.value}", exc)
        return to_frame(table)

    def read_days(
        self,
        *,
        exchange: str,
        symbol: str | None,
        channel: Channel,
        start_ns: int | None = None,
        end_ns: int | None = None,
        columns: Sequence[str] | None = None,
        ordered: bool = True,
    ) -> Iterator[tuple[date, pa.Table]]:
        """See :meth:`Store.read_days`: the partition index gives the days, and each day's
        partitions are read for the wanted columns only."""
        channel = Channel(channel)
        low = start_ns if start_ns is not None else _MIN_TS
        high = end_ns if end_ns is not None else _MAX_TS
        wanted = list(columns) if columns is not None else SCHEMAS[channel].names
        needed = {*wanted, "recv_ts"} if ordered else set(wanted)
        try:
            partitions = self._partitions(exchange, channel, symbol, low, high)
        except _DRIVER_ERRORS as exc:
            self._fail(f"reading {channel.value}", exc)
        by_day = sorted(partitions, key=lambda partition: partition[1])
        for day, group in itertools.groupby(by_day, key=lambda partition: partition[1]):
            first, last = low, high
            if local_ts_merges(channel):  # the day's own range: merged with the day before
                first, last = max(low, day * NS_PER_DAY), min(high, (day + 1) * NS_PER_DAY)
            try:
                table = self._rows(exchange, channel, list(group), first, last, needed)
            except _DRIVER_ERRORS as exc:
                self._fail(f"reading {channel.value}", exc)
            if table.num_rows:
                yield day_of_ns(day * NS_PER_DAY), table.select(wanted)

    def exchanges(self) -> list[str]:
        """From the partition index's keys."""
        return sorted({exchange for exchange, _ in self._index_keys()})

    def channels(self, exchange: str) -> list[Channel]:
        """From the partition index's keys."""
        known = {c.value: c for c in Channel}
        found = {known[c] for e, c in self._index_keys() if e == exchange and c in known}
        return sorted(found, key=lambda channel: channel.value)

    def _index_keys(self) -> list[tuple[str, str]]:
        if not self._opened:
            self._open()
        try:
            rows = self._session.execute(index_keys_cql(self.settings.keyspace))
        except _DRIVER_ERRORS as exc:
            self._fail("listing what is stored", exc)
        return [(str(exchange), str(channel)) for exchange, channel in rows]

    def symbols(self, exchange: str, channel: Channel) -> list[str]:
        """From the partition index: one small query."""
        try:
            return sorted({name for name, _ in self._index(exchange, Channel(channel), None)})
        except _DRIVER_ERRORS as exc:
            self._fail("listing symbols", exc)

    def days(self, exchange: str, channel: Channel, symbol: str | None = None) -> list[date]:
        """From the partition index: one small query."""
        try:
            entries = self._index(exchange, Channel(channel), symbol)
        except _DRIVER_ERRORS as exc:
            self._fail("listing days", exc)
        return [day_of_ns(day * NS_PER_DAY) for day in sorted({day for _, day in entries})]

    def _rows(
        self,
        exchange: str,
        channel: Channel,
        partitions: list[tuple[str, int]],
        low: int,
        high: int,
        needed: set[str] | None,
    ) -> pa.Table:
        """The records of the partitions with ``low <= ts < high`` from both layouts as a
        table of the record schema (fields not ``needed`` may be null), each record once,
        sorted stably by (ts, recv_ts). Where two writers' copies of a record differ in ``ts``
        (a local receive time), the rows within ``LOCAL_TS_MARGIN_NS`` around the range are
        merged first and the range cut after: a range then never returns the copy that lost,
        and two adjacent ranges never both return the record (as the embedded store)."""
        cut: tuple[int, int] | None = None
        if local_ts_merges(channel) and (low > _MIN_TS or high < _MAX_TS):
            cut = (low, high)
            low = max(_MIN_TS, low - LOCAL_TS_MARGIN_NS) if low > _MIN_TS else low
            high = min(_MAX_TS, high + LOCAL_TS_MARGIN_NS) if high < _MAX_TS else high
            partitions = self._with_previous_days(exchange, channel, partitions, low)
        table = self._merged_rows(exchange, channel, partitions, low, high, needed, cut)
        if cut is None or not table.num_rows:
            return table
        ts = table.column("ts").cast(pa.int64())
        return table.filter(pc.and_(pc.greater_equal(ts, cut[0]), pc.less(ts, cut[1])))

    def _with_previous_days(
        self, exchange: str, channel: Channel, partitions: list[tuple[str, int]], low: int
    ) -> list[tuple[str, int]]:
        """``partitions`` plus each symbol's day before its first one where ``low`` (a range
        widened by the merge margin) reaches into it: another writer's copy received just
        before midnight lies in that day's partition and, received first, wins the merge."""
        firsts: dict[str, int] = {}
        for symbol, day in partitions:
            firsts[symbol] = min(day, firsts.get(symbol, day))
        wanted = {(s, d - 1) for s, d in firsts.items() if low < d * NS_PER_DAY}
        if not wanted:
            return partitions
        only = next(iter(firsts)) if len(firsts) == 1 else None
        stored = set(self._index(exchange, channel, only))
        return sorted({*partitions, *(wanted & stored)})

    def _merged_rows(
        self,
        exchange: str,
        channel: Channel,
        partitions: list[tuple[str, int]],
        low: int,
        high: int,
        needed: set[str] | None,
        returned: tuple[int, int] | None = None,
    ) -> pa.Table:
        """The merged rows; ``returned``: the range the caller cuts (see ``deduplicate``)."""
        schema = SCHEMAS[channel]
        parts: list[pa.Table] = []
        chunk_spec = self._chunk_table(channel)
        # the merge compares the record keys and recv_ts (hundi.stores.merge): chunks may
        # overlap (re-sent, two collectors), rows may repeat them, and rows whose key holds a
        # local ts (spot bbo, snapshots) of two collectors do not replace each other
        if needed is not None:
            needed = {*needed, *needed_columns(channel)}
        # Rows before chunks: ``hundi store migrate`` writes a day's chunks before it deletes
        # its rows, so whatever it deletes while the rows are read is in the chunks read next
        # (read the other way round, a migration between the two lost the day's rows: found
        # by review).
        rows: list[tuple[Any, ...]] = []
        spec = self._specs.get(channel)
        fields: tuple[str, ...] = ()
        if spec is not None:  # None: read-only and the table was never created
            fields = tuple(
                f for f in self._readable[channel] if needed is None or f in needed or f == "ts"
            )
            rows = self._fetch(spec, fields, exchange, partitions, low, high)
        if chunk_spec is not None:
            parts = self._fetch_chunks(chunk_spec, exchange, partitions, low, high, needed)
        if rows:
            table = _table(schema, fields, rows)
            if parts:  # beside chunks: a row is a record of its own (one per key already)
                unique = -1 - np.arange(table.num_rows, dtype=np.int64)
                table = table.append_column(SOURCE, pa.array(unique))
            parts.append(table)
        if not parts:
            return plain_schema(schema).empty_table()
        # Columns stay in the chunks' buffers: the DataFrame copies them once; a merge or sort
        # that has to take rows combines them first (take over hundreds of chunks is slow).
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        table = deduplicate(table, channel, returned=returned)
        # rows tied on (ts, recv_ts) in exchange-id order, as the row layout's clustering gives
        tie_ids = [
            name
            for name in RECORD_TYPES[channel].IDENTITY
            if name in table.column_names and pa.types.is_integer(table.schema.field(name).type)
        ]
        if _in_time_order(table, tie_ids):
            return table
        keys = [("ts", "ascending"), ("recv_ts", "ascending")]
        keys += [(name, "ascending") for name in tie_ids]
        table = table.combine_chunks()
        return table.take(pc.sort_indices(table, sort_keys=keys))

    def _chunk_table(self, channel: Channel) -> ChunkTableSpec | None:
        """The channel's chunk table, if it exists now. A table created after this store
        opened (a collector upgraded, or configured to chunk another channel, while
        ``hundi serve`` keeps its read-only store open) must be read too, or its records would
        be missing from every answer: until it exists, each read asks ``system_schema`` for it
        (one single-partition read)."""
        found = self._chunk_reads.get(channel)
        if found is not None:
            return found
        spec = chunk_table_spec(channel)
        if self._table_exists is None:
            self._table_exists = self._session.prepare(
                "SELECT column_name FROM system_schema.columns "
                "WHERE keyspace_name = ? AND table_name = ?"
            )
        found_columns = {
            str(name)
            for (name,) in self._session.execute(
                self._table_exists, (self.settings.keyspace, spec.name)
            )
        }
        if found_columns:
            self._chunk_writer_column[channel] = "writer" in found_columns
            self._chunk_reads[channel] = spec
            return spec
        return None

    def copies(
        self, *, exchange: str, symbol: str, channel: Channel, start_ns: int, end_ns: int
    ) -> pa.Table | None:
        """See :meth:`Store.copies`: the chunk tables' rows by their writer's run
        (:func:`process_writer`: a compacted hour's rows keep their run); rows of the
        row-per-record tables, and chunks no single run wrote, have none and are left out."""
        channel = Channel(channel)
        try:
            spec = self._chunk_table(channel)
            if spec is None:
                return None
            partitions = self._partitions(exchange, channel, symbol, start_ns, end_ns)
            found = self._fetch_chunks(
                spec, exchange, partitions, start_ns, end_ns, {"ts"}, by_run=True
            )
        except _DRIVER_ERRORS as exc:
            self._fail(f"reading {channel.value}", exc)
        if not found:
            return pa.table({"ts": pa.array([], pa.int64()), "writer": pa.array([], pa.int64())})
        table = pa.concat_tables(found)
        stamps = table.column("ts").cast(pa.int64())
        writer = table.column(SOURCE).cast(pa.int64())
        known = pc.greater_equal(writer, 0)
        return pa.table({"ts": stamps, "writer": writer}).filter(known)

    def _fetch_chunks(
        self,
        spec: ChunkTableSpec,
        exchange: str,
        partitions: list[tuple[str, int]],
        low: int,
        high: int,
        fields: set[str] | None = None,
        *,
        by_run: bool = False,
    ) -> list[pa.Table]:
        """The records of ``low <= ts < high`` in the chunks of the partitions (``fields`` of
        them, the others null; None: all), one table per symbol. One query per partition hour
        (chunks never cross an hour), a bounded number in flight; each chunk is checked whole
        and decoded at once, the columns built once per symbol. ``by_run``: each row's
        ``SOURCE`` is its :func:`process_writer` (-1 for none) instead of the chunk's writer."""
        queries: list[tuple[str, tuple[object, ...]]] = []
        floor = max(low, 0) // NS_PER_HOUR * NS_PER_HOUR  # a chunk starting before low ends in
        for symbol, day in partitions:  # low's hour at the latest
            for hour in hours_within(day, floor, high):
                start = day * NS_PER_DAY + hour * NS_PER_HOUR
                values = (exchange, symbol, day, start, min(start + NS_PER_HOUR, high), low)
                queries.append((symbol, values))
        by_symbol: dict[str, list[Future[pa.Table]]] = {}
        inside: dict[str, bool] = {}  # every chunk lies within [low, high): no filter needed
        # each row's writer as a small code (hundi.stores.merge.SOURCE); a chunk without one
        # (written before the column existed) is a writer of its own
        codes: dict[object, int] = {}
        sources: dict[str, list[tuple[int, int]]] = {}
        decoder = self._decoder()
        try:
            for (symbol, _), rows in zip(queries, self._paged(spec, [v for _, v in queries]),
                                         strict=True):  # fmt: skip
                for row in rows:
                    first_ts, chunk_id, last_ts, _, records, data = row[:6]
                    writer = row[6] if len(row) > 6 else None
                    key: object = writer if writer is not None else (symbol, chunk_id)
                    if by_run:
                        run = process_writer(writer)
                        key = run if run is not None else -1
                    # checked and decoded by the pool (hashlib and Arrow release the GIL) while
                    # the driver receives the next pages
                    by_symbol.setdefault(symbol, []).append(
                        decoder.submit(
                            read_chunk, spec.channel, exchange, symbol, first_ts=first_ts,
                            chunk_id=chunk_id, records=records, data=data, fields=fields,
                        )
                    )  # fmt: skip
                    code = -1 if key == -1 else codes.setdefault(key, len(codes))
                    sources.setdefault(symbol, []).append((code, records))
                    within = low <= first_ts and last_ts < high
                    inside[symbol] = inside.get(symbol, True) and within
            decoded = {
                symbol: [f.result() for f in futures] for symbol, futures in by_symbol.items()
            }
        finally:  # an error (a damaged chunk, the cluster gone) leaves no decoding behind
            for futures in by_symbol.values():
                for future in futures:
                    future.cancel()
        tables = []
        for symbol, stored in decoded.items():
            table = assemble(spec.channel, exchange, symbol, stored)
            chunk_codes, counts = zip(*sources[symbol], strict=True)
            table = table.append_column(
                SOURCE, pa.array(np.repeat(np.asarray(chunk_codes, np.int64), np.asarray(counts)))
            )
            if not inside[symbol]:
                ts = table.column("ts").cast(pa.int64())
                table = table.filter(pc.and_(pc.greater_equal(ts, low), pc.less(ts, high)))
            tables.append(table)
        return tables

    def _decoder(self) -> ThreadPoolExecutor:
        """Threads that check and decode chunks (hashlib and Arrow release the GIL), one per
        core; started at the first chunk read, stopped by :meth:`close`."""
        if self._decoding is None:
            workers = max(1, min(_DECODE_THREADS, os.cpu_count() or 1))
            self._decoding = ThreadPoolExecutor(workers, thread_name_prefix="hundi-chunks")
        return self._decoding

    def _prepared_chunk_reads(self, spec: ChunkTableSpec) -> _ChunkStatements:
        found = self._chunk_queries.get(spec.channel)
        if found is None:
            writer = self._chunk_writer_column.get(spec.channel, True)
            keyspace = self.settings.keyspace
            found = _ChunkStatements(
                self._session.prepare(spec.select_cql(keyspace, writer=writer)),
                self._session.prepare(spec.keys_cql(keyspace)),
                self._session.prepare(spec.exact_cql(keyspace, writer=writer)),
            )
            self._chunk_queries[spec.channel] = found
        return found

    def _paged(
        self, spec: ChunkTableSpec, values: list[tuple[object, ...]]
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Every chunk row of each query (``select_cql``'s values), in query order,
        ``_READ_WINDOW`` queries in flight; a query read in several pages is settled
        (:meth:`_read_meanwhile`)."""
        statements = self._prepared_chunk_reads(spec)
        pending: list[tuple[tuple[object, ...], ResponseFuture]] = []
        queue = iter(values)

        def start(items: list[tuple[object, ...]]) -> None:
            for item in items:
                statement = statements.select.bind(item)
                statement.fetch_size = _CHUNK_FETCH_SIZE
                pending.append((item, self._session.execute_async(statement)))

        start(_take(queue, _READ_WINDOW))
        while pending:
            item, future = pending.pop(0)
            result = future.result()
            start(_take(queue, 1))
            rows: list[tuple[Any, ...]] = []
            pages = 1
            while True:
                rows.extend(result.current_rows)
                if not result.has_more_pages:
                    break
                result.fetch_next_page()
                pages += 1
            if pages > 1:
                rows += self._read_meanwhile(statements, item, rows)
            yield rows

    def _read_meanwhile(
        self, statements: _ChunkStatements, values: tuple[object, ...], rows: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """The chunks of the query written while its pages were read, which paging may have
        passed. Paging is no snapshot: it resumes after the last key returned, so a compaction
        (or another pass of it) that writes its chunk at the hour's first ``ts`` and then
        deletes the chunks it replaces, while a read is between two pages, took most of the
        hour from that read without a word (found by review). A chunk is always written before
        those it replaces are deleted, so the hour's keys are listed again (one page) and each
        chunk not yet read is fetched by its key, until a listing holds nothing new; what is
        then read twice (old chunks and their compacted copy) the merge reads once."""
        read = {(row[0], row[1]) for row in rows}
        found: list[tuple[Any, ...]] = []
        exchange, symbol, day = values[:3]
        for _ in range(_SETTLE_TRIES):
            listing = statements.keys.bind(values)
            listing.fetch_size = _KEYS_FETCH_SIZE
            missing = [
                (first_ts, chunk_id)
                for first_ts, chunk_id in self._session.execute(listing)
                if (first_ts, chunk_id) not in read
            ]
            if not missing:
                return found
            for first_ts, chunk_id in missing:
                read.add((first_ts, chunk_id))  # gone meanwhile: its replacement is listed next
                found += self._session.execute(
                    statements.exact, (exchange, symbol, day, first_ts, chunk_id)
                )
        hour = values[3]
        since = window_time(hour) if isinstance(hour, int) else hour
        raise StoreUnavailable(
            f"{symbol}: the chunks from {since} kept changing while read; read again"
        )

    def last_position(
        self, exchange: str, symbol: str, channel: Channel, before_ns: int
    ) -> StreamPosition | None:
        """The newest row before ``before_ns``: the partition index gives the stream's days,
        and one ``ORDER BY ts DESC LIMIT 1`` query per day (newest first) finds it; the row's
        sequence id is the highest at that time (ids grow with time; the identity columns
        follow ``ts`` in the clustering order)."""
        if not self._opened:
            self._open()
        channel = Channel(channel)
        from_rows = self._last_row_position(exchange, symbol, channel, before_ns)
        try:
            chunk_spec = self._chunk_table(channel)
        except _DRIVER_ERRORS as exc:
            self._fail(f"finding where {symbol} {channel.value} ended", exc)
        if chunk_spec is None:
            return from_rows
        try:
            from_chunks = self._last_chunk_position(chunk_spec, exchange, symbol, before_ns)
        except _DRIVER_ERRORS as exc:
            self._fail(f"finding where {symbol} {channel.value} ended", exc)
        found = [p for p in (from_rows, from_chunks) if p is not None]
        return max(found, key=lambda p: (p.ts, p.last_id)) if found else None

    def _last_chunk_position(
        self, spec: ChunkTableSpec, exchange: str, symbol: str, before_ns: int
    ) -> StreamPosition | None:
        """The newest record before ``before_ns`` in the chunks: the newest hour with a chunk
        starting before it holds it (chunks never cross an hour), so hours are asked newest
        first and only chunks reaching past ``before_ns`` are decoded."""
        days = sorted(
            (d for _, d in self._partitions(exchange, spec.channel, symbol, _MIN_TS, before_ns)),
            reverse=True,
        )
        id_field = SEQUENCE_FIELDS.get(spec.channel)
        for day in days:
            for hour in reversed(hours_within(day, _MIN_TS, before_ns)):
                start = day * NS_PER_DAY + hour * NS_PER_HOUR
                values = (exchange, symbol, day, start, min(start + NS_PER_HOUR, before_ns), 0)
                rows = next(self._paged(spec, [values]))
                if not rows:
                    continue
                best = StreamPosition(ts=_MIN_TS)
                for row in rows:
                    first_ts, chunk_id, last_ts, last_id, records, data = row[:6]
                    if last_ts < before_ns:
                        seen = StreamPosition(last_ts, -1 if last_id is None else int(last_id))
                    else:
                        table = read_chunk(
                            spec.channel, exchange, symbol, first_ts=first_ts,
                            chunk_id=chunk_id, records=records, data=data,
                        )  # fmt: skip
                        ts = table.column("ts").cast(pa.int64())
                        table = table.filter(pc.less(ts, before_ns))
                        newest = pc.max(table.column("ts").cast(pa.int64())).as_py()
                        ids = pc.max(table.column(id_field)).as_py() if id_field else None
                        seen = StreamPosition(newest, -1 if ids is None else int(ids))
                    best = StreamPosition(max(best.ts, seen.ts), max(best.last_id, seen.last_id))
                return best
        return None

    def _last_row_position(
        self, exchange: str, symbol: str, channel: Channel, before_ns: int
    ) -> StreamPosition | None:
        spec = self._specs.get(channel)
        if spec is None:
            return None
        id_field = SEQUENCE_FIELDS.get(channel)
        fields = ("ts",) if id_field is None else ("ts", id_field)
        try:
            days = sorted(
                (d for _, d in self._partitions(exchange, channel, symbol, _MIN_TS, before_ns)),
                reverse=True,
            )
            if not days:
                return None
            select = self._session.prepare(spec.last_row_cql(self.settings.keyspace, fields))
            for day in days:
                for key in reversed(
                    _partition_keys(spec, exchange, symbol, day, _MIN_TS, before_ns)
                ):
                    row = self._session.execute(select, (*key, before_ns)).one()
                    if row is not None:
                        return StreamPosition(
                            ts=int(row[0]), last_id=int(row[1]) if id_field is not None else -1
                        )
        except _DRIVER_ERRORS as exc:
            self._fail(f"finding where {symbol} {channel.value} ended", exc)
        return None

    def _partitions(
        self, exchange: str, channel: Channel, symbol: str | None, low: int, high: int
    ) -> list[tuple[str, int]]:
        """(symbol, day) partitions that may hold rows with ``low <= ts < high``, in order."""
        first_day = low // NS_PER_DAY
        last_day = (high - 1) // NS_PER_DAY
        found = self._index(exchange, channel, symbol)
        return sorted((s, d) for s, d in found if first_day <= d <= last_day)

    def _index(self, exchange: str, channel: Channel, symbol: str | None) -> list[tuple[str, int]]:
        """Every (symbol, day) partition of the channel (of ``symbol``) the index lists."""
        if not self._opened:
            self._open()
        if symbol is None:
            found = self._session.execute(self._index_all, (exchange, channel.value))
        else:
            found = self._session.execute(self._index_by_symbol, (exchange, channel.value, symbol))
        return [(str(s), int(d)) for s, d in found]

    def _fetch(
        self,
        spec: TableSpec,
        fields: tuple[str, ...],
        exchange: str,
        partitions: list[tuple[str, int]],
        low: int,
        high: int,
    ) -> list[tuple[Any, ...]]:
        """Every row of the partitions, partition by partition, a bounded number in flight."""
        select = self._selects.get((spec.channel, fields))
        if select is None:
            select = self._session.prepare(spec.select_cql(self.settings.keyspace, fields))
            self._selects[spec.channel, fields] = select
        rows: list[tuple[Any, ...]] = []
        pending: list[ResponseFuture] = []
        queue = iter(
            [
                key
                for symbol, day in partitions
                for key in _partition_keys(spec, exchange, symbol, day, low, high)
            ]
        )
        for key in _take(queue, _READ_WINDOW):
            pending.append(self._session.execute_async(select, (*key, low, high)))
        while pending:
            result = pending.pop(0).result()
            for key in _take(queue, 1):
                pending.append(self._session.execute_async(select, (*key, low, high)))
            while True:
                rows.extend(result.current_rows)
                if not result.has_more_pages:
                    break
                result.fetch_next_page()
        return rows


class _ChunkStatements(NamedTuple):
    """A chunk table's prepared reads: by time range, the keys of the same, one by its key."""

    select: PreparedStatement
    keys: PreparedStatement
    exact: PreparedStatement


@dataclass(frozen=True, slots=True)
class _Insert:
    """A channel's prepared INSERT, its record → row getter and its row encoder."""

    prepared: PreparedStatement
    row_of: Callable[[Record], tuple[Any, ...]]
    encoder: RowEncoder


def _bound(prepared: PreparedStatement, values: list[bytes]) -> BoundStatement:
    """A bound INSERT from already serialized values (see :mod:`.encode`)."""
    statement = BoundStatement(prepared)
    statement.values = values
    return statement


def _partition_keys(
    spec: TableSpec, exchange: str, symbol: str, day: int, low: int, high: int
) -> list[tuple[str | int, ...]]:
    """The partition key values of one indexed (symbol, day) that may hold rows with
    ``low <= ts < high``: the day itself, or its hours for an hourly table (oldest first)."""
    if not spec.hourly:
        return [(exchange, symbol, day)]
    return [(exchange, symbol, day, hour) for hour in hours_within(day, low, high)]


def _take(items: Iterable[_Key], count: int) -> list[_Key]:
    taken = []
    for item in items:
        taken.append(item)
        if len(taken) == count:
            break
    return taken


def _table(schema: pa.Schema, fields: tuple[str, ...], rows: list[tuple[Any, ...]]) -> pa.Table:
    """Row tuples of ``fields`` → a table with the record schema's columns and types (a field
    the table lacks is all null), in the order read."""
    plain = plain_schema(schema)
    if not rows:
        return plain.empty_table()
    columns = dict(zip(fields, zip(*rows, strict=True), strict=True))
    arrays = [
        pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(len(rows), f.type)
        for f in plain
    ]
    return pa.Table.from_arrays(arrays, schema=plain)


def _in_time_order(table: pa.Table, tie_ids: Sequence[str]) -> bool:
    """Sorted by (ts, recv_ts, ``tie_ids[0]``) already (chunks of one stream usually are):
    checked with vectorised comparisons of neighbours, much cheaper than sorting."""
    if table.num_rows < 2:
        return True
    ts, recv = table.column("ts"), table.column("recv_ts")
    head, tail = slice(0, table.num_rows - 1), slice(1, None)
    ts_before, ts_after = ts[head], ts[tail]
    tied = pc.equal(ts_before, ts_after)
    recv_tied = pc.equal(recv[head], recv[tail])
    later = pc.or_(pc.less(ts_before, ts_after), pc.and_(tied, pc.less(recv[head], recv[tail])))
    if tie_ids:
        ids = table.column(tie_ids[0])
        later = pc.or_(later, pc.and_(pc.and_(tied, recv_tied), pc.less(ids[head], ids[tail])))
    return bool(pc.all(later).as_py())


__all__ = ["CassandraStore"]
