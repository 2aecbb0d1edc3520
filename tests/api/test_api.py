"""``hundi serve`` on real data: Binance futures recordings replayed into the real Cassandra,
the API queried over a real socket, its numbers checked against hundi and pandas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from apiserver import HUNDI, SYMBOL, Api, free_port, replay, rows_frame, serve, write_series

import hundi
from children import spawn
from hundi import series
from hundi.records import Channel

pytestmark = pytest.mark.slow

EXCHANGE = "binance"


def _close(got: pd.Series, expected: pd.Series) -> None:
    assert list(got.index) == list(expected.index)
    np.testing.assert_allclose(
        got.to_numpy(float), expected.to_numpy(float), rtol=1e-12, equal_nan=True
    )


def _window(frames: list[pd.DataFrame]) -> tuple[int, int]:
    """The recorded data's range in epoch ms, widened to whole minutes."""
    first = min(f.index.min() for f in frames).floor("1min")
    last = max(f.index.max() for f in frames).ceil("1min") + pd.Timedelta("1min")
    return first.value // 1_000_000, last.value // 1_000_000


def _get(api: Api, path: str, **params: object) -> list[dict[str, Any]]:
    reply = api.get(f"/api/v1/{path}?" + "&".join(f"{k}={v}" for k, v in params.items()))
    assert reply.status == 200, reply.body
    assert isinstance(reply.body, list)
    return reply.body


def test_api_numbers_agree_with_hundi_and_pandas(
    cassandra_keyspace: str, recordings_dir: Path, tmp_path: Path
) -> None:
    url = cassandra_keyspace
    replay(recordings_dir, url, tmp_path)
    read = {
        c: hundi.read(url, exchange=EXCHANGE, symbol=SYMBOL, channel=c)
        for c in ("trades", "bbo", "book")
    }
    trades, bbo, book = read["trades"], read["bbo"], read["book"]
    assert len(trades) > 10 and len(bbo) > 10 and len(book) > 100
    start_ms, end_ms = _window([trades, bbo, book])
    start, end = (
        pd.Timestamp(start_ms, unit="ms", tz="UTC"),
        pd.Timestamp(end_ms, unit="ms", tz="UTC"),
    )
    span = {"exchange": EXCHANGE, "symbol": SYMBOL, "from": start_ms, "to": end_ms}

    with serve(url, tmp_path) as api:
        health = api.get("/api/v1/health")
        assert (health.status, health.body) == (200, {"status": "ok", "store": "cassandra"})

        listed = {row["symbol"] for row in _get(api, "symbols", exchange=EXCHANGE)}
        stored = set(
            hundi.read(url, exchange=EXCHANGE, channel="book", start=start, end=end)["symbol"]
        )
        assert SYMBOL in listed and stored <= listed

        # bars: no stored series, so computed from trades exactly as hundi.bars computes them
        reply = api.get(
            "/api/v1/bars?" + "&".join(f"{k}={v}" for k, v in {**span, "interval": "1s"}.items())
        )
        assert reply.status == 200 and reply.headers["X-Hundi-Source"] == "trades"
        got = rows_frame(reply.body)
        expected = hundi.bars(url, EXCHANGE, SYMBOL, "1s", start=start, end=end)
        for column in (
            "open",
            "high",
            "low",
            "close",
            "volume",
            "vwap",
            "buy_volume",
            "trade_count",
        ):
            _close(got[column], expected[column])
        # ... and their volume is what pandas sums per second (lag < grace: by exchange time)
        per_second = trades["size"].groupby(trades.index.floor("1s")).sum()
        _close(got["volume"][got["trade_count"] > 0], per_second)

        # book without a stored book_top series: each second's last BBO quote
        reply = api.get(
            "/api/v1/book?" + "&".join(f"{k}={v}" for k, v in {**span, "interval": "1s"}.items())
        )
        assert reply.status == 200 and reply.headers["X-Hundi-Source"] == "bbo"
        got = rows_frame(reply.body)
        last = bbo.groupby(bbo.index.floor("1s")).last()
        _close(got["mid"], (last["bid_price"] + last["ask_price"]) / 2)
        _close(got["spread"], last["ask_price"] - last["bid_price"])
        sizes = last["bid_size"] + last["ask_size"]
        _close(got["imbalance"], (last["bid_size"] - last["ask_size"]) / sizes)

        # coverage: rows per 10 s per channel, every interval of the range
        got = rows_frame(_get(api, "coverage", **span, interval="10s", channel="trades,bbo,book"))
        assert len(got) == (end_ms - start_ms) // 10_000
        for name, frame in read.items():
            counts = frame.groupby(frame.index.floor("10s")).size()
            _close(got[name][got[name] > 0], counts)
            assert got[name].sum() == len(frame)

        # receive lag percentiles per 10 s
        got = rows_frame(_get(api, "lag", **span, interval="10s", channel="trades"))
        lag_ms = pd.Series(
            (trades["recv_ts"].to_numpy("int64") - trades.index.asi8) / 1e6, index=trades.index
        )
        by = lag_ms.groupby(lag_ms.index.floor("10s"))
        _close(got["p50"], by.quantile(0.5))
        _close(got["max"], by.max())
        _close(got["count"], by.size().astype(float))

        # events per minute by kind: this symbol's and connection-wide ones
        events = hundi.read(url, exchange=EXCHANGE, channel="events", start=start, end=end)
        mine = events[(events["symbol"] == SYMBOL) | (events["symbol"] == "")]
        got = rows_frame(_get(api, "events", **span, interval="1m"))
        for kind, count in mine["kind"].value_counts().items():
            assert got[kind].sum() == count
        assert got["synced"].sum() >= 1

        # once the collector's own series are stored, the API serves them as they are
        bars = series.time_bars(trades, "1s")
        tops = series.book_snapshots(book, 5, "1s")
        write_series(url, {Channel.BARS: [bars], Channel.BOOK_TOP: [tops]})
        reply = api.get(
            "/api/v1/bars?" + "&".join(f"{k}={v}" for k, v in {**span, "interval": "1s"}.items())
        )
        assert reply.headers["X-Hundi-Source"] == "bars"
        got = rows_frame(reply.body)
        inside = bars[(bars.index >= start) & (bars.index < end)]
        for column in ("open", "close", "volume", "vwap"):
            _close(got[column], inside[column])
        reply = api.get(
            "/api/v1/book?" + "&".join(f"{k}={v}" for k, v in {**span, "interval": "1s"}.items())
        )
        assert reply.headers["X-Hundi-Source"] == "book_top:5"
        got = rows_frame(reply.body)
        for column in ("mid", "spread", "imbalance", "microprice"):
            _close(got[column], tops[column])


def test_bad_parameters_answer_400_with_the_reason(recordings_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    replay(recordings_dir, str(data), tmp_path)
    book = hundi.read(data, exchange=EXCHANGE, symbol=SYMBOL, channel="book")
    start_ms, end_ms = _window([book])
    span = f"exchange={EXCHANGE}&symbol={SYMBOL}&from={start_ms}&to={end_ms}"
    cases = [
        ("bars?symbol=X&from=1&to=2", 400, "missing parameter 'exchange'"),
        ("bars?exchange=binance&from=1&to=2", 400, "missing parameter 'symbol'"),
        (
            "bars?exchange=binance&symbol=X&from=yesterday&to=2",
            400,
            "from: 'yesterday' is not epoch milliseconds",
        ),
        ("bars?exchange=binance&symbol=X&from=5&to=2", 400, "to (2) must be after from (5)"),
        (f"bars?{span}&interval=fortnight", 400, "interval: interval 'fortnight'"),
        (f"bars?{span}&interval=1500us", 400, "interval"),
        (f"book?{span}&depth=-3", 400, "depth: '-3' is not a positive integer"),
        (f"coverage?{span}&channel=trades,quotes", 400, "unknown channel 'quotes'"),
        (f"bars?exchange=binance&symbol=X&from=0&to={end_ms}", 413, "exceeds the limit of 1d"),
        (f"coverage?{span}&interval=1ms", 413, "intervals of 1ms exceed the limit"),
        (f"coverage?{span}&channel=book", 413, "more than 1000 book rows"),
        # names become file paths in the embedded store: another store on disk was readable
        (
            "bars?exchange=binance%2F..%2F..%2Fdecoy%2Fexchange%3Dbinance&symbol=BTC-USDT"
            f"&from={start_ms}&to={end_ms}",
            400,
            "exchange: 'binance/../../decoy/exchange=binance' is not a valid name",
        ),
        (f"bars?exchange=binance&symbol=..&from={start_ms}&to={end_ms}", 400, "not a valid"),
        (f"bars?exchange=binance&symbol=A%00B&from={start_ms}&to={end_ms}", 400, "symbol"),
        (f"bars?exchange={'x' * 7000}&symbol=X&from=1&to=2", 400, "exchange: not a valid value"),
        # out of range: were 500s (OutOfBoundsDatetime, OverflowError)
        ("bars?exchange=binance&symbol=X&from=-9000000000000000&to=2", 400, "from: -9000000"),
        (f"bars?{span}&interval=99999999999999999999d", 400, "interval: '99999999999999999999d'"),
        (f"bars?exchange=binance&symbol=X&from=1&to={10**20}", 400, "to: 1000000000"),
    ]
    # the store comes from HUNDI_STORE (as in the container) when --store is not given
    health_env = {"HUNDI_STORE": str(data), "HUNDI_HEALTH_FILE": str(tmp_path / "health.json")}
    with serve(None, tmp_path, "--max-rows", "1000", env=health_env) as api:
        assert api.get("/api/v1/health").body == {"status": "ok", "store": "file"}
        # the image's HEALTHCHECK (`hundi health`) sees the running server's health file
        checked = subprocess.run(
            [sys.executable, "-m", "hundi", "health"],
            env={**os.environ, **health_env},
            capture_output=True,
            text=True,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        for path, status, message in cases:
            reply = api.get(f"/api/v1/{path}")
            assert reply.status == status, (path, reply.body)
            assert message in reply.body["error"], (path, reply.body)
        # under the row limit the same request is answered
        assert (
            len(
                _get(
                    api,
                    "coverage",
                    exchange=EXCHANGE,
                    symbol=SYMBOL,
                    channel="trades",
                    **{"from": start_ms, "to": end_ms},
                )
            )
            > 0
        )
        assert api.process.poll() is None


def test_store_down_is_a_clean_503_and_no_secret(tmp_path: Path) -> None:
    password = "s3cret-Pw-4711"
    url = f"cassandra://reader@127.0.0.1:{free_port()}/hundi_down"
    env = {"CASSANDRA_USER": "reader", "CASSANDRA_PASSWORD": password}
    with serve(url, tmp_path, env=env) as api:
        health = api.get("/api/v1/health")
        assert health.status == 503
        assert health.body["status"] == "unavailable" and health.body["store"] == "cassandra"
        bars = api.get(f"/api/v1/bars?exchange={EXCHANGE}&symbol={SYMBOL}&from=0&to=60000")
        assert bars.status == 503 and bars.body["error"].startswith("store unavailable: Cassandra")
        assert password not in str(health.body) + str(bars.body)
        assert api.get("/api/v1/health").status == 503  # still serving, still honest
        assert api.process.poll() is None
    output = api.process.stdout_text() + api.process.stderr_text()
    assert output.strip(), "hundi serve said nothing"
    assert password not in output


def test_an_aggregating_store_is_refused_at_start(tmp_path: Path) -> None:
    """KairosDB keeps per-ms aggregates: bars or lag from them would be wrong, so no serving."""
    done = subprocess.run(
        [str(HUNDI), "serve", "--store", "kairosdb+http://127.0.0.1:9", "--port", str(free_port())],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "stores per-millisecond aggregates, not every record" in done.stderr


TOKEN = "k3Xy-test-token-0123456789abcdef"


def test_a_token_guards_every_endpoint_but_health(recordings_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    replay(recordings_dir, str(data), tmp_path)
    query = f"/api/v1/symbols?exchange={EXCHANGE}"
    env = {"HUNDI_API_TOKEN": TOKEN}
    # listening on every address (the test talks to it over loopback) needs the token
    with serve(str(data), tmp_path, "--host", "0.0.0.0", env=env) as api:
        assert api.get("/api/v1/health").status == 200  # probes carry no secret
        assert api.get(query).status == 401
        assert api.get(query, token="wrong-" + TOKEN[6:]).status == 401
        reply = api.get(query, token=TOKEN)
        assert reply.status == 200 and {"exchange": EXCHANGE, "symbol": SYMBOL} in reply.body
    said = api.process.stdout_text() + api.process.stderr_text()
    assert "token required" in said and TOKEN not in said
    # also from .secret.hundi.env in the working directory
    (tmp_path / ".secret.hundi.env").write_text(f"HUNDI_API_TOKEN={TOKEN}\n")
    with serve(str(data), tmp_path) as api:
        assert api.get(query).status == 401
        assert api.get(query, token=TOKEN).status == 200


def test_a_public_bind_without_a_token_or_with_a_weak_one_refuses_to_start(
    tmp_path: Path,
) -> None:
    cases = [
        ({}, "--host 0.0.0.0 can be reached from other machines: set HUNDI_API_TOKEN"),
        ({"HUNDI_API_TOKEN": "change-me"}, "HUNDI_API_TOKEN is still a placeholder"),
        ({"HUNDI_API_TOKEN": "short"}, "HUNDI_API_TOKEN is 5 characters"),
    ]
    for extra, message in cases:
        env = {k: v for k, v in os.environ.items() if k != "HUNDI_API_TOKEN"}
        done = subprocess.run(
            [str(HUNDI), "serve", "--store", str(tmp_path), "--host", "0.0.0.0",
             "--port", str(free_port())],
            cwd=tmp_path, env={**env, **extra}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
        given = extra.get("HUNDI_API_TOKEN")
        assert given is None or given not in done.stderr, "the token was echoed"


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    """Bound before anything starts: no "serving on" line first, no traceback."""
    with serve(str(tmp_path), tmp_path) as api:
        port = api.base.rsplit(":", 1)[1]
        second = spawn([str(HUNDI), "serve", "--store", str(tmp_path), "--port", port])
        assert second.wait(timeout=60) == 2
        assert second.stderr_text() == f"hundi serve: port {port} on 127.0.0.1 is in use\n"
        assert second.stdout_text() == ""


def test_a_missing_store_folder_is_refused_at_start(tmp_path: Path) -> None:
    """It used to start and answer every request with 503."""
    done = subprocess.run(
        [str(HUNDI), "serve", "--store", "./nope", "--port", str(free_port())],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == "hundi serve: no store at 'nope' (not a directory)\n"
