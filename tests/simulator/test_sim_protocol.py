"""The Binance WebSocket and REST protocol over real sockets."""

from __future__ import annotations

import asyncio
import itertools
import json

import aiohttp
import pytest
from simharness import MakeSim, closed_stats, receive_json, receive_until


async def test_combined_stream_has_envelopes_and_contiguous_trade_ids(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rate=3000)
    url = f"{sim.ws_url}/stream?streams=btcusdt@aggTrade/btcusdt@trade/ethusdt@aggTrade"
    agg: dict[str, list[dict[str, object]]] = {"btcusdt": [], "ethusdt": []}
    trades: list[int] = []
    async with session.ws_connect(url) as ws:
        while len(agg["btcusdt"]) < 200 or len(agg["ethusdt"]) < 50:
            frame = await receive_json(ws)
            assert set(frame) == {"stream", "data"}
            symbol, _, kind = frame["stream"].partition("@")
            assert frame["data"]["s"] == symbol.upper()
            if kind == "aggTrade":
                agg[symbol].append(frame["data"])
            else:
                trades.append(frame["data"]["t"])
    for frames in agg.values():
        ids = [f["a"] for f in frames]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
    btc = agg["btcusdt"]
    for before, after in itertools.pairwise(btc):
        assert after["f"] == before["l"] + 1  # type: ignore[operator]
    assert trades == list(range(trades[0], trades[0] + len(trades)))
    # the trade stream carries the fills of those aggTrades: from the first one's ``f`` on,
    # through at least every aggTrade but the last (whose fills may still be in flight)
    assert trades[0] == btc[0]["f"]
    assert trades[-1] >= btc[-2]["l"]  # type: ignore[operator]


async def test_subscribe_list_unsubscribe(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rate=3000)
    async with session.ws_connect(f"{sim.ws_url}/stream") as ws:
        await ws.send_str(
            json.dumps(
                {
                    "method": "SUBSCRIBE",
                    "params": ["btcusdt@aggTrade", "btcusdt@bookTicker"],
                    "id": 1,
                }
            )
        )
        assert await receive_json(ws) == {"result": None, "id": 1}
        seen = set()
        while len(seen) < 2:
            seen.add((await receive_json(ws))["stream"])
        await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
        listed = await receive_until(ws, lambda f: f.get("id") == 2)
        assert listed == {"result": ["btcusdt@aggTrade", "btcusdt@bookTicker"], "id": 2}
        await ws.send_str(
            json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": "x3"})
        )
        await receive_until(ws, lambda f: f.get("id") == "x3")
        for _ in range(100):  # after the ack, nothing from the dropped stream
            assert (await receive_json(ws))["stream"] == "btcusdt@aggTrade"


async def test_raw_stream_path_sends_bare_payloads(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rate=2000)
    async with session.ws_connect(f"{sim.ws_url}/ws/ethusdt@aggTrade") as ws:
        frame = await receive_json(ws)
        assert frame["e"] == "aggTrade" and frame["s"] == "ETHUSDT"
        await ws.send_str(json.dumps({"method": "GET_PROPERTY", "params": ["combined"], "id": 5}))
        assert await receive_until(ws, lambda f: f.get("id") == 5) == {"result": False, "id": 5}
        await ws.send_str(
            json.dumps({"method": "SET_PROPERTY", "params": ["combined", True], "id": 6})
        )
        await receive_until(ws, lambda f: f.get("id") == 6)
        frame = await receive_json(ws)
        assert frame["stream"] == "ethusdt@aggTrade"


@pytest.mark.parametrize(
    ("request_text", "code", "fragment", "rid"),
    [
        ("{not json", 3, "Invalid JSON", None),
        ('{"method": "SUBSCRIB", "params": [], "id": 7}', 2, "unknown variant `SUBSCRIB`", 7),
        ('{"params": [], "id": 8}', 2, "missing field `method`", 8),
        ('{"method": "SUBSCRIBE", "params": [], "id": [1]}', 2, "request ID", None),
        ('{"method": "SUBSCRIBE", "params": [1], "id": 9}', 2, "params", 9),
        ('{"method": "GET_PROPERTY", "params": ["colour"], "id": 10}', 0, "Unknown property", 10),
        (
            '{"method": "SET_PROPERTY", "params": ["combined", 1], "id": 11}',
            1,
            "expected Boolean",
            11,
        ),
    ],
)
async def test_invalid_requests_get_binance_error_frames(
    make_sim: MakeSim,
    session: aiohttp.ClientSession,
    request_text: str,
    code: int,
    fragment: str,
    rid: object,
) -> None:
    sim = await make_sim(rate=10)
    async with session.ws_connect(f"{sim.ws_url}/stream") as ws:
        await ws.send_str(request_text)
        answer = await receive_json(ws)
    assert answer["error"]["code"] == code
    assert fragment in answer["error"]["msg"]
    assert answer.get("id") == rid


async def closed_by_server(ws: aiohttp.ClientWebSocketResponse) -> bool:
    """Drain until the server closes; True if it did within 5 s."""
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                return True


@pytest.mark.parametrize(
    ("market", "sent", "dropped"),
    [("spot", 6, True), ("spot", 4, False), ("usdm", 9, False), ("usdm", 11, True)],
)
async def test_incoming_message_limit_closes_like_binance(
    make_sim: MakeSim, session: aiohttp.ClientSession, market: str, sent: int, dropped: bool
) -> None:
    sim = await make_sim(market=market, rate=10)
    async with session.ws_connect(f"{sim.ws_url}/stream") as ws:
        for i in range(sent):
            await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        if dropped:
            assert await closed_by_server(ws)
        else:
            answers = [await receive_json(ws) for _ in range(sent)]
            assert [a["id"] for a in answers] == list(range(sent))
    if dropped:
        stats = await closed_stats(sim)
        assert stats["connections"][0]["close_reason"] == "too many messages"


async def test_more_than_1024_streams_closes_the_connection(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rate=10)
    async with session.ws_connect(f"{sim.ws_url}/stream") as ws:
        params = [f"sym{i}usdt@aggTrade" for i in range(1025)]
        await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": params, "id": 1}))
        assert await closed_by_server(ws)
    stats = await closed_stats(sim)
    assert stats["connections"][0]["close_reason"] == "too many streams"


@pytest.mark.slow
async def test_server_pings_and_drops_a_client_that_does_not_pong(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rate=50, ping_interval=0.2, pong_timeout=0.6)
    url = f"{sim.ws_url}/ws/btcusdt@aggTrade"
    async with (
        session.ws_connect(url, autoping=False) as silent,
        session.ws_connect(url) as polite,
    ):
        received = 0

        async def read_politely() -> None:  # aiohttp answers pings while it reads
            nonlocal received
            while True:
                await receive_json(polite)
                received += 1

        reader = asyncio.create_task(read_politely())
        ping = await receive_until_type(silent, aiohttp.WSMsgType.PING)
        assert ping.data  # Binance pings carry a payload to echo
        assert await closed_by_server(silent)
        # time passing on purpose: the polite client, answering its pings, is not dropped
        await asyncio.sleep(0.5)
        assert not reader.done() and not polite.closed
        reader.cancel()
        assert received > 0
    stats = await closed_stats(sim, 2)
    reasons = {c["id"]: c["close_reason"] for c in stats["connections"]}
    assert reasons[1] == "pong timeout"
    assert reasons[2] != "pong timeout"


async def receive_until_type(
    ws: aiohttp.ClientWebSocketResponse, kind: aiohttp.WSMsgType
) -> aiohttp.WSMessage:
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type is kind:
                return msg


async def test_connections_are_closed_at_the_age_limit(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rate=50, max_connection_age=0.4)
    async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@aggTrade") as ws:
        assert await closed_by_server(ws)
        assert ws.close_code == 1000
    stats = await closed_stats(sim)
    assert stats["connections"][0]["close_reason"] == "connection age limit"


async def test_usdm_endpoint_split(make_sim: MakeSim, session: aiohttp.ClientSession) -> None:
    sim = await make_sim(market="usdm", rate=3000)
    streams = "btcusdt@depth@100ms/btcusdt@aggTrade/btcusdt@bookTicker"
    expected = {
        "/public/stream": {"btcusdt@depth@100ms", "btcusdt@bookTicker"},
        "/market/stream": {"btcusdt@aggTrade"},
        "/stream": {"btcusdt@depth@100ms", "btcusdt@aggTrade", "btcusdt@bookTicker"},
    }
    for path, wanted in expected.items():
        seen = set()
        async with session.ws_connect(f"{sim.ws_url}{path}?streams={streams}") as ws:
            for _ in range(300):
                seen.add((await receive_json(ws))["stream"])
        assert seen == wanted, path


async def test_rest_endpoints_and_errors(make_sim: MakeSim, session: aiohttp.ClientSession) -> None:
    sim = await make_sim(rate=100)
    base = f"{sim.rest_url}/api/v3"
    async with session.get(f"{base}/ping") as r:
        assert (r.status, await r.json()) == (200, {})
        first_weight = int(r.headers["X-MBX-USED-WEIGHT-1M"])
    async with session.get(f"{base}/time") as r:
        assert isinstance((await r.json())["serverTime"], int)
    async with session.get(f"{base}/exchangeInfo") as r:
        info = await r.json()
        assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"]
        assert int(r.headers["X-MBX-USED-WEIGHT-1M"]) == first_weight + 1 + 20
    async with session.get(f"{base}/depth?symbol=NOPE") as r:
        assert (r.status, await r.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
    async with session.get(f"{base}/depth") as r:
        assert r.status == 400 and (await r.json())["code"] == -1102
    async with session.get(f"{base}/depth?symbol=BTCUSDT&limit=5") as r:
        book = await r.json()
        assert len(book["bids"]) == len(book["asks"]) == 5
        assert float(book["bids"][0][0]) < float(book["asks"][0][0])
    fsim = await make_sim(market="usdm", rate=100)
    async with session.get(f"{fsim.rest_url}/fapi/v1/depth?symbol=BTCUSDT&limit=7") as r:
        assert r.status == 400 and (await r.json())["code"] == -1130
    async with session.get(f"{fsim.rest_url}/fapi/v1/depth?symbol=BTCUSDT&limit=5") as r:
        assert set(await r.json()) == {"lastUpdateId", "E", "T", "bids", "asks"}


@pytest.mark.slow
async def test_stats_report_exactly_the_ids_sent(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rate=2000)
    received: list[int] = []
    async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@aggTrade") as ws:
        while len(received) < 300:
            received.append((await receive_json(ws))["a"])
    await closed_stats(sim)  # what went out on the connection is final once it ended
    async with session.get(f"{sim.rest_url}/sim/stats") as r:
        stats = await r.json()
    sent = stats["connections"][0]["streams"]["btcusdt@aggTrade"]
    assert len(sent["ranges"]) == 1
    first, last = sent["ranges"][0]
    assert (sent["first"], sent["count"]) == (first, last - first + 1)
    # what the client read is a prefix of what went out (the rest was in flight at close)
    assert received == list(range(first, first + len(received)))
    assert last <= stats["symbols"]["BTCUSDT"]["last_agg_id"]
