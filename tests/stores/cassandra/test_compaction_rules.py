"""Compaction's pure rules, without a server: where chunks are cut, which writer a compacted
chunk carries, which hours are closed, the clock margin setting."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from hundi.stores.base import StoreError
from hundi.stores.cassandra.compaction import (
    CLOCK_MARGIN_ENV,
    LEGACY_COMPACTED,
    clock_margin_s,
    closed_hours,
    compacted_writer,
    copies,
    cuts,
)

DAY = 19_844  # 2024-05-01
HOUR = 3_600 * 10**9
START = DAY * 24 * HOUR


def test_cuts_never_split_a_run_of_equal_ts() -> None:
    ts = np.repeat(np.arange(10, dtype=np.int64), [3, 1, 4, 4, 2, 9, 1, 1, 1, 1])
    slices = cuts(ts, 5)
    assert slices[0][0] == 0 and slices[-1][1] == len(ts)
    assert all(stop == first for (_, stop), (first, _) in itertools.pairwise(slices))
    for first, stop in slices:
        assert stop - first <= 5 or len(set(ts[first:stop].tolist())) == 1  # a run of 9
        assert stop == len(ts) or ts[stop] != ts[stop - 1]
    assert cuts(np.arange(7, dtype=np.int64), 3) == [(0, 3), (3, 6), (6, 7)]
    assert cuts(np.array([], np.int64), 3) == []


def test_a_compacted_writer_is_negative_stable_and_its_own() -> None:
    writer = 123_456_789
    mine = compacted_writer(writer)
    assert mine < 0 and mine != LEGACY_COMPACTED
    assert compacted_writer(writer) == mine  # compacting twice writes the same chunks
    assert compacted_writer(mine) == mine
    assert compacted_writer(writer + 1) != mine
    assert compacted_writer(None) == LEGACY_COMPACTED


def test_closed_hours_end_before_now_minus_the_margin() -> None:
    assert closed_hours(DAY, START + 2 * HOUR + 59 * 10**9, 60) == [0]
    assert closed_hours(DAY, START + 2 * HOUR + 60 * 10**9, 60) == [0, 1]
    assert closed_hours(DAY, START + 30 * HOUR, 60) == list(range(24))
    assert closed_hours(DAY, START + 10**9, 0) == []


def test_the_clock_margin_comes_from_the_environment_or_the_env_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CLOCK_MARGIN_ENV, raising=False)
    assert clock_margin_s() == 60
    (tmp_path / ".cassandra.env").write_text(f"{CLOCK_MARGIN_ENV}=7\n")  # as the store reads
    assert clock_margin_s() == 7
    monkeypatch.setenv(CLOCK_MARGIN_ENV, "5.5")
    assert clock_margin_s() == 5.5
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv(CLOCK_MARGIN_ENV, bad)
        with pytest.raises(StoreError, match=CLOCK_MARGIN_ENV):
            clock_margin_s()


def _copies_by_hand(table: pa.Table, origins: list[int], writers: dict[int, int]) -> list[int]:
    """The rule, one row at a time: a row of a source sharing its compacted writer is a copy
    unless its source has now held it more often than any such source had before."""
    shared = {c for c in writers if sum(w == writers[c] for w in writers.values()) > 1}

    def exact(value: object) -> object:
        return "nan" if isinstance(value, float) and value != value else value

    seen: dict[tuple[object, ...], int] = {}
    kept: dict[tuple[object, ...], int] = {}
    dropped = []
    for i, (row, code) in enumerate(zip(table.to_pylist(), origins, strict=True)):
        if code not in shared:
            continue
        values = tuple(exact(v) for v in row.values())
        seen[(code, values)] = seen.get((code, values), 0) + 1
        if seen[(code, values)] > kept.get((writers[code], values), 0):
            kept[(writers[code], values)] = seen[(code, values)]
        else:
            dropped.append(i)
    return dropped


def test_copies_of_a_writer_s_rows_are_a_multiset_of_exact_rows() -> None:
    # writer 7's live chunks (code 0), a re-send (code 1) and its compacted copies (code 2)
    # go to one compacted writer; code 3 is another writer's, never compared
    price = [1.0, 1.0, 1.0, 2.0, float("nan"), float("nan"), -0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
    origins = [0, 0, 2, 2, 0, 2, 0, 2, 3, 3, 1, 0]
    table = pa.table({"price": pa.array(price, pa.float64())})
    writers = {0: -7, 1: -7, 2: -7, 3: -9}
    # 1.0: code 0 twice, code 2 once -> the third goes; 2.0: codes 2, 1 and 0 once -> two go;
    # NaN and NaN, -0.0 and 0.0 are equal; code 3's two equal rows are its own
    expected = [2, 5, 7, 10, 11]
    assert copies(table, np.array(origins, np.int64), writers).tolist() == expected
    assert _copies_by_hand(table, origins, writers) == expected
    assert copies(table, np.array(origins, np.int64), {0: -7, 1: -8, 2: -9, 3: -10}).size == 0


@pytest.mark.parametrize("seed", range(30))
def test_copies_agree_with_the_rule_row_by_row_for_every_column_type(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    pick = rng.integers(0, int(rng.integers(1, 12)), n)  # few distinct rows: many copies
    prices = np.array([1.5, -0.0, 0.0, np.nan, 2.25, 1e300, -3.0, 7.0, 0.1, 0.2, 5.0, 9.0])
    names = ["BTCUSDT", "ETHUSDT", "", "é"]
    table = pa.table(
        {
            "ts": pa.array(pick * 1000, pa.timestamp("ns", tz="UTC")),
            "id": pa.array(pick % 5, pa.int64()),
            "side": pa.array((pick % 2).astype(np.int8), pa.int8()),
            "price": pa.array(prices[pick], pa.float64()),
            "snapshot": pa.array(pick % 3 == 0, pa.bool_()),
            "symbol": pa.array([names[i % 4] for i in pick.tolist()]).dictionary_encode(),
            "detail": pa.array([names[(i + 1) % 4] for i in pick.tolist()], pa.string()),
        }
    )
    origins = rng.integers(0, 5, n)
    writers = {0: -1, 1: -1, 2: -1, 3: -2, 4: -3}
    if seed % 3 == 0:
        writers = {0: -1, 1: -2, 2: -1, 3: -2, 4: -2}
    expected = _copies_by_hand(table, origins.tolist(), writers)
    assert copies(table, origins, writers).tolist() == expected
    if seed == 0:
        assert expected  # the random tables do hold copies


def test_copies_take_null_fields_of_every_type() -> None:
    """A field older chunks lack is null (chunks.assemble): equal rows with a null bool or
    string are still copies (found by review: a null bool raised ArrowInvalid)."""
    table = pa.table(
        {
            "price": pa.array([1.0, 1.0, 2.0, None, None]),
            "closed": pa.array([None, None, True, None, None], pa.bool_()),
            "detail": pa.array(["a", "a", None, None, None], pa.string()),
        }
    )
    origins = np.array([0, 1, 1, 0, 1], np.int64)  # a writer's rows and their compacted copies
    assert copies(table, origins, {0: 7, 1: 7}).tolist() == [1, 4]
