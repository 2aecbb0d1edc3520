"""``hundi.read`` and ``hundi query`` with the aggregation options, on the real KairosDB."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from kairos_samples import MS, T0, bbo, trade

import hundi
from hundi.query import QueryError, query
from hundi.records import Channel
from hundi.stores.embedded import EmbeddedStore
from hundi.stores.kairosdb import KairosStore


@pytest.fixture
def written(store: KairosStore, kairosdb_url: str, prefix: str) -> str:
    """Trades of two symbols over 3 s (several per ms); returns the store URL with prefix."""
    trades = [
        trade(i, ms=(i * 37) % 3000, price=100.0 + i % 5, size=0.5, side=1 if i % 3 else -1,
              symbol=symbol)
        for i, symbol in zip(range(600), ["BTC-USDT", "ETH-USDT"] * 300, strict=True)
    ]  # fmt: skip
    store.write({Channel.TRADES: trades})
    store.flush()
    return f"{kairosdb_url}?prefix={prefix}"


def test_hundi_read_aggregates_on_the_server(written: str) -> None:
    per_second = hundi.read(
        written, exchange="binance", channel="trades", aggregate="sum", sampling="1s",
        fields=["count", "volume"],
    )  # fmt: skip
    assert list(per_second.columns) == ["exchange", "symbol", "count", "volume"]
    assert per_second.groupby("symbol")["count"].sum().to_dict() == {
        "BTC-USDT": 300.0, "ETH-USDT": 300.0,
    }  # fmt: skip
    assert per_second.index.unique().tolist() == [
        pd.Timestamp(T0 + s * 1000 * MS, tz="UTC") for s in range(3)
    ]
    total = hundi.read(
        written, exchange="binance", channel="trades", aggregate=["sum"], sampling="1h",
        group_by=(), fields="volume",
    )  # fmt: skip
    assert total["volume"].tolist() == [300.0]
    raw = hundi.read(written, exchange="binance", symbol="ETH-USDT", fields=["count"])
    assert raw["count"].sum() == 300.0
    assert list(raw.columns) == ["count"]


def test_hundi_query_cli_aggregates_to_csv(written: str) -> None:
    result = CliRunner().invoke(
        query,
        ["--store", written, "--exchange", "binance", "--channel", "trades", "--symbol",
         "BTC-USDT", "--aggregate", "max", "--aggregate", "count", "--sampling", "1s",
         "--field", "high_price", "--format", "csv"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.output), index_col="ts")
    assert list(frame.columns) == ["exchange", "symbol", "high_price_max", "high_price_count"]
    assert frame["high_price_max"].tolist() == [104.0, 104.0, 104.0]
    bad = CliRunner().invoke(
        query, ["--store", written, "--exchange", "binance", "--aggregate", "median"]
    )
    assert bad.exit_code == 2
    assert "hundi query: unknown aggregator 'median'" in bad.output


def test_other_stores_keep_their_behaviour_and_say_why_they_cannot_aggregate(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    embedded = EmbeddedStore(str(root))
    embedded.write({Channel.BBO: [bbo(ms, 0, float(ms)) for ms in range(3)]})
    embedded.close()
    frame = hundi.read(str(root), exchange="binance", channel="bbo", fields="bid_price,ask_price")
    assert list(frame.columns) == ["bid_price", "ask_price"]
    with pytest.raises(QueryError, match="cannot aggregate on its server"):
        hundi.read(str(root), exchange="binance", channel="bbo", aggregate="avg")
    with pytest.raises(QueryError, match="need an aggregate"):
        hundi.read(str(root), exchange="binance", channel="bbo", sampling="1s")
    with pytest.raises(QueryError, match="no field 'bid' in bbo"):
        hundi.read(str(root), exchange="binance", channel="bbo", fields=["bid"])


def test_names_are_checked_against_kairosdb_s_tag_index(written: str) -> None:
    """An unknown exchange, channel or symbol was an empty table, exit 0 (KairosDB could not
    list): its tag index tells what it holds."""
    from hundi.query import NotStored

    store = KairosStore(written)
    try:
        assert store.exchanges() == ["binance"]
        assert store.channels("binance") == [Channel.TRADES]
        assert store.symbols("binance", Channel.TRADES) == ["BTC-USDT", "ETH-USDT"]
        assert store.channels("nope") == []
    finally:
        store.close()
    for args, says in [
        (["--exchange", "nope"], "holds no exchange 'nope'; it holds: binance"),
        (["--exchange", "binance", "--symbol", "FOO-BAR"], "holds no trades of binance 'FOO-BAR'"),
        (
            ["--exchange", "binance", "--channel", "bbo"],
            "holds no bbo of binance; it holds: trades",
        ),
    ]:
        result = CliRunner().invoke(
            query, ["--store", written, "--start", "2024-05-01", "--format", "csv", *args]
        )
        assert result.exit_code == 2 and says in result.output, result.output
    with pytest.raises(NotStored, match="FOO-BAR"):
        hundi.read(written, exchange="binance", symbol="FOO-BAR", fields=["count"])
    # the exchange's spelling names the stored symbol
    spelled = hundi.read(written, exchange="binance", symbol="BTCUSDT", fields=["count"])
    assert spelled["count"].sum() == 300.0
