"""The real Bitstamp recording (``../shared/recordings/BITSTAMP.*``, 2022-01): replayed as
``hundi replay`` does, every frame accounted, the books synced from the recording's own REST
snapshots by microtimestamp, none crossed, nothing broken."""

from __future__ import annotations

import math
from pathlib import Path

from hundi.accounting import Accounting
from hundi.capture.infer import infer_config, infer_exchange
from hundi.capture.reader import read_capture
from hundi.capture.replay import Batch, replay_events
from hundi.exchanges.bitstamp import BitstampVenue
from hundi.exchanges.bitstamp.capture import infer_capture
from hundi.records import Channel

PAIRS = ("sgbeur", "ethusd", "xrpeur", "bateur", "usdteur", "usdtusd", "xlmgbp", "adaeur",
         "batbtc", "galaeur")  # fmt: skip


def files(recordings_dir: Path) -> list[Path]:
    return sorted(recordings_dir.glob("BITSTAMP.*"))


def test_the_capture_says_its_pairs_and_channels(recordings_dir: Path) -> None:
    found = files(recordings_dir)
    assert infer_exchange(found) == "bitstamp"
    config = infer_capture(found, None)
    assert config.symbols == PAIRS
    assert config.channels == (Channel.BOOK, Channel.TRADES, Channel.EVENTS)


def test_recording_replays_synced_accounted_and_unbroken(recordings_dir: Path) -> None:
    found = files(recordings_dir)
    protocol = BitstampVenue(infer_config(found, "bitstamp", None))
    accounting = Accounting()
    batches: list[Batch] = []
    stats = replay_events(read_capture(found), protocol, batches.append, accounting)

    assert (accounting.received, accounting.processed, accounting.filtered) == (747, 727, 20)
    assert accounting.rejected_total == 0
    # one unanswered: SGB-EUR's second snapshot, asked to confirm its held one (no diff came)
    assert (stats.rest_answered, stats.rest_unanswered, stats.rest_unused) == (11, 1, 0)
    records = {c: [r for b in batches for r in b.get(c, ())] for c in Channel}
    assert len(records[Channel.TRADES]) == 10
    assert {t.trade_id for t in records[Channel.TRADES]} >= {216000477, 216000484, 216000485}
    events = records[Channel.EVENTS]
    assert [e.kind for e in events] == ["synced"] * 9  # no gap, no stale snapshot, no resync
    books = {b.symbol: b for b in protocol.books()}
    # SGB-EUR sent no diff in the 31 s: its snapshot waits for one to vouch for it
    assert not books["SGB-EUR"].synced
    synced = [b for b in books.values() if b.synced]
    assert len(synced) == 9
    assert all(not math.isnan(b.best_bid) and b.best_bid < b.best_ask for b in synced)
    eth = protocol.book("ethusd")
    assert eth.snapshots_used == 1 and eth.snapshots_refused == 0 and eth.diffs_covered == 12
    diff_rows = [r for r in records[Channel.BOOK] if not r.snapshot]
    assert all(r.update_id > r.prev_update_id for r in diff_rows)
