"""The collector against the Bybit simulator over real WebSockets, checked against the
simulator's ground truth: trades stored once and exactly as sent, final books equal to the
simulator's top-N views, derivative tickers merged to the simulator's latest fields,
liquidations as sent (order side opposite the position); under faults (dropped sockets, ``u=1``
service restarts, skipped ``u``) every break a stored event followed by a resync in place, and
the frame accounting balanced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hundi.connection.manager import ConnectionSettings
from hundi.exchanges.base import FrameStatus, RecordSink, VenueConfig
from hundi.exchanges.bybit import BybitProtocol, BybitVenue
from hundi.exchanges.bybit.protocol import trade_id
from hundi.pipeline.collector import Collector, CollectorSettings
from hundi.records import BASE, Channel
from hundi.research.book import book_at
from hundi.simulator.bybit.server import FULL, BybitSimConfig, BybitSimulator
from hundi.stores.embedded import EmbeddedStore

pytestmark = pytest.mark.slow

SYMBOLS = ("BTCUSDT", "ETHUSDT")
DEPTH = 50
CHANNELS = (
    Channel.TRADES, Channel.BOOK, Channel.BBO, Channel.TICKER, Channel.DERIVATIVE_TICKER,
    Channel.LIQUIDATIONS, Channel.INSTRUMENTS, Channel.CANDLES, Channel.EVENTS,
)  # fmt: skip


async def until(condition: Callable[[], bool], within: float = 60.0) -> None:
    """Wait for ``condition`` with a deadline generous for a loaded machine."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def settings() -> CollectorSettings:
    return CollectorSettings(
        flush_interval=0.2,
        max_batch_records=20_000,
        queue_batches=16,
        shutdown_timeout_s=20.0,
        connection=ConnectionSettings(
            backoff_initial_s=0.05, stale_after_s=10.0, check_every_frames=8, tick_s=0.02
        ),
    )


@pytest.fixture
async def start_sim() -> AsyncIterator[Callable[..., Any]]:
    started: list[BybitSimulator] = []

    async def factory(**options: Any) -> BybitSimulator:
        sim = BybitSimulator(BybitSimConfig(symbols=SYMBOLS, **options))
        await sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.stop()


def books_equal(venue: BybitProtocol, sim: BybitSimulator, category: str = "linear") -> bool:
    """Every book (depth 50 or full, and the bbo's depth 1) is the simulator's view."""
    for symbol in SYMBOLS:
        spec = sim.specs[symbol]
        for depth in (FULL if venue.full else DEPTH, 1):
            name = "full" if depth == FULL else str(depth)
            book = venue.books_by_topic.get(f"orderbook.{name}.{symbol}")
            stream = sim.streams.get((category, depth, symbol))
            if book is None or stream is None or not book.synced or book.u != stream.u:
                return False
            pd, qd = 10**spec.price_decimals, 10**spec.qty_decimals
            if book.bids.levels != {p / pd: q / qd for p, q in stream.bids.items()}:
                return False
            if book.asks.levels != {p / pd: q / qd for p, q in stream.asks.items()}:
                return False
    return True


def books_synced(venue: BybitProtocol) -> bool:
    """Every book is synced: while the market runs, the collector's books trail the
    simulator's by the frames in flight, so equality is only waited for once it is paused
    (under load a running market may never be caught at an equal instant)."""
    for symbol in SYMBOLS:
        for depth in (FULL if venue.full else DEPTH, 1):
            name = "full" if depth == FULL else str(depth)
            book = venue.books_by_topic.get(f"orderbook.{name}.{symbol}")
            if book is None or not book.synced:
                return False
    return True


class Counting:
    """Counts the frames the venue was given (to know every sent frame arrived) and keeps the
    (kind, detail) of the events it emitted: a fault the simulator injected while the collector
    was not connected (a slow start, a reconnect) is never seen, so tests wait for these."""

    def __init__(self, venue: BybitProtocol) -> None:
        self.frames = 0
        self.events: list[tuple[str, str]] = []
        receive, on_close = venue.receive, venue.on_close

        def seen(out: RecordSink, before: int) -> None:
            self.events += [(str(e.kind), e.detail) for e in out.events[before:]]

        def counted(conn_key: str, data: bytes, recv_ns: int, out: RecordSink) -> FrameStatus:
            self.frames += 1
            before = len(out.events)
            status = receive(conn_key, data, recv_ns, out)
            seen(out, before)
            return status

        def closed(conn_key: str, now_ns: int, out: RecordSink) -> None:
            before = len(out.events)
            on_close(conn_key, now_ns, out)
            seen(out, before)

        venue.receive = counted
        venue.on_close = closed

    def saw(self, kind: str, text: str) -> int:
        return sum(1 for k, detail in self.events if k == kind and text in detail)


async def collect(
    sim: BybitSimulator,
    tmp_path: Path,
    ready: Callable[[BybitProtocol, Counting], bool],
    exact: bool,
    config: VenueConfig | None = None,
) -> tuple[BybitProtocol, EmbeddedStore, dict[str, Any]]:
    """Collect until ``ready``, then pause the market and stop once the books caught up (and,
    with ``exact``, once every frame the simulator sent arrived)."""
    config = config or VenueConfig(
        "linear", SYMBOLS, CHANNELS, endpoint=f"{sim.ws_url}/v5/public/linear",
        rest_endpoint=sim.rest_url, options={"depth": str(DEPTH)},
    )  # fmt: skip
    venue = BybitVenue(config)
    counter = Counting(venue)
    store = EmbeddedStore(str(tmp_path))
    collector = Collector([venue], [store], settings=settings())
    task = asyncio.ensure_future(collector.run())
    try:
        await until(lambda: ready(venue, counter))
        sim.paused = True
        category = config.market
        await until(lambda: books_equal(venue, sim, category))
        if exact:  # a kline round after the pause holds the final klines
            pushes = sim.kline_pushes
            await until(lambda: sim.kline_pushes >= pushes + 2)

            def sent() -> int:
                return sum(c.record.frames_sent for c in sim._conns.values())

            await until(lambda: counter.frames == sent() and books_equal(venue, sim, category))
    finally:
        collector.stop("test done")
        summary = await asyncio.wait_for(task, 60)
    return venue, store, summary


def stored(store: EmbeddedStore, channel: Channel) -> Any:
    return store.read(exchange="bybit", symbol=None, channel=channel)


def sent_trade_ids(sim: BybitSimulator, symbol: str, category: str = "linear") -> list[int]:
    sent = sim.trades_sent[symbol]
    ids = []
    for entry in sent:
        sent_category, i, seq, fill = entry.split(":")
        if sent_category == category:
            ids.append(trade_id(i, int(seq), int(fill)))
    return ids


async def test_trades_books_tickers_and_liquidations_equal_the_simulators(
    start_sim: Callable[..., Any], tmp_path: Path
) -> None:
    sim = await start_sim(rate=300, liquidation_rate=0.1)

    def ready(venue: BybitProtocol, seen: Counting) -> bool:
        liquidations = sum(len(v) for v in sim.liquidations.values())
        return sim.steps >= 600 and liquidations >= 3 and books_synced(venue)

    _, store, summary = await collect(sim, tmp_path, ready, exact=True)
    assert summary["balanced"]
    trades = stored(store, Channel.TRADES)
    for symbol in SYMBOLS:
        ids = [int(i) for i in trades[trades["native_symbol"] == symbol]["trade_id"]]
        assert len(ids) == len(set(ids)), "a trade stored twice"
        assert ids and sorted(ids) == sorted(sent_trade_ids(sim, symbol))
        sent = sent_trade_ids(sim, symbol)
        assert sent == sorted(sent)  # ids in the order Bybit sent the trades (readers sort by id)
    events = stored(store, Channel.EVENTS)
    assert "gap" not in [str(k) for k in events["kind"]]
    book = stored(store, Channel.BOOK)
    assert {str(s) for s in book["symbol"]} == {"BTC-USDT-PERP", "ETH-USDT-PERP"}
    liquidations = stored(store, Channel.LIQUIDATIONS)
    for symbol in SYMBOLS:
        rows = liquidations[liquidations["native_symbol"] == symbol]
        columns = (rows["side"].tolist(), rows["price"].tolist(), rows["size"].tolist())
        got = sorted(zip(*columns, strict=True))
        want = sorted(
            (-1 if s == "Buy" else 1, float(p), float(v)) for _, s, v, p in sim.liquidations[symbol]
        )
        assert got == want
    assert sum(len(v) for v in sim.liquidations.values()) >= 3
    dt = stored(store, Channel.DERIVATIVE_TICKER)
    for symbol in SYMBOLS:
        rows = dt[dt["native_symbol"] == symbol].sort_values("recv_ts")
        last = rows.iloc[-1]
        truth = sim.tickers[symbol]
        assert last["mark_price"] == float(truth["markPrice"])
        assert last["index_price"] == float(truth["indexPrice"])
        assert last["funding_rate"] == float(truth["fundingRate"])
        assert last["open_interest"] == float(truth["openInterest"])
        assert last["size_unit"] == BASE
    candles = stored(store, Channel.CANDLES)
    for symbol in SYMBOLS:
        rows = candles[candles["native_symbol"] == symbol].sort_values("recv_ts")
        kline = sim.market.symbols[symbol].klines["1m"]
        pd = 10 ** sim.specs[symbol].price_decimals
        assert rows.iloc[-1]["close"] == kline.close / pd and rows.iloc[-1]["interval"] == "1m"
    instruments = stored(store, Channel.INSTRUMENTS)
    assert sorted(str(s) for s in instruments["symbol"]) == ["BTC-USDT-PERP", "ETH-USDT-PERP"]
    assert len(stored(store, Channel.BBO)) > 0 and len(stored(store, Channel.TICKER)) > 0


async def test_drops_restarts_and_skipped_u_are_events_and_resyncs_in_place(
    start_sim: Callable[..., Any], tmp_path: Path
) -> None:
    sim = await start_sim(rate=300, faults={"drop": 2.5, "restart": 1.1, "skip": 0.7})

    def in_place() -> bool:  # one connection subscribed a book topic twice
        return any(
            len(c.subscriptions) > len(set(c.subscriptions))
            for c in [*sim._closed, *(conn.record for conn in sim._conns.values())]
        )

    def ready(venue: BybitProtocol, seen: Counting) -> bool:
        return (
            seen.saw("gap", "connection lost") >= 1 and seen.saw("resync", "restarted") >= 1
            and seen.saw("gap", ": u ") >= 2 and in_place()
        )  # fmt: skip

    _, store, summary = await collect(sim, tmp_path, ready, exact=False)
    assert summary["balanced"]
    events = stored(store, Channel.EVENTS)
    rows = [tuple(r) for r in events[["kind", "detail"]].itertuples(index=False)]
    skipped = [r for r in rows if r[0] == "gap" and ": u " in r[1]]
    assert skipped, "a skipped u is a gap"
    resubscribes = [r for r in rows if r[0] == "resync" and "resubscribing" in r[1]]
    assert len(resubscribes) >= len(skipped)
    assert any(r[0] == "resync" and "restarted" in r[1] for r in rows)
    assert any(r[0] == "gap" and "connection lost" in r[1] for r in rows)
    assert in_place()
    trades = stored(store, Channel.TRADES)
    for symbol in SYMBOLS:
        ids = [int(i) for i in trades[trades["native_symbol"] == symbol]["trade_id"]]
        assert len(ids) == len(set(ids)), "a trade stored twice"
        assert set(ids) <= set(sent_trade_ids(sim, symbol))
    stored_books_equal(tmp_path, sim)


def stored_books_equal(tmp_path: Path, sim: BybitSimulator, category: str = "linear") -> None:
    """The book read back from the store at its last row (``book_at``, which orders rows by
    their stored ``update_id``) is the simulator's final view: stored rows, not only the live
    book."""
    reader = EmbeddedStore(str(tmp_path))
    for symbol in SYMBOLS:
        spec = sim.specs[symbol]
        depth = FULL if category == "spot" else DEPTH
        stream = sim.streams[(category, depth, symbol)]
        pd, qd = 10**spec.price_decimals, 10**spec.qty_decimals
        name = symbol.replace("USDT", "-USDT") + ("" if category == "spot" else "-PERP")
        rows = reader.read(exchange="bybit", symbol=name, channel=Channel.BOOK)
        last = rows.index.max()  # before the stop (no book is known after it)
        got = book_at(reader, "bybit", name, last)
        assert got.attrs["synced"], symbol
        want = sorted(
            [(1, p / pd, q / qd) for p, q in stream.bids.items()]
            + [(-1, p / pd, q / qd) for p, q in stream.asks.items()]
        )
        assert sorted(zip(got["side"], got["price"], got["size"], strict=True)) == want, symbol


async def test_spot_full_book_from_rest_snapshots_through_stale_answers_gaps_and_restarts(
    start_sim: Callable[..., Any], tmp_path: Path
) -> None:
    """``orderbook.full`` (delta only): every sync a REST snapshot; stale answers fetched
    again, skipped ``u`` and ``u = 1`` restarts refetch it; the final book is the simulator's."""
    sim = await start_sim(rate=300, faults={"stale-snapshot": 2, "skip": 0.9, "restart": 1.3})
    config = VenueConfig(
        "spot", SYMBOLS, (Channel.TRADES, Channel.BOOK, Channel.BBO, Channel.TICKER,
                          Channel.EVENTS),
        endpoint=f"{sim.ws_url}/v5/public/spot", rest_endpoint=sim.rest_url,
        options={"book": "full"},
    )  # fmt: skip

    def kinds(kind: str) -> int:
        return sum(1 for f in sim.faults.to_json() if f["kind"] == kind)

    def ready(venue: BybitProtocol, seen: Counting) -> bool:
        return (
            kinds("stale-snapshot") >= 2 and seen.saw("gap", ": u ") >= 1
            and seen.saw("gap", "restarted") >= 1 and books_synced(venue)
        )  # fmt: skip

    venue, store, summary = await collect(sim, tmp_path, ready, exact=True, config=config)
    assert summary["balanced"]
    assert sum(b.stale_snapshots for b in venue.books_by_topic.values()) >= 1
    events = stored(store, Channel.EVENTS)
    rows = [tuple(r) for r in events[["kind", "detail"]].itertuples(index=False)]
    assert any(r[0] == "gap" and ": u " in r[1] for r in rows)
    assert any(r[0] == "gap" and "restarted" in r[1] for r in rows)
    refetches = [r for r in rows if r[0] == "resync" and "REST snapshot" in r[1]]
    syncs = [r for r in rows if r[0] == "synced" and "REST snapshot" in r[1]]
    assert len(syncs) == len(refetches) + len(SYMBOLS)  # each refetch synced again
    book = stored(store, Channel.BOOK)
    assert {str(s) for s in book["symbol"]} == {"BTC-USDT", "ETH-USDT"}
    stored_books_equal(tmp_path, sim, "spot")
    trades = stored(store, Channel.TRADES)
    for symbol in SYMBOLS:
        ids = [int(i) for i in trades[trades["native_symbol"] == symbol]["trade_id"]]
        assert ids and sorted(ids) == sorted(sent_trade_ids(sim, symbol, "spot"))


async def test_pings_go_out_on_an_idle_connection(
    start_sim: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No frame arrives (liquidations only, none happen): the heartbeat still goes out, because
    the connection layer asks ``take_messages`` on its own ticks (the interval shortened here
    from Bybit's 20 s)."""
    import hundi.exchanges.bybit.protocol as bybit_protocol

    monkeypatch.setattr(bybit_protocol, "PING_INTERVAL_NS", 300_000_000)
    sim = await start_sim(rate=50, liquidation_rate=0.0)
    pings: list[str] = []
    request = sim._request

    async def counting(conn: Any, text: str | bytes) -> None:
        if b'"ping"' in (text if isinstance(text, bytes) else text.encode()):
            pings.append(conn.category)
        await request(conn, text)

    sim._request = counting
    config = VenueConfig(
        "linear", SYMBOLS, (Channel.LIQUIDATIONS, Channel.EVENTS),
        endpoint=f"{sim.ws_url}/v5/public/linear", rest_endpoint=sim.rest_url,
    )  # fmt: skip
    venue = BybitVenue(config)
    collector = Collector([venue], [EmbeddedStore(str(tmp_path))], settings=settings())
    task = asyncio.ensure_future(collector.run())
    try:
        await until(lambda: len(pings) >= 3)
    finally:
        collector.stop("test done")
        await asyncio.wait_for(task, 60)
    assert set(pings) == {"linear"}
    assert not any(sim.liquidations.values())  # nothing but pongs came: the socket was idle
