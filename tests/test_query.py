"""``hundi.read`` and ``hundi query`` against a real embedded store."""

from __future__ import annotations

import io
import re
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from rich.console import Console

import hundi
from hundi.query import Ambiguous, NotStored, QueryError, _print_table, query
from hundi.records import Bar, Channel, Trade
from hundi.stores.base import Unsupported
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


# --- names: native symbols, and what the store does not hold --------------------------------


def test_a_native_symbol_reads_the_stored_one(store: Path) -> None:
    """``collect`` takes BTCUSDT; reading by it printed "0 rows"."""
    native = hundi.read(str(store), exchange="binance", symbol="BTCUSDT")
    pd.testing.assert_frame_equal(
        native, hundi.read(str(store), exchange="binance", symbol="BTC-USDT")
    )
    assert len(native) == 30
    assert len(hundi.read(str(store), exchange="binance", symbol="eth-usdt")) == 30
    code, out, _ = run("--store", str(store), "--exchange", "binance", "--symbol", "ETHUSDT")
    assert code == 0
    assert "symbol=ETH-USDT" in out and "30 rows" in out


def test_a_native_name_of_spot_and_perpetual_is_refused_naming_both(tmp_path: Path) -> None:
    root = tmp_path / "data"
    writer = EmbeddedStore(str(root))
    writer.write({Channel.TRADES: [
        Trade(exchange="binance", symbol=symbol, native_symbol="BTCUSDT", ts=T0, recv_ts=T0 + 1,
              trade_id=1, price=100.0, size=1.0, side=1, first_trade_id=1, last_trade_id=1)
        for symbol in ("BTC-USDT", "BTC-USDT-PERP")
    ]})  # fmt: skip
    writer.close()
    with pytest.raises(Ambiguous, match="'BTCUSDT' names BTC-USDT and BTC-USDT-PERP") as raised:
        hundi.read(str(root), exchange="binance", symbol="BTCUSDT")
    assert raised.value.choices == ["BTC-USDT", "BTC-USDT-PERP"]
    assert len(hundi.read(str(root), exchange="binance", symbol="BTC-USDT-PERP")) == 1
    code, _, err = run("--store", str(root), "--exchange", "binance", "--symbol", "BTCUSDT")
    assert code == 2 and err.count("\n") == 1 and "BTC-USDT-PERP" in err


@pytest.mark.parametrize(
    ("asked", "message", "closest"),
    [
        ({"exchange": "binanse"}, "holds no exchange 'binanse'; it holds: binance", "binance"),
        (
            {"exchange": "binance", "symbol": "BTC-USTD"},
            "holds no trades of binance 'BTC-USTD'; symbols with trades: BTC-USDT, ETH-USDT",
            "BTC-USDT",
        ),
        (
            {"exchange": "binance", "symbol": "BTC-USDT", "channel": "book"},
            "holds no book of binance; it holds: trades",
            "trades",
        ),
    ],
)
def test_what_the_store_does_not_hold_is_an_error_listing_what_it_holds(
    store: Path, asked: dict[str, str], message: str, closest: str
) -> None:
    """They answered an empty frame (and "0 rows", exit 0), like a quiet market."""
    with pytest.raises(NotStored, match=message) as raised:
        hundi.read(str(store), **asked)
    assert raised.value.choices[0] == closest
    flags = [f"--{name}={value}" for name, value in asked.items()]
    code, out, err = run("--store", str(store), *flags)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_known_stream_without_rows_in_the_range_is_an_empty_result(store: Path) -> None:
    frame = hundi.read(str(store), exchange="binance", symbol="BTCUSDT", start="2030-01-01")
    assert frame.empty
    code, out, _ = run("--store", str(store), "--exchange", "binance", "--symbol", "BTC-USDT",
                       "--start", "2030-01-01")  # fmt: skip
    assert code == 0 and "0 rows" in out


def test_a_store_that_cannot_list_is_read_as_asked(store: Path) -> None:
    """Stores without listings (KairosDB) skip the check: the names go to ``read`` as given."""

    class Unlisted(EmbeddedStore):
        def exchanges(self) -> list[str]:
            raise Unsupported("cannot list")

        def channels(self, exchange: str) -> list[Channel]:
            raise Unsupported("cannot list")

    unlisted = Unlisted(str(store), read_only=True)
    assert hundi.read(unlisted, exchange="binanse").empty
    assert len(hundi.read(unlisted, exchange="binance", symbol="BTC-USDT")) == 30


# --- series channels: one series at a time, numbers printed whole -----------------------------


def bar(symbol: str, interval: str, i: int, step: int) -> Bar:
    return Bar(
        exchange="binance", symbol=symbol, native_symbol=symbol.replace("-", ""), ts=T0 + i * step,
        recv_ts=T0 + (i + 1) * step, interval=interval, close_time=T0 + (i + 1) * step,
        open=59999.61, high=60001.23, low=59998.7, close=60000.5 + i / 100, volume=0.12345,
        quote_volume=7407.3, vwap=7407.3 / 0.12345, buy_volume=0.1, sell_volume=0.02345,
        trade_count=3, first_trade_id=3 * i, last_trade_id=3 * i + 2,
    )  # fmt: skip


@pytest.fixture
def bars_store(tmp_path: Path) -> Path:
    """BTC-USDT bars of 1s, 1m and ticks:100; ETH-USDT bars of 1s."""
    root = tmp_path / "bars"
    writer = EmbeddedStore(str(root))
    bars = [bar("BTC-USDT", "1s", i, SECOND) for i in range(30)]
    bars += [bar("BTC-USDT", "1m", 0, MINUTE)] + [
        bar("BTC-USDT", "ticks:100", i, 2 * SECOND) for i in range(5)
    ]
    bars += [bar("ETH-USDT", "1s", i, SECOND) for i in range(30)]
    writer.write({Channel.BARS: bars})
    writer.close()
    return root


SECOND = 1_000_000_000


def test_bars_of_several_series_are_refused_listing_them(bars_store: Path) -> None:
    """``hundi query --channel bars`` mixed 1s, 1m and tick bars in one table."""
    code, out, err = run("--store", str(bars_store), "--exchange", "binance", "--symbol",
                         "BTC-USDT", "--channel", "bars")  # fmt: skip
    assert code == 2 and out == ""
    assert "3 bars series in the range: 1m, 1s, ticks:100; choose one (--interval)" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("flag", "label", "rows"),
    [("--interval=1s", "1s", 30), ("--series=60s", "1m", 1), ("--interval=bars:1m", "1m", 1),
     ("--interval=ticks:100", "ticks:100", 5)],
)  # fmt: skip
def test_one_series_is_chosen_by_interval(
    bars_store: Path, flag: str, label: str, rows: int
) -> None:
    code, out, _ = run("--store", str(bars_store), "--exchange", "binance", "--symbol", "BTCUSDT",
                       "--channel", "bars", flag, "--format", "csv")  # fmt: skip
    assert code == 0
    frame = pd.read_csv(io.StringIO(out))
    assert len(frame) == rows and set(frame["interval"]) == {label}


def test_a_series_not_stored_is_an_error_and_a_stored_one_without_rows_is_empty(
    bars_store: Path,
) -> None:
    with pytest.raises(
        NotStored, match="holds no bars series '5m' of binance BTC-USDT; it holds: "
    ) as raised:
        hundi.read(
            str(bars_store), exchange="binance", symbol="BTC-USDT", channel="bars", interval="5m"
        )
    assert sorted(raised.value.choices) == ["1m", "1s", "ticks:100"]
    later = hundi.read(str(bars_store), exchange="binance", symbol="BTC-USDT", channel="bars",
                       interval="ticks:100", start="2030-01-01")  # fmt: skip
    assert later.empty
    with pytest.raises(QueryError, match="trades has no series to choose by interval"):
        hundi.read(str(bars_store), exchange="binance", channel="trades", interval="1s")
    # Python reads every series unless asked for one (the interval column tells them apart)
    assert (
        len(hundi.read(str(bars_store), exchange="binance", symbol="BTC-USDT", channel="bars"))
        == 36
    )


def test_the_table_prints_numbers_whole_at_the_decimals_the_data_has(bars_store: Path) -> None:
    """Prices were cut to fit (``6000…``) and vwap printed with float noise."""
    code, out, _ = run("--store", str(bars_store), "--exchange", "binance", "--symbol", "ETH-USDT",
                       "--channel", "bars")  # fmt: skip
    assert code == 0 and "interval=1s  30 rows" in out  # one series stored: no need to choose
    assert re.search(r"\S…", out) is None  # no value cut short (the head/tail row is "…")
    for whole in ("59999.61", "60001.23", "59998.7", "60000.50", "60000.79", "0.12345", "7407.3",
                  "60002.4301337", "2024-05-01 00:00:29.000000000"):  # fmt: skip
        assert whole in out, whole
    code, out, _ = run("--store", str(bars_store), "--exchange", "binance", "--channel", "bars",
                       "--interval", "1s")  # fmt: skip
    assert code == 0 and "60 rows" in out and "ETH-USDT" in out and "BTC-USDT" in out
    assert re.search(r"\S…", out) is None and "60002.4301337 " in out


def test_a_narrow_terminal_gets_the_columns_in_further_tables(bars_store: Path) -> None:
    frame = hundi.read(str(bars_store), exchange="binance", channel="bars", interval="1s")
    screen = io.StringIO()
    _print_table(
        frame, len(frame), Console(file=screen, width=100, force_terminal=True, color_system=None)
    )
    text = screen.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 100
    assert re.search(r"\S…", text) is None
    assert text.count("┃ ts ") >= 3  # several tables, each with the time
    for whole in ("59999.61", "60002.4301337", "first_trade_id", "last_trade_id"):
        assert whole in text, whole


def test_an_empty_store_is_said_to_hold_nothing(tmp_path: Path) -> None:
    # difflib refused n=0 choices: an empty store answered a traceback (API: 500)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotStored, match="holds no exchange 'binance'; it holds: nothing"):
        hundi.read(empty, exchange="binance", channel="trades")


def test_a_native_name_of_a_dated_future_reads_the_stored_one(tmp_path: Path) -> None:
    """Deliveries are stored as ``BASE-QUOTE-YYYYMMDD`` while the venue's name carries
    ``YYMMDD`` (``LINKUSD_211231`` → ``LINK-USD-20211231``): the native name still finds it."""
    root = tmp_path / "data"
    writer = EmbeddedStore(str(root))
    names = {"LINK-USD-20211231": "LINKUSD_211231", "LINK-USD-PERP": "LINKUSD_PERP",
             "BTC-USDT-20260626": "BTCUSDT_260626"}  # fmt: skip
    writer.write({Channel.TRADES: [
        Trade(exchange="binance", symbol=symbol, native_symbol=native, ts=T0, recv_ts=T0 + 1,
              trade_id=1, price=100.0, size=1.0, side=1, first_trade_id=1, last_trade_id=1)
        for symbol, native in names.items()
    ]})  # fmt: skip
    writer.close()
    for symbol, native in names.items():
        frame = hundi.read(str(root), exchange="binance", symbol=native)
        assert list(frame["symbol"]) == [symbol]
    with pytest.raises(NotStored):
        hundi.read(str(root), exchange="binance", symbol="LINKUSD_220325")


@pytest.mark.parametrize(
    ("start", "end", "rows"),
    [
        ("9999-12-31", None, 0),
        ("2262-04-12", None, 0),
        (None, "9999-12-31", 30),
        ("1000-01-01", None, 30),
        ("1000-01-01", "1677-01-01", 0),
    ],
)
def test_times_beyond_what_ns_can_hold_are_open_bounds_not_an_overflow(
    store: Path, start: str | None, end: str | None, rows: int
) -> None:
    """Nothing is stored beyond the int64 ns range (1677-2262): such a bound reads what there
    is (it was an OverflowError traceback from the embedded store and the research API)."""
    bounds = {"start": start, "end": end}
    frame = hundi.read(str(store), exchange="binance", symbol="BTC-USDT", **bounds)
    assert len(frame) == rows
    args = [f"--{name}={value}" for name, value in bounds.items() if value is not None]
    code, out, err = run("--store", str(store), "--exchange", "binance", "--symbol", "BTC-USDT",
                         "--format", "csv", *args)  # fmt: skip
    assert code == 0 and "Traceback" not in err, err
    assert len(out.strip().splitlines()) == rows + 1
    bars = hundi.bars(str(store), "binance", "BTC-USDT", "1min", **bounds)
    assert int(bars["trade_count"].sum()) == rows
