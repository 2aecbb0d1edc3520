"""The series computations, on numpy columns, shared by the online engine and offline functions.

Online and offline results are *equal*, not just close, because both run these same classes
on the same values in the same order: the online engine feeds them one micro-batch at a time
with the wall clock, the offline functions feed them everything at once with a clock past the
end. Every floating-point reduction is done per finished bar/window over that bar's complete
inputs (``ufunc.reduceat`` over a segment, or a fixed left-to-right window sum), so how the
input was split into batches never changes a single bit of the output.

Rules that make "final" well defined (the same online and offline):

* **Effective time** of a trade or quote: ``e = max(ts, recv_ts - grace)``. Data that arrives
  within ``grace`` of its interval's end counts in that interval; later data counts where it
  arrived. A time bar ``[t, t + interval)`` holds the trades with ``e`` in it, and is final
  (emitted) once the receive clock passes ``t + interval + grace``: nothing that can still
  arrive has an ``e`` inside it. Bars run from the first trade's bar up to the last closed
  one; a bar without trades carries the previous close with zero volume.
* **Tick / volume bars** follow trade-id order. A tick bar is every ``count`` trades; trade
  ``i`` belongs to volume bar ``floor(V_before_i / volume)`` where ``V_before_i`` is the
  cumulative size before it, and the bar is final once the cumulative size reaches its upper
  threshold. Unfinished bars are never emitted.
* **Book snapshots** run on the exchange clock of book changes, in sequence (update id)
  order: a change's effective time is the running maximum of ``ts`` (buffered diffs applied
  after a REST snapshot take effect at the snapshot's time). The snapshot at ``T`` (a multiple
  of the interval) is the book after every change with effective time ``<= T``; it is taken
  when the first change after ``T`` arrives. A run of ``snapshot`` rows restarts the book;
  rows before the first such run are ignored (the book is unknown until then), and a later run
  (a resync after a gap) gets no samples between the last change before it and itself. A diff
  that does not continue the sequence under the exchange's continuity rule (``hundi.book``, the
  rule ``book_at`` applies) leaves the book unknown from its effective time until the next
  snapshot run: no samples in between.
* **Flow / volatility** windows are the last ``window / step`` time bars of ``step``; the
  first value needs one more bar (the first return's base).
* **Basis** at ``T``: each leg's last quote with ``e <= T`` (ordered by ``e, ts, recv_ts``),
  final once the receive clock passes ``T + grace``; from the first ``T`` where both legs
  have a quote.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hundi.book.replay import sequence
from hundi.book.rule import UNCHECKED, ContinuityRule
from hundi.records import ASK, BID

F8 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int64]
Columns = dict[str, npt.NDArray[Any]]
NO_TIME = np.iinfo(np.int64).min


def _ceil_div(a: npt.NDArray[np.int64] | int, b: int) -> npt.NDArray[np.int64] | int:
    return -((-a) // b)


def _concat(chunks: Sequence[Columns]) -> Columns:
    if len(chunks) == 1:
        return chunks[0]
    return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}


def _take(columns: Columns, index: npt.NDArray[np.generic] | slice) -> Columns:
    return {name: values[index] for name, values in columns.items()}


def _length(columns: Columns) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def _is_sorted(values: npt.NDArray[Any], strict: bool = False) -> bool:
    if len(values) < 2:
        return True
    later, earlier = values[1:], values[:-1]
    return bool(np.all(later > earlier)) if strict else bool(np.all(later >= earlier))


def trade_order(trade_id: I8) -> I8 | None:
    """Indices sorting trades by id (stable), or None when they already are."""
    if _is_sorted(trade_id):
        return None
    return np.argsort(trade_id, kind="stable")


def effective_time(ts: I8, recv_ts: I8, grace_ns: int) -> I8:
    """``max(ts, recv_ts - grace)``: when a record counts, see the module docstring."""
    return np.maximum(ts, recv_ts - grace_ns)


def window_sums(values: F8, size: int) -> F8:
    """Sum of every full window of ``size`` consecutive values, added left to right.

    A fixed summation order, so a window's sum depends only on its values, never on where
    the array starts (online has only the tail, offline everything).
    """
    count = len(values) - size + 1
    if count <= 0:
        return np.empty(0, np.float64)
    sums = values[:count].copy()
    for offset in range(1, size):
        sums += values[offset : offset + count]
    return sums


# --- bars ---------------------------------------------------------------------------------------

BAR_FIELDS = (
    "ts", "recv_ts", "close_time", "open", "high", "low", "close", "volume", "quote_volume",
    "vwap", "buy_volume", "sell_volume", "trade_count", "first_trade_id", "last_trade_id",
)  # fmt: skip


def _segment_bars(trades: Columns, starts: I8) -> Columns:
    """Per segment of consecutive trades (sorted by id within a segment): OHLCV and friends."""
    price: F8 = trades["price"]
    size: F8 = trades["size"]
    side = trades["side"]
    ends = np.append(starts[1:], len(price))
    last = ends - 1
    volume = np.add.reduceat(size, starts)
    quote = np.add.reduceat(price * size, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = quote / volume
    return {
        "open": price[starts],
        "high": np.maximum.reduceat(price, starts),
        "low": np.minimum.reduceat(price, starts),
        "close": price[last],
        "volume": volume,
        "quote_volume": quote,
        "vwap": vwap,
        "buy_volume": np.add.reduceat(np.where(side > 0, size, 0.0), starts),
        "sell_volume": np.add.reduceat(np.where(side < 0, size, 0.0), starts),
        "trade_count": (ends - starts).astype(np.int64),
        "first_trade_id": trades["trade_id"][starts],
        "last_trade_id": trades["trade_id"][last],
    }


class TimeBarBuilder:
    """Time bars of one symbol and interval; see the module docstring for the rule."""

    def __init__(self, interval_ns: int, grace_ns: int) -> None:
        self.interval = interval_ns
        self.grace = grace_ns
        self.pending: list[Columns] = []
        self.next_bucket: int | None = None  # first bar not yet emitted
        self.last_close = math.nan
        self.late = 0  # trades whose bar had already been emitted (counted in the next one)

    def add(self, trades: Columns) -> None:
        """Trades of this symbol (any order); they wait until their bar is final."""
        if not _length(trades):
            return
        e = effective_time(trades["ts"], trades["recv_ts"], self.grace)
        bucket = e // self.interval
        if self.next_bucket is None:
            self.next_bucket = int(bucket.min())
        else:
            early = bucket < self.next_bucket
            if early.any():
                self.late += int(early.sum())
                bucket = np.maximum(bucket, self.next_bucket)
        self.pending.append({**trades, "bucket": bucket})

    def close(self, now_ns: int) -> Columns | None:
        """Every bar final at ``now_ns`` (receive clock), empty ones included; None if none."""
        if self.next_bucket is None:
            return None
        limit = (now_ns - self.grace) // self.interval
        if limit <= self.next_bucket:
            return None
        trades = _concat(self.pending) if self.pending else {}
        if trades:
            final = trades["bucket"] < limit
            if final.all():
                self.pending = []
            else:
                keep = _take(trades, ~final)
                self.pending = [keep] if _length(keep) else []
                trades = _take(trades, final)
        return self.emit(trades, limit)

    def emit(self, trades: Columns, limit: int) -> Columns | None:
        """Every bar before bucket ``limit`` from bucketed ``trades`` that all lie before it.

        What :meth:`close` does with its final trades; bulk readers (``hundi.bars`` over days of
        stored trades) call it directly so the trades are not copied through ``pending``."""
        if self.next_bucket is None:
            if not _length(trades):
                return None
            self.next_bucket = int(trades["bucket"].min())
        if limit <= self.next_bucket:
            return None
        bars = self._bars(trades, self.next_bucket, limit)
        self.next_bucket = limit
        self.last_close = float(bars["close"][-1])
        return bars

    def _bars(self, trades: Columns, first: int, limit: int) -> Columns:
        interval = self.interval
        count = limit - first
        starts_ns = (np.arange(first, limit, dtype=np.int64)) * interval
        out: Columns = {
            "ts": starts_ns,
            "close_time": starts_ns + interval,
            "recv_ts": starts_ns + interval + self.grace,
            "volume": np.zeros(count),
            "quote_volume": np.zeros(count),
            "vwap": np.full(count, math.nan),
            "buy_volume": np.zeros(count),
            "sell_volume": np.zeros(count),
            "trade_count": np.zeros(count, np.int64),
            "first_trade_id": np.full(count, -1, np.int64),
            "last_trade_id": np.full(count, -1, np.int64),
        }
        close = np.full(count, math.nan)
        filled = np.zeros(count, bool)
        prices = {name: np.full(count, math.nan) for name in ("open", "high", "low")}
        if _length(trades):
            bucket = trades["bucket"]
            trade_id = trades["trade_id"]
            if not (_is_sorted(bucket) and _is_sorted(trade_id, strict=True)):
                trades = _take(trades, np.lexsort((trade_id, bucket)))
                bucket = trades["bucket"]
            # bars are few, trades many: find each bar's first trade by binary search
            bounds = np.searchsorted(bucket, np.arange(first, limit + 1, dtype=np.int64))
            where = np.flatnonzero(bounds[1:] > bounds[:-1])
            starts = bounds[where]
            segments = _segment_bars(trades, starts)
            for name in out:
                if name in segments:
                    out[name][where] = segments[name]
            for name in prices:
                prices[name][where] = segments[name]
            close[where] = segments["close"]
            filled[where] = True
        # empty bars carry the previous close
        source = np.maximum.accumulate(np.where(filled, np.arange(count), -1))
        carried = np.where(source >= 0, close[np.maximum(source, 0)], self.last_close)
        out["close"] = carried
        for name, values in prices.items():
            out[name] = np.where(filled, values, carried)
        return out


class CountBarBuilder:
    """Tick bars (every ``count`` trades) or volume bars (every ``volume`` base units)."""

    def __init__(self, *, count: int | None = None, volume: float | None = None) -> None:
        assert (count is None) != (volume is None)
        self.count = count
        self.volume = volume
        self.pending: list[Columns] = []
        self.cumulative = 0.0  # volume bars: cumulative size so far, summed left to right

    def add(self, trades: Columns) -> None:
        """Trades of this symbol; sorted by id here, and expected to arrive in id order."""
        if not _length(trades):
            return
        order = trade_order(trades["trade_id"])
        if order is not None:
            trades = _take(trades, order)
        if self.volume is not None:
            running = np.cumsum(np.concatenate(([self.cumulative], trades["size"])))
            self.cumulative = float(running[-1])
            bar = np.floor_divide(running[:-1], self.volume).astype(np.int64)
            trades = {**trades, "bar": bar}
        self.pending.append(trades)

    def close(self) -> Columns | None:
        """Every finished bar so far; None if none."""
        if not self.pending:
            return None
        if self.count is not None:
            if sum(_length(chunk) for chunk in self.pending) < self.count:
                return None
        else:
            assert self.volume is not None
            if int(np.floor_divide(self.cumulative, self.volume)) <= self.pending[0]["bar"][0]:
                return None  # the oldest waiting bar is not finished: do not re-concatenate
        trades = _concat(self.pending)
        n = _length(trades)
        if self.count is not None:
            done = (n // self.count) * self.count
        else:
            assert self.volume is not None
            finished = int(np.floor_divide(self.cumulative, self.volume))
            done = int(np.searchsorted(trades["bar"], finished))
        self.pending = [_take(trades, slice(done, None))] if done < n else []
        if done == 0:
            return None
        trades = _take(trades, slice(0, done))
        if self.count is not None:
            starts = np.arange(0, done, self.count, dtype=np.int64)
        else:
            bar = trades["bar"]
            starts = np.flatnonzero(np.r_[True, bar[1:] != bar[:-1]])
        bars = _segment_bars(trades, starts)
        last = np.append(starts[1:], done) - 1
        bars["ts"] = trades["ts"][starts]
        bars["close_time"] = trades["ts"][last]
        bars["recv_ts"] = trades["recv_ts"][last]
        return bars


# --- book ---------------------------------------------------------------------------------------

BOOK_TOP_FIELDS = (
    "ts", "recv_ts", "bid_price", "bid_size", "ask_price", "ask_size", "mid", "spread",
    "microprice", "imbalance", "bid_volume", "ask_volume", "bid_levels", "ask_levels",
    "update_id",
)  # fmt: skip
LEVEL_FIELDS = ("ts", "recv_ts", "side", "level", "price", "size")


def book_order(update_id: I8, snapshot: npt.NDArray[np.bool_]) -> I8 | None:
    """Sequence order of stored book changes: update id, a snapshot run before the diff that
    shares its id (stable, so rows of one message keep their order); None if already so."""
    key = update_id * 2 + (~snapshot).astype(np.int64)
    if _is_sorted(key):
        return None
    return np.argsort(key, kind="stable")


def _top(levels: dict[float, float], depth: int, descending: bool) -> tuple[F8, F8]:
    prices = np.fromiter(levels.keys(), np.float64, len(levels))
    sizes = np.fromiter(levels.values(), np.float64, len(levels))
    live = sizes > 0.0
    prices, sizes = prices[live], sizes[live]
    key = -prices if descending else prices
    if len(key) > depth:
        chosen = np.argpartition(key, depth - 1)[:depth]
        order = chosen[np.argsort(key[chosen])]
    else:
        order = np.argsort(key)
    return prices[order], sizes[order]


@dataclass(slots=True)
class BookSamples:
    """Snapshots taken by :class:`BookSampler`, per interval: metrics and levels columns."""

    top: Columns
    levels: Columns


class BookSampler:
    """One symbol's book, rebuilt from BookChange columns and sampled on a grid per interval."""

    def __init__(self, grids: Sequence[tuple[int, int]], rule: ContinuityRule = UNCHECKED) -> None:
        """``grids``: (interval ns, depth) pairs; ``rule``: the exchange's continuity rule."""
        self.grids = list(dict.fromkeys(grids))
        self.rule = rule
        self.prev_u = -1  # update id of the last row seen (applied or not), for ``rule``
        self.prev_snapshot = False  # the last row seen was a snapshot row
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.known = False  # a snapshot run has started the book
        self.eff = NO_TIME  # effective time of the last change seen since the book was known
        self.last_uid = -1
        self.last_recv = 0
        self._applied = 0
        self._tops: dict[tuple[int, int], list[Columns]] = {}
        self._levels: dict[tuple[int, int], list[Columns]] = {}

    def reset(self) -> None:
        """Input was lost: the book is unknown until the next snapshot run."""
        self.bids, self.asks = {}, {}
        self.known = False
        self.eff = NO_TIME
        self.prev_u, self.prev_snapshot = -1, False

    def add(self, rows: Columns) -> dict[tuple[int, int], BookSamples]:
        """Changes in sequence order → snapshots per (interval, depth) grid they completed."""
        self._tops = {grid: [] for grid in self.grids}
        self._levels = {grid: [] for grid in self.grids}
        n = _length(rows)
        if n:
            self._add(rows, n)
        return {
            grid: BookSamples(_concat(tops), _concat(self._levels[grid]))
            for grid, tops in self._tops.items()
            if tops
        }

    def _add(self, rows: Columns, n: int) -> None:
        snapshot = rows["snapshot"].astype(bool)
        uid = rows["update_id"]
        # where snapshot runs restart the book and diffs break the sequence: the verdicts of
        # ``hundi.book.replay.walk``, so the same as ``book_at``'s; a break leaves the book
        # unknown until the next snapshot run
        judged = sequence(
            self.rule,
            snapshot,
            rows["first_update_id"],
            uid,
            rows["prev_update_id"],
            self.prev_u,
            self.prev_snapshot,
        )
        run_start, breaks = judged.resets, judged.breaks
        self.prev_u, self.prev_snapshot = int(uid[-1]), bool(snapshot[-1])
        begin = 0
        if self.eff == NO_TIME:  # never known (or input lost): start at the first snapshot run
            starts = np.flatnonzero(run_start)
            if not len(starts):
                return
            begin = int(starts[0])
        # after a break the book is unknown but its clock runs on, as if it were one batch
        base = self.eff if self.eff != NO_TIME else int(rows["ts"][begin])
        eff = np.maximum.accumulate(np.r_[base, rows["ts"][begin:]])
        prev_eff, eff = eff[:-1], eff[1:]
        cuts: dict[int, list[tuple[int, int, int, int]]] = {}
        for interval, depth in self.grids:
            lo = np.asarray(_ceil_div(prev_eff, interval))
            hi = np.asarray(_ceil_div(eff, interval))
            if not self.known:
                lo[0] = hi[0]  # nothing before the first applied change
            for i in np.flatnonzero(hi > lo):
                cuts.setdefault(begin + int(i), []).append(
                    (interval, depth, int(lo[i]), int(hi[i]))
                )
        for i in np.flatnonzero(run_start[begin:] | breaks[begin:]):
            cuts.setdefault(begin + int(i), [])
        side, price, size = rows["side"], rows["price"], rows["size"]
        recv = rows["recv_ts"]
        position = begin
        for cut in sorted(cuts):
            if self.known:
                self._apply(side, price, size, position, cut)
                if cut > position:
                    self.last_uid, self.last_recv = int(uid[cut - 1]), int(recv[cut - 1])
            position = cut
            # A later snapshot run is a resync: the book went unknown at some point since the
            # last change, so the times before the new snapshot get no (stale) sample. Nor do
            # the times while the book is unknown after a break.
            if self.known and not run_start[cut]:
                for interval, depth, lo_k, hi_k in cuts[cut]:
                    self._sample(interval, depth, lo_k, hi_k)
            if run_start[cut]:
                self.bids, self.asks = {}, {}
                self.known = True
            elif breaks[cut] and self.known:
                self.bids, self.asks = {}, {}
                self.known = False
        if self.known:
            self._apply(side, price, size, position, n)
            self.last_uid, self.last_recv = int(uid[n - 1]), int(recv[n - 1])
        self.eff = int(eff[-1])

    def _apply(self, side: npt.NDArray[np.generic], price: F8, size: F8, a: int, b: int) -> None:
        if b <= a:
            return
        s, p, q = side[a:b], price[a:b], size[a:b]
        bid = s == BID
        self.bids.update(zip(p[bid].tolist(), q[bid].tolist(), strict=True))
        ask = s == ASK
        self.asks.update(zip(p[ask].tolist(), q[ask].tolist(), strict=True))
        self._applied += b - a
        # deletes stay as zero entries until there are many of them
        if self._applied > 4 * (len(self.bids) + len(self.asks)) + 10_000:
            self.bids = {k: v for k, v in self.bids.items() if v > 0.0}
            self.asks = {k: v for k, v in self.asks.items() if v > 0.0}
            self._applied = 0

    def _sample(self, interval: int, depth: int, lo_k: int, hi_k: int) -> None:
        """Snapshots at ``k * interval`` for k in [lo_k, hi_k): all the current book."""
        bid_p, bid_s = _top(self.bids, depth, descending=True)
        ask_p, ask_s = _top(self.asks, depth, descending=False)
        nan = math.nan
        best_bid, best_bid_size = (float(bid_p[0]), float(bid_s[0])) if len(bid_p) else (nan, nan)
        best_ask, best_ask_size = (float(ask_p[0]), float(ask_s[0])) if len(ask_p) else (nan, nan)
        bid_volume = float(np.add.reduce(bid_s)) if len(bid_s) else 0.0
        ask_volume = float(np.add.reduce(ask_s)) if len(ask_s) else 0.0
        both = best_bid_size + best_ask_size
        total = bid_volume + ask_volume
        times = np.arange(lo_k, hi_k, dtype=np.int64) * interval
        count = len(times)
        values = {
            "bid_price": best_bid,
            "bid_size": best_bid_size,
            "ask_price": best_ask,
            "ask_size": best_ask_size,
            "mid": (best_bid + best_ask) / 2,
            "spread": best_ask - best_bid,
            "microprice": (best_bid * best_ask_size + best_ask * best_bid_size) / both
            if both > 0
            else nan,
            "imbalance": (bid_volume - ask_volume) / total if total > 0 else nan,
            "bid_volume": bid_volume,
            "ask_volume": ask_volume,
        }
        top: Columns = {"ts": times, "recv_ts": np.full(count, self.last_recv, np.int64)}
        for name, value in values.items():
            top[name] = np.full(count, value, np.float64)
        top["bid_levels"] = np.full(count, len(bid_p), np.int64)
        top["ask_levels"] = np.full(count, len(ask_p), np.int64)
        top["update_id"] = np.full(count, self.last_uid, np.int64)
        width = len(bid_p) + len(ask_p)
        levels: Columns = {
            "ts": np.repeat(times, width),
            "recv_ts": np.full(count * width, self.last_recv, np.int64),
            "side": np.tile(
                np.r_[np.full(len(bid_p), BID), np.full(len(ask_p), ASK)].astype(np.int8), count
            ),
            "level": np.tile(np.r_[np.arange(len(bid_p)), np.arange(len(ask_p))], count).astype(
                np.int64
            ),
            "price": np.tile(np.r_[bid_p, ask_p], count),
            "size": np.tile(np.r_[bid_s, ask_s], count),
        }
        self._tops[(interval, depth)].append(top)
        self._levels[(interval, depth)].append(levels)


# --- flow and risk ------------------------------------------------------------------------------

FLOW_FIELDS = (
    "ts", "recv_ts", "buy_volume", "sell_volume", "flow_imbalance", "realized_vol", "returns",
)  # fmt: skip


class FlowCalculator:
    """Rolling flow imbalance and realized volatility over the last ``bars`` time bars."""

    def __init__(self, bars: int) -> None:
        self.bars = bars
        self.tail: Columns = {}  # the last ``bars`` bars seen (one more close for the return)

    def reset(self) -> None:
        self.tail = {}

    def add(self, bars: Columns) -> Columns | None:
        """Newly closed consecutive bars (``close_time``, ``recv_ts``, closes, volumes)."""
        if not _length(bars):
            return None
        wanted = ("close_time", "recv_ts", "close", "buy_volume", "sell_volume")
        new = {name: bars[name] for name in wanted}
        seen = _concat([self.tail, new]) if self.tail else new
        k = self.bars
        self.tail = _take(seen, slice(-(k + 1), None))
        if _length(seen) < k + 1:
            return None
        close: F8 = seen["close"]
        with np.errstate(invalid="ignore", divide="ignore"):
            returns = np.log(close[1:] / close[:-1])
        buy = window_sums(seen["buy_volume"][1:], k)
        sell = window_sums(seen["sell_volume"][1:], k)
        realized = np.sqrt(window_sums(returns * returns, k))
        total = buy + sell
        with np.errstate(invalid="ignore", divide="ignore"):
            imbalance = np.where(total > 0, (buy - sell) / total, math.nan)
        end = len(close)
        fresh = min(_length(new), end - k)
        window = slice(len(buy) - fresh, None)
        return {
            "ts": seen["close_time"][end - fresh :],
            "recv_ts": seen["recv_ts"][end - fresh :],
            "buy_volume": buy[window],
            "sell_volume": sell[window],
            "flow_imbalance": imbalance[window],
            "realized_vol": realized[window],
            "returns": np.full(fresh, k, np.int64),
        }


# --- cross-market -------------------------------------------------------------------------------

BASIS_FIELDS = ("ts", "recv_ts", "mid_a", "mid_b", "spread", "basis", "ts_a", "ts_b")


class QuoteLeg:
    """One leg's quotes (mid) in effective-time order, with the last one already used."""

    def __init__(self, grace_ns: int) -> None:
        self.grace = grace_ns
        self.pending: list[Columns] = []
        self.carry: Columns = {}  # the last quote with e <= the last emitted time
        self.first_e: int | None = None
        self.late = 0

    def add(self, quotes: Columns, floor_e: int | None) -> None:
        """``quotes``: ts, recv_ts, mid. ``floor_e``: quotes at or before it were already used."""
        if not _length(quotes):
            return
        e = effective_time(quotes["ts"], quotes["recv_ts"], self.grace)
        if floor_e is not None:
            early = e <= floor_e
            if early.any():
                self.late += int(early.sum())
                e = np.maximum(e, floor_e + 1)
        low = int(e.min())
        self.first_e = low if self.first_e is None else min(self.first_e, low)
        self.pending.append({**quotes, "e": e})

    def as_of(self, times: I8) -> tuple[F8, I8]:
        """(mid, ts) of the last quote with ``e <= T`` for each T; keeps the rest pending."""
        parts = ([self.carry] if self.carry else []) + self.pending
        quotes = _concat(parts)
        order = np.lexsort((quotes["recv_ts"], quotes["ts"], quotes["e"]))
        if self.carry:  # the carried quote sorts first: every pending e is greater
            order = np.r_[0, order[order != 0]]
        quotes = _take(quotes, order)
        index = np.searchsorted(quotes["e"], times, side="right") - 1
        used = int(index[-1])
        self.carry = _take(quotes, slice(used, used + 1))
        rest = _take(quotes, slice(used + 1, None))
        self.pending = [rest] if _length(rest) else []
        return quotes["mid"][index], quotes["ts"][index]


class BasisCalculator:
    """Mid spread and basis of two legs on a common grid (see the module docstring)."""

    def __init__(self, interval_ns: int, grace_ns: int) -> None:
        self.interval = interval_ns
        self.grace = grace_ns
        self.a = QuoteLeg(grace_ns)
        self.b = QuoteLeg(grace_ns)
        self.next_k: int | None = None

    def reset(self) -> None:
        self.a = QuoteLeg(self.grace)
        self.b = QuoteLeg(self.grace)
        self.next_k = None

    def add(self, leg_a: Columns, leg_b: Columns) -> None:
        floor = None if self.next_k is None else (self.next_k - 1) * self.interval
        self.a.add(leg_a, floor)
        self.b.add(leg_b, floor)

    def close(self, now_ns: int) -> Columns | None:
        """Every grid time final at ``now_ns`` where both legs have a quote."""
        last_k = (now_ns - self.grace) // self.interval  # T = k * interval final iff k <= this
        if self.next_k is None:
            a, b = self.a.first_e, self.b.first_e
            horizon = now_ns - self.grace
            if a is None or b is None or a > horizon or b > horizon:
                return None
            self.next_k = int(_ceil_div(max(a, b), self.interval))
        if last_k < self.next_k:
            return None
        times = np.arange(self.next_k, last_k + 1, dtype=np.int64) * self.interval
        self.next_k = last_k + 1
        mid_a, ts_a = self.a.as_of(times)
        mid_b, ts_b = self.b.as_of(times)
        spread = mid_b - mid_a
        with np.errstate(invalid="ignore", divide="ignore"):
            basis = spread / mid_a
        return {
            "ts": times,
            "recv_ts": times + self.grace,
            "mid_a": mid_a,
            "mid_b": mid_b,
            "spread": spread,
            "basis": basis,
            "ts_a": ts_a,
            "ts_b": ts_b,
        }
