"""Bitstamp order-book sync: ``diff_order_book`` diffs on a REST ``order_book`` snapshot.

Bitstamp numbers nothing: a diff carries only its ``microtimestamp`` (µs). The documented
procedure is to subscribe to ``diff_order_book_<pair>``, buffer its diffs, fetch
``/api/v2/order_book/<pair>``, drop the buffered diffs whose microtimestamp is ``<=`` the
snapshot's and apply the rest. Without sequence ids, what can be checked is checked:

* **stale snapshot**: Bitstamp's REST snapshot carries the time of the book's last change and
  lags the stream (1-2.5 s in the real recording): a snapshot may miss changes already
  streamed before its diffs were buffered. So a snapshot is always held until a buffered diff
  vouches for it (the first diff since the subscription or the last break is not newer than
  the snapshot: every change after the snapshot is then in the buffer). One older than that
  first diff is stale: never applied, a ``resync`` event says so and a newer snapshot is
  fetched, not before the stream's lead over it has passed (and backed off while stale). A
  quiet pair sends no diff: a second snapshot, asked after the diff subscription was
  acknowledged and at least ``quiet_confirm`` after the first was received, with the same
  microtimestamp and no diff in between, shows the book unchanged across a live
  subscription, and is applied.
* **time going back**: a diff older than the last one applied (``microtimestamp`` decreasing)
  means the stream is not the one the book was built from: ``gap``. Diffs not newer than the
  snapshot are dropped as covered right after the sync (buffered ones), but only until a newer
  diff is applied: after that, an old diff is time going back. A diff identical to the one
  applied last, with the same microtimestamp, is the same diff delivered twice and skipped.
* **crossed book**: a diff that would leave the best bid at or above the best ask: ``gap``.
* **disconnect**: the stream of a dropped connection is not continuous: ``gap``, stamped with
  the exchange time of the last applied change (the next snapshot, taken on that clock,
  repairs it for ``book_at``).

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
from hundi.exchanges.base import BookStatus, FrameStatus, RecordSink
from hundi.exchanges.bitstamp.messages import BookMsg
from hundi.records import ASK, BID, BookChange, Channel, Event, EventKind

US = 1_000  # Bitstamp's microtimestamps are µs; records are ns
NEVER = 1 << 62


class BitstampBookRule:
    """Continuity of stored Bitstamp rows (:class:`hundi.book.rule.ContinuityRule`), ids being
    microtimestamps. Every stored diff names the exact microtimestamp applied before it
    (``prev_update_id``), so a diff continues the row before it only if that is the row's
    ``update_id``: a stored diff missing in between breaks the chain. A diff is also newer
    than the snapshot it continues (older ones were dropped by the sync) and not older than
    the diff it continues (two diffs may share a µs). The rows of one diff share its ids: a
    row with the previous row's ``update_id`` that names an older predecessor is the same
    diff's next level."""

    def after_snapshot(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        continued: Bools = (prev_id == prev_u) & (first_id > prev_u)
        return continued

    def after_diff(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        same_diff = (update_id == prev_u) & (prev_id < prev_u)
        continued: Bools = ((prev_id == prev_u) & (first_id >= prev_u)) | same_diff
        return continued


BOOK_RULE: Final = BitstampBookRule()


class OrderBook:
    """Sync state machine of one pair's book; appends BookChange rows and events to a sink."""

    def __init__(
        self,
        *,
        exchange: str,
        symbol: str,
        native: str,
        max_buffer: int,
        quiet_confirm_ns: int = 3_000_000_000,
        stale_wait_ns: int = 1_000_000_000,
        backoff_cap_ns: int = 30_000_000_000,
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.native = native
        self.max_buffer = max_buffer
        self.quiet_confirm_ns = quiet_confirm_ns
        self.stale_wait_ns = stale_wait_ns
        self.backoff_cap_ns = backoff_cap_ns
        self.bids = BookSide(-1)
        self.asks = BookSide(1)
        self.synced = False
        self.last_mt = -1  # microtimestamp of the snapshot or diff applied last
        self.snapshot_mt = -1  # microtimestamp of the snapshot the book was built on
        self.diffs_covered = 0  # diffs dropped as older than the snapshot (it holds them)
        self.buffer: deque[tuple[BookMsg, int]] = deque()
        self.first_buffered_mt = -1  # first diff since the subscription or the last break
        self.pending: tuple[BookMsg, int] | None = None  # the snapshot held, when received
        self.not_before_ns = 0  # no snapshot request before (stale pacing, quiet confirmation)
        self.stale_in_row = 0  # stale snapshots since the last sync (their refetch backs off)
        self.last_diff: BookMsg | None = None  # the diff applied last (a repeat is skipped)
        self.diffs_repeated = 0  # diffs identical to the one applied last, skipped
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
        """When a snapshot may be requested: once the diff subscription is acknowledged, or
        ``ack_wait_ns`` after the open without an ack (a slow ack, or a recording whose client
        asked before its ack arrived); and not before a stale answer's pacing or a held
        snapshot's confirmation time."""
        if self.pending is not None and not self.acked:
            return NEVER  # only a snapshot asked after the ack can confirm the one held
        opened = self.opened_ns if self.acked else self.opened_ns + ack_wait_ns
        return max(opened, self.not_before_ns)

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
            what = "snapshot held, waiting for a diff or a second snapshot to vouch for it"
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
            # stamped on the exchange clock (the last change applied), like the snapshot rows
            # that will repair it: a snapshot at or after it is a book that resynced
            ts = self.last_mt * US
            self._emit(out, EventKind.GAP, ts, now_ns, self.last_mt, -1, "disconnect")
            self._emit(out, EventKind.RESYNC, ts, now_ns, -1, -1, "disconnect")
            self.last_break = "disconnect"
        self._reset()
        self.connected = False
        self.acked = False
        self.wants_snapshot = False

    def subscribed(self) -> None:
        """Bitstamp acknowledged the diff subscription: diffs from now on reach us."""
        self.acked = True

    # ------------------------------------------------------------------ inputs
    def on_diff(self, msg: BookMsg, recv_ns: int, out: RecordSink) -> FrameStatus:
        """PROCESSED, or FILTERED for the same diff delivered twice."""
        if self.synced:
            return self._on_live(msg, recv_ns, out)
        buffer = self.buffer
        if buffer and msg.microtimestamp < buffer[-1][0].microtimestamp:
            self._restart_buffer(out, msg, recv_ns, "diff microtimestamp went back while buffering")
            return FrameStatus.PROCESSED
        if len(buffer) >= self.max_buffer:
            self._restart_buffer(
                out, msg, recv_ns, f"diff buffer full ({self.max_buffer}) waiting for a snapshot"
            )
            return FrameStatus.PROCESSED
        if not buffer and self.first_buffered_mt < 0:
            self.first_buffered_mt = msg.microtimestamp
        buffer.append((msg, recv_ns))
        if self.pending is not None:
            self._try_sync(out)
        return FrameStatus.PROCESSED

    def on_snapshot(
        self,
        snap: BookMsg,
        recv_ns: int,
        asked_ns: int | None,
        asked_after_ack: bool,
        out: RecordSink,
    ) -> None:
        """A REST snapshot answered a request (``asked_ns``: when the current request was
        made, None for an older connection's); judged by the diffs buffered, or confirming
        the snapshot held for a quiet pair."""
        if self.synced:
            return
        held = self.pending
        if (
            held is not None
            and self.first_buffered_mt < 0
            and asked_after_ack
            and asked_ns is not None
            and asked_ns >= held[1] + self.quiet_confirm_ns
            and snap.microtimestamp == held[0].microtimestamp
        ):
            # no diff since the first, the book unchanged across a live subscription
            self.pending = None
            self._apply(snap, recv_ns, out, "snapshot applied (quiet pair: confirmed unchanged)")
            return
        self.pending = (snap, recv_ns)
        self._try_sync(out)

    def snapshot_failed(self) -> None:
        if not self.synced:
            self.wants_snapshot = True

    # ------------------------------------------------------------------ sync
    def _try_sync(self, out: RecordSink) -> None:
        assert self.pending is not None
        snap, snap_recv_ns = self.pending
        snap_mt = snap.microtimestamp
        snap_ts = snap_mt * US
        first_mt = self.first_buffered_mt
        if first_mt < 0:
            # no diff yet to vouch for it (the answer may lag the stream): held, and a second
            # snapshot asked later may confirm it for a quiet pair
            self.wants_snapshot = True
            self.not_before_ns = snap_recv_ns + self.quiet_confirm_ns
            return
        if first_mt > snap_mt:
            self.pending = None
            self.wants_snapshot = True
            self.snapshots_refused += 1
            self.stale_in_row += 1
            # the stream leads the snapshot by first_mt - snap_mt: asking sooner gets the same
            # lagging answer. A lead of minutes is a book that was quiet, not a lag that long,
            # so the first wait is at most stale_wait; doubled while answers stay stale
            lead_ns = min((first_mt - snap_mt) * US, self.stale_wait_ns)
            delay = min(self.backoff_cap_ns, lead_ns << min(self.stale_in_row - 1, 16))
            self.not_before_ns = snap_recv_ns + delay
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
        self._apply(snap, snap_recv_ns, out, "snapshot applied")

    def _apply(self, snap: BookMsg, snap_recv_ns: int, out: RecordSink, detail: str) -> None:
        """Build the book on ``snap`` and apply the buffered diffs newer than it."""
        snap_mt = snap.microtimestamp
        snap_ts = snap_mt * US
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
        self.not_before_ns = 0
        self.stale_in_row = 0
        self.last_diff = None
        self.last_mt = self.snapshot_mt = snap_mt
        self.snapshots_used += 1
        self._emit_snapshot(snap_mt, snap_ts, snap_recv_ns, out)
        self._emit(out, EventKind.SYNCED, snap_ts, snap_recv_ns, -1, snap_mt, detail)
        buffered = list(self.buffer)
        self.buffer.clear()
        self.first_buffered_mt = -1
        for msg, recv_ns in buffered:
            self.on_diff(msg, recv_ns, out)

    def _on_live(self, msg: BookMsg, recv_ns: int, out: RecordSink) -> FrameStatus:
        mt = msg.microtimestamp
        last_mt = self.last_mt
        if mt <= self.snapshot_mt and last_mt == self.snapshot_mt:
            self.diffs_covered += 1  # a late diff the snapshot already holds
            return FrameStatus.PROCESSED
        if mt < last_mt:
            self._gap(out, msg, recv_ns, last_mt, mt, "diff microtimestamp older than the book")
            return FrameStatus.PROCESSED
        if mt == last_mt and msg == self.last_diff:
            self.diffs_repeated += 1  # the same diff again (e.g. from two sockets)
            return FrameStatus.FILTERED
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
            return FrameStatus.PROCESSED
        self.last_mt = mt
        self.last_diff = msg
        out.book.extend(rows)
        return FrameStatus.PROCESSED

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
        self.last_diff = None
        self.not_before_ns = 0
        self.stale_in_row = 0
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
