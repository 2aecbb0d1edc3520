"""``bench/vs_cryptofeed.py`` judges what it measured honestly: medians per rate and contender,
PASS only when hundi with its store is within each target, FAIL otherwise; and its null store
(``bench/collect_nostore.py``) takes batches and keeps nothing, for ``null:`` URLs only."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).parents[1] / "bench"


def _bench_module(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCH))


def _run(rate: str, contender: str, us: float, rss: float = 100.0) -> dict[str, Any]:
    return {"rate": rate, "contender": contender, "cpu_us_per_frame": us,
            "frames_per_s": 1000, "peak_rss_mb": rss, "cpu_pct": 10.0}  # fmt: skip


def test_medians_and_targets_pass_and_fail_on_the_numbers() -> None:
    bench = _bench_module("vs_cryptofeed")
    runs = [
        _run("2000", "hundi+store", 90), _run("2000", "hundi+store", 110),
        _run("2000", "hundi+store", 100),
        _run("2000", "cryptofeed", 120), _run("2000", "cryptofeed", 100),
        _run("2000", "cryptofeed", 110),
        _run("max", "hundi+store", 9.0, rss=300), _run("max", "cryptofeed", 20.0),
        _run("max", "bare", 4.0),
    ]  # fmt: skip
    table = bench.medians(runs, ["2000", "max"], ["hundi+store", "cryptofeed", "bare"])
    assert table["2000"]["hundi+store"]["cpu_us_per_frame"] == 100
    assert table["2000"]["cryptofeed"]["cpu_us_per_frame"] == 110
    assert table["2000"]["hundi+store"]["rounds"] == 3
    verdicts = {v["target"]: v for v in bench.verdicts(table)}
    assert verdicts["2000: hundi+store CPU/frame <= cryptofeed"]["pass"]
    assert verdicts["max: hundi+store CPU/frame <= cryptofeed"]["pass"]
    bare = verdicts["max: hundi+store CPU/frame <= 2x bare"]
    assert not bare["pass"] and bare["value"] == "2.25x"
    rss = verdicts["hundi+store peak RSS <= 250 MB"]
    assert not rss["pass"] and rss["value"] == "300 MB"


def test_a_missing_contender_gives_no_verdict_rather_than_a_false_one() -> None:
    bench = _bench_module("vs_cryptofeed")
    table = bench.medians([_run("max", "hundi+store", 5.0)], ["max"], ["hundi+store"])
    targets = [v["target"] for v in bench.verdicts(table)]
    assert targets == ["hundi+store peak RSS <= 250 MB"]


def test_the_null_store_keeps_nothing_and_only_for_null_urls(tmp_path: Path) -> None:
    nostore = _bench_module("collect_nostore")
    store = nostore._open_with_null("null:")
    assert isinstance(store, nostore.NullStore)
    store.write({})
    store.flush()
    assert store.read(exchange="binance", symbol=None, channel=nostore.Channel.TRADES).empty
    embedded = nostore._open_with_null(str(tmp_path / "store"))
    assert not isinstance(embedded, nostore.NullStore)
    embedded.close()


@pytest.mark.parametrize("name", ["cryptofeed_client.py", "requirements-cryptofeed.txt"])
def test_cryptofeed_is_pinned_with_hashes_outside_the_project_lock(name: str) -> None:
    assert (BENCH / name).exists()
    if name.endswith(".txt"):
        text = (BENCH / name).read_text()
        assert "cryptofeed==2.4.1" in text
        pins = [line for line in text.splitlines() if "==" in line]
        hashes = text.count("--hash=sha256:")
        assert pins and hashes >= len(pins)
        lock = (BENCH.parent / "uv.lock").read_text()
        assert 'name = "cryptofeed"' not in lock
