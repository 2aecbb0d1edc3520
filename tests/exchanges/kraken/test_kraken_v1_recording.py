"""Kraken WebSocket v1: the real recording (every checksum verified) and hand-written frames."""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import msgspec
import pytest

from hundi.accounting import Accounting
from hundi.capture.infer import infer_config, infer_exchange
from hundi.capture.reader import read_capture
from hundi.capture.replay import replay_events
from hundi.exchanges.base import (
    FrameStatus,
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestResponse,
    VenueConfig,
)
from hundi.exchanges.kraken import KrakenV1Protocol, KrakenVenue
from hundi.exchanges.kraken.capture import infer_capture
from hundi.records import ASK, Channel

V1_NOW = 1_534_614_336_000_000_000  # the hand-written frames' time (2018-08-18)
#: update frames (each with a checksum ``c``) in ../shared/recordings/KRAKEN.ws.50.0
RECORDED_CHECKSUMS = 4269


def test_the_recording_replays_with_every_checksum_verified(recordings_dir: Path) -> None:
    files = sorted(recordings_dir.glob("KRAKEN.*"))
    assert infer_exchange(files) == "kraken"
    config = infer_config(files, "kraken", None)
    assert config.options == {"api": "v1", "depth": "1000"}
    assert "XBT/CHF" in config.symbols and Channel.BOOK in config.channels
    protocol = KrakenVenue(config)
    assert isinstance(protocol, KrakenV1Protocol)
    accounting = Accounting()
    stats = replay_events(read_capture(files), protocol, lambda batch: None, accounting)
    assert stats.skipped == 0
    assert (stats.rest_answered, stats.rest_unused) == (1, 0)  # AssetPairs, asked and used
    assert protocol.invalid_symbols == []
    assert accounting.received == 4321 == accounting.processed + accounting.filtered
    assert accounting.rejected_total == 0
    assert protocol.checksums_verified == RECORDED_CHECKSUMS
    assert protocol.checksum_mismatches == 0
    assert all(book.synced for book in protocol.books())
    assert {b.symbol for b in protocol.books()} >= {"BTC-CHF", "KSM-BTC", "ADA-BTC"}


def test_infer_capture_needs_a_connection(tmp_path: Path) -> None:
    empty = tmp_path / "KRAKEN.ws.1.0"
    empty.write_text('1618678133.2949052: {"event":"heartbeat"}\n')
    with pytest.raises(ValueError, match="open no connection"):
        infer_capture([empty], None)
    with pytest.raises(ValueError, match="spot"):
        infer_capture([empty], "usdm")


def test_infer_capture_of_a_v2_capture(tmp_path: Path) -> None:
    sub = {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 25}}
    trade = {"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USD"]}}
    path = tmp_path / "KRAKEN.ws.1.0"
    path.write_text(
        "wss://ws.kraken.com/v2 <-> 1.0\n"
        f"wss://ws.kraken.com/v2 <- 1.1: {msgspec.json.encode(sub).decode()}\n"
        f"wss://ws.kraken.com/v2 <- 1.2: {msgspec.json.encode(trade).decode()}\n"
        '1.3: {"channel":"heartbeat"}\n'
    )
    config = infer_capture([path], None)
    assert config.options == {"api": "v2", "depth": "25"}
    assert config.symbols == ("BTC/USD",)
    assert config.channels == (Channel.BOOK, Channel.TRADES, Channel.EVENTS)


def v1() -> KrakenV1Protocol:
    config = VenueConfig(
        "spot", ("XBT/USD",), (Channel.BOOK,), options={"api": "v1", "depth": "10"}
    )
    protocol = KrakenVenue(config)
    assert isinstance(protocol, KrakenV1Protocol)
    return protocol


def frame(*items: object) -> bytes:
    return msgspec.json.encode(list(items))


SNAPSHOT = frame(
    42,
    {"as": [["5541.30000", "2.50700000", "1534614248.123678"],
            ["5541.80000", "0.33000000", "1534614098.345543"]],
     "bs": [["5541.20000", "1.52900000", "1534614248.765567"],
            ["5539.90000", "0.30000000", "1534614241.769870"]]},
    "book-10", "XBT/USD",
)  # fmt: skip


def test_v1_snapshot_update_and_republish() -> None:
    p = v1()
    out = RecordSink()
    assert p.receive("public", SNAPSHOT, V1_NOW, out) is FrameStatus.PROCESSED
    assert p.books()[0].synced and p.books()[0].symbol == "BTC-USD"
    assert [e.kind for e in out.events] == ["synced"]
    # ask 5541.3 deleted, 5541.5 republished ("r"); texts without "." and leading zeros
    asks = "554150000" + "100000000" + "554180000" + "33000000"
    bids = "554120000" + "152900000" + "553990000" + "30000000"
    update = frame(
        42,
        {"a": [["5541.30000", "0.00000000", "1534614335.345903"],
               ["5541.50000", "1.00000000", "1534614335.345903", "r"]]},
        {"b": [], "c": str(zlib.crc32((asks + bids).encode()))},
        "book-10", "XBT/USD",
    )  # fmt: skip
    out = RecordSink()
    assert p.receive("public", update, V1_NOW, out) is FrameStatus.PROCESSED
    assert p.checksums_verified == 1 and out.events == [], out.events
    assert [(r.side, r.price, r.size, r.snapshot) for r in out.book] == [
        (ASK, 5541.3, 0.0, False), (ASK, 5541.5, 1.0, False)
    ]  # fmt: skip
    assert out.book[0].ts == 1_534_614_335_345_903_000
    assert p.books()[0].best_ask == 5541.5 and p.books()[0].best_bid == 5541.2


def test_v1_checksum_mismatch_is_a_gap_and_a_resubscribe() -> None:
    p = v1()
    p.receive("public", SNAPSHOT, V1_NOW, RecordSink())
    out = RecordSink()
    bad = frame(42, {"a": [["5541.50000", "1.00000000", "1534614335.345903"]], "c": "1"},
                "book-10", "XBT/USD")  # fmt: skip
    p.receive("public", bad, V1_NOW, out)
    assert [e.kind for e in out.events] == ["gap", "resync"] and p.checksum_mismatches == 1
    sent = [msgspec.json.decode(m) for _, m in p.take_messages()]
    assert [(m["event"], m["pair"]) for m in sent] == [
        ("unsubscribe", ["XBT/USD"]), ("subscribe", ["XBT/USD"])
    ]  # fmt: skip
    assert p.receive("public", bad, V1_NOW, RecordSink()) is FrameStatus.FILTERED


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"nope", "malformed_json"),
        (b"[1,2]", "invalid_message"),
        (b'[1,{"a":[]},"book-10","ETH/USD"]', "unknown_symbol"),
        (b'[1,{"a":[["1","1","1","x"]],"c":"5"},"book-10","XBT/USD"]', "invalid_field"),
        (b'[1,{"a":[["1","1","1"]],"c":"abc"},"book-10","XBT/USD"]', "invalid_field"),
        (b'[1,[["1","1","1"]],"trade","XBT/USD"]', "invalid_message"),
        (b'[1,{"a":[]},"spread","XBT/USD"]', "unknown_message"),
        (b'{"event":"subscriptionStatus","status":"error","errorMessage":"Currency pair not'
         b' supported","pair":"XBT/USX"}', "subscription_failed"),
        (b'{"event":"fancy"}', "unknown_message"),
    ],
)  # fmt: skip
def test_v1_bad_frames_rejected_with_their_reason(data: bytes, reason: str) -> None:
    with pytest.raises(RejectedFrame) as caught:
        v1().receive("public", data, V1_NOW, RecordSink())
    assert caught.value.reason == reason


def test_v1_asks_asset_pairs_once_and_reports_unlisted_pairs() -> None:
    p = v1()
    (request,) = p.due_requests(V1_NOW)
    assert request.url == "https://api.kraken.com/0/public/AssetPairs"
    assert request.purpose is RestPurpose.SYMBOL_LISTING
    assert p.due_requests(V1_NOW + 1) == []  # asked: waiting for the answer
    out = RecordSink()
    p.receive_response(request, RestResponse(503, b"busy"), V1_NOW, out)
    assert out.events == [] and p.next_wakeup_ns() == V1_NOW + 10_000_000_000
    (again,) = p.due_requests(V1_NOW + 10_000_000_000)
    body = b'{"error":[],"result":{"ETHUSD":{"wsname":"ETH/USD","status":"online"}}}'
    p.receive_response(again, RestResponse(200, body), V1_NOW, out)
    assert [(e.kind, e.native_symbol, e.detail) for e in out.events] == [
        ("invalid_symbol", "XBT/USD", "KRAKEN does not list XBT/USD (AssetPairs wsname)")
    ]
    assert p.due_requests(V1_NOW + 10**12) == [] and p.next_wakeup_ns() is None


def test_hundi_replay_of_the_recording_exits_ok(recordings_dir: Path, tmp_path: Path) -> None:
    """The command line: exchange and config from the files, the AssetPairs answer used."""
    files = [str(p) for p in sorted(recordings_dir.glob("KRAKEN.*"))]
    summary_path = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, "-m", "hundi", "replay", *files, "--dry-run",
         "--summary-json", str(summary_path), "--quarantine", str(tmp_path / "q.jsonl")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "frames: received 4321, processed 4279, filtered 42, rejected 0" in done.stdout
    assert "outcome: ok" in done.stdout
