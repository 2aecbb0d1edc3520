"""The live status page of ``hundi serve``, for the single-machine user who runs no Grafana.

``GET /status`` is one self-contained HTML file (inline CSS and JS, no CDN: nothing is fetched
from the internet) that polls JSON endpoints of this server every second:

- ``/api/v1/status``: per stream (exchange, symbol, channel) the records stored in the last
  ``window`` seconds, their rate, the receive lag (p50, max) and the time of the last one; per
  symbol the order book's sync state (its last ``synced``/``resync`` event), the last gap and
  the integrity events of the last day;
- ``/api/v1/top``: the latest stored top-of-book levels (the ``book_levels`` series when the
  collector keeps one, ``--series book:10@1s``; else the latest best bid/ask quote);
- ``/api/v1/bars`` and ``/api/v1/book`` at 1 s for the chart of recent trades and mid.

Cost follows use: every read is bounded in time (the last ``window`` seconds of two columns,
the last day of events), pruned by the store's time statistics, and counted against
``--max-rows``, so a page left open on a big store reads the recent data only. The page itself
holds no data and is served without the token (a browser cannot send a header on navigation);
every request it makes sends the token as ``Authorization: Bearer`` (:mod:`hundi.api.auth`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import time
from collections.abc import Iterator, Sequence
from importlib import resources
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from aiohttp import web

from hundi.api.queries import BadRequest, Limits, Row, TooMuchData
from hundi.api.server import LIMITS, _name, _required_name, _run, _text
from hundi.query import resolve
from hundi.records import Channel, EventKind
from hundi.stores.base import Store, Unsupported

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
#: what a collector receives from the venue (the derived series and own orders are not streams
#: whose rate or lag says anything about the collection; nor are liquidations, silent for
#: minutes in a calm market, which the page would flag as a dead stream, or instruments, stored
#: at start and on listing changes only)
STREAM_CHANNELS = (
    Channel.TRADES,
    Channel.BBO,
    Channel.BOOK,
    Channel.BOOK_L3,
    Channel.TICKER,
    Channel.CANDLES,
    Channel.DERIVATIVE_TICKER,
)
DEFAULT_WINDOW_S = 60
MAX_WINDOW_S = 600
EVENTS_LOOKBACK_NS = 24 * 3600 * NS_PER_S
#: rows up to this far ahead of our clock are read too (an exchange clock running ahead)
CLOCK_SLACK_NS = 60 * NS_PER_S
SYNC_KINDS = (EventKind.SYNCED.value, EventKind.RESYNC.value)
COUNTED_KINDS = (
    EventKind.GAP.value,
    EventKind.RESYNC.value,
    EventKind.RECONNECT.value,
    EventKind.STALE.value,
)
PAGE = "status.html"


def _bounded(
    store: Store,
    limits: Limits,
    *,
    exchange: str,
    channel: Channel,
    symbol: str | None,
    start_ns: int,
    end_ns: int,
    columns: Sequence[str],
    ordered: bool = False,
) -> Iterator[pa.Table]:
    """The rows of ``start_ns <= ts < end_ns`` a day at a time, at most ``max_rows`` of them."""
    seen = 0
    for _, table in store.read_days(
        exchange=exchange, symbol=symbol, channel=channel, start_ns=start_ns, end_ns=end_ns,
        columns=columns, ordered=ordered,
    ):  # fmt: skip
        seen += table.num_rows
        if seen > limits.max_rows:
            raise TooMuchData(
                f"more than {limits.max_rows} {channel.value} rows in the status window; use a "
                "shorter window (or hundi serve --max-rows)"
            )
        yield table


def _ns(table: pa.Table, name: str) -> np.ndarray[Any, np.dtype[np.int64]]:
    column = table.column(name)
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return np.asarray(column.to_numpy(), np.int64)


def _listed(store: Store, exchange: str | None) -> list[str]:
    if exchange is not None:
        resolve(store, exchange, None)  # not stored: 404 listing what is
        return [exchange]
    try:
        return store.exchanges()
    except Unsupported:
        raise BadRequest(f"{store.describe()} cannot list its exchanges; pass exchange=") from None


def stream_rows(
    store: Store, limits: Limits, *, exchange: str | None, now_ns: int, window_ns: int
) -> list[Row]:
    """Per stored stream: records of the last ``window_ns`` (by exchange time), their rate per
    second (over the window, or since the first of them when the stream began within it, at
    least 1 s), receive lag p50/max in ms and the receive time of the last one (ms; None when none
    arrived in the window: the stream is listed, so a silent stream shows as 0/s, not missing)."""
    rows: list[Row] = []
    for venue in _listed(store, exchange):
        try:
            channels = [c for c in store.channels(venue) if c in STREAM_CHANNELS]
        except Unsupported:
            channels = list(STREAM_CHANNELS)
        for channel in channels:
            parts = list(
                _bounded(
                    store, limits, exchange=venue, channel=channel, symbol=None,
                    start_ns=now_ns - window_ns, end_ns=now_ns + CLOCK_SLACK_NS,
                    columns=("symbol", "ts", "recv_ts"),
                )
            )  # fmt: skip
            seen: dict[str, Row] = {}
            if parts:
                table = pa.concat_tables(parts)
                # per symbol by its dictionary code: integer masks in numpy, no Python object
                # per row (a 300 s window of busy book streams is millions of rows, polled
                # every second; measured 0.50-0.57 s -> 0.10-0.12 s on 2M rows, 4 symbols)
                symbols = pc.dictionary_encode(table.column("symbol")).combine_chunks()
                codes = symbols.indices.to_numpy(zero_copy_only=False)
                names = symbols.dictionary.to_pylist()
                ts, recv = _ns(table, "ts"), _ns(table, "recv_ts")
                for code in np.unique(codes).tolist():
                    mine = codes == code
                    lag_ms = (recv[mine] - ts[mine]) / NS_PER_MS
                    count = int(mine.sum())
                    # a stream that began within the window: its rate over the time it has run
                    span_ns = now_ns - max(now_ns - window_ns, int(recv[mine].min()))
                    seen[names[code]] = {
                        "count": count,
                        "rate": count / max(span_ns / NS_PER_S, 1.0),
                        "lag_p50_ms": float(np.median(lag_ms)),
                        "lag_max_ms": float(lag_ms.max()),
                        "last_ms": int(recv[mine].max()) // NS_PER_MS,
                    }
            try:
                listed = store.symbols(venue, channel)
            except Unsupported:
                listed = []
            quiet = {"count": 0, "rate": 0.0, "lag_p50_ms": None, "lag_max_ms": None}
            for name in sorted(set(listed) | set(seen)):
                stats = seen.get(name, {**quiet, "last_ms": None})
                rows.append({"exchange": venue, "symbol": name, "channel": channel.value, **stats})
    return rows


def symbol_rows(
    store: Store, limits: Limits, *, exchange: str | None, now_ns: int, lookback_ns: int
) -> list[Row]:
    """Per (exchange, symbol) with integrity events in the lookback: the book's sync state (its
    last ``synced`` or ``resync`` event), the last gap, and how many gaps, resyncs, reconnects
    and stale streams there were. Connection-wide events (reconnects) have the symbol ``""``."""
    rows: list[Row] = []
    for venue in _listed(store, exchange):
        parts = list(
            _bounded(
                store, limits, exchange=venue, channel=Channel.EVENTS, symbol=None,
                start_ns=now_ns - lookback_ns, end_ns=now_ns + CLOCK_SLACK_NS,
                columns=("ts", "symbol", "kind", "channel", "expected", "received", "detail"),
                ordered=True,
            )
        )  # fmt: skip
        if not parts:
            continue
        events = pa.concat_tables(parts).to_pylist()  # a day of events: small
        by_symbol: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            by_symbol.setdefault(event["symbol"], []).append(event)
        for name in sorted(by_symbol):
            mine = by_symbol[name]
            sync = [e for e in mine if e["kind"] in SYNC_KINDS and e["channel"] == "book"]
            gaps = [e for e in mine if e["kind"] == EventKind.GAP.value]
            rows.append(
                {
                    "exchange": venue,
                    "symbol": name,
                    "sync": _sync_state(sync[-1]) if sync else None,
                    "sync_since_ms": _ms(sync[-1]["ts"]) if sync else None,
                    "last_gap": _gap(gaps[-1]) if gaps else None,
                    "events": {k: sum(e["kind"] == k for e in mine) for k in COUNTED_KINDS},
                }
            )
    return rows


def _ms(ts: Any) -> int:
    """An Arrow timestamp (as ``to_pylist`` gives it: a datetime) or int ns → epoch ms."""
    if isinstance(ts, int):
        return ts // NS_PER_MS
    return int(ts.timestamp() * 1000)


def _sync_state(event: dict[str, Any]) -> str:
    return "synced" if event["kind"] == EventKind.SYNCED.value else "resyncing"


def _gap(event: dict[str, Any]) -> Row:
    return {
        "time": _ms(event["ts"]),
        "channel": event["channel"],
        "expected": event["expected"],
        "received": event["received"],
        "detail": event["detail"],
    }


def top_levels(
    store: Store, limits: Limits, *, exchange: str, symbol: str, now_ns: int, window_ns: int
) -> Row:
    """The latest stored top of book: the deepest ``book_levels`` snapshot at the latest time
    in the window, else the latest best bid/ask quote (one level), else none."""
    start, end = now_ns - window_ns, now_ns + CLOCK_SLACK_NS
    # a symbol the store does not hold at all: 404 listing what it holds; one with no quotes
    # (trades only) has an empty top. BTCUSDT reads BTC-USDT.
    found = resolve(store, exchange, symbol)
    symbol = found if found is not None else symbol
    parts = list(
        _bounded(
            store, limits, exchange=exchange, channel=Channel.BOOK_LEVELS, symbol=symbol,
            start_ns=start, end_ns=end,
            columns=("ts", "interval", "depth", "side", "level", "price", "size"),
        )
    )  # fmt: skip
    if parts:
        frame = pa.concat_tables(parts).to_pandas()
        frame["ts"] = frame["ts"].astype("int64")
        latest = frame[frame["ts"] == frame["ts"].max()]
        latest = latest[latest["depth"] == latest["depth"].max()]
        latest = latest[latest["interval"] == latest["interval"].iloc[0]].sort_values("level")
        first = latest.iloc[0]

        def side(sign: int) -> list[list[float]]:
            chosen = latest[latest["side"] == sign]
            pairs = zip(chosen["price"], chosen["size"], strict=True)
            return [[float(price), float(size)] for price, size in pairs]

        return {
            "time": int(first["ts"]) // NS_PER_MS,
            "source": f"book_levels:{int(first['depth'])}@{first['interval']}",
            "bids": side(1),
            "asks": side(-1),
        }
    quotes = list(
        _bounded(
            store, limits, exchange=exchange, channel=Channel.BBO, symbol=symbol,
            start_ns=start, end_ns=end,
            columns=("ts", "bid_price", "bid_size", "ask_price", "ask_size"), ordered=True,
        )
    )  # fmt: skip
    if quotes:
        last = quotes[-1].slice(quotes[-1].num_rows - 1).to_pylist()[0]
        return {
            "time": _ms(last["ts"]),
            "source": "bbo",
            "bids": [[last["bid_price"], last["bid_size"]]],
            "asks": [[last["ask_price"], last["ask_size"]]],
        }
    return {"time": None, "source": None, "bids": [], "asks": []}


# --- handlers --------------------------------------------------------------------------------


def _window_ns(request: web.Request) -> int:
    text = _text(request, "window", required=False) or str(DEFAULT_WINDOW_S)
    if not text.isdigit() or not 1 <= int(text) <= MAX_WINDOW_S:
        raise BadRequest(f"window: {text[:16]!r} is not whole seconds in 1..{MAX_WINDOW_S}")
    window_ns = int(text) * NS_PER_S
    if window_ns > request.app[LIMITS].max_range_ns:
        raise TooMuchData("window: longer than hundi serve --max-range")
    return window_ns


@functools.cache
def _page() -> tuple[str, str]:
    """The page and the CSP hash of its one inline script: only that script may run, so an
    injected one cannot (no ``'unsafe-inline'`` for scripts)."""
    html = resources.files("hundi.api").joinpath(PAGE).read_text(encoding="utf-8")
    script = html.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return html, f"'sha256-{digest}'"


async def page(request: web.Request) -> web.Response:
    """The status page itself (static: no data, no token in it)."""
    html, script_hash = _page()
    return web.Response(
        text=html,
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            # everything it needs is inline or from this server; it embeds nothing else
            "Content-Security-Policy": (
                f"default-src 'none'; script-src {script_hash}; style-src 'unsafe-inline'; "
                "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                "base-uri 'none'; form-action 'none'"
            ),
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def to_page(request: web.Request) -> web.Response:
    raise web.HTTPFound("/status")


async def status(request: web.Request) -> web.Response:
    exchange = _name(request, "exchange", required=False)
    window_ns = _window_ns(request)
    limits = request.app[LIMITS]
    lookback_ns = min(EVENTS_LOOKBACK_NS, limits.max_range_ns)

    def read(store: Store) -> Row:
        now_ns = time.time_ns()
        return {
            "now": now_ns // NS_PER_MS,
            "window_s": window_ns // NS_PER_S,
            "events_lookback_s": lookback_ns // NS_PER_S,
            "store": store.describe(),
            "streams": stream_rows(
                store, limits, exchange=exchange, now_ns=now_ns, window_ns=window_ns
            ),
            "symbols": symbol_rows(
                store, limits, exchange=exchange, now_ns=now_ns, lookback_ns=lookback_ns
            ),
        }

    return web.json_response(await _run(request, read))


async def top(request: web.Request) -> web.Response:
    exchange, symbol = _required_name(request, "exchange"), _required_name(request, "symbol")
    window_ns = _window_ns(request)
    limits = request.app[LIMITS]
    row = await _run(
        request,
        lambda store: top_levels(
            store, limits, exchange=exchange, symbol=symbol, now_ns=time.time_ns(),
            window_ns=window_ns,
        ),
    )  # fmt: skip
    return web.json_response(row)
