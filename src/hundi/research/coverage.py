"""Coverage report: which time ranges of each stream are stored, and what broke them.

A stream is (exchange, symbol, channel). Its rows are split into ranges at the stream's stored
``gap`` events (a hole the collector detected: skipped trade ids, a broken book sequence, a
dropped connection); resyncs of the stream and exchange-wide reconnects/stale connections are
counted in the range they fall in. So a hole is never silent: each range names the gap that
ended it, or is the last one, ended by a clean stop of the collector (a ``stopped`` event after
its last row) or by nothing stored yet (the data goes on, or the collector was killed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from hundi.query import parse_channel, resolve
from hundi.records import Channel, EventKind
from hundi.research._source import (
    ResearchError,
    StoreLike,
    TimeLike,
    index_ns,
    ns_to_timestamp,
    to_ns,
)
from hundi.stores.base import Store, Unsupported, reading

RANGE_COLUMNS = [
    "exchange",
    "symbol",
    "channel",
    "end",
    "rows",
    "ended_by",
    "gap_detail",
    "missing_ids",
    "recovered_ids",
    "unrecoverable_ids",
    "resyncs",
    "reconnects",
]
STREAM_COLUMNS = [
    "exchange",
    "symbol",
    "channel",
    "last",
    "rows",
    "ranges",
    "gaps",
    "missing_ids",
    "recovered_ids",
    "resyncs",
    "reconnects",
]


@dataclass(frozen=True, slots=True)
class _Window:
    start_ns: int | None
    end_ns: int | None


def coverage(
    store: StoreLike,
    exchange: str | None = None,
    *,
    symbol: str | None = None,
    channel: str | Channel | None = None,
    start: TimeLike = None,
    end: TimeLike = None,
    by: str = "range",
) -> pd.DataFrame:
    """Stored ranges per stream, indexed by each range's first ``ts`` (UTC).

    ``by="range"`` (default): one row per unbroken range with ``end`` (last ts), ``rows``,
    ``ended_by`` ("gap"; for the last range "stopped" when the collector stopped cleanly
    after it, else ""), the gap's ``gap_detail`` and
    ``missing_ids`` (trade ids skipped, -1 if not counted), of those ``recovered_ids`` (fetched
    back over REST: ``backfilled`` events) and ``unrecoverable_ids`` (the venue no longer had
    them), and the ``resyncs`` and ``reconnects`` that fell in the range. ``by="stream"``: one
    row per stream indexed by its first ts, with ``last``, ``rows``, ``ranges``, ``gaps``,
    ``missing_ids``, ``recovered_ids``, ``resyncs``, ``reconnects``.
    ``exchange=None`` lists every exchange (embedded store only).
    """
    if by not in ("range", "stream"):
        raise ResearchError(f"by must be 'range' or 'stream', not {by!r}")
    window = _Window(to_ns(start, "start"), to_ns(end, "end"))
    with reading(store) as opened:
        wanted = parse_channel(channel) if channel is not None else None
        if exchange is None:
            try:
                names = opened.exchanges()
            except Unsupported:
                message = f"{opened.describe()} cannot list its exchanges: name one"
                raise ResearchError(message) from None
        else:
            # a name the store does not hold is an error listing what it holds; a native
            # symbol (BTCUSDT) reads as the stored one
            symbol = resolve(opened, exchange, symbol, wanted if wanted is not None else ())
            names = [exchange]
        ranges = [
            frame
            for name in names
            for frame in _exchange_ranges(opened, name, symbol, wanted, window)
            if len(frame)
        ]
        table = pd.concat(ranges) if ranges else _empty(RANGE_COLUMNS)
        table = table.reset_index().sort_values(["exchange", "symbol", "channel", "start"])
        table = table.set_index("start")
        if by == "stream":
            return _by_stream(table)
        return table


def _exchange_ranges(
    store: Store, exchange: str, symbol: str | None, wanted: Channel | None, window: _Window
) -> Iterable[pd.DataFrame]:
    events = _ts_and(store, exchange, symbol=None, channel=Channel.EVENTS, window=window)
    connection = events[
        (events["symbol"] == "")
        & events["kind"].isin([EventKind.RECONNECT.value, EventKind.STALE.value])
    ]
    reconnect_ts = np.sort(index_ns(connection))
    stops = events[(events["symbol"] == "") & (events["kind"] == EventKind.STOPPED.value)]
    for channel in _channels(store, exchange, wanted):
        for name, stamps in _stream_times(store, exchange, symbol, channel, window):
            mine = events[(events["symbol"] == name) & (events["channel"] == channel.value)]
            yield _ranges(exchange, name, channel, stamps, mine, reconnect_ts, stops)


def _channels(store: Store, exchange: str, wanted: Channel | None) -> list[Channel]:
    if wanted is not None:
        return [wanted]
    try:
        stored = store.channels(exchange)
    except Unsupported:
        stored = list(Channel)  # every channel is looked for
    return [c for c in stored if c is not Channel.EVENTS]


def _stream_times(
    store: Store, exchange: str, symbol: str | None, channel: Channel, window: _Window
) -> Iterable[tuple[str, npt.NDArray[np.int64]]]:
    """(symbol, sorted ts in ns) per stored symbol of one channel."""
    if symbol is not None:
        names = [symbol]
    else:
        try:
            names = store.symbols(exchange, channel)
        except Unsupported:
            raise ResearchError(
                f"{store.describe()} cannot list its symbols: name one (symbol=...)"
            ) from None
    for name in names:
        try:
            parts = [
                table.column("ts").cast("int64").to_numpy()
                for _, table in store.read_days(
                    exchange=exchange, symbol=name, channel=channel, start_ns=window.start_ns,
                    end_ns=window.end_ns, columns=["ts"], ordered=False,
                )
            ]  # fmt: skip
        except Unsupported as exc:
            raise ResearchError(f"coverage: {exc}") from None
        if parts:
            yield name, np.sort(np.concatenate(parts))


def _ts_and(
    store: Store, exchange: str, *, symbol: str | None, channel: Channel, window: _Window
) -> pd.DataFrame:
    return store.read(
        exchange=exchange,
        symbol=symbol,
        channel=channel,
        start=_stamp(window.start_ns),
        end=_stamp(window.end_ns),
    )


def _stamp(ns: int | None) -> pd.Timestamp | None:
    return None if ns is None else ns_to_timestamp(ns)


def _ranges(
    exchange: str,
    symbol: str,
    channel: Channel,
    stamps: npt.NDArray[np.int64],
    events: pd.DataFrame,
    reconnect_ts: npt.NDArray[np.int64],
    exchange_stops: pd.DataFrame,
) -> pd.DataFrame:
    gaps = events[events["kind"] == EventKind.GAP.value]
    stop_times = [
        index_ns(events[events["kind"] == EventKind.STOPPED.value]),
        index_ns(exchange_stops),
    ]
    last_stop = max((int(t.max()) for t in stop_times if len(t)), default=None)
    gap_ts = index_ns(gaps)
    backfilled = _id_ranges(events, EventKind.BACKFILLED)
    unrecoverable = _id_ranges(events, EventKind.UNRECOVERABLE)
    # rows stamped at or after a gap belong to the range after it
    bounds = np.searchsorted(stamps, gap_ts, side="left")
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [len(stamps)]])
    resync_ts = np.sort(index_ns(events[events["kind"] == EventKind.RESYNC.value]))
    records = []
    for i, (lo, hi) in enumerate(zip(starts.tolist(), stops.tolist(), strict=True)):
        if hi <= lo:
            continue  # two gaps with nothing stored between them: counted in the next range
        ended = i < len(gap_ts)
        first, last = int(stamps[lo]), int(stamps[hi - 1])
        span_end = int(gap_ts[i]) if ended else last
        expected = int(gaps["expected"].iloc[i]) if ended else -1
        received = int(gaps["received"].iloc[i]) if ended else -1
        counted = ended and channel is Channel.TRADES and expected >= 0 and received >= 0
        records.append(
            {
                "start": first,
                "exchange": exchange,
                "symbol": symbol,
                "channel": channel.value,
                "end": ns_to_timestamp(last),
                "rows": hi - lo,
                "ended_by": "gap" if ended else _end_of_data(last, last_stop),
                "gap_detail": str(gaps["detail"].iloc[i]) if ended else "",
                "missing_ids": received - expected if counted else -1,
                "recovered_ids": _overlap(backfilled, expected, received) if counted else -1,
                "unrecoverable_ids": (
                    _overlap(unrecoverable, expected, received) if counted else -1
                ),
                "resyncs": _count_in(resync_ts, first, span_end),
                "reconnects": _count_in(reconnect_ts, first, span_end),
            }
        )
    frame = pd.DataFrame.from_records(records, columns=["start", *RANGE_COLUMNS])
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("start"), unit="ns", utc=True))
    frame.index.name = "start"
    return frame


def _end_of_data(last_ns: int, last_stop_ns: int | None) -> str:
    """Why the last range ends: "stopped" when the collector stopped cleanly at or after its
    last row, else "" (the data goes on, or the collector died without saying so)."""
    return "stopped" if last_stop_ns is not None and last_stop_ns >= last_ns else ""


def _id_ranges(events: pd.DataFrame, kind: EventKind) -> list[tuple[int, int]]:
    """The ``[expected, received)`` id ranges of ``kind`` events, merged and sorted."""
    chosen = events[events["kind"] == kind.value]
    spans = sorted(zip(chosen["expected"].tolist(), chosen["received"].tolist(), strict=True))
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _overlap(spans: list[tuple[int, int]], lo: int, hi: int) -> int:
    """How many ids of ``[lo, hi)`` the merged ``spans`` cover."""
    return sum(max(0, min(hi, b) - max(lo, a)) for a, b in spans)


def _count_in(sorted_ts: npt.NDArray[np.int64], lo: int, hi: int) -> int:
    return int(np.searchsorted(sorted_ts, hi, "right") - np.searchsorted(sorted_ts, lo, "left"))


def _by_stream(ranges: pd.DataFrame) -> pd.DataFrame:
    if ranges.empty:
        return _empty(STREAM_COLUMNS, "first")
    keyed = ranges.reset_index()
    grouped = keyed.groupby(["exchange", "symbol", "channel"], sort=True)
    frame = grouped.agg(
        first=("start", "min"),
        last=("end", "max"),
        rows=("rows", "sum"),
        ranges=("rows", "size"),
        gaps=("ended_by", lambda s: int((s == "gap").sum())),
        missing_ids=("missing_ids", lambda s: int(s[s >= 0].sum())),
        recovered_ids=("recovered_ids", lambda s: int(s[s >= 0].sum())),
        resyncs=("resyncs", "sum"),
        reconnects=("reconnects", "sum"),
    ).reset_index()
    return frame.set_index("first")[STREAM_COLUMNS].sort_values(["exchange", "symbol", "channel"])


def _empty(columns: list[str], index_name: str = "start") -> pd.DataFrame:
    index = pd.DatetimeIndex([], tz="UTC", name=index_name)
    return pd.DataFrame({c: [] for c in columns}, index=index)
