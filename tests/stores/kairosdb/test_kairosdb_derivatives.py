"""Derivative tickers, liquidations and instruments in KairosDB: the scheme's conversion (no
server) and round trips against the real server (NaN = no point, same-ms liquidations
aggregated, re-delivery counted once, instruments refused with the reason)."""

from __future__ import annotations

import math

import msgspec
import pandas as pd
import pytest

from derivative_samples import MS, SECOND, T0, derivative_batches, liquidation, ticker
from hundi.records import Channel
from hundi.stores.base import StoreError
from hundi.stores.kairosdb import KairosStore
from hundi.stores.kairosdb.scheme import (
    DERIVATIVE_TICKER_FIELDS,
    EXCLUDED,
    Converter,
    LastPerMs,
    LiquidationsPerMs,
    rule_for,
)

PERP = ("binance", "BTC-USDT-PERP")
DATED = ("binance", "BTC-USD-20261225")


def test_derivative_ticker_is_the_last_full_record_of_each_ms_without_a_source_tag() -> None:
    rule = rule_for(Channel.DERIVATIVE_TICKER)
    assert isinstance(rule, LastPerMs) and rule.full_state
    assert rule.tag_names == ("exchange", "symbol")
    assert rule.fields == DERIVATIVE_TICKER_FIELDS
    pending = Converter().convert(
        {Channel.DERIVATIVE_TICKER: derivative_batches()[Channel.DERIVATIVE_TICKER]}
    )
    rows = pending[("derivative_ticker", PERP)]
    # two messages in ms 0: the later (merged) record wins and holds the open interest too
    assert rows[T0 // MS][:3] == (60_000.5, 60_001.25, 0.0001)
    assert math.isnan(rows[T0 // MS][3]) and rows[T0 // MS][4] == 12_345.678
    later = rows[(T0 + SECOND) // MS]
    assert later[:3] == (60_010.0, 60_011.0, -0.00025) and math.isnan(later[3])
    assert later[4:] == (12_345.678, 740_949_000.5)
    assert ("derivative_ticker", DATED) in pending


def test_a_state_merged_after_a_newer_piece_is_never_written_back_in_time() -> None:
    """Open interest stamped 50 ms by the venue, merged after the mark price of 100 ms: the
    merged record (both values) is the state at 100 ms; written at 50 ms it would put the new
    open interest before the old one and leave the stale state as the last point."""
    mark = ticker(T0 + 100 * MS, "mark-price", mark_price=100.0, open_interest=1.0)
    interest = ticker(T0 + 50 * MS, "open-interest", mark_price=100.0, open_interest=2.0)
    rows = Converter().convert({Channel.DERIVATIVE_TICKER: [mark, interest]})[
        ("derivative_ticker", PERP)
    ]
    assert list(rows) == [(T0 + 100 * MS) // MS]
    assert rows[(T0 + 100 * MS) // MS][4] == 2.0


def test_the_newest_ms_is_rolled_back_with_an_unsent_batch() -> None:
    """A batch KairosDB did not take is discarded and delivered again: its records must land
    where they would have, not after the newest ms of the discarded attempt."""
    converter = Converter()
    first = ticker(T0 + 10 * MS, "mark-price", mark_price=1.0)
    converter.convert({Channel.DERIVATIVE_TICKER: [first]})
    converter.commit()
    converter.convert({Channel.DERIVATIVE_TICKER: [ticker(T0 + 90 * MS, "mark-price")]})
    converter.rollback()  # not stored: the spool re-sends it later, after this one
    again = converter.convert({Channel.DERIVATIVE_TICKER: [ticker(T0 + 50 * MS, "mark-price")]})
    assert list(again[("derivative_ticker", PERP)]) == [(T0 + 50 * MS) // MS]
    # committed state stays: a piece older than the committed newest ms is that state
    converter.commit()
    converter.rollback()
    late = converter.convert({Channel.DERIVATIVE_TICKER: [ticker(T0 + 20 * MS, "funding-rate")]})
    assert list(late[("derivative_ticker", PERP)]) == [(T0 + 50 * MS) // MS]


def test_liquidations_of_one_ms_are_aggregated_per_side_and_redelivery_counts_once() -> None:
    rule = rule_for(Channel.LIQUIDATIONS)
    assert isinstance(rule, LiquidationsPerMs)
    assert rule.tag_names == ("exchange", "symbol", "side")
    converter = Converter(horizon_ms=100)
    batch = derivative_batches()[Channel.LIQUIDATIONS]
    out: dict = {}
    converter.add({Channel.LIQUIDATIONS: batch[:2]}, out)
    converter.add({Channel.LIQUIDATIONS: batch}, out)  # a retry of the first two, plus more
    ms = (T0 + 5 * MS) // MS
    sells = out[("liquidations_ms", (*PERP, "sell"))][ms]
    assert sells == (2, 2.0, (59_990.0 * 0.5 + 59_980.0 * 1.5) / 2.0, 59_990.0, 59_980.0)
    assert out[("liquidations_ms", (*PERP, "buy"))][ms] == (1, 0.25, 60_020.0, 60_020.0, 60_020.0)
    dated = out[("liquidations_ms", (*DATED, "buy"))][(T0 + 2 * SECOND) // MS]
    assert dated == (1, 30.0, 61_100.0, 61_100.0, 61_100.0)


def test_identical_liquidations_of_one_message_count_apart_by_position() -> None:
    """A cascade message may list two liquidations alike in side, price and size: ``position``
    (their place in the message) is what tells them apart, as in the lossless stores."""
    first = liquidation(T0, -1, 59_990.0, 0.5)
    twin = msgspec.structs.replace(first, position=1)
    converter = Converter(horizon_ms=100)
    out: dict = {}
    converter.add({Channel.LIQUIDATIONS: [first, twin]}, out)
    converter.add({Channel.LIQUIDATIONS: [first, twin]}, out)  # re-delivered: still two
    assert out[("liquidations_ms", (*PERP, "sell"))][T0 // MS] == (
        2, 1.0, 59_990.0, 59_990.0, 59_990.0,
    )  # fmt: skip


def test_a_late_liquidation_beyond_the_horizon_is_counted_not_sent() -> None:
    converter = Converter(horizon_ms=10)
    converter.convert({Channel.LIQUIDATIONS: [liquidation(T0, 1, 1.0, 1.0),
                                              liquidation(T0 + 50 * MS, 1, 1.0, 1.0)]})  # fmt: skip
    assert converter.convert({Channel.LIQUIDATIONS: [liquidation(T0 + 1, 1, 2.0, 1.0)]}) == {}
    rule = converter.rule(Channel.LIQUIDATIONS)
    assert isinstance(rule, LiquidationsPerMs) and rule.late == {(*PERP, "buy"): 1}


def test_instruments_are_excluded_with_a_reason() -> None:
    assert rule_for(Channel.INSTRUMENTS) is None
    assert "not a time series" in EXCLUDED["instruments"]
    out: dict = {}
    instruments = derivative_batches()[Channel.INSTRUMENTS]
    assert Converter().add({Channel.INSTRUMENTS: instruments}, out) == len(instruments)
    assert out == {}


@pytest.mark.slow
def test_derivative_channels_round_trip_against_the_real_server(store: KairosStore) -> None:
    batches = derivative_batches()
    store.write(batches)
    store.flush()
    store.write({Channel.LIQUIDATIONS: batches[Channel.LIQUIDATIONS][:2]})  # re-delivered
    store.flush()

    tickers = store.read(exchange="binance", symbol="BTC-USDT-PERP",
                         channel=Channel.DERIVATIVE_TICKER)  # fmt: skip
    assert tickers.index.tolist() == [pd.Timestamp(T0, tz="UTC"),
                                      pd.Timestamp(T0 + SECOND, tz="UTC")]  # fmt: skip
    assert tickers["mark_price"].tolist() == [60_000.5, 60_010.0]
    assert tickers["funding_rate"].tolist() == [0.0001, -0.00025]
    assert tickers["open_interest"].tolist() == [12_345.678, 12_345.678]
    # NaN = no point: never known predicted funding has none, open interest value one
    assert tickers["predicted_funding_rate"].isna().all()
    assert tickers["open_interest_value"].isna().tolist() == [True, False]
    assert store.non_finite == {}  # expected NaN: not counted as a fault
    dated = store.read(exchange="binance", symbol="BTC-USD-20261225",
                       channel=Channel.DERIVATIVE_TICKER)  # fmt: skip
    assert dated["mark_price"].tolist() == [61_000.0]
    assert dated["funding_rate"].isna().all()

    liquidations = store.read(exchange="binance", symbol="BTC-USDT-PERP",
                              channel=Channel.LIQUIDATIONS)  # fmt: skip
    by_side = liquidations.set_index("side")
    assert by_side.loc["sell", "count"] == 2.0  # counted once despite the re-delivery
    assert by_side.loc["sell", "size"] == 2.0
    assert by_side.loc["buy", "count"] == 1.0
    assert by_side.loc["buy", "avg_price"] == 60_020.0
    assert liquidations.index.unique().tolist() == [pd.Timestamp(T0 + 5 * MS, tz="UTC")]

    assert store.not_sent == {"instruments": 3}
    with pytest.raises(StoreError, match="'instruments' is not stored in KairosDB"):
        store.read(exchange="binance", symbol="BTC-USDT-PERP", channel=Channel.INSTRUMENTS)


def test_funding_over_time_downsamples_on_the_server(store: KairosStore) -> None:
    rates = [ticker(T0 + i * 250 * MS, "markPrice", mark_price=100.0 + i, funding_rate=i * 1e-5)
             for i in range(12)]  # fmt: skip
    store.write({Channel.DERIVATIVE_TICKER: rates})
    store.flush()
    frame = store.aggregate(exchange="binance", channel="derivative_ticker", aggregate=["last"],
                            sampling="1s", fields=["funding_rate", "mark_price"])  # fmt: skip
    assert frame["mark_price"].tolist() == [103.0, 107.0, 111.0]
    assert frame["funding_rate"].tolist() == pytest.approx([3e-5, 7e-5, 11e-5])
