"""Shared fixtures. The real recordings are read from ``../shared/recordings``, never copied."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECORDINGS = (REPO / ".." / "shared" / "recordings").resolve()


@pytest.fixture(scope="session")
def recordings_dir() -> Path:
    """The real exchange recordings; missing under CI is a failure, not a skip."""
    if not RECORDINGS.is_dir():
        message = f"real recordings not found at {RECORDINGS}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return RECORDINGS


# --- real servers (started by `make services-up`; CI starts them before the tests) -------------

CASSANDRA_TEST_URL = os.environ.get(
    "HUNDI_TEST_CASSANDRA_URL", "cassandra://127.0.0.1:9042/hundi_test"
)
KAIROSDB_TEST_URL = os.environ.get("HUNDI_TEST_KAIROSDB_URL", "kairosdb+http://127.0.0.1:8080")
# The test node runs with PasswordAuthenticator and its default superuser; production
# credentials come from .secret.cassandra.env.
os.environ.setdefault("CASSANDRA_USER", "cassandra")
os.environ.setdefault("CASSANDRA_PASSWORD", "cassandra")


def _unavailable(what: str) -> None:
    """A missing server fails under CI (it must have been started) and skips locally."""
    message = f"{what} is not running; start it with `make services-up`"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _tcp_open(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def cassandra_url() -> str:
    """URL of the real Cassandra test node (``cassandra://host:port/keyspace``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(CASSANDRA_TEST_URL)
    if not _tcp_open(parts.hostname or "127.0.0.1", parts.port or 9042):
        _unavailable(f"Cassandra at {parts.hostname}:{parts.port}")
    return CASSANDRA_TEST_URL


@pytest.fixture(scope="session")
def kairosdb_url() -> str:
    """URL of the real KairosDB test server (``kairosdb+http://host:port``)."""
    import urllib.request

    http_url = KAIROSDB_TEST_URL.removeprefix("kairosdb+")
    try:
        with urllib.request.urlopen(f"{http_url}/api/v1/health/check", timeout=3) as reply:
            healthy = reply.status == 204
    except OSError:
        healthy = False
    if not healthy:
        _unavailable(f"KairosDB at {http_url}")
    return KAIROSDB_TEST_URL


@pytest.fixture
def cassandra_keyspace(cassandra_url: str) -> Iterator[str]:
    """The test node's URL with a fresh keyspace (the store creates it), dropped afterwards."""
    import uuid
    from urllib.parse import urlsplit

    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    keyspace = f"hundi_t{uuid.uuid4().hex[:12]}"
    yield cassandra_url.rsplit("/", 1)[0] + "/" + keyspace
    parts = urlsplit(cassandra_url)
    cluster = Cluster(
        [parts.hostname or "127.0.0.1"],
        port=parts.port or 9042,
        auth_provider=PlainTextAuthProvider(
            os.environ["CASSANDRA_USER"], os.environ["CASSANDRA_PASSWORD"]
        ),
    )
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()
