"""Bitstamp order-book sync: ``diff_order_book`` diffs on a REST ``order_book`` snapshot.

Bitstamp numbers nothing: a diff carries only its ``microtimestamp`` (µs). The documented
procedure is to subscribe to ``diff_order_book_<pair>``, buffer its diffs, fetch
``/api/v2/order_book/<pair>``, drop the buffered diffs whose microtimestamp is ``<=`` the
snapshot's and apply the rest. Without sequence ids, what can be checked is checked:

* **stale snapshot**: a snapshot older than the first diff buffered since the subscription
  (or since the last break) may miss changes made between the two, which no diff carries. It is
  never applied: a ``resync`` event says so and a newer snapshot is fetched. The snapshot is
  requested once the subscription is acknowledged, and then needs no diff to vouch for it;
  one requested before (no ack in time) that arrives before any diff waits for the first one
  to judge it.
* **time going back**: a diff older than the last one applied (``microtimestamp`` decreasing)
  means the stream is not the one the book was built from: ``gap``. Diffs not newer than the
  snapshot are dropped, also after the sync (they may still be in flight when it arrives).
* **crossed book**: a diff that would leave the best bid at or above the best ask: ``gap``.
* **disconnect**: the stream of a dropped connection is not continuous: ``gap``.

Every gap stores ``gap`` and ``resync`` events, clears the book, buffers from the next diff and
fetches a new snapshot: the resync is in place, the connection stays up. A dropped diff on a
live connection cannot be seen (Bitstamp's diffs carry no sequence), unless it leaves the book
crossed; ``docs/venue-bitstamp.md`` says so.

Stored rows carry the diff's microtimestamp as ``first_update_id`` and ``update_id`` and the
previous applied one as ``prev_update_id``; snapshot rows carry the snapshot's. :data:`BOOK_RULE`
judges stored rows the same way the live sync judges diffs.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

from hundi.book.rule import I64, Bools
from hundi.book.side import BookSide
from hundi.exchanges.base import BookStatus, RecordSink
from hundi.exchanges.bitstamp.messages import BookMsg
from hundi.records import ASK, BID, BookChange, Channel, Event, EventKind

US = 1_000  # Bitstamp's microtimestamps are µs; records are ns


class BitstampBookRule:
    """Continuity of stored Bitstamp rows (:class:`hundi.book.rule.ContinuityRule`), ids being
    microtimestamps: a diff continues a snapshot if it is newer than it (older diffs were
    dropped by the sync), and continues a diff if it is not older (two diffs may share a µs)."""

    def after_snapshot(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        continued: Bools = first_id > prev_u
        return continued

    def after_diff(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        continued: Bools = first_id >= prev_u
        return continued


BOOK_RULE: Final = BitstampBookRule()


class OrderBook:
    """Sync state machine of one pair's book; appends BookChange rows and events to a sink."""

    def __init__(self, *, exchange: str, symbol: str, native: str, max_buffer: int) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.native = native
        self.max_buffer = max_buffer
        self.bids = BookSide(-1)
        self.asks = BookSide(1)
        self.synced = False
        self.last_mt = -1  # microtimestamp of the snapshot or diff applied last
        self.snapshot_mt = -1  # microtimestamp of the snapshot the book was built on
        self.diffs_covered = 0  # diffs dropped as older than the snapshot (it holds them)
        self.buffer: deque[tuple[BookMsg, int]] = deque()
        self.first_buffered_mt = -1  # first diff since the subscription or the last break
        self.pending: tuple[BookMsg, int, bool] | None = None  # snapshot, recv, asked after ack
        self.connected = False  # the connection carrying the diffs is open
        self.opened_ns = 0  # when it opened
        self.acked = False  # the diff subscription was acknowledged on this connection
        self.wants_snapshot = False  # a snapshot should be requested (none in flight)
        self.snapshots_used = 0
        self.snapshots_refused = 0
        self.last_break = ""

    # ------------------------------------------------------------------ state for the caller
    @property
    def needs_request(self) -> bool:
        return self.connected and self.wants_snapshot and not self.synced

    def request_from_ns(self, ack_wait_ns: int) -> int:
        """When a snapshot may be requested: once the diff subscription is acknowledged (the
        snapshot is then surely newer than the subscription, and needs no diff to vouch for
        it), or ``ack_wait_ns`` after the open without an ack (a slow ack, or a recording
        whose client asked before its ack arrived)."""
        return self.opened_ns if self.acked else self.opened_ns + ack_wait_ns

    def state(self) -> BookStatus:
        best_bid, best_ask = self.bids.best(), self.asks.best()
        return BookStatus(
            symbol=self.symbol,
            synced=self.synced,
            bids=len(self.bids.levels),
            asks=len(self.asks.levels),
            best_bid=math.nan if best_bid is None else best_bid,
            best_ask=math.nan if best_ask is None else best_ask,
            last_update_id=self.last_mt if self.synced else -1,
            waiting="" if self.synced else self._waiting(),
        )

    def _waiting(self) -> str:
        if not self.connected:
            what = "waiting for the connection"
        elif self.pending is not None:
            what = "snapshot held, waiting for the first diff to judge it"
        elif self.wants_snapshot:
            what = "waiting to request an order_book snapshot"
        else:
            what = "waiting for the order_book snapshot"
        return f"{what} (after {self.last_break})" if self.last_break else what

    # ------------------------------------------------------------------ connection
    def opened(self, now_ns: int, out: RecordSink) -> None:
        """A fresh connection: a fresh diff stream, so a fresh snapshot."""
        self.disconnected(now_ns, out)
        self.connected = True
        self.opened_ns = now_ns
        self.wants_snapshot = True

    def disconnected(self, now_ns: int, out: RecordSink) -> None:
        if self.synced:
            self._emit(out, EventKind.GAP, now_ns, now_ns, self.last_mt, -1, "disconnect")
            self._emit(out, EventKind.RESYNC, now_ns, now_ns, -1, -1, "disconnect")
            self.last_break = "disconnect"
        self._reset()
        self.connected = False
        self.acked = False
        self.wants_snapshot = False

    def subscribed(self) -> None:
        """Bitstamp acknowledged the diff subscription: diffs from now on reach us."""
        self.acked = True

    # ------------------------------------------------------------------ inputs
    def on_diff(self, msg: BookMsg, recv_ns: int, out: RecordSink) -> None:
        if self.synced:
            self._on_live(msg, recv_ns, out)
            return
        buffer = self.buffer
        if buffer and msg.microtimestamp < buffer[-1][0].microtimestamp:
            self._restart_buffer(out, msg, recv_ns, "diff microtimestamp went back while buffering")
            return
        if len(buffer) >= self.max_buffer:
            self._restart_buffer(
                out, msg, recv_ns, f"diff buffer full ({self.max_buffer}) waiting for a snapshot"
            )
            return
        if not buffer and self.first_buffered_mt < 0:
            self.first_buffered_mt = msg.microtimestamp
        buffer.append((msg, recv_ns))
        if self.pending is not None:
            self._try_sync(out)

    def on_snapshot(
        self, snap: BookMsg, recv_ns: int, asked_after_ack: bool, out: RecordSink
    ) -> None:
        """A REST snapshot answered the current connection's request."""
        if self.synced:
            return
        self.pending = (snap, recv_ns, asked_after_ack)
        self._try_sync(out)

    def snapshot_failed(self) -> None:
        if not self.synced:
            self.wants_snapshot = True

    # ------------------------------------------------------------------ sync
    def _try_sync(self, out: RecordSink) -> None:
        assert self.pending is not None
        snap, snap_recv_ns, asked_after_ack = self.pending
        snap_mt = snap.microtimestamp
        snap_ts = snap_mt * US
        first_mt = self.first_buffered_mt
        if first_mt < 0 and not asked_after_ack:
            return  # no diff yet to prove the subscription was live when the snapshot was taken
        if first_mt > snap_mt:
            self.pending = None
            self.wants_snapshot = True
            self.snapshots_refused += 1
            self.last_break = "stale snapshot"
            self._emit(
                out,
                EventKind.RESYNC,
                snap_ts,
                snap_recv_ns,
                first_mt,
                snap_mt,
                f"stale snapshot: microtimestamp {snap_mt} is older than the first buffered "
                f"diff's {first_mt}; refetching",
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
            self._emit(
                out, EventKind.RESYNC, snap_ts, snap_recv_ns, -1, snap_mt, "crossed snapshot"
            )
            return
        self.synced = True
        self.wants_snapshot = False
        self.last_mt = self.snapshot_mt = snap_mt
        self.snapshots_used += 1
        self._emit_snapshot(snap_mt, snap_ts, snap_recv_ns, out)
        self._emit(out, EventKind.SYNCED, snap_ts, snap_recv_ns, -1, snap_mt, "snapshot applied")
        buffered = list(self.buffer)
        self.buffer.clear()
        self.first_buffered_mt = -1
        for msg, recv_ns in buffered:
            self.on_diff(msg, recv_ns, out)

    def _on_live(self, msg: BookMsg, recv_ns: int, out: RecordSink) -> None:
        mt = msg.microtimestamp
        if mt <= self.snapshot_mt:
            self.diffs_covered += 1  # a late diff the snapshot already holds
            return
        if mt < self.last_mt:
            self._gap(
                out, msg, recv_ns, self.last_mt, mt, "diff microtimestamp older than the book"
            )
            return
        prev_mt = self.last_mt
        ts = mt * US
        exchange, symbol, native = self.exchange, self.symbol, self.native
        rows = []
        bids_set, asks_set = self.bids.set, self.asks.set
        for price, size in msg.bids:
            bids_set(price, size)
            rows.append(BookChange(
                exchange=exchange, symbol=symbol, native_symbol=native, ts=ts, recv_ts=recv_ns,
                side=BID, price=price, size=size, snapshot=False, first_update_id=mt,
                update_id=mt, prev_update_id=prev_mt,
            ))  # fmt: skip
        for price, size in msg.asks:
            asks_set(price, size)
            rows.append(BookChange(
                exchange=exchange, symbol=symbol, native_symbol=native, ts=ts, recv_ts=recv_ns,
                side=ASK, price=price, size=size, snapshot=False, first_update_id=mt,
                update_id=mt, prev_update_id=prev_mt,
            ))  # fmt: skip
        best_bid, best_ask = self.bids.best(), self.asks.best()
        if best_bid is not None and best_ask is not None and best_bid >= best_ask:
            self._gap(
                out, msg, recv_ns, -1, mt, f"diff would cross the book (bid {best_bid} >= ask "
                f"{best_ask})",
            )  # fmt: skip
            return
        self.last_mt = mt
        out.book.extend(rows)

    def _gap(
        self,
        out: RecordSink,
        msg: BookMsg,
        recv_ns: int,
        expected: int,
        received: int,
        detail: str,
    ) -> None:
        """A break while synced: record it, drop the book, buffer from ``msg``, refetch."""
        ts = msg.microtimestamp * US
        self._reset()
        self.wants_snapshot = True
        self.last_break = f"gap: {detail}"
        self._emit(out, EventKind.GAP, ts, recv_ns, expected, received, detail)
        self._emit(out, EventKind.RESYNC, ts, recv_ns, -1, -1, detail)
        self.buffer.append((msg, recv_ns))
        self.first_buffered_mt = msg.microtimestamp

    def _restart_buffer(self, out: RecordSink, msg: BookMsg, recv_ns: int, detail: str) -> None:
        """The buffer cannot be continued (unsynced, so nothing stored broke): start it over
        from ``msg``; a snapshot already held is judged against the new first diff."""
        ts = msg.microtimestamp * US
        self._emit(out, EventKind.RESYNC, ts, recv_ns, -1, msg.microtimestamp, detail)
        self.last_break = detail
        self.buffer.clear()
        self.buffer.append((msg, recv_ns))
        self.first_buffered_mt = msg.microtimestamp
        if self.pending is not None:
            self._try_sync(out)
        elif not self.wants_snapshot:
            self.wants_snapshot = True

    def _reset(self) -> None:
        self.synced = False
        self.last_mt = self.snapshot_mt = -1
        self.bids.clear()
        self.asks.clear()
        self.buffer.clear()
        self.first_buffered_mt = -1
        self.pending = None

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

    def _emit_snapshot(self, mt: int, ts: int, recv_ns: int, out: RecordSink) -> None:
        """One ``snapshot=True`` row per level, ``update_id`` = the snapshot's microtimestamp;
        an empty snapshot is one delete row, so it still restarts the stored book."""
        exchange, symbol, native = self.exchange, self.symbol, self.native
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
                    first_update_id=-1, update_id=mt, prev_update_id=-1,
                ))  # fmt: skip
