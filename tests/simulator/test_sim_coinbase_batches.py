"""The Coinbase simulator cuts ``level2_batch`` per connection and closes silent sockets."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from hundi.simulator.coinbase.server import CoinbaseSimConfig, CoinbaseSimulator

SUBSCRIBE = {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["level2_batch"]}


async def updates(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[tuple[str, str]]:
    """The next ``count`` l2updates as (time, changes text)."""
    found: list[tuple[str, str]] = []
    while len(found) < count:
        msg = await ws.receive(timeout=20)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        if frame["type"] == "l2update":
            found.append((frame["time"], json.dumps(frame["changes"])))
    return found


async def test_two_sockets_get_the_same_changes_in_different_batches() -> None:
    """Real batches are cut per connection: a rollover's new socket is not a byte copy."""
    config = CoinbaseSimConfig(symbols=("BTC-USD",), rate=400, batch_ms=50, cut_ms=10)
    async with (
        CoinbaseSimulator(config) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(sim.ws_url) as first,
    ):
        await first.send_json(SUBSCRIBE)
        await updates(first, 1)
        async with http.ws_connect(sim.ws_url) as second:
            await second.send_json(SUBSCRIBE)
            a, b = await asyncio.gather(updates(first, 10), updates(second, 10))
    assert not {t for t, _ in a} & {t for t, _ in b}  # cut at other instants
    assert set(a) != set(b)


async def test_a_socket_without_a_subscribe_is_closed() -> None:
    config = CoinbaseSimConfig(symbols=("BTC-USD",), subscribe_timeout_s=0.3)
    async with (
        CoinbaseSimulator(config) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(sim.ws_url) as silent,
        http.ws_connect(sim.ws_url) as subscribed,
    ):
        await subscribed.send_json(SUBSCRIBE)
        started = time.monotonic()
        msg = await silent.receive(timeout=20)
        assert msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        )
        assert time.monotonic() - started >= 0.2
        assert any(f["kind"] == "no_subscribe" for f in sim.stats()["faults"])
        assert not subscribed.closed
        await updates(subscribed, 1)
