"""The Bitfinex simulator's public channels speak Bitfinex's wire format, checked frame by frame
by the collector's own protocol: subscribe acks, snapshots, sequence numbers, valid checksums,
and its faults (wrong checksum, skipped number, 20051)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest
from click.testing import CliRunner

from hundi.exchanges.base import RecordSink, VenueConfig
from hundi.exchanges.bitfinex import BitfinexVenue
from hundi.exchanges.bitfinex.protocol import BitfinexProtocol
from hundi.records import Channel, EventKind
from hundi.simulator.bitfinex.command import bitfinex
from hundi.simulator.bitfinex.server import BitfinexSimConfig, BitfinexSimulator

CONN = "public-0"


@pytest.fixture
async def sim() -> AsyncIterator[BitfinexSimulator]:
    config = BitfinexSimConfig(None, symbols=("tBTCUSD", "tETHUSD"), rate=200.0, tick_s=0.01)
    async with BitfinexSimulator(config) as running:
        yield running


def protocol(url: str) -> BitfinexProtocol:
    channels = (Channel.TRADES, Channel.BOOK, Channel.TICKER, Channel.CANDLES, Channel.EVENTS)
    config = VenueConfig("spot", ("tBTCUSD", "tETHUSD"), channels, endpoint=url)
    return BitfinexVenue(config)


async def feed(
    ws: aiohttp.ClientWebSocketResponse,
    p: BitfinexProtocol,
    out: RecordSink,
    until: Any,
    within: float = 20.0,
) -> list[bytes]:
    """Frames into the protocol (every one must be accounted, none rejected) until ``until()``."""
    frames = []
    while not until():
        msg = await ws.receive(timeout=within)
        assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
        data = msg.data.encode() if isinstance(msg.data, str) else msg.data
        frames.append(data)
        p.receive(CONN, data, time.time_ns(), out)
    return frames


async def open_feed(
    session: aiohttp.ClientSession, sim: BitfinexSimulator
) -> tuple[aiohttp.ClientWebSocketResponse, BitfinexProtocol]:
    p = protocol(sim.ws_url)
    (spec,) = p.connections()
    ws = await session.ws_connect(spec.url)
    for message in spec.subscribe:
        await ws.send_bytes(message)
    return ws, p


async def test_subscriptions_sequence_numbers_and_checksums(sim: BitfinexSimulator) -> None:
    async with aiohttp.ClientSession() as session:
        ws, p = await open_feed(session, sim)
        out = RecordSink()
        market = p.market
        assert market is not None
        frames = await feed(ws, p, out, lambda: market.checksums_verified >= 50)
        await ws.close()
    assert market.checksum_mismatches == 0
    assert market.sequence_checked > 50
    assert all(book.synced for book in p.books())
    assert out.trades and out.candles and out.book
    assert not [e for e in out.events if e.kind == EventKind.GAP]
    first = msgspec.json.decode(frames[0])
    assert first["event"] == "info" and first["version"] == 2


async def test_subscribe_to_an_unknown_symbol_is_error_10300(sim: BitfinexSimulator) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(sim.ws_url + "/ws/2") as ws:
        await ws.receive(timeout=10)  # info
        await ws.send_str('{"event":"subscribe","channel":"trades","symbol":"tNOPUSD"}')
        answer = msgspec.json.decode((await ws.receive(timeout=10)).data)
    assert answer["event"] == "error" and answer["code"] == 10300


@pytest.mark.parametrize(
    ("kind", "seen"),
    [
        ("checksum", lambda e: e.kind == EventKind.GAP and e.detail == "checksum mismatch"),
        ("seq", lambda e: e.kind == EventKind.GAP and "skipped sequence" in e.detail),
        ("reconnect", lambda e: e.kind == EventKind.RECONNECT),
    ],
)
async def test_faults_are_seen_by_the_protocol(
    sim: BitfinexSimulator, kind: str, seen: Any
) -> None:
    async with aiohttp.ClientSession() as session:
        ws, p = await open_feed(session, sim)
        out = RecordSink()
        market = p.market
        assert market is not None
        await feed(ws, p, out, lambda: market.checksums_verified >= 4)
        await sim.public.fault(kind)
        await feed(ws, p, out, lambda: any(seen(e) for e in out.events))
        await ws.close()
    assert p.take_reconnects() == [CONN]


def test_unknown_fault_is_a_usage_error() -> None:
    result = CliRunner().invoke(bitfinex, ["--fault", "bogus:1"])
    assert result.exit_code == 2 and "unknown fault 'bogus:1'" in result.output
