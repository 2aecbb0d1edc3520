"""Helpers shared by the simulator tests (imported as ``simharness``; conftest names clash)."""

from __future__ import annotations

import json
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
