"""``--replay`` plays the real recordings back verbatim, with their REST snapshots."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from simharness import MakeSim

from hundi.capture.events import CaptureKind, venue_id
from hundi.capture.format import VenueHeader
from hundi.capture.recordings import read_recording
from hundi.capture.writer import RawCaptureWriter
from hundi.simulator.binance.replay import ReplayData


def recorded(path: Path) -> tuple[str, list[bytes]]:
    """The recorded connection's path+query and the frames it received."""
    url, frames = "", []
    for event in read_recording(path):
        if event.kind is CaptureKind.OPEN:
            parts = urlsplit(event.url)
            url = f"{parts.path}?{parts.query}"
        elif event.kind is CaptureKind.RECV:
            frames.append(event.data)
    return url, frames


async def receive_frames(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[bytes]:
    out = []
    while len(out) < count:
        msg = await ws.receive(timeout=10)
        assert msg.type is aiohttp.WSMsgType.TEXT
        out.append(msg.data.encode())
    return out


@pytest.mark.parametrize(
    ("name", "rest"), [("BINANCE", "/api/v3"), ("BINANCE_FUTURES", "/fapi/v1")]
)
async def test_replay_delivers_recorded_frames_and_snapshots_verbatim(
    make_sim: MakeSim,
    session: aiohttp.ClientSession,
    recordings_dir: Path,
    name: str,
    rest: str,
) -> None:
    ws_file, http_file = recordings_dir / f"{name}.ws.1.0", recordings_dir / f"{name}.http.0.0"
    sim = await make_sim(replay=(ws_file, http_file), speed="max")
    path, frames = recorded(ws_file)
    async with session.ws_connect(sim.ws_url + path) as ws:
        assert await receive_frames(ws, len(frames)) == frames
    snapshots = [e for e in read_recording(http_file) if e.kind is CaptureKind.REST]
    symbol = urlsplit(snapshots[0].url).query.split("symbol=")[1].split("&")[0]
    async with session.get(f"{sim.rest_url}{rest}/depth?symbol={symbol}&limit=1000") as r:
        assert r.status == 200
        assert await r.read() == snapshots[0].data
    async with session.get(f"{sim.rest_url}{rest}/depth?symbol=NOTRECORDED") as r:
        assert r.status == 400
    stats = sim.stats()
    assert stats["mode"] == "replay"
    assert stats["connections"][0]["frames_sent"] == len(frames)


async def test_replay_filters_by_subscription_and_unwraps_raw_streams(
    make_sim: MakeSim, session: aiohttp.ClientSession, recordings_dir: Path
) -> None:
    ws_file = recordings_dir / "BINANCE.ws.1.0"
    sim = await make_sim(replay=(ws_file,), speed="max")
    _, frames = recorded(ws_file)
    wanted = [f for f in frames if f.startswith(b'{"stream":"nknusdt@bookTicker"')]
    async with session.ws_connect(f"{sim.ws_url}/ws/nknusdt@bookTicker") as ws:
        got = await receive_frames(ws, len(wanted))
    assert got == [w[len(b'{"stream":"nknusdt@bookTicker","data":') : -1] for w in wanted]


async def test_original_speed_keeps_the_recorded_spacing(
    make_sim: MakeSim, session: aiohttp.ClientSession, recordings_dir: Path
) -> None:
    ws_file = recordings_dir / "BINANCE.ws.1.0"
    sim = await make_sim(replay=(ws_file,), speed="original")
    path, frames = recorded(ws_file)
    times = [e.ts for e in read_recording(ws_file) if e.kind is CaptureKind.RECV]
    count = sum(1 for t in times if t - times[0] <= 1_000_000_000)  # the first second
    span = (times[count - 1] - times[0]) / 1e9
    async with session.ws_connect(sim.ws_url + path) as ws:
        first = await receive_frames(ws, 1)
        start = time.monotonic()
        rest = await receive_frames(ws, count - 1)
        elapsed = time.monotonic() - start
    assert first + rest == frames[:count]
    assert elapsed >= span * 0.9  # not faster than the capture


def test_a_capture_of_several_venues_plays_back_only_this_venue_s_events(tmp_path: Path) -> None:
    """Venues share stream names and REST paths: of a capture holding Binance spot and USD-M
    (found by review: both were played to every client), only the market asked for."""
    venues = [
        VenueHeader(exchange="binance", market=m, symbols=["BTCUSDT"], channels=[])
        for m in ("spot", "usdm")
    ]
    writer = RawCaptureWriter(tmp_path, venues=venues)
    for market in ("spot", "usdm"):
        hook = writer.for_venue("binance", market)
        frame = b'{"stream":"btcusdt@aggTrade","data":{"m":"%s"}}' % market.encode()
        hook(CaptureKind.RECV, 1, "spot-public-0", data=frame)
        hook(CaptureKind.REST, 2, "depth", url="https://x/api/v3/depth?symbol=BTCUSDT",
             data=market.encode(), status=200)  # fmt: skip
    writer.close()
    data = ReplayData.load(sorted(tmp_path.glob("*.hcap.gz")), venue_id("binance", "usdm"))
    assert [f.payload for f in data.frames] == [b'{"m":"usdm"}']
    assert data.rest_answer("/api/v3/depth", "BTCUSDT") == (200, b"usdm")
