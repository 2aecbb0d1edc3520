"""A Cassandra outage mid-run: ``write`` raises StoreError, after recovery the same batch is
written again without duplicates, and through the pipeline's StoreWriter the outage goes to the
spool and back with every record stored once. The outage is real: the store talks to the node
through a TCP relay that the test cuts (closing every connection, refusing new ones) and
restores."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import pytest

from derivative_samples import liquidation
from hundi.pipeline.resume import RestartGaps
from hundi.pipeline.spool import Spool
from hundi.pipeline.writer import StoreWriter
from hundi.records import Channel, Event, Record, Trade, to_arrow
from hundi.stores.base import Store, StoreError, open_store
from hundi.stores.merge import covered_gaps
from tcprelay import TcpRelay

T0 = 1_714_521_600_000_000_000


@pytest.fixture
def relay(cassandra_url: str) -> Iterator[TcpRelay]:
    parts = urlsplit(cassandra_url)
    relay = TcpRelay((parts.hostname or "127.0.0.1", parts.port or 9042))
    yield relay
    relay.cut()


def trades(exchange: str, first: int, count: int) -> list[Record]:
    return [
        Trade(
            exchange=exchange, symbol="BTC-USDT", native_symbol="BTCUSDT", ts=T0 + i,
            recv_ts=T0 + i, trade_id=i, price=1.0 + i, size=1.0, side=1, first_trade_id=i,
            last_trade_id=i,
        )
        for i in range(first, first + count)
    ]  # fmt: skip


@pytest.mark.slow
def test_outage_raises_store_error_and_recovery_rewrites_without_duplicates(
    relay: TcpRelay, exchange: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASSANDRA_REQUEST_TIMEOUT", "3")
    monkeypatch.setenv("CASSANDRA_CONNECT_TIMEOUT", "3")
    store = open_store(f"cassandra://127.0.0.1:{relay.port}/hundi_test")
    try:
        before = trades(exchange, 0, 50)
        store.write({Channel.TRADES: before})
        relay.cut()
        during = trades(exchange, 50, 50)
        with pytest.raises(StoreError) as raised:
            store.write({Channel.TRADES: during})
        assert f"127.0.0.1:{relay.port}/hundi_test" in str(raised.value)
        assert "writing 50 records" in str(raised.value)

        relay.restore()
        deadline = time.monotonic() + 90  # the driver reconnects with a capped backoff
        while True:  # what StoreWriter does: retry the same batch until it is acknowledged
            try:
                store.write({Channel.TRADES: during})
                break
            except StoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        frame = store.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES)
    finally:
        store.close()
    assert list(frame["trade_id"]) == list(range(100))


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_store_writer_spools_through_an_outage_and_stores_everything_once(
    relay: TcpRelay, exchange: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CASSANDRA_REQUEST_TIMEOUT", "2")
    store = open_store(f"cassandra://127.0.0.1:{relay.port}/hundi_test")
    writer = StoreWriter(
        store, flush_interval=0.2, retry_initial_s=0.05, retry_cap_s=0.5,
        spool=Spool(tmp_path / "spool"), spill_after_s=0.3,
    )  # fmt: skip
    batches = [trades(exchange, start, 40) for start in (0, 40, 80, 120)]
    try:
        assert writer.offer({Channel.TRADES: batches[0]})
        wait_for(lambda: writer.stored["trades"] == 40, "the first batch stored")
        relay.cut()
        assert writer.offer({Channel.TRADES: batches[1]})
        assert writer.offer({Channel.TRADES: batches[2]})
        wait_for(lambda: writer.outages >= 1 and writer.spooled_total >= 80, "the spool")
        relay.restore()
        assert writer.offer({Channel.TRADES: batches[3]})
        wait_for(lambda: writer.stored["trades"] == 160, "recovery")
    finally:
        writer.close(deadline_s=10)
    assert not writer.lost and writer.closed_ok
    reader = open_store(f"cassandra://127.0.0.1:{relay.port}/hundi_test", read_only=True)
    try:
        frame = reader.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES)
    finally:
        reader.close()
    assert list(frame["trade_id"]) == list(range(160))


def test_cluster_down_at_start_opens_anyway_and_connects_on_a_later_write(
    relay: TcpRelay, exchange: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASSANDRA_CONNECT_TIMEOUT", "2")
    relay.cut()
    store = open_store(f"cassandra://127.0.0.1:{relay.port}/hundi_test")  # no exception
    try:
        with pytest.raises(StoreError, match="no host available"):
            store.write({Channel.TRADES: trades(exchange, 0, 10)})  # the writer spools this
        relay.restore()
        store.write({Channel.TRADES: trades(exchange, 0, 10)})
        frame = store.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES)
    finally:
        store.close()
    assert list(frame["trade_id"]) == list(range(10))


def test_the_writer_and_a_look_up_opening_a_store_at_once_connect_once(
    relay: TcpRelay, exchange: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store the outage left unopened is opened by whichever thread asks first once the
    cluster is back: the writer's retry and a restart look-up's retry both did, so one
    cluster was never shut down (or a failed open shut down the one kept)."""
    monkeypatch.setenv("CASSANDRA_CONNECT_TIMEOUT", "3")
    relay.cut()
    store = open_store(f"cassandra://127.0.0.1:{relay.port}/hundi_test")  # unopened
    relay.restore()
    connects: list[str] = []
    connect = store._connect  # type: ignore[attr-defined]

    def counted() -> object:
        connects.append(threading.current_thread().name)
        return connect()

    monkeypatch.setattr(store, "_connect", counted)
    together = threading.Barrier(2)
    done: dict[str, object] = {}

    def write() -> None:
        together.wait(10)
        store.write({Channel.TRADES: trades(exchange, 0, 10)})
        done["write"] = True

    def look_up() -> None:
        together.wait(10)
        done["look-up"] = store.last_position(exchange, "BTC-USDT", Channel.TRADES, T0 + 10**9)

    threads = [threading.Thread(target=write), threading.Thread(target=look_up)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        frame = store.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES)
    finally:
        store.close()
    assert sorted(done) == ["look-up", "write"], done  # both answered, on one connection
    assert len(connects) == 1, connects
    assert list(frame["trade_id"]) == list(range(10))


def test_cluster_down_is_still_an_error_for_a_reader(
    relay: TcpRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASSANDRA_CONNECT_TIMEOUT", "2")
    relay.cut()
    with pytest.raises(StoreError, match="no host available"):
        open_store(f"cassandra://127.0.0.1:{relay.port}/hundi_test", read_only=True)


def test_cluster_lost_while_preparing_the_schema_opens_anyway(
    relay: TcpRelay, exchange: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connected, then the cluster goes away before the schema is ready (a collector started
    just as the servers stopped): that is an outage to spool through, not a setup error (the
    collector exited with code 2 here)."""
    from hundi.stores.cassandra import store as cassandra_store

    monkeypatch.setenv("CASSANDRA_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("CASSANDRA_REQUEST_TIMEOUT", "3")
    prepare = cassandra_store.ensure_schema

    def outage_then_prepare(*args: object, **kwargs: object) -> None:
        relay.cut()
        prepare(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cassandra_store, "ensure_schema", outage_then_prepare)
    store = open_store(f"cassandra://127.0.0.1:{relay.port}/hundi_test")  # no exception
    monkeypatch.setattr(cassandra_store, "ensure_schema", prepare)
    try:
        with pytest.raises(StoreError):
            store.write({Channel.TRADES: trades(exchange, 0, 10)})  # the writer spools this
        relay.restore()
        store.write({Channel.TRADES: trades(exchange, 0, 10)})
        frame = store.read(exchange=exchange, symbol="BTC-USDT", channel=Channel.TRADES)
    finally:
        store.close()
    assert list(frame["trade_id"]) == list(range(10))


def test_a_restart_while_the_cluster_is_down_stores_its_gap_once_it_answers(
    relay: TcpRelay, exchange: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The previous run stored trades 0..49 and died; this run starts while the cluster is
    down. Its look-up of where the stream ended failed and it stored no gap at all: the hole
    went silent. Now it asks again until the cluster answers, and the gap names ids 50..99."""
    monkeypatch.setenv("CASSANDRA_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("CASSANDRA_REQUEST_TIMEOUT", "2")
    url = f"cassandra://127.0.0.1:{relay.port}/hundi_test"
    previous = open_store(url)
    try:
        previous.write({Channel.TRADES: trades(exchange, 0, 50)})
    finally:
        previous.close()
    relay.cut()
    store = open_store(url)
    gaps = RestartGaps([store], started_ns=T0 + 100)
    found: list[Event] = []
    try:
        gaps.note({Channel.TRADES: trades(exchange, 100, 10)})
        assert gaps.take(wait_s=3.0) == []  # still asking
        relay.restore()
        # the collector takes them per drained batch; an unanswered look-up is asked again
        wait_for(lambda: bool(found.extend(gaps.take(wait_s=0.2)) or found), "the gap")
    finally:
        gaps.close()
        store.close()
    assert [(e.expected, e.received) for e in found] == [(50, 100)], found


def test_a_stream_the_stores_cannot_answer_does_not_hold_up_the_others(
    relay: TcpRelay, exchange: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An embedded store knows where BTC and ETH ended; the Cassandra store, down, might know
    NEW (the embedded store never had it). NEW is asked again and again, while BTC's and ETH's
    gaps come at once (they waited behind NEW's look-up until the stop: found by review)."""
    before = [
        *named(trades(exchange, 0, 50), "BTC-USDT"),
        *named(trades(exchange, 0, 50), "ETH-USDT"),
    ]
    stores = local_then_cluster_down(relay, monkeypatch, tmp_path, before)
    gaps = RestartGaps(stores, started_ns=T0 + 100)
    found: list[Event] = []
    try:
        later = trades(exchange, 100, 1)
        gaps.note({Channel.TRADES: [*named(later, "NEW-USDT"), *named(later, "BTC-USDT"),
                                    *named(later, "ETH-USDT")]})  # fmt: skip
        wait_for(lambda: bool(found.extend(gaps.take(wait_s=0.2)) or len(found) >= 2), "BTC, ETH")
        assert sorted((e.symbol, e.expected, e.received) for e in found) == [
            ("BTC-USDT", 50, 100), ("ETH-USDT", 50, 100)
        ]  # fmt: skip
        last = gaps.finish(wait_s=3.0)  # the stop: NEW's start is still unknown
    finally:
        for store in stores:
            store.close()
    trades_gaps = [e for e in last if e.channel == "trades"]
    assert [(e.symbol, e.expected) for e in trades_gaps] == [("NEW-USDT", -1)]
    assert "unknown" in trades_gaps[0].detail


def local_then_cluster_down(
    relay: TcpRelay, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stored: list[Record]
) -> list[Store]:
    """A collector's two stores: an embedded one holding ``stored`` (trades), and the test
    node, down (short timeouts)."""
    monkeypatch.setenv("CASSANDRA_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("CASSANDRA_REQUEST_TIMEOUT", "2")
    local = open_store(str(tmp_path / "local"))
    try:
        local.write({Channel.TRADES: stored})
    finally:
        local.close()
    relay.cut()
    return [
        open_store(str(tmp_path / "local")),
        open_store(f"cassandra://127.0.0.1:{relay.port}/hundi_test"),
    ]


def named(records: list[Record], symbol: str) -> list[Record]:
    return [msgspec.structs.replace(r, symbol=symbol, native_symbol=symbol.replace("-", ""))
            for r in records]  # fmt: skip


def test_a_restart_whose_stores_never_answer_stores_a_gap_of_unknown_start(
    relay: TcpRelay, exchange: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster stays down for the whole run: at the stop the stream's gap is stored with
    an unknown start (the spool keeps it for the cluster), never judged covered; so is the
    symbol's liquidations' (whether any were stored before cannot be told)."""
    monkeypatch.setenv("CASSANDRA_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("CASSANDRA_REQUEST_TIMEOUT", "2")
    relay.cut()
    store = open_store(f"cassandra://127.0.0.1:{relay.port}/hundi_test")
    gaps = RestartGaps([store], started_ns=T0 + 100)
    try:
        gaps.note({Channel.TRADES: trades(exchange, 100, 10)})
        found = gaps.finish(wait_s=3.0)
    finally:
        store.close()
    assert [(e.channel, e.kind) for e in found] == [("trades", "gap"), ("liquidations", "gap")]
    assert "unknown" in found[1].detail
    assert (found[0].expected, found[0].received) == (-1, -1)
    assert "unknown" in found[0].detail and found[0].ts == T0 + 100
    events = to_arrow(Channel.EVENTS, found[:1])  # the trades gap
    data = to_arrow(Channel.TRADES, trades(exchange, 0, 200))
    assert covered_gaps(events, Channel.TRADES, data).tolist() == [False]


@pytest.mark.parametrize("wait_s", [0.0, 5.0], ids=["no-wait", "last-try"])
def test_a_restart_stores_the_liquidation_gap_where_the_stores_cannot_tell_if_they_held_any(
    relay: TcpRelay, exchange: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wait_s: float
) -> None:
    """The embedded store knows where the trades ended and holds no liquidations; Cassandra,
    down, might hold some. The trades gap is stored at once; whether liquidations were stored
    before is asked again, and at the stop, still not told, their gap over the same span is
    stored all the same (it was dropped for good, without a word: found by review)."""
    stores = local_then_cluster_down(relay, monkeypatch, tmp_path, trades(exchange, 0, 50))
    gaps = RestartGaps(stores, started_ns=T0 + 100)
    try:
        gaps.note({Channel.TRADES: trades(exchange, 100, 1)})
        found = gaps.take(wait_s=30.0)
        assert [(e.channel, e.expected, e.received) for e in found] == [("trades", 50, 100)]
        # its last try failed, or (no wait) had no answer yet: the liquidation gap either way,
        # not a second trades gap (found by review)
        last = gaps.finish(wait_s=wait_s)
    finally:
        for store in stores:
            store.close()
    assert [(e.channel, e.expected, e.received) for e in last] == [("liquidations", -1, -1)]
    assert "the collector was not running between" in last[0].detail


def test_the_liquidation_check_asked_again_tells_once_the_cluster_answers(
    relay: TcpRelay, exchange: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Liquidations were stored in Cassandra only; it is down at the restart, then back: the
    liquidation gap comes from the check asked again, during the run, once."""
    monkeypatch.setenv("CASSANDRA_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("CASSANDRA_REQUEST_TIMEOUT", "2")
    url = f"cassandra://127.0.0.1:{relay.port}/hundi_test"
    names = {"symbol": "BTC-USDT", "native_symbol": "BTCUSDT"}
    remote = open_store(url)
    try:
        remote.write({Channel.LIQUIDATIONS: [liquidation(T0, 1, 100.0, 1.0, exchange=exchange,
                                                         names=names)]})  # fmt: skip
    finally:
        remote.close()
    local = open_store(str(tmp_path / "local"))
    try:
        local.write({Channel.TRADES: trades(exchange, 0, 50)})
    finally:
        local.close()
    relay.cut()
    stores = [open_store(str(tmp_path / "local")), open_store(url)]
    gaps = RestartGaps(stores, started_ns=T0 + 100)
    found: list[Event] = []
    try:
        gaps.note({Channel.TRADES: trades(exchange, 100, 1)})
        found += gaps.take(wait_s=30.0)
        assert [e.channel for e in found] == ["trades"]
        relay.restore()
        wait_for(lambda: bool(found.extend(gaps.take(wait_s=0.2)) or len(found) > 1), "it")
        assert gaps.finish(wait_s=3.0) == []
    finally:
        for store in stores:
            store.close()
    assert [(e.channel, e.expected) for e in found] == [("trades", 50), ("liquidations", -1)]
