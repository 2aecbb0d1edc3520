"""``/api/v1/status`` and ``/api/v1/top`` (what the status page polls) over known stored rows:
counts, rates, lags, quiet streams, sync state, the last gap, the top of book; and the page
itself served without the token while its data needs it."""

from __future__ import annotations

import secrets
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from apiserver import serve

from hundi.records import Bbo, Channel, Event, Trade
from hundi.stores.base import open_store

pytestmark = pytest.mark.slow

S = 1_000_000_000
MS = 1_000_000


def trade(symbol: str, ts: int, lag_ns: int, trade_id: int) -> Trade:
    return Trade(
        exchange="binance", symbol=symbol, native_symbol=symbol.replace("-", ""), ts=ts,
        recv_ts=ts + lag_ns, trade_id=trade_id, price=100.0, size=1.0, side=1,
        first_trade_id=trade_id, last_trade_id=trade_id,
    )  # fmt: skip


def event(symbol: str, ts: int, kind: str, channel: str, expected: int = -1,
          received: int = -1, detail: str = "") -> Event:  # fmt: skip
    return Event(
        exchange="binance", symbol=symbol, native_symbol=symbol.replace("-", ""), ts=ts,
        recv_ts=ts, kind=kind, channel=channel, expected=expected, received=received,
        detail=detail,
    )  # fmt: skip


def write(store_url: str, records: dict[Channel, list[Any]]) -> None:
    store = open_store(store_url)
    try:
        store.write(records)
        store.flush()
    finally:
        store.close()


@pytest.fixture
def stored(tmp_path: Path) -> tuple[str, int]:
    """30 BTC-USDT trades, one a second over the last 30 s (lag 5 ms, one of 40 ms); a symbol
    last traded 2 h ago; events; one best quote."""
    url = str(tmp_path / "data")
    now = time.time_ns()
    first = now - 30 * S
    trades = [trade("BTC-USDT", first + i * S, (40 if i == 7 else 5) * MS, i) for i in range(30)]
    trades.append(trade("OLD-USDT", now - 7200 * S, 5 * MS, 1))
    events = [
        event("ETH-USDT", now - 100 * S, "synced", "book", detail="snapshot applied"),
        event("BTC-USDT", now - 100 * S, "synced", "book", detail="snapshot applied"),
        event("BTC-USDT", now - 50 * S, "gap", "trades", 10, 12, "ids 10..11"),
        event("BTC-USDT", now - 40 * S, "resync", "book", detail="disconnect"),
        event("", now - 45 * S, "reconnect", "", detail="conn 1"),
    ]
    quote = Bbo(
        exchange="binance", symbol="BTC-USDT", native_symbol="BTCUSDT", ts=now - 2 * S,
        recv_ts=now - 2 * S, update_id=9, bid_price=99.5, bid_size=2.0, ask_price=100.5,
        ask_size=3.0,
    )  # fmt: skip
    write(url, {Channel.TRADES: trades, Channel.EVENTS: events, Channel.BBO: [quote]})
    return url, now


def test_status_counts_rates_lags_and_integrity(stored: tuple[str, int], tmp_path: Path) -> None:
    url, now = stored
    with serve(url, tmp_path) as api:
        reply = api.get("/api/v1/status?window=60")
        assert reply.status == 200, reply.body
        body = reply.body
        assert body["window_s"] == 60 and body["events_lookback_s"] == 24 * 3600
        streams = {(s["symbol"], s["channel"]): s for s in body["streams"]}
        btc = streams["BTC-USDT", "trades"]
        assert btc["count"] == 30
        # it began within the window: its rate is over the time since its first record
        since_first_s = (body["now"] * MS - (now - 30 * S + 5 * MS)) / S
        assert since_first_s > 30
        assert btc["rate"] == pytest.approx(30 / since_first_s, rel=1e-3)
        assert btc["lag_p50_ms"] == 5.0 and btc["lag_max_ms"] == 40.0
        assert btc["last_ms"] == (now - 30 * S + 29 * S + 5 * MS) // MS
        # a stream silent for the whole window is listed, at 0/s, not hidden
        assert streams["OLD-USDT", "trades"] == {
            "exchange": "binance", "symbol": "OLD-USDT", "channel": "trades", "count": 0,
            "rate": 0.0, "lag_p50_ms": None, "lag_max_ms": None, "last_ms": None,
        }  # fmt: skip
        assert ("BTC-USDT", "bbo") in streams  # events are not a stream
        assert {s["channel"] for s in body["streams"]} == {"trades", "bbo"}
        symbols = {s["symbol"]: s for s in body["symbols"]}
        assert symbols["BTC-USDT"]["sync"] == "resyncing"
        assert symbols["BTC-USDT"]["sync_since_ms"] == (now - 40 * S) // MS
        assert symbols["BTC-USDT"]["last_gap"] == {
            "time": (now - 50 * S) // MS, "channel": "trades", "expected": 10, "received": 12,
            "detail": "ids 10..11",
        }  # fmt: skip
        assert symbols["BTC-USDT"]["events"] == {"gap": 1, "resync": 1, "reconnect": 0, "stale": 0}
        assert symbols["ETH-USDT"]["sync"] == "synced" and symbols["ETH-USDT"]["last_gap"] is None
        assert symbols[""]["events"]["reconnect"] == 1  # connection-wide

        short = api.get("/api/v1/status?window=20").body
        since = short["now"] * MS - 20 * S  # the window ends at the request's now
        expected = sum(now - 30 * S + i * S >= since for i in range(30))
        counted = {(s["symbol"], s["channel"]): s["count"] for s in short["streams"]}
        assert counted["BTC-USDT", "trades"] == expected

        top = api.get("/api/v1/top?exchange=binance&symbol=BTC-USDT").body
        assert top == {
            "time": (now - 2 * S) // MS, "source": "bbo", "bids": [[99.5, 2.0]],
            "asks": [[100.5, 3.0]],
        }  # fmt: skip
        nothing = api.get("/api/v1/top?exchange=binance&symbol=OLD-USDT").body
        assert nothing == {"time": None, "source": None, "bids": [], "asks": []}
        native = api.get("/api/v1/top?exchange=binance&symbol=BTCUSDT").body
        assert native == top  # the exchange's own name reads the stored symbol
        unknown = api.get("/api/v1/top?exchange=binance&symbol=BTC-USDX")
        assert unknown.status == 404 and "BTC-USDT" in unknown.body["error"], unknown
        unknown = api.get("/api/v1/status?exchange=binanse")
        assert unknown.status == 404 and "binance" in unknown.body["error"], unknown


def test_status_refuses_bad_parameters_in_one_line(stored: tuple[str, int], tmp_path: Path) -> None:
    url, _ = stored
    with serve(url, tmp_path, "--max-range", "1m") as api:
        for query, status, words in [
            ("window=0", 400, "is not whole seconds in 1..600"),
            ("window=601", 400, "is not whole seconds in 1..600"),
            ("window=abc", 400, "is not whole seconds"),
            ("window=120", 413, "longer than hundi serve --max-range"),
            ("exchange=../x", 400, "is not a valid name"),
        ]:
            reply = api.get(f"/api/v1/status?{query}")
            assert reply.status == status, (query, reply.body)
            assert words in reply.body["error"]
        # the events' lookback follows the range limit (one request never reads beyond it)
        assert api.get("/api/v1/status?window=10").body["events_lookback_s"] == 60
        assert api.get("/api/v1/top?exchange=binance").status == 400


def test_page_is_open_and_its_data_needs_the_token(tmp_path: Path) -> None:
    token = secrets.token_urlsafe(32)
    (tmp_path / "data").mkdir()
    with serve(str(tmp_path / "data"), tmp_path, env={"HUNDI_API_TOKEN": token}) as api:
        with urllib.request.urlopen(f"{api.base}/status", timeout=60) as reply:
            html = reply.read().decode()
            assert reply.status == 200
            assert reply.headers["Content-Type"].startswith("text/html")
            policy = reply.headers["Content-Security-Policy"]
            assert "connect-src 'self'" in policy and "base-uri 'none'" in policy
            # only the page's own script runs (by its hash), never an injected inline one
            assert "script-src 'sha256-" in policy and "script-src 'unsafe-inline'" not in policy
        assert "<script>" in html and "http://" not in html and "https://" not in html
        with urllib.request.urlopen(f"{api.base}/", timeout=60) as reply:
            assert reply.url.endswith("/status")  # the root leads to the page
        # the empty store: its status is empty, a top of anything is not stored (404)
        for path, answer in (
            ("/api/v1/status", 200), ("/api/v1/top?exchange=binance&symbol=BTC-USDT", 404)
        ):  # fmt: skip
            assert api.get(path).status == 401
            assert api.get(path, token=token).status == answer
