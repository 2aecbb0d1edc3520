"""Shared fixtures. The real recordings are read from ``../shared/recordings``, never copied."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
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


# --- what child processes said, on failure -------------------------------------------------------


@pytest.fixture(autouse=True)
def _children_of_the_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every simulator a test starts joins the children whose stderr a failure report shows."""
    import children
    from hundi.simulator.process import SimulatorProcess

    children.take_all()
    start = SimulatorProcess.start

    def start_and_register(self: SimulatorProcess) -> SimulatorProcess:
        children.register(f"simulator {' '.join(self.args)}", self.stderr_tail)
        return start(self)

    monkeypatch.setattr(SimulatorProcess, "start", start_and_register)
    yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(error, subprocess.CalledProcessError | subprocess.TimeoutExpired):
        # check=True and timeouts: the exception's message does not carry what the child said
        said = error.stderr or error.output or ""
        if isinstance(said, bytes):
            said = said.decode(errors="replace")
        report.sections.append(  # type: ignore[attr-defined]
            (f"stderr of {error.cmd!r}"[:200], said[-4000:] or "(empty)")
        )
    if call.when in ("call", "teardown") and report.failed:  # type: ignore[attr-defined]
        import children

        for label, tail in children.take_all():
            try:
                text = tail()
            except (OSError, ValueError) as exc:
                text = f"(stderr unreadable: {exc})"
            report.sections.append(  # type: ignore[attr-defined]
                (f"stderr of child: {label}", text or "(empty)")
            )
    return report


@pytest.fixture(autouse=True)
def _cassandra_clusters_are_shut_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every Cassandra driver cluster a test creates is shut down by the end of that test.

    A cluster left open keeps reconnecting in the background for the rest of the run: the log
    of one failing test held hundreds of ``Error attempting to reconnect`` warnings from clusters
    of earlier tests. A leak fails the test that made it (and is shut down here)."""
    from cassandra.cluster import Cluster

    created: list[Cluster] = []
    init = Cluster.__init__

    def tracked_init(self: Cluster, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        created.append(self)

    monkeypatch.setattr(Cluster, "__init__", tracked_init)
    yield
    leaked = [cluster for cluster in created if not cluster.is_shutdown]
    for cluster in leaked:
        cluster.shutdown()
    if leaked:
        pytest.fail(f"{len(leaked)} Cassandra cluster(s) left open by this test: close its stores")


# --- which tests are slow ------------------------------------------------------------------------

_SERVER_FIXTURES = frozenset({"cassandra_url", "kairosdb_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs a real Cassandra or KairosDB is slow, whether or not its module says so.

    Tests that start processes or open sockets carry ``pytest.mark.slow`` in their module; this
    catches the server tests by what they use, so ``make test-fast`` never waits for a server.
    """
    for item in items:
        if _SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """``tmpfs(name, size)``: a fresh tmpfs of ``size`` (``30m``) at ``tmp_path/name``."""
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            message = (
                f"cannot mount a {size} tmpfs at {path} (needs root): "
                f"{done.stderr.strip() or done.returncode}"
            )
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode:
            subprocess.run(["umount", "-l", str(path)], check=True, timeout=30)
