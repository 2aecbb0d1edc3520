"""The Bitfinex simulator's public channels speak Bitfinex's wire format, checked frame by frame
by the collector's own protocol: subscribe acks, snapshots, sequence numbers, valid checksums,
and its faults (wrong checksum, skipped number, 20051)."""

from __future__ import annotations

import asyncio
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
        ("seq", lambda e: e.kind == EventKind.GAP and "skipped sequence" in e.detail),
        ("reconnect", lambda e: e.kind == EventKind.RECONNECT),
    ],
)
async def test_connection_faults_are_seen_by_the_protocol(
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


async def test_a_wrong_checksum_resyncs_that_book_in_place(sim: BitfinexSimulator) -> None:
    """The protocol's unsubscribe/subscribe go over the same socket; the simulator answers
    ``unsubscribed``, a new chanId and its snapshot: the book is synced again, no reconnect."""
    async with aiohttp.ClientSession() as session:
        ws, p = await open_feed(session, sim)
        out = RecordSink()
        market = p.market
        assert market is not None
        await feed(ws, p, out, lambda: market.checksums_verified >= 4)
        await sim.public.fault("checksum")
        await feed(ws, p, out, lambda: market.checksum_mismatches == 1)
        (unsubscribe,) = p.take_messages()
        await ws.send_bytes(unsubscribe[1])
        await feed(ws, p, out, lambda: bool(market._outbox))
        (subscribe,) = p.take_messages()
        await ws.send_bytes(subscribe[1])
        synced_before = sum(e.kind == EventKind.SYNCED for e in out.events)
        await feed(
            ws, p, out, lambda: sum(e.kind == EventKind.SYNCED for e in out.events) > synced_before
        )
        await feed(ws, p, out, lambda: market.checksums_verified >= 20)
        await ws.close()
    assert p.take_reconnects() == [] and market.checksum_mismatches == 1
    assert all(book.synced for book in p.books())
    assert [e.kind for e in out.events if e.kind in (EventKind.GAP, EventKind.RESYNC)] == [
        EventKind.GAP, EventKind.RESYNC,
    ]  # fmt: skip


async def test_unsubscribing_an_unknown_channel_is_error_10400(sim: BitfinexSimulator) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(sim.ws_url + "/ws/2") as ws:
        await ws.receive(timeout=10)  # info
        await ws.send_str('{"event":"unsubscribe","chanId":77}')
        answer = msgspec.json.decode((await ws.receive(timeout=10)).data)
    assert answer["event"] == "error" and answer["code"] == 10400


async def test_trades_hist_serves_published_trades_by_time(sim: BitfinexSimulator) -> None:
    published = await wait_for_trades(sim, 10)
    mts = sorted({t["mts"] for t in published})
    url = f"{sim.rest_url}/v2/trades/tBTCUSD/hist"
    async with aiohttp.ClientSession() as session:

        async def get(query: str) -> tuple[int, Any]:
            async with session.get(f"{url}?{query}") as answer:
                return answer.status, msgspec.json.decode(await answer.read())

        status, rows = await get(f"start={mts[0]}&end={mts[-1]}&limit=10000&sort=1")
        inside = [t for t in published if mts[0] <= t["mts"] <= mts[-1]]
        assert status == 200 and [r[0] for r in rows] == [t["id"] for t in inside]
        assert rows[0] == [inside[0]["id"], inside[0]["mts"], inside[0]["amount"],
                           inside[0]["price"]]  # fmt: skip
        status, rows = await get("limit=3")  # newest first by default
        assert len(rows) == 3 and rows[0][1] >= rows[-1][1]
        status, _ = await get("limit=10001")
        assert status == 500
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sim.rest_url}/v2/trades/tNOPUSD/hist") as answer,
    ):
        assert answer.status == 500


async def wait_for_trades(sim: BitfinexSimulator, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        found = [t for t in sim.public.trades if t["symbol"] == "tBTCUSD"]
        if len(found) >= n:
            return found
        assert time.monotonic() < deadline, "the simulator published no trades"
        await asyncio.sleep(0.05)  # polling a condition, not a fixed wait


async def test_drop_trades_withholds_the_next_trades_from_the_websocket(
    sim: BitfinexSimulator,
) -> None:
    async with aiohttp.ClientSession() as session:
        ws, p = await open_feed(session, sim)
        await feed(
            ws, p, RecordSink(), lambda: p.market is not None and p.market.sequence_checked > 5
        )
        sim.public.withhold_trades()
        await ws.close()
    assert sim.public.withholding == {"tBTCUSD", "tETHUSD"}
    before = len(sim.public.trades)
    deadline = time.monotonic() + 30
    while sim.public.withheld < 5:
        assert time.monotonic() < deadline, "nothing withheld"
        await asyncio.sleep(0.05)  # polling a condition
    withheld = {t["id"] for t in sim.public.trades[before:]}
    recent = {t[0] for s in sim.public.symbols.values() for t in s.recent}
    assert withheld and not withheld & recent, "neither live nor in a snapshot"
    async with aiohttp.ClientSession() as session:
        ws, p = await open_feed(session, sim)  # subscribing again ends the withholding
        await feed(ws, p, RecordSink(), lambda: not sim.public.withholding)
        await ws.close()
