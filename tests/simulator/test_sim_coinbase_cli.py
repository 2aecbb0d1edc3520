"""``hundi collect coinbase`` as a user runs it, against ``hundi simulate coinbase``."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from urllib.request import urlopen

import pytest

import hundi
from hundi.simulator.process import SimulatorProcess

pytestmark = pytest.mark.slow

HUNDI = [sys.executable, "-m", "hundi"]


def collect(
    sim: SimulatorProcess, tmp: Path, symbols: str, channels: str = "", duration: float = 3
) -> tuple[int, str, dict[str, object]]:
    summary = tmp / "summary.json"
    args = [
        *HUNDI,
        "collect",
        "coinbase",
        "--symbols",
        symbols,
        "--endpoint",
        sim.ws_url,
        "--rest-endpoint",
        sim.rest_url,
        "--store",
        str(tmp / "data"),
        "--duration",
        str(duration),
        "--flush-interval",
        "0.2",
        "--summary-json",
        str(summary),
        "--raw",
        str(tmp / "raw"),
        *(["--channels", channels] if channels else []),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=90, cwd=tmp)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout + done.stderr, json.loads(summary.read_text())


def test_collect_stores_every_channel_and_names_an_unlisted_product(tmp_path: Path) -> None:
    faults = ["--fault", "skip_match:0.8", "--fault", "cross_book:1"]
    with SimulatorProcess(["--rate", "300", *faults], venue="coinbase") as sim:
        # 6 s: a make-before-break resync delivers its snapshot 2 s (overlap) after the break
        code, output, summary = collect(sim, tmp_path, "BTC-USD,ETH-USD,DELISTED-USD", duration=6)
    assert code == 1, output[-3000:]  # DELISTED-USD was asked for and not collected
    assert summary["invalid_symbols"] == ["DELISTED-USD"]
    assert summary["outcome"]["reasons"] == [
        "invalid symbols (the exchange does not list, trade or name them as asked; "
        "see their invalid_symbol events): DELISTED-USD"
    ]
    for channel in ("trades", "book", "events"):
        assert len(hundi.read(tmp_path / "data", exchange="coinbase", channel=channel)) > 0
    trades = hundi.read(tmp_path / "data", exchange="coinbase", channel="trades")
    assert set(trades["symbol"]) == {"BTC-USD", "ETH-USD"}
    assert (trades["symbol"] == trades["native_symbol"]).all()
    # each crossed book was a gap, a make-before-break re-subscribe and a brought-forward sync
    events = hundi.read(tmp_path / "data", exchange="coinbase", channel="events")
    book = events[events["channel"] == "book"]
    assert (book["kind"] == "gap").any() and (book["kind"] == "resync").any(), book
    resynced = book[(book["kind"] == "synced") & book["detail"].str.contains("brought forward")]
    assert len(resynced) >= 1, book[["kind", "symbol", "detail"]].to_string()

    # our raw capture replays to the same records, make-before-break resyncs included
    done = subprocess.run(
        [*HUNDI, "replay", str(tmp_path / "raw"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert "Traceback" not in done.stderr
    parsed = next(line for line in done.stdout.splitlines() if line.startswith("records parsed"))
    counts = dict(item.split("=") for item in parsed.removeprefix("records parsed: ").split(", "))
    records = summary["records"]
    assert isinstance(records, dict)
    for channel in ("trades", "bbo", "ticker", "book"):
        assert int(counts.get(channel, 0)) == records[channel], (channel, parsed, records)


def test_a_bad_product_id_is_one_line_and_a_failure(tmp_path: Path) -> None:
    args = [*HUNDI, "collect", "coinbase", "--symbols", "BTCUSD", "--store", str(tmp_path)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a Coinbase product id: 'BTCUSD'" in lines[0], lines


def test_collect_the_order_level_book_beside_the_public_channels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--channels ...,book_l3`` runs the signed ``full`` feed of ``hundi simulate coinbase``
    next to the public channels: lost messages and a stale snapshot are stored gaps repaired in
    place, and the stored order-level book is synced and uncrossed at the end."""
    monkeypatch.setenv("COINBASE_API_KEY", "test-key")
    monkeypatch.setenv("COINBASE_API_SECRET", base64.b64encode(b"test secret").decode())
    monkeypatch.setenv("COINBASE_API_PASSPHRASE", "test-pass")
    # each product loses a message every 1.8 s and gets a stale snapshot every 6 s (a stale one
    # is refetched after 1 s: both products must be synced again by the end)
    faults = ["--fault", "skip_sequence:0.9", "--fault", "stale_snapshot:3"]
    with SimulatorProcess(["--rate", "300", *faults], venue="coinbase") as sim:
        code, output, summary = collect(
            sim, tmp_path, "BTC-USD,ETH-USD", channels="trades,book,book_l3", duration=5
        )
    assert code == 0, output[-3000:]
    assert "test-key" not in output and "test-pass" not in output
    data = tmp_path / "data"
    rows = hundi.read(data, exchange="coinbase", channel="book_l3")
    assert set(rows["symbol"]) == {"BTC-USD", "ETH-USD"}
    assert {"snapshot", "open", "done"} <= set(rows["kind"])
    records = summary["records"]
    assert isinstance(records, dict) and records["book_l3"] == len(rows)
    events = hundi.read(data, exchange="coinbase", channel="events")
    l3 = events[events["channel"] == "book_l3"]
    assert (l3["kind"] == "gap").sum() >= 1, l3
    assert (l3["kind"] == "resync").sum() >= (l3["kind"] == "gap").sum() - 2, l3
    for product in ("BTC-USD", "ETH-USD"):
        mine = rows[rows["symbol"] == product]
        book = hundi.book_l3_at(data, "coinbase", product, mine.index.max())
        assert book.attrs["synced"], (product, l3)
        bids = book[book["side"] == 1]["price"]
        asks = book[book["side"] == -1]["price"]
        assert len(bids) and len(asks) and bids.max() < asks.min()
        # the same book aggregated to L2 through book_at's order-level path
        assert len(hundi.book_at(data, "coinbase", product, mine.index.max())) > 0


def test_only_unlisted_products_open_no_socket_and_exit_nothing_collected(tmp_path: Path) -> None:
    """No product to subscribe: no WebSocket at all (Coinbase closes a socket without a
    subscribe after 5 s, so one would loop), the reason named, exit status 3."""
    with SimulatorProcess(["--rate", "50"], venue="coinbase") as sim:
        code, output, summary = collect(sim, tmp_path, "DELISTED-USD", duration=2)
        stats = json.loads(urlopen(f"{sim.rest_url}/sim/stats", timeout=30).read())
    assert code == 3, output[-3000:]
    assert summary["invalid_symbols"] == ["DELISTED-USD"]
    assert "not listed or not trading" in output or "no frame received" in output, output
    assert stats["connections"] == []
