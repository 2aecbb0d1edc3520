"""The collector over real sockets: batching into stores, backpressure, store failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from faultystore import FaultyStore
from wsharness import Exchange, SeqVenue, assert_continuous, until

from hundi.connection.client import PicowsClient
from hundi.connection.manager import ConnectionSettings
from hundi.exchanges.base import BookStatus, RecordSink, RestRequest
from hundi.pipeline.collector import Collector, CollectorSettings
from hundi.records import BUY, Channel, Trade
from hundi.stores.base import Store
from hundi.stores.embedded import EmbeddedStore


@pytest.fixture
async def exchange() -> AsyncIterator[Exchange]:
    ex = await Exchange(interval=0.001).start()
    yield ex
    await ex.close()


def fast_settings(**changes: Any) -> CollectorSettings:
    values: dict[str, Any] = {
        "flush_interval": 0.05,
        "max_batch_records": 50,
        "queue_batches": 4,
        "shutdown_timeout_s": 10.0,
        "connection": ConnectionSettings(
            backoff_initial_s=0.05, stale_after_s=5.0, check_every_frames=8, tick_s=0.02
        ),
    }
    values.update(changes)
    return CollectorSettings(**values)


def stored_ids(store: Store, exchange: str = SeqVenue.exchange) -> list[int]:
    """Trade ids read back from the store, in exchange-time order."""
    trades = store.read(exchange=exchange, symbol=None, channel=Channel.TRADES)
    return [int(i) for i in trades["trade_id"]]


def stored_events(store: Store) -> list[str]:
    events = store.read(exchange=SeqVenue.exchange, symbol=None, channel=Channel.EVENTS)
    return [str(kind) for kind in events["kind"]]


async def test_records_reach_every_store_and_are_counted_once_stored(
    exchange: Exchange, tmp_path: Path
) -> None:
    first, second = FaultyStore(tmp_path / "a"), EmbeddedStore(str(tmp_path / "b"))
    collector = Collector(
        [SeqVenue(exchange.url)], [first, second], settings=fast_settings(), client=PicowsClient()
    )
    summary = await collector.run(duration=0.8)
    ids = stored_ids(first)
    assert_continuous(ids)
    assert ids == stored_ids(second)
    assert summary["records"]["trades"] == len(ids) == summary["frames"]["processed"]
    # the clean stop: the connection's ``stopped`` event and the venue's closing gap turned
    # ``stopped``; no gap, in the store or the summary
    assert summary["records"]["events"] == 2
    assert stored_events(first) == stored_events(second) == ["stopped", "stopped"]
    assert summary["gaps"] == 0
    assert summary["balanced"] and summary["stop_reason"] == "duration 0.8s reached"
    assert all(name.startswith("store:") for name in first.threads)
    assert [s["lost"] for s in summary["stores"]] == [{}, {}]


@pytest.mark.slow
async def test_slow_store_applies_backpressure_and_loses_nothing(
    exchange: Exchange, tmp_path: Path
) -> None:
    slow = FaultyStore(tmp_path, write_delay=0.15)
    settings = fast_settings(queue_batches=2)
    collector = Collector(
        [SeqVenue(exchange.url)], [slow], settings=settings, client=PicowsClient()
    )
    peak_backlog = 0
    peak_sink = 0

    async def watch() -> None:
        nonlocal peak_backlog, peak_sink
        while True:
            await asyncio.sleep(0.005)  # sampling the peaks, not waiting for anything
            if collector.writers:
                peak_backlog = max(peak_backlog, collector.writers[0].backlog)
            peak_sink = max(peak_sink, len(collector.sink))

    watcher = asyncio.create_task(watch())
    summary = await collector.run(duration=2.0)
    watcher.cancel()
    assert summary["backpressure"]["events"] >= 1
    assert summary["backpressure"]["paused_s"] > 0.2
    assert peak_backlog <= 2  # the queue is bounded...
    assert peak_sink < 2000  # ...and so is what piles up in the sink while reads are paused
    ids = stored_ids(slow)
    assert_continuous(ids)  # ...and nothing was dropped
    assert summary["records"]["trades"] == len(ids) == summary["frames"]["processed"]
    # The exchange produced more than the slow store let us read: the socket absorbed it.
    assert exchange.seq > ids[-1]


@pytest.mark.slow
async def test_failing_store_is_retried_and_keeps_the_data(
    exchange: Exchange, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    flaky = FaultyStore(tmp_path, fail_first=3)
    collector = Collector(
        [SeqVenue(exchange.url)], [flaky], settings=fast_settings(), client=PicowsClient()
    )
    summary = await collector.run(duration=1.5)
    ids = stored_ids(flaky)
    assert_continuous(ids)
    assert summary["stores"][0]["errors"] == 3
    assert summary["stores"][0]["lost"] == {}
    assert summary["records"]["trades"] == len(ids)
    retries = [r.getMessage() for r in caplog.records if "write failed" in r.getMessage()]
    assert len(retries) == 3 and "disk on fire" in retries[0] and "data kept" in retries[0]


@pytest.mark.slow
async def test_store_failing_past_shutdown_reports_lost_records(
    exchange: Exchange, tmp_path: Path
) -> None:
    dead = FaultyStore(tmp_path, fail_first=10**9)
    collector = Collector(
        [SeqVenue(exchange.url)],
        [dead],
        settings=fast_settings(shutdown_timeout_s=0.5),
        client=PicowsClient(),
    )
    summary = await collector.run(duration=0.3)
    lost = summary["stores"][0]["lost"]
    assert lost["trades"] == summary["frames"]["processed"] > 0  # counted, never silent
    assert summary["records"]["trades"] == 0
    assert stored_ids(dead) == []


async def test_gaps_and_resyncs_come_from_event_records(exchange: Exchange, tmp_path: Path) -> None:
    store = EmbeddedStore(str(tmp_path))
    collector = Collector(
        [SeqVenue(exchange.url)], [store], settings=fast_settings(), client=PicowsClient()
    )
    task = asyncio.create_task(collector.run())
    await until(lambda: bool(collector.writers) and collector.writers[0].stored["trades"] > 0)
    exchange.drop_all()  # SeqVenue.on_close records a gap event
    await until(lambda: collector.accounting.reconnects > 0)
    collector.stop()
    summary = await task
    assert summary["gaps"] == 1
    assert summary["reconnects"] == 1
    events = stored_events(store)
    assert events.count("gap") == 1  # the drop; the stop is no gap...
    assert events.count("stopped") == 2  # ...but the connection's and the venue's stopped
    assert summary["stop_reason"] == "stop requested"


async def test_stops_when_an_early_drain_is_due_at_the_same_moment(tmp_path: Path) -> None:
    """A flood asks for an early drain (``_check_sink``) on the very frame the duration
    timer fires. Python 3.11's ``wait_for`` then swallows the drainer's cancellation; the
    collector must stop anyway (it hung here until killed, under a CI flood)."""
    settings = fast_settings(max_batch_records=0)  # every check finds the sink "full"
    collector = Collector([], [EmbeddedStore(str(tmp_path))], settings=settings)
    task = asyncio.create_task(collector.run())
    await until(lambda: bool(collector.writers))
    await asyncio.sleep(0)  # the drainer waits for its next drain

    def sink_full_then_duration_reached() -> None:
        collector._check_sink()
        collector.stop("duration reached")

    asyncio.get_running_loop().call_soon(sink_full_then_duration_reached)
    done, _ = await asyncio.wait({task}, timeout=10.0)
    if not done:  # the old hang: release it so the test ends
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert done, "the collector did not stop"
    assert task.result()["stop_reason"] == "duration reached"


class BookSyncingAtStop(SeqVenue):
    """A venue whose one book syncs while the stop runs, as when the snapshot a gap asked for
    is answered after the stop began; closing its socket resets the book."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.synced = False

    def books(self) -> list[BookStatus]:
        levels = 5 if self.synced else 0
        return [BookStatus("X-USD", self.synced, levels, levels, 1.0, 2.0, 7)]

    def finishing_requests(self, now_ns: int) -> list[RestRequest] | None:
        self.synced = True  # the REST loop's last look, before the sockets finish closing
        return None

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        super().on_close(conn_key, now_ns, out)
        self.synced = False


async def test_the_summary_gives_each_book_as_its_socket_left_it(
    exchange: Exchange, tmp_path: Path
) -> None:
    """Not as the stop began: the store then holds a book that synced after that moment, and a
    summary saying "unsynced" would contradict it. Nor as the closed socket reset it."""
    venue = BookSyncingAtStop(exchange.url)
    collector = Collector(
        [venue], [EmbeddedStore(str(tmp_path))], settings=fast_settings(), client=PicowsClient()
    )
    summary = await collector.run(duration=0.5)
    assert venue.closes == ["main"] and not venue.synced  # the close did reset it
    [book] = summary["books"]
    assert book["synced"] and book["bids"] == book["asks"] == 5, book


class TwoBooksOfOneSymbol(SeqVenue):
    """A venue keeping two books of one symbol (a level-2 and a level-3 book of one product),
    each in its own state; closing the socket resets both."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.open = True

    def books(self) -> list[BookStatus]:
        deep, shallow = (5, 3) if self.open else (0, 0)
        return [
            BookStatus("X-USD", self.open, deep, deep, 1.0, 2.0, 7),
            BookStatus("X-USD", self.open, shallow, shallow, 1.0, 2.0, 9),
        ]

    def on_close(self, conn_key: str, now_ns: int, out: RecordSink) -> None:
        super().on_close(conn_key, now_ns, out)
        self.open = False


async def test_the_summary_keeps_two_books_of_one_symbol_apart(
    exchange: Exchange, tmp_path: Path
) -> None:
    """Each book as its own socket left it: the symbol alone does not tell them apart."""
    venue = TwoBooksOfOneSymbol(exchange.url)
    collector = Collector(
        [venue], [EmbeddedStore(str(tmp_path))], settings=fast_settings(), client=PicowsClient()
    )
    summary = await collector.run(duration=0.5)
    assert not venue.open  # the close did reset them
    got = [(b["symbol"], b["synced"], b["bids"], b["asks"]) for b in summary["books"]]
    assert got == [("X-USD", True, 5, 5), ("X-USD", True, 3, 3)], got


async def test_a_full_sink_is_drained_from_the_socket_callback_itself(tmp_path: Path) -> None:
    """A flooded socket hands over tens of thousands of frames per read; the sink is drained
    at the check inside that callback, not when the loop next runs the drain task (the sink
    grew to 140k records that way)."""
    settings = fast_settings(max_batch_records=10, flush_interval=3600.0)
    collector = Collector([], [EmbeddedStore(str(tmp_path))], settings=settings)
    task = asyncio.create_task(collector.run())
    await until(lambda: bool(collector.writers))
    collector.sink.trades.extend(
        Trade(
            exchange="sim", symbol="X-USD", native_symbol="XUSD", ts=i + 1, recv_ts=i + 1,
            trade_id=i, price=100.0, size=1.0, side=BUY, first_trade_id=i, last_trade_id=i,
        )
        for i in range(25)
    )  # fmt: skip
    collector._check_sink()
    assert len(collector.sink) == 0  # drained at once, before the loop ran anything else
    collector.stop("test over")
    summary = await asyncio.wait_for(task, 30)
    assert summary["stop_reason"] == "test over"
    trades = EmbeddedStore(str(tmp_path)).read(
        exchange="sim", symbol="X-USD", channel=Channel.TRADES
    )
    assert list(trades["trade_id"]) == list(range(25))


async def test_a_drain_failing_in_the_socket_callback_stops_the_collector_loudly(
    tmp_path: Path,
) -> None:
    """Not into the socket's callback: the collector stops, stores what it still holds, and
    run() raises the error (an internal error is never an ``ok``)."""
    settings = fast_settings(max_batch_records=1, flush_interval=3600.0)
    collector = Collector([], [EmbeddedStore(str(tmp_path))], settings=settings)
    task = asyncio.create_task(collector.run())
    await until(lambda: bool(collector.writers))
    real, calls = collector._drain, []

    def failing_once() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("drain broke")
        real()

    collector._drain = failing_once  # type: ignore[method-assign]
    collector.sink.trades.append(
        Trade(
            exchange="sim", symbol="X-USD", native_symbol="XUSD", ts=1, recv_ts=1, trade_id=1,
            price=100.0, size=1.0, side=BUY, first_trade_id=1, last_trade_id=1,
        )
    )  # fmt: skip
    collector._check_sink()  # as the socket callback calls it: must not raise
    assert collector.stopping and "drain broke" in collector.stop_reason
    with pytest.raises(RuntimeError, match="drain broke"):
        await asyncio.wait_for(task, 30)
