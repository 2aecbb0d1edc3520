"""Coverage report: which time ranges of each stream are stored, and what broke them.

A stream is (exchange, symbol, channel). Its rows are split into ranges at the stream's stored
``gap`` events (a hole the collector detected: skipped trade ids, a broken book sequence, a
dropped connection); resyncs of the stream and exchange-wide reconnects/stale connections are
counted in the range they fall in. So a hole is never silent: each range names the gap that
ended it, or is the last one, ended by a clean stop of the collector (a ``stopped`` event after
its last row) or by nothing stored yet (the data goes on, or the collector was killed).

With two collectors on one stream (docs/guarantees.md, "Two collectors on one stream"), a gap
one of them stored is *covered* where the merged data runs on across it
(:func:`hundi.stores.merge.covered_gaps`): it does not end a range, and the range counts it in
``covered`` and names it in ``covered_detail``. A trade gap fetched back over REST stays a gap
(with its ``recovered_ids``), as with one collector.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from hundi.query import parse_channel, resolve
from hundi.records import Channel, EventKind
from hundi.research._source import (
    ResearchError,
    StoreLike,
    TimeLike,
    index_ns,
    ns_to_timestamp,
    time_window,
)
from hundi.stores.base import Store, Unsupported, reading
from hundi.stores.merge import (
    RESTART_FLOOR_NS,
    RUN_THROUGH_HORIZON_NS,
    covered_gaps,
    own_restart_window,
    ran_through,
    trade_holes,
)

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
    "covered",
    "covered_detail",
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
    "covered",
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
    them), the ``resyncs`` and ``reconnects`` that fell in the range, and ``covered``: how
    many gaps stored inside it another collector's data covers (``covered_detail`` their
    details). ``by="stream"``: one row per stream indexed by its first ts, with ``last``,
    ``rows``, ``ranges``, ``gaps``, ``missing_ids``, ``recovered_ids``, ``resyncs``,
    ``reconnects``, ``covered``.
    ``exchange=None`` lists every exchange (embedded store only).
    """
    if by not in ("range", "stream"):
        raise ResearchError(f"by must be 'range' or 'stream', not {by!r}")
    window = _Window(*time_window(start, end))
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
    reconnect_ts = np.sort(index_ns(_connection_events(events)))
    stops = events[(events["symbol"] == "") & (events["kind"] == EventKind.STOPPED.value)]
    for channel in _channels(store, exchange, wanted):
        for name, data in _stream_data(store, exchange, symbol, channel, window):
            mine = events[(events["symbol"] == name) & (events["channel"] == channel.value)]
            yield _ranges(store, exchange, name, channel, data, mine, reconnect_ts, stops)


def _channels(store: Store, exchange: str, wanted: Channel | None) -> list[Channel]:
    if wanted is not None:
        return [wanted]
    try:
        stored = store.channels(exchange)
    except Unsupported:
        stored = list(Channel)  # every channel is looked for
    return [c for c in stored if c is not Channel.EVENTS]


def _covering_columns(channel: Channel) -> list[str]:
    """The columns that tell whether a gap is covered (:func:`covered_gaps`)."""
    if channel is Channel.TRADES:
        return ["ts", "trade_id"]
    if channel is Channel.BOOK:
        return ["ts", "snapshot", "first_update_id", "update_id", "prev_update_id"]
    return ["ts"]


def _stream_data(
    store: Store, exchange: str, symbol: str | None, channel: Channel, window: _Window
) -> Iterable[tuple[str, pa.Table]]:
    """(symbol, its merged rows' ts and sequence columns) per stored symbol of one channel."""
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
                table
                for _, table in store.read_days(
                    exchange=exchange, symbol=name, channel=channel, start_ns=window.start_ns,
                    end_ns=window.end_ns, columns=_covering_columns(channel), ordered=False,
                )
            ]  # fmt: skip
        except Unsupported as exc:
            raise ResearchError(f"coverage: {exc}") from None
        if parts:
            yield name, pa.concat_tables(parts)


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
    store: Store,
    exchange: str,
    symbol: str,
    channel: Channel,
    data: pa.Table,
    events: pd.DataFrame,
    reconnect_ts: npt.NDArray[np.int64],
    exchange_stops: pd.DataFrame,
) -> pd.DataFrame:
    stamps = np.sort(data.column("ts").cast(pa.int64()).to_numpy())
    all_gaps = events[events["kind"] == EventKind.GAP.value]
    covered, hole_low, hole_high, absent = _covered(channel, all_gaps, data, events)
    if channel not in (Channel.TRADES, Channel.BOOK):
        judged, by_writers = _by_writers(store, exchange, symbol, channel, all_gaps)
        covered = np.where(judged, by_writers, covered)
    gaps = all_gaps[~covered]
    # the ids each hole lost, and of its gap's ids those none stored
    hole_low, hole_high, absent = hole_low[~covered], hole_high[~covered], absent[~covered]
    covered_ts = index_ns(all_gaps[covered])
    covered_details = all_gaps["detail"][covered].astype(str).tolist()
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
    records: list[dict[str, object]] = []
    for i, (lo, hi) in enumerate(zip(starts.tolist(), stops.tolist(), strict=True)):
        if hi <= lo:
            continue  # two gaps with nothing stored between them: counted in the next range
        ended = i < len(gap_ts)
        first, last = int(stamps[lo]), int(stamps[hi - 1])
        span_end = int(gap_ts[i]) if ended else last
        expected = int(hole_low[i]) if ended else -1
        received = int(hole_high[i]) if ended else -1
        counted = ended and channel is Channel.TRADES and expected >= 0 and received >= 0
        recovered = _overlap(backfilled, expected, received) if counted else -1
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
                # the ids no collector stored, and those fetched back since; not the ids
                # another collector stored (found by review: a pair over-counted them): the
                # fetched ones counted over the hole as trade_holes narrowed it
                "missing_ids": int(absent[i]) + recovered if counted else -1,
                "recovered_ids": recovered,
                "unrecoverable_ids": (
                    _overlap(unrecoverable, expected, received) if counted else -1
                ),
                "resyncs": _count_in(resync_ts, first, span_end),
                "reconnects": _count_in(reconnect_ts, first, span_end),
            }
        )
    if records:
        _place_covered(records, covered_ts, covered_details)
    frame = pd.DataFrame.from_records(records, columns=["start", *RANGE_COLUMNS])
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("start"), unit="ns", utc=True))
    frame.index.name = "start"
    return frame


def _covered(
    channel: Channel, gaps: pd.DataFrame, data: pa.Table, events: pd.DataFrame
) -> tuple[
    npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]:
    """Which of the stream's gaps another collector's rows cover (a trade gap fetched back
    over REST stays a gap, as with one collector), the id range of each gap's hole (a trade
    hole narrowed to what every collector lost) and how many of a trade gap's ids no one
    stored (-1 for other channels): :func:`trade_holes`."""
    expected = gaps["expected"].to_numpy(np.int64)
    received = gaps["received"].to_numpy(np.int64)
    uncounted = np.full(len(gaps), -1, np.int64)
    if gaps.empty:
        return np.zeros(0, np.bool_), expected, received, uncounted
    if channel is Channel.TRADES:
        backfilled = _id_ranges(events, EventKind.BACKFILLED)
        fetched = np.asarray(
            [
                _overlap(backfilled, int(lo), int(hi)) > 0
                for lo, hi in zip(expected.tolist(), received.tolist(), strict=True)
            ],
            np.bool_,
        )
        ids = np.unique(data.column("trade_id").cast(pa.int64()).to_numpy())
        return trade_holes(ids, expected, received, fetched)
    table = pa.table(
        {
            "ts": index_ns(gaps),
            "expected": expected,
            "received": received,
            "detail": gaps["detail"].astype(str).tolist(),
        }
    )
    covered = covered_gaps(table, channel, data)  # the merge's own judgement
    return covered, expected, received, uncounted


def _by_writers(
    store: Store, exchange: str, symbol: str, channel: Channel, gaps: pd.DataFrame
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """(judged, covered) per gap: the restart gaps whose window lies between the stream's own
    rows, where the store tells each row's writer, are covered when shorter than the restart
    floor or when another collector ran through them (:func:`ran_through`, within
    :data:`RUN_THROUGH_HORIZON_NS`), and not for a row inside alone (a dead run's rows
    stored late are no evidence). Other gaps, and every gap of a store that does not record
    writers, are not judged here. The copies and the exchange's connection events are read
    once per stretch of overlapping horizons, whatever range the report covers (a reconnect
    before the report's start still interrupts a window just after it: found by review), not
    once per gap (a collector in a restart loop made that quadratic)."""
    judged = np.zeros(len(gaps), np.bool_)
    covered = np.zeros(len(gaps), np.bool_)
    windows: list[tuple[int, int, int]] = []  # (gap row, low, high)
    for i, detail in enumerate(gaps["detail"].astype(str).tolist()):
        window = own_restart_window(detail)
        if window is not None:
            windows.append((i, *window))
    spans: list[tuple[int, int, list[tuple[int, int, int]]]] = []
    for gap in sorted(windows, key=lambda w: w[1]):
        low, high = gap[1] - RUN_THROUGH_HORIZON_NS, gap[2] + RUN_THROUGH_HORIZON_NS
        if spans and low <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], high), [*spans[-1][2], gap])
        else:
            spans.append((low, high, [gap]))
    for start_ns, end_ns, members in spans:  # per stretch of restarts, not per row
        copies = store.copies(
            exchange=exchange, symbol=symbol, channel=channel, start_ns=start_ns, end_ns=end_ns
        )
        if copies is None:
            return judged, covered  # the store does not record writers
        copies = copies.sort_by("ts")
        stamps = np.asarray(copies.column("ts").to_numpy(), np.int64)
        interruptions = _interruptions(store, exchange, start_ns, end_ns)
        for i, low, high in members:
            first = int(np.searchsorted(stamps, low - RUN_THROUGH_HORIZON_NS, "left"))
            last = int(np.searchsorted(stamps, high + RUN_THROUGH_HORIZON_NS, "left"))
            near = copies.slice(first, last - first)
            judged[i] = True
            covered[i] = high - low < RESTART_FLOOR_NS or ran_through(near, high, interruptions)
    return judged, covered


def _interruptions(
    store: Store, exchange: str, start_ns: int, end_ns: int
) -> npt.NDArray[np.int64]:
    """The sorted times of the exchange's dropped or stale connections in ``[start, end)``."""
    events = _ts_and(
        store, exchange, symbol=None, channel=Channel.EVENTS, window=_Window(start_ns, end_ns)
    )
    return np.sort(index_ns(_connection_events(events)))


def _connection_events(events: pd.DataFrame) -> pd.DataFrame:
    return events[
        (events["symbol"] == "")
        & events["kind"].isin([EventKind.RECONNECT.value, EventKind.STALE.value])
    ]


def _place_covered(
    records: list[dict[str, object]], covered_ts: npt.NDArray[np.int64], details: list[str]
) -> None:
    """Each covered gap counted in the range it falls in (the first one if before all)."""
    starts = np.array([int(str(r["start"])) for r in records], np.int64)
    owner = np.clip(np.searchsorted(starts, covered_ts, "right") - 1, 0, None).tolist()
    for record in records:
        record["covered"], record["covered_detail"] = 0, ""
    for at, detail in zip(owner, details, strict=True):  # per covered gap, not per row
        record = records[at]
        record["covered"] = int(str(record["covered"])) + 1
        record["covered_detail"] = "; ".join(filter(None, [str(record["covered_detail"]), detail]))


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
        covered=("covered", "sum"),
    ).reset_index()
    return frame.set_index("first")[STREAM_COLUMNS].sort_values(["exchange", "symbol", "channel"])


def _empty(columns: list[str], index_name: str = "start") -> pd.DataFrame:
    index = pd.DatetimeIndex([], tz="UTC", name=index_name)
    return pd.DataFrame({c: [] for c in columns}, index=index)
