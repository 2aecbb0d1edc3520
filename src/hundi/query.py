"""Reading stored data back: ``hundi.read`` for notebooks and ``hundi query`` for the shell."""

from __future__ import annotations

import difflib
import io
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np
import pandas as pd

from hundi.records import SCHEMAS, Channel
from hundi.series.spec import SeriesSpecError, parse_duration
from hundi.stores.base import (
    AggregatingStore,
    Store,
    StoreError,
    Unsupported,
    glued_name,
    reading,
)

log = logging.getLogger("hundi.query")

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "AggregatingStore",
    "Ambiguous",
    "NotStored",
    "QueryError",
    "StoredChoices",
    "closest_first",
    "parse_channel",
    "parse_time",
    "query",
    "read",
    "resolve",
    "series_label",
    "stored_native",
]


class QueryError(ValueError):
    """A bad query argument; the message says which and why."""


class StoredChoices(QueryError):
    """A name the store cannot answer as asked; ``choices`` lists what it holds instead, the
    closest to the asked name first (so a caller, the CLI or the API, can offer them)."""

    def __init__(self, message: str, choices: Sequence[str]) -> None:
        super().__init__(message)
        self.choices = list(choices)


class NotStored(StoredChoices):
    """The store holds no such exchange, channel, symbol or series (a typo, or a stream never
    collected): said loudly instead of answering an empty result that looks like a quiet
    market. A known stream with nothing in the asked range is an empty result, not this."""


class Ambiguous(StoredChoices):
    """The name fits several stored ones (``BTCUSDT``: spot ``BTC-USDT`` and the perpetual
    ``BTC-USDT-PERP``; a read that would mix several series): ``choices`` are the candidates."""


#: at most this many stored names in a message (all of them are in ``choices``)
SHOWN_CHOICES = 12


def _letters(name: str) -> str:
    """Letters only, upper case (``LINKUSD_211231`` → ``LINKUSD``)."""
    return "".join(ch for ch in name.upper() if ch.isalpha())


def closest_first(asked: str, names: Iterable[str]) -> list[str]:
    """``names`` (unique, sorted), those close to ``asked`` (``difflib``, ignoring case and
    separators) first, closest first."""
    unique = sorted({name for name in names if name})
    if not unique:
        return []
    by_glued: dict[str, list[str]] = {}
    for name in unique:
        by_glued.setdefault(glued_name(name), []).append(name)
    close = difflib.get_close_matches(
        glued_name(asked), list(by_glued), n=len(by_glued), cutoff=0.6
    )
    first = [name for key in close for name in by_glued[key]]
    return first + [name for name in unique if name not in first]


def _listed(choices: Sequence[str]) -> str:
    if not choices:
        return "nothing"
    shown = ", ".join(choices[:SHOWN_CHOICES])
    more = len(choices) - SHOWN_CHOICES
    return f"{shown} (and {more} more)" if more > 0 else shown


def stored_native(store: Store, exchange: str, channel: Channel, symbol: str) -> str | None:
    """How the exchange spells stored ``symbol`` (its ``native_symbol`` column, from one day
    of one column), None when no row says."""
    for _, table in store.read_days(
        exchange=exchange, symbol=symbol, channel=channel, columns=["native_symbol"],
        ordered=False,
    ):  # fmt: skip
        for value in table.column("native_symbol").to_pylist():
            if value:
                return str(value)
    return None


class _Listing:
    """What a store lists (``Store.exchanges/channels/symbols``), each asked once and kept for
    one call; no row is read. Raises :class:`Unsupported` where the store cannot list."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._exchanges: list[str] | None = None
        self._channels: dict[str, list[Channel]] = {}
        self._symbols: dict[tuple[str, Channel], list[str]] = {}

    def exchanges(self) -> list[str]:
        if self._exchanges is None:
            self._exchanges = self.store.exchanges()
        return self._exchanges

    def channels(self, exchange: str) -> list[Channel]:
        if exchange not in self._channels:
            self._channels[exchange] = self.store.channels(exchange)
        return self._channels[exchange]

    def symbols(self, exchange: str, channel: Channel) -> list[str]:
        key = (exchange, channel)
        if key not in self._symbols:
            self._symbols[key] = self.store.symbols(exchange, channel)
        return [s for s in self._symbols[key] if s]

    def holds_exchange_wide(self, exchange: str, channel: Channel) -> bool:
        """Rows of no one symbol (symbol ``""``: a reconnect event, say) are stored."""
        self.symbols(exchange, channel)
        return "" in self._symbols[(exchange, channel)]


def resolve(
    store: Store,
    exchange: str,
    symbol: str | None,
    channels: Channel | Sequence[Channel] = (),
) -> str | None:
    """Check a request against what ``store`` holds; return the symbol as stored.

    ``exchange`` must hold rows of one of ``channels`` (none given: of any channel), and
    ``symbol`` (None: all, unchecked) must be stored in one of those. A symbol the store does
    not list by that name is looked up among the stored ones it may be another spelling of
    (same letters and digits: ``btc-usdt``) or the exchange's own name of (their
    ``native_symbol`` column: ``BTCUSDT`` → ``BTC-USDT``, on USD-M ``BTC-USDT-PERP``).
    Raises :class:`NotStored` (what the store holds, closest first) or :class:`Ambiguous`
    (a native name of several stored symbols: spot and perpetual).

    Cheap: the store's listings only, each asked once per call, plus, for a name not listed,
    one column of one day of the few stored symbols it could be (a store that cannot read
    by day, KairosDB, matches by spelling only). A store that cannot list
    (:class:`Unsupported`) is not checked: the names are used as given.
    """
    wanted = [channels] if isinstance(channels, Channel) else list(channels)
    listing = _Listing(store)
    try:
        return _resolve(listing, exchange, symbol, wanted)
    except Unsupported:
        return symbol


def _resolve(
    listing: _Listing, exchange: str, symbol: str | None, wanted: list[Channel]
) -> str | None:
    where = listing.store.describe()
    held = listing.channels(exchange)
    if not held:
        choices = closest_first(exchange, listing.exchanges())
        raise NotStored(
            f"{where} holds no exchange {exchange!r}; it holds: {_listed(choices)}", choices
        )
    present = [c for c in wanted if c in held] if wanted else held
    names = " or ".join(c.value for c in wanted)
    if not present:
        choices = closest_first(wanted[0].value, [c.value for c in held])
        raise NotStored(
            f"{where} holds no {names} of {exchange}; it holds: {_listed(choices)}", choices
        )
    if symbol is None:
        return None
    if symbol == "" and any(listing.holds_exchange_wide(exchange, c) for c in present):
        return symbol
    found = _match(listing, exchange, symbol, present)
    if found is not None:
        return found
    stored = {s for c in present for s in listing.symbols(exchange, c)}
    choices = closest_first(symbol, stored)
    what = f"{names} of " if wanted else ""
    message = f"{where} holds no {what}{exchange} {symbol!r}"
    elsewhere = [c for c in held if c not in present]
    other = _match(listing, exchange, symbol, elsewhere) if elsewhere else None
    if other is not None:
        has = [c.value for c in elsewhere if other in listing.symbols(exchange, c)]
        message += f" ({other} has {', '.join(has)})"
    raise NotStored(f"{message}; symbols with {names or 'data'}: {_listed(choices)}", choices)


def _match(listing: _Listing, exchange: str, symbol: str, channels: list[Channel]) -> str | None:
    """The stored symbol of ``channels`` that ``symbol`` names: itself, another spelling of it
    or the one whose native name it is (None: none)."""
    by_symbol: dict[str, Channel] = {}
    for channel in channels:
        for name in listing.symbols(exchange, channel):
            by_symbol.setdefault(name, channel)
    if symbol in by_symbol:
        return symbol
    asked = glued_name(symbol)
    if not asked:
        return None
    # a native name glues to the start of the stored one (BTCUSDT: BTC-USDT, BTC-USDT-PERP),
    # but for digits: a delivery's native date may be shorter (LINKUSD_211231 is stored as
    # LINK-USD-20211231), so the letters decide who is a candidate and the stored native
    # name whether it is the one
    letters = _letters(asked)
    candidates = sorted(
        name
        for name in by_symbol
        if (_letters(name).startswith(letters) if letters else glued_name(name).startswith(asked))
    )
    matches = []
    for name in candidates:
        if glued_name(name) == asked:
            matches.append(name)
            continue
        try:
            native = stored_native(listing.store, exchange, by_symbol[name], name)
        except Unsupported:  # lists names but cannot read rows by day (KairosDB)
            native = None
        if native is not None and native.upper() == symbol.upper():
            matches.append(name)
    if len(matches) > 1:
        raise Ambiguous(
            f"{symbol!r} names {' and '.join(matches)} of {exchange} (all stored): ask for one",
            matches,
        )
    return matches[0] if matches else None


def parse_time(value: str | datetime | None, name: str) -> datetime | None:
    """ISO string or datetime → aware UTC datetime; naive values are UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise QueryError(
                f"{name}: {value!r} is not an ISO date/time (e.g. 2024-05-01T12:00:00Z)"
            ) from None
    if not isinstance(value, datetime):
        raise QueryError(f"{name}: expected an ISO string or datetime, got {type(value).__name__}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_channel(channel: str | Channel) -> Channel:
    try:
        return Channel(channel)
    except ValueError:
        known = ", ".join(c.value for c in Channel)
        raise QueryError(f"unknown channel {channel!r}; known: {known}") from None


def _names(value: str | Sequence[str] | None) -> list[str] | None:
    """``"a,b"`` or ``["a", "b"]`` → ``["a", "b"]``; ``""`` → ``[]``; None stays None."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item.strip()]


def series_label(interval: str) -> str:
    """An asked series → its stored ``interval`` name: ``60s`` and ``bars:1m`` → ``1m``;
    ``ticks:100`` and ``volume:2.5`` (tick and volume bars) as they are."""
    text = interval.strip().removeprefix("bars:")
    try:
        return parse_duration(text).label
    except SeriesSpecError:
        return text


def has_series(channel: Channel) -> bool:
    """Whether rows of ``channel`` belong to series told apart by their ``interval`` (bars of
    1s and 1m, book snapshots every 1s...)."""
    return "interval" in SCHEMAS[channel].names


def read(
    store: str | os.PathLike[str] | Store,
    *,
    exchange: str,
    symbol: str | None = None,
    channel: str | Channel = "trades",
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    aggregate: str | Sequence[str] | None = None,
    sampling: str | None = None,
    align: str | None = None,
    group_by: str | Sequence[str] | None = None,
    fields: str | Sequence[str] | None = None,
    interval: str | None = None,
    one_series: bool = False,
) -> pd.DataFrame:
    """Stored records as a DataFrame indexed by exchange time ``ts`` (UTC), ``start <= ts < end``.

    ``store`` is a URL (``./data``, ``file:./data``) or an open store; ``symbol=None`` reads all.
    ``symbol`` may be the exchange's own name (``BTCUSDT``); an exchange, channel or symbol the
    store does not hold raises :class:`NotStored` listing what it holds (:func:`resolve`).
    ``interval`` keeps one series of a series channel (``"1m"``, ``"ticks:100"``; the bars of
    every series otherwise, told apart by their ``interval`` column); ``one_series`` refuses
    (:class:`Ambiguous`) a read that would mix several. ``fields`` keeps only those value
    columns. Server-side aggregation (stores that support it, e.g. KairosDB): ``aggregate``
    (``"avg"``, ``["avg", "max"]``, ``"p99"``...) per ``sampling`` bucket (default ``1s``),
    ``align`` ``start``/``end``/``none``, ``group_by`` tags (default all of the channel's open
    tags, ``()`` aggregates across them).
    """
    selected = parse_channel(channel)
    first = parse_time(start, "start")
    last = parse_time(end, "end")
    if first is not None and last is not None and last < first:
        raise QueryError(f"end {last.isoformat()} is before start {first.isoformat()}")
    aggregators = _names(aggregate) or []
    columns = _names(fields)
    if not aggregators and (sampling is not None or align is not None or group_by is not None):
        raise QueryError("sampling, align and group_by need an aggregate (e.g. aggregate='avg')")
    label = series_label(interval) if interval is not None and interval.strip() else None
    if label is not None and not has_series(selected):
        with_series = ", ".join(c.value for c in Channel if has_series(c))
        raise QueryError(f"{selected} has no series to choose by interval; {with_series} have")
    if label is not None and aggregators:
        raise QueryError("interval chooses stored records; it does not combine with aggregate")
    with reading(store) as opened:
        symbol = resolve(opened, exchange, symbol, selected)
        if aggregators:
            if not isinstance(opened, AggregatingStore):
                raise QueryError(
                    f"store {opened.describe()} cannot aggregate on its server; read the records "
                    "and aggregate them with pandas (e.g. frame.resample('1s'))"
                )
            return opened.aggregate(
                exchange=exchange, channel=selected, symbol=symbol, start=first, end=last,
                aggregate=aggregators, sampling=sampling or "1s", align=align or "start",
                group_by=_names(group_by), fields=columns,
            )  # fmt: skip
        frame = opened.read(
            exchange=exchange, symbol=symbol, channel=selected, start=first, end=last
        )
        withheld = _withheld(opened, exchange, symbol, selected, first, last)
        if withheld:
            frame.attrs[WITHHELD] = withheld
            for line in withheld:
                log.warning("%s", line)
        if has_series(selected) and "interval" in frame.columns:
            frame = _one_series(opened, frame, exchange, symbol, selected, label, one_series)
        if columns is not None:
            unknown = [c for c in columns if c not in frame.columns]
            if unknown:
                known = ", ".join(map(str, frame.columns))
                raise QueryError(f"no field {', '.join(map(repr, unknown))} in {selected}; {known}")
            frame = frame[columns]
        return frame


WITHHELD = "withheld"  # frame.attrs: what the store holds of the range but did not return


def _withheld(
    store: Store,
    exchange: str,
    symbol: str | None,
    channel: Channel,
    first: datetime | None,
    last: datetime | None,
) -> list[str]:
    """:meth:`Store.withheld` over the read's days (``last`` is exclusive: an end at midnight
    does not reach into that day)."""
    low = first.date() if first is not None else date.min
    high = (last - timedelta(microseconds=1)).date() if last is not None else date.max
    return store.withheld(exchange, channel, symbol, low, high)


def _one_series(
    store: Store,
    frame: pd.DataFrame,
    exchange: str,
    symbol: str | None,
    channel: Channel,
    label: str | None,
    one_series: bool,
) -> pd.DataFrame:
    """The rows of series ``label`` (None: all, refused when ``one_series`` and they mix)."""
    held = sorted(frame["interval"].astype(str).unique())
    if label is None:
        if one_series and len(held) > 1:
            raise Ambiguous(
                f"{len(held)} {channel} series in the range: {', '.join(held)}; choose one "
                "(--interval)",
                held,
            )
        return frame
    chosen = frame[frame["interval"].astype(str) == label]
    if len(chosen):
        return chosen
    stored = _stored_series(store, exchange, symbol, channel, label)
    if label in stored:
        return chosen  # a known series, nothing of it in the range: an empty result
    choices = closest_first(label, stored)
    of = f"{exchange} {symbol}" if symbol is not None else exchange
    raise NotStored(
        f"{store.describe()} holds no {channel} series {label!r} of {of}; it holds: "
        f"{_listed(choices)}",
        choices,
    )


def _stored_series(
    store: Store, exchange: str, symbol: str | None, channel: Channel, label: str
) -> set[str]:
    """The ``interval`` names stored, day by day, stopping at the first day that has
    ``label`` (one dictionary column; only read when the asked series is not in the range).
    A store that cannot list its days is taken to hold ``label``."""
    found: set[str] = set()
    try:
        for _, table in store.read_days(
            exchange=exchange, symbol=symbol, channel=channel, columns=["interval"],
            ordered=False,
        ):  # fmt: skip
            found.update(str(v) for v in table.column("interval").unique().to_pylist())
            if label in found:
                break
    except Unsupported:
        found.add(label)
    return found


def _print_table(shown: pd.DataFrame, total: int, console: Console | None = None) -> None:
    """Small results in full; large ones as head and tail, with the counts.

    Columns holding one value throughout (exchange, symbol...) go into the title to save width.
    Numbers are printed whole, floats with the decimals the data has (``59999.61``): off a
    terminal the table is as wide as it needs; on one, the columns that do not fit go into
    further tables below (each with the time), never cut with an ellipsis.
    """
    from rich.console import Console
    from rich.table import Table

    head_tail = 10
    if console is None:
        console = Console()
    constant = [
        c
        for c in shown.columns
        if len(shown) > 0 and shown[c].dtype.kind in "OT" and shown[c].nunique() == 1
    ]
    labels = " ".join(f"{c}={shown[c].iloc[0]}" for c in constant)
    count = f"{total} rows" if len(shown) == total else f"{len(shown)} of {total} rows"
    title = f"{labels}  {count}".strip()
    cut = len(shown) > 2 * head_tail
    rows = pd.concat([shown.iloc[:head_tail], shown.iloc[-head_tail:]]) if cut else shown
    columns = [c for c in shown.columns if c not in constant]
    index = [_cell(value) for value in rows.index]
    cells = {column: _cells(rows[column]) for column in columns}
    widths = {c: max([len(str(c)), *map(len, cells[c])]) for c in columns}
    index_width = max([len(str(shown.index.name or "")), *map(len, index)])
    if not console.is_terminal:
        needed = index_width + sum(widths.values()) + 3 * (len(columns) + 1) + 1
        console = Console(file=console.file, width=max(needed, len(title), 80))
    groups = _fitting(columns, widths, index_width, console.width)
    for part, group in enumerate(groups):
        table = Table(
            title=title if part == 0 else None, title_justify="left", caption_justify="left"
        )
        table.add_column(str(shown.index.name or ""), style="cyan", no_wrap=True)
        for column in group:
            numeric = shown[column].dtype.kind in "iuf"
            table.add_column(
                str(column), justify="right" if numeric else "left", no_wrap=True,
                min_width=widths[column],
            )  # fmt: skip
        for i, stamp in enumerate(index):
            if cut and i == head_tail:
                table.add_row("…", *(["…"] * len(group)))
            table.add_row(stamp, *(cells[column][i] for column in group))
        if cut and part == len(groups) - 1:
            table.caption = f"first and last {head_tail} of {len(shown)} rows"
        console.print(table)


def _fitting(
    columns: list[str], widths: dict[str, int], index_width: int, available: int
) -> list[list[str]]:
    """``columns`` in groups that fit ``available`` characters beside the index column (a
    column wider than that alone gets a group of its own)."""
    groups: list[list[str]] = [[]]
    used = index_width + 4
    for column in columns:
        width = widths[column] + 3
        if groups[-1] and used + width > available:
            groups.append([])
            used = index_width + 4
        groups[-1].append(column)
        used += width
    return groups


#: at most this many decimals; a float that needs more is float noise (0.1 + 0.2) or a ratio
MAX_DECIMALS = 12


def _cells(values: pd.Series) -> list[str]:
    """A column's values as text: floats with the decimals the data has (the fewest that
    keep every value to 12 significant digits: a price at its tick, ``59999.61``)."""
    if values.dtype.kind != "f":
        return [_cell(value) for value in values]
    numbers = values.to_numpy(np.float64)
    finite = numbers[np.isfinite(numbers)]
    decimals = MAX_DECIMALS
    for places in range(MAX_DECIMALS + 1):
        if np.allclose(np.round(finite, places), finite, rtol=1e-12, atol=0.0):
            decimals = places
            break
    return [f"{v:.{decimals}f}" if np.isfinite(v) else str(v) for v in numbers.tolist()]


def _cell(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") + f"{value.nanosecond:03d}"
    return str(value)


@click.command()
@click.option("--store", "store_url", required=True, help="Store URL, e.g. ./data")
@click.option("--exchange", required=True)
@click.option(
    "--symbol", default=None,
    help="Symbol, normalized (BTC-USDT) or the exchange's own (BTCUSDT); default all.",
)  # fmt: skip
@click.option("--channel", default="trades", show_default=True)
@click.option(
    "--interval", "--series", "interval", default=None,
    help="The series of a series channel: 1s, 1m, ticks:100, volume:2.5 (bars); needed when "
    "the range holds several.",
)  # fmt: skip
@click.option("--start", default=None, help="ISO time, inclusive; naive = UTC.")
@click.option("--end", default=None, help="ISO time, exclusive; naive = UTC.")
@click.option(
    "--format", "output_format", type=click.Choice(["table", "csv", "parquet"]), default="table",
    show_default=True,
)  # fmt: skip
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Default: stdout.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most N rows (first).")
@click.option(
    "--field", "fields", multiple=True, help="Only this value column (repeatable); default all."
)
@click.option(
    "--aggregate", "aggregates", multiple=True,
    help="Server-side aggregator per --sampling bucket (repeatable): avg, min, max, sum, count, "
    "first, last, dev, p50, p99... (stores that aggregate, e.g. KairosDB).",
)  # fmt: skip
@click.option("--sampling", default=None, help="Bucket size for --aggregate: 500ms, 1s, 5min, 1h.")
@click.option(
    "--align", type=click.Choice(["start", "end", "none"]), default=None,
    help="Buckets at whole multiples of the sampling labelled by start (default) or end; "
    "none: from the query start, labelled by their first point.",
)  # fmt: skip
@click.option(
    "--group-by", default=None,
    help="Comma-separated tags to group --aggregate by (default: all open tags, e.g. symbol); "
    "'' aggregates across them.",
)  # fmt: skip
def query(
    store_url: str,
    exchange: str,
    symbol: str | None,
    channel: str,
    interval: str | None,
    start: str | None,
    end: str | None,
    output_format: str,
    output: Path | None,
    limit: int | None,
    fields: tuple[str, ...],
    aggregates: tuple[str, ...],
    sampling: str | None,
    align: str | None,
    group_by: str | None,
) -> None:
    """Print or export stored records (or server-side aggregates of them)."""
    try:
        frame = read(
            store_url, exchange=exchange, symbol=symbol, channel=channel, start=start, end=end,
            aggregate=list(aggregates) or None, sampling=sampling, align=align,
            group_by=group_by, fields=list(fields) or None, interval=interval, one_series=True,
        )  # fmt: skip
        total = len(frame)
        withheld = frame.attrs.get(WITHHELD, [])
        if limit is not None:
            frame = frame.iloc[:limit]
        if output_format == "table":
            _print_table(frame, total)
        elif output_format == "csv":
            if output is None:
                buffer = io.StringIO()
                frame.to_csv(buffer)
                click.echo(buffer.getvalue(), nl=False)
            else:
                frame.to_csv(output)
        else:
            if output is None:
                raise QueryError("--format parquet needs --output FILE")
            frame.to_parquet(output)
    except (QueryError, StoreError, OSError) as e:
        click.echo(f"hundi query: {e}", err=True)
        sys.exit(2)
    if withheld:  # the answer is incomplete: the lines were logged (stderr) by read
        sys.exit(1)
