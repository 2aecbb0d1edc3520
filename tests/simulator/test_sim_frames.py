"""Generated frames have exactly the keys, key order and JSON types of Binance's real frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from simharness import MakeSim, receive_json, signature

from hundi.capture.events import CaptureKind
from hundi.capture.recordings import read_recording

pytestmark = pytest.mark.slow

RECORDED_KINDS = ("aggTrade", "depth@100ms", "bookTicker", "kline_1m")


def recorded_signatures(path: Path) -> dict[str, set[tuple[str, str]]]:
    """Per stream kind (the part after ``@``), the union of the recorded frames' signatures."""
    out: dict[str, set[tuple[str, str]]] = {}
    for event in read_recording(path):
        if event.kind is CaptureKind.RECV:
            frame = json.loads(event.data)
            kind = frame["stream"].partition("@")[2]
            out.setdefault(kind, set()).update(signature(frame))
    return out


async def generated_signatures(
    make_sim: MakeSim, session: aiohttp.ClientSession, market: str
) -> dict[str, set[tuple[str, str]]]:
    sim = await make_sim(market=market, symbols=("BTCUSDT",), rate=3000)
    streams = "/".join(f"btcusdt@{kind}" for kind in RECORDED_KINDS)
    out: dict[str, set[tuple[str, str]]] = {}
    counts: dict[str, int] = {}
    async with session.ws_connect(f"{sim.ws_url}/stream?streams={streams}") as ws:
        # a few frames of every kind so empty and full lists both show; klines come every 2 s
        need = {kind: 1 if kind.startswith("kline") else 3 for kind in RECORDED_KINDS}
        while any(counts.get(kind, 0) < n for kind, n in need.items()):
            frame = await receive_json(ws)
            kind = frame["stream"].partition("@")[2]
            counts[kind] = counts.get(kind, 0) + 1
            out.setdefault(kind, set()).update(signature(frame))
    return out


@pytest.mark.parametrize(("market", "name"), [("spot", "BINANCE"), ("usdm", "BINANCE_FUTURES")])
async def test_frames_match_the_recorded_binance_frames(
    make_sim: MakeSim,
    session: aiohttp.ClientSession,
    recordings_dir: Path,
    market: str,
    name: str,
) -> None:
    recorded = recorded_signatures(recordings_dir / f"{name}.ws.1.0")
    assert set(RECORDED_KINDS) <= set(recorded)
    generated = await generated_signatures(make_sim, session, market)
    for kind in RECORDED_KINDS:
        assert generated[kind] == recorded[kind], kind


def keys(frame: dict[str, Any]) -> list[str]:
    return list(frame["data"])


# Streams missing from the recordings: key order as in Binance's stream documentation.
DOCUMENTED = {
    ("spot", "ticker"): "e E s p P w x c Q b B a A o h l v q O C F L n",
    ("usdm", "ticker"): "e E s p P w c Q o h l v q O C F L n",
    ("spot", "trade"): "e E s t p q T m M",
}


@pytest.mark.parametrize(("market", "kind"), list(DOCUMENTED))
async def test_streams_without_recordings_follow_the_documentation(
    make_sim: MakeSim, session: aiohttp.ClientSession, market: str, kind: str
) -> None:
    sim = await make_sim(market=market, symbols=("ETHUSDT",), rate=2000)
    async with session.ws_connect(f"{sim.ws_url}/stream?streams=ethusdt@{kind}") as ws:
        frame = await receive_json(ws)
    assert frame["stream"] == f"ethusdt@{kind}"
    assert keys(frame) == DOCUMENTED[(market, kind)].split()
    data = frame["data"]
    for field in ("E",):
        assert isinstance(data[field], int)
    for field in ("p", "q") if kind == "trade" else ("c", "o", "h", "l", "v", "q"):
        assert isinstance(data[field], str)
        float(data[field])
