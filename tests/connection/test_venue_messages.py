"""``VenueProtocol.take_messages``: what a venue asks to send on an open connection goes out on
that stream's socket (after its subscribes), is captured as sent, and never on another stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from wsharness import Exchange, SeqVenue, until

from hundi.accounting import Accounting
from hundi.capture.events import CaptureKind
from hundi.connection.client import PicowsClient
from hundi.connection.manager import ConnectionManager, ConnectionSettings
from hundi.exchanges.base import FrameStatus, RecordSink


class AskingVenue(SeqVenue):
    """Asks, once 5 frames came, to send a message on its stream and one on a stream it has
    not got."""

    def __init__(self, url: str) -> None:
        super().__init__(url, subscribe=(b'{"subscribe":1}',))
        self.frames = 0
        self.owed: list[tuple[str, bytes]] = []

    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        self.frames += 1
        if self.frames == 5:
            self.owed = [("main", b'{"resubscribe":1}'), ("elsewhere", b'{"never":1}')]
        return super().receive(conn_key, data, recv_ns, out)

    def take_messages(self) -> list[tuple[str, bytes]]:
        taken, self.owed = self.owed, []
        return taken


@pytest.fixture
async def exchange() -> AsyncIterator[Exchange]:
    ex = await Exchange().start()
    yield ex
    await ex.close()


async def test_venue_messages_are_sent_on_their_stream_and_captured(exchange: Exchange) -> None:
    venue = AskingVenue(exchange.url)
    captured: list[tuple[Any, ...]] = []
    manager = ConnectionManager(
        venue,
        RecordSink(),
        Accounting(),
        PicowsClient(),
        settings=ConnectionSettings(tick_s=0.02, backoff_initial_s=0.05),
        capture=lambda kind, ts, conn, url="", data=b"", status=0: captured.append(
            (kind, conn, data)
        ),
    )
    task = asyncio.create_task(manager.run())
    try:
        await until(lambda: '{"resubscribe":1}' in exchange.received, within=30.0)
    finally:
        manager.stop()
        await asyncio.wait_for(task, 30.0)
    assert exchange.received[:2] == ['{"subscribe":1}', '{"resubscribe":1}']
    assert '{"never":1}' not in exchange.received
    sent = [data for kind, conn, data in captured if kind is CaptureKind.SENT]
    assert sent == [b'{"subscribe":1}', b'{"resubscribe":1}']


class BurstVenue(AskingVenue):
    """Asks for 12 messages at once on a stream whose venue allows 4 client messages a second."""

    def __init__(self, url: str) -> None:
        SeqVenue.__init__(self, url, subscribe=(b'{"subscribe":1}',), rate=4.0)
        self.frames = 0
        self.owed = []

    def receive(self, conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
        self.frames += 1
        if self.frames == 5:
            self.owed = [("main", b'{"resubscribe":%d}' % i) for i in range(12)]
        return SeqVenue.receive(self, conn_key, data, recv_ns, out)


async def test_venue_messages_keep_within_the_venues_message_rate(exchange: Exchange) -> None:
    """A burst the venue asks for goes out within ``max_outgoing_per_s`` (a second's worth at
    once, then at the rate), all of it, in order: 12 messages at 4/s take at least 2 s."""
    venue = BurstVenue(exchange.url)
    sent_at: list[tuple[int, bytes]] = []
    manager = ConnectionManager(
        venue,
        RecordSink(),
        Accounting(),
        PicowsClient(),
        settings=ConnectionSettings(tick_s=0.02, backoff_initial_s=0.05),
        capture=lambda kind, ts, conn, url="", data=b"", status=0: (
            sent_at.append((ts, data)) if kind is CaptureKind.SENT else None
        ),
    )
    task = asyncio.create_task(manager.run())
    try:
        await until(lambda: '{"resubscribe":11}' in exchange.received, within=60.0)
    finally:
        manager.stop()
        await asyncio.wait_for(task, 30.0)
    burst = [(ts, data) for ts, data in sent_at if data.startswith(b'{"resubscribe"')]
    assert [data for _, data in burst] == [b'{"resubscribe":%d}' % i for i in range(12)]
    assert burst[-1][0] - burst[0][0] >= 1.9e9, [ts - burst[0][0] for ts, _ in burst]
