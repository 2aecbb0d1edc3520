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
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(0o600)


def _pid_file(name: str) -> Path:
    return RUNTIME / name / "pid"


def running_pid(name: str) -> int | None:
    """The pid of our server if it is alive (a stale pid file is removed)."""
    path = _pid_file(name)
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return None
    return pid


def _spawn(name: str, command: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{name}.log"
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


def start_cassandra(ports: Ports | None = None, timeout: float = 240.0) -> None:
    ports = ports or Ports.from_env()
    if running_pid("cassandra"):
        _log("cassandra: already running")
        return
    if port_open(ports.cql):
        raise ServiceError(f"port {ports.cql} is taken by another process; stop it first")
    lib = _fetch_jars("cassandra")
    home = RUNTIME / "cassandra"
    conf = home / "conf"
    _render(
        SERVICES / "cassandra" / "cassandra.yaml",
        conf / "cassandra.yaml",
        {"HOME": str(home), "CQL_PORT": str(ports.cql), "STORAGE_PORT": str(ports.storage)},
    )
    shutil.copy(SERVICES / "cassandra" / "logback.xml", conf / "logback.xml")
    heap = os.environ.get("HUNDI_CASSANDRA_HEAP", "1G")
    jamm = next(lib.glob("jamm-*.jar"))
    command = [
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
        # A one-node test cluster has nobody to gossip with: don't wait for it.
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.ring_delay_ms=0",
        "-Dcassandra.superuser_setup_delay_ms=0",
        f"-Dcassandra.jmx.local.port={ports.jmx}",
        "-cp",
        f"{conf}:{lib}/*",
        "org.apache.cassandra.service.CassandraDaemon",
    ]
    log_path = LOGS / "cassandra.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    started = time.monotonic()
    _log(f"cassandra: starting on 127.0.0.1:{ports.cql} (heap {heap})")
    process = _spawn("cassandra", command, home)
    _wait("cassandra", process, lambda: _cassandra_ready(ports, offset), timeout)
    _wait_superuser(ports, deadline=time.monotonic() + 60)
    _log(f"cassandra: ready in {time.monotonic() - started:.1f}s")


def _wait_superuser(ports: Ports, deadline: float) -> None:
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
            ["127.0.0.1"],
            port=ports.cql,
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


def nodetool(arguments: list[str]) -> int:
    """Run Cassandra's nodetool from the node's own jars against its loopback-only JMX port.

    The JVM replaces this process, so nodetool's output and exit code are the command's.
    """
    lib = RUNTIME / "cassandra" / "lib"
    if not (lib / ".complete").exists():
        raise ServiceError(f"no Cassandra jars in {lib}; run `python services/manage.py up` once")
    ports = Ports.from_env()
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"hundi-nodetool-{os.getuid()}"
    home.mkdir(mode=0o700, exist_ok=True)  # nodetool writes its history under user.home
    command = [
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
        str(ports.jmx),
        *arguments,
    ]
    sys.stdout.flush()
    os.execvp(command[0], command)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
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
