"""Helpers shared by the simulator tests (imported as ``simharness``; conftest names clash)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from hundi.simulator.binance.server import BinanceSimulator

MakeSim = Callable[..., Awaitable[BinanceSimulator]]


async def receive_json(ws: aiohttp.ClientWebSocketResponse, within: float = 5.0) -> Any:
    """The next text frame, decoded; fails the test on close or after ``within`` seconds."""
    msg = await ws.receive(timeout=within)
    assert msg.type is aiohttp.WSMsgType.TEXT, f"expected a text frame, got {msg.type}"
    return json.loads(msg.data)


async def receive_until(
    ws: aiohttp.ClientWebSocketResponse, predicate: Callable[[Any], bool], within: float = 5.0
) -> Any:
    """Skip frames until one matches."""
    while True:
        frame = await receive_json(ws, within)
        if predicate(frame):
            return frame


async def closed_stats(sim: BinanceSimulator, count: int = 1, within: float = 60.0) -> Any:
    """``sim.stats()`` once ``count`` connections have ended on the simulator's side: their
    records (close reason, ids sent) are final then. A client seeing the close does not mean
    the server has finished with the connection; fails after ``within`` seconds (generous: the
    machine is shared)."""
    deadline = time.monotonic() + within
    while True:
        stats = sim.stats()
        if sum(c["closed_ns"] is not None for c in stats["connections"]) >= count:
            return stats
        seen = [(c["id"], c["close_reason"], c["closed_ns"]) for c in stats["connections"]]
        assert time.monotonic() < deadline, (
            f"{count} connection(s) not ended by the simulator within {within:g} s "
            f"(id, close reason, closed_ns): {seen}"
        )
        await asyncio.sleep(0.02)


def signature(value: Any, path: str = "") -> set[tuple[str, str]]:
    """Key order and JSON types of a frame, list elements folded together."""
    if isinstance(value, dict):
        out = {(path, "keys:" + ",".join(value))}
        for key, item in value.items():
            out |= signature(item, f"{path}.{key}")
        return out
    if isinstance(value, list):
        out = {(path, "list")}
        for item in value:
            out |= signature(item, path + "[]")
        return out
    return {(path, type(value).__name__)}
