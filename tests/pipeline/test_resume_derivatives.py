"""Which new channels a restart checks for a hole: the steady derivative ticker stream is
watched; liquidations (sparse) and instruments (on listing changes only) are not."""

from __future__ import annotations

from pathlib import Path

from derivative_samples import PERP, SECOND, T0, instrument, liquidation, ticker
from hundi.pipeline.resume import WATCHED, RestartGaps
from hundi.records import Channel, Event
from hundi.stores.embedded import EmbeddedStore


def test_a_restart_gap_of_the_derivative_ticker_but_not_of_sparse_channels(
    tmp_path: Path,
) -> None:
    store = EmbeddedStore(str(tmp_path), fsync=False)
    store.write(
        {
            Channel.DERIVATIVE_TICKER: [ticker(T0 + i * SECOND, "markPrice") for i in range(5)],
            Channel.LIQUIDATIONS: [liquidation(T0, 1, 100.0, 1.0)],
            Channel.INSTRUMENTS: [instrument(T0, PERP)],
        }
    )
    store.close()
    gaps = RestartGaps([EmbeddedStore(str(tmp_path), fsync=False)])
    later = T0 + 600 * SECOND
    gaps.note(
        {
            Channel.DERIVATIVE_TICKER: [ticker(later, "markPrice")],
            Channel.LIQUIDATIONS: [liquidation(later, -1, 90.0, 2.0)],
            Channel.INSTRUMENTS: [instrument(later, PERP)],
        }
    )
    found = [e for e in gaps.take(wait_s=30) if isinstance(e, Event)]
    gaps.close()
    assert [(e.channel, e.expected, e.received) for e in found] == [("derivative_ticker", -1, -1)]
    assert "nothing received between" in found[0].detail
    assert Channel.LIQUIDATIONS not in WATCHED and Channel.INSTRUMENTS not in WATCHED
