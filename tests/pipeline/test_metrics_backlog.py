"""``hundi_store_backlog_bytes`` on the collector's ``/metrics``: the bytes waiting for a store,
in the writer's queue plus its outage spool. A real collector writes to the real Cassandra
through a TCP relay the test cuts; the port is served by the collector's own HTTP app."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from test_collector import fast_settings
from wsharness import Exchange, SeqVenue, until

from hundi.connection.client import PicowsClient
from hundi.pipeline.collector import Collector
from hundi.pipeline.health import collector_http_app
from hundi.stores.base import open_store
from tcprelay import TcpRelay


@pytest.fixture
def relay(cassandra_url: str) -> Iterator[TcpRelay]:
    parts = urlsplit(cassandra_url)
    relay = TcpRelay((parts.hostname or "127.0.0.1", parts.port or 9042))
    yield relay
    relay.cut()


@pytest.fixture
async def exchange() -> AsyncIterator[Exchange]:
    ex = await Exchange(interval=0.001).start()
    yield ex
    await ex.close()


def _backlog_bytes(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    return {
        sample.labels["store"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "hundi_store_backlog_bytes"
    }


async def test_backlog_bytes_gauge_counts_the_spool_during_an_outage(
    relay: TcpRelay, exchange: Exchange, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASSANDRA_REQUEST_TIMEOUT", "2")
    store = open_store(f"cassandra://127.0.0.1:{relay.port}/hundi_test")
    settings = fast_settings(spool_dir=tmp_path / "spool", spill_after_s=0.2)
    collector = Collector(
        [SeqVenue(exchange.url)], [store], settings=settings, client=PicowsClient()
    )
    runner = web.AppRunner(collector_http_app([collector], 60.0, None))
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/metrics"
    run = asyncio.create_task(collector.run())
    try:
        await until(lambda: bool(collector.writers) and collector.writers[0].stored["trades"] > 50)
        writer = collector.writers[0]
        relay.cut()
        await until(lambda: writer.spooled["trades"] > 300, within=30)
        assert writer.spool is not None
        spooled = writer.spool.size_bytes  # the spool only grows while the store is down
        shown = await asyncio.to_thread(_backlog_bytes, url)
        assert shown[writer.label] >= spooled > 0, shown
    finally:
        collector.stop()
        await run
        await runner.cleanup()
