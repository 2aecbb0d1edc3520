"""``hundi.read`` and ``hundi query`` against a real embedded store."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import hundi
from hundi.query import QueryError, query
from hundi.records import Channel, Trade
from hundi.stores.embedded import EmbeddedStore

T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z
MINUTE = 60 * 1_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    writer = EmbeddedStore(str(root))
    trades = [
        Trade(exchange="binance", symbol=symbol, native_symbol=symbol.replace("-", ""),
              ts=T0 + i * MINUTE, recv_ts=T0 + i * MINUTE + 1, trade_id=i, price=100.0 + i,
              size=1.0, side=1, first_trade_id=i, last_trade_id=i)
        for i in range(30)
        for symbol in ("BTC-USDT", "ETH-USDT")
    ]  # fmt: skip
    writer.write({Channel.TRADES: trades})
    writer.close()
    return root


def test_read_with_iso_strings_naive_utc_and_datetimes(store: Path) -> None:
    frame = hundi.read(
        str(store), exchange="binance", symbol="BTC-USDT",
        start="2024-05-01T00:10:00Z", end="2024-05-01 00:20",
    )  # fmt: skip
    assert list(frame["trade_id"]) == list(range(10, 20))
    same = hundi.read(
        f"file:{store}", exchange="binance", symbol="BTC-USDT",
        start=datetime(2024, 5, 1, 0, 10), end=datetime(2024, 5, 1, 0, 20),
    )  # fmt: skip
    pd.testing.assert_frame_equal(frame, same)
    both = hundi.read(EmbeddedStore(str(store)), exchange="binance")
    assert len(both) == 60
    assert both.index.is_monotonic_increasing


def test_read_rejects_bad_arguments_clearly(store: Path) -> None:
    with pytest.raises(QueryError, match="not an ISO"):
        hundi.read(str(store), exchange="binance", start="yesterday")
    with pytest.raises(QueryError, match="unknown channel 'trade'; known: trades"):
        hundi.read(str(store), exchange="binance", channel="trade")
    with pytest.raises(QueryError, match="before start"):
        hundi.read(str(store), exchange="binance", start="2024-05-02", end="2024-05-01")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(query, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_query_csv_to_stdout_and_parquet_to_file(store: Path, tmp_path: Path) -> None:
    code, out, _ = run("--store", str(store), "--exchange", "binance", "--symbol", "ETH-USDT",
                       "--format", "csv", "--limit", "5")  # fmt: skip
    assert code == 0
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame["trade_id"]) == [0, 1, 2, 3, 4]
    assert set(frame["symbol"]) == {"ETH-USDT"}
    target = tmp_path / "out.parquet"
    code, _, _ = run("--store", str(store), "--exchange", "binance", "--format", "parquet",
                     "--output", str(target))  # fmt: skip
    assert code == 0
    assert len(pd.read_parquet(target)) == 60


def test_query_table_shows_counts_head_and_tail(store: Path) -> None:
    code, out, _ = run("--store", str(store), "--exchange", "binance", "--symbol", "BTC-USDT")
    assert code == 0
    assert "30 rows" in out
    assert "first and last 10 of 30 rows" in out
    assert "2024-05-01 00:29:00" in out  # the tail is shown
    assert "2024-05-01 00:15:00" not in out  # the middle is not


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--channel", "nope"], "unknown channel"),
        (["--start", "2024-99-01"], "not an ISO"),
        (["--format", "parquet"], "needs --output"),
    ],
)
def test_query_errors_are_one_line_exit_2(store: Path, args: list[str], message: str) -> None:
    code, out, err = run("--store", str(store), "--exchange", "binance", *args)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err + out


def test_query_of_missing_store_creates_nothing(tmp_path: Path) -> None:
    code, _, err = run("--store", str(tmp_path / "typo"), "--exchange", "binance")
    assert code == 2
    assert "no store at" in err
    assert not (tmp_path / "typo").exists()
