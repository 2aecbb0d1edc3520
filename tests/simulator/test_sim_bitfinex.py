"""The Bitfinex simulator checks key, nonce and signature like Bitfinex, then streams channel 0."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest

from hundi.exchanges.credentials import Credentials, Secret
from hundi.simulator.bitfinex.server import BitfinexSimConfig, BitfinexSimulator

KEY, SECRET = "bfxSimKEY", "bfxSimSECRET"


@pytest.fixture
async def sim() -> AsyncIterator[BitfinexSimulator]:
    creds = Credentials("bitfinex", Secret(KEY), Secret(SECRET), "test")
    async with BitfinexSimulator(BitfinexSimConfig(creds, order_interval_s=0.01)) as running:
        yield running


def auth(nonce: int, key: str = KEY, secret: str = SECRET, payload: str = "") -> dict[str, Any]:
    payload = payload or f"AUTH{nonce}"
    sig = hmac.new(secret.encode(), payload.encode(), hashlib.sha384).hexdigest()
    return {"event": "auth", "apiKey": key, "authSig": sig, "authPayload": payload,
            "authNonce": nonce}  # fmt: skip


async def exchange(ws: aiohttp.ClientWebSocketResponse, message: dict[str, Any]) -> Any:
    await ws.send_str(msgspec.json.encode(message).decode())
    return msgspec.json.decode((await ws.receive(timeout=5)).data)


async def test_auth_rules_and_channel_zero(sim: BitfinexSimulator) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.ws_url}/ws/2") as ws,
    ):
        info = msgspec.json.decode((await ws.receive(timeout=5)).data)
        assert info["event"] == "info" and info["version"] == 2
        assert (await exchange(ws, auth(100, key="nope")))["code"] == 10100
        assert (await exchange(ws, auth(100, secret="nope")))["msg"] == "apikey: digest invalid"
        assert (await exchange(ws, auth(100, payload="AUTH99")))["code"] == 10100
        ok = await exchange(ws, auth(100))
        assert ok["event"] == "auth" and ok["status"] == "OK" and ok["chanId"] == 0
        kinds = []
        for _ in range(30):
            message = msgspec.json.decode((await ws.receive(timeout=5)).data)
            assert message[0] == 0
            kinds.append(message[1])
        assert kinds[:3] == ["ps", "ws", "os"] and {"on", "oc"} <= set(kinds)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.ws_url}/ws/2") as ws,
    ):
        await ws.receive(timeout=5)
        refused = await exchange(ws, auth(100))  # a nonce already used
        assert refused["status"] == "FAILED" and refused["code"] == 10114
    assert sim.auth_ok == 1 and sim.auth_failed == {"10100": 3, "10114": 1}
