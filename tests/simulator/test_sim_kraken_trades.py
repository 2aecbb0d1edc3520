"""The Kraken simulator's REST ``Trades``: pages after ``since`` (exclusive, ns or seconds),
``count``, the ``last`` cursor, Kraken's error arrays, and the ``rate_limit`` fault."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import msgspec
import pytest

from hundi.exchanges.kraken.backfill import decode_answer
from hundi.simulator.kraken.server import KrakenSimConfig, KrakenSimulator
from hundi.simulator.kraken.trades import TradeHistory, trades_answer

T0 = 1_700_000_000_000_000_000


def history() -> dict[str, TradeHistory]:
    h = TradeHistory()
    for i in range(5):  # ids 10..14, 1 ms apart; BTC/USD at 1 decimal, qty at 4
        h.add(10 + i, T0 + i * 1_000_000 + 999, 1_000_005 + i, 2500, 1, 4, buy=i % 2 == 0)
    return {"BTC/USD": h}


def test_a_page_is_the_trades_after_since_oldest_first_with_the_last_cursor() -> None:
    answer = trades_answer(history(), {"pair": "BTC/USD", "since": str(T0 + 1_000_000)})
    assert answer["error"] == []
    rows = answer["result"]["BTCUSD"]
    assert [r[6] for r in rows] == [12, 13, 14]  # strictly after since (id 11's time)
    assert rows[0][:2] == ["100000.7", "0.25000000"] and rows[0][3:6] == ["b", "l", ""]
    assert bytes(rows[0][2]) == b"1700000000.002000"  # microseconds, as the WebSocket
    assert answer["result"]["last"] == str(T0 + 4_000_000)
    body = msgspec.json.encode(answer)
    trades, last = decode_answer(body)  # what the collector reads back
    assert [t.trade_id for t in trades] == [12, 13, 14] and last == T0 + 4_000_000


def test_count_seconds_and_an_empty_page() -> None:
    h = history()
    first = trades_answer(h, {"pair": "BTC/USD", "since": "0", "count": "2"})
    assert [r[6] for r in first["result"]["BTCUSD"]] == [10, 11]
    seconds = trades_answer(h, {"pair": "BTC/USD", "since": str(T0 // 10**9 - 1)})
    assert [r[6] for r in seconds["result"]["BTCUSD"]] == [10, 11, 12, 13, 14]
    empty = trades_answer(h, {"pair": "BTC/USD", "since": str(T0 + 10**9)})
    assert empty["result"] == {"BTCUSD": [], "last": str(T0 + 10**9)}


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"pair": "FOO/USD"}, "EQuery:Unknown asset pair"),
        ({"pair": "BTC/USD", "count": "0"}, "EGeneral:Invalid arguments"),
        ({"pair": "BTC/USD", "count": "1001"}, "EGeneral:Invalid arguments"),
        ({"pair": "BTC/USD", "since": "soon"}, "EGeneral:Invalid arguments"),
    ],
)
def test_bad_queries_are_kraken_error_arrays(query: dict[str, str], error: str) -> None:
    assert trades_answer(history(), query) == {"error": [error]}


@pytest.mark.slow
async def test_served_over_http_with_the_rate_limit_fault() -> None:
    sim = KrakenSimulator(KrakenSimConfig(symbols=("BTC/USD",), rate=300, faults={}))
    await sim.start()
    try:
        deadline = time.monotonic() + 60
        while len(sim.trade_ids["BTC/USD"]) < 5:
            assert time.monotonic() < deadline, "no trades in time"
            await asyncio.sleep(0.02)
        url = f"{sim.rest_url}/0/public/Trades?pair=BTC%2FUSD&since=0&count=3"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as reply:
                trades, _ = decode_answer(await reply.read())
            assert [t.trade_id for t in trades] == sim.trade_ids["BTC/USD"][:3]
            sim._limit_next = True  # what the rate_limit fault arms
            async with session.get(url) as reply:
                assert reply.status == 200
                assert msgspec.json.decode(await reply.read()) == {
                    "error": ["EGeneral:Too many requests"]
                }
        assert [f["kind"] for f in sim.fault_log] == ["rate_limit"]
        assert sim.stats()["rest_trades_requests"] == 2
    finally:
        await sim.stop()
