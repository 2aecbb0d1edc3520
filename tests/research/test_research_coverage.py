"""Coverage: stored ranges per stream, split at stored gaps, with resyncs and reconnects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from researchrows import MIDNIGHT, MS, event, trade, write
from researchsim import collect

import hundi
from hundi.query import NotStored
from hundi.records import ASK, BID, BookChange, Channel
from hundi.research import ResearchError, coverage


def test_ranges_split_at_gaps_and_count_what_happened_inside(tmp_path: Path) -> None:
    t0 = MIDNIGHT - 10_000 * MS
    first = [trade(t0 + i * MS, i, 100.0) for i in range(1, 11)]
    second = [trade(t0 + 100 * MS + i * MS, i, 101.0) for i in range(15, 21)]
    events = [
        event(t0 + 5 * MS, "reconnect", "", symbol=""),
        event(second[0].ts, "gap", "trades", expected=11, received=15, detail="ids 11..14 lost"),
        event(t0 + 200 * MS, "resync", "book"),  # another stream's event: not counted here
    ]
    store = write(tmp_path / "data", {Channel.TRADES: first + second, Channel.EVENTS: events})
    ranges = coverage(store, "binance", channel="trades")
    assert isinstance(ranges.index, pd.DatetimeIndex) and str(ranges.index.tz) == "UTC"
    assert list(ranges["rows"]) == [10, 6]
    assert list(ranges["ended_by"]) == ["gap", ""]
    assert list(ranges["missing_ids"]) == [4, -1]
    assert ranges["gap_detail"].iloc[0] == "ids 11..14 lost"
    assert list(ranges["reconnects"]) == [1, 0]
    assert list(ranges["resyncs"]) == [0, 0]
    assert ranges.index[0] == pd.Timestamp(first[0].ts, unit="ns", tz="UTC")
    assert ranges["end"].iloc[1] == pd.Timestamp(second[-1].ts, unit="ns", tz="UTC")
    streams = coverage(store, by="stream")  # every exchange of the store
    row = streams[streams["channel"] == "trades"].iloc[0]
    assert (row["rows"], row["ranges"], row["gaps"], row["reconnects"]) == (16, 2, 1, 1)
    assert set(streams["channel"]) == {"trades"}  # events are the explanation, not a stream
    # a window keeps only what is inside it
    inside = coverage(
        store, "binance", channel="trades", start=pd.Timestamp(second[0].ts, unit="ns", tz="UTC")
    )
    assert list(inside["rows"]) == [6]


def test_a_pair_s_gaps_over_one_hole_are_one_range_end_counting_the_ids_none_stored(
    tmp_path: Path,
) -> None:
    """Found by review: both collectors lost ids 11..14; the slower one's gap ran to 20 over
    ids the other stored. Coverage ended two ranges (one of 2 rows) and counted 4 + 10
    missing ids; there is one hole of 4."""
    t0 = MIDNIGHT - 10_000 * MS
    rows = [trade(t0 + i * MS, i, 100.0) for i in [*range(1, 11), *range(15, 31)]]
    at = rows[10].ts  # id 15
    events = [
        event(at, "gap", "trades", expected=11, received=15, detail="A: ids 11..14 lost"),
        event(at + 5 * MS, "gap", "trades", expected=9, received=21, detail="B: ids 9..20"),
    ]
    store = write(tmp_path / "data", {Channel.TRADES: rows, Channel.EVENTS: events})
    ranges = coverage(store, "binance", channel="trades")
    assert list(ranges["rows"]) == [10, 16]
    assert list(ranges["ended_by"]) == ["gap", ""]
    assert list(ranges["missing_ids"]) == [4, -1]
    assert list(ranges["covered"]) == [0, 1]  # B's, as the same hole


@pytest.mark.parametrize("fetched_by", [("A",), ("A", "B")])
def test_a_pair_s_hole_fetched_back_is_still_one_hole(
    tmp_path: Path, fetched_by: tuple[str, ...]
) -> None:
    """Found by a second review: both members of a Binance pair fetch their own gaps back, and
    the fetched ids made B's wider gap a second hole (missing 4 + 12)."""
    t0 = MIDNIGHT - 10_000 * MS
    rows = [trade(t0 + i * MS, i, 100.0) for i in range(1, 31)]  # 11..14 fetched back
    at = rows[14].ts
    ranges_of = {"A": (11, 15), "B": (9, 21)}
    events = [
        event(at, "gap", "trades", expected=11, received=15, detail="A: ids 11..14 lost"),
        event(at + 5 * MS, "gap", "trades", expected=9, received=21, detail="B: ids 9..20"),
    ]
    for member in fetched_by:
        low, high = ranges_of[member]
        events.append(
            event(at + 6 * MS, "backfilled", "trades", expected=low, received=high, detail=member)
        )
    store = write(tmp_path / "data", {Channel.TRADES: rows, Channel.EVENTS: events})
    ranges = coverage(store, "binance", channel="trades")
    assert list(ranges["ended_by"]) == ["gap", ""]
    assert list(ranges["missing_ids"]) == [4, -1]
    assert list(ranges["recovered_ids"]) == [4, -1]
    assert list(ranges["covered"]) == [0, 1]


def test_a_clean_stop_ends_the_last_range_as_stopped_and_the_book_with_it(tmp_path: Path) -> None:
    """A clean stop is a ``stopped`` event, not a gap: coverage says the last range ended by
    the stop (not "gap", not ""), ranges before a real gap still end by it, and book_at knows
    no book after the stop (its book event is ``stopped``)."""
    t0 = MIDNIGHT - 10_000 * MS
    first = [trade(t0 + i * MS, i, 100.0) for i in range(1, 6)]
    second = [trade(t0 + 100 * MS + i * MS, i, 101.0) for i in range(9, 12)]
    stop_at = second[-1].ts + 50 * MS
    events = [
        event(second[0].ts, "gap", "trades", expected=6, received=9, detail="ids 6..8 lost"),
        event(stop_at, "stopped", "", symbol="", detail="spot-public-0: collector stopping"),
    ]
    store = write(tmp_path / "data", {Channel.TRADES: first + second, Channel.EVENTS: events})
    ranges = coverage(store, "binance", channel="trades")
    assert list(ranges["ended_by"]) == ["gap", "stopped"]
    # data after the stop (the next run) is not ended by that stop
    later = [trade(stop_at + 10 * MS + i * MS, i, 102.0) for i in range(12, 14)]
    write(store, {Channel.TRADES: later})
    assert list(coverage(store, "binance", channel="trades")["ended_by"]) == ["gap", ""]

    book_store = tmp_path / "book"
    snapshot = [
        BookChange(
            exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=t0, recv_ts=t0,
            side=side, price=price, size=1.0, snapshot=True, first_update_id=-1, update_id=10,
            prev_update_id=-1,
        )
        for side, price in ((BID, 99.0), (ASK, 101.0))
    ]  # fmt: skip
    stopped = event(t0 + 1000 * MS, "stopped", "book", expected=11, detail="collector stopping")
    write(book_store, {Channel.BOOK: snapshot, Channel.EVENTS: [stopped]})
    assert hundi.book_at(book_store, "binance", "BTC-USDT", t0 + 500 * MS).attrs["synced"]
    assert not hundi.book_at(book_store, "binance", "BTC-USDT", t0 + 2000 * MS).attrs["synced"]
    book_ranges = coverage(book_store, "binance", channel="book")
    assert list(book_ranges["ended_by"]) == ["stopped"]


def test_simulator_streams_are_whole_and_counted(sim_stores: dict[str, Path]) -> None:
    store = sim_stores["usdm"]
    streams = coverage(store, "binance", by="stream")
    assert set(streams["channel"]) >= {"trades", "bbo", "book", "ticker"}
    for row in streams.itertuples():
        stored = hundi.read(store, exchange="binance", symbol=row.symbol, channel=row.channel)
        assert row.rows == len(stored), row
        assert row.Index == stored.index[0] and row.last == stored.index[-1]
        assert row.ranges == 1
    # no gap at all: the collector's clean stop (--duration) ends every stream's one range
    ranges = coverage(store, "binance")
    assert set(ranges["ended_by"]) == {"stopped"}, ranges[["channel", "ended_by", "gap_detail"]]


@pytest.mark.slow
def test_a_real_gap_fault_shows_up_as_two_book_ranges(tmp_path: Path) -> None:
    store = tmp_path / "data"
    collect("spot", store, seconds=3, seed=9, fault="gap:1")
    events = hundi.read(store, exchange="binance", channel="events")
    book_gaps = events[(events["kind"] == "gap") & (events["channel"] == "book")]
    assert len(book_gaps) >= 1
    ranges = coverage(store, "binance", channel="book")
    for symbol, mine in ranges.groupby("symbol"):
        expected = book_gaps[book_gaps["symbol"] == symbol]
        assert (mine["ended_by"] == "gap").sum() == len(expected), symbol
        assert mine["rows"].sum() == len(
            hundi.read(store, exchange="binance", symbol=str(symbol), channel="book")
        )
        if len(expected):
            assert mine["resyncs"].sum() >= len(expected)  # each gap was followed by a resync


def test_bad_arguments(tmp_path: Path) -> None:
    store = write(tmp_path / "data", {Channel.TRADES: [trade(MIDNIGHT, 1, 1.0)]})
    with pytest.raises(ResearchError, match="by must be"):
        coverage(store, by="day")
    with pytest.raises(ValueError, match="unknown channel"):
        coverage(store, channel="nope")
    with pytest.raises(NotStored, match="holds no exchange 'kraken'"):  # was an empty table
        coverage(store, "kraken")


@pytest.mark.slow
def test_a_network_store_lists_and_covers_like_the_embedded_one(
    cassandra_keyspace: str, tmp_path: Path
) -> None:
    """Through the store contract: Cassandra's partition index lists exchanges, channels,
    symbols and days, so coverage needs neither an exchange nor a channel."""
    from hundi.stores.base import open_store

    t0 = MIDNIGHT - 10_000 * MS
    # across midnight; id 12 is really missing (a stored id would cover the gap: merge rule)
    trades = [trade(t0 + i * 1000 * MS, i, 100.0) for i in range(1, 21) if i != 12]
    trades += [trade(t0 + i * MS, i, 50.0, symbol="ETH-USDT") for i in range(1, 6)]
    events = [event(trades[11].ts, "gap", "trades", expected=12, received=13, detail="lost")]
    batch = {Channel.TRADES: trades, Channel.EVENTS: events}
    embedded = write(tmp_path / "data", batch)
    target = open_store(cassandra_keyspace)
    try:
        target.write(batch)
    finally:
        target.close()
    for by in ("range", "stream"):
        expected = coverage(embedded, by=by)
        got = coverage(cassandra_keyspace, by=by)
        assert len(expected) == (3 if by == "range" else 2)
        pd.testing.assert_frame_equal(got, expected)


def _pair_store(
    tmp: Path,
    lost: set[int],
    gaps: list[tuple[str, int, int]],
    backfills: tuple[tuple[str, int, int], ...] = (),
) -> Path:
    """Trades 1..399 but ``lost``, the members' gaps (at their ``received`` id) and fetches."""
    t0 = MIDNIGHT - 10_000 * MS
    rows = [trade(t0 + i * MS, i, 100.0) for i in range(1, 400) if i not in lost]
    events = [
        event(t0 + hi * MS, "gap", "trades", expected=lo, received=hi, detail=who)
        for who, lo, hi in gaps
    ]
    events += [
        event(t0 + 390 * MS, "backfilled", "trades", expected=lo, received=hi, detail=who)
        for who, lo, hi in backfills
    ]
    return write(tmp / "data", {Channel.TRADES: rows, Channel.EVENTS: events})


def test_one_long_outage_over_two_short_ones_is_two_holes(tmp_path: Path) -> None:
    """Found by a third review: A lost 100..199 and 250..259, B (one outage) 150..299; no one
    stored 150..199 and 250..259: two holes of 60 ids, not three of 120."""
    store = _pair_store(
        tmp_path, {*range(150, 200), *range(250, 260)}, [("A1", 100, 200), ("A2", 250, 260),
                                                         ("B", 150, 300)],
    )  # fmt: skip
    row = coverage(store, "binance", channel="trades", by="stream").iloc[0]
    assert (row["gaps"], row["missing_ids"], row["covered"]) == (2, 60, 1)


def test_a_backfill_does_not_count_ids_the_other_member_stored(tmp_path: Path) -> None:
    """Found by a third review: A lost 100..199, B 150..259; both lost 150..199. Once A fetched
    its gap back, 100..149 (which B stored live) counted as missing too."""
    plain = _pair_store(tmp_path / "plain", set(range(150, 200)), [("A", 100, 200),
                                                                  ("B", 150, 260)])  # fmt: skip
    fetched = _pair_store(
        tmp_path / "fetched", set(), [("A", 100, 200), ("B", 150, 260)], (("A", 100, 200),)
    )
    a = coverage(plain, "binance", channel="trades", by="stream").iloc[0]
    b = coverage(fetched, "binance", channel="trades", by="stream").iloc[0]
    assert (a["gaps"], a["missing_ids"]) == (1, 50)
    assert (b["gaps"], b["missing_ids"], b["recovered_ids"]) == (1, 50, 50)


def test_a_lone_collector_s_many_gaps_stay_holes_and_are_judged_fast(tmp_path: Path) -> None:
    """20,000 gaps of one collector never overlap: each its own hole (the pair rule once
    rebuilt its id runs per overlap check and compared every gap with every hole)."""
    from hundi.stores.merge import trade_holes

    ids = np.arange(0, 3_000_000, dtype=np.int64)
    ids = ids[ids % 150 != 7]  # one id of every 150 lost
    expected = np.arange(7, 3_000_000, 150, dtype=np.int64)[:20_000]
    covered, low, high, absent = trade_holes(ids, expected, expected + 1)
    assert not covered.any() and (low == expected).all() and (high == expected + 1).all()
    assert (absent == 1).all()
