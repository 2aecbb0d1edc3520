"""Prometheus ``/metrics`` of ``hundi collect --health-port``: a real collector against the Binance
simulator, scraped over HTTP and read with prometheus_client's own parser; the counters must
be the run summary's."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from children import spawn
from hundi.pipeline.histograms import LAG_BUCKETS_S, LagHistogram
from hundi.records import Channel, Trade
from hundi.simulator.process import SimulatorProcess

HUNDI = str(Path(sys.executable).parent / "hundi")
TOKEN = "metrics-test-token-0123456789abcdef"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def fetch(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(url: str, token: str | None = TOKEN) -> tuple[set[str], Samples]:
    """Family names and every sample, parsed by prometheus_client's parser."""
    status, text = fetch(url, token)
    assert status == 200, text
    families = list(text_string_to_metric_families(text))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
    }
    return {f.name for f in families}, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


COLLECTOR_FAMILIES = {
    "hundi_frames_received",
    "hundi_frames_processed",
    "hundi_frames_filtered",
    "hundi_frames_rejected",
    "hundi_records_stored",
    "hundi_gaps",
    "hundi_resyncs",
    "hundi_reconnects",
    "hundi_stream_frames",
    "hundi_stream_connected",
    "hundi_store_records_stored",
    "hundi_store_spool_records",
    "hundi_store_outages",
    "hundi_store_backlog_batches",
    "hundi_backpressure_paused",
    "hundi_book_synced",
    "hundi_lag_seconds",
    "hundi_store_write_seconds",
    "process_cpu_seconds",
    "process_resident_memory_bytes",
}


@pytest.mark.slow
def test_collector_metrics_over_http_match_the_run_summary(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    summary_path = tmp_path / "summary.json"
    env = {
        **os.environ,
        "HUNDI_LOG_PATH": str(tmp_path / "logs" / "hundi.log"),
        "HUNDI_API_TOKEN": TOKEN,
    }
    sim = SimulatorProcess(
        ["--rate", "400", "--symbols", "BTCUSDT,ETHUSDT", "--fault", "malformed:0.5"]
    ).start()
    collector = spawn(
        [
            HUNDI, "collect", "binance", "--symbols", "BTCUSDT,ETHUSDT",
            "--channels", "trades,bbo,book", "--endpoint", sim.ws_url,
            "--rest-endpoint", sim.rest_url, "--store", str(tmp_path / "data"),
            "--summary-json", str(summary_path), "--health-port", str(port),
        ],
        env=env,
        cwd=tmp_path,
    )  # fmt: skip
    try:
        # Running: frames, rejections, stored trades and synced books all show up.
        deadline = time.monotonic() + 90
        while True:
            assert collector.poll() is None, collector.stderr_text()
            try:
                names, samples = scrape(f"{base}/metrics")
            except (OSError, AssertionError):
                names, samples = set(), {}
            if (
                total(samples, "hundi_frames_rejected_total")
                and value(samples, "hundi_records_stored_total", channel="trades")
                and total(samples, "hundi_book_synced") == 2
            ):
                break
            assert time.monotonic() < deadline, f"no progress on /metrics: {samples}"
            time.sleep(0.2)
        assert names >= COLLECTOR_FAMILIES, COLLECTOR_FAMILIES - names
        assert value(samples, "hundi_lag_seconds_count", exchange="binance", channel="trades") > 0
        assert value(samples, "hundi_store_write_seconds_count", store=str(tmp_path / "data"),
                     operation="flush") > 0  # fmt: skip
        assert value(samples, "process_resident_memory_bytes") > 0
        # The token guards /metrics; /health stays open for probes.
        assert fetch(f"{base}/metrics")[0] == 401
        assert fetch(f"{base}/metrics", "wrong-token-wrong-token-wrong")[0] == 401
        status, body = fetch(f"{base}/health")
        # anonymous probes see the verdict only: a reason can quote a store's error text
        assert status == 200 and json.loads(body) == {"status": "ok"}, body
        status, body = fetch(f"{base}/health", TOKEN)
        shown = json.loads(body)
        assert status == 200 and shown["reason"] == "" and shown["frames"] > 0, body

        # No more frames: wait until every stream is down, nothing is queued for the store and
        # the counters hold still over more than a flush interval (1 s), then compare them
        # with the summary.
        sim.stop()
        deadline = time.monotonic() + 60
        previous: Samples = {}
        while True:
            _, samples = scrape(f"{base}/metrics")
            keys = [
                ("hundi_frames_received_total", ()),
                *(
                    ("hundi_records_stored_total", (("channel", c),))
                    for c in ("trades", "bbo", "book")
                ),
            ]
            if (
                previous
                and all(samples.get(k) == previous.get(k) for k in keys)
                and total(samples, "hundi_stream_connected") == 0
                and total(samples, "hundi_store_backlog_batches") == 0
            ):
                break
            assert time.monotonic() < deadline, f"counters never settled: {samples}"
            previous = samples
            time.sleep(1.5)  # the stillness window of the condition above
    finally:
        sim.stop()
        collector.send_signal(signal.SIGTERM)
        collector.wait(timeout=90)
    summary = json.loads(summary_path.read_text())
    frames = summary["frames"]
    assert value(samples, "hundi_frames_received_total") == frames["received"] > 0
    assert value(samples, "hundi_frames_processed_total") == frames["processed"]
    assert value(samples, "hundi_frames_filtered_total") == frames["filtered"]
    rejected = {
        dict(labels)["reason"]: v
        for (name, labels), v in samples.items()
        if name == "hundi_frames_rejected_total"
    }
    assert rejected == frames["rejected_reasons"] and rejected
    assert total(samples, "hundi_stream_frames_total") == frames["received"]
    for channel in ("trades", "bbo", "book"):
        assert (
            value(samples, "hundi_records_stored_total", channel=channel)
            == (summary["records"][channel])
        ), channel
        store = summary["stores"][0]
        assert (
            value(
                samples, "hundi_store_records_stored_total", store=store["store"], channel=channel
            )
            == store["records"][channel]
        )


@pytest.mark.slow
def test_a_public_health_port_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HUNDI_API_TOKEN"}
    env["HUNDI_LOG_PATH"] = str(tmp_path / "hundi.log")
    result = spawn(
        [HUNDI, "collect", "binance", "--symbols", "BTCUSDT", "--store", str(tmp_path / "data"),
         "--health-port", str(free_port()), "--health-host", "0.0.0.0"],
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.wait(timeout=60) == 2
    stderr = result.stderr_text()
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert "--health-host 0.0.0.0 can be reached from other machines: set HUNDI_API_TOKEN" in stderr
    assert not (tmp_path / "data").exists()  # refused before anything was opened


@pytest.mark.slow
def test_a_health_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "HUNDI_LOG_PATH": str(tmp_path / "hundi.log")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = spawn(
            [HUNDI, "collect", "binance", "--symbols", "BTCUSDT", "--store",
             str(tmp_path / "data"), "--endpoint", "ws://127.0.0.1:9", "--health-port", str(port)],
            env=env, cwd=tmp_path,
        )  # fmt: skip
        assert result.wait(timeout=60) == 2
    stderr = result.stderr_text()
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert f"Error: --health-port: cannot listen on 127.0.0.1:{port}" in stderr
    assert not (tmp_path / "data").exists()  # refused before any store was opened


def _trade(exchange: str, ts: int, recv_ts: int) -> Trade:
    return Trade(
        exchange=exchange, symbol="BTC-USDT", native_symbol="BTCUSDT", ts=ts, recv_ts=recv_ts,
        trade_id=1, price=1.0, size=1.0, side=1, first_trade_id=1, last_trade_id=1,
    )  # fmt: skip


def test_lag_histogram_buckets_a_batch_per_exchange_and_channel() -> None:
    """``le`` bounds include equality; a record without an exchange time (ts == recv_ts) tells
    no lag; two exchanges in one batch get their own series."""
    lag = LagHistogram()
    ms = 1_000_000
    batch = {
        Channel.TRADES: [
            _trade("a", 0, 1 * ms),  # exactly the 1 ms bound
            _trade("a", 0, 3 * ms),
            _trade("a", 5, 5),  # no exchange time
            _trade("b", 0, 40_000 * ms),  # beyond every bound: +Inf only
        ]
    }
    lag.observe(batch)
    lag.observe({Channel.EVENTS: []})
    snapshot = lag.buckets.snapshot()
    assert set(snapshot) == {("a", "trades"), ("b", "trades")}
    cumulative, seconds = snapshot[("a", "trades")]
    bounds = [*LAG_BUCKETS_S, float("inf")]
    expected = [int(b >= 1e-3) + int(b >= 3e-3) for b in bounds]
    assert cumulative == expected
    assert seconds == pytest.approx(0.004)
    cumulative, seconds = snapshot[("b", "trades")]
    assert cumulative == [0] * len(LAG_BUCKETS_S) + [1] and seconds == pytest.approx(40.0)
    # what the exposition adds up: +Inf is the count
    assert np.diff(snapshot[("a", "trades")][0]).min() >= 0
