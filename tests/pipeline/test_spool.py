"""The outage spool: durable FIFO files, and the writer/collector spilling into it and draining."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faultystore import OutageStore
from test_collector import fast_settings, stored_ids
from wsharness import Exchange, SeqVenue, assert_continuous, until

from hundi.connection.client import PicowsClient
from hundi.pipeline.cli import spool_labels
from hundi.pipeline.collector import Collector
from hundi.pipeline.spool import Spool, SpoolError, SpoolFull, SpoolInUse, spool_folder
from hundi.pipeline.writer import Batch, StoreWriter
from hundi.records import Channel, Event, Trade


def trades(first: int, count: int) -> list[Trade]:
    return [
        Trade(
            exchange="x",
            symbol="BTC-USDT",
            native_symbol="BTCUSDT",
            ts=1_700_000_000_000_000_000 + i * 1_000_000,
            recv_ts=1_700_000_000_000_500_000 + i * 1_000_000,
            trade_id=i,
            price=100.0 + i / 100,
            size=0.001 * (i % 7 + 1),
            side=1 if i % 2 else -1,
            first_trade_id=i,
            last_trade_id=i,
        )
        for i in range(first, first + count)
    ]


def a_batch(first: int, count: int) -> Batch:
    event = Event(
        exchange="x",
        symbol="BTC-USDT",
        native_symbol="BTCUSDT",
        ts=1,
        recv_ts=2,
        kind="gap",
        channel="trades",
        expected=first,
        received=first + 1,
        detail="test",
    )
    return {Channel.TRADES: list(trades(first, count)), Channel.EVENTS: [event]}


def test_spool_is_fifo_and_survives_reopening(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    batches = [a_batch(i * 10, 10) for i in range(5)]
    for batch in batches:
        spool.append(batch)
    assert len(spool) == 5 and spool.pending() == {"trades": 50, "events": 5}
    (tmp_path / "s" / "0000000000000099.tmp").write_bytes(b"half a write")  # a crash mid-append
    spool.close()  # the next run opens it (one spool per folder at a time)

    reopened = Spool(tmp_path / "s")
    assert len(reopened) == 5 and reopened.pending()["trades"] == 50
    assert not list((tmp_path / "s").glob("*.tmp"))
    first_two = reopened.peek(2)
    assert [b for _, b in first_two] == batches[:2]  # typed records, equal, in order
    reopened.remove([path for path, _ in first_two])
    assert reopened.pending() == {"trades": 30, "events": 3}
    reopened.append(a_batch(1000, 1))
    assert [b[Channel.TRADES][0].trade_id for _, b in reopened.peek(10)] == [20, 30, 40, 1000]
    with pytest.raises(SpoolError, match="not the oldest"):
        reopened.remove([reopened.peek(2)[1][0]])


def test_spool_refuses_past_its_size_and_reports_corrupt_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=4000)
    spool.append(a_batch(0, 10))
    with pytest.raises(SpoolFull, match="is full"):
        for i in range(1, 100):
            spool.append(a_batch(i * 10, 10))
    assert spool.size_bytes <= 4000
    oldest, _ = spool.peek(1)[0]
    oldest.write_bytes(b"\x00garbage")
    spool.close()
    with pytest.raises(SpoolError, match="cannot be read"):
        Spool(tmp_path, max_bytes=4000).peek(1)


def test_spool_folder_names_have_no_credentials_or_separators(tmp_path: Path) -> None:
    folder = spool_folder(tmp_path, "cassandra://reader@db:9042/ks")
    assert folder.parent == tmp_path and "/" not in folder.name and ":" not in folder.name


def test_writer_spools_during_an_outage_and_drains_in_order(tmp_path: Path) -> None:
    store = OutageStore(tmp_path / "store")
    writer = StoreWriter(
        store,
        max_batches=2,
        flush_interval=0.05,
        retry_initial_s=0.01,
        retry_cap_s=0.05,
        spool=Spool(tmp_path / "spool"),
        spill_after_s=0.1,
    )
    for i in range(3):
        _wait_offer(writer, a_batch(i * 10, 10))
    _wait(lambda: writer.stored["trades"] == 30)
    store.down.set()
    for i in range(3, 20):  # far more batches than the queue holds: the spool takes them
        _wait_offer(writer, a_batch(i * 10, 10))
    _wait(lambda: writer.spooled["trades"] == 170)
    assert writer.spooling and writer.outages == 1
    store.down.clear()
    _wait(lambda: not writer.spooling)
    writer.close(deadline_s=5)
    assert writer.stored["trades"] == 200 and writer.spooled == {} and writer.lost == {}
    assert stored_ids(store, exchange="x") == list(range(200))
    assert not list((tmp_path / "spool").iterdir())


def test_spool_left_at_exit_is_sent_first_on_the_next_start(tmp_path: Path) -> None:
    store = OutageStore(tmp_path / "store")
    store.down.set()
    writer = StoreWriter(
        store,
        flush_interval=0.05,
        retry_initial_s=0.01,
        retry_cap_s=0.05,
        spool=Spool(tmp_path / "spool"),
        spill_after_s=0.05,
    )
    _wait_offer(writer, a_batch(0, 10))
    _wait_offer(writer, a_batch(10, 10))
    _wait(lambda: writer.spooled["trades"] == 20)
    writer.close(deadline_s=0.3)
    assert writer.lost == {} and writer.spooled["trades"] == 20 and not writer.closed_ok

    store.down.clear()
    restarted = StoreWriter(
        store, flush_interval=0.05, spool=Spool(tmp_path / "spool"), spill_after_s=0.05
    )
    assert restarted.spooling  # the earlier run's spool goes first
    _wait_offer(restarted, a_batch(20, 5))
    _wait(lambda: restarted.stored["trades"] == 25)
    restarted.close(deadline_s=5)
    assert stored_ids(store, exchange="x") == list(range(25))


@pytest.fixture
async def exchange() -> AsyncIterator[Exchange]:
    ex = await Exchange(interval=0.001).start()
    yield ex
    await ex.close()


@pytest.mark.slow
async def test_collector_keeps_collecting_through_a_store_outage(
    exchange: Exchange, tmp_path: Path
) -> None:
    store = OutageStore(tmp_path / "store")
    settings = fast_settings(spool_dir=tmp_path / "spool", spill_after_s=0.2, queue_batches=2)
    collector = Collector(
        [SeqVenue(exchange.url)], [store], settings=settings, client=PicowsClient()
    )
    run = asyncio.create_task(collector.run())
    await until(lambda: bool(collector.writers) and collector.writers[0].stored["trades"] > 50)
    store.down.set()
    await until(lambda: collector.writers[0].spooled["trades"] > 300)
    during = collector.accounting.received
    # still reading the exchange: far more than the bounded queue (2 batches of 50) could take
    # if reads were paused, so only the spool can have absorbed them
    await until(
        lambda: collector.accounting.received > during + 500,
        within=60,
        what=f"500 more frames read during the outage (read {during} at its start)",
    )
    assert not collector.paused
    store.down.clear()
    await until(lambda: not collector.writers[0].spooling, within=10)
    collector.stop()
    summary = await run
    ids = stored_ids(store)
    assert_continuous(ids)
    assert summary["records"]["trades"] == len(ids) == summary["frames"]["processed"]
    stats = summary["stores"][0]
    assert stats["outages"] >= 1 and stats["spooled"] == {} and stats["lost"] == {}
    assert stats["spooled_total"] > 300 and summary["balanced"]


def _wait(condition: object, within: float = 10.0) -> None:
    import time

    assert callable(condition)
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _wait_offer(writer: StoreWriter, batch: Batch) -> None:
    """Offer until the bounded queue takes the batch."""
    _wait(lambda: writer.offer(batch))


def test_stopping_does_not_wait_for_a_store_that_is_down(tmp_path: Path) -> None:
    """A store down at stop (Cassandra unreachable for the whole run) is tried once more and
    not waited for: its records stay in the spool for the next start, and the stop takes a
    moment, not the whole shutdown deadline (``--duration 3`` ran 33 s). Neither does a
    store's long retry backoff or spill delay hold the stop."""
    store = OutageStore(tmp_path / "store")
    store.down.set()
    writer = StoreWriter(
        store,
        flush_interval=0.05,
        retry_initial_s=2.0,  # a retry sleep the stop must cut short
        retry_cap_s=10.0,
        spool=Spool(tmp_path / "spool"),
        spill_after_s=60.0,  # the stop spills at once, not after this
    )
    _wait_offer(writer, a_batch(0, 10))
    _wait(lambda: writer.errors >= 1)  # now sleeping in its retry backoff
    started = time.monotonic()
    writer.close(deadline_s=30)
    took = time.monotonic() - started
    assert took < 5.0, f"the stop waited {took:.1f}s for a store that is down"
    assert writer.spooled["trades"] == 10 and writer.lost == {} and not writer.closed_ok


def test_stopping_with_a_store_down_and_no_spool_retries_at_the_backoff_pace(
    tmp_path: Path,
) -> None:
    """Without a spool nothing else can keep the data: the stop retries the store until its
    deadline, at the back-off's pace (it spun: 586,145 attempts in 2 s, flooding the log)."""
    store = OutageStore(tmp_path / "store")
    store.down.set()
    writer = StoreWriter(store, flush_interval=0.05, retry_initial_s=0.2, retry_cap_s=0.4)
    _wait_offer(writer, a_batch(0, 10))
    _wait(lambda: writer.errors >= 1)
    writer.close(deadline_s=2.0)
    assert writer.lost["trades"] == 10
    assert writer.errors < 30, f"{writer.errors} failed attempts in a 2 s stop"


def test_a_spool_folder_is_open_in_one_spool_at_a_time(tmp_path: Path) -> None:
    """The lock is per open file, so a second opener in the same process is refused too; it
    names the folder and tells how to fix it, and closing the first lets the next one in."""
    folder = tmp_path / "spool" / "cassandra_127.0.0.1_9042_ks"
    first = Spool(folder)
    first.append(a_batch(0, 3))
    with pytest.raises(SpoolInUse, match="in use by another collector") as refused:
        Spool(folder)
    assert str(folder) in str(refused.value) and "its own spool" in str(refused.value)
    assert (folder.parent / f"{folder.name}.lock").exists()
    assert len(first) == 1  # the refused opener touched nothing
    first.close()
    first.close()  # twice is harmless
    second = Spool(folder)
    assert len(second) == 1
    second.close()


def test_collectors_of_one_process_sharing_a_store_get_a_spool_folder_each(
    tmp_path: Path,
) -> None:
    """``hundi collect --config`` runs one collector per distinct store set: a network store in
    two sets gets a folder per collector (the same names on every run), not SpoolInUse."""
    store = OutageStore(tmp_path / "store")
    other = OutageStore(tmp_path / "other")
    stores = {"net": store, "other": other}
    labels = spool_labels([("net",), ("net", "other")], stores)
    assert labels == [[store.describe()], [f"{store.describe()} #2", other.describe()]]
    settings = fast_settings(spool_dir=tmp_path / "spool")
    first = Collector([], [store], settings=settings, spool_labels=labels[0])
    second = Collector([], [store, other], settings=settings, spool_labels=labels[1])
    folders = [s.directory for c in (first, second) for s in c.spools if s is not None]
    assert len(set(folders)) == 3
    with pytest.raises(SpoolInUse):  # what two collectors on one folder would get
        Collector([], [store], settings=settings)
    first.close_spools()
    second.close_spools()
    Collector([], [store], settings=settings).close_spools()  # free again once closed


def test_a_long_store_label_keeps_its_group_number(tmp_path: Path) -> None:
    """Cut to 120 characters, two groups of one long label (many contact points) still get two
    folders; a label without a number is named as before."""
    label = "cassandra " + ",".join(f"10.0.0.{i}:9042" for i in range(20)) + "/ks"
    first, second = spool_folder(tmp_path, label), spool_folder(tmp_path, f"{label} #2")
    assert first != second and len(second.name) <= 120 and second.name.endswith("_2")
    assert (
        first.name
        == label.replace(" ", "_").replace(",", "_").replace(":", "_").replace("/", "_")[:120]
    )
    assert spool_folder(tmp_path, "a b #2").name == "a_b_2"


def test_a_stray_file_in_the_spool_folder_is_not_a_batch(tmp_path: Path) -> None:
    """A file named like a batch but not numbered (copied in by hand) is left alone instead of
    stopping the spool with a traceback (and its lock held)."""
    folder = tmp_path / "spool"
    spool = Spool(folder)
    spool.append(a_batch(0, 3))
    spool.close()
    (folder / "notes.batch").write_bytes(b"not a batch")
    again = Spool(folder)
    assert len(again) == 1 and again.peek(1)[0][1][Channel.TRADES][0].trade_id == 0
    again.append(a_batch(3, 2))
    assert len(again) == 2
    again.close()
