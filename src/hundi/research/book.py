"""``book_at``: the L2 order book at any time, from stored changes and cached checkpoints.

"The book at T" is the stored rows with ``ts <= T`` applied in exchange sequence order by
:mod:`hundi.book.replay` (a run of ``snapshot`` rows restarts the book, a diff that does not
continue the sequence under the exchange's registered continuity rule, ``hundi.exchanges
.exchange(name).book_rule``, leaves it unsynced until the next snapshot), then judged against
the book's stored ``gap`` events (:func:`hundi.book.replay.book_at`).

Replaying that from the last snapshot can mean hours of changes, so checkpoints are built
lazily, once per (exchange, symbol, UTC day): the full book every ``checkpoint_rows`` rows at
cut points where every earlier row is older than every later one. ``book_at(T)`` loads the last
checkpoint at or before T and applies only the rows stored after it.

Everything is read through the store contract (:class:`hundi.stores.base.Store`). Checkpoints
are keyed by the day's version (:meth:`Store.day_version`; the embedded store's: its live file
names and sizes) chained with the previous day's key, so a new flush, a compaction or an
earlier day's change rebuilds exactly what it invalidates; a day that only gained rows is
extended with them (:meth:`Store.read_day_since`). They live beside the store
(:meth:`Store.cache_home`, ``<store>/.hundi-cache/book-checkpoints`` for the embedded one; if
that is not writable, ``~/.cache/hundi``). A store without day versions (Cassandra) keeps no
checkpoints: each call replays the stored days it needs. The collector is not involved (option
(a) of the design: no extra stored channel, works on every store written so far, including
replays).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hundi.book.replay import (
    BOOK_COLUMNS,
    Block,
    Levels,
    ReplayState,
    advance,
    empty_rows,
    holes_applied,
    replay,
    walk,
)
from hundi.book.replay import book_at as judge_gaps
from hundi.book.rule import ContinuityRule
from hundi.exchanges.registry import book_rule
from hundi.records import Channel, EventKind
from hundi.research._source import (
    ResearchError,
    StoreLike,
    TimeLike,
    day_of,
    day_start_ns,
    ns_to_timestamp,
    positive,
    stored_symbol,
    to_ns,
)
from hundi.research.book_l3 import l2_book_from_l3, l3_only_symbol
from hundi.stores.base import NS_PER_DAY, DayRead, Store, reading
from hundi.stores.merge import covered_gaps

CHECKPOINT_ROWS: Final = 50_000
_FORMAT: Final = "4"  # bump when the saved index changes shape
I64 = npt.NDArray[np.int64]


def cut_points(block: Block, every: int) -> I64:
    """Positions ``p`` (about every ``every`` rows) where all rows before are strictly older
    than all rows from ``p`` on, and no row carried from the day before is still to come."""
    n = len(block)
    if n < 2:
        return np.zeros(0, np.int64)
    prefix_max = np.maximum.accumulate(block.ts)
    suffix_min = np.minimum.accumulate(block.ts[::-1])[::-1]
    valid = np.zeros(n, np.bool_)
    valid[1:] = prefix_max[:-1] < suffix_min[1:]
    carried = np.flatnonzero(block.carried)
    if len(carried):
        valid[: int(carried[-1]) + 1] = False
    candidates = np.flatnonzero(valid)
    if len(candidates) == 0:
        return np.zeros(0, np.int64)
    where = np.searchsorted(candidates, np.arange(every, n, every))
    return np.unique(candidates[where[where < len(candidates)]]).astype(np.int64)


# --- the per-day checkpoint index ----------------------------------------------------------


@dataclass(slots=True)
class DayIndex:
    """Checkpoints of one (exchange, symbol, day): ``as_of[i]`` is the newest ts included in
    ``states[i]``; ``states[0]`` is the state the day started from (with ``carry``, the rows
    of earlier days still waiting for their snapshot); the last state ends the day."""

    day: date
    key: str
    as_of: list[int]
    states: list[ReplayState]
    carry_in: pa.Table
    carry_out: pa.Table
    manifest: str = ""  # what the store read it from (DayRead.manifest), to extend it
    prev_key: str = ""  # the previous day's key it was built on

    def locate(self, at_ns: int) -> int:
        position = int(np.searchsorted(np.asarray(self.as_of, np.int64), at_ns, side="right"))
        return max(position - 1, 0)


def build_day(
    rows: pa.Table,
    day: date,
    start: ReplayState,
    carry_in: pa.Table,
    key: str,
    every: int,
    rule: ContinuityRule,
) -> DayIndex:
    block = Block.from_table(rows, carry_in)
    as_of, states, carry_out = _checkpoints(block, start, day_start_ns(day) - 1, every, rule)
    return DayIndex(
        day, key, [day_start_ns(day) - 1, *as_of], [start, *states], carry_in, carry_out
    )


def _checkpoints(
    block: Block, start: ReplayState, floor: int, every: int, rule: ContinuityRule
) -> tuple[list[int], list[ReplayState], pa.Table]:
    """(as_of, states) at the block's cut points and at its end, and its unsynced tail."""
    verdict = walk(block, start, rule)
    cuts = cut_points(block, every)
    stops = np.append(cuts, len(block)).astype(np.int64)
    states = advance(block, start, verdict, stops)
    prefix_max = np.maximum.accumulate(block.ts) if len(block) else block.ts
    as_of = [int(prefix_max[int(p) - 1]) for p in cuts]
    as_of.append(max([floor, *as_of, int(prefix_max[-1]) if len(block) else floor]))
    tail = np.zeros(len(block), np.bool_)
    tail[verdict.broken_from :] = True
    carry_out = block.take(tail) if len(block) else empty_rows()
    return as_of, states, carry_out


def extend_day(
    stale: DayIndex, since: DayRead, key: str, every: int, rule: ContinuityRule
) -> DayIndex | None:
    """``stale`` brought up to date with ``since`` (the rows stored after it was built,
    :meth:`Store.read_day_since`), or None when that would not be exact (a new row is not newer
    than every row seen, or the book ended waiting for a snapshot): then the day is rebuilt.

    ``since`` may repeat rows already seen (a compaction that merged seen files with new ones);
    those are not newer than the last row seen, so the rows of it not newer than that must be
    exactly the ``repeated`` ones.
    """
    table = since.table
    if table.num_rows == 0 and since.repeated == 0:
        return replace(stale, key=key, manifest=since.manifest)
    if stale.carry_out.num_rows:
        return None
    newer = pc.greater(
        table.column("ts"), pa.scalar(stale.as_of[-1], pa.int64()).cast(table.column("ts").type)
    )
    if table.num_rows - (pc.sum(newer).as_py() or 0) != since.repeated:
        return None  # a new row not newer than the last one seen (or rows went missing)
    block = Block.from_table(table.filter(newer))
    as_of, states, carry_out = _checkpoints(block, stale.states[-1], stale.as_of[-1], every, rule)
    return replace(
        stale,
        key=key,
        as_of=[*stale.as_of, *as_of],
        states=[*stale.states, *states],
        carry_out=carry_out,
        manifest=since.manifest,
    )


def _chain(previous: str, day: date, version: str | None, nonce: str) -> str:
    """A day's key: its version chained with the previous day's key (a day without a version
    gets one never seen again: nothing built on it is reused)."""
    part = version if version is not None else f"?{nonce}"
    return hashlib.sha1(f"{previous}\n{day}\n{part}".encode()).hexdigest()


class CheckpointCache:
    """Day indexes kept on disk (``directory``; None: in memory only) and in memory (a few
    days), for the days that have versions (:meth:`Store.day_version`). Days without (and the
    days after them) are built by each :meth:`index` call and kept nowhere, but by a private
    cache (made for one call), which keeps them in memory for its life."""

    def __init__(self, directory: Path | None, every: int, *, private: bool = False) -> None:
        self.every = every
        self.directory = directory
        self.memory: OrderedDict[tuple[str, str, date], DayIndex] = OrderedDict()
        self.private = private
        self.nonce = secrets.token_hex(8)

    def index(self, store: Store, exchange: str, symbol: str, day: date) -> DayIndex | None:
        """The index of ``day`` or of the last earlier day with book rows (None: no rows)."""
        stored = [d for d in store.days(exchange, Channel.BOOK, symbol) if d <= day]
        if not stored:
            return None
        versions = [store.day_version(exchange, Channel.BOOK, symbol, d) for d in stored]
        # days from the first one without a version on are neither loaded nor kept (but by a
        # private cache, in memory)
        volatile = next((i for i, v in enumerate(versions) if v is None), len(stored))
        nonce = self.nonce if self.private else secrets.token_hex(8)
        first_key = f"v{_FORMAT}:{self.every}"
        keys: list[str] = []
        for d, version in zip(stored, versions, strict=True):
            keys.append(_chain(keys[-1] if keys else first_key, d, version, nonce))

        def settle(i: int, version: str | None) -> None:
            """The rows of day ``i`` were read as ``version``: key it and later days so."""
            if version == versions[i]:
                return
            versions[i] = version
            for j in range(i, len(stored)):
                keys[j] = _chain(keys[j - 1] if j else first_key, stored[j], versions[j], nonce)

        rule = book_rule(exchange)
        # find the newest day whose index is current, then bring later days up to date
        position = (len(stored) if self.private else min(len(stored), volatile)) - 1
        found: DayIndex | None = None
        while position >= 0:
            found = self._load(exchange, symbol, stored[position], keys[position])
            if found is not None:
                break
            position -= 1
        for i in range(position + 1, len(stored)):
            prev_key = keys[i - 1] if i else first_key
            stale = self._load_any(exchange, symbol, stored[i]) if i < volatile else None
            built = None
            if stale is not None and stale.prev_key == prev_key and stale.manifest:
                since = store.read_day_since(
                    exchange, Channel.BOOK, symbol, stored[i], stale.manifest, columns=BOOK_COLUMNS
                )
                if since is not None:
                    settle(i, since.version)
                    built = extend_day(stale, since, keys[i], self.every, rule)
            if built is None:
                start = found.states[-1] if found is not None else ReplayState(Levels.empty())
                carry = found.carry_out if found is not None else empty_rows()
                read = store.read_day(
                    exchange, Channel.BOOK, symbol, stored[i], columns=BOOK_COLUMNS
                )
                settle(i, read.version)
                built = build_day(read.table, stored[i], start, carry, keys[i], self.every, rule)
                built.manifest = read.manifest
                built.prev_key = prev_key
            found = built
            if i < volatile and versions[i] is not None:
                self._save(exchange, symbol, stored[i], found)
            else:
                volatile = min(volatile, i)
                if self.private:
                    self._remember((exchange, symbol, stored[i]), found)
        return found

    # -- persistence ----------------------------------------------------------------------

    def _files(self, exchange: str, symbol: str, day: date, key: str) -> tuple[Path, ...]:
        """(levels, carry in, carry out) of one day's index; the key is in the names, so a
        reader never pairs one build's levels with another build's carries."""
        assert self.directory is not None
        base = self.directory / f"exchange={exchange}" / f"symbol={symbol}"
        stem = f"{day.isoformat()}-{key[:20]}"
        return tuple(base / f"{stem}.{part}.parquet" for part in ("levels", "in", "out"))

    def _load(self, exchange: str, symbol: str, day: date, key: str) -> DayIndex | None:
        memo_key = (exchange, symbol, day)
        cached = self.memory.get(memo_key)
        if cached is not None and cached.key == key:
            self.memory.move_to_end(memo_key)
            return cached
        if self.directory is None:
            return None
        files = self._files(exchange, symbol, day, key)
        if not files[0].exists():
            return None
        try:
            loaded = _read_index(day, key, *files)
        except (OSError, pa.ArrowException, ValueError, KeyError):
            return None  # unreadable: rebuild
        self._remember(memo_key, loaded)
        return loaded

    def _load_any(self, exchange: str, symbol: str, day: date) -> DayIndex | None:
        """Whatever index of ``day`` is at hand, current or not (to extend it)."""
        cached = self.memory.get((exchange, symbol, day))
        if cached is not None:
            return cached
        if self.directory is None:
            return None
        base = self.directory / f"exchange={exchange}" / f"symbol={symbol}"
        for levels in base.glob(f"{day.isoformat()}-*.levels.parquet"):
            try:
                meta = json.loads(pq.read_schema(levels).metadata[b"hundi.checkpoints"])
                return _read_index(
                    day, meta["key"], *self._files(exchange, symbol, day, meta["key"])
                )
            except (OSError, pa.ArrowException, ValueError, KeyError, TypeError):
                continue
        return None

    def _save(self, exchange: str, symbol: str, day: date, index: DayIndex) -> None:
        self._remember((exchange, symbol, day), index)
        if self.directory is None:
            return
        files = self._files(exchange, symbol, day, index.key)
        try:
            _write_index(index, *files)
        except OSError:
            self.directory = None  # not writable after all: keep indexes in memory only
            return
        for old in files[0].parent.glob(f"{day.isoformat()}-*.parquet"):
            if old not in files:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()

    def _remember(self, memo_key: tuple[str, str, date], index: DayIndex) -> None:
        self.memory[memo_key] = index
        self.memory.move_to_end(memo_key)
        while len(self.memory) > 8:
            self.memory.popitem(last=False)


def _cache_dir(home: Path) -> Path | None:
    """``<cache home>/book-checkpoints`` (:meth:`Store.cache_home`) if writable, else under
    ``~/.cache/hundi``."""
    candidates = [home / "book-checkpoints"]
    digest = hashlib.sha1(str(home.resolve()).encode()).hexdigest()[:16]
    candidates.append(Path.home() / ".cache" / "hundi" / "book-checkpoints" / digest)
    for candidate in candidates:
        try:
            candidate.mkdir(parents=True, exist_ok=True)
            probe = candidate / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            return candidate
        except OSError:
            continue
    return None


def _write_index(index: DayIndex, levels_path: Path, in_path: Path, out_path: Path) -> None:
    """Levels of every checkpoint in one file, the per-checkpoint fields in its metadata;
    written last, so its presence means the carries are complete."""
    levels_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "key": index.key,
        "prev_key": index.prev_key,
        "manifest": index.manifest,
        "as_of": index.as_of,
        "lengths": [len(s.levels.key) for s in index.states],
        "states": [
            [s.synced, s.last_u, s.last_snapshot, s.snapshot_ts, s.update_id, s.snapshot_id]
            for s in index.states
        ],
    }
    levels = pa.table(
        {
            "key": np.concatenate([s.levels.key for s in index.states]),
            "size": np.concatenate([s.levels.size for s in index.states]),
            "ts": np.concatenate([s.levels.ts for s in index.states]),
        }
    ).replace_schema_metadata({"hundi.checkpoints": json.dumps(meta)})
    for table, path in (
        (index.carry_in, in_path),
        (index.carry_out, out_path),
        (levels, levels_path),
    ):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _read_index(day: date, key: str, levels_path: Path, in_path: Path, out_path: Path) -> DayIndex:
    table = pq.read_table(levels_path)
    meta = json.loads((table.schema.metadata or {})[b"hundi.checkpoints"])
    if meta["key"] != key:
        raise ValueError("checkpoint key mismatch")
    keys = table.column("key").to_numpy()
    sizes = table.column("size").to_numpy()
    stamps = table.column("ts").to_numpy()
    states = []
    offset = 0
    for length, fields in zip(meta["lengths"], meta["states"], strict=True):
        part = slice(offset, offset + length)
        offset += length
        synced, last_u, last_snapshot, snapshot_ts, update_id, snapshot_id = fields
        states.append(
            ReplayState(
                Levels(keys[part], sizes[part], stamps[part]),
                bool(synced),
                int(last_u),
                bool(last_snapshot),
                int(snapshot_ts),
                int(update_id),
                int(snapshot_id),
            )
        )
    as_of = [int(v) for v in meta["as_of"]]
    carry_in, carry_out = pq.read_table(in_path), pq.read_table(out_path)
    return DayIndex(
        day, key, as_of, states, carry_in, carry_out, str(meta["manifest"]), str(meta["prev_key"])
    )


# --- public --------------------------------------------------------------------------------

_CACHES: dict[tuple[str, str, int], CheckpointCache] = {}


def cache_for(store: Store, cache_dir: Path | None, every: int) -> CheckpointCache:
    """The checkpoint cache of ``store`` (one per store location, cache directory and
    ``every``): in ``cache_dir``, else beside the store (:meth:`Store.cache_home`). A store
    with neither gets a private cache, in memory for one call (its days may have no version:
    Cassandra)."""
    home = store.cache_home()
    if home is None and cache_dir is None:
        return CheckpointCache(None, every, private=True)
    where = str(home.resolve()) if home is not None else store.describe()
    memo_key = (where, str(cache_dir), every)
    cache = _CACHES.get(memo_key)
    if cache is None:
        if cache_dir is not None:
            directory: Path | None = cache_dir
        else:
            assert home is not None
            directory = _cache_dir(home)
        cache = _CACHES[memo_key] = CheckpointCache(directory, every)
    return cache


def day_rows(
    store: Store, exchange: str, symbol: str, day: date, start_ns: int, at_ns: int
) -> pa.Table:
    """The book rows of ``day`` with ``start_ns <= ts <= at_ns``, unsorted."""
    end_ns = min(at_ns + 1, day_start_ns(day) + NS_PER_DAY)
    for _, table in store.read_days(
        exchange=exchange, symbol=symbol, channel=Channel.BOOK, start_ns=start_ns, end_ns=end_ns,
        columns=BOOK_COLUMNS, ordered=False,
    ):  # fmt: skip
        return table
    return empty_rows()


def state_at(
    store: StoreLike,
    exchange: str,
    symbol: str,
    at: TimeLike,
    *,
    checkpoint_rows: int = CHECKPOINT_ROWS,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[ReplayState, int]:
    """The book state at ``at`` (and ``at`` in ns); what :func:`book_at` formats.

    The state is rebuilt from the stored book rows, then checked against the stored ``gap``
    events of the book: after a gap the collector stores no change until a new snapshot
    restarts the book, so rows alone would show the frozen pre-gap book as synced."""
    at_ns = to_ns(at, "ts")
    if at_ns is None:
        raise ResearchError("book_at needs a time")
    with reading(store) as opened:
        symbol = stored_symbol(opened, exchange, symbol, Channel.BOOK)
        state = _rows_state_at(opened, exchange, symbol, at_ns, checkpoint_rows, cache_dir)
        if state.synced:
            gaps = book_gaps(opened, exchange, symbol, state.snapshot_ts, at_ns, replayed=state)
            state = judge_gaps(state, gaps, at_ns)
        return state, at_ns


def book_gaps(
    store: Store,
    exchange: str,
    symbol: str,
    since_ns: int,
    at_ns: int,
    *,
    replayed: ReplayState | None = None,
) -> I64:
    """Times (sorted) of the book's stored ``gap`` events (and ``stopped`` ones: after a clean
    stop the book is not known either) after ``since_ns`` and at or before ``at_ns``.

    With ``replayed`` (the synced replay at ``at_ns``), a gap whose hole lies inside the ids it
    applied is left out (:func:`hundi.book.replay.holes_applied`): another collector's rows
    filled it, wherever they were stamped."""
    # Stores take datetimes (microseconds): read a range that surely covers the nanosecond
    # bounds, then cut it exactly.
    events = store.read(
        exchange=exchange,
        symbol=symbol,
        channel=Channel.EVENTS,
        start=ns_to_timestamp(since_ns // 1000 * 1000).to_pydatetime(),
        end=ns_to_timestamp((at_ns // 1000 + 1) * 1000).to_pydatetime(),
    )
    if events.empty:
        return np.zeros(0, np.int64)
    times = pd.DatetimeIndex(events.index).as_unit("ns").asi8
    kinds = events["kind"].astype(str).to_numpy()
    channels = events["channel"].astype(str).to_numpy()
    chosen = (
        (times > since_ns)
        & (times <= at_ns)
        & np.isin(kinds, [EventKind.GAP.value, EventKind.STOPPED.value])
        & (channels == Channel.BOOK.value)
    )
    if chosen.any() and replayed is not None:
        # only gaps after the replay's snapshot: an earlier one is judged by the chain of its
        # own time (``book_tops`` passes the replay at its last trade for the whole range)
        chosen &= ~(
            holes_applied(
                replayed,
                events["expected"].to_numpy(np.int64, na_value=-1),
                events["received"].to_numpy(np.int64, na_value=-1),
            )
            & (times > replayed.snapshot_ts)
        )
    if chosen.any():
        chosen[chosen] = ~_covered_by_another(store, exchange, symbol, events[chosen], since_ns)
    return np.sort(np.asarray(times[chosen], np.int64))


# How far past a gap the other collector's chain is looked for (its next message comes soon),
# and how far before it (or before a restart gap's last stored row) the message it continues.
_COVER_LOOKAHEAD_NS = 60 * 1_000_000_000
_COVER_LOOKBACK_NS = 3_600 * 1_000_000_000
# A restart gap's detail names the last stored row's time (hundi.pipeline.resume).
_LAST_STORED = re.compile(r"last stored at (\S+?)\)")


def _covered_by_another(
    store: Store, exchange: str, symbol: str, gaps: pd.DataFrame, since_ns: int
) -> npt.NDArray[np.bool_]:
    """Which book gaps another collector's stored chain runs on across (then the book stays
    synced: docs/guarantees.md, "Two collectors on one stream"). Each gap is judged on the
    book rows around it (from an hour before it, or before a restart gap's last stored row,
    to a minute after), not on every row since the book's snapshot, which an A/B pair's
    unbroken chain may have taken weeks ago: book_at stays as cheap as its checkpoints."""
    stamps = pd.DatetimeIndex(gaps.index).as_unit("ns").asi8
    columns = ["ts", "snapshot", "first_update_id", "update_id", "prev_update_id"]
    events = pa.table(
        {
            "ts": stamps,
            "expected": gaps["expected"].to_numpy(np.int64),
            "received": gaps["received"].to_numpy(np.int64),
            "detail": gaps["detail"].astype(str).tolist(),
        }
    )
    covered = np.zeros(len(gaps), np.bool_)
    details = events["detail"].to_pylist()
    for i, (at, detail) in enumerate(zip(stamps.tolist(), details, strict=True)):
        anchor = min(at, _last_stored_ns(str(detail), at))  # per gap event (a few)
        parts = [
            table
            for _, table in store.read_days(
                exchange=exchange, symbol=symbol, channel=Channel.BOOK,
                start_ns=max(since_ns, anchor - _COVER_LOOKBACK_NS),
                end_ns=at + _COVER_LOOKAHEAD_NS, columns=columns, ordered=False,
            )
        ]  # fmt: skip
        if parts:  # as the store's merge
            covered[i] = covered_gaps(events.slice(i, 1), Channel.BOOK, pa.concat_tables(parts))[0]
    return covered


def _last_stored_ns(detail: str, default: int) -> int:
    """The time of the last stored row a restart gap's detail names, else ``default``."""
    found = _LAST_STORED.search(detail)
    if found is None:
        return default
    try:
        return int(pd.Timestamp(found.group(1)).value)
    except ValueError:
        return default


def _rows_state_at(
    opened: Store,
    exchange: str,
    symbol: str,
    at_ns: int,
    checkpoint_rows: int,
    cache_dir: str | os.PathLike[str] | None,
) -> ReplayState:
    """The book after every stored row with ``ts <= at_ns`` (checkpoints make it cheap)."""
    cache = cache_for(opened, Path(cache_dir) if cache_dir is not None else None, checkpoint_rows)
    day = day_of(at_ns)
    index = cache.index(opened, exchange, symbol, day)
    if index is None:
        return ReplayState(Levels.empty())
    position = index.locate(at_ns)
    if index.day < day or position == len(index.states) - 1:
        return index.states[-1]  # nothing stored after the day's last row
    start = index.states[position]
    rows = day_rows(opened, exchange, symbol, day, index.as_of[position] + 1, at_ns)
    block = Block.from_table(rows, index.carry_in if position == 0 else None)
    return replay(block, start, book_rule(exchange))


def book_at(
    store: StoreLike,
    exchange: str,
    symbol: str,
    ts: TimeLike,
    *,
    depth: int | None = None,
    checkpoint_rows: int = CHECKPOINT_ROWS,
    cache_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """The L2 book of ``symbol`` at ``ts`` (inclusive), rebuilt from stored changes.

    One row per level: ``side`` (1 bid, -1 ask), ``price``, ``size``, ``level`` (0 = best),
    bids best first then asks best first, indexed by the time each level got its size (UTC).
    ``depth`` keeps the best N levels per side. ``attrs``: ``as_of``, ``synced`` (False when
    the stream broke and no snapshot restarted it yet: the book shown is the last consistent
    one), ``update_id`` (last applied exchange sequence id) and ``snapshot_ts``. ``symbol``
    may be the exchange's own name (``BTCUSDT``); one without a stored book raises
    :class:`hundi.query.NotStored` (a time before the first stored row is an empty book).

    A symbol stored only as order-level events (``book_l3``, a venue's full order feed) gets
    its L3 book (:func:`hundi.research.book_l3_at`) aggregated to L2: sizes summed per price,
    ``update_id`` its last applied sequence. A symbol stored both ways reads the L2 ``book``.
    """
    positive(depth, "depth")
    at_ns = to_ns(ts, "ts")
    if at_ns is not None:
        with reading(store) as opened:
            l3_symbol = l3_only_symbol(opened, exchange, symbol)
            if l3_symbol is not None:
                return l2_book_from_l3(opened, exchange, l3_symbol, at_ns, depth)
    state, at_ns = state_at(
        store, exchange, symbol, ts, checkpoint_rows=checkpoint_rows, cache_dir=cache_dir
    )
    return levels_frame(state, at_ns, depth)


def levels_frame(state: ReplayState, at_ns: int, depth: int | None) -> pd.DataFrame:
    levels = state.levels
    bids = levels.key < 0
    asks = levels.key > 0
    parts = []
    for mask, side in ((bids, 1), (asks, -1)):
        keys = levels.key[mask]
        count = len(keys) if depth is None else min(depth, len(keys))
        parts.append(
            pd.DataFrame(
                {
                    "side": np.full(count, side, np.int8),
                    "price": np.abs(keys[:count]),
                    "size": levels.size[mask][:count],
                    "level": np.arange(count, dtype=np.int64),
                },
                index=pd.DatetimeIndex(
                    pd.to_datetime(levels.ts[mask][:count], unit="ns", utc=True), name="ts"
                ),
            )
        )
    frame = pd.concat(parts)
    frame.attrs.update(
        as_of=ns_to_timestamp(at_ns),
        synced=state.synced,
        update_id=state.update_id,
        snapshot_ts=ns_to_timestamp(state.snapshot_ts) if state.snapshot_ts >= 0 else None,
    )
    return frame
