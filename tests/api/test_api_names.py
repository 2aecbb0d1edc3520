"""``hundi serve`` (a real process on a real socket) takes the exchange's own symbol and answers
a name the store does not hold with 404 and the stored choices, where it answered 200 ``[]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apiserver import Api, serve

from hundi.records import Bbo, Channel, Trade
from hundi.stores.embedded import EmbeddedStore

pytestmark = pytest.mark.slow

T0_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z
MS = 1_000_000


def trades(symbol: str, native: str) -> list[Trade]:
    return [
        Trade(exchange="binance", symbol=symbol, native_symbol=native, ts=(T0_MS + i * 100) * MS,
              recv_ts=(T0_MS + i * 100 + 2) * MS, trade_id=i, price=100.0 + i, size=1.0, side=1,
              first_trade_id=i, last_trade_id=i)
        for i in range(50)
    ]  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """binance: BTC-USDT trades and bbo; ETH-USDT and ETH-USDT-PERP trades (both ETHUSDT)."""
    root = tmp_path / "data"
    writer = EmbeddedStore(str(root))
    quotes = [
        Bbo(exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=(T0_MS + i) * MS,
            recv_ts=(T0_MS + i) * MS, update_id=i, bid_price=99.0, bid_size=1.0, ask_price=101.0,
            ask_size=2.0)
        for i in range(0, 5000, 250)
    ]  # fmt: skip
    writer.write(
        {
            Channel.TRADES: trades("BTC-USDT", "BTCUSDT")
            + trades("ETH-USDT", "ETHUSDT")
            + trades("ETH-USDT-PERP", "ETHUSDT"),
            Channel.BBO: quotes,
        }
    )
    writer.close()
    return root


def get(api: Api, path: str, **params: object) -> tuple[int, Any]:
    query = "&".join(f"{k}={v}" for k, v in {"from": T0_MS, "to": T0_MS + 60_000, **params}.items())
    reply = api.get(f"/api/v1/{path}?{query}")
    return reply.status, reply.body


def test_native_symbols_and_names_the_store_does_not_hold(store: Path, tmp_path: Path) -> None:
    with serve(str(store), tmp_path) as api:
        # the exchange's own name answers what the stored name answers
        for path in ("bars", "book", "coverage", "lag"):
            status, native = get(api, path, exchange="binance", symbol="BTCUSDT", interval="1s")
            assert status == 200 and native, (path, native)
            assert native == get(api, path, exchange="binance", symbol="BTC-USDT", interval="1s")[1]
        # a native name of spot and perpetual: 400 naming both
        status, body = get(api, "bars", exchange="binance", symbol="ETHUSDT")
        assert status == 400 and body["choices"] == ["ETH-USDT", "ETH-USDT-PERP"], body
        assert "'ETHUSDT' names ETH-USDT and ETH-USDT-PERP" in body["error"]
        # not stored: 404 with what is, closest first
        cases: list[tuple[str, dict[str, str], str, str]] = [
            ("bars", {"exchange": "binance", "symbol": "BTC-USTD"},
             "holds no bars or trades of binance 'BTC-USTD'", "BTC-USDT"),
            ("bars", {"exchange": "binanse", "symbol": "BTC-USDT"},
             "holds no exchange 'binanse'; it holds: binance", "binance"),
            ("symbols", {"exchange": "binanse"}, "holds no exchange 'binanse'", "binance"),
            ("book", {"exchange": "binance", "symbol": "ETH-USDT"},
             "holds no book_top or bbo of binance 'ETH-USDT' (ETH-USDT has trades)", "BTC-USDT"),
            ("lag", {"exchange": "binance", "channel": "book"},
             "holds no book of binance; it holds: bbo, trades", "bbo"),
            ("events", {"exchange": "binance", "symbol": "SOL-USDT"},
             "holds no binance 'SOL-USDT'", "BTC-USDT"),
        ]  # fmt: skip
        for path, params, message, closest in cases:
            status, body = get(api, path, **params)
            assert status == 404, (path, params, body)
            assert message in body["error"], (path, body)
            assert body["choices"][0] == closest, (path, body)
        # a stored stream with nothing in the range: still 200 and no rows
        later = {"from": T0_MS + 3_600_000, "to": T0_MS + 3_660_000}
        status, body = get(api, "bars", exchange="binance", symbol="BTCUSDT", **later)
        assert (status, body) == (200, [])
        assert api.process.poll() is None
