"""Fault injection (``--fault KIND[:PARAM]``, :class:`~hundi.simulator.binance.config.FaultKind`).

Periodic faults fire every PARAM seconds from the start: on the streams (``gap``,
``duplicate``, ``reorder``, from the feed's timers) or on the connections (``disconnect``,
``malformed``, ``shutdown``, from the WebSocket housekeeping). ``rest-429`` and
``stale-snapshot`` answer REST depth requests; ``slow-reader`` floods and drops clients whose
unsent bytes pass its bound. Every injected fault is entered in the :class:`FaultLog`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from hundi.simulator.binance.config import FaultKind, SimulatorConfig
from hundi.simulator.binance.fanout import FanOut
from hundi.simulator.binance.frames import server_shutdown
from hundi.simulator.ground_truth import FaultLog
from hundi.simulator.market import BookSnapshot
from hundi.simulator.wire import ws_frame

DEFAULT_SLOW_READER_BOUND = 256 * 1024


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class FaultInjector:
    """The configured faults, when they are due, and what each one did to the streams."""

    def __init__(self, config: SimulatorConfig, log: FaultLog, fanout: FanOut) -> None:
        self.config = config
        self.log = log
        self.fanout = fanout
        self.started_mono = 0.0
        self._next: dict[FaultKind, float] = {}
        self._round = 0
        # armed by ``gap``, consumed by the feed: the next frame of these is not sent
        self.gap_armed: set[tuple[str, int]] = set()  # (symbol, depth speed ms)
        self.trade_gap_armed: set[str] = set()  # symbols whose next aggTrade frame is skipped
        self._depth_calls = 0
        self._stale_served: set[str] = set()
        slow = config.fault(FaultKind.SLOW_READER)
        self.flood = slow is not None  # a slow reader is found by sending flat out
        self.max_unsent = config.max_send_buffer  # bytes per client before it is dropped
        if slow is not None:
            self.max_unsent = int(slow.param) if slow.param else DEFAULT_SLOW_READER_BOUND

    def start(self, now_mono: float) -> None:
        self.started_mono = now_mono

    def _due(self, kind: FaultKind, now: float) -> bool:
        """Whether a periodic fault fires now (every PARAM seconds from the start)."""
        spec = self.config.fault(kind)
        if spec is None or spec.param is None:
            return False
        due = self._next.setdefault(kind, self.started_mono + spec.param)
        if now < due:
            return False
        self._next[kind] = max(due + spec.param, now)
        return True

    # -- streams ----------------------------------------------------------------------------
    def stream_faults(
        self, now: float, symbols: list[str], depth_keys: Iterable[tuple[str, int]]
    ) -> None:
        """``gap``, ``duplicate``, ``reorder``: called from the feed's timers."""
        if not symbols:
            return
        if self._due(FaultKind.GAP, now):
            for key in depth_keys:
                self.gap_armed.add(key)
            self.trade_gap_armed.update(symbols)
        symbol = symbols[self._round % len(symbols)]
        lower = symbol.lower()
        base = f"{lower}@depth@{self.config.depth_interval_ms}ms"
        fanout = self.fanout
        if self._due(FaultKind.DUPLICATE, now):
            self._round += 1
            for stream in (f"{lower}@aggTrade", base):
                last = fanout.last_payload.get(stream)
                subs = fanout.subs.get(stream)
                if last is not None and subs:
                    fanout.deliver(subs, stream, *last)
                    self.log.record(
                        "duplicate",
                        symbol=symbol,
                        stream=stream,
                        first_id=last[1],
                        last_id=last[2],
                        detail="frame sent again",
                    )
        if self._due(FaultKind.REORDER, now):
            self._round += 1
            fanout.hold_armed.update((f"{lower}@aggTrade", base))

    # -- connections ------------------------------------------------------------------------
    def connection_faults(self, now: float) -> None:
        """``disconnect``, ``malformed``, ``shutdown``: called from the WebSocket housekeeping."""
        fanout = self.fanout
        if self._due(FaultKind.DISCONNECT, now):
            for conn in list(fanout.conns.values()):
                self.log.record("disconnect", conn=conn.conn_id, detail="connection dropped")
                fanout.close(conn, "fault: disconnect", abrupt=True)
        if self._due(FaultKind.MALFORMED, now):
            for conn in list(fanout.conns.values()):
                frame = b'{"stream":"' + next(iter(conn.streams), "x").encode() + b'","data":{"e":"'
                fanout.send_now(conn, ws_frame(frame))
                self.log.record("malformed", conn=conn.conn_id, detail=frame.decode())
        shutdown = self.config.fault(FaultKind.SHUTDOWN)
        if shutdown is not None and shutdown.param is not None:
            for conn in list(fanout.conns.values()):
                age = now - conn.opened
                if not conn.shutdown_notice_sent and age >= shutdown.param:
                    conn.shutdown_notice_sent = True
                    payload = server_shutdown(_now_ms())
                    if conn.combined:
                        payload = b'{"stream":"!serverShutdown","data":' + payload + b"}"
                    fanout.send_now(conn, ws_frame(payload))
                    self.log.record("shutdown", conn=conn.conn_id, detail="serverShutdown sent")
                elif conn.shutdown_notice_sent and age >= 2 * shutdown.param:
                    fanout.close(conn, "server shutdown", code=1001)

    # -- REST -------------------------------------------------------------------------------
    def refuse_depth(self, symbol: str) -> bool:
        """``rest-429``: whether this depth request is refused (the first PARAM ones are)."""
        self._depth_calls += 1
        rest_429 = self.config.fault(FaultKind.REST_429)
        if rest_429 is None or not rest_429.param or self._depth_calls > rest_429.param:
            return False
        self.log.record("rest-429", symbol=symbol.upper(), detail=f"depth call {self._depth_calls}")
        return True

    def stale_snapshot(
        self, symbol: str, published: BookSnapshot, pre_warmup: BookSnapshot
    ) -> BookSnapshot:
        """``stale-snapshot``: the first depth answer per symbol is the pre-warm-up book."""
        stale = self.config.fault(FaultKind.STALE_SNAPSHOT) is not None
        if not stale or symbol in self._stale_served:
            return published
        self._stale_served.add(symbol)
        self.log.record(
            "stale-snapshot",
            symbol=symbol,
            first_id=pre_warmup[0],
            last_id=published[0],
            detail="snapshot predates the stream",
        )
        return pre_warmup
