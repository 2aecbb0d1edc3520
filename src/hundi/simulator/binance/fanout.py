"""Frames out to the client WebSockets: subscriptions, per-connection batches, ground truth.

Each connection buffers its frames in a bounded list that is written to the socket in one
``transport.write`` per batch; what was written is recorded per connection and stream
(:mod:`hundi.simulator.ground_truth`). Two delivery hooks serve the fault injection: a stream's
next frame can be held back behind the one after it (``hold_armed``), and the last frame of
every stream is kept to be sent again (``last_payload``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from hundi.simulator.binance.config import SimulatorConfig
from hundi.simulator.binance.streams import StreamName
from hundi.simulator.ground_truth import ConnectionRecord, FaultLog
from hundi.simulator.wire import ws_frame

Tag = tuple[str, int, int]  # (stream, first id, last id); -1 ids for frames without ids


class ClientConnection:
    """One client WebSocket: its subscriptions, pending frames and liveness bookkeeping."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        record: ConnectionRecord,
        combined: bool,
        prefix: str,
        max_unsent: int,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.record = record
        self.combined = combined
        self.prefix = prefix  # "", "/public" or "/market" (USD-M endpoint split)
        self.streams: dict[str, StreamName | None] = {}  # in subscription order
        self.out: list[bytes] = []
        self.tags: list[Tag | None] = []
        self.out_bytes = 0
        self.max_unsent = max_unsent
        self.high_water = min(1 << 20, max_unsent // 4)
        self.closing = False
        self.opened = time.monotonic()
        self.ping_sent = 0.0  # monotonic time of the unanswered ping, 0 when none
        self.last_ping = self.opened
        self.incoming: deque[float] = deque()
        self.shutdown_notice_sent = False
        self.replay_task: asyncio.Task[None] | None = None

    @property
    def conn_id(self) -> int:
        return self.record.conn_id

    def push(self, frame: bytes, tag: Tag | None) -> None:
        self.out.append(frame)
        self.tags.append(tag)
        self.out_bytes += len(frame)

    def unsent(self) -> int:
        return self.out_bytes + self.transport.get_write_buffer_size()


class FanOut:
    """The open connections, who subscribed to what, and the bytes and frames sent to them."""

    def __init__(self, config: SimulatorConfig, log: FaultLog) -> None:
        self.log = log
        self.conns: dict[int, ClientConnection] = {}
        self.closed_records: deque[ConnectionRecord] = deque(maxlen=config.stats_closed_connections)
        self.subs: dict[str, set[ClientConnection]] = {}
        self.frames_sent = 0
        self.bytes_sent = 0
        self.last_payload: dict[str, tuple[bytes, int, int]] = {}
        self.hold_armed: set[str] = set()  # streams whose next frame goes out after the one after
        self._held: dict[str, tuple[bytes, int, int]] = {}
        self._close_tasks: set[asyncio.Task[Any]] = set()

    # -- publishing -------------------------------------------------------------------------
    def publish(self, stream: str, payload: bytes, first: int, last: int) -> None:
        subs = self.subs.get(stream)
        if not subs:
            return
        self.last_payload[stream] = (payload, first, last)
        if self.hold_armed and stream in self.hold_armed:
            self.hold_armed.discard(stream)
            self._held[stream] = (payload, first, last)
            return
        self.deliver(subs, stream, payload, first, last)
        if self._held:
            held = self._held.pop(stream, None)
            if held is not None:
                self.deliver(subs, stream, *held)
                self.log.record(
                    "reorder",
                    symbol=stream.partition("@")[0].upper(),
                    stream=stream,
                    first_id=held[1],
                    last_id=first,
                    detail=f"{first} sent before {held[1]}",
                )

    @staticmethod
    def deliver(
        subs: Iterable[ClientConnection], stream: str, payload: bytes, first: int, last: int
    ) -> None:
        tag = (stream, first, last)
        combined = raw = b""
        for conn in subs:
            if conn.combined:
                if not combined:
                    combined = ws_frame(
                        b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"
                    )
                conn.push(combined, tag)
            else:
                if not raw:
                    raw = ws_frame(payload)
                conn.push(raw, tag)

    def send_now(self, conn: ClientConnection, frame: bytes) -> None:
        """A frame outside the streams (a reply, a ping...), written with what is pending."""
        conn.push(frame, None)
        self.flush(conn)

    # -- writing ----------------------------------------------------------------------------
    def flush_all(self) -> None:
        for conn in list(self.conns.values()):
            if conn.out:
                self.flush(conn)

    def flush(self, conn: ClientConnection) -> None:
        if conn.closing:
            conn.out.clear()
            conn.tags.clear()
            conn.out_bytes = 0
            return
        transport = conn.transport
        if transport.is_closing():
            return
        buffered = transport.get_write_buffer_size()
        if buffered + conn.out_bytes > conn.max_unsent:
            self.log.record(
                "slow-reader",
                conn=conn.conn_id,
                detail=f"{buffered + conn.out_bytes} unsent bytes > {conn.max_unsent}",
            )
            self.close(conn, "slow reader: send buffer full", code=1008, abrupt=True)
            return
        if buffered > conn.high_water:
            return  # wait for the socket to drain; frames stay pending (bounded above)
        data = b"".join(conn.out)
        transport.write(data)
        record = conn.record
        sent = 0
        for tag in conn.tags:
            if tag is not None:
                record.sent(*tag)
                sent += 1
        record.frames_sent += sent
        record.bytes_sent += len(data)
        self.frames_sent += sent
        self.bytes_sent += len(data)
        conn.out.clear()
        conn.tags.clear()
        conn.out_bytes = 0

    # -- connections ------------------------------------------------------------------------
    def close(
        self, conn: ClientConnection, reason: str, code: int = 1000, abrupt: bool = False
    ) -> None:
        if conn.closing:
            return
        conn.closing = True
        conn.record.close_reason = reason
        self.unsubscribe_all(conn)
        if conn.replay_task is not None:
            conn.replay_task.cancel()
        if abrupt:
            conn.transport.abort()
            return
        if conn.out:
            conn.closing = False
            self.flush(conn)
            conn.closing = True
        task = asyncio.get_running_loop().create_task(
            conn.ws.close(code=code, message=reason.encode()[:120])
        )
        self._close_tasks.add(task)
        task.add_done_callback(self._close_tasks.discard)

    def unsubscribe_all(self, conn: ClientConnection) -> None:
        for name in conn.streams:
            self.unsubscribe(conn, name)

    def unsubscribe(self, conn: ClientConnection, name: str) -> None:
        subs = self.subs.get(name)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self.subs[name]

    def forget(self, conn: ClientConnection) -> None:
        """The connection ended: keep its record for the ground truth."""
        if not conn.closing:
            conn.closing = True
            conn.record.close_reason = conn.record.close_reason or "closed by client"
        self.unsubscribe_all(conn)
        if conn.replay_task is not None:
            conn.replay_task.cancel()
        conn.record.closed_ns = time.time_ns()
        if self.conns.pop(conn.conn_id, None) is not None:
            self.closed_records.append(conn.record)

    def close_all(self, reason: str, code: int) -> None:
        for conn in list(self.conns.values()):
            if conn.replay_task is not None:
                conn.replay_task.cancel()
            self.close(conn, reason, code=code)

    async def closed(self) -> None:
        """Wait (up to 2 s) for the close handshakes started so far."""
        if self._close_tasks:
            await asyncio.wait(list(self._close_tasks), timeout=2)

    def records(self) -> list[dict[str, Any]]:
        connections = [r.to_json() for r in self.closed_records]
        connections += [c.record.to_json() for c in self.conns.values()]
        return connections
