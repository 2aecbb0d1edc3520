"""Simulator → ``hundi collect`` → embedded store *and* KairosDB, over real sockets: what
KairosDB holds is exactly what the scheme makes of what the lossless store holds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from kairos_samples import expected_trades_ms

import hundi
from hundi.records import Channel, Trade, from_arrow
from hundi.simulator.process import SimulatorProcess
from hundi.stores.base import StoreError
from hundi.stores.kairosdb import KairosStore

pytestmark = pytest.mark.slow

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def test_collect_into_kairosdb_matches_the_lossless_store(
    kairosdb_url: str, prefix: str, tmp_path: Path
) -> None:
    kairos = f"{kairosdb_url}?prefix={prefix}&ttl=3600&verify=1"
    summary_path = tmp_path / "summary.json"
    # Disconnects make connection-level events (no symbol, no channel) on top of market data.
    args = ["--market", "spot", "--rate", "400", "--seed", "3", "--fault", "disconnect:1.5"]
    with SimulatorProcess(args) as sim:
        done = subprocess.run(
            [sys.executable, "-m", "hundi", "collect", "binance", "--symbols", ",".join(SYMBOLS),
             "--channels", "trades,bbo,book,candles", "--endpoint", sim.ws_url,
             "--rest-endpoint", sim.rest_url, "--store", str(tmp_path / "data"),
             "--store", kairos, "--flush-interval", "0.2", "--duration", "4",
             "--summary-json", str(summary_path)],
            capture_output=True, text=True, timeout=90, cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["records"]["trades"] > 0

    lossless = str(tmp_path / "data")
    store = KairosStore(kairos)
    for native in SYMBOLS:
        symbol = f"{native[:-4]}-USDT"
        frame = hundi.read(lossless, exchange="binance", symbol=symbol, channel="trades")
        table = pa.Table.from_pandas(frame.reset_index(), preserve_index=False)
        trades = [t for t in from_arrow(Channel.TRADES, table) if isinstance(t, Trade)]
        want = expected_trades_ms(trades)
        got = store.read(exchange="binance", symbol=symbol, channel=Channel.TRADES)
        got = got.drop(columns=["exchange", "symbol"])
        pd.testing.assert_frame_equal(got[want.columns], want, check_exact=False, rtol=1e-12)

        quotes = hundi.read(lossless, exchange="binance", symbol=symbol, channel="bbo")
        last = quotes.groupby(quotes.index.floor("ms"))[["bid_price", "ask_size"]].last()
        stored = store.read(exchange="binance", symbol=symbol, channel=Channel.BBO)
        assert stored.index.tolist() == last.index.tolist()
        assert stored["bid_price"].tolist() == last["bid_price"].tolist()
        assert stored["ask_size"].tolist() == last["ask_size"].tolist()
    events = hundi.read(lossless, exchange="binance", channel="events")
    assert (events["symbol"] == "").any()
    tags = events.replace({"symbol": {"": "none"}, "channel": {"": "none"}})
    per_ms = tags.groupby([tags.index.floor("ms"), "symbol", "kind", "channel"]).size()
    stored_events = store.read(exchange="binance", symbol=None, channel=Channel.EVENTS)
    keyed = stored_events.set_index(["symbol", "kind", "channel"], append=True)["count"]
    assert keyed.sort_index().to_dict() == per_ms.astype("float64").sort_index().to_dict()
    with pytest.raises(StoreError, match="not stored in KairosDB"):
        store.read(exchange="binance", symbol=None, channel=Channel.BOOK)
