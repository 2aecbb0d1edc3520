#!/usr/bin/env python3
"""Start and stop the real servers hundi's production stores talk to: Cassandra 5 and KairosDB.

There is no Docker engine on our machines, so both run straight from Maven Central artifacts on
the local JDK 17: ``mvn dependency:copy-dependencies`` fetches each server's jars once into
``.services/<name>/lib``, and this script renders the config, starts the JVM detached, and waits
until the server is really usable (Cassandra: its log says CQL clients are served and a CQL
handshake succeeds; KairosDB: ``/api/v1/health/check`` answers 204). Logs go to
``.services/logs/<name>.log``.

    python services/manage.py up [cassandra|kairosdb ...]
    python services/manage.py down [...]
    python services/manage.py status
    python services/manage.py logs cassandra
    python services/manage.py nodetool <nodetool arguments>   (JMX on 127.0.0.1 only)
    python services/manage.py cluster up|down|status|wipe [--nodes N]
    python services/manage.py cluster kill|start <node>       (kill -9 / restart one node)

``cluster`` runs N nodes of the same Cassandra on 127.0.0.1..N beside the single node (CQL
``HUNDI_CLUSTER_CQL_PORT`` 9142, storage ``HUNDI_CLUSTER_STORAGE_PORT`` 7100, JMX
``HUNDI_CLUSTER_JMX_PORT`` + node, heap ``HUNDI_CLUSTER_HEAP`` 768M; data in
``.services/cluster``): docs/cassandra-store.md, "A local multi-node cluster".

Ports: ``HUNDI_CASSANDRA_PORT`` (9042), ``HUNDI_CASSANDRA_STORAGE_PORT`` (7000),
``HUNDI_CASSANDRA_JMX_PORT`` (7199), ``HUNDI_KAIROSDB_PORT`` (8080). Heap sizes:
``HUNDI_CASSANDRA_HEAP`` (1G), ``HUNDI_KAIROSDB_HEAP`` (512m). KairosDB logs in to Cassandra
with ``CASSANDRA_USER``/``CASSANDRA_PASSWORD`` (the test node's superuser cassandra/cassandra
unless set). Tests import this module to stop and restart servers (outage tests).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SERVICES = Path(__file__).resolve().parent
REPO = SERVICES.parent
RUNTIME = Path(os.environ.get("HUNDI_SERVICES_DIR", REPO / ".services")).resolve()
LOGS = RUNTIME / "logs"
PROGRESS_EVERY_S = 15.0


class ServiceError(RuntimeError):
    """A server could not be fetched or started; the message says which and where to look."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ServiceError(f"{name}={raw!r} is not a port number") from None


@dataclass(frozen=True)
class Ports:
    cql: int
    storage: int
    jmx: int
    kairosdb: int

    @classmethod
    def from_env(cls) -> Ports:
        return cls(
            cql=_env_int("HUNDI_CASSANDRA_PORT", 9042),
            storage=_env_int("HUNDI_CASSANDRA_STORAGE_PORT", 7000),
            jmx=_env_int("HUNDI_CASSANDRA_JMX_PORT", 7199),
            kairosdb=_env_int("HUNDI_KAIROSDB_PORT", 8080),
        )


def _log(message: str) -> None:
    print(f"[services] {message}", flush=True)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _fetch_jars(name: str) -> Path:
    """Copy the server's runtime jars from Maven (cached in ~/.m2) once; a stamp marks success."""
    lib = RUNTIME / name / "lib"
    pom = SERVICES / name / "pom.xml"
    stamp = lib / ".complete"
    if stamp.exists() and stamp.stat().st_mtime >= pom.stat().st_mtime:
        return lib
    if shutil.which("mvn") is None:
        raise ServiceError("mvn is not on PATH; Maven is needed to fetch the server jars")
    shutil.rmtree(lib, ignore_errors=True)
    lib.mkdir(parents=True)
    _log(
        f"{name}: fetching jars from Maven Central into {lib} (once; measured 30 s to 3 min "
        "per server on fresh machines, depending on the network)"
    )
    command = [
        "mvn",
        "-B",
        "--no-transfer-progress",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={lib}",
        "-DincludeScope=runtime",
    ]
    LOGS.mkdir(parents=True, exist_ok=True)
    maven_log = LOGS / f"{name}-maven.log"
    started = time.monotonic()
    with maven_log.open("w") as out:
        fetch = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        while True:
            try:
                fetch.wait(timeout=PROGRESS_EVERY_S)
                break
            except subprocess.TimeoutExpired:
                # a heartbeat for the person waiting, not a wait for a condition
                jars = sum(1 for _ in lib.glob("*.jar"))
                _log(
                    f"{name}: still fetching, {time.monotonic() - started:.0f}s so far "
                    f"({jars} jars copied; Maven's log: {maven_log})"
                )
    if fetch.returncode != 0:
        output = maven_log.read_text(errors="replace")
        raise ServiceError(f"{name}: `{' '.join(command)}` failed:\n{output[-3000:]}")
    jars = sum(1 for _ in lib.glob("*.jar"))
    size_mb = sum(p.stat().st_size for p in lib.glob("*.jar")) / 1e6
    _log(f"{name}: {jars} jars ({size_mb:.0f} MB) fetched in {time.monotonic() - started:.0f}s")
    stamp.touch()
    return lib


def _render(template: Path, target: Path, values: dict[str, str]) -> None:
    text = template.read_text()
    left = sorted(set(re.findall(r"@([A-Z_]+)@", text)) - set(values))
    if left:  # the server would fail later with a YAML/HOCON parse error in its own log
        raise ServiceError(f"{template}: no value for @{'@, @'.join(left)}@")
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(0o600)


def _pid_file(name: str) -> Path:
    return RUNTIME / name / "pid"


def running_pid(name: str) -> int | None:
    """The pid of our server if it is alive (a stale pid file is removed).

    A pid file outliving its server (a reboot, a crash) may name a pid the system has since
    given to another process: ``stop`` and ``cluster down`` would signal that process's whole
    group. So the pid counts only while the process runs in this server's runtime folder (every
    server here is started there) and its command line names that folder; where /proc is
    missing, the pid is trusted as before."""
    path = _pid_file(name)
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
        if not _runs_from(pid, RUNTIME / name):
            raise ProcessLookupError(pid)
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return None
    return pid


def _runs_from(pid: int, home: Path) -> bool:
    """Whether ``pid`` is a server started in ``home``: its working directory is in ``home``,
    not only its command line naming it (every cluster node's class path names the single
    node's jars, ``.services/cassandra/lib``)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs: cannot tell, trust the pid file
    except OSError:  # not ours to inspect (another user's process): not our server
        return False
    return f"{home}/".encode() in command and cwd.is_relative_to(home.resolve())


def _spawn(name: str, command: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    log_path = LOGS / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        log_file.write(f"\n===== start {time.strftime('%Y-%m-%dT%H:%M:%S')} =====\n".encode())
        log_file.flush()
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the shell that started it; stopped by pid
        )
    _pid_file(name).write_text(f"{process.pid}\n")
    return process


def _wait(name: str, process: subprocess.Popen[bytes], ready: object, timeout: float) -> None:
    assert callable(ready)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(
                f"{name} exited with code {process.returncode} while starting; "
                f"see {LOGS / (name + '.log')}:\n{tail(name)}"
            )
        if ready():
            return
        time.sleep(0.5)
    raise ServiceError(
        f"{name} not ready after {timeout:.0f}s; see {LOGS / (name + '.log')}:\n{tail(name)}"
    )


def tail(name: str, lines: int = 30) -> str:
    path = LOGS / f"{name}.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _jvm_options(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


# --- Cassandra --------------------------------------------------------------------------------


def _cassandra_ready(ports: Ports, log_offset: int) -> bool:
    log_text = (LOGS / "cassandra.log").read_text(errors="replace")[log_offset:]
    return "Startup complete" in log_text and port_open(ports.cql)


def _cassandra_command(
    home: Path, lib: Path, heap: str, jmx_port: int, properties: list[str]
) -> list[str]:
    """The JVM command line of one Cassandra node whose rendered config is in ``home/conf``."""
    conf = home / "conf"
    jamm = next(lib.glob("jamm-*.jar"))
    return [
        "java",
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-Xss256k",
        "-XX:+UseG1GC",
        *_jvm_options(SERVICES / "cassandra" / "jvm17.options"),
        f"-javaagent:{jamm}",
        f"-Dcassandra.config=file://{conf / 'cassandra.yaml'}",
        f"-Dlogback.configurationFile={conf / 'logback.xml'}",
        f"-Dcassandra.storagedir={home / 'data'}",
        "-Dcassandra-foreground=yes",
        *properties,
        f"-Dcassandra.jmx.local.port={jmx_port}",
        "-cp",
        f"{conf}:{lib}/*",
        "org.apache.cassandra.service.CassandraDaemon",
    ]


def _render_cassandra_conf(home: Path, values: dict[str, str], extra_yaml: str = "") -> None:
    conf = home / "conf"
    _render(SERVICES / "cassandra" / "cassandra.yaml", conf / "cassandra.yaml", values)
    if extra_yaml:
        with (conf / "cassandra.yaml").open("a") as yaml_file:
            yaml_file.write(extra_yaml)
    shutil.copy(SERVICES / "cassandra" / "logback.xml", conf / "logback.xml")


SINGLE_NODE_COMMITLOG = "commitlog_sync: periodic\ncommitlog_sync_period: 10000ms"


def start_cassandra(ports: Ports | None = None, timeout: float = 240.0) -> None:
    ports = ports or Ports.from_env()
    if running_pid("cassandra"):
        _log("cassandra: already running")
        return
    if port_open(ports.cql):
        raise ServiceError(f"port {ports.cql} is taken by another process; stop it first")
    lib = _fetch_jars("cassandra")
    home = RUNTIME / "cassandra"
    _render_cassandra_conf(
        home,
        {
            "HOME": str(home),
            "CLUSTER_NAME": "hundi-dev",
            "COMMITLOG_SYNC": SINGLE_NODE_COMMITLOG,
            "ADDRESS": "127.0.0.1",
            "SEEDS": f"127.0.0.1:{ports.storage}",
            "CQL_PORT": str(ports.cql),
            "STORAGE_PORT": str(ports.storage),
        },
    )
    heap = os.environ.get("HUNDI_CASSANDRA_HEAP", "1G")
    command = _cassandra_command(
        home,
        lib,
        heap,
        ports.jmx,
        [
            # A one-node test cluster has nobody to gossip with: don't wait for it.
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.ring_delay_ms=0",
            "-Dcassandra.superuser_setup_delay_ms=0",
        ],
    )
    log_path = LOGS / "cassandra.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    started = time.monotonic()
    _log(f"cassandra: starting on 127.0.0.1:{ports.cql} (heap {heap})")
    process = _spawn("cassandra", command, home)
    _wait("cassandra", process, lambda: _cassandra_ready(ports, offset), timeout)
    _wait_superuser(ports.cql, deadline=time.monotonic() + 60)
    _log(f"cassandra: ready in {time.monotonic() - started:.1f}s")


def _wait_superuser(cql_port: int, deadline: float, host: str = "127.0.0.1") -> None:
    """The default superuser is created just after CQL opens; wait for a login to succeed."""
    try:
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import Cluster
    except ImportError:  # driver not installed (services used without the venv): log-only check
        return
    user = os.environ.get("CASSANDRA_USER", "cassandra")
    password = os.environ.get("CASSANDRA_PASSWORD", "cassandra")
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        cluster = Cluster(
            [host],
            port=cql_port,
            auth_provider=PlainTextAuthProvider(user, password),
            connect_timeout=3,
        )
        try:
            cluster.connect().execute("SELECT release_version FROM system.local")
            return
        except Exception as exc:
            last_error = exc
            time.sleep(1)
        finally:
            cluster.shutdown()
    raise ServiceError(f"cassandra: CQL login as {user!r} never succeeded: {last_error}")


# --- KairosDB ---------------------------------------------------------------------------------


def kairosdb_healthy(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/api/v1/health/check"
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 204)
    except (OSError, urllib.error.URLError):
        return False


def start_kairosdb(ports: Ports | None = None, timeout: float = 180.0) -> None:
    ports = ports or Ports.from_env()
    if running_pid("kairosdb"):
        _log("kairosdb: already running")
        return
    if port_open(ports.kairosdb):
        raise ServiceError(f"port {ports.kairosdb} is taken by another process; stop it first")
    if not port_open(ports.cql):
        raise ServiceError("kairosdb needs Cassandra: start cassandra first")
    lib = _fetch_jars("kairosdb")
    home = RUNTIME / "kairosdb"
    # KairosDB loads every *.conf/*.properties in its working directory as overrides, so it
    # runs in a folder that holds only the rendered config.
    workdir = home / "run"
    shutil.rmtree(workdir, ignore_errors=True)
    _render(
        SERVICES / "kairosdb" / "kairosdb.conf",
        workdir / "kairosdb.conf",
        {
            "HTTP_PORT": str(ports.kairosdb),
            "CQL_PORT": str(ports.cql),
            "QUEUE": str(home / "queue"),
            "CASSANDRA_USER": os.environ.get("CASSANDRA_USER", "cassandra"),
            "CASSANDRA_PASSWORD": os.environ.get("CASSANDRA_PASSWORD", "cassandra"),
        },
    )
    shutil.copy(SERVICES / "kairosdb" / "logback.xml", home / "logback.xml")
    heap = os.environ.get("HUNDI_KAIROSDB_HEAP", "512m")
    command = [
        "java",
        f"-Xmx{heap}",
        # Guice 4 reflects into java.lang on JDK 17; the query validator into java.util
        # (group_by tag fails with "error during validation" without it).
        "--add-opens=java.base/java.lang=ALL-UNNAMED",
        "--add-opens=java.base/java.util=ALL-UNNAMED",
        f"-Dlogback.configurationFile={home / 'logback.xml'}",
        "-cp",
        f"{lib}/*",
        "org.kairosdb.core.Main",
        "-c",
        "run",
        "-p",
        str(workdir / "kairosdb.conf"),
    ]
    started = time.monotonic()
    _log(f"kairosdb: starting on http://127.0.0.1:{ports.kairosdb} (heap {heap})")
    process = _spawn("kairosdb", command, workdir)
    _wait("kairosdb", process, lambda: kairosdb_healthy(ports.kairosdb), timeout)
    _log(f"kairosdb: ready in {time.monotonic() - started:.1f}s")


# --- both ---------------------------------------------------------------------------------------

STARTERS = {"cassandra": start_cassandra, "kairosdb": start_kairosdb}
ORDER = ("cassandra", "kairosdb")  # KairosDB keeps its data in Cassandra


def start(name: str) -> None:
    STARTERS[name]()


def stop(name: str, timeout: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; waits until the process is gone."""
    pid = running_pid(name)
    if pid is None:
        return
    _log(f"{name}: stopping (pid {pid})")
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            _reap(pid)
            time.sleep(0.2)
        else:
            continue
        break
    _pid_file(name).unlink(missing_ok=True)


def _reap(pid: int) -> None:
    """Collect the exit status when the server is our own child (tests restart servers)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _names(given: list[str]) -> list[str]:
    unknown = [name for name in given if name not in STARTERS]
    if unknown:
        raise ServiceError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(ORDER)}")
    return [name for name in ORDER if name in given] if given else list(ORDER)


def _nodetool_command(jmx_port: int, arguments: list[str]) -> list[str]:
    """nodetool from the node's own jars against a loopback-only JMX port."""
    lib = RUNTIME / "cassandra" / "lib"
    if not (lib / ".complete").exists():
        raise ServiceError(f"no Cassandra jars in {lib}; run `python services/manage.py up` once")
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"hundi-nodetool-{os.getuid()}"
    home.mkdir(mode=0o700, exist_ok=True)  # nodetool writes its history under user.home
    return [
        "java",
        "-Xmx256m",
        "-XX:TieredStopAtLevel=1",  # a short-lived client: start fast, no JIT warm-up
        "-XX:+UseSerialGC",
        *_jvm_options(SERVICES / "cassandra" / "jvm17.options"),
        f"-Duser.home={home}",
        f"-Dlogback.configurationFile={SERVICES / 'cassandra' / 'logback-tools.xml'}",
        "-cp",
        f"{lib}/*",
        "org.apache.cassandra.tools.NodeTool",
        "-h",
        "127.0.0.1",
        "-p",
        str(jmx_port),
        *arguments,
    ]


def nodetool(arguments: list[str], jmx_port: int | None = None) -> int:
    """Run nodetool against the single node (or the JMX port given); the JVM replaces this
    process, so nodetool's output and exit code are the command's."""
    command = _nodetool_command(jmx_port or Ports.from_env().jmx, arguments)
    sys.stdout.flush()
    os.execvp(command[0], command)


# --- a local multi-node cluster ----------------------------------------------------------------
#
# N real nodes from the same jars on 127.0.0.1 .. 127.0.0.N (Linux routes all of 127.0.0.0/8 to
# lo, so no alias is needed; where binding fails the error says which `ip addr add` to run).
# Their own ports, so the cluster runs beside the single node of `up`: CQL 9142 and storage 7100
# on every node's address, JMX 7301.. (JMX binds 127.0.0.1 only, so each node needs its own).

CLUSTER = RUNTIME / "cluster"
CLUSTER_NAME = "hundi-cluster"
CLUSTER_KEYSPACE = "hundi_cluster"
CLUSTER_MAX_NODES = 9
SEED_COUNT = 2
MURMUR3_MIN = -(2**63)
# A node acknowledges a write only once its commit log is fsynced (group commit, 15 ms window).
# With Cassandra's default periodic sync (10 s) a node's commit log is replayed after a crash
# only up to its last sync marker: a QUORUM write that two of three nodes acknowledged, and
# that the third had not applied yet, is lost when those two are killed -9 together: the most
# likely cause of the 4 acknowledged book rows one run of the two-nodes-down test lost.
CLUSTER_COMMITLOG = "commitlog_sync: group\ncommitlog_sync_group_window: 15ms"


@dataclass(frozen=True)
class ClusterPorts:
    cql: int
    storage: int
    jmx_base: int  # node i's JMX port is jmx_base + i

    @classmethod
    def from_env(cls) -> ClusterPorts:
        return cls(
            cql=_env_int("HUNDI_CLUSTER_CQL_PORT", 9142),
            storage=_env_int("HUNDI_CLUSTER_STORAGE_PORT", 7100),
            jmx_base=_env_int("HUNDI_CLUSTER_JMX_PORT", 7300),
        )

    def jmx(self, index: int) -> int:
        return self.jmx_base + index


def node_address(index: int) -> str:
    return f"127.0.0.{index}"


def node_name(index: int) -> str:
    """The name pid files and logs use: ``.services/cluster/node<i>/pid``, ``logs/cluster/``."""
    return f"cluster/node{index}"


def cluster_size() -> int:
    """How many nodes the cluster was created with (0: never created or wiped)."""
    try:
        return int((CLUSTER / "size").read_text().strip())
    except (OSError, ValueError):
        return 0


def _node_token(index: int, count: int) -> int:
    """Evenly spaced Murmur3 tokens: every node owns 1/N of the ring from its first start, so
    the nodes can start together without bootstrapping (an empty cluster has nothing to
    stream) and RF=N puts every row on every node anyway."""
    return MURMUR3_MIN + (index - 1) * (2**64 // count)


def _check_bindable(address: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            raise ServiceError(
                f"cannot bind {address}:{port} ({exc.strerror}); if the address is missing, "
                f"add it as root: `ip addr add {address}/8 dev lo`; if the port is taken, stop "
                "what holds it or set HUNDI_CLUSTER_CQL_PORT/HUNDI_CLUSTER_STORAGE_PORT"
            ) from None


def render_cluster_node_conf(home: Path, index: int, count: int, ports: ClusterPorts) -> None:
    """Node ``index`` of ``count``: its cassandra.yaml and logback.xml in ``home/conf``."""
    address = node_address(index)
    seeds = ",".join(
        f"{node_address(i)}:{ports.storage}" for i in range(1, min(count, SEED_COUNT) + 1)
    )
    _render_cassandra_conf(
        home,
        {
            "HOME": str(home),
            "CLUSTER_NAME": CLUSTER_NAME,
            "COMMITLOG_SYNC": CLUSTER_COMMITLOG,
            "ADDRESS": address,
            "SEEDS": seeds,
            "CQL_PORT": str(ports.cql),
            "STORAGE_PORT": str(ports.storage),
        },
        f"# node {index} of {count} (services/manage.py)\n"
        f"initial_token: {_node_token(index, count)}\n"
        "auto_bootstrap: false\n",
    )


def start_cluster_node(
    index: int, count: int, ports: ClusterPorts | None = None
) -> tuple[subprocess.Popen[bytes], int] | None:
    """Spawn node ``index`` of ``count`` (None if it already runs); returns the process and the
    offset of its log where this start begins, for ``wait_cluster_node``."""
    ports = ports or ClusterPorts.from_env()
    name = node_name(index)
    if running_pid(name):
        _log(f"{name}: already running")
        return None
    address = node_address(index)
    for port in (ports.cql, ports.storage):
        _check_bindable(address, port)
    if port_open(ports.jmx(index)):
        raise ServiceError(f"JMX port {ports.jmx(index)} is taken; set HUNDI_CLUSTER_JMX_PORT")
    lib = _fetch_jars("cassandra")
    home = CLUSTER / f"node{index}"
    render_cluster_node_conf(home, index, count, ports)
    heap = os.environ.get("HUNDI_CLUSTER_HEAP", "768M")
    command = _cassandra_command(
        home,
        lib,
        heap,
        ports.jmx(index),
        [
            # Tokens are fixed and nothing streams: the nodes need not wait for gossip to
            # settle (a minute of idling per node on 2 cores otherwise).
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.ring_delay_ms=1000",
            "-Dcassandra.superuser_setup_delay_ms=0",
        ],
    )
    log_path = LOGS / f"{name}.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    _log(f"{name}: starting on {address}:{ports.cql} (heap {heap}, JMX {ports.jmx(index)})")
    return _spawn(name, command, home), offset


def wait_cluster_node(
    index: int,
    started: tuple[subprocess.Popen[bytes], int],
    ports: ClusterPorts | None = None,
    timeout: float = 300.0,
) -> None:
    """Until node ``index`` logged "Startup complete" and serves CQL on its own address."""
    ports = ports or ClusterPorts.from_env()
    process, offset = started
    name = node_name(index)
    log_path = LOGS / f"{name}.log"

    def ready() -> bool:
        text = log_path.read_text(errors="replace")[offset:]
        return "Startup complete" in text and port_open(ports.cql, node_address(index))

    _wait(name, process, ready, timeout)


def node_states(via: int, ports: ClusterPorts | None = None) -> dict[str, str]:
    """``{address: "UN"|"DN"|...}`` as node ``via`` sees the ring (``nodetool status``)."""
    ports = ports or ClusterPorts.from_env()
    result = subprocess.run(
        _nodetool_command(ports.jmx(via), ["status"]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise ServiceError(f"nodetool status via node {via} failed: {result.stderr.strip()}")
    return parse_ring_states(result.stdout)


def parse_ring_states(status_output: str) -> dict[str, str]:
    """``{address: state}`` from ``nodetool status`` output: the rows whose first field is a
    status+state pair such as ``UN`` (up, normal) or ``DN`` (down, normal)."""
    states: dict[str, str] = {}
    for line in status_output.splitlines():
        fields = line.split()
        if len(fields) >= 2 and len(fields[0]) == 2 and fields[0][0] in "UD":
            states[fields[1]] = fields[0]
    return states


def wait_cluster_up(count: int, via: int = 1, timeout: float = 300.0) -> None:
    """Until every one of the ``count`` nodes is UN as node ``via`` sees it."""
    wanted = {node_address(i) for i in range(1, count + 1)}
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while True:
        with contextlib.suppress(ServiceError, subprocess.TimeoutExpired):
            states = node_states(via)
            if all(states.get(address) == "UN" for address in wanted):
                return
        if time.monotonic() > deadline:
            raise ServiceError(
                f"cluster: not all {count} nodes UN after {timeout:.0f}s (node {via} sees "
                f"{states or 'nothing'}); logs in {LOGS / 'cluster'}"
            )
        time.sleep(1)


def _cluster_session(via: int = 1) -> object:
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import WhiteListRoundRobinPolicy

    ports = ClusterPorts.from_env()
    only_via = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy([node_address(via)]), request_timeout=60
    )
    return Cluster(
        [node_address(via)],
        port=ports.cql,
        auth_provider=PlainTextAuthProvider(
            os.environ.get("CASSANDRA_USER", "cassandra"),
            os.environ.get("CASSANDRA_PASSWORD", "cassandra"),
        ),
        execution_profiles={EXEC_PROFILE_DEFAULT: only_via},
        connect_timeout=10,
    )


def _replicate_auth_and_keyspace(count: int) -> None:
    """system_auth and the test keyspace at RF=N: logins keep working with a node down (the
    roles are read at LOCAL_QUORUM), and the keyspace is the one the cluster test writes."""
    from cassandra.cluster import Cluster

    cluster = _cluster_session()
    assert isinstance(cluster, Cluster)
    replication = f"{{'class': 'SimpleStrategy', 'replication_factor': {count}}}"
    try:
        session = cluster.connect()
        session.execute(f"ALTER KEYSPACE system_auth WITH replication = {replication}")
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {CLUSTER_KEYSPACE} WITH replication = {replication}"
        )
        session.execute(f"ALTER KEYSPACE {CLUSTER_KEYSPACE} WITH replication = {replication}")
    finally:
        cluster.shutdown()
    # The default superuser was written with RF=1; a full repair copies it to every node.
    result = subprocess.run(
        _nodetool_command(ClusterPorts.from_env().jmx(1), ["repair", "-full", "system_auth"]),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise ServiceError(f"nodetool repair system_auth failed: {result.stdout[-2000:]}")


def cluster_up(count: int) -> None:
    """Start ``count`` nodes together, wait until all are UN, then RF=N for auth and keyspace."""
    if not 1 <= count <= CLUSTER_MAX_NODES:
        raise ServiceError(f"N={count}: a local cluster has 1 to {CLUSTER_MAX_NODES} nodes")
    existing = cluster_size()
    if existing and existing != count:
        raise ServiceError(
            f"the cluster in {CLUSTER} was created with {existing} nodes, not {count}; "
            "`make cluster-down` and `python services/manage.py cluster wipe` to recreate it"
        )
    began = time.monotonic()
    CLUSTER.mkdir(parents=True, exist_ok=True)
    (CLUSTER / "size").write_text(f"{count}\n")
    seeds = list(range(1, min(count, SEED_COUNT) + 1))
    others = list(range(len(seeds) + 1, count + 1))
    try:
        # A non-seed node gives up ("Unable to gossip with any peers") if no seed answers
        # within its shadow round: the seeds first, together, then the others, together.
        for group in (seeds, others):
            spawned = {i: start_cluster_node(i, count) for i in group}
            for index, started in spawned.items():
                if started is not None:
                    wait_cluster_node(index, started)
        wait_cluster_up(count)
        for index in range(1, count + 1):
            _wait_superuser(
                ClusterPorts.from_env().cql, time.monotonic() + 120, host=node_address(index)
            )
        _replicate_auth_and_keyspace(count)
    except BaseException:
        cluster_down()  # no half-started cluster left behind
        raise
    _log(
        f"cluster: {count} nodes UN, keyspace {CLUSTER_KEYSPACE} at RF={count}, "
        f"up in {time.monotonic() - began:.1f}s"
    )


def kill_node(index: int) -> None:
    """``kill -9`` node ``index`` (a crash, not a shutdown: no drain, no flush)."""
    pid = running_pid(node_name(index))
    if pid is None:
        raise ServiceError(f"{node_name(index)} is not running")
    _log(f"{node_name(index)}: kill -9 (pid {pid})")
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _reap(pid)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    _pid_file(node_name(index)).unlink(missing_ok=True)


def restart_nodes(indices: list[int]) -> None:
    """Start the given (killed or stopped) nodes together and wait until every node is UN."""
    count = cluster_size()
    spawned = {i: start_cluster_node(i, count) for i in indices}
    for index, started in spawned.items():
        if started is not None:
            wait_cluster_node(index, started)
    wait_cluster_up(count, via=indices[0])


def cluster_down() -> None:
    for index in range(cluster_size() or CLUSTER_MAX_NODES, 0, -1):
        stop(node_name(index))


def cluster_wipe() -> None:
    if any(running_pid(node_name(i)) for i in range(1, CLUSTER_MAX_NODES + 1)):
        raise ServiceError("the cluster is running; `make cluster-down` first")
    shutil.rmtree(CLUSTER, ignore_errors=True)
    shutil.rmtree(LOGS / "cluster", ignore_errors=True)


def cluster_status() -> bool:
    """Print each node's process, CQL port and ring state; True if all are UN."""
    count = cluster_size()
    if not count:
        print(f"cluster: not created (no {CLUSTER / 'size'})")
        return False
    ports = ClusterPorts.from_env()
    live = [i for i in range(1, count + 1) if running_pid(node_name(i))]
    states: dict[str, str] = {}
    if live:
        with contextlib.suppress(ServiceError, subprocess.TimeoutExpired):
            states = node_states(live[0])
    for index in range(1, count + 1):
        address = node_address(index)
        pid = running_pid(node_name(index))
        cql = "up" if port_open(ports.cql, address) else "down"
        print(
            f"node{index}  {address}:{ports.cql}  cql={cql:4}  ring={states.get(address, '?'):2}"
            f"  jmx={ports.jmx(index)}  pid={pid or '-'}"
        )
    return all(states.get(node_address(i)) == "UN" for i in range(1, count + 1))


def cluster_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="manage.py cluster", description="a local cluster")
    parser.add_argument("action", choices=["up", "down", "status", "wipe", "kill", "start"])
    parser.add_argument("-n", "--nodes", type=int, default=3, help="nodes for `up` (3)")
    parser.add_argument("node", nargs="?", type=int, help="the node for kill/start")
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            cluster_up(args.nodes)
        elif args.action == "down":
            cluster_down()
        elif args.action == "wipe":
            cluster_wipe()
        elif args.action == "status":
            return 0 if cluster_status() else 1
        elif args.node is None or not 1 <= args.node <= cluster_size():
            raise ServiceError(f"{args.action}: give a node number 1..{cluster_size()}")
        elif args.action == "kill":
            kill_node(args.node)
        else:
            restart_nodes([args.node])
    except ServiceError as exc:
        print(f"[services] error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["cluster"]:
        return cluster_main(argv[1:])
    if argv[:1] == ["nodetool"]:
        try:
            return nodetool(argv[1:])
        except ServiceError as exc:
            print(f"[services] error: {exc}", file=sys.stderr)
            return 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "status", "logs"])
    parser.add_argument("names", nargs="*", help="cassandra, kairosdb (default: both)")
    args = parser.parse_args(argv)
    try:
        names = _names(args.names)
        if args.action == "up":
            for name in names:
                start(name)
        elif args.action == "down":
            for name in reversed(names):
                stop(name)
        elif args.action == "logs":
            for name in names:
                print(f"--- {LOGS / (name + '.log')}\n{tail(name, 80)}")
        else:
            ports = Ports.from_env()
            state = {
                "cassandra": port_open(ports.cql),
                "kairosdb": kairosdb_healthy(ports.kairosdb),
            }
            for name in names:
                pid = running_pid(name)
                health = "up" if state[name] else "down"
                print(f"{name:10} {health:5} pid={pid or '-'}")
    except ServiceError as exc:
        print(f"[services] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
