"""Funding, mark price and open interest over time, and liquidations per interval, from the API:
the rows equal pandas on the stored records (last value per interval; sums per side), nulls
for values never known, every interval of a liquidation range, clear errors; over aiohttp's
test server and, once, ``hundi serve`` on a real socket."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest
from aiohttp.test_utils import TestClient, TestServer
from apiserver import serve

from derivative_samples import (
    DATED,
    MS,
    SECOND,
    T0,
    derivative_batches,
    liquidation,
    ticker,
)
from hundi.api.queries import (
    DERIVATIVE_COLUMNS,
    Limits,
    derivative_rows,
    liquidation_rows,
    stored_symbols,
    window,
)
from hundi.api.server import create_app
from hundi.query import NotStored
from hundi.records import CONTRACTS, Channel, Record, Trade
from hundi.stores.embedded import EmbeddedStore

MINUTE = 60 * SECOND
START_MS, END_MS = T0 // MS, (T0 + 10 * MINUTE) // MS


def many_tickers() -> list[Record]:
    """10 minutes of merged records at random times; open interest arrives after 90 s."""
    rng = random.Random(5)
    times = sorted(T0 + rng.randrange(10 * MINUTE) for _ in range(900))
    out: list[Record] = []
    for i, at in enumerate(times):
        known = at >= T0 + 90 * SECOND
        out.append(
            ticker(at, "markPrice" if i % 3 else "open_interest",
                   mark_price=60_000 + rng.random() * 100, index_price=60_000 + rng.random(),
                   funding_rate=rng.uniform(-1e-4, 1e-4),
                   open_interest=12_000 + i if known else math.nan,
                   open_interest_value=(12_000 + i) * 60_000.0 if known else math.nan)
        )  # fmt: skip
    return out


def many_liquidations() -> list[Record]:
    rng = random.Random(9)
    return [
        liquidation(T0 + rng.randrange(10 * MINUTE), rng.choice((1, -1)),
                    round(60_000 + rng.random() * 50, 1), round(rng.random() * 3, 3))
        for _ in range(300)
    ]  # fmt: skip


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    store = EmbeddedStore(str(tmp_path / "data"))
    store.write(derivative_batches("other"))
    store.write({Channel.DERIVATIVE_TICKER: many_tickers()})
    store.write({Channel.LIQUIDATIONS: many_liquidations()})
    store.close()
    return tmp_path / "data"


def frame_of(records: list[Record]) -> pd.DataFrame:
    frame = pd.DataFrame([msgspec.structs.asdict(r) for r in records])
    return frame.sort_values(["ts", "recv_ts"], kind="stable")


def test_derivative_rows_are_the_last_record_of_each_interval(store_dir: Path) -> None:
    store = EmbeddedStore(str(store_dir), read_only=True)
    span = window(START_MS, END_MS, MINUTE, Limits())
    rows = derivative_rows(store, Limits(), exchange="binance", symbol="BTC-USDT-PERP",
                           span=span)  # fmt: skip
    expected = frame_of(many_tickers())
    expected["label"] = expected["ts"] // MINUTE * MINUTE // MS
    last = expected.groupby("label").last()
    assert [r["time"] for r in rows] == last.index.tolist()
    for name in DERIVATIVE_COLUMNS[:-1]:
        got = np.array([np.nan if r[name] is None else r[name] for r in rows], float)
        np.testing.assert_array_equal(got, last[name].to_numpy(float), err_msg=name)
    assert rows[0]["open_interest"] is None  # not known in the first minute: null, not 0
    assert rows[2]["open_interest"] is not None
    assert rows[0]["predicted_funding_rate"] is None
    assert {r["next_funding_time"] for r in rows} == {(T0 + 8 * 3600 * SECOND) // MS}
    # the native symbol reads the stored one
    again = derivative_rows(store, Limits(), exchange="binance", symbol="BTCUSDT", span=span)
    assert [r["time"] for r in again] == [r["time"] for r in rows]


def test_the_newest_merged_state_wins_even_when_its_piece_has_an_earlier_ts(
    tmp_path: Path,
) -> None:
    """A venue stamps each piece (mark price, open interest...) with its own time: the open
    interest merged after a mark price may carry an earlier ``ts``. The interval's state is the
    record received last, which holds both, not the one with the latest ``ts``."""
    mark = ticker(T0 + 100 * MS, "mark-price", mark_price=100.0, open_interest=1.0)
    interest = msgspec.structs.replace(
        ticker(T0 + 50 * MS, "open-interest", mark_price=100.0, open_interest=2.0),
        recv_ts=mark.recv_ts + 10 * MS,
    )
    # across an interval edge: the later piece's ts is in the interval before the state's
    edge = ticker(T0 + MINUTE + 10 * MS, "mark-price", mark_price=101.0, open_interest=2.0)
    stale = msgspec.structs.replace(
        ticker(T0 + MINUTE - 10 * MS, "open-interest", mark_price=101.0, open_interest=3.0),
        recv_ts=edge.recv_ts + 10 * MS,
    )
    store = EmbeddedStore(str(tmp_path))
    store.write({Channel.DERIVATIVE_TICKER: [mark, interest, edge, stale]})
    store.flush()
    span = window(START_MS, END_MS, MINUTE, Limits())
    first, second = derivative_rows(store, Limits(), exchange="binance", symbol="BTC-USDT-PERP",
                                    span=span)  # fmt: skip
    assert first["time"] == START_MS
    assert (first["mark_price"], first["open_interest"]) == (100.0, 2.0)
    # the open interest 3 was merged into a state already holding the mark price of the next
    # interval: it is that interval's state, and the first interval's stays as it ended
    assert second["time"] == START_MS + 60_000
    assert (second["mark_price"], second["open_interest"]) == (101.0, 3.0)


def test_a_dated_future_has_no_funding_time_and_an_unstored_symbol_is_404(
    store_dir: Path,
) -> None:
    store = EmbeddedStore(str(store_dir), read_only=True)
    span = window(START_MS, END_MS, SECOND, Limits())
    (row,) = derivative_rows(store, Limits(), exchange="other", symbol=DATED["symbol"],
                             span=span)  # fmt: skip
    assert row["next_funding_time"] == 0 and row["funding_rate"] is None
    assert row["mark_price"] == 61_000.0
    with pytest.raises(NotStored, match="ETH-USDT-PERP"):
        derivative_rows(store, Limits(), exchange="binance", symbol="ETH-USDT-PERP", span=span)


def test_liquidation_rows_sum_each_interval_and_side(store_dir: Path) -> None:
    store = EmbeddedStore(str(store_dir), read_only=True)
    span = window(START_MS, END_MS, MINUTE, Limits())
    source, rows = liquidation_rows(store, Limits(), exchange="binance",
                                    symbol="BTC-USDT-PERP", span=span)  # fmt: skip
    assert source == "liquidations:sampled"
    assert len(rows) == 10  # every interval, also an empty one
    frame = frame_of(many_liquidations())
    frame["label"] = frame["ts"] // MINUTE * MINUTE // MS
    for side, name in ((-1, "sell"), (1, "buy")):
        mine = frame[frame["side"] == side].groupby("label")
        counts = mine.size().reindex([r["time"] for r in rows], fill_value=0)
        sizes = mine["size"].sum().reindex([r["time"] for r in rows], fill_value=0.0)
        assert [r[f"{name}_count"] for r in rows] == counts.tolist()
        np.testing.assert_allclose([r[f"{name}_size"] for r in rows], sizes.to_numpy(),
                                   rtol=1e-12)  # fmt: skip
    complete, (row, *_) = liquidation_rows(
        store, Limits(), exchange="other", symbol=DATED["symbol"],
        span=window((T0 + 2 * SECOND) // MS, END_MS, MINUTE, Limits()),
    )  # fmt: skip
    assert complete == "liquidations:complete"
    assert row["buy_count"] == 1 and row["buy_size"] == 30.0


def test_liquidation_intervals_at_the_range_edges_are_whole(tmp_path: Path) -> None:
    """A range starting and ending inside an interval (Grafana's "last 6 hours" does) still
    sums the whole first and last interval, as their labels promise (bars do the same)."""
    store = EmbeddedStore(str(tmp_path))
    store.write({Channel.LIQUIDATIONS: [
        liquidation(T0 + 10 * SECOND, -1, 100.0, 1.0),  # before ``from``, same interval
        liquidation(T0 + 50 * SECOND, -1, 100.0, 2.0),
        liquidation(T0 + MINUTE + 20 * SECOND, 1, 100.0, 4.0),
        liquidation(T0 + MINUTE + 40 * SECOND, 1, 100.0, 8.0),  # after ``to``, same interval
    ]})  # fmt: skip
    store.flush()
    span = window((T0 + 30 * SECOND) // MS, (T0 + MINUTE + 30 * SECOND) // MS, MINUTE, Limits())
    _, rows = liquidation_rows(store, Limits(), exchange="binance", symbol="BTC-USDT-PERP",
                               span=span)  # fmt: skip
    assert [r["time"] for r in rows] == [START_MS, START_MS + 60_000]
    assert [(r["sell_count"], r["sell_size"]) for r in rows] == [(2, 3.0), (0, 0.0)]
    assert [(r["buy_count"], r["buy_size"]) for r in rows] == [(0, 0.0), (2, 12.0)]


async def test_a_nan_liquidation_size_answers_valid_json(tmp_path: Path) -> None:
    """NaN is no JSON token: a strict parser (and Grafana) refuses ``NaN`` in a body."""
    store = EmbeddedStore(str(tmp_path))
    store.write({Channel.LIQUIDATIONS: [liquidation(T0, -1, 100.0, math.nan)]})
    store.close()
    async with TestClient(TestServer(create_app(str(tmp_path)))) as opened:
        reply = await opened.get(
            f"/api/v1/liquidations?exchange=binance&symbol=BTC-USDT-PERP&from={START_MS}"
            f"&to={START_MS + 60_000}&interval=1m"
        )
        assert reply.status == 200
        (row,) = msgspec.json.decode(await reply.read())  # strict: NaN would not parse
    assert row["sell_count"] == 1 and row["sell_size"] is None


def test_a_spot_symbol_has_no_derivative_rows_not_an_error(tmp_path: Path) -> None:
    store = EmbeddedStore(str(tmp_path))
    spot = Trade(exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=T0,
                 recv_ts=T0, trade_id=1, price=1.0, size=1.0, side=1, first_trade_id=1,
                 last_trade_id=1)  # fmt: skip
    store.write({Channel.TRADES: [spot]})
    store.flush()
    span = window(START_MS, END_MS, MINUTE, Limits())
    assert derivative_rows(store, Limits(), exchange="binance", symbol="BTC-USDT", span=span) == []
    source, rows = liquidation_rows(store, Limits(), exchange="binance", symbol="BTC-USDT",
                                    span=span)  # fmt: skip
    # no liquidation stored: zeros, and a source that claims no complete feed
    assert source == "liquidations:none" and len(rows) == 10
    assert {r["buy_count"] + r["sell_count"] for r in rows} == {0}


def test_symbols_with_only_derivative_data_are_listed(tmp_path: Path) -> None:
    store = EmbeddedStore(str(tmp_path))
    store.write({Channel.DERIVATIVE_TICKER: [ticker(T0, "mark-price", exchange="okx",
                                                    size_unit=CONTRACTS)]})  # fmt: skip
    store.write({Channel.LIQUIDATIONS: [liquidation(T0, 1, 1.0, 1.0, exchange="okx",
                                                    names=DATED)]})  # fmt: skip
    store.flush()
    assert stored_symbols(store, "okx") == [
        {"exchange": "okx", "symbol": "BTC-USD-20261225"},
        {"exchange": "okx", "symbol": "BTC-USDT-PERP"},
    ]


@pytest.fixture
async def client(store_dir: Path) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(str(store_dir)))) as opened:
        yield opened


async def test_the_endpoints_answer_rows_and_say_their_source(client: TestClient) -> None:
    query = f"exchange=binance&symbol=BTC-USDT-PERP&from={START_MS}&to={END_MS}&interval=5m"
    reply = await client.get(f"/api/v1/derivatives?{query}")
    assert reply.status == 200
    rows = await reply.json()
    assert [r["time"] for r in rows] == [START_MS, START_MS + 300_000]
    assert set(rows[0]) == {"time", *DERIVATIVE_COLUMNS}
    assert reply.headers["X-Hundi-Source"] == "derivative_ticker"
    reply = await client.get(f"/api/v1/liquidations?{query}")
    assert reply.status == 200 and reply.headers["X-Hundi-Source"] == "liquidations:sampled"
    rows = await reply.json()
    assert sum(r["sell_count"] + r["buy_count"] for r in rows) == 300


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("exchange=binance&from=0&to=1000", 400, "symbol"),
        ("exchange=binance&symbol=BTC-USDT-PERP&from=10&to=5", 400, "must be after from"),
        ("exchange=binance&symbol=BTC-USDT-PERP&from=0&to=1000&interval=1x", 400, "interval"),
        ("exchange=binance&symbol=NOPE-PERP&from=0&to=1000", 404, "NOPE-PERP"),
        (f"exchange=binance&symbol=BTC-USDT-PERP&from={START_MS}&to={END_MS}&interval=1ms",
         413, "intervals"),
    ],
)  # fmt: skip
async def test_bad_requests_say_why(
    client: TestClient,
    query: str,
    status: int,
    message: str,
) -> None:
    for path in ("derivatives", "liquidations"):
        reply = await client.get(f"/api/v1/{path}?{query}")
        assert reply.status == status, (path, await reply.text())
        assert message in (await reply.json())["error"]


@pytest.mark.slow
def test_hundi_serve_answers_funding_over_a_real_socket(store_dir: Path, tmp_path: Path) -> None:
    with serve(str(store_dir), tmp_path) as api:
        reply = api.get(
            f"/api/v1/derivatives?exchange=binance&symbol=BTCUSDT&from={START_MS}"
            f"&to={END_MS}&interval=1m"
        )
    assert reply.status == 200, reply.body
    assert len(reply.body) == 10
    assert all(-1e-4 <= r["funding_rate"] <= 1e-4 for r in reply.body)
