"""Simulator data for the research tests, collected once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from researchsim import collect


@pytest.fixture(scope="session")
def sim_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"spot": store, "usdm": store}``: 3 s of each market from the simulator."""
    base = tmp_path_factory.mktemp("sim")
    stores = {}
    for market in ("spot", "usdm"):
        stores[market] = base / market
        collect(market, stores[market])
    return stores
