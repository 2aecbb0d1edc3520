"""``hundi ls STORE``: what a store holds, the first thing to run on one.

One row per stream (exchange, channel, symbol): its native symbols, first and last ``ts``, row
count, UTC days stored, days missing between its first and last day, and its gaps (``gap``
events naming the stream) as :func:`hundi.coverage` judges them, by the same call: the holes
(the breaks it splits the stream's ranges at) and those another collector's data covers
(``covered_gaps``); run ``hundi.coverage(store, by="range")`` for each range and what ended it.

Cheap on a big store: rows and times come from the store's metadata where it keeps them
(:meth:`Store.day_stats`: the embedded store's Parquet footers), read on a few threads; a store
without them has its ``ts`` column read, one day at a time. Gaps come from the events channel,
which holds a handful of rows per day; only a stream with gap events stored is read (its ts and
sequence columns) to tell the holes from the covered ones.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import click
import pyarrow as pa
import pyarrow.compute as pc

from hundi.records import Channel, EventKind
from hundi.stores.base import (
    NS_PER_DAY,
    DayStats,
    Store,
    StoreError,
    Unsupported,
    day_start_ns,
    days_between,
    describe_url,
    open_store,
)

EXIT_LISTED, EXIT_CANNOT_LIST, EXIT_BAD_INPUT = 0, 1, 2
#: footer reads in flight: the embedded store's are file opens, bound by I/O latency not CPU
METADATA_THREADS = 8


@dataclass(slots=True)
class Stream:
    """One stored stream as ``hundi ls`` lists it."""

    exchange: str
    channel: Channel
    symbol: str
    native_symbols: list[str] = field(default_factory=list)
    first_ns: int = 0
    last_ns: int = 0
    rows: int = 0
    days: int = 0
    missing_days: list[date] = field(default_factory=list)
    gaps: int = 0  # holes: gap events no other collector's data covers
    covered_gaps: int = 0  # gap events another collector's data covers (not holes)
    #: "metadata" (the store's counts, no row read) or "rows" (the ts column was read)
    counted_from: str = "metadata"

    def as_json(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "channel": self.channel.value,
            "symbol": self.symbol,
            "native_symbols": self.native_symbols,
            "first": _iso(self.first_ns),
            "last": _iso(self.last_ns),
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "rows": self.rows,
            "days": self.days,
            "missing_days": [day.isoformat() for day in self.missing_days],
            "gaps": self.gaps,
            "covered_gaps": self.covered_gaps,
            "counted_from": self.counted_from,
        }


def list_streams(store: Store) -> list[Stream]:
    """Every stored stream of ``store``, sorted by exchange, channel and symbol. Unsupported
    when the store cannot list what it holds (KairosDB)."""
    streams: list[Stream] = []
    with ThreadPoolExecutor(METADATA_THREADS, thread_name_prefix="ls") as pool:
        for exchange in store.exchanges():
            gaps = _gap_counts(store, exchange)
            for channel in store.channels(exchange):
                for symbol in store.symbols(exchange, channel):
                    days = store.days(exchange, channel, symbol)
                    stats = pool.map(partial(_day, store, exchange, channel, symbol), days)
                    stream = _stream(exchange, channel, symbol, zip(days, stats, strict=True))
                    if stream is not None:
                        stream.gaps = gaps[(symbol, channel.value)]
                        if stream.gaps and channel is not Channel.EVENTS:
                            stream.gaps, stream.covered_gaps = _judged_gaps(
                                store, exchange, channel, symbol, stream.gaps
                            )
                        streams.append(stream)
    return streams


def _day(
    store: Store, exchange: str, channel: Channel, symbol: str, day: date
) -> tuple[DayStats, str]:
    """The day's stats and where they came from: the store's metadata, else its rows."""
    stats = store.day_stats(exchange, channel, symbol, day)
    if stats is not None:
        return stats, "metadata"
    first = day_start_ns(day)
    rows, low, high = 0, 0, 0
    natives: set[str] = set()
    for _, table in store.read_days(
        exchange=exchange, symbol=symbol, channel=channel, start_ns=first,
        end_ns=first + NS_PER_DAY, columns=["ts", "native_symbol"], ordered=False,
    ):  # fmt: skip
        if not table.num_rows:
            continue
        ts = pc.min_max(table.column("ts").cast(pa.int64()))
        day_low, day_high = int(ts["min"].as_py()), int(ts["max"].as_py())
        low = day_low if not rows else min(low, day_low)
        high = day_high if not rows else max(high, day_high)
        rows += table.num_rows
        natives.update(str(n) for n in pc.unique(table.column("native_symbol")).to_pylist())
    return DayStats(rows, low, high, tuple(sorted(natives))), "rows"


def _stream(
    exchange: str,
    channel: Channel,
    symbol: str,
    days: Iterable[tuple[date, tuple[DayStats, str]]],
) -> Stream | None:
    stream = Stream(exchange, channel, symbol)
    stored: list[date] = []
    natives: set[str] = set()
    for day, (stats, source) in days:
        if not stats.rows:
            continue
        if source != "metadata":
            stream.counted_from = source
        stream.first_ns = stats.first_ns if not stored else min(stream.first_ns, stats.first_ns)
        stream.last_ns = stats.last_ns if not stored else max(stream.last_ns, stats.last_ns)
        stream.rows += stats.rows
        natives.update(stats.native_symbols)
        stored.append(day)
    if not stored:
        return None
    stream.native_symbols = sorted(natives)
    stream.days = len(stored)
    present = set(stored)
    stream.missing_days = [d for d in days_between(min(stored), max(stored)) if d not in present]
    return stream


def _gap_counts(store: Store, exchange: str) -> Counter[tuple[str, str]]:
    """(symbol, channel) → gap events stored for that stream: the events channel only."""
    counts: Counter[tuple[str, str]] = Counter()
    if Channel.EVENTS not in store.channels(exchange):
        return counts
    for _, table in store.read_days(
        exchange=exchange, symbol=None, channel=Channel.EVENTS,
        columns=["symbol", "channel", "kind"], ordered=False,
    ):  # fmt: skip
        gaps = table.filter(pc.equal(table.column("kind"), EventKind.GAP.value))
        for row in gaps.group_by(["symbol", "channel"]).aggregate([([], "count_all")]).to_pylist():
            counts[(str(row["symbol"]), str(row["channel"]))] += int(row["count_all"])
    return counts


def _judged_gaps(
    store: Store, exchange: str, channel: Channel, symbol: str, stored: int
) -> tuple[int, int]:
    """(holes, covered gaps) of one stream with ``stored`` gap events, by
    :func:`hundi.coverage` itself: one judgement of what a hole is, so ``hundi ls`` and
    ``coverage`` never disagree (where coverage cannot tell, every gap event is a hole)."""
    from hundi.research import ResearchError
    from hundi.research.coverage import coverage  # pandas-heavy: only for streams with gaps

    try:
        judged = coverage(store, exchange, symbol=symbol, channel=channel, by="stream")
    except ResearchError:
        return stored, 0
    if judged.empty:
        return 0, 0
    return int(judged["gaps"].sum()), int(judged["covered"].sum())


def _iso(ns: int) -> str:
    """ISO 8601 UTC with nanoseconds: what the stored ``ts`` holds, exactly."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return f"{datetime.fromtimestamp(seconds, tz=UTC):%Y-%m-%dT%H:%M:%S}.{rest:09d}Z"


def _shown(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return f"{datetime.fromtimestamp(seconds, tz=UTC):%Y-%m-%d %H:%M:%S}.{rest // 1_000_000:03d}"


def _missing(days: list[date]) -> str:
    if not days:
        return ""
    if len(days) <= 2:
        return ", ".join(d.isoformat() for d in days)
    return f"{len(days)} ({days[0].isoformat()}..{days[-1].isoformat()})"


def _table_rows(streams: list[Stream]) -> Iterator[list[str]]:
    for s in streams:
        yield [
            s.exchange,
            s.channel.value,
            s.symbol or "(exchange)",
            ",".join(s.native_symbols),
            _shown(s.first_ns),
            _shown(s.last_ns),
            f"{s.rows:,}",
            str(s.days),
            _missing(s.missing_days),
            _gap_text(s) if s.channel is not Channel.EVENTS else "",
        ]


def _gap_text(stream: Stream) -> str:
    covered = f" (+{stream.covered_gaps} covered)" if stream.covered_gaps else ""
    return f"{stream.gaps}{covered}"


def _print_table(label: str, streams: list[Stream]) -> None:
    from rich.console import Console
    from rich.table import Table

    exchanges = len({s.exchange for s in streams})
    rows = sum(s.rows for s in streams)
    table = Table(
        title=f"{label}: {len(streams)} stream(s), {rows:,} rows, {exchanges} exchange(s)",
        title_justify="left",
    )
    for name in ("exchange", "channel", "symbol", "native", "first (UTC)", "last (UTC)"):
        table.add_column(name)
    for name in ("rows", "days", "missing days", "gaps"):
        table.add_column(name, justify="right")
    for row in _table_rows(streams):
        table.add_row(*row)
    Console(width=200 if not sys.stdout.isatty() else None).print(table)
    read = [s for s in streams if s.counted_from != "metadata"]
    if read:
        click.echo(f"{len(read)} stream(s) counted by reading their ts column (no metadata)")


@click.command("ls")
@click.argument("store_url", metavar="STORE")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout, for scripts.")
def ls(store_url: str, as_json: bool) -> None:
    """List what a store holds: streams, time ranges, row counts and gaps.

        STORE is a folder or a store URL (file:..., cassandra://...). One row per stream: exchange,
        channel, symbol (normalized, and as the exchange spells it), first and last time, rows, UTC
        days stored and missing in between, and its gaps: the holes, and those another collector's
    data covers, as hundi.coverage counts them. Exit 0 when listed,
        1 when the store cannot list what it holds (KairosDB) or fails meanwhile, 2 when STORE
        cannot be opened.
    """
    label = describe_url(store_url)
    try:
        store = open_store(store_url, read_only=True)
    except StoreError as exc:
        click.echo(f"hundi ls: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    try:
        problem = store.not_a_store()
        if problem is not None:
            click.echo(f"hundi ls: {problem}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        streams = list_streams(store)
    except Unsupported as exc:
        click.echo(f"hundi ls: {exc}: hundi ls needs a store that lists its data", err=True)
        sys.exit(EXIT_CANNOT_LIST)
    except StoreError as exc:
        click.echo(f"hundi ls: {exc}", err=True)
        sys.exit(EXIT_CANNOT_LIST)
    finally:
        store.close()
    if as_json:
        document = {"store": label, "streams": [s.as_json() for s in streams]}
        click.echo(json.dumps(document, indent=2))
    elif streams:
        _print_table(label, streams)
    else:
        click.echo(f"{label}: nothing stored")
