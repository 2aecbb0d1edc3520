"""The KairosDB store against the real server: scheme round trips, per-ms trade aggregates,
server-side aggregation equal to pandas, verification, and clear errors."""

from __future__ import annotations

import dataclasses
import random
import socket

import numpy as np
import pandas as pd
import pytest
from kairos_samples import MS, T0, bbo, expected_trades_ms, one_of_each, stored_trades_ms, trade

from hundi.records import Channel, Record
from hundi.stores.base import StoreError, open_store
from hundi.stores.kairosdb import KairosStore


@pytest.mark.slow
def test_every_record_type_round_trips_per_the_scheme(store: KairosStore) -> None:
    batches = one_of_each()
    trades = batches[Channel.TRADES]
    # Trade 3 shares ms 0 with trades 1 and 2 but comes in the next batch, after a flush.
    first: dict[Channel, list[Record]] = {**batches, Channel.TRADES: trades[:2]}
    store.write(first)
    store.flush()
    store.write({Channel.TRADES: trades[2:]})
    store.flush()

    got = stored_trades_ms(store)
    want = expected_trades_ms(trades)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(got[want.columns], want, check_exact=False, rtol=1e-12)
    assert list(got.columns) == [
        "count", "volume", "quote_volume", "buy_volume", "sell_volume", "vwap",
        "first_price", "high_price", "low_price", "last_price",
    ]  # fmt: skip
    assert got["count"].tolist() == [3.0, 1.0]

    quotes = store.read(exchange="binance", symbol="BTC-USDT", channel=Channel.BBO)
    assert quotes.index.tolist() == [pd.Timestamp(T0, tz="UTC"), pd.Timestamp(T0 + MS, tz="UTC")]
    assert quotes["bid_price"].tolist() == [2.0, 3.0]  # last update of ms 0 wins
    assert quotes["bid_size"].tolist() == [1e-05, 1e-05]  # a double, not a long 0
    assert quotes["ask_price"].tolist() == [2.5, 3.5]

    ticker = store.read(exchange="binance", symbol="BTC-USDT", channel=Channel.TICKER)
    assert len(ticker) == 1
    assert ticker.iloc[0]["trade_count"] == 123.0
    assert ticker.iloc[0]["price_change_pct"] == 11.1

    candles = store.read(exchange="binance", symbol="BTC-USDT", channel=Channel.CANDLES)
    assert candles.index.tolist() == [pd.Timestamp(T0, tz="UTC")] * 2  # at open_time
    by_interval = candles.set_index("interval")
    assert by_interval.loc["1m", "close"] == 2.25  # the closing update overwrote the first
    assert by_interval.loc["1m", "closed"] == 1.0
    assert by_interval.loc["1m", "trade_count"] == 9.0
    assert by_interval.loc["1s", "volume"] == 1.0

    events = store.read(exchange="binance", symbol="BTC-USDT", channel=Channel.EVENTS)
    counts = events.set_index(["kind", "channel"])["count"]
    assert counts.to_dict() == {("gap", "book"): 2.0, ("resync", "book"): 1.0}
    # Connection-level events have no symbol or channel: stored under the tag value "none".
    connection = store.read(exchange="binance", symbol="none", channel=Channel.EVENTS)
    assert connection[["kind", "channel", "count"]].values.tolist() == [["reconnect", "none", 1.0]]

    assert store.not_sent == {"book": 1, "book_l3": 2}
    with pytest.raises(StoreError, match="'book' is not stored in KairosDB"):
        store.read(exchange="binance", symbol="BTC-USDT", channel=Channel.BOOK)
    with pytest.raises(StoreError, match="'book_l3' is not stored in KairosDB"):
        store.read(exchange="binance", symbol="BTC-USDT", channel=Channel.BOOK_L3)


@pytest.mark.slow
def test_same_millisecond_trades_split_and_redelivered_aggregate_exactly(
    store: KairosStore,
) -> None:
    rng = random.Random(7)
    trades = [
        trade(i, ms=rng.randrange(40), price=round(100 + rng.random(), 2),
              size=round(rng.random(), 6), side=rng.choice((1, -1)), symbol=symbol)
        for i, symbol in zip(range(400), ["BTC-USDT", "ETH-USDT"] * 200, strict=True)
    ]  # fmt: skip
    trades.sort(key=lambda t: t.ts)
    cuts = sorted(rng.sample(range(1, len(trades)), 5))
    batches = [trades[a:b] for a, b in zip([0, *cuts], [*cuts, len(trades)], strict=True)]
    for number, batch in enumerate(batches):
        store.write({Channel.TRADES: batch})
        if number == 2:
            store.write({Channel.TRADES: batch})  # re-delivered (a retry): counted once
        store.flush()
    for symbol in ("BTC-USDT", "ETH-USDT"):
        want = expected_trades_ms([t for t in trades if t.symbol == symbol])
        got = stored_trades_ms(store, symbol)
        pd.testing.assert_frame_equal(got[want.columns], want, check_exact=False, rtol=1e-12)
    both = store.read(exchange="binance", symbol=None, channel=Channel.TRADES)
    assert both["count"].sum() == len(trades)
    assert both.index.is_monotonic_increasing


def quotes_over_seconds() -> list[Record]:
    rng = random.Random(11)
    return [
        bbo(rng.randrange(3_500), rng.randrange(1_000_000), round(rng.uniform(10, 20), 3),
            symbol=symbol)
        for symbol in ("BTC-USDT", "ETH-USDT")
        for _ in range(1500)
    ]  # fmt: skip


def test_server_aggregation_equals_pandas_on_the_written_series(store: KairosStore) -> None:
    quotes = quotes_over_seconds()
    store.write({Channel.BBO: quotes})
    store.flush()
    frame = store.aggregate(
        exchange="binance", channel="bbo", aggregate=["avg", "max", "count"], sampling="1s",
        fields=["bid_price"],
    )  # fmt: skip
    assert list(frame.columns) == [
        "exchange",
        "symbol",
        "bid_price_avg",
        "bid_price_max",
        "bid_price_count",
    ]
    for symbol, got in frame.groupby("symbol"):
        # What was written: the last quote of each ms (KairosDB keeps one point per ms).
        mine = pd.DataFrame(
            [(q.ts, q.bid_price) for q in quotes if q.symbol == symbol], columns=["ts", "bid"]
        )  # fmt: skip
        written = mine.groupby(mine["ts"] // MS)["bid"].last()
        written.index = pd.to_datetime(written.index, unit="ms", utc=True)
        want = written.resample("1s", label="left", closed="left").agg(["mean", "max", "count"])
        want = want[want["count"] > 0]
        assert got.index.tolist() == want.index.tolist()
        np.testing.assert_allclose(got["bid_price_avg"], want["mean"], rtol=1e-12)
        np.testing.assert_array_equal(got["bid_price_max"], want["max"])
        np.testing.assert_array_equal(got["bid_price_count"], want["count"])
    across = store.aggregate(
        exchange="binance", channel="bbo", aggregate=["count"], sampling="1h", group_by=(),
        fields=["ask_size"],
    )  # fmt: skip
    assert list(across.columns) == ["exchange", "ask_size"]
    assert across["ask_size"].tolist() == [float(len({(q.symbol, q.ts // MS) for q in quotes}))]


def test_read_time_range_covers_the_ms_buckets_overlapping_start_end(store: KairosStore) -> None:
    store.write({Channel.BBO: [bbo(ms, 0, float(ms)) for ms in range(10)]})
    store.flush()
    window = store.read(
        exchange="binance", symbol="BTC-USDT", channel=Channel.BBO,
        start=pd.Timestamp(T0 + 2 * MS + 500, tz="UTC").to_pydatetime(warn=False),
        end=pd.Timestamp(T0 + 5 * MS, tz="UTC").to_pydatetime(),
    )  # fmt: skip
    assert window["bid_price"].tolist() == [2.0, 3.0, 4.0]  # floor(start) .. end exclusive


@pytest.mark.slow
def test_verification_detects_a_point_kairosdb_does_not_have(
    kairosdb_url: str, prefix: str
) -> None:
    store = KairosStore(kairosdb_url, prefix=prefix, ttl=3600, verify=True, verify_timeout=1)
    batches: dict[Channel, list[Record]] = {Channel.BBO: [bbo(ms, 0, 5.0) for ms in range(5)]}
    store.write(batches)
    store.flush()  # verified: every point is there
    store.verify_records(batches)
    delete = {
        "start_absolute": T0 // MS + 3,
        "end_absolute": T0 // MS + 3,
        "metrics": [{"name": f"{prefix}.bbo.ask_size", "tags": {"symbol": ["BTC-USDT"]}}],
    }
    store.client.post_json(f"{store.settings.datapoints_path}/delete", delete)
    with pytest.raises(StoreError) as failure:
        store.verify_records(batches)
    message = str(failure.value)
    assert f"{prefix}.bbo.ask_size {{exchange=binance, symbol=BTC-USDT}}" in message
    assert "1 of 5 points missing" in message
    assert "2024-05-01T00:00:00.003000+00:00" in message
    assert "bid_price" not in message


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_unreachable_server_is_one_clear_store_error_and_keeps_the_data() -> None:
    port = free_port()
    store = open_store(f"kairosdb+http://writer:s3cret@127.0.0.1:{port}", timeout=2)
    assert isinstance(store, KairosStore)
    store.write({Channel.BBO: [bbo(0, 0, 1.0)]})
    for _ in range(2):  # the writer retries flush; the data stays for the retry
        with pytest.raises(StoreError) as failure:
            store.flush()
        assert str(failure.value) == (
            f"KairosDB at http://127.0.0.1:{port} is unreachable: Connection refused"
        )
        assert failure.value.__cause__ is None
        assert failure.value.__suppress_context__
        assert store.backlog_points == 4
    assert "s3cret" not in store.describe()


def test_http_errors_name_the_status_and_kairosdb_message(kairosdb_url: str) -> None:
    wrong_path = KairosStore(kairosdb_url, datapoints_path="/api/v1/nothing")
    wrong_path.write({Channel.BBO: [bbo(0, 0, 1.0)]})
    with pytest.raises(StoreError, match=r"rejected the request \(POST /api/v1/nothing .*HTTP 404"):
        wrong_path.flush()
    store = KairosStore(kairosdb_url)
    with pytest.raises(StoreError, match="unknown aggregator 'median'; known: avg, min"):
        store.aggregate(exchange="binance", channel="bbo", aggregate=["median"])
    with pytest.raises(StoreError, match="sampling '1 sec' must be"):
        store.aggregate(exchange="binance", channel="bbo", aggregate=["avg"], sampling="1 sec")
    with pytest.raises(StoreError, match="bbo has no field 'bid'; fields: bid_price"):
        store.aggregate(exchange="binance", channel="bbo", fields=["bid"])


def test_non_finite_values_are_skipped_and_counted(store: KairosStore) -> None:
    quotes = [bbo(0, 0, float("nan")), bbo(1, 0, 2.0), bbo(2, 0, float("inf"))]
    store.write({Channel.BBO: quotes})
    store.flush()
    frame = store.read(exchange="binance", symbol="BTC-USDT", channel=Channel.BBO)
    assert len(frame) == 3
    assert frame["bid_price"].isna().tolist() == [True, False, True]
    assert frame["ask_price"].isna().tolist() == [True, False, True]  # nan + 0.5, inf + 0.5
    assert frame["ask_size"].tolist() == [3.0, 3.0, 3.0]
    prefix = store.settings.metric_prefix
    assert store.non_finite == {f"{prefix}.bbo.bid_price": 2, f"{prefix}.bbo.ask_price": 2}


def test_bounded_memory_write_sends_early_and_bodies_are_split(
    kairosdb_url: str, prefix: str
) -> None:
    store = KairosStore(
        kairosdb_url, prefix=prefix, ttl=3600, max_pending_points=400, max_points_per_post=150
    )
    for second in range(3):
        store.write({Channel.BBO: [bbo(second * 1000 + ms, 0, 1.0) for ms in range(100)]})
        assert store.backlog_points <= 400 + 400  # what was buffered plus this batch
    assert store.points_sent == 800  # two batches of 4 x 100 points went before the third
    store.flush()
    assert store.backlog_points == 0
    assert store.points_sent == 1200
    store.settings = dataclasses.replace(store.settings, verify_timeout_s=20)
    everything = [bbo(s * 1000 + ms, 0, 1.0) for s in range(3) for ms in range(100)]
    store.verify_records({Channel.BBO: everything})


@pytest.mark.slow
def test_discard_then_resend_from_the_spool_stores_each_trade_once(store: KairosStore) -> None:
    first = [trade(i, ms=i % 5, price=10.0 + i, size=1.0, side=1) for i in range(10)]
    again = [trade(i, ms=3 + i % 5, price=10.0 + i, size=2.0, side=-1) for i in range(10, 20)]
    assert store.idempotent
    store.write({Channel.TRADES: first})
    store.flush()
    store.write({Channel.TRADES: again})
    store.discard()  # the writer's outage path: these batches went to its spool
    assert store.backlog_points == 0
    store.write({Channel.TRADES: again})  # drained from the spool after recovery
    store.flush()
    want = expected_trades_ms(first + again)
    got = stored_trades_ms(store)
    pd.testing.assert_frame_equal(got[want.columns], want, check_exact=False, rtol=1e-12)
