"""The real Binance recordings, replayed through the protocol: the online engine, fed
collector-like micro-batches on the recorded receive clock, equals the offline functions over
the same records read back from a store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hundi
from hundi.accounting import Accounting
from hundi.capture.infer import infer_config
from hundi.capture.reader import read_capture
from hundi.capture.replay import replay_events
from hundi.exchanges import venue_factory
from hundi.query import NotStored
from hundi.records import Channel, Record
from hundi.series import offline
from hundi.series.engine import SeriesEngine
from hundi.series.spec import parse_series
from hundi.stores.embedded import EmbeddedStore

pytestmark = pytest.mark.slow

DRAIN_NS = 500_000_000  # the collector drains every flush_interval / 2
S = 1_000_000_000


def replayed(files: Sequence[Path]) -> dict[Channel, list[Record]]:
    """Every record the protocol makes from the recording, per channel in emission order."""
    config = infer_config(files, "binance", None)
    records: dict[Channel, list[Record]] = {}

    def sink(batch: Mapping[Channel, Sequence[Record]]) -> None:
        for channel, part in batch.items():
            records.setdefault(channel, []).extend(part)

    replay_events(read_capture(files), venue_factory("binance")(config), sink, Accounting())
    return records


def drain_batches(
    records: dict[Channel, list[Record]], linger_s: int
) -> list[tuple[dict[Channel, list[Record]], int]]:
    """Collector-like drains every 0.5 s of receive clock, ``linger_s`` past the last record.

    A record was emitted no earlier than the latest receive time before it in emission order
    (buffered book diffs come out with the snapshot that arrives later), so that running
    maximum places it in its drain.
    """
    emitted = {c: np.maximum.accumulate([r.recv_ts for r in rs]) for c, rs in records.items()}
    first = min(int(e[0]) for e in emitted.values())
    last = max(int(e[-1]) for e in emitted.values())
    drains = np.arange(first + DRAIN_NS, last + linger_s * S, DRAIN_NS)
    cuts = {c: np.searchsorted(e, drains, side="right") for c, e in emitted.items()}
    batches = []
    for k, now in enumerate(drains):
        batch = {}
        for channel, ends in cuts.items():
            start = int(ends[k - 1]) if k else 0
            if ends[k] > start:
                batch[channel] = records[channel][start : int(ends[k])]
        batches.append((batch, int(now)))
    return batches


def run_online(
    spec: str, batches: list[tuple[dict[Channel, list[Record]], int]]
) -> dict[Channel, list[Record]]:
    engine = SeriesEngine([(None, parse_series(spec))])
    out: dict[Channel, list[Record]] = {}
    for batch, now in batches:
        for channel, made in engine.process(batch, now).items():
            out.setdefault(channel, []).extend(made)
    assert engine.late == 0
    return out


@pytest.mark.parametrize(
    ("name", "pair"),
    [
        ("BINANCE", ("NKN-USDT", "LRC-BTC")),
        ("BINANCE_FUTURES", ("SUSHI-USDT-PERP", "CTK-USDT-PERP")),
    ],
)
def test_recordings_online_equals_offline(
    name: str, pair: tuple[str, str], recordings_dir: Path, tmp_path: Path
) -> None:
    files = sorted(recordings_dir.glob(f"{name}.*"))
    records = replayed(files)
    symbols = sorted({r.symbol for r in records[Channel.TRADES] + records[Channel.BOOK]})
    spec = (
        f"bars:1s,bars:1m,ticks:10,volume:1,book:10@1s,book:5@100ms,flow:5s@1s,"
        f"basis:{pair[0]}/{pair[1]}@1s,grace:250ms"
    )
    online = run_online(spec, drain_batches(records, linger_s=3))
    store = EmbeddedStore(str(tmp_path / "store"))
    store.write(records)
    store.write(online)
    store.close()

    def read(channel: str, symbol: str) -> pd.DataFrame:
        frame: pd.DataFrame = hundi.read(
            tmp_path / "store", exchange="binance", symbol=symbol, channel=channel
        )
        return frame

    compared = 0
    for symbol in symbols:
        book = read("book", symbol)
        try:
            trades = read("trades", symbol)
        except NotStored:  # no trades of it in the recording (BLZ-ETH): no trade bars either
            with pytest.raises(NotStored):
                read("bars", symbol)
            trades = None
        if trades is not None:
            bars = read("bars", symbol)
            for interval in ("1s", "1m"):
                mine = bars[bars["interval"] == interval]
                if len(mine):
                    end = mine["close_time"].iloc[-1]
                    again = offline.time_bars(trades, interval, grace="250ms", end=end)
                    pd.testing.assert_frame_equal(mine, again, check_exact=True)
                    compared += len(mine)
            for label, again in (
                ("ticks:10", offline.tick_bars(trades, 10)),
                ("volume:1", offline.volume_bars(trades, 1.0)),
            ):
                mine = bars[bars["interval"] == label]
                pd.testing.assert_frame_equal(mine, again, check_exact=True)
                compared += len(again)
            seconds = bars[bars["interval"] == "1s"]
            if len(seconds):
                end = seconds["close_time"].iloc[-1]
                again = offline.flow(trades, "5s", "1s", grace="250ms", end=end)
                pd.testing.assert_frame_equal(read("flow", symbol), again, check_exact=True)
        tops, levels = read("book_top", symbol), read("book_levels", symbol)
        for depth, interval in ((10, "1s"), (5, "100ms")):
            mine = tops[(tops["depth"] == depth) & (tops["interval"] == interval)]
            again = offline.book_snapshots(book, depth, interval)
            pd.testing.assert_frame_equal(mine, again, check_exact=True)
            mine = levels[(levels["depth"] == depth) & (levels["interval"] == interval)]
            again = offline.book_levels(book, depth, interval)
            pd.testing.assert_frame_equal(mine, again, check_exact=True)
            compared += len(mine)
    pair_frame = read("basis", f"{pair[0]}_{pair[1]}")
    again = offline.basis(
        read("bbo", pair[0]), read("bbo", pair[1]), "1s", grace="250ms", end=pair_frame.index[-1]
    )
    pd.testing.assert_frame_equal(pair_frame, again, check_exact=True)
    assert compared > 500 and len(pair_frame) > 3
