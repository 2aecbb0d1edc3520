"""The simulator's Binance private endpoints check keys, timestamps and signatures like Binance."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
import pytest

from hundi.exchanges.credentials import Credentials, Secret
from hundi.simulator.binance.config import SimulatorConfig
from hundi.simulator.binance.private import BinancePrivate, PrivateConfig
from hundi.simulator.binance.rules import BinanceVariant
from hundi.simulator.binance.server import BinanceSimulator

KEY, SECRET = "simKEY-123456", "simSECRET-abcdef"
MakePrivate = Callable[..., Awaitable[BinanceSimulator]]


@pytest.fixture
async def make_private() -> AsyncIterator[MakePrivate]:
    started: list[BinanceSimulator] = []

    async def factory(market: str = "spot", **private: Any) -> BinanceSimulator:
        config = SimulatorConfig(market=BinanceVariant(market), symbols=("BTCUSDT",), rate=50)
        sim = BinanceSimulator(config)
        creds = Credentials("binance", Secret(KEY), Secret(SECRET), "test")
        sim.private = BinancePrivate(
            config.market, PrivateConfig(credentials=creds, **private), config.symbols
        )
        await sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.stop()


def subscribe(
    key: str = KEY, secret: str = SECRET, ts: int | None = None, window: int = 5000
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "apiKey": key,
        "timestamp": ts if ts is not None else time.time_ns() // 1_000_000,
        "recvWindow": window,
    }
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["signature"] = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return {"id": 7, "method": "userDataStream.subscribe.signature", "params": params}


async def ask(sim: BinanceSimulator, request: dict[str, Any]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.ws_url}/ws-api/v3") as ws,
    ):
        await ws.send_str(msgspec.json.encode(request).decode())
        reply: dict[str, Any] = msgspec.json.decode((await ws.receive(timeout=5)).data)
        return reply


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"key": "wrong"}, 401, -2015),
        ({"key": ""}, 401, -2014),
        ({"secret": "wrong"}, 400, -1022),
        ({"ts_offset_ms": -3_600_000}, 400, -1021),  # far outside recvWindow
        ({"ts_offset_ms": 3_600_000}, 400, -1021),  # from the future
    ],
)
async def test_spot_subscription_is_refused_like_binance(
    make_private: MakePrivate, changes: dict[str, Any], status: int, code: int
) -> None:
    sim = await make_private(order_interval_s=60)
    changes = dict(changes)  # parameters are shared between runs: never mutate them
    offset = changes.pop("ts_offset_ms", 0)
    request = subscribe(ts=time.time_ns() // 1_000_000 + offset, **changes)  # signed now
    reply = await ask(sim, request)
    assert reply["id"] == 7 and reply["status"] == status and reply["error"]["code"] == code
    assert sim.private is not None and sim.private.auth_failed == {str(code): 1}


async def test_spot_subscription_delivers_wrapped_execution_reports(
    make_private: MakePrivate,
) -> None:
    sim = await make_private(order_interval_s=0.01)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.ws_url}/ws-api/v3") as ws,
    ):
        await ws.send_str(msgspec.json.encode(subscribe()).decode())
        reply = msgspec.json.decode((await ws.receive(timeout=5)).data)
        assert reply == {"id": 7, "status": 200, "result": {"subscriptionId": 0}}
        kinds = set()
        for _ in range(40):
            frame = msgspec.json.decode((await ws.receive(timeout=5)).data)
            assert frame["subscriptionId"] == 0
            kinds.add(frame["event"]["e"])
    assert "executionReport" in kinds
    assert sim.private is not None and sim.private.auth_ok == 1 and sim.private.delivered


async def test_usdm_listen_key_rules(make_private: MakePrivate) -> None:
    sim = await make_private("usdm", order_interval_s=60)
    url = f"{sim.rest_url}/fapi/v1/listenKey"
    async with aiohttp.ClientSession() as session:
        async with session.post(url) as r:
            assert r.status == 401 and (await r.json())["code"] == -2014
        async with session.post(url, headers={"X-MBX-APIKEY": "nope"}) as r:
            assert r.status == 401 and (await r.json())["code"] == -2015
        async with session.put(url, headers={"X-MBX-APIKEY": KEY}) as r:
            assert r.status == 400 and (await r.json())["code"] == -1125
        async with session.post(url, headers={"X-MBX-APIKEY": KEY}) as r:
            key = (await r.json())["listenKey"]
        async with session.post(url, headers={"X-MBX-APIKEY": KEY}) as r:
            assert (await r.json())["listenKey"] == key  # an active key is returned again
        async with session.put(url, headers={"X-MBX-APIKEY": KEY}) as r:
            assert r.status == 200
        async with session.get(f"{sim.ws_url}/private/ws/notthekey") as r:
            assert r.status == 400
        async with session.ws_connect(f"{sim.ws_url}/private/ws/{key}"):
            pass
    assert sim.private is not None and sim.private.keepalives == 1


async def test_ed25519_account_logs_on_then_subscribes() -> None:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    creds = Credentials("binance", Secret(KEY), Secret(""), "test", ed25519_pem=Secret(pem))
    config = SimulatorConfig(symbols=("BTCUSDT",), rate=50)
    sim = BinanceSimulator(config)
    sim.private = BinancePrivate(
        config.market, PrivateConfig(credentials=creds, order_interval_s=60), config.symbols
    )
    await sim.start()
    try:

        def logon(sign_with: Ed25519PrivateKey) -> dict[str, Any]:
            params: dict[str, Any] = {"apiKey": KEY, "timestamp": time.time_ns() // 1_000_000}
            payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
            params["signature"] = base64.b64encode(sign_with.sign(payload.encode())).decode()
            return {"id": 1, "method": "session.logon", "params": params}

        subscribe_ = {"id": 2, "method": "userDataStream.subscribe"}
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{sim.ws_url}/ws-api/v3") as ws,
        ):

            async def ask_(request: dict[str, Any]) -> dict[str, Any]:
                await ws.send_str(msgspec.json.encode(request).decode())
                answer: dict[str, Any] = msgspec.json.decode((await ws.receive(timeout=5)).data)
                return answer

            assert (await ask_(subscribe_))["error"]["code"] == -2015  # not logged on
            refused = await ask_(logon(Ed25519PrivateKey.generate()))
            assert refused["error"]["code"] == -1022
            assert (await ask_(subscribe()))["error"]["code"] == -1022  # HMAC on an Ed25519 key
            assert (await ask_(logon(key)))["status"] == 200
            assert (await ask_(subscribe_))["result"] == {"subscriptionId": 0}
    finally:
        await sim.stop()
