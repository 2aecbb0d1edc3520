"""A raw capture of several venues (one collector, a multi-feed config): each event names its
venue, so a replay of one venue takes its own events only and stores what the live run stored.

Why: venues share connection keys ("public" is both OKX markets', Bybit's, Kraken's and
Bitstamp's). Before, a replay of OKX spot from a capture of OKX spot and swap fed it the swap's
frames too (515 rejected as unknown symbols, a phantom reconnect, a REST answer matched to the
wrong market) and the swap's replay parsed no book at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import hundi
from hundi.capture.events import CaptureKind, qualified, split_venue, venue_id
from hundi.capture.format import VenueHeader
from hundi.capture.reader import read_capture
from hundi.capture.writer import RawCaptureWriter
from hundi.simulator.process import SimulatorProcess

MARKETS = {"spot": "BTC-USDT", "swap": "BTC-USDT-SWAP"}
STORED = {"spot": "BTC-USDT", "swap": "BTC-USDT-PERP"}


def header(market: str) -> VenueHeader:
    return VenueHeader(exchange="okx", market=market, symbols=[MARKETS[market]], channels=[])


def test_a_one_venue_capture_keeps_bare_keys_and_several_name_the_venue(tmp_path: Path) -> None:
    one = RawCaptureWriter(tmp_path / "one", venues=[header("spot")])
    assert one.for_venue("okx", "spot") == one.record
    one.close()
    two = RawCaptureWriter(tmp_path / "two", venues=[header("spot"), header("swap")])
    two.for_venue("okx", "swap")(CaptureKind.RECV, 1, "public", data=b"{}")
    two.for_venue("okx", "spot")(CaptureKind.OPEN, 2, "public", url="ws://x")
    two.close()
    events = list(read_capture(sorted((tmp_path / "two").glob("*.hcap.gz"))))
    assert [e.conn for e in events] == ["okx/swap|public", "okx/spot|public"]
    assert split_venue("okx/swap|public") == ("okx/swap", "public")
    assert split_venue("public") == (None, "public")
    # a bare key that merely holds the mark is not a venue's (no EXCHANGE/MARKET before it)
    assert split_venue("trades:XBT/USD|x") == (None, "trades:XBT/USD|x")
    assert qualified(venue_id("okx", "spot"), "trades:BTC-USDT") == "okx/spot|trades:BTC-USDT"


def replay(raw: Path, market: str, store: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "hundi", "replay", str(raw), "--exchange", "okx", "--market",
         market, "--store", str(store), "--summary-json", str(store.with_suffix(".json"))],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    summary: dict[str, object] = json.loads(store.with_suffix(".json").read_text())
    return summary


@pytest.mark.slow
def test_each_venue_of_a_shared_capture_replays_to_what_it_stored_live(tmp_path: Path) -> None:
    with SimulatorProcess(["--rate", "200", "--seed", "3"], venue="okx") as sim:
        feeds = "".join(
            f"  - {{exchange: okx, market: {market}, symbols: {native}, "
            f"channels: [trades, bbo, book], endpoint: '{sim.ws_url}/ws/v5/public', "
            f"rest_endpoint: '{sim.rest_url}'}}\n"
            for market, native in MARKETS.items()
        )
        (tmp_path / "feeds.yaml").write_text(
            f"settings:\n  store: live\n  flush_interval: 0.2\nfeeds:\n{feeds}"
        )
        done = subprocess.run(
            [sys.executable, "-m", "hundi", "collect", "--config", "feeds.yaml", "--duration",
             "5", "--raw", "raw"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for market, symbol in STORED.items():
        summary = replay(tmp_path / "raw", market, tmp_path / f"replayed-{market}")
        frames = summary["frames"]
        assert isinstance(frames, dict)
        assert frames["rejected"] == 0 and frames["processed"] > 0, summary
        for channel in ("trades", "bbo", "book"):
            live = hundi.read(tmp_path / "live", exchange="okx", symbol=symbol, channel=channel)
            again = hundi.read(
                tmp_path / f"replayed-{market}", exchange="okx", symbol=symbol, channel=channel
            )
            assert len(live) > 0, (market, channel)
            pd.testing.assert_frame_equal(again, live, check_exact=True)
