"""Every ``--fault`` kind is observable by a client and recorded in the ground truth."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp
from simharness import MakeSim, closed_stats, receive_json, receive_until


def faults(stats: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in stats["faults"] if f["kind"] == kind]


async def test_disconnect_drops_every_client(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rate=200, faults=("disconnect:0.5",))
    async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@aggTrade") as ws:
        async with asyncio.timeout(3):
            while (await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                pass
    logged = faults(sim.stats(), "disconnect")
    assert logged and logged[0]["conn"] == 1
    assert sim.stats()["connections"][0]["close_reason"] == "fault: disconnect"


async def test_gap_skips_exactly_the_recorded_depth_ids(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rate=2000, symbols=("BTCUSDT",), faults=("gap:0.5",))
    holes: list[tuple[int, int]] = []
    async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@depth@100ms") as ws:
        last_u = (await receive_json(ws))["u"]
        while not holes:
            event = await receive_json(ws)
            if event["U"] != last_u + 1:
                holes.append((last_u + 1, event["U"] - 1))
            last_u = event["u"]
    logged = faults(sim.stats(), "gap")
    assert (logged[0]["first_id"], logged[0]["last_id"]) == holes[0]
    assert logged[0]["stream"] == "btcusdt@depth@100ms"


async def test_usdm_gap_shows_as_a_broken_pu_chain(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(market="usdm", rate=2000, symbols=("BTCUSDT",), faults=("gap:0.5",))
    async with session.ws_connect(f"{sim.ws_url}/public/ws/btcusdt@depth@100ms") as ws:
        last_u = (await receive_json(ws))["u"]
        while True:
            event = await receive_json(ws)
            if event["pu"] != last_u:
                break
            last_u = event["u"]
    gap = faults(sim.stats(), "gap")[0]
    assert event["pu"] == gap["last_id"] and gap["first_id"] == last_u + 1


async def test_malformed_frames_are_sent_and_the_stream_goes_on(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rate=500, faults=("malformed:0.3",))
    async with session.ws_connect(f"{sim.ws_url}/stream?streams=btcusdt@aggTrade") as ws:
        bad = None
        while bad is None:
            msg = await ws.receive(timeout=3)
            try:
                json.loads(msg.data)
            except json.JSONDecodeError:
                bad = msg.data
        assert (await receive_json(ws))["stream"] == "btcusdt@aggTrade"
    assert bad.startswith('{"stream":"btcusdt@aggTrade"')
    assert faults(sim.stats(), "malformed")[0]["detail"] == bad


async def test_duplicate_resends_a_frame(make_sim: MakeSim, session: aiohttp.ClientSession) -> None:
    sim = await make_sim(rate=1000, symbols=("BTCUSDT",), faults=("duplicate:0.3",))
    seen: set[int] = set()
    async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@aggTrade") as ws:
        while True:
            agg_id = (await receive_json(ws))["a"]
            if agg_id in seen:
                break
            seen.add(agg_id)
    stats = await closed_stats(sim)  # the connection's ranges are final once it ended
    logged = [f for f in faults(stats, "duplicate") if f["stream"] == "btcusdt@aggTrade"]
    assert logged[0]["first_id"] == agg_id
    ranges = stats["connections"][0]["streams"]["btcusdt@aggTrade"]["ranges"]
    assert [agg_id, agg_id] in ranges or any(r[0] == agg_id for r in ranges[1:])


async def test_reorder_swaps_two_consecutive_frames(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rate=1000, symbols=("BTCUSDT",), faults=("reorder:0.3",))
    async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@aggTrade") as ws:
        previous = (await receive_json(ws))["a"]
        while True:
            current = (await receive_json(ws))["a"]
            if current != previous + 1:
                break
            previous = current
        after = (await receive_json(ws))["a"]
    assert (current, after) == (previous + 2, previous + 1)
    swap = next(f for f in faults(sim.stats(), "reorder") if f["stream"] == "btcusdt@aggTrade")
    assert (swap["first_id"], swap["last_id"]) == (previous + 1, previous + 2)


async def test_rest_429_then_normal_answers(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rate=100, faults=("rest-429:2",))
    url = f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=10"
    for _ in range(2):
        async with session.get(url) as r:
            assert r.status == 429
            assert r.headers["Retry-After"] == "1"
            assert (await r.json())["code"] == -1003
    async with session.get(url) as r:
        assert r.status == 200
    assert len(faults(sim.stats(), "rest-429")) == 2


async def test_stale_snapshot_predates_what_the_client_buffered(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rate=1000, symbols=("BTCUSDT",), faults=("stale-snapshot",))
    url = f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=10"
    async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@depth@100ms") as ws:
        first_u = (await receive_json(ws))["U"]
        async with session.get(url) as r:
            stale = (await r.json())["lastUpdateId"]
        async with session.get(url) as r:
            good = (await r.json())["lastUpdateId"]
    assert stale < first_u - 1 <= good
    assert faults(sim.stats(), "stale-snapshot")[0]["first_id"] == stale


async def test_slow_reader_is_disconnected(make_sim: MakeSim) -> None:
    sim = await make_sim(symbols=("BTCUSDT",), faults=("slow-reader:65536",))
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that barely reads
    writer.write(
        b"GET /ws/btcusdt@depth@100ms/btcusdt@aggTrade/btcusdt@bookTicker HTTP/1.1\r\n"
        b"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert (await reader.readline()).startswith(b"HTTP/1.1 101")
    for _ in range(200):  # up to 10 s
        if not sim.stats()["open_connections"]:
            break
        await asyncio.sleep(0.05)
    writer.close()
    stats = sim.stats()
    assert stats["connections"][0]["close_reason"] == "slow reader: send buffer full"
    assert faults(stats, "slow-reader")[0]["conn"] == 1


async def test_shutdown_notice_then_close(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rate=300, faults=("shutdown:0.4",))
    async with session.ws_connect(f"{sim.ws_url}/stream?streams=btcusdt@aggTrade") as ws:
        notice = await receive_until(ws, lambda f: f["stream"] == "!serverShutdown")
        assert set(notice["data"]) == {"e", "E"} and notice["data"]["e"] == "serverShutdown"
        after = 0
        async with asyncio.timeout(3):
            while (await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                after += 1  # data keeps flowing until the close
        assert after > 0 and ws.close_code == 1001
