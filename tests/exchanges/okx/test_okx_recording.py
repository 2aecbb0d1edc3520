"""The real OKX recording (``../shared/recordings/OKX.*``, v5, May 2022: WS snapshots and
non-zero CRC32 checksums): replayed as ``hundi replay`` does, every checksum verifies."""

from __future__ import annotations

from pathlib import Path

import pytest

from hundi.accounting import Accounting
from hundi.capture.infer import infer_config, infer_exchange
from hundi.capture.reader import read_capture
from hundi.capture.replay import Batch, replay_events
from hundi.exchanges.okx import OkxVenue
from hundi.exchanges.okx.capture import infer_capture
from hundi.exchanges.okx.protocol import OkxProtocol
from hundi.records import Channel

# Counted in the file: 290 ``books`` pushes (3 snapshots + 287 updates), each with a checksum.
CHECKSUMS = 290


def replay(recordings_dir: Path) -> tuple[OkxProtocol, Accounting, list[Batch]]:
    files = sorted(recordings_dir.glob("OKX.*"))
    assert infer_exchange(files) == "okx"
    config = infer_config(files, "okx", None)
    protocol = OkxVenue(config)
    accounting = Accounting()
    batches: list[Batch] = []
    replay_events(read_capture(files), protocol, batches.append, accounting)
    return protocol, accounting, batches


def test_inferred_config(recordings_dir: Path) -> None:
    config = infer_capture(sorted(recordings_dir.glob("OKX.*")), None)
    assert config.market == "spot,swap,futures"
    assert config.symbols == ("BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT")
    assert set(config.channels) == {Channel.TICKER, Channel.TRADES, Channel.BOOK, Channel.EVENTS}
    with pytest.raises(ValueError, match="not spot"):
        infer_capture(sorted(recordings_dir.glob("OKX.*")), "spot")


def test_every_checksum_verifies(recordings_dir: Path) -> None:
    protocol, accounting, batches = replay(recordings_dir)
    books = list(protocol.book_of.values())
    assert sum(b.checksums_verified for b in books) == CHECKSUMS
    assert sum(b.checksum_mismatches for b in books) == 0
    assert all(b.synced for b in books)
    assert accounting.received == 410
    assert (accounting.processed, accounting.filtered, accounting.rejected_total) == (392, 18, 0)
    events = [e for batch in batches for e in batch.get(Channel.EVENTS, [])]
    assert [e.kind for e in events] == ["synced"] * 3  # no gap anywhere
    trades = [t for batch in batches for t in batch.get(Channel.TRADES, [])]
    assert len(trades) == 74
    assert {t.symbol for t in trades} == {"BTC-USDT", "UNI-USD-PERP", "BTC-USD-20220527"}


def test_no_infer_without_subscriptions(tmp_path: Path) -> None:
    f = tmp_path / "OKX.ws.1.0"
    f.write_text("wss://ws.okx.com:8443/ws/v5/public <-> 1652459224.5\n")
    with pytest.raises(ValueError, match="no subscribe messages"):
        infer_capture([f], None)
    empty = tmp_path / "OKX.0"
    empty.write_text("")
    with pytest.raises(ValueError, match="open no connection"):
        infer_capture([empty], None)
