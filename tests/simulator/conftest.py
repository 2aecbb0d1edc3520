"""Simulators started in-process on a free port, stopped after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from simharness import MakeSim

from hundi.simulator.binance.config import SimulatorConfig
from hundi.simulator.binance.server import BinanceSimulator


@pytest.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    started: list[BinanceSimulator] = []

    async def factory(**options: Any) -> BinanceSimulator:
        sim = BinanceSimulator(SimulatorConfig(**options))
        await sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
