"""Which new channels a restart checks for a hole: the steady derivative ticker stream is
watched; liquidations (sparse) cannot show the hole by their own rows, so where they were
stored for the symbol they get the gap a steady stream of the symbol shows; instruments (on
listing changes only) get none."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import hundi
from derivative_samples import PERP, SECOND, T0, instrument, liquidation, ticker
from hundi.pipeline.resume import SPARSE, WATCHED, RestartGaps
from hundi.records import Channel, Event, Record, Trade
from hundi.stores.base import StoreError, StoreUnavailable, StreamPosition
from hundi.stores.embedded import EmbeddedStore

LATER = T0 + 600 * SECOND


def restart_gaps(tmp_path: Path, before: dict[Channel, list[Record]]) -> list[Event]:
    store = EmbeddedStore(str(tmp_path), fsync=False)
    store.write(before)
    store.close()
    gaps = RestartGaps([EmbeddedStore(str(tmp_path), fsync=False)])
    gaps.note(
        {
            Channel.DERIVATIVE_TICKER: [ticker(LATER, "markPrice")],
            Channel.LIQUIDATIONS: [liquidation(LATER + SECOND, -1, 90.0, 2.0)],
            Channel.INSTRUMENTS: [instrument(LATER, PERP)],
        }
    )
    found = [e for e in gaps.take(wait_s=30) if isinstance(e, Event)]
    gaps.close()
    return found


def test_a_restart_gap_of_the_derivative_ticker_covers_the_liquidations_stored_before(
    tmp_path: Path,
) -> None:
    found = restart_gaps(
        tmp_path,
        {
            Channel.DERIVATIVE_TICKER: [ticker(T0 + i * SECOND, "markPrice") for i in range(5)],
            Channel.LIQUIDATIONS: [liquidation(T0, 1, 100.0, 1.0)],
            Channel.INSTRUMENTS: [instrument(T0, PERP)],
        },
    )
    assert [(e.channel, e.expected, e.received) for e in found] == [
        ("derivative_ticker", -1, -1),
        ("liquidations", -1, -1),
    ]
    assert "nothing received between" in found[0].detail
    # the span is the steady stream's (last ticker at T0+4 s), not the last liquidation's (T0)
    sparse = found[1]
    assert "00:00:04.000" in sparse.detail and "00:10:00.000" in sparse.detail
    assert "liquidations of that span were not received" in sparse.detail
    assert (sparse.ts, sparse.symbol) == (LATER, "BTC-USDT-PERP")
    assert Channel.LIQUIDATIONS not in WATCHED and Channel.INSTRUMENTS not in WATCHED
    assert Channel.LIQUIDATIONS in SPARSE and Channel.INSTRUMENTS not in SPARSE


def test_no_liquidation_gap_where_none_were_stored(tmp_path: Path) -> None:
    found = restart_gaps(
        tmp_path,
        {Channel.DERIVATIVE_TICKER: [ticker(T0 + i * SECOND, "markPrice") for i in range(5)]},
    )
    assert [e.channel for e in found] == ["derivative_ticker"]


def trade(at_ns: int, trade_id: int) -> Trade:
    return Trade(exchange="binance", **PERP, ts=at_ns, recv_ts=at_ns, trade_id=trade_id,
                 price=1.0, size=1.0, side=1, first_trade_id=trade_id,
                 last_trade_id=trade_id)  # fmt: skip


def test_a_sparse_gap_is_stored_once_per_symbol_and_run(tmp_path: Path) -> None:
    """Trades and the derivative ticker of a symbol both show the hole: one liquidation gap."""
    store = EmbeddedStore(str(tmp_path), fsync=False)
    store.write(
        {
            Channel.TRADES: [trade(T0, 1)],
            Channel.DERIVATIVE_TICKER: [ticker(T0, "markPrice")],
            Channel.LIQUIDATIONS: [liquidation(T0, 1, 100.0, 1.0)],
        }
    )
    store.close()
    gaps = RestartGaps([EmbeddedStore(str(tmp_path), fsync=False)])
    gaps.note(
        {
            Channel.TRADES: [trade(LATER, 50)],
            Channel.DERIVATIVE_TICKER: [ticker(LATER, "markPrice")],
        }
    )
    found = gaps.take(wait_s=30)
    gaps.close()
    assert sorted(e.channel for e in found) == ["derivative_ticker", "liquidations", "trades"]


def test_the_liquidation_gap_ends_at_the_run_s_start(tmp_path: Path) -> None:
    """This run started 5 s before its first markPrice: a liquidation it received meanwhile
    lies after the window, which read as covering the restart's hole (the window ended at the
    first steady record)."""
    store = EmbeddedStore(str(tmp_path), fsync=False)
    store.write(
        {
            Channel.DERIVATIVE_TICKER: [ticker(T0 + i * SECOND, "markPrice") for i in range(5)],
            Channel.LIQUIDATIONS: [liquidation(T0, 1, 100.0, 1.0)],
        }
    )
    store.close()
    started = LATER - 5 * SECOND
    own = liquidation(started + 2 * SECOND, 2, 95.0, 1.0)
    store = EmbeddedStore(str(tmp_path), fsync=False)
    gaps = RestartGaps([store], started_ns=started)
    try:
        gaps.note({Channel.DERIVATIVE_TICKER: [ticker(LATER, "markPrice")]})
        found = {e.channel: e for e in gaps.take(wait_s=30) if isinstance(e, Event)}
        gaps.close()
        assert "00:09:55.000" in found["liquidations"].detail
        store.write({Channel.LIQUIDATIONS: [own], Channel.EVENTS: list(found.values())})
    finally:
        store.close()
    ranges = hundi.coverage(str(tmp_path), "binance", channel="liquidations")
    assert list(ranges["ended_by"]) == ["gap"], ranges  # the gap is stamped at LATER
    assert int(ranges["covered"].sum()) == 0


class _Unreadable(EmbeddedStore):
    """An embedded store that cannot read where ``unreadable`` ended, raising ``error``."""

    unreadable: frozenset[Channel] = frozenset(WATCHED)
    error: type[StoreError] = StoreError

    def last_position(
        self, exchange: str, symbol: str, channel: Channel, before_ns: int
    ) -> StreamPosition | None:
        if channel in self.unreadable:
            raise self.error("chunk damaged" if self.error is StoreError else "cluster down")
        return super().last_position(exchange, symbol, channel, before_ns)


class _Down(_Unreadable):
    unreadable = frozenset(Channel)
    error = StoreUnavailable


@pytest.mark.parametrize(
    ("store", "liquidations_before", "expected"),
    [
        # the ticker's end unreadable (damaged), liquidations stored: both starts unknown
        (_Unreadable, True, ["derivative_ticker", "liquidations"]),
        # ...none stored: the ticker's alone
        (_Unreadable, False, ["derivative_ticker"]),
        # a store down for the whole run cannot tell: both, at the stop
        (_Down, False, ["derivative_ticker", "liquidations"]),
    ],
)
def test_a_steady_stream_s_unknown_start_gives_the_liquidations_theirs(
    tmp_path: Path, store: type[EmbeddedStore], liquidations_before: bool, expected: list[str]
) -> None:
    """The liquidations' check followed the steady stream's end only: with that end unknown
    their hole was silent (found by review)."""
    before: dict[Channel, list[Record]] = {Channel.DERIVATIVE_TICKER: [ticker(T0, "markPrice")]}
    if liquidations_before:
        before[Channel.LIQUIDATIONS] = [liquidation(T0, 1, 100.0, 1.0)]
    written = EmbeddedStore(str(tmp_path), fsync=False)
    written.write(before)
    written.close()
    gaps = RestartGaps([store(str(tmp_path), fsync=False)], started_ns=LATER)
    gaps.note(
        {
            Channel.TRADES: [trade(LATER, 50)],  # a second steady stream: one liquidation gap
            Channel.DERIVATIVE_TICKER: [ticker(LATER, "markPrice")],
        }
    )
    found = gaps.take(wait_s=30) + gaps.finish(wait_s=30)
    assert sorted(e.channel for e in found) == sorted(["trades", *expected]), found
    assert all("where the stream ended before this run is unknown" in e.detail for e in found)


class _StuckOnLiquidations(EmbeddedStore):
    """Answers where the ticker ended, then hangs on the liquidations (a long walk back)."""

    def __init__(self, root: str) -> None:
        super().__init__(root, fsync=False)
        self.asked = threading.Event()
        self.release = threading.Event()

    def last_position(
        self, exchange: str, symbol: str, channel: Channel, before_ns: int
    ) -> StreamPosition | None:
        if channel is Channel.LIQUIDATIONS:
            self.asked.set()
            self.release.wait(60)
        return super().last_position(exchange, symbol, channel, before_ns)


def test_a_look_up_given_up_while_telling_the_liquidations_still_gives_their_gap(
    tmp_path: Path,
) -> None:
    """The look-up had taken on the symbol's liquidations when the stop gave it up: its
    answer is discarded, so the stop gives their gap (none was given: found by review)."""
    written = EmbeddedStore(str(tmp_path), fsync=False)
    written.write(
        {
            Channel.DERIVATIVE_TICKER: [ticker(T0, "markPrice")],
            Channel.LIQUIDATIONS: [liquidation(T0, 1, 100.0, 1.0)],
        }
    )
    written.close()
    stuck = _StuckOnLiquidations(str(tmp_path))
    gaps = RestartGaps([stuck], started_ns=LATER)
    try:
        gaps.note({Channel.DERIVATIVE_TICKER: [ticker(LATER, "markPrice")]})
        assert stuck.asked.wait(60), "the liquidations were never asked about"
        found = gaps.finish(wait_s=0.1)
    finally:
        stuck.release.set()
    assert sorted(e.channel for e in found) == ["derivative_ticker", "liquidations"], found
