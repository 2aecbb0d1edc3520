"""``--series`` and the YAML ``series`` key: what parses, and clear errors for what does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hundi.config import ConfigError, load_config_file
from hundi.series.spec import (
    DEFAULT_GRACE_NS,
    BasisSpec,
    BookTopSpec,
    FlowSpec,
    Leg,
    SeriesSpecError,
    TickBars,
    TimeBars,
    VolumeBars,
    parse_series,
)

MS = 1_000_000


def test_every_kind_parses_with_normalized_labels() -> None:
    plan = parse_series(
        "bars:1s, bars:60s,ticks:100,volume:2.5,book:10@1s,flow:1m@1s,"
        "basis:binance:btc-usdt/BTC-USDT-PERP@250ms,grace:200ms"
    )
    bars_1s, bars_1m, ticks, volume, book, flow, basis = plan.specs
    assert isinstance(bars_1s, TimeBars) and bars_1s.interval.ns == 1000 * MS
    assert isinstance(bars_1m, TimeBars) and bars_1m.interval.label == "1m"
    assert ticks == TickBars(100) and ticks.label == "ticks:100"
    assert volume == VolumeBars(2.5) and volume.label == "volume:2.5"
    assert isinstance(book, BookTopSpec) and (book.depth, book.interval.label) == (10, "1s")
    assert isinstance(flow, FlowSpec) and flow.bars_per_window == 60
    assert isinstance(basis, BasisSpec)
    assert basis.leg_a == Leg("BTC-USDT", "binance") and basis.leg_b == Leg("BTC-USDT-PERP")
    assert basis.interval.label == "250ms" and basis.pair_symbol == "BTC-USDT_BTC-USDT-PERP"
    assert plan.grace_ns == 200 * MS
    assert parse_series(["bars:1m"]).grace_ns == DEFAULT_GRACE_NS
    assert parse_series("bars:1m,bars:1m").specs == (bars_1m,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bars", "expected KIND:VALUE"),
        ("bars:1x", "'bars:1x': '1x' is not a duration"),
        ("bars:0s", "must be positive"),
        ("candles:1m", "unknown series kind 'candles'"),
        ("ticks:-3", "must be positive"),
        ("ticks:abc", "is not a whole number"),
        ("volume:nan", "the volume must be positive"),
        ("book:10", "expected VALUE@INTERVAL"),
        ("book:ten@1s", "is not a whole number"),
        ("flow:90s@1m", "whole multiple (>= 2) of the step"),
        ("flow:1s@1s", "whole multiple (>= 2) of the step"),
        ("basis:BTC-USDT@1s", "expected basis:SYMBOL_A/SYMBOL_B@INTERVAL"),
        ("basis:BTC-USDT/BTC-USDT@1s", "the two legs are the same stream"),
        ("grace:500ms", "no series given"),
        (",,", "no series given"),
    ],
)
def test_bad_specs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(SeriesSpecError) as caught:
        parse_series(text, "--series")
    assert str(caught.value).startswith("--series: ")
    assert message in str(caught.value)


def test_yaml_feed_series(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "feeds:\n"
        "  - {exchange: binance, symbols: [BTCUSDT], channels: [trades, book],\n"
        "     series: [bars:1s, 'book:5@1s']}\n"
        "  - {exchange: binance, symbols: BTCUSDT, channels: trades}\n"
    )
    first, second = load_config_file(path).feeds
    assert first.series is not None and len(first.series.specs) == 2
    assert second.series is None
    path.write_text(
        "feeds:\n  - {exchange: binance, symbols: BTCUSDT, channels: trades, series: 'bars:1q'}\n"
    )
    with pytest.raises(ConfigError, match=r"feeds\[0\].series: 'bars:1q': '1q' is not a duration"):
        load_config_file(path)


def collect(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hundi", "collect", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--series", "bars:1q"], "Error: --series: 'bars:1q': '1q' is not a duration"),
        (["--series", "book:5@1s"], "book must be among its channels (trades)"),
        (
            ["--series", "basis:BTC-USDT/ETH-USDT@1s"],
            "leg BTC-USDT is not a collected bbo stream",
        ),
    ],
)
@pytest.mark.slow
def test_cli_bad_series_exit_2_with_one_clear_line(
    args: list[str], message: str, tmp_path: Path
) -> None:
    done = collect(
        "binance", "--symbols", "BTCUSDT", "--channels", "trades", "--store", "data", *args,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # refused before opening anything


@pytest.mark.slow
def test_cli_series_with_config_feeds_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "feeds:\n  - {exchange: binance, symbols: BTCUSDT, channels: trades}\n"
    )
    done = collect("--config", "c.yaml", "--series", "bars:1s", cwd=tmp_path)
    assert done.returncode == 2
    assert "set `series:` on each feed" in done.stderr
    assert "Traceback" not in done.stderr
