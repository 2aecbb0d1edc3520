"""Collector sharding: every configured symbol in exactly one shard, evenly, by pod ordinal."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from children import spawn
from hundi.config import ConfigError, FeedConfig, load_settings
from hundi.pipeline.shard import Shard, ShardError, resolve_shard, shard_feeds
from hundi.records import Channel
from hundi.simulator.process import SimulatorProcess
from hundi.stores.base import open_store

HUNDI = str(Path(sys.executable).parent / "hundi")


def feeds() -> list[FeedConfig]:
    return [
        FeedConfig(
            "binance",
            "spot",
            ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT"),
            (Channel.TRADES,),
        ),
        FeedConfig("binance", "usdm", ("BTCUSDT", "ETHUSDT"), (Channel.BBO,)),
        FeedConfig(
            "bitfinex", "spot", ("tBTCUSD", "tETHUSD", "tLTCUSD", "tXMRUSD"), (Channel.BOOK,)
        ),
    ]


def keys(selected: list[FeedConfig]) -> list[tuple[str, str, str]]:
    return [(f.exchange, f.market, s) for f in selected for s in f.symbols]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 11, 12])
def test_every_symbol_in_exactly_one_shard_and_shards_even(count: int) -> None:
    everything = keys(feeds())
    if count > len(everything):
        with pytest.raises(ShardError, match=r"shard 11 of 12 gets no symbol: .* 11 symbol"):
            shard_feeds(feeds(), Shard(count - 1, count))
        return
    shards = [keys(shard_feeds(feeds(), Shard(i, count))) for i in range(count)]
    seen = Counter(key for shard in shards for key in shard)
    assert set(seen) == set(everything) and set(seen.values()) == {1}
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1
    # Within each feed, too: no shard takes two more of one feed's symbols than another.
    for feed in feeds():
        per_shard = [
            sum(1 for k in shard if k[:2] == (feed.exchange, feed.market)) for shard in shards
        ]
        assert max(per_shard) - min(per_shard) <= 1


def test_split_is_deterministic_and_keeps_feed_settings() -> None:
    first = shard_feeds(feeds(), Shard(1, 3))
    assert first == shard_feeds(feeds(), Shard(1, 3))
    # Positions 1, 4, 7, 10 of the 11 symbols; the usdm feed (positions 5, 6) has none here
    # and is dropped rather than subscribed with no symbols.
    assert [(f.exchange, f.market, f.channels) for f in first] == [
        ("binance", "spot", (Channel.TRADES,)),
        ("bitfinex", "spot", (Channel.BOOK,)),
    ]
    assert keys(first) == [
        ("binance", "spot", "ETHUSDT"),
        ("binance", "spot", "ADAUSDT"),
        ("bitfinex", "spot", "tBTCUSD"),
        ("bitfinex", "spot", "tXMRUSD"),
    ]


def test_scaling_two_to_three_still_covers_every_symbol_once() -> None:
    for count in (2, 3):
        union = [k for i in range(count) for k in keys(shard_feeds(feeds(), Shard(i, count)))]
        assert sorted(union) == sorted(keys(feeds()))
    # The third replica takes work off the first two.
    two = [len(keys(shard_feeds(feeds(), Shard(i, 2)))) for i in range(2)]
    three = [len(keys(shard_feeds(feeds(), Shard(i, 3)))) for i in range(3)]
    assert two == [6, 5] and three == [4, 4, 3]


def test_auto_takes_the_ordinal_from_the_statefulset_pod_name() -> None:
    assert resolve_shard("auto", 3, hostname="collectors-2") == Shard(2, 3)
    assert resolve_shard("auto", 3, hostname="hundi-collectors-0") == Shard(0, 3)
    assert resolve_shard("1", 2, hostname="anything") == Shard(1, 2)
    assert resolve_shard("", 5) is None
    assert shard_feeds(feeds(), None) == feeds()


@pytest.mark.parametrize(
    ("spec", "count", "host", "message"),
    [
        ("auto", 2, "collectors-2", "shard 2 does not exist with HUNDI_SHARDS=2"),
        ("5", 3, "x", "shard 5 does not exist with HUNDI_SHARDS=3"),
        ("auto", 2, "laptop", "host name 'laptop' does not end in -<ordinal>"),
        ("first", 2, "collectors-0", "HUNDI_SHARD must be 'auto' or a shard number"),
    ],
)
def test_bad_shard_is_one_clear_error(spec: str, count: int, host: str, message: str) -> None:
    with pytest.raises(ShardError, match=message):
        resolve_shard(spec, count, hostname=host)


def test_settings_read_shard_keys_and_name_a_bad_value() -> None:
    settings = load_settings(environ={"HUNDI_SHARD": "auto", "HUNDI_SHARDS": "3"})
    assert (settings.shard, settings.shards) == ("auto", 3)
    assert (load_settings(environ={}).shard, load_settings(environ={}).shards) == ("", 1)
    with pytest.raises(ConfigError, match="HUNDI_SHARDS must be a positive integer"):
        load_settings(environ={"HUNDI_SHARDS": "0"})
    with pytest.raises(ConfigError, match="HUNDI_SHARD must be"):
        load_settings(environ={"HUNDI_SHARD": "-1"})


SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@pytest.mark.slow
def test_collect_replicas_split_the_symbols_of_a_real_run(tmp_path: Path) -> None:
    """Two `hundi collect --shard auto` processes named like StatefulSet pods, one config."""
    with SimulatorProcess(["--rate", "300", "--symbols", ",".join(SYMBOLS)]) as sim:
        config = tmp_path / "collectors.yaml"
        config.write_text(
            "feeds:\n"
            "  - exchange: binance\n"
            f"    symbols: [{', '.join(SYMBOLS)}]\n"
            "    channels: [trades]\n"
            f"    endpoint: {sim.ws_url}\n"
            f"    rest_endpoint: {sim.rest_url}\n"
        )
        procs = []
        for ordinal in (0, 1):
            env = {
                **os.environ,
                "HOSTNAME": f"collectors-{ordinal}",
                "HUNDI_SHARD": "auto",
                "HUNDI_SHARDS": "2",
                "HUNDI_STORE": str(tmp_path / f"data-{ordinal}"),
                "HUNDI_LOG_PATH": str(tmp_path / f"log-{ordinal}" / "hundi.log"),
            }
            procs.append(
                spawn(
                    [HUNDI, "collect", "--config", str(config), "--duration", "3"],
                    env=env,
                    cwd=tmp_path,
                )
            )
        for proc in procs:
            proc.wait(timeout=120)
        results = [(proc.stdout_text(), proc.stderr_text()) for proc in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    assert "shard 0 of 2: binance spot BTCUSDT,SOLUSDT" in results[0][1]
    assert "shard 1 of 2: binance spot ETHUSDT" in results[1][1]
    stored = []
    for ordinal in (0, 1):
        store = open_store(str(tmp_path / f"data-{ordinal}"), read_only=True)
        frame = store.read(exchange="binance", symbol=None, channel=Channel.TRADES)
        stored.append(set(frame["symbol"]))
    assert stored == [{"BTC-USDT", "SOL-USDT"}, {"ETH-USDT"}]


@pytest.mark.slow
def test_collect_bad_ordinal_exits_2_naming_the_keys(tmp_path: Path) -> None:
    result = subprocess.run(
        [HUNDI, "collect", "binance", "--symbols", "BTCUSDT", "--shard", "auto", "--shards", "2"],
        env={**os.environ, "HOSTNAME": "collectors-2"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "shard 2 does not exist with HUNDI_SHARDS=2" in result.stderr
    assert "Traceback" not in result.stderr
