"""Binance order-book sync: buffer diffs, validate a REST snapshot, apply, detect gaps.

The rules are Binance's own ("How to manage a local order book correctly"):

* spot: buffer diffs; a snapshot whose ``lastUpdateId + 1`` is older than the first buffered
  ``U`` cannot be continued from the buffer → refetch; drop buffered diffs with
  ``u <= lastUpdateId``; the first applied diff straddles ``U <= lastUpdateId + 1 <= u``;
  afterwards a diff with ``U > last_u + 1`` is a gap.
* USD-M: drop diffs with ``u < lastUpdateId``; the first applied diff straddles
  ``U <= lastUpdateId <= u``; afterwards ``pu`` must equal the previous ``u``.

Diffs whose ``u`` is not newer than the book (duplicates, late arrivals) are ignored: applying
them would move levels back in time. A diff that would cross the book is treated as a gap, so a
stored book is never crossed. Every gap records ``gap`` + ``resync`` events, clears the book and
starts buffering again; the caller fetches a snapshot when :attr:`OrderBook.wants_snapshot`.

The book's sides are :class:`hundi.book.BookSide`; :data:`BOOK_RULE` is how readers of the
stored rows (``hundi.book``) judge their continuity, registered as this exchange's
``book_rule``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

import numpy as np

from hundi.book.rule import I64, Bools
from hundi.book.side import BookSide
from hundi.exchanges.base import BookStatus, RecordSink
from hundi.exchanges.binance.messages import DepthSnapshotMsg, DepthUpdateMsg
from hundi.records import ASK, BID, BookChange, Channel, Event, EventKind

MS = 1_000_000  # Binance times are ms; records are ns


class BinanceBookRule:
    """Binance's continuity of stored book rows (:class:`hundi.book.rule.ContinuityRule`).

    What :class:`OrderBook` enforces live, judged on the rows it stored: a USD-M row carries
    ``pu`` (``prev_update_id >= 0``) and continues when ``pu == previous u`` (the first diff
    after a snapshot straddles it: ``U <= lastUpdateId <= u``); a spot row continues when
    ``U == previous u + 1`` (after a snapshot ``U <= lastUpdateId + 1 <= u``). The live sync
    takes its snapshot straddle from :meth:`straddles`; live, a spot diff overlapping the book
    (``U <= last + 1 < u``) is applied, which a stored row judges a break (Binance spot diffs
    are contiguous: it does not happen).
    """

    @staticmethod
    def straddles(first_id: int, final_id: int, snapshot_id: int, usdm: bool) -> bool:
        """The first diff applied on a snapshot: ``U <= lastUpdateId <= u`` (USD-M), spot
        ``U <= lastUpdateId + 1 <= u``."""
        expected = snapshot_id if usdm else snapshot_id + 1
        return first_id <= expected <= final_id

    def after_snapshot(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        usdm = prev_id >= 0
        return np.where(
            usdm,
            (first_id <= prev_u) & (prev_u <= update_id),
            (first_id <= prev_u + 1) & (prev_u + 1 <= update_id),
        )

    def after_diff(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        continued: Bools = np.where(prev_id >= 0, prev_id == prev_u, first_id == prev_u + 1)
        return continued


BOOK_RULE: Final = BinanceBookRule()


class OrderBook:
    """Sync state machine of one symbol's book; appends BookChange rows and events to a sink."""

    def __init__(
        self,
        *,
        exchange: str,
        symbol: str,
        native: str,
        usdm: bool,
        max_buffer: int,
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.native = native
        self.usdm = usdm
        self.max_buffer = max_buffer
        self.bids = BookSide(-1)
        self.asks = BookSide(1)
        self.synced = False
        self.last_update_id = -1
        self.buffer: deque[tuple[DepthUpdateMsg, int]] = deque()
        self.pending: tuple[DepthSnapshotMsg, int] | None = None
        self.wants_snapshot = True
        self.snapshots_used = 0
        self.snapshots_refused = 0
        self.last_break = ""  # what last unsynced the book (status screens say why)

    # ------------------------------------------------------------------ state for the caller
    @property
    def needs_request(self) -> bool:
        """A snapshot should be fetched: unsynced, diffs buffered, none held back."""
        return (
            self.wants_snapshot and not self.synced and self.pending is None and bool(self.buffer)
        )

    def state(self) -> BookStatus:
        best_bid = self.bids.best()
        best_ask = self.asks.best()
        return BookStatus(
            symbol=self.symbol,
            synced=self.synced,
            bids=len(self.bids.levels),
            asks=len(self.asks.levels),
            best_bid=math.nan if best_bid is None else best_bid,
            best_ask=math.nan if best_ask is None else best_ask,
            last_update_id=self.last_update_id if self.synced else -1,
            waiting="" if self.synced else self._waiting(),
        )

    def _waiting(self) -> str:
        """Why the book is not synced: what it waits for, and what broke it last."""
        if self.pending is not None:
            what = "snapshot ahead of the diffs, waiting for the diff that reaches it"
        elif self.buffer:
            what = "waiting for a depth snapshot"
        else:
            what = "waiting for the first diff"
        return f"{what} (after {self.last_break})" if self.last_break else what

    # ------------------------------------------------------------------ inputs
    def on_diff(self, msg: DepthUpdateMsg, recv_ns: int, out: RecordSink) -> None:
        if self.synced:
            self._on_live(msg, recv_ns, out)
            return
        if len(self.buffer) >= self.max_buffer:
            first = self.buffer[0][0]
            ts = msg.event_time * MS
            self._emit(
                out,
                EventKind.GAP,
                ts,
                recv_ns,
                first.first_id,
                msg.first_id,
                f"diff buffer full ({self.max_buffer}) while waiting for a snapshot",
            )
            self._emit(out, EventKind.RESYNC, ts, recv_ns, -1, -1, "buffer overflow")
            self.buffer.clear()
            self.last_break = "diff buffer overflow"
            self.wants_snapshot = True
        self.buffer.append((msg, recv_ns))
        if self.pending is not None:
            self._try_sync(out)

    def on_snapshot(self, snap: DepthSnapshotMsg, recv_ns: int, out: RecordSink) -> None:
        """A REST snapshot arrived. Ignored if the book synced meanwhile."""
        self.wants_snapshot = False
        if self.synced:
            return
        self.pending = (snap, recv_ns)
        self._try_sync(out)

    def snapshot_failed(self) -> None:
        """The request failed; ask again (the scheduler paces the retry)."""
        if not self.synced:
            self.wants_snapshot = True

    def disconnect(self, now_ns: int, out: RecordSink) -> None:
        """The connection carrying this book dropped: whatever comes next is not continuous."""
        if self.synced:
            self._emit(out, EventKind.GAP, now_ns, now_ns, self._expected(), -1, "disconnect")
            self._emit(out, EventKind.RESYNC, now_ns, now_ns, -1, -1, "disconnect")
        self._reset()
        self.last_break = "disconnect"

    # ------------------------------------------------------------------ sync
    def _try_sync(self, out: RecordSink) -> None:
        assert self.pending is not None
        snap, snap_recv_ns = self.pending
        lid = snap.last_update_id
        buffer = self.buffer
        if self.usdm:
            while buffer and buffer[0][0].final_id < lid:
                buffer.popleft()
        else:
            while buffer and buffer[0][0].final_id <= lid:
                buffer.popleft()
        if not buffer:
            return  # snapshot is ahead of every diff so far; wait for the straddling one
        first, first_recv_ns = buffer[0]
        # the buffer holds no diff older than the snapshot: only U can miss the straddle
        continues = BOOK_RULE.straddles(first.first_id, first.final_id, lid, self.usdm)
        snap_ts = snap.event_time * MS if snap.event_time >= 0 else snap_recv_ns
        if not continues:
            self.pending = None
            self.wants_snapshot = True
            self.snapshots_refused += 1
            self.last_break = "stale snapshot"
            self._emit(
                out,
                EventKind.RESYNC,
                snap_ts,
                snap_recv_ns,
                first.first_id,
                lid,
                f"stale snapshot: lastUpdateId {lid} is older than the first buffered "
                f"diff U={first.first_id}; refetching",
            )
            return
        self.pending = None
        self.bids.load(snap.bids)
        self.asks.load(snap.asks)
        best_bid, best_ask = self.bids.best(), self.asks.best()
        if best_bid is not None and best_ask is not None and best_bid >= best_ask:
            self.bids.clear()
            self.asks.clear()
            self.wants_snapshot = True
            self.snapshots_refused += 1
            self.last_break = "crossed snapshot"
            self._emit(out, EventKind.RESYNC, snap_ts, snap_recv_ns, -1, lid, "crossed snapshot")
            return
        self.synced = True
        self.last_update_id = lid
        self.snapshots_used += 1
        self._emit_snapshot(snap, snap_ts, snap_recv_ns, out)
        self._emit(out, EventKind.SYNCED, snap_ts, snap_recv_ns, -1, lid, "snapshot applied")
        buffered = list(buffer)
        buffer.clear()
        self._apply(first, first_recv_ns, out)
        for msg, recv_ns in buffered[1:]:
            self.on_diff(msg, recv_ns, out)

    def _on_live(self, msg: DepthUpdateMsg, recv_ns: int, out: RecordSink) -> None:
        last = self.last_update_id
        if msg.final_id <= last:
            return  # duplicate or late: the book already contains it
        if self.usdm:
            if msg.prev_final_id != last:
                self._gap(out, msg, recv_ns, last, msg.prev_final_id, "pu != previous u")
                return
        elif msg.first_id > last + 1:
            self._gap(out, msg, recv_ns, last + 1, msg.first_id, "U skips ahead")
            return
        self._apply(msg, recv_ns, out)

    def _apply(self, msg: DepthUpdateMsg, recv_ns: int, out: RecordSink) -> None:
        ts = msg.event_time * MS
        first_id, final_id, prev_id = msg.first_id, msg.final_id, msg.prev_final_id
        exchange, symbol, native = self.exchange, self.symbol, self.native
        rows = []
        bids_set, asks_set = self.bids.set, self.asks.set
        for price, size in msg.bids:
            bids_set(price, size)
            rows.append(BookChange(
                exchange=exchange, symbol=symbol, native_symbol=native, ts=ts, recv_ts=recv_ns,
                side=BID, price=price, size=size, snapshot=False, first_update_id=first_id,
                update_id=final_id, prev_update_id=prev_id,
            ))  # fmt: skip
        for price, size in msg.asks:
            asks_set(price, size)
            rows.append(BookChange(
                exchange=exchange, symbol=symbol, native_symbol=native, ts=ts, recv_ts=recv_ns,
                side=ASK, price=price, size=size, snapshot=False, first_update_id=first_id,
                update_id=final_id, prev_update_id=prev_id,
            ))  # fmt: skip
        best_bid, best_ask = self.bids.best(), self.asks.best()
        if best_bid is not None and best_ask is not None and best_bid >= best_ask:
            self._gap(
                out,
                msg,
                recv_ns,
                -1,
                final_id,
                f"diff would cross the book (bid {best_bid} >= ask {best_ask})",
            )
            return
        self.last_update_id = final_id
        out.book.extend(rows)

    def _gap(
        self,
        out: RecordSink,
        msg: DepthUpdateMsg,
        recv_ns: int,
        expected: int,
        received: int,
        detail: str,
    ) -> None:
        """Sequence break: record it, drop the book, start buffering from ``msg``."""
        ts = msg.event_time * MS
        self._reset()
        self.last_break = f"gap: {detail}"
        self._emit(out, EventKind.GAP, ts, recv_ns, expected, received, detail)
        self._emit(out, EventKind.RESYNC, ts, recv_ns, -1, -1, detail)
        self.buffer.append((msg, recv_ns))

    def _reset(self) -> None:
        self.synced = False
        self.last_update_id = -1
        self.bids.clear()
        self.asks.clear()
        self.buffer.clear()
        self.pending = None
        self.wants_snapshot = True

    def _expected(self) -> int:
        return self.last_update_id if self.usdm else self.last_update_id + 1

    # ------------------------------------------------------------------ output
    def _emit(
        self,
        out: RecordSink,
        kind: str,
        ts: int,
        recv_ts: int,
        expected: int,
        received: int,
        detail: str,
    ) -> None:
        out.events.append(
            Event(
                exchange=self.exchange,
                symbol=self.symbol,
                native_symbol=self.native,
                ts=ts,
                recv_ts=recv_ts,
                kind=kind,
                channel=Channel.BOOK.value,
                expected=expected,
                received=received,
                detail=detail,
            )
        )

    def _emit_snapshot(
        self, snap: DepthSnapshotMsg, ts: int, recv_ns: int, out: RecordSink
    ) -> None:
        """One ``snapshot=True`` row per level, all with ``update_id = lastUpdateId``.

        Readers restart the book at a run of snapshot rows (a new run begins where the previous
        row was no snapshot row or had another ``update_id``). An entirely empty snapshot still
        needs such a run, so it is written as one delete row (bid, price 0, size 0).
        """
        exchange, symbol, native = self.exchange, self.symbol, self.native
        lid = snap.last_update_id
        rows = out.book
        levels_by_side: tuple[tuple[int, dict[float, float]], ...] = (
            (BID, self.bids.levels),
            (ASK, self.asks.levels),
        )
        if not self.bids.levels and not self.asks.levels:
            levels_by_side = ((BID, {0.0: 0.0}),)
        for side, levels in levels_by_side:
            for price, size in levels.items():
                rows.append(BookChange(
                    exchange=exchange, symbol=symbol, native_symbol=native, ts=ts,
                    recv_ts=recv_ns, side=side, price=price, size=size, snapshot=True,
                    first_update_id=-1, update_id=lid, prev_update_id=-1,
                ))  # fmt: skip
