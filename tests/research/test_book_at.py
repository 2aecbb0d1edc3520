"""``book_at`` must equal replaying every stored change with ts <= T from the last snapshot.

Checked on simulator data (spot and USD-M), on the real Binance recordings replayed through
the package's own venue code, against the collector's own final book, and on hand-made rows
that cross a UTC day while the book is resyncing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from bookreplay import as_dict, replay_book

import hundi
from hundi.accounting import Accounting
from hundi.capture.infer import infer_config
from hundi.capture.reader import read_capture
from hundi.capture.replay import Batch, replay_events
from hundi.exchanges import venue_factory
from hundi.records import ASK, BID, BookChange, Channel, Event, EventKind, Trade
from hundi.research import NotStored, ResearchError, book_at, trades_with_book
from hundi.research import book as book_module
from hundi.stores.embedded import EmbeddedStore


def probe_times(rows: pd.DataFrame, count: int = 40) -> list[pd.Timestamp]:
    """Row times spread over the data, ±1 ns around some, and before the first row."""
    stamps = [*rows.index[:: max(1, len(rows) // count)], rows.index[-1]]
    one = pd.Timedelta(1, "ns")
    stamps += [t + one for t in stamps[::4]] + [t - one for t in stamps[::4]]
    return [rows.index[0] - one, *stamps]


def assert_matches_reference(store: Path, symbol: str, every: int, cache: Path) -> int:
    rows = hundi.read(store, exchange="binance", symbol=symbol, channel="book")
    assert len(rows) > 0
    checked = 0
    for at in probe_times(rows):
        expected, synced = replay_book(rows, at)
        got = book_at(store, "binance", symbol, at, checkpoint_rows=every, cache_dir=cache)
        assert as_dict(got) == expected, (symbol, at)
        assert got.attrs["synced"] == synced, (symbol, at)
        checked += 1
    return checked


@pytest.mark.parametrize("market", ["spot", "usdm"])
@pytest.mark.slow
def test_equals_replay_from_last_snapshot_on_simulator_data(
    market: str, sim_stores: dict[str, Path], tmp_path: Path
) -> None:
    symbol = "BTC-USDT" if market == "spot" else "ETH-USDT-PERP"
    # small checkpoint spacing: most probes start from a mid-day checkpoint
    assert assert_matches_reference(sim_stores[market], symbol, 40, tmp_path / "c") > 40
    assert list((tmp_path / "c").rglob("*.levels.parquet"))


def test_book_is_sorted_best_first_and_not_crossed(sim_stores: dict[str, Path]) -> None:
    store = sim_stores["spot"]
    last = hundi.read(store, exchange="binance", symbol="ETH-USDT", channel="book").index[-1]
    book = book_at(store, "binance", "ETH-USDT", last)
    bids, asks = book[book["side"] == BID], book[book["side"] == ASK]
    assert bids["price"].is_monotonic_decreasing and asks["price"].is_monotonic_increasing
    assert bids["price"].iloc[0] < asks["price"].iloc[0]
    assert (book["size"] > 0).all()
    assert list(bids["level"]) == list(range(len(bids)))
    assert isinstance(book.index, pd.DatetimeIndex) and str(book.index.tz) == "UTC"
    assert (book.index <= last).all()
    top = book_at(store, "binance", "ETH-USDT", last, depth=2)
    assert len(top) == 4 and as_dict(top).items() <= as_dict(book).items()
    assert book_at(store, "binance", "ETH-USDT", "2000-01-01").empty  # before any data


def replay_recording(files: list[Path], store: Path) -> list[object]:
    """Replay a recording into ``store`` with the package's venue code; the final books."""
    config = infer_config(files, "binance", None)
    protocol = venue_factory("binance")(config)
    target = EmbeddedStore(str(store), fsync=False)

    def sink(batch: Batch) -> None:
        target.write(batch)

    replay_events(read_capture(files), protocol, sink, Accounting())
    target.close()
    return list(protocol.books())


@pytest.mark.parametrize("name", ["BINANCE", "BINANCE_FUTURES"])
@pytest.mark.slow
def test_equals_replay_and_the_collectors_book_on_real_recordings(
    name: str, recordings_dir: Path, tmp_path: Path
) -> None:
    store = tmp_path / "data"
    books = replay_recording(sorted(recordings_dir.glob(f"{name}.*")), store)
    assert books
    for state in books:
        symbol = state.symbol  # type: ignore[attr-defined]
        assert assert_matches_reference(store, symbol, 200, tmp_path / "c") > 20
        rows = hundi.read(store, exchange="binance", symbol=symbol, channel="book")
        final = book_at(store, "binance", symbol, rows.index.max())
        bids, asks = final[final["side"] == BID], final[final["side"] == ASK]
        # what the live order-book code ended with
        assert final.attrs["synced"] == state.synced  # type: ignore[attr-defined]
        assert final.attrs["update_id"] == state.last_update_id  # type: ignore[attr-defined]
        assert (len(bids), len(asks)) == (state.bids, state.asks)  # type: ignore[attr-defined]
        assert bids["price"].iloc[0] == state.best_bid  # type: ignore[attr-defined]
        assert asks["price"].iloc[0] == state.best_ask  # type: ignore[attr-defined]


# --- hand-made rows: a resync across midnight -----------------------------------------------

DAY2 = int(datetime(2024, 5, 2, tzinfo=UTC).timestamp()) * 1_000_000_000
DAY2_DATE = datetime(2024, 5, 2, tzinfo=UTC).date()
MS = 1_000_000


def change(ts: int, side: int, price: float, size: float, u: int, *, first: int = -1,
           snapshot: bool = False) -> BookChange:  # fmt: skip
    return BookChange(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=ts,
        side=side, price=price, size=size, snapshot=snapshot,
        first_update_id=-1 if snapshot else first, update_id=u, prev_update_id=-1,
    )  # fmt: skip


def spot_message(
    ts: int, first: int, last: int, levels: list[tuple[int, float, float]]
) -> list[BookChange]:
    return [change(ts, side, price, size, last, first=first) for side, price, size in levels]


def midnight_rows() -> list[BookChange]:
    """Day 1: snapshot 100 and diffs 101..110; then a gap (next diffs start at 120), buffered
    diffs of the next epoch stamped just before midnight, whose snapshot (id 121) is fetched
    just after midnight; day 2 continues that epoch."""
    t0 = DAY2 - 3_600_000 * MS
    rows = [
        change(t0, BID, 99.0, 1.0, 100, snapshot=True),
        change(t0, ASK, 101.0, 1.0, 100, snapshot=True),
    ]
    for i, u in enumerate(range(101, 111)):
        rows += spot_message(
            t0 + (i + 1) * 1000 * MS, u, u, [(BID, 99.0 - i * 0.5, 2.0 + i), (ASK, 101.0, 1.0 + i)]
        )
    rows += spot_message(t0 + 20_000 * MS, 111, 111, [(BID, 98.5, 0.0)])
    # after the gap: 120..122 buffered (stamped day 1), snapshot 121 arrives after midnight
    rows += spot_message(DAY2 - 200 * MS, 120, 122, [(BID, 97.0, 5.0), (ASK, 102.0, 3.0)])
    rows += spot_message(DAY2 - 100 * MS, 123, 123, [(ASK, 101.5, 4.0)])
    rows += [change(DAY2 + 100 * MS, BID, 96.0, 1.0, 121, snapshot=True),
             change(DAY2 + 100 * MS, ASK, 103.0, 1.0, 121, snapshot=True)]  # fmt: skip
    for i, u in enumerate(range(124, 140)):
        rows += spot_message(
            DAY2 + (i + 2) * 100 * MS, u, u, [(BID, 96.0 + (i % 3) * 0.25, 1.0 + i)]
        )
    return rows  # fmt: skip


@pytest.mark.slow
def test_resync_across_midnight_uses_the_rows_buffered_the_day_before(tmp_path: Path) -> None:
    store = tmp_path / "data"
    target = EmbeddedStore(str(store), fsync=False)
    rows = midnight_rows()
    target.write({Channel.BOOK: rows[: len(rows) // 2]})
    target.flush()
    target.write({Channel.BOOK: rows[len(rows) // 2 :]})
    target.close()
    stored = hundi.read(store, exchange="binance", symbol="BTC-USDT", channel="book")
    assert len({ts.date() for ts in stored.index}) == 2
    for every in (1, 3, 1000):
        book_module._CACHES.clear()
        assert assert_matches_reference(store, "BTC-USDT", every, tmp_path / f"c{every}") > 30
    # just before midnight the old book is frozen (unsynced); after the snapshot, the buffered
    # diffs of the day before are applied on top of it
    before = book_at(store, "binance", "BTC-USDT", DAY2 - 1)
    assert not before.attrs["synced"] and as_dict(before)[(BID, 99.0)] == 2.0
    after = book_at(store, "binance", "BTC-USDT", DAY2 + 100 * MS)
    assert after.attrs["synced"] and after.attrs["update_id"] == 123
    assert as_dict(after) == {(BID, 96.0): 1.0, (BID, 97.0): 5.0, (ASK, 101.5): 4.0,
                              (ASK, 102.0): 3.0, (ASK, 103.0): 1.0}  # fmt: skip


def test_new_rows_invalidate_the_checkpoints_and_the_disk_cache_is_reused(tmp_path: Path) -> None:
    store = tmp_path / "data"
    cache = tmp_path / "cache"
    rows = midnight_rows()
    target = EmbeddedStore(str(store), fsync=False)
    target.write({Channel.BOOK: rows[:-5]})
    target.flush()
    last = rows[-1].ts
    early = book_at(store, "binance", "BTC-USDT", last, checkpoint_rows=4, cache_dir=cache)
    book_module._CACHES.clear()  # a new process: the indexes come from disk
    files_before = sorted(cache.rglob("*.parquet"))
    again = book_at(store, "binance", "BTC-USDT", last, checkpoint_rows=4, cache_dir=cache)
    assert as_dict(again) == as_dict(early)
    assert sorted(cache.rglob("*.parquet")) == files_before
    target.write({Channel.BOOK: rows[-5:]})
    target.close()
    late = book_at(store, "binance", "BTC-USDT", last, checkpoint_rows=4, cache_dir=cache)
    stored = hundi.read(store, exchange="binance", symbol="BTC-USDT", channel="book")
    assert as_dict(late) == replay_book(stored, pd.Timestamp(last, unit="ns", tz="UTC"))[0]
    assert as_dict(late) != as_dict(early)
    # the superseded day index was replaced, not kept beside the new one
    assert len(list(cache.rglob("2024-05-02-*.levels.parquet"))) == 1


@pytest.mark.slow
def test_a_live_day_is_extended_with_new_flushes_not_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collector flushing while a notebook asks: each flush adds checkpoints for its rows
    only; compactions of files already seen change nothing; the result stays exact."""
    store, cache = tmp_path / "data", tmp_path / "cache"
    rows = [change(DAY2, BID, 99.0, 1.0, 100, snapshot=True)]
    rows.append(change(DAY2, ASK, 101.0, 1.0, 100, snapshot=True))
    for u in range(101, 131):
        level = (
            (BID, 99.0 - (u % 4) * 0.5, float(u % 3))
            if u % 2
            else (ASK, 101.0 + (u % 5) * 0.5, 2.0)
        )
        rows += spot_message(DAY2 + (u - 100) * 100 * MS, u, u, [level])
    target = EmbeddedStore(str(store), fsync=False, compact_fanout=2, grace_s=0)
    target.write({Channel.BOOK: rows[:4]})
    target.flush()
    first = book_at(store, "binance", "BTC-USDT", rows[-1].ts, checkpoint_rows=2, cache_dir=cache)
    rebuilds = []
    original = book_module.build_day

    def counting_build(*args: object, **kwargs: object) -> book_module.DayIndex:
        rebuilds.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(book_module, "build_day", counting_build)
    for lo in range(4, len(rows), 3):
        target.write({Channel.BOOK: rows[lo : lo + 3]})
        target.flush()  # fanout 2: most flushes also compact earlier files
        if lo % 2:
            book_module._CACHES.clear()  # a new process: the index comes from disk
        stored = hundi.read(store, exchange="binance", symbol="BTC-USDT", channel="book")
        for at in probe_times(stored, 10):
            got = book_at(store, "binance", "BTC-USDT", at, checkpoint_rows=2, cache_dir=cache)
            assert as_dict(got) == replay_book(stored, at)[0], at
    target.close()
    assert rebuilds == []
    assert as_dict(first) != as_dict(got)


def test_unwritable_store_directory_falls_back_to_a_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "data"
    target = EmbeddedStore(str(store), fsync=False)
    target.write({Channel.BOOK: midnight_rows()})
    target.close()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (store / ".hundi-cache").write_text("a file where the cache directory would go")
    book_module._CACHES.clear()
    book = book_at(store, "binance", "BTC-USDT", DAY2 + 10**9)
    assert list((tmp_path / "home" / ".cache" / "hundi").rglob("*.levels.parquet"))
    assert book.attrs["synced"]


def test_bad_arguments_are_clear_errors(sim_stores: dict[str, Path]) -> None:
    with pytest.raises(ResearchError, match="needs a time"):
        book_at(sim_stores["spot"], "binance", "BTC-USDT", None)
    with pytest.raises(ValueError, match="not an ISO date"):
        book_at(sim_stores["spot"], "binance", "BTC-USDT", "yesterday")
    # a symbol without a stored book is an error naming the stored ones (it was an empty book)
    with pytest.raises(NotStored, match="holds no book of binance 'NOPE-USDT'") as raised:
        book_at(sim_stores["spot"], "binance", "NOPE-USDT", "2030-01-01")
    assert sorted(raised.value.choices) == ["BTC-USDT", "ETH-USDT"]
    # a stored book before its first row is empty, not an error
    empty = book_at(sim_stores["spot"], "binance", "BTC-USDT", "2000-01-01")
    assert empty.empty and not empty.attrs["synced"]


def book_gap(ts: int, detail: str) -> Event:
    return Event(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=ts,
        kind=EventKind.GAP.value, channel=Channel.BOOK.value, expected=112, received=-1,
        detail=detail,
    )  # fmt: skip


def test_a_stored_gap_makes_the_frozen_book_unsynced_until_the_next_snapshot(
    tmp_path: Path,
) -> None:
    """After a gap the collector stores no change until a snapshot restarts the book, so the
    rows alone show the pre-gap book; the stored gap event says it is stale (it said synced)."""
    store = tmp_path / "data"
    t0 = DAY2 - 3_600_000 * MS
    rows = [change(t0, BID, 99.0, 1.0, 100, snapshot=True),
            change(t0, ASK, 101.0, 1.0, 100, snapshot=True)]  # fmt: skip
    rows += spot_message(t0 + 1000 * MS, 101, 101, [(BID, 99.5, 2.0)])
    gap_at = t0 + 2000 * MS
    resync_at = t0 + 9000 * MS
    rows += [change(resync_at, BID, 98.0, 3.0, 150, snapshot=True),
             change(resync_at, ASK, 100.0, 3.0, 150, snapshot=True)]  # fmt: skip
    target = EmbeddedStore(str(store), fsync=False)
    target.write({Channel.BOOK: rows, Channel.EVENTS: [book_gap(gap_at, "disconnect")]})
    target.close()
    before = book_at(store, "binance", "BTC-USDT", gap_at - 1)
    assert before.attrs["synced"] and as_dict(before)[(BID, 99.5)] == 2.0
    during = book_at(store, "binance", "BTC-USDT", gap_at + 5000 * MS)
    assert not during.attrs["synced"]  # the frozen book of before the gap
    assert as_dict(during) == as_dict(before)
    assert not book_at(store, "binance", "BTC-USDT", gap_at).attrs["synced"]
    after = book_at(store, "binance", "BTC-USDT", resync_at)
    assert after.attrs["synced"] and as_dict(after) == {(BID, 98.0): 3.0, (ASK, 100.0): 3.0}
    # a gap with no resync at all: stale to the end
    store2 = tmp_path / "data2"
    target = EmbeddedStore(str(store2), fsync=False)
    target.write({Channel.BOOK: rows[:3], Channel.EVENTS: [book_gap(gap_at, "sequence break")]})
    target.close()
    assert not book_at(store2, "binance", "BTC-USDT", resync_at * 2).attrs["synced"]


def trade(trade_id: int, ts: int) -> Trade:
    return Trade(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=ts,
        trade_id=trade_id, price=100.0, size=1.0, side=1, first_trade_id=trade_id,
        last_trade_id=trade_id,
    )  # fmt: skip


def test_a_cassandra_store_gives_the_embedded_stores_book(
    cassandra_keyspace: str, tmp_path: Path
) -> None:
    """Through the store contract: Cassandra keeps no day versions, so no checkpoints are kept
    and each call replays the days it needs; the books are the embedded store's, across the
    resync at midnight and a stored gap."""
    from hundi.stores.base import open_store

    rows = midnight_rows()
    gap = book_gap(DAY2 - 150 * MS, "disconnect")
    stamps = sorted({r.ts for r in rows} | {r.ts + 1 for r in rows})
    trades = [trade(i, ts) for i, ts in enumerate(stamps)]
    batch = {Channel.BOOK: rows, Channel.EVENTS: [gap], Channel.TRADES: trades}
    store = tmp_path / "data"
    target = EmbeddedStore(str(store), fsync=False)
    target.write(batch)
    target.close()
    cassandra = open_store(cassandra_keyspace)
    try:
        cassandra.write(batch)
        cassandra.flush()
        assert cassandra.day_version("binance", Channel.BOOK, "BTC-USDT", DAY2_DATE) is None
        stored = hundi.read(store, exchange="binance", symbol="BTC-USDT", channel="book")
        for at in probe_times(stored, 15):
            expected = book_at(store, "binance", "BTC-USDT", at, checkpoint_rows=3)
            got = book_at(cassandra, "binance", "BTC-USDT", at, checkpoint_rows=3)
            pd.testing.assert_frame_equal(got, expected)
            assert got.attrs == expected.attrs, at
        expected = trades_with_book(store, "binance", "BTC-USDT", source="book")
        joined = trades_with_book(cassandra, "binance", "BTC-USDT", source="book")
        assert joined["bid_price"].notna().any() and joined["bid_price"].isna().any()
        pd.testing.assert_frame_equal(joined, expected)
    finally:
        cassandra.close()
