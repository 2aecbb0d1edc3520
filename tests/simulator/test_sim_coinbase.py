"""The Coinbase simulator's wire format: subscribe, acks, snapshots, matches, heartbeats, REST."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from hundi.simulator.coinbase.command import coinbase, parse_faults
from hundi.simulator.coinbase.server import DELISTED, CoinbaseSimConfig, CoinbaseSimulator


@pytest.fixture
async def sim() -> AsyncIterator[CoinbaseSimulator]:
    async with CoinbaseSimulator(CoinbaseSimConfig(rate=400, heartbeat_s=0.2)) as running:
        yield running


async def next_of(ws: aiohttp.ClientWebSocketResponse, kind: str, within: float = 10.0) -> Any:
    while True:
        msg = await ws.receive(timeout=within)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        if frame["type"] == kind:
            return frame


async def test_subscribe_gives_ack_snapshot_last_match_and_live_frames(
    sim: CoinbaseSimulator,
) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_url) as ws:
        channels = ["level2_batch", "matches", "ticker", "heartbeat"]
        await ws.send_json({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": channels})
        ack = await next_of(ws, "subscriptions")
        assert {c["name"] for c in ack["channels"]} == set(channels)
        snapshot = await next_of(ws, "snapshot")
        assert snapshot["product_id"] == "BTC-USD" and snapshot["bids"] and snapshot["asks"]
        assert float(snapshot["bids"][0][0]) < float(snapshot["asks"][0][0])
        update = await next_of(ws, "l2update")
        assert all(side in ("buy", "sell") for side, _, _ in update["changes"])
        match = await next_of(ws, "match")
        assert set(match) >= {"trade_id", "side", "size", "price", "product_id", "time"}
        ticker = await next_of(ws, "ticker")
        assert float(ticker["best_bid"]) < float(ticker["best_ask"])
        heartbeat = await next_of(ws, "heartbeat")
        assert heartbeat["last_trade_id"] >= match["trade_id"]
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_url) as ws:
        await ws.send_json(
            {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]}
        )
        await next_of(ws, "subscriptions")
        last = await next_of(ws, "last_match")
        assert last["trade_id"] >= match["trade_id"]


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (
            {"type": "subscribe", "product_ids": ["NOPE-USD"], "channels": ["matches"]},
            "NOPE-USD is not a valid product",
        ),
        (
            {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["candles"]},
            "candles is not a valid channel",
        ),
        ({"type": "hello"}, "type must be subscribe or unsubscribe"),
    ],
)
async def test_bad_subscriptions_get_coinbase_errors(
    sim: CoinbaseSimulator, request_: dict[str, Any], reason: str
) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_url) as ws:
        await ws.send_json(request_)
        error = await next_of(ws, "error")
        assert error == {"type": "error", "message": "Failed to subscribe", "reason": reason}


async def test_rest_products_and_trade_pages(sim: CoinbaseSimulator) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sim.rest_url}/products") as answer:
            products = {p["id"]: p for p in await answer.json()}
        assert products["BTC-USD"]["status"] == "online"
        assert products[DELISTED]["trading_disabled"] is True
        while len(sim.history["BTC-USD"]) < 12:
            async with http.get(f"{sim.rest_url}/products/BTC-USD/trades?limit=1") as answer:
                await answer.read()
        async with http.get(f"{sim.rest_url}/products/BTC-USD/trades?limit=5") as answer:
            newest = await answer.json()
            assert answer.headers["CB-AFTER"] == str(newest[-1]["trade_id"])
        ids = [t["trade_id"] for t in newest]
        assert ids == sorted(ids, reverse=True) and ids == list(range(ids[0], ids[0] - 5, -1))
        url = f"{sim.rest_url}/products/BTC-USD/trades?after={ids[-1]}&limit=3"
        async with http.get(url) as answer:
            older = [t["trade_id"] for t in await answer.json()]
        assert older == [ids[-1] - 1, ids[-1] - 2, ids[-1] - 3]
        url = f"{sim.rest_url}/products/BTC-USD/trades?before={older[-1]}&limit=2"
        async with http.get(url) as answer:
            assert [t["trade_id"] for t in await answer.json()] == [older[-1] + 2, older[-1] + 1]
        async with http.get(f"{sim.rest_url}/products/NOPE-USD/trades") as answer:
            assert answer.status == 404
        async with http.get(f"{sim.rest_url}/products/BTC-USD/trades?limit=5000") as answer:
            assert answer.status == 400


def test_fault_options_and_command_errors() -> None:
    assert parse_faults(("skip_match:1", "cross_book:0.5")) == {"skip_match": 1, "cross_book": 0.5}
    for bad in ("skip_match", "flood:1", "disconnect:0", "disconnect:x"):
        with pytest.raises(ValueError, match="bad fault"):
            parse_faults((bad,))
    with pytest.raises(ValueError, match="unknown coinbase fault"):
        CoinbaseSimulator(CoinbaseSimConfig(faults={"flood": 1.0}))
    result = CliRunner().invoke(coinbase, ["--fault", "flood:1"])
    assert result.exit_code == 2 and "bad fault 'flood:1'" in result.output
    assert "Traceback" not in result.output
