"""OKX order-book sync (``books``, 400 levels): both formats, seqId chain and CRC32 checksums.

2026 format (OKX API changelog, "Delist initial snapshot and checksum field in order book
channels"; checksum always 0 from 23 June 2026, WS snapshot gone from early August 2026): buffer
the pushes, fetch ``GET /api/v5/market/books`` (its ``seqId``), drop buffered pushes with
``seqId <= snapshot seqId``; the first applied push must straddle ``prevSeqId <= snapshot seqId
< seqId`` (a snapshot older than the first buffered push is refetched); afterwards every push
must have ``prevSeqId == previous seqId``. A push with ``seqId == prevSeqId`` and no levels is
OKX's heartbeat (no change); a push with ``seqId < prevSeqId`` that continues the chain is OKX's
sequence reset (maintenance) and is applied. A break is a ``gap`` + ``resync`` event, and the
book resyncs in place: a new REST snapshot, the stream kept.

Older format (the recording ``OKX.*``): a WS ``action: snapshot`` (``prevSeqId -1``) starts the
book; every push carries ``checksum``, the signed CRC32 of ``bid1px:bid1sz:ask1px:ask1sz:...``
over the top 25 levels with OKX's own strings. Where ``checksum != 0`` it is verified after each
push; a mismatch is a gap. Pushes without ``seqId`` cannot be aligned with a REST snapshot, so
such a book resyncs by re-subscribing (a fresh WS snapshot) instead.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections import deque
from typing import Final

from hundi.book.rule import I64, Bools
from hundi.book.side import BookSide
from hundi.exchanges.base import BookStatus, RecordSink, RejectedFrame
from hundi.exchanges.okx.messages import BookMsg, Level
from hundi.exchanges.validity import MAX_VALUE, invalid
from hundi.records import ASK, BID, BookChange, Channel, Event, EventKind

MS: Final = 1_000_000
# A sequence reset's base is its push's exchange time in ms shifted by this: ~10^6 seqIds a ms
# between two resets before the numberings could overlap, and ms << 20 fits int64 until 2248.
RESET_SHIFT: Final = 20
CHECKSUM_LEVELS: Final = 25


class OkxBookRule:
    """Continuity of stored OKX rows (:class:`hundi.book.rule.ContinuityRule`).

    Diff rows carry ``first_update_id = update_id = seqId`` and ``prev_update_id = prevSeqId``
    as the push had them; snapshot rows (WS ``action: snapshot`` or the REST snapshot) carry
    ``update_id = snapshot seqId`` and ``-1`` for the other two. After a diff a row continues
    when ``prevSeqId == previous seqId`` (a sequence reset included); after a snapshot when it
    straddles it, ``prevSeqId <= seqId_snapshot < seqId``, or continues it exactly. Rows of
    pre-2022 traffic have no seqId (``update_id = -1``): only snapshots restart them.
    """

    def after_snapshot(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        straddle: Bools = (prev_id == prev_u) | ((prev_id <= prev_u) & (prev_u < update_id))
        return straddle

    def after_diff(self, first_id: I64, update_id: I64, prev_id: I64, prev_u: I64) -> Bools:
        continued: Bools = prev_id == prev_u
        return continued


BOOK_RULE: Final = OkxBookRule()


class Side(BookSide):
    """A book side that also keeps OKX's strings of each level, for the checksum."""

    __slots__ = ("text",)

    def __init__(self, sign: int) -> None:
        super().__init__(sign)
        self.text: dict[float, str] = {}

    def clear(self) -> None:
        super().clear()
        self.text = {}

    def top_text(self, n: int) -> list[str]:
        """``price:size`` of the best ``n`` levels, best first."""
        levels = self.levels
        best = heapq.nsmallest(n, levels) if self.sign > 0 else heapq.nlargest(n, levels)
        text = self.text
        return [text[p] for p in best]


def parse_levels(side: str, raw: list[Level]) -> list[tuple[float, float, str, str]]:
    """``(price, size, price text, size text)``; RejectedFrame for an implausible level."""
    out = []
    for level in raw:
        if len(level) < 2:
            raise RejectedFrame("invalid_field", f"{side} level {level!r}")
        px, sz = level[0], level[1]
        try:
            price, size = float(px), float(sz)
        except ValueError:
            raise RejectedFrame("invalid_field", f"{side} level not a number: {level!r}") from None
        if not 0.0 < price <= MAX_VALUE:
            raise invalid(f"{side} level price", price)
        if not 0.0 <= size <= MAX_VALUE:
            raise invalid(f"{side} level size", size)
        out.append((price, size, px, sz))
    return out


def checksum(bids: list[str], asks: list[str]) -> int:
    """OKX's signed CRC32 over the interleaved ``price:size`` strings of the top levels."""
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.append(bids[i])
        if i < len(asks):
            parts.append(asks[i])
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


Parsed = tuple[BookMsg, list[tuple[float, float, str, str]], list[tuple[float, float, str, str]]]


class OrderBook:
    """Sync state of one instrument's book; appends rows and events to a sink."""

    def __init__(self, exchange: str, symbol: str, native: str, max_buffer: int = 10_000) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.native = native
        self.max_buffer = max_buffer
        self.bids = Side(-1)
        self.asks = Side(1)
        self.synced = False
        self.seq = -1  # seqId of the last applied push (-1: none or no seqIds)
        self.buffer: deque[tuple[Parsed, int]] = deque()
        self.pending: tuple[Parsed, int] | None = None  # REST snapshot ahead of the pushes
        self.wants_snapshot = False  # a REST snapshot should be fetched
        self.in_flight = False
        self.wants_resubscribe = False  # no seqIds: only a fresh WS snapshot resyncs
        self.sequenced = False  # this stream carries seqIds
        self.epoch = 0  # sequence resets seen: a snapshot asked for before one is of no use
        self.request_epoch = 0
        # Stored ids keep increasing across OKX's sequence resets (the readers of stored rows
        # put them in id order): stored id = seqId + base. A reset sets base from the reset
        # push's own exchange time (ms << RESET_SHIFT), which every collector that received
        # that push sees alike, so two collectors (or a restarted one) store one id per
        # update and their copies merge. Without a reset in the run, the ids are OKX's seqIds.
        self.base = 0
        self.prev_base = 0
        self.max_seen = -1
        self.checksums_verified = 0
        self.checksum_mismatches = 0
        self.snapshots_used = 0
        self.snapshots_refused = 0
        self.last_break = ""
        self.snapshot_error = ""  # why the last REST snapshot was unusable ("": it was not)

    def status(self) -> BookStatus:
        bid, ask = self.bids.best(), self.asks.best()
        if self.synced:
            waiting = ""
        elif self.in_flight or self.wants_snapshot:
            waiting = "waiting for a REST snapshot"
        else:
            waiting = "waiting for a snapshot"
        if waiting and self.last_break:
            waiting += f" (after {self.last_break})"
        if waiting and self.snapshot_error:
            waiting += f"; last snapshot refused: {self.snapshot_error}"
        return BookStatus(
            symbol=self.symbol,
            synced=self.synced,
            bids=len(self.bids.levels),
            asks=len(self.asks.levels),
            best_bid=math.nan if bid is None else bid,
            best_ask=math.nan if ask is None else ask,
            last_update_id=self.seq if self.synced else -1,
            waiting=waiting,
        )

    # ------------------------------------------------------------------ inputs
    def on_push(self, parsed: Parsed, snapshot: bool, recv_ns: int, out: RecordSink) -> None:
        msg = parsed[0]
        if msg.seqId >= 0:
            self.sequenced = True
            if 0 <= msg.seqId < self.max_seen:
                self._renumbered(_ts(msg, recv_ns) // MS)
            self.max_seen = max(self.max_seen, msg.seqId)
        if snapshot:
            self._load(parsed, recv_ns, out, "ws snapshot")
            self._drain(out)
            return
        if self.synced:
            self._live(parsed, recv_ns, out)
            return
        if not self.sequenced:
            return  # nothing aligns a push without seqId but a WS snapshot: wait for one
        if len(self.buffer) >= self.max_buffer:
            detail = f"push buffer full ({self.max_buffer}) while waiting for a snapshot"
            self._emit(out, EventKind.GAP, _ts(msg, recv_ns), recv_ns, -1, msg.prevSeqId, detail)
            self.buffer.clear()
            self.last_break = "push buffer overflow"
        self.buffer.append((parsed, recv_ns))
        if not self.in_flight and self.pending is None:
            self.wants_snapshot = True
        if self.pending is not None:
            self._try_rest(out)

    def _renumbered(self, at_ms: int) -> None:
        """OKX's sequence reset (seen, or its push missed): seqIds start again lower. What was
        buffered is of the old numbering, which no snapshot taken from now on continues (nor
        one asked for before: refetched).

        The new base is the exchange time (ms) of the push that showed the reset, shifted
        past any seqId run between two resets: exchange data, so every collector that got
        the reset push stores the same ids after it (one that missed the push dates the new
        numbering by a later push and stores other ids: its copies stay apart). It never
        falls below the old numbering, so the stored ids keep increasing."""
        self.prev_base = self.base
        self.base = max(at_ms << RESET_SHIFT, self.base + self.max_seen + 1)
        self.max_seen = -1
        self.epoch += 1
        if not self.synced:
            self.buffer.clear()
            if self.pending is not None:
                self.pending = None
                self.wants_snapshot = True

    def requested(self) -> None:
        """A REST snapshot was asked for now."""
        self.wants_snapshot = False
        self.in_flight = True
        self.request_epoch = self.epoch

    def on_rest_snapshot(self, parsed: Parsed, recv_ns: int, out: RecordSink) -> None:
        self.in_flight = False
        self.snapshot_error = ""
        self.wants_snapshot = False
        if self.synced:
            return
        if self.request_epoch != self.epoch:
            self.wants_snapshot = True
            self.snapshots_refused += 1
            detail = "stale snapshot: asked for before a sequence reset; refetching"
            self._emit(out, EventKind.RESYNC, recv_ns, recv_ns, -1, parsed[0].seqId, detail)
            return
        self.pending = (parsed, recv_ns)
        self._try_rest(out)

    def snapshot_failed(self, reason: str = "") -> None:
        self.in_flight = False
        self.snapshot_error = reason
        if not self.synced:
            self.wants_snapshot = True

    def disconnect(self, now_ns: int, out: RecordSink) -> None:
        if self.synced:
            self._emit(out, EventKind.GAP, now_ns, now_ns, self.seq, -1, "disconnect")
            self._emit(out, EventKind.RESYNC, now_ns, now_ns, -1, -1, "disconnect")
        self._reset()
        self.wants_snapshot = False  # the reopened stream's pushes ask for it
        self.wants_resubscribe = False
        self.last_break = "disconnect"

    # ------------------------------------------------------------------ sync
    def _try_rest(self, out: RecordSink) -> None:
        assert self.pending is not None
        parsed, snap_recv = self.pending
        sid = parsed[0].seqId
        buffer = self.buffer
        while buffer and buffer[0][0][0].seqId <= sid:
            buffer.popleft()  # already contained in the snapshot
        if not buffer:
            return  # the snapshot is ahead of every push so far: wait for the straddling one
        first = buffer[0][0][0]
        if not (first.prevSeqId <= sid < first.seqId or first.prevSeqId == sid):
            self.pending = None
            self.wants_snapshot = True
            self.snapshots_refused += 1
            self.last_break = "stale snapshot"
            self._emit(out, EventKind.RESYNC, _ts(parsed[0], snap_recv), snap_recv,
                       first.prevSeqId, sid,
                       f"stale snapshot: seqId {sid} is older than the first buffered push "
                       f"(prevSeqId {first.prevSeqId}); refetching")  # fmt: skip
            return
        self.pending = None
        self._load(parsed, snap_recv, out, "rest snapshot")
        self._drain(out)

    def _drain(self, out: RecordSink) -> None:
        """Apply the buffered pushes after a (re)load: older ones dropped, then the chain."""
        buffered = list(self.buffer)
        self.buffer.clear()
        first = True
        for parsed, recv_ns in buffered:
            msg = parsed[0]
            if not self.synced:
                self.buffer.append((parsed, recv_ns))
            elif msg.seqId >= 0 and msg.seqId <= self.seq and msg.prevSeqId < self.seq:
                continue
            else:
                # the first push straddles the snapshot: prevSeqId <= snapshot seqId < seqId
                straddles = first and msg.prevSeqId <= self.seq < msg.seqId
                self._live(parsed, recv_ns, out, straddles)
                first = False

    def _load(self, parsed: Parsed, recv_ns: int, out: RecordSink, what: str) -> None:
        msg, bids, asks = parsed
        self.bids.clear()
        self.asks.clear()
        self.bids.load((p, s) for p, s, _, _ in bids)
        self.asks.load((p, s) for p, s, _, _ in asks)
        self.bids.text = {p: f"{pt}:{st}" for p, s, pt, st in bids if s > 0.0}
        self.asks.text = {p: f"{pt}:{st}" for p, s, pt, st in asks if s > 0.0}
        ts = _ts(msg, recv_ns)
        bid, ask = self.bids.best(), self.asks.best()
        if bid is not None and ask is not None and bid >= ask:
            self._reset()
            self.snapshots_refused += 1
            self._resync(out, ts, recv_ns, f"crossed {what}")
            return
        if msg.checksum != 0 and not self._verify(msg):
            self._reset()
            self._resync(out, ts, recv_ns, f"checksum mismatch on the {what}")
            return
        self.synced = True
        self.wants_snapshot = False
        self.wants_resubscribe = False
        self.seq = msg.seqId
        self.snapshots_used += 1
        stored = msg.seqId + self.base if msg.seqId >= 0 else -1
        rows = out.book
        levels = ((BID, self.bids.levels), (ASK, self.asks.levels))
        if not self.bids.levels and not self.asks.levels:
            levels = ((BID, {0.0: 0.0}), (ASK, {}))  # an empty book still restarts readers
        for side, side_levels in levels:
            for price, size in side_levels.items():
                rows.append(BookChange(
                    exchange=self.exchange, symbol=self.symbol, native_symbol=self.native,
                    ts=ts, recv_ts=recv_ns, side=side, price=price, size=size, snapshot=True,
                    first_update_id=-1, update_id=stored, prev_update_id=-1,
                ))  # fmt: skip
        self._emit(out, EventKind.SYNCED, ts, recv_ns, -1, msg.seqId, f"{what} applied")

    def _live(self, parsed: Parsed, recv_ns: int, out: RecordSink, straddles: bool = False) -> None:
        msg, bids, asks = parsed
        if self.sequenced and msg.prevSeqId != self.seq and not straddles:
            # no "duplicate" exception: after a sequence reset a lower seqId is new data
            self._gap(parsed, recv_ns, out, self.seq, msg.prevSeqId, "prevSeqId != previous seqId")
            return
        ts = _ts(msg, recv_ns)
        rows = []
        exchange, symbol, native = self.exchange, self.symbol, self.native
        seq = msg.seqId
        u = seq + self.base if seq >= 0 else -1
        if msg.prevSeqId < 0:
            pu = -1
        else:  # the reset push's prevSeqId is of the old numbering
            pu = msg.prevSeqId + (self.prev_base if seq < msg.prevSeqId else self.base)
        for side, book, levels in ((BID, self.bids, bids), (ASK, self.asks, asks)):
            text = book.text
            for price, size, pt, st in levels:
                book.set(price, size)
                if size > 0.0:
                    text[price] = f"{pt}:{st}"
                else:
                    text.pop(price, None)
                rows.append(BookChange(
                    exchange=exchange, symbol=symbol, native_symbol=native, ts=ts,
                    recv_ts=recv_ns, side=side, price=price, size=size, snapshot=False,
                    first_update_id=u, update_id=u, prev_update_id=pu,
                ))  # fmt: skip
        bid, ask = self.bids.best(), self.asks.best()
        if bid is not None and ask is not None and bid >= ask:
            self._gap(parsed, recv_ns, out, -1, seq, f"push would cross the book ({bid} >= {ask})")
            return
        if msg.checksum != 0 and not self._verify(msg):
            self._gap(parsed, recv_ns, out, msg.checksum, self._computed, "checksum mismatch")
            return
        self.seq = seq
        out.book.extend(rows)

    _computed = 0

    def _verify(self, msg: BookMsg) -> bool:
        computed = checksum(
            self.bids.top_text(CHECKSUM_LEVELS), self.asks.top_text(CHECKSUM_LEVELS)
        )
        self._computed = computed
        if computed == msg.checksum:
            self.checksums_verified += 1
            return True
        self.checksum_mismatches += 1
        return False

    def _gap(
        self,
        parsed: Parsed,
        recv_ns: int,
        out: RecordSink,
        expected: int,
        received: int,
        detail: str,
    ) -> None:
        """A break: record it, drop the book, resync in place (REST, or re-subscribe)."""
        ts = _ts(parsed[0], recv_ns)
        self._reset()
        self.last_break = f"gap: {detail}"
        self._emit(out, EventKind.GAP, ts, recv_ns, expected, received, detail)
        self._resync(out, ts, recv_ns, detail)
        if self.sequenced:
            self.buffer.append((parsed, recv_ns))  # the push that broke continues the stream

    def _resync(self, out: RecordSink, ts: int, recv_ns: int, detail: str) -> None:
        self._emit(out, EventKind.RESYNC, ts, recv_ns, -1, -1, detail)
        self.last_break = self.last_break or detail
        if self.sequenced:
            self.wants_snapshot = True
        else:
            self.wants_resubscribe = True

    def _reset(self) -> None:
        self.synced = False
        self.seq = -1
        self.bids.clear()
        self.asks.clear()
        self.buffer.clear()
        self.pending = None

    def _emit(
        self, out: RecordSink, kind: str, ts: int, recv_ts: int, expected: int, received: int,
        detail: str,
    ) -> None:  # fmt: skip
        out.events.append(Event(
            exchange=self.exchange, symbol=self.symbol, native_symbol=self.native, ts=ts,
            recv_ts=recv_ts, kind=kind, channel=Channel.BOOK.value, expected=expected,
            received=received, detail=detail,
        ))  # fmt: skip


def _ts(msg: BookMsg, recv_ns: int) -> int:
    try:
        return int(msg.ts) * MS
    except ValueError:
        return recv_ns
