"""A client applying Binance's documented book-sync rules to the simulator gets the exact book."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from simharness import MakeSim, receive_json

pytestmark = pytest.mark.slow

Book = dict[str, dict[str, str]]


def apply(book: Book, data: dict[str, Any]) -> None:
    for side, key in (("bids", "b"), ("asks", "a")):
        for price, qty in data[key]:
            if float(qty) == 0:
                book[side].pop(price, None)
            else:
                book[side][price] = qty


def from_snapshot(snapshot: dict[str, Any]) -> Book:
    return {side: {p: q for p, q in snapshot[side]} for side in ("bids", "asks")}


async def snapshot(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url) as r:
        assert r.status == 200
        result: dict[str, Any] = await r.json()
        return result


class Syncer:
    """The documented procedure: buffer, snapshot, drop old events, check continuity."""

    def __init__(self, futures: bool) -> None:
        self.futures = futures
        self.buffer: list[dict[str, Any]] = []
        self.book: Book | None = None
        self.last_u = 0
        self.snapshot_retries = 0

    def start(self, snap: dict[str, Any]) -> bool:
        """Seed from a snapshot; False when it is older than the buffered stream (refetch)."""
        last_id = snap["lastUpdateId"]
        if self.buffer and last_id < self.buffer[0]["U"] - 1:
            self.snapshot_retries += 1
            return False
        self.book, self.last_u = from_snapshot(snap), last_id
        pending, self.buffer = self.buffer, []
        first = True
        for event in pending:
            if event["u"] < last_id or (not self.futures and event["u"] == last_id):
                continue
            if first:
                if self.futures:
                    assert event["U"] <= last_id <= event["u"]
                else:
                    assert event["U"] <= last_id + 1 <= event["u"]
                self.book_apply(event, check=False)
                first = False
            else:
                self.book_apply(event)
        return True

    def feed(self, event: dict[str, Any]) -> None:
        if self.book is None:
            self.buffer.append(event)
        else:
            self.book_apply(event)

    def book_apply(self, event: dict[str, Any], check: bool = True) -> None:
        assert self.book is not None
        if check:
            if self.futures:
                assert event["pu"] == self.last_u
            else:
                assert event["U"] == self.last_u + 1
        apply(self.book, event)
        self.last_u = event["u"]


@pytest.mark.parametrize(("market", "stale"), [("spot", False), ("usdm", False), ("spot", True)])
async def test_sync_rules_give_the_book_of_a_fresh_snapshot(
    make_sim: MakeSim, session: aiohttp.ClientSession, market: str, stale: bool
) -> None:
    futures = market == "usdm"
    faults = ("stale-snapshot",) if stale else ()
    sim = await make_sim(market=market, rate=3000, symbols=("BTCUSDT",), faults=faults)
    rest = f"{sim.rest_url}/{'fapi/v1' if futures else 'api/v3'}/depth?symbol=BTCUSDT&limit=1000"
    syncer = Syncer(futures)
    async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@depth@100ms") as ws:
        for _ in range(3):  # buffer a few diffs before asking for the snapshot
            syncer.feed(await receive_json(ws))
        while not syncer.start(await snapshot(session, rest)):
            syncer.feed(await receive_json(ws))
        for _ in range(10):
            syncer.feed(await receive_json(ws))
        fresh = await snapshot(session, rest)
        while syncer.last_u < fresh["lastUpdateId"]:
            syncer.feed(await receive_json(ws))
    assert syncer.last_u == fresh["lastUpdateId"]  # snapshots sit on diff frame boundaries
    assert syncer.book == from_snapshot(fresh)
    assert syncer.book is not None
    best_bid = max(float(p) for p in syncer.book["bids"])
    best_ask = min(float(p) for p in syncer.book["asks"])
    assert best_bid < best_ask
    assert syncer.snapshot_retries == (1 if stale else 0)
