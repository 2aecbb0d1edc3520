"""The Bybit simulator's wire, on a real socket: acks, refusals (unknown topics, more than 10
args in one spot request), the two pong formats, the instrument list's pages and the REST
books."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from hundi.simulator.bybit.server import BybitSimConfig, BybitSimulator

pytestmark = pytest.mark.slow


async def ask(ws: aiohttp.ClientWebSocketResponse, message: Any) -> Any:
    await ws.send_str(json.dumps(message))
    while True:
        reply = json.loads((await ws.receive(timeout=10)).data)
        if "topic" not in reply:
            return reply


async def test_control_messages_and_refusals() -> None:
    config = BybitSimConfig(symbols=("BTCUSDT", "ETHUSDT", "BTCUSD"), rate=50)
    async with BybitSimulator(config) as sim, aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{sim.ws_url}/v5/public/spot") as ws:
            pong = await ask(ws, {"op": "ping"})
            assert pong["op"] == "ping" and pong["ret_msg"] == "pong" and pong["success"]
            eleven = ["publicTrade.BTCUSDT"] * 11
            refused = await ask(ws, {"op": "subscribe", "args": eleven})
            assert refused["success"] is False and "args size" in refused["ret_msg"]
            asked = {"op": "subscribe", "args": ["allLiquidation.BTCUSDT"], "req_id": "s3"}
            refused = await ask(ws, asked)
            assert refused["success"] is False and "Invalid symbol" in refused["ret_msg"]
            assert refused["req_id"] == "s3"  # echoed: the client knows which topics failed
            ack = await ask(ws, {"op": "subscribe", "args": ["orderbook.full.BTCUSDT"]})
            assert ack["success"] is True and ack["op"] == "subscribe"
        async with session.ws_connect(f"{sim.ws_url}/v5/public/inverse") as ws:
            pong = await ask(ws, {"op": "ping"})
            assert pong["op"] == "pong"
            refused = await ask(ws, {"op": "subscribe", "args": ["orderbook.full.BTCUSD"]})
            assert refused["success"] is False
            await ws.send_str(json.dumps({"op": "subscribe", "args": ["orderbook.50.BTCUSD"]}))
            frames = [json.loads((await ws.receive(timeout=10)).data) for _ in range(2)]
            snapshot = next(f for f in frames if "topic" in f)
            assert snapshot["type"] == "snapshot" and len(snapshot["data"]["b"]) == 50
        url = f"{sim.rest_url}/v5/market/instruments-info?category=linear&limit=1"
        async with session.get(url) as r:
            page = await r.json()
        assert page["result"]["list"][0]["symbol"] == "BTCUSDT"
        assert page["result"]["list"][0]["contractType"] == "LinearPerpetual"
        cursor = page["result"]["nextPageCursor"]
        async with session.get(f"{url}&cursor={cursor}") as r:
            page = await r.json()
        assert [e["symbol"] for e in page["result"]["list"]] == ["ETHUSDT"]
        assert page["result"]["nextPageCursor"] == ""
        url = f"{sim.rest_url}/v5/market/full_orderbook?category=spot&symbol=BTCUSDT"
        async with session.get(url) as r:
            book = await r.json()
        assert book["retCode"] == 0 and book["result"]["b"] and book["result"]["u"] > 0
        async with session.get(f"{sim.rest_url}/v5/market/orderbook?symbol=NOPE") as r:
            assert (await r.json())["retCode"] == 10001
