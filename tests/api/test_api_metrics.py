"""``GET /metrics`` of a real ``hundi serve`` process: requests by route, method and status,
latency, store reads and the process, parsed with prometheus_client's own parser; behind the
API token like every endpoint but the health check."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from apiserver import serve
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

TOKEN = "metrics-api-token-0123456789abcdef"


def get_text(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_serve_metrics_count_requests_by_route_and_status(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    symbols = "/api/v1/symbols?exchange=binance"
    with serve(str(data), tmp_path, "--host", "0.0.0.0", env={"HUNDI_API_TOKEN": TOKEN}) as api:
        for _ in range(3):  # the empty store holds no binance: 404 listing "nothing"
            reply = api.get(symbols, token=TOKEN)
            assert reply.status == 404 and "it holds: nothing" in str(reply.body), reply
        assert api.get(symbols).status == 401
        assert api.get("/api/v1/bars?exchange=binance", token=TOKEN).status == 400
        assert api.get("/api/v1/health").status == 200
        assert get_text(api.base + "/nowhere", TOKEN)[0] == 404
        assert get_text(api.base + "/metrics")[0] == 401  # the token guards /metrics too
        status, text = get_text(api.base + "/metrics", TOKEN)
    assert status == 200, text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {
        "hundi_api_requests",
        "hundi_api_request_seconds",
        "hundi_api_store_reads",
        "hundi_api_reads_waiting",
        "process_cpu_seconds",
        "process_resident_memory_bytes",
    } <= set(families)
    counted = {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for s in families["hundi_api_requests"].samples
        if s.name == "hundi_api_requests_total"
    }
    assert counted == {
        ("/api/v1/symbols", "GET", "404"): 3,
        ("/api/v1/symbols", "GET", "401"): 1,
        ("/api/v1/bars", "GET", "400"): 1,
        ("/api/v1/health", "GET", "200"): 1,
        ("unmatched", "GET", "404"): 1,  # raw paths never become labels
        ("/metrics", "GET", "401"): 1,
    }
    latency = {
        s.labels["route"]: s.value
        for s in families["hundi_api_request_seconds"].samples
        if s.name == "hundi_api_request_seconds_count"
    }
    assert latency["/api/v1/symbols"] == 4
    reads = next(s.value for s in families["hundi_api_store_reads"].samples)
    assert reads >= 2  # the health probe and at least one symbols read (identical ones share)
