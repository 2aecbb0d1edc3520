"""The lag histogram covers derivative tickers and liquidations (exchange event times), not
instruments (``ts`` is when hundi read the listing)."""

from __future__ import annotations

from msgspec.structs import replace

from derivative_samples import MS, PERP, T0, instrument, liquidation, ticker
from hundi.pipeline.histograms import LagHistogram
from hundi.records import Channel


def test_derivative_channels_have_a_lag_series_and_instruments_none() -> None:
    lag = LagHistogram()
    lag.observe(
        {
            Channel.DERIVATIVE_TICKER: [ticker(T0, "markPrice")],  # received 3 ms later
            Channel.LIQUIDATIONS: [liquidation(T0, -1, 1.0, 1.0)],  # 2 ms later
            Channel.INSTRUMENTS: [replace(instrument(T0, PERP), recv_ts=T0 + 5 * MS)],
        }
    )
    snapshot = lag.buckets.snapshot()
    assert set(snapshot) == {("binance", "derivative_ticker"), ("binance", "liquidations")}
    assert snapshot[("binance", "derivative_ticker")][1] == 0.003
    assert snapshot[("binance", "liquidations")][1] == 0.002
