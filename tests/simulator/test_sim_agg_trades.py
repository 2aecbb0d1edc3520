"""REST ``aggTrades`` answers with the ids and values the simulator streamed (issue 12)."""

from __future__ import annotations

from typing import Any

import aiohttp
from simharness import MakeSim, receive_json


async def agg_trades(
    session: aiohttp.ClientSession, url: str, **params: Any
) -> tuple[int, Any, dict[str, str]]:
    async with session.get(url, params={k: str(v) for k, v in params.items()}) as reply:
        return reply.status, await reply.json(), dict(reply.headers)


async def test_a_withheld_trade_is_served_over_rest_with_its_streamed_neighbours(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(rate=2000, symbols=("BTCUSDT",), faults=("gap:0.5",))
    streamed: dict[int, dict[str, Any]] = {}
    hole = -1
    async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@aggTrade") as ws:
        last = (await receive_json(ws))["a"]
        while hole < 0 or last < hole + 3:
            event = await receive_json(ws)
            streamed[event["a"]] = event
            if event["a"] != last + 1 and hole < 0:
                assert event["a"] == last + 2  # exactly one frame withheld
                hole = last + 1
            last = event["a"]
    logged = [f for f in sim.stats()["faults"] if f["stream"] == "btcusdt@aggTrade"]
    assert logged[0]["kind"] == "gap" and logged[0]["first_id"] == hole
    url = f"{sim.rest_url}/api/v3/aggTrades"
    status, rows, headers = await agg_trades(session, url, symbol="BTCUSDT", fromId=hole, limit=3)
    assert status == 200 and "X-MBX-USED-WEIGHT-1M" in headers
    assert [r["a"] for r in rows] == [hole, hole + 1, hole + 2]
    assert set(rows[0]) == {"a", "p", "q", "f", "l", "T", "m", "M"}
    for row in rows[1:]:
        event = streamed[row["a"]]
        assert {k: event[k] for k in ("p", "q", "f", "l", "T", "m")} == {
            k: row[k] for k in ("p", "q", "f", "l", "T", "m")
        }
    assert rows[0]["l"] + 1 == rows[1]["f"]  # the withheld trade fits its neighbours' ids


async def test_ids_older_than_the_history_give_an_empty_list(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(market="usdm", rate=2000, symbols=("BTCUSDT",), trade_history=10)
    async with session.ws_connect(f"{sim.ws_url}/market/ws/btcusdt@aggTrade") as ws:
        first = (await receive_json(ws))["a"]
        while (await receive_json(ws))["a"] < first + 50:
            pass
    url = f"{sim.rest_url}/fapi/v1/aggTrades"
    status, rows, _ = await agg_trades(session, url, symbol="BTCUSDT", fromId=first, limit=5)
    assert (status, rows) == (200, [])
    status, rows, _ = await agg_trades(session, url, symbol="BTCUSDT", limit=1000)
    assert status == 200 and len(rows) == 10
    assert set(rows[0]) == {"a", "p", "q", "f", "l", "T", "m"}
    assert [r["a"] for r in rows] == list(range(rows[0]["a"], rows[0]["a"] + 10))
    status, _, _ = await agg_trades(session, url, symbol="NOPEUSDT")
    assert status == 400
