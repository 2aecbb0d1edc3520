"""Compaction's pure rules, without a server: where chunks are cut, which writer a compacted
chunk carries, which hours are closed, the clock margin setting."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from hundi.stores.base import StoreError
from hundi.stores.cassandra.compaction import (
    CLOCK_MARGIN_ENV,
    LEGACY_COMPACTED,
    clock_margin_s,
    closed_hours,
    compacted_writer,
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
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv(CLOCK_MARGIN_ENV, bad)
        with pytest.raises(StoreError, match=CLOCK_MARGIN_ENV):
            clock_margin_s()
