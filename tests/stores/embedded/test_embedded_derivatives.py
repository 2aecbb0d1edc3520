"""Derivative tickers, liquidations and instruments in the embedded store and every read path
on it: exact round trips (NaN fields, no funding time 0, expiry), compaction, ``hundi.read``,
``hundi.iter_batches`` and ``hundi query``."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from click.testing import CliRunner

import hundi
from derivative_samples import EXPIRY, SECOND, T0, derivative_batches, same_records, ticker
from hundi.query import query
from hundi.records import SCHEMAS, Channel, Record, from_arrow
from hundi.stores.embedded import EmbeddedStore

NEW = (Channel.DERIVATIVE_TICKER, Channel.LIQUIDATIONS, Channel.INSTRUMENTS)


def records_of(frame: pd.DataFrame, channel: Channel) -> list[Record]:
    """Frame → records; pandas' NaN becomes an Arrow null on the way, so floats get it back."""
    table = pa.Table.from_pandas(frame.reset_index(), preserve_index=False)
    for i, field in enumerate(table.schema):
        if pa.types.is_floating(field.type):
            table = table.set_column(i, field, pc.fill_null(table.column(i), math.nan))
    return from_arrow(channel, table)


def written(root: Path) -> Path:
    store = EmbeddedStore(str(root))
    store.write(derivative_batches())
    store.close()
    return root


def test_each_new_type_round_trips_exactly(tmp_path: Path) -> None:
    root = written(tmp_path / "data")
    store = EmbeddedStore(str(root), read_only=True)
    batches = derivative_batches()
    for channel in NEW:
        frame = store.read(exchange="binance", symbol=None, channel=channel)
        assert list(frame.columns) == [n for n in SCHEMAS[channel].names if n != "ts"]
        assert same_records(records_of(frame, channel), batches[channel]), channel
    tickers = store.read(exchange="binance", symbol="BTC-USD-20261225",
                         channel=Channel.DERIVATIVE_TICKER)  # fmt: skip
    assert tickers["next_funding_time"].tolist() == [pd.Timestamp(0, tz="UTC")]
    assert math.isnan(tickers["funding_rate"].iloc[0])
    instruments = store.read(exchange="binance", symbol=None, channel=Channel.INSTRUMENTS)
    by_symbol = instruments.set_index("symbol")
    assert by_symbol.loc["BTC-USD-20261225", "expiry"] == pd.Timestamp(EXPIRY, tz="UTC")
    assert by_symbol.loc["BTC-USDT-PERP", "expiry"] == pd.Timestamp(0, tz="UTC")
    assert math.isnan(by_symbol.loc["BTC-USD-PERP", "tick_size"])
    assert store.symbols("binance", Channel.INSTRUMENTS) == [
        "BTC-USD-20261225", "BTC-USD-PERP", "BTC-USDT-PERP",
    ]  # fmt: skip


def test_compaction_keeps_every_row_once(tmp_path: Path) -> None:
    store = EmbeddedStore(str(tmp_path), compact_fanout=2, grace_s=0)
    rows = [ticker(T0 + i * SECOND, "markPrice", mark_price=100.0 + i) for i in range(8)]
    for row in rows:  # one flush each: files merged as they pile up
        store.write({Channel.DERIVATIVE_TICKER: [row]})
        store.flush()
    store.close()
    frame = EmbeddedStore(str(tmp_path), read_only=True).read(
        exchange="binance", symbol=None, channel=Channel.DERIVATIVE_TICKER
    )
    assert same_records(records_of(frame, Channel.DERIVATIVE_TICKER), list(rows))


def test_hundi_read_by_channel_name_and_native_symbol(tmp_path: Path) -> None:
    root = written(tmp_path / "data")
    frame = hundi.read(str(root), exchange="binance", symbol="BTCUSDT",
                       channel="derivative_ticker", start="2024-05-01T00:00:00.5Z")  # fmt: skip
    assert frame["mark_price"].tolist() == [60_010.0]
    assert frame["symbol"].tolist() == ["BTC-USDT-PERP"]
    funding = hundi.read(
        str(root), exchange="binance", symbol="BTC-USDT-PERP", channel="derivative_ticker",
        fields=["funding_rate", "open_interest"],
    )  # fmt: skip
    assert list(funding.columns)[-2:] == ["funding_rate", "open_interest"]
    liquidations = hundi.read(str(root), exchange="binance", channel="liquidations")
    assert liquidations["side"].tolist() == [-1, -1, 1, 1]
    assert set(liquidations["completeness"]) == {"sampled", "complete"}
    instruments = hundi.read(str(root), exchange="binance", channel="instruments")
    assert sorted(instruments["contract_type"]) == ["future", "perpetual", "perpetual"]


def test_iter_batches_streams_them_as_arrow(tmp_path: Path) -> None:
    root = written(tmp_path / "data")
    batches = list(hundi.iter_batches(str(root), exchange="binance", symbol="BTC-USDT-PERP",
                                      channel="derivative_ticker"))  # fmt: skip
    table = pa.Table.from_batches(batches)
    assert table.num_rows == 3
    assert table.schema.field("next_funding_time").type == pa.timestamp("ns", tz="UTC")
    assert table.column("open_interest").to_pylist()[1:] == [12_345.678, 12_345.678]
    assert math.isnan(table.column("open_interest").to_pylist()[0])  # NaN stays NaN, not null


def test_hundi_query_prints_them(tmp_path: Path) -> None:
    root = written(tmp_path / "data")
    result = CliRunner().invoke(
        query, ["--store", str(root), "--exchange", "binance", "--channel", "liquidations",
                "--symbol", "BTC-USDT-PERP", "--format", "csv"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert frame["size"].tolist() == [0.5, 1.5, 0.25]
    assert set(frame["size_unit"]) == {"base"}
    table = CliRunner().invoke(
        query, ["--store", str(root), "--exchange", "binance", "--channel", "instruments"]
    )
    assert table.exit_code == 0 and "BTC-USD-20261225" in table.stdout
    unknown = CliRunner().invoke(
        query, ["--store", str(root), "--exchange", "binance", "--channel", "liquidation"]
    )
    assert unknown.exit_code == 2
    assert "unknown channel 'liquidation'; known:" in unknown.stderr
    assert "liquidations" in unknown.stderr
