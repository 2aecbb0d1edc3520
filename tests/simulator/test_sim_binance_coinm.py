"""The COIN-M simulator and the futures derivatives streams over real sockets: dapi REST shapes
and errors, the 200-stream limit, markPrice / forceOrder frames, and their ground truth."""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.request

import aiohttp
from simharness import MakeSim, closed_stats, receive_json

from hundi.simulator.binance.derivatives import is_perpetual


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, object]:
    async with session.get(url) as answer:
        return answer.status, await answer.json()


async def test_coinm_rest_exchange_info_open_interest_and_depth(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(market="coinm", symbols=("BTCUSD_PERP", "ETHUSD_260626"), rate=100)
    status, info = await get(session, f"{sim.rest_url}/dapi/v1/exchangeInfo")
    assert status == 200 and isinstance(info, dict)
    btc, eth = info["symbols"]
    assert (btc["symbol"], btc["contractType"], btc["contractSize"]) == (
        "BTCUSD_PERP", "PERPETUAL", 100
    )  # fmt: skip
    assert (btc["contractStatus"], btc["marginAsset"], btc["quoteAsset"]) == (
        "TRADING", "BTC", "USD"
    )  # fmt: skip
    assert (eth["contractType"], eth["contractSize"], eth["deliveryDate"]) == (
        "CURRENT_QUARTER", 10, 1782460800000
    )  # fmt: skip
    lot = next(f for f in btc["filters"] if f["filterType"] == "LOT_SIZE")
    assert lot["stepSize"] == "1"  # whole contracts

    status, oi = await get(session, f"{sim.rest_url}/dapi/v1/openInterest?symbol=BTCUSD_PERP")
    assert status == 200 and isinstance(oi, dict)
    assert (oi["symbol"], oi["pair"], oi["contractType"]) == ("BTCUSD_PERP", "BTCUSD", "PERPETUAL")
    assert oi["openInterest"].isdigit()
    assert sim.stats()["derivatives"]["BTCUSD_PERP"]["open_interest"][-1][1] == oi["openInterest"]
    status, error = await get(session, f"{sim.rest_url}/dapi/v1/openInterest")
    assert (status, error) == (400, {"code": -1102, "msg": error["msg"]})  # type: ignore[index]
    status, error = await get(session, f"{sim.rest_url}/dapi/v1/openInterest?symbol=XYZUSD_PERP")
    assert (status, error) == (400, {"code": -1121, "msg": "Invalid symbol."})
    status, _depth = await get(
        session, f"{sim.rest_url}/dapi/v1/depth?symbol=BTCUSD_PERP&limit=250"
    )
    assert status == 400  # not a futures limit
    async with session.get(f"{sim.rest_url}/fapi/v1/exchangeInfo") as answer:
        assert answer.status == 404  # COIN-M serves dapi only


async def test_mark_price_and_force_order_frames_and_ground_truth(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(market="coinm", symbols=("BTCUSD_PERP", "ETHUSD_260626"), rate=200)
    names = "btcusd_perp@markPrice@1s/ethusd_260626@markPrice@1s/btcusd_perp@forceOrder"
    marks: dict[str, list[dict[str, object]]] = {"BTCUSD_PERP": [], "ETHUSD_260626": []}
    forced: list[dict[str, object]] = []
    async with session.ws_connect(f"{sim.ws_url}/stream?streams={names}") as ws:
        async with asyncio.timeout(20):
            while min(len(m) for m in marks.values()) < 2 or not forced:
                frame = await receive_json(ws)
                data = frame["data"]
                if data["e"] == "markPriceUpdate":
                    assert list(data) == ["e", "E", "s", "p", "P", "i", "r", "T"]  # COIN-M order
                    marks[data["s"]].append(data)
                else:
                    assert data["e"] == "forceOrder"
                    assert list(data["o"]) == [
                        "s", "ps", "S", "o", "f", "q", "p", "ap", "X", "l", "z", "T"
                    ]  # fmt: skip
                    forced.append(data["o"])
    perp, delivery = marks["BTCUSD_PERP"][0], marks["ETHUSD_260626"][0]
    assert perp["r"] != "" and perp["T"] > perp["E"]  # type: ignore[operator]
    assert (delivery["r"], delivery["T"]) == ("", 0)
    assert is_perpetual("BTCUSD_PERP") and is_perpetual("BTCUSDT")
    assert not is_perpetual("ETHUSD_260626")
    truth = sim.stats()["derivatives"]
    sent = [[m["E"], m["p"], m["i"], m["r"], m["T"]] for m in marks["BTCUSD_PERP"]]
    assert truth["BTCUSD_PERP"]["mark_prices"][: len(sent)] == sent
    first = forced[0]
    assert truth["BTCUSD_PERP"]["liquidations"][0] == [first["T"], first["S"], first["p"],
                                                       first["q"]]  # fmt: skip
    assert str(first["q"]).isdigit()  # contracts
    times = [row[0] for row in truth["BTCUSD_PERP"]["liquidations"]]
    assert all(b - a >= 900 for a, b in itertools.pairwise(times))  # ~1 per second


async def test_usdm_derivative_streams_on_the_market_path(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(market="usdm", symbols=("BTCUSDT",), rate=100)
    async with session.ws_connect(f"{sim.ws_url}/market/stream") as ws:
        params = ["btcusdt@markPrice@1s"]
        await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": params, "id": 1}))
        assert await receive_json(ws) == {"result": None, "id": 1}
        frame = await receive_json(ws, within=5)
        assert frame["stream"] == "btcusdt@markPrice@1s"
        assert list(frame["data"]) == ["e", "E", "s", "p", "i", "P", "r", "T"]  # USD-M order
    status, oi = await get(session, f"{sim.rest_url}/fapi/v1/openInterest?symbol=BTCUSDT")
    assert status == 200 and set(oi) == {"openInterest", "symbol", "time"}  # type: ignore[arg-type]


async def test_coinm_closes_a_connection_over_200_streams(
    make_sim: MakeSim, session: aiohttp.ClientSession
) -> None:
    sim = await make_sim(market="coinm", symbols=("BTCUSD_PERP",), rate=10)
    async with session.ws_connect(f"{sim.ws_url}/stream") as ws:
        params = [f"sym{i}usd_perp@aggTrade" for i in range(201)]
        await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": params, "id": 1}))
        async with asyncio.timeout(5):
            while (await ws.receive()).type not in (
                aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR
            ):  # fmt: skip
                pass
    stats = await closed_stats(sim)
    assert stats["connections"][0]["close_reason"] == "too many streams"


def test_hundi_simulate_binance_coinm_defaults_to_coinm_symbols() -> None:
    from hundi.simulator.process import SimulatorProcess

    with SimulatorProcess(["--market", "coinm", "--rate", "50"]) as sim:
        with urllib.request.urlopen(f"{sim.rest_url}/sim/stats", timeout=10) as answer:
            stats = json.load(answer)
        with urllib.request.urlopen(f"{sim.rest_url}/dapi/v1/exchangeInfo", timeout=10) as a:
            info = json.load(a)
    assert stats["market"] == "coinm"
    assert sorted(stats["symbols"]) == ["BTCUSD_PERP", "ETHUSD_PERP"]
    assert [s["contractSize"] for s in info["symbols"]] == [100, 10]
