"""Make-before-break: switch a stream to a fresh socket without a break the protocol hears of.

Used for a connection's lifetime (``max_lifetime_s``) and venue requests (``take_reconnects``,
e.g. Binance ``serverShutdown``). The new socket is opened and subscribed while the old keeps
delivering; the new one's messages are held back. ``overlap_s`` after the new socket's first
message the old one is retired and the held messages are delivered, minus those that the old
socket already delivered byte-for-byte (the same event serialised by the same exchange stream
is the same bytes). Per stream, messages stay in order and none is lost or doubled, so the
protocol sees no close/open and keeps its book. The protocol's own sequence checks (Binance
depth drops ``u <= last``) remain the second line of defence.

If the new socket dies during the overlap the old one is kept, except on an authenticated stream
when the new one had received messages the old one had not: its subscription may be the only
live one (the venue ended the old's), so those are delivered and the old socket is closed as
well: a break the protocol hears of (``on_close``), not a silent hole.
"""

from __future__ import annotations

import asyncio
import time

from hundi.connection.client import WsConnectError
from hundi.connection.sockets import FeedMode, LiveSocket, NotReady, VenueSockets, log
from hundi.exchanges.base import StreamSpec
from hundi.records import EventKind


class RollingSockets(VenueSockets):
    """:class:`VenueSockets` that can replace a stream's socket make-before-break."""

    async def _rollover(self, spec: StreamSpec, old: LiveSocket, why: str) -> LiveSocket:
        """Make-before-break switch to a fresh socket (see the module docstring); returns the
        socket that now carries the stream (``old`` when the switch did not happen)."""
        key = spec.key
        stats = self.stats[key]
        log.info("%s: %s; opening a new connection before closing the old one", key, why)
        # Remember the old socket's messages *before* the new one can hold any: a message
        # both sockets carry must be found in ``seen`` when the held ones are delivered.
        old.feed.mode = FeedMode.DELIVER_REMEMBER
        try:
            new = await self._open(spec, FeedMode.HOLD)
        except NotReady:
            old.feed.mode = FeedMode.DELIVER
            old.feed.seen = set()
            return old
        except WsConnectError as exc:
            old.feed.mode = FeedMode.DELIVER
            old.feed.seen = set()
            stats.connect_failures += 1
            log.warning("%s: rollover connect failed (%s); keeping the old connection", key, exc)
            return old
        settings = self.settings
        started = time.monotonic()
        while not self._stop.is_set():
            if old.closed.done() or new.closed.done():
                break
            held = new.feed.held
            now = time.monotonic()
            if held and now - new.feed.first_at >= settings.overlap_s:
                break
            if len(held) >= settings.overlap_max_frames:
                break
            if now - started >= settings.rollover_wait_s:
                break
            await asyncio.sleep(min(0.05, settings.overlap_s / 4))
        if new.closed.done():
            self._live.discard(new.conn)
            if spec.private and any(data not in old.feed.seen for _, data in new.feed.held):
                return await self._salvage(key, old, new)
            old.feed.mode = FeedMode.DELIVER
            old.feed.seen = set()
            log.warning("%s: new connection closed during rollover; keeping the old one", key)
            return old
        # Switch: retire the old socket, then deliver what only the new one saw, in order.
        old.feed.mode = FeedMode.DROP
        seen = old.feed.seen
        deliver = self._deliver
        duplicates = 0
        for recv_ns, data in new.feed.held:
            if data in seen:
                duplicates += 1
            else:
                deliver(key, data, recv_ns)
        new.feed.held = []
        new.feed.mode = FeedMode.DELIVER
        old.feed.seen = set()
        old_gone_first = old.closed.done()
        asyncio.get_running_loop().create_task(self._close(old, "rollover"))
        stats.rollovers += 1
        stats.reconnects += 1
        self.accounting.reconnects += 1
        self._closed_event(key, EventKind.RECONNECT, f"rollover ({why})")
        log.info(
            "%s: switched to the new connection (%d overlapping messages deduplicated%s)",
            key,
            duplicates,
            "; old one had already closed" if old_gone_first else "",
        )
        return new

    async def _salvage(self, key: str, old: LiveSocket, new: LiveSocket) -> LiveSocket:
        """The new socket of an authenticated stream died in the overlap with messages the old
        one never carried: deliver them, then end the old socket too.

        A private subscription belongs to its socket: the venue may already have ended the old
        one's (that is often why we roll over), so it need not carry what the new one did.
        Dropping the held messages and keeping the old socket would lose them with nothing to
        say so; closing it makes the protocol hear of the break (``on_close``: its gap).
        """
        old.feed.mode = FeedMode.DROP
        seen = old.feed.seen
        deliver = self._deliver
        for recv_ns, data in new.feed.held:
            if data not in seen:
                deliver(key, data, recv_ns)
        new.feed.held = []
        old.feed.seen = set()
        log.warning("%s: new connection closed during rollover; reconnecting afresh", key)
        await self._close(old, "rollover failed")
        return old
