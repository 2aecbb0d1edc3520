"""The status page's stream table lists derivative tickers (a steady stream whose rate and lag
say whether collection works), not liquidations (silent for minutes in a calm market: the page
would flag a healthy feed as dead) nor instruments (metadata)."""

from __future__ import annotations

from pathlib import Path

from derivative_samples import SECOND, T0, derivative_batches, ticker
from hundi.api.queries import Limits
from hundi.api.status import STREAM_CHANNELS, stream_rows
from hundi.records import Channel
from hundi.stores.embedded import EmbeddedStore


def test_stream_rows_cover_the_derivative_ticker_only(tmp_path: Path) -> None:
    store = EmbeddedStore(str(tmp_path))
    store.write(derivative_batches())
    store.write({Channel.DERIVATIVE_TICKER: [ticker(T0 + i * SECOND, "markPrice")
                                             for i in range(2, 10)]})  # fmt: skip
    store.flush()
    now = T0 + 10 * SECOND
    rows = stream_rows(store, Limits(), exchange="binance", now_ns=now, window_ns=60 * SECOND)
    assert {r["channel"] for r in rows} == {"derivative_ticker"}
    perp = next(r for r in rows if r["symbol"] == "BTC-USDT-PERP")
    assert perp["count"] == 11 and perp["lag_p50_ms"] == 3.0
    assert Channel.LIQUIDATIONS not in STREAM_CHANNELS
    assert Channel.INSTRUMENTS not in STREAM_CHANNELS
