"""The store contract and the URL → store registry.

Stores are found by URL scheme through the ``hundi.stores`` entry-point group, so a new store
(KairosDB, Cassandra, ...) is a new package folder plus one entry point; the core never changes.
A bare path (no scheme) means the embedded store (scheme ``file``).

Reading is this contract, for notebooks, the research functions and the HTTP API alike:
``read`` (a range as one DataFrame), ``read_days`` (a range as Arrow tables of a few columns,
one UTC day at a time), ``exchanges``/``channels``/``symbols``/``days`` (what is stored;
:class:`Unsupported` where a store cannot tell without reading data), ``last_position``, for
caches of what is derived from a day (the book's checkpoints) ``day_version``/``read_day``/
``read_day_since``/``cache_home``, and the optional :class:`AggregatingStore` capability
(server-side aggregation). Each store implements them once; nothing above the stores knows how
one lays out its data.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol, runtime_checkable
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from hundi.records import (
    SCHEMAS,
    Channel,
    Record,
    column_array,
    empty_table_of,
    numpy_view,
    to_arrow,
)

if TYPE_CHECKING:  # pandas is imported where a read makes a frame: the collector never does
    import pandas as pd

NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Refusal:
    """A record a store can never hold (a value its column types cannot take: a bug upstream),
    left out so it cannot block every record after it; the writer counts it as lost and stores
    a ``gap`` event for it (:meth:`Store.take_refused`)."""

    channel: Channel
    record: Record
    reason: str


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a stored stream ends: its last ``ts`` (ns) and, for sequenced channels, its highest
    sequence id (trade id, book update id; -1 when the channel has none)."""

    ts: int
    last_id: int = -1


@dataclass(frozen=True, slots=True)
class DayStats:
    """What one UTC day of one symbol's channel holds, as :meth:`Store.day_stats` tells it from
    metadata: its row count, first and last ``ts`` (ns) and the native symbols of its rows."""

    rows: int
    first_ns: int
    last_ns: int
    native_symbols: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DayRead:
    """One UTC day of one symbol's channel as :meth:`Store.read_day` (or
    :meth:`Store.read_day_since`) read it, consistently: its rows, unsorted, and which version
    of the day they are."""

    #: :meth:`Store.day_version` of exactly the rows read (None: the store keeps no versions).
    version: str | None
    table: pa.Table
    #: What :meth:`Store.read_day_since` needs to read only the rows stored after these
    #: (opaque, store-specific; "" when the store cannot).
    manifest: str = ""
    #: :meth:`Store.read_day_since` only: how many rows of ``table`` were already read before
    #: (a store may have merged them with new ones into what it cannot split).
    repeated: int = 0


class StoreError(Exception):
    """A store failure with a message fit for the user (never containing secrets)."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now (no node answers, a request timed out): unlike a
    refusal (bad login, bad request) or damage, asking again later may succeed."""


class Unsupported(StoreError):
    """This store cannot do what was asked (list its days, its symbols...); the message says
    what, naming the store."""


class Store(ABC):
    """Where batches of records go, and where they are read back from.

    ``write`` is called from one writer thread (never the event loop) with records grouped by
    channel; it may buffer, but ``flush`` must make everything written so far durable and
    visible to readers in other processes. ``close`` flushes.
    """

    scheme: str = ""
    #: Re-writing a record is harmless (keyed upserts: Cassandra, KairosDB). Only such stores
    #: get the outage spool: after an outage the writer re-sends what the store may or may not
    #: have taken, which would duplicate rows in an append-only store.
    idempotent: ClassVar[bool] = False

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url

    @abstractmethod
    def write(self, batches: Mapping[Channel, Sequence[Record]]) -> None: ...

    @abstractmethod
    def flush(self) -> None: ...

    def close(self) -> None:
        self.flush()

    def refuse(self, channel: Channel, record: Record, reason: str) -> None:
        """Leave ``record`` out for good (see :class:`Refusal`): only once the ``write`` (row
        stores) or ``flush`` (buffering stores) that left it out succeeded, since a failed call
        is repeated with the same records."""
        self._refusals().append(Refusal(Channel(channel), record, reason))

    def _refusals(self) -> list[Refusal]:
        """This thread's refusals: one store object may serve several writer threads (a
        store in two feeds' store sets of one ``--config``), each accounting for its own."""
        local: threading.local = self.__dict__.setdefault("_refused", threading.local())
        if not hasattr(local, "items"):
            local.items = []
        items: list[Refusal] = local.items
        return items

    def writer_id(self) -> str | None:
        """Who this instance writes as, where the store records it per row or chunk (the
        merge's ``SOURCE``: one writer's rows sharing a key all stay); None: not recorded. The
        outage spool keeps it with each batch, see :meth:`writing_as`."""
        return None

    @contextmanager
    def writing_as(self, writer: str | None) -> Iterator[None]:
        """``write`` as ``writer`` (a :meth:`writer_id`, maybe of an earlier process) within the
        block: a batch spooled by one run and drained by the next stays the rows of the run
        that received it. Default: nothing to change."""
        yield

    def take_refused(self) -> list[Refusal]:
        """The records left out since the last call (the writer asks after each successful
        ``write`` and ``flush``, and forgets them after a failed one)."""
        refused = self._refusals()
        taken = list(refused)
        refused.clear()
        return taken

    def idle(self) -> None:
        """Housekeeping the writer calls at every flush tick with nothing to flush (no data
        arrives): work a store otherwise does only at a ``flush``. Default: nothing."""
        return None

    def discard(self) -> None:
        """Forget what was written since the last successful ``flush``.

        Called on idempotent stores when an outage makes the writer spool those batches: the
        store must not keep retrying them itself (they will be re-sent from the spool)."""
        raise NotImplementedError(f"{type(self).__name__} cannot discard unflushed writes")

    @abstractmethod
    def read(
        self,
        *,
        exchange: str,
        symbol: str | None,
        channel: Channel,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Records as a DataFrame indexed by exchange time ``ts`` (UTC), sorted."""

    def describe(self) -> str:
        """Human label for logs: the URL without credentials."""
        return describe_url(self.url)

    def not_a_store(self) -> str | None:
        """Why the location holds something other than a store (a mistyped path), so that a
        listing or check says so instead of "nothing stored"; None for a store, an empty one
        included. None by default."""
        return None

    def withheld(
        self, exchange: str, channel: Channel, symbol: str | None, first: date, last: date
    ) -> list[str]:
        """What the store holds of the stream on the UTC days ``first``..``last`` but no read
        returns (a damaged file set aside for a person to look at), one line each; a read of
        that range is then incomplete, and ``hundi query`` says so. Empty by default."""
        return []

    # -- listing: what is stored (Unsupported where a store cannot tell without reading data) --

    def exchanges(self) -> list[str]:
        """Exchanges with anything stored, sorted."""
        raise Unsupported(f"{self.describe()} cannot list its exchanges")

    def channels(self, exchange: str) -> list[Channel]:
        """Channels with anything stored for ``exchange``, sorted by name."""
        raise Unsupported(f"{self.describe()} cannot list its channels")

    def symbols(self, exchange: str, channel: Channel) -> list[str]:
        """Symbols with rows of ``channel`` stored, sorted."""
        raise Unsupported(f"{self.describe()} cannot list its symbols")

    def days(self, exchange: str, channel: Channel, symbol: str | None = None) -> list[date]:
        """UTC days with rows of ``channel`` (of ``symbol``; None: of any symbol), sorted."""
        raise Unsupported(f"{self.describe()} cannot list its days")

    def day_stats(self, exchange: str, channel: Channel, symbol: str, day: date) -> DayStats | None:
        """Rows, first/last ``ts`` and native symbols of one stored day from the store's
        metadata, without reading rows (``hundi ls`` on a big store). None: this store cannot
        tell without reading the day (or holds nothing for it)."""
        return None

    # -- streaming: a large range one UTC day at a time -------------------------------------

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
        """(day, Arrow table) per stored UTC day with rows of ``start_ns <= ts < end_ns``, in
        day order; days without such rows are skipped, so memory is bounded by one day.

        ``columns`` (default all of the channel's record fields) are returned in that order;
        names are plain strings, ``ts`` a UTC timestamp. ``ordered`` sorts each day stably by
        (ts, recv_ts), as :meth:`read` does; without it rows come in storage order.

        This default lists the days with :meth:`days` (without a listing it needs ``start_ns``
        and ``end_ns``) and reads each through :meth:`read`.
        """
        channel = Channel(channel)
        try:
            stored = self.days(exchange, channel, symbol)
        except Unsupported:
            if start_ns is None or end_ns is None:
                raise Unsupported(
                    f"{self.describe()} cannot list its days: reading it by day needs start and end"
                ) from None
            stored = days_between(day_of_ns(start_ns), day_of_ns(end_ns - 1))
        import pandas as pd

        for day in days_within(stored, start_ns, end_ns):
            first = day_start_ns(day)
            lo = first if start_ns is None else max(start_ns, first)
            hi = first + NS_PER_DAY if end_ns is None else min(end_ns, first + NS_PER_DAY)
            frame = self.read(
                exchange=exchange,
                symbol=symbol,
                channel=channel,
                start=pd.Timestamp(lo, unit="ns", tz="UTC"),
                end=pd.Timestamp(hi, unit="ns", tz="UTC"),
            ).reset_index()
            if columns is not None:
                frame = frame[list(columns)]
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if table.num_rows:
                yield day, table

    def copies(
        self, *, exchange: str, symbol: str, channel: Channel, start_ns: int, end_ns: int
    ) -> pa.Table | None:
        """Every stored copy's ``ts`` with ``start_ns <= ts < end_ns``, unmerged, with its
        ``writer`` (int64; one code per collector run within this answer, the same whether or
        not the store compacted the rows since; rows no single run is known to have written
        are left out). None: this store does not record writers. Coverage asks it whether a
        collector ran through another one's restart (:func:`hundi.stores.merge.ran_through`)."""
        return None

    # -- versioned days: for caches of what is derived from a day's rows ------------------------

    def day_version(self, exchange: str, channel: Channel, symbol: str, day: date) -> str | None:
        """A token that changes whenever the stored rows of ``symbol``'s ``channel`` on ``day``
        change (equal tokens: the same rows), cheap to get (no row is read). None: this store
        keeps no such token, so nothing derived from the day may be reused across reads."""
        return None

    def read_day(
        self,
        exchange: str,
        channel: Channel,
        symbol: str,
        day: date,
        *,
        columns: Sequence[str] | None = None,
    ) -> DayRead:
        """Every stored row of the day (unsorted) and its version, read consistently: the rows
        are exactly those of ``DayRead.version`` (a store whose data changed between listing
        and reading reads again). This default reads through :meth:`read_days` (version None).
        """
        channel = Channel(channel)
        first = day_start_ns(day)
        tables = [
            table
            for _, table in self.read_days(
                exchange=exchange, symbol=symbol, channel=channel, start_ns=first,
                end_ns=first + NS_PER_DAY, columns=columns, ordered=False,
            )
        ]  # fmt: skip
        if tables:
            return DayRead(None, pa.concat_tables(tables))
        return DayRead(None, empty_table(channel, columns))

    def read_day_since(
        self,
        exchange: str,
        channel: Channel,
        symbol: str,
        day: date,
        manifest: str,
        *,
        columns: Sequence[str] | None = None,
    ) -> DayRead | None:
        """The rows of the day stored since the read whose ``DayRead.manifest`` is ``manifest``
        (unsorted), with the day's new version and manifest: ``table`` holds every row added
        since, and ``repeated`` rows that were already read then. None when that cannot be told
        (rows read then are gone, or the store keeps no manifests): read the whole day again.
        """
        return None

    def cache_home(self) -> Path | None:
        """A directory beside the stored data where readers may keep what they derive from it
        (None: none; such caches then go under the user's cache directory, or nowhere)."""
        return None

    def last_position(
        self, exchange: str, symbol: str, channel: Channel, before_ns: int
    ) -> StreamPosition | None:
        """Where the stored stream ends among rows with ``ts < before_ns`` (None: nothing
        stored, or this store cannot tell cheaply). A collector compares its first records
        with it to record the hole since the previous run (:mod:`hundi.pipeline.resume`)."""
        return None


@runtime_checkable
class AggregatingStore(Protocol):
    """The aggregating capability: a store that aggregates on its server (KairosDB), buckets
    of ``sampling`` per group. Such a store keeps aggregates, not every record: what it
    :meth:`Store.read` returns are its stored series, not the records written."""

    def aggregate(
        self,
        *,
        exchange: str,
        channel: Channel | str,
        symbol: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        aggregate: Sequence[str] = (),
        sampling: str = "1s",
        align: str = "start",
        group_by: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
    ) -> pd.DataFrame: ...


def arrow_storable(
    channel: Channel, records: Sequence[Record]
) -> tuple[list[Record], list[tuple[Record, str]]]:
    """``records`` split into those the channel's Arrow schema can hold and the others with
    why (the field and value that do not fit); a conversion per record: error path only."""
    channel = Channel(channel)
    good: list[Record] = []
    bad: list[tuple[Record, str]] = []
    for record in records:
        try:
            to_arrow(channel, [record])
        except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
            bad.append((record, _unfit_field(channel, record, exc)))
            continue
        good.append(record)
    return good, bad


def _unfit_field(channel: Channel, record: Record, error: Exception) -> str:
    for field in SCHEMAS[channel]:
        value = getattr(record, field.name, None)
        try:
            column_array([value], 1, field.type)  # the very conversion ``to_arrow`` does
        except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
            return f"field {field.name}={value!r} cannot be stored: {exc}"
    return f"cannot be stored: {error}"


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """A record schema with its dictionary-encoded names as plain strings, the types every
    store's reads return."""
    return pa.schema(
        [
            pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
            for f in schema
        ]
    )


_CONSTANT_BLOCK_BYTES = 1 << 20


def constant_strings(text: str, count: int, *, large: bool = False) -> pa.ChunkedArray:
    """``count`` copies of ``text`` (a name column: one exchange, one symbol) as one block of
    at most ~1 MB that every chunk references again. Filling fresh memory is what reading a
    day cost most (a 2M-row day's name columns: ~45 MB, each copy of it paid again), so a
    name is not written out per row."""
    encoded = text.encode()
    block = min(count, max(1, _CONSTANT_BLOCK_BYTES // max(1, len(encoded))))
    offsets = np.arange(block + 1, dtype=np.int64 if large else np.int32) * len(encoded)
    kind = pa.large_string() if large else pa.string()
    one = pa.Array.from_buffers(
        kind, block, [None, pa.py_buffer(offsets), pa.py_buffer(encoded * block)]
    )
    whole, rest = divmod(count, block) if block else (0, 0)
    return pa.chunked_array([one] * whole + ([one.slice(0, rest)] if rest else []), kind)


def single_string(column: pa.ChunkedArray) -> str | None:
    """The one value of a string or dictionary-of-strings column without nulls, else None:
    a dictionary's values, or a min/max pass (no hashing, no copy)."""
    if len(column) == 0 or column.null_count:
        return None
    if pa.types.is_dictionary(column.type):
        names = {
            value
            for chunk in column.chunks
            if len(chunk)
            for value in chunk.dictionary.unique().to_pylist()
        }
        if len(names) == 1:  # every chunk's dictionary holds that one name
            return str(names.pop())
        column = column.cast(column.type.value_type)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return None
    seen: dict[tuple[int, ...], None] = {}  # chunks that are the same slice of the same buffers
    values = set()
    for chunk in column.chunks:
        key = (chunk.offset, len(chunk), *(b.address for b in chunk.buffers() if b is not None))
        if key in seen or not len(chunk):
            continue
        seen[key] = None
        low, high = pc.min_max(chunk).values()
        if low != high:
            return None
        values.add(low.as_py())
        if len(values) > 1:
            return None
    return str(values.pop()) if values else None


def stream_groups(
    table: pa.Table, bucket_ns: int
) -> list[tuple[str, str, int, npt.NDArray[np.int64] | None]]:
    """The rows of each (exchange, symbol, ``ts // bucket_ns``) of a table of records, in
    arrival order within each; rows ``None`` when the whole table is one group (nearly every
    flush of a busy stream: no copy). From the columns, not Python objects: the names'
    dictionary codes and the buckets of ``ts`` give one int64 key per row and a stable argsort
    groups them (a dict of Python tuples cost ~0.25 µs a record; an Arrow group-by ~6 ms a
    call, and it loads pandas into a collector)."""
    if table.num_rows == 0:
        return []
    exchanges, exchange_names = _codes(table.column("exchange"))
    symbols, symbol_names = _codes(table.column("symbol"))
    buckets = numpy_view(table.column("ts"), np.int64) // bucket_ns
    first, last = int(buckets.min()), int(buckets.max())
    if len(exchange_names) == 1 and len(symbol_names) == 1 and first == last:
        return [(exchange_names[0], symbol_names[0], first, None)]
    span = last - first + 1
    keys = (exchanges.astype(np.int64) * len(symbol_names) + symbols) * span + (buckets - first)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    groups: list[tuple[str, str, int, npt.NDArray[np.int64] | None]] = []
    for rows in np.split(order, starts[1:]):
        exchange, rest = divmod(int(keys[rows[0]]), len(symbol_names) * span)
        symbol, bucket = divmod(rest, span)
        groups.append((
            exchange_names[exchange], symbol_names[symbol], first + bucket,
            rows.astype(np.int64, copy=False),  # argsort's intp
        ))  # fmt: skip
    return groups


def _codes(column: pa.ChunkedArray) -> tuple[npt.NDArray[np.int32], list[str]]:
    """A name column as int32 codes and the distinct names they index (``to_arrow`` makes
    one dictionary chunk of distinct names; anything else is encoded here)."""
    kind = column.type
    if column.num_chunks == 1 and pa.types.is_dictionary(kind) and kind.index_type == pa.int32():
        names = column.chunk(0)
        distinct = names.dictionary.to_pylist()
        if len(set(distinct)) == len(distinct):
            return numpy_view(names.indices, np.int32), distinct
    plain = column.cast(kind.value_type) if pa.types.is_dictionary(kind) else column
    names = plain.combine_chunks().dictionary_encode()  # int32 codes of distinct names
    return numpy_view(names.indices, np.int32), names.dictionary.to_pylist()


def constant_nulls(count: int, kind: pa.DataType) -> pa.ChunkedArray:
    """``count`` nulls of ``kind`` (a field a read did not ask for) as one block every chunk
    references again, not ``count`` fresh zeros."""
    block = min(count, 1 << 16)
    one = pa.nulls(block, kind)
    whole, rest = divmod(count, block) if block else (0, 0)
    return pa.chunked_array([one] * whole + ([one.slice(0, rest)] if rest else []), kind)


def to_frame(table: pa.Table) -> pd.DataFrame:
    """A read's table → its DataFrame indexed by ``ts``: what ``table.to_pandas()`` gives
    (names as pandas strings), but a name column holding one value is not copied per row
    (:func:`constant_strings`; pandas would otherwise cast it to ``large_string``)."""
    columns = []
    for column in table.columns:
        kind = column.type
        if pa.types.is_dictionary(kind) or pa.types.is_string(kind):
            text = single_string(column)
            if text is not None:
                column = constant_strings(text, len(column), large=True)
            elif pa.types.is_dictionary(kind):
                column = column.cast(kind.value_type)
        columns.append(column)
    plain = pa.Table.from_arrays(columns, names=table.column_names)
    frame: pd.DataFrame = plain.to_pandas().set_index("ts")
    return frame


def empty_table(channel: Channel, columns: Sequence[str] | None = None) -> pa.Table:
    """No rows of ``channel``: its ``columns`` (default all), names as plain strings."""
    plain = plain_schema(SCHEMAS[Channel(channel)])
    wanted = list(columns) if columns is not None else plain.names
    return empty_table_of(plain).select(wanted)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
MIN_NS: Final = -(2**63)
MAX_NS: Final = 2**63 - 1


def ns_of(moment: datetime) -> int:
    """A datetime (naive: UTC) as ns since the epoch, exactly (a pandas Timestamp keeps its
    nanoseconds); beyond the int64 range (year 9999, ``datetime.min``) the range's end, an
    open bound: nothing is stored there, so a read asks for what there is, without an
    overflow. Not ``pd.Timestamp(...).value``: a collector never loads pandas."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    extra = getattr(moment, "nanosecond", 0)
    return min(max((aware - _EPOCH) // _MICROSECOND * 1000 + extra, MIN_NS), MAX_NS)


def glued_name(name: str) -> str:
    """Letters and digits only, upper case: ``btc-usdt`` and ``BTCUSDT`` glue to the same
    (how a symbol asked for in another spelling finds the stored one)."""
    return "".join(ch for ch in name.upper() if ch.isalnum())


def day_of_ns(ts_ns: int) -> date:
    """The UTC day of a time in ns (the partition unit of every store)."""
    return datetime.fromtimestamp(ts_ns // NS_PER_DAY * 86_400, tz=UTC).date()


def day_start_ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000_000


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def days_within(stored: Sequence[date], start_ns: int | None, end_ns: int | None) -> list[date]:
    """The days of ``stored`` that may hold rows with ``start_ns <= ts < end_ns``."""
    lo = day_of_ns(start_ns) if start_ns is not None else None
    hi = day_of_ns(end_ns - 1) if end_ns is not None else None
    return [d for d in stored if (lo is None or d >= lo) and (hi is None or d <= hi)]


def describe_url(url: str) -> str:
    """A store URL fit for logs and messages: a password in it is masked."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def scheme_of(url: str) -> str:
    parts = urlsplit(url)
    # Windows drive letters and bare paths have no real scheme.
    if not parts.scheme or len(parts.scheme) == 1:
        return "file"
    return parts.scheme


def open_store(url: str, **options: Any) -> Store:
    """Open the store a URL names (``./data``, ``file:./data``, ``kairosdb+http://...``)."""
    scheme = scheme_of(url)
    found = entry_points(group="hundi.stores", name=scheme)
    if not found:
        known = sorted(ep.name for ep in entry_points(group="hundi.stores"))
        raise StoreError(
            f"unknown store scheme {scheme!r} in {describe_url(url)!r}; known: {', '.join(known)}"
        )
    store_class = next(iter(found)).load()
    store: Store = store_class(url, **options)
    return store


@contextmanager
def reading(store: str | os.PathLike[str] | Store) -> Iterator[Store]:
    """The store to read from: one given open stays open; one opened here from a URL is closed
    when the read is done (a Cassandra store left open keeps its driver's threads and reconnects
    alive for the life of the process: a notebook leaked one per call)."""
    if isinstance(store, Store):
        yield store
        return
    opened = open_store(os.fspath(store), read_only=True)
    try:
        yield opened
    finally:
        opened.close()
