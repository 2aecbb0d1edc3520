"""Backup and restore of a hundi keyspace against the real Cassandra test node.

deploy/k8s/base/cassandra/backup.sh is the procedure the backup CronJobs run in the cassandra
containers and the runbook in docs/deployment.md (#cassandra-backups-and-restore) follows; here
it runs against the test node with nodetool from the node's own jars (``services/manage.py
nodetool``, JMX on loopback). Known records go in through the hundi Cassandra store, the
snapshot is shipped to a backup directory, the keyspace is dropped, and what ``hundi.read``
returns after the restore must be exactly what was written.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session
from test_cassandra_store import every_channel, records_of, sort_key

from hundi.query import NotStored
from hundi.query import read as hundi_read
from hundi.records import Channel, Record
from hundi.stores.base import open_store
from hundi.stores.cassandra import CassandraStore

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "deploy" / "k8s" / "base" / "cassandra" / "backup.sh"
MANAGE = REPO / "services" / "manage.py"
NODETOOL = f"{sys.executable} {MANAGE} nodetool"


def backup_sh(*args: str | Path, tag: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NODETOOL": NODETOOL}
    if tag:
        env["BACKUP_TAG"] = tag
    return subprocess.run(
        ["bash", str(SCRIPT), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def nodetool(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(MANAGE), "nodetool", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def keyspace(cql: Session, cassandra_url: str) -> Iterator[str]:
    """A keyspace of its own (others use the node concurrently), dropped afterwards."""
    runtime = Path(os.environ.get("HUNDI_SERVICES_DIR", REPO / ".services"))
    if not (runtime / "cassandra" / "lib" / ".complete").exists():
        message = f"the test node's jars (for nodetool) are not in {runtime}/cassandra/lib"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"hundi_bk_{secrets.token_hex(4)}"
    yield name
    cql.execute(f"DROP KEYSPACE IF EXISTS {name}")


def url_of(cassandra_url: str, keyspace: str) -> str:
    return cassandra_url.rsplit("/", 1)[0] + "/" + keyspace


def write(url: str, batches: dict[Channel, list[Record]], **options: object) -> None:
    store = open_store(url, **options)
    assert isinstance(store, CassandraStore)
    try:
        store.write(batches)
        store.flush()
    finally:
        store.close()


def read_all(url: str, exchange: str, channels: list[Channel]) -> dict[Channel, list[Record]]:
    return {
        channel: sorted(
            records_of(hundi_read(url, exchange=exchange, channel=channel.value), channel),
            key=sort_key,
        )
        for channel in channels
    }


# ~45 nodetool runs (a JVM each: 1-3 s on a loaded 2-core machine): more than the default 300 s
# can be needed under load.
@pytest.mark.timeout(600)
def test_snapshot_shipped_off_the_node_restores_every_record_after_the_keyspace_is_dropped(
    cql: Session, cassandra_url: str, keyspace: str, tmp_path: Path
) -> None:
    url = url_of(cassandra_url, keyspace)
    exchange = f"x{secrets.token_hex(4)}"
    written = every_channel(exchange, count=5)
    write(url, written)  # the chunked channels in chunks, the others in rows
    write(url, written, chunked_channels=frozenset())  # and all in rows: every table has data
    expected = {channel: sorted(records, key=sort_key) for channel, records in written.items()}
    assert read_all(url, exchange, list(written)) == expected  # stored before the backup

    tag = f"t{secrets.token_hex(4)}"
    shipped = tmp_path / "backups" / f"{keyspace}-1"
    made = backup_sh("backup", keyspace, shipped, tag=tag)
    assert made.returncode == 0, made.stderr
    assert f"ok: {keyspace} -> {shipped}" in made.stderr
    assert not shipped.with_name(shipped.name + ".partial").exists()
    description = dict(line.split("=", 1) for line in (shipped / "BACKUP").read_text().splitlines())
    assert description["keyspace"] == keyspace
    assert description["tag"] == tag
    tables = description["tables"].split(",")
    assert {row[0] for row in cql.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
    )} >= set(tables)  # fmt: skip
    assert all(list((shipped / table).glob("*-Data.db")) for table in tables)
    # the snapshot was cleared on the node once shipped
    assert tag not in nodetool("listsnapshots")

    cql.execute(f"DROP KEYSPACE {keyspace}")  # the data is gone
    write(url, {})  # a hundi writer recreates the keyspace and its tables, empty
    with pytest.raises(NotStored, match="holds no exchange"):
        read_all(url, exchange, list(written))

    restored = backup_sh("restore", shipped, keyspace)
    assert restored.returncode == 0, restored.stderr
    assert f"ok: {shipped} -> {keyspace} ({len(tables)} tables imported)" in restored.stderr
    assert read_all(url, exchange, list(written)) == expected  # every record, no duplicates

    # the backup is left intact, and restoring it again adds no duplicate
    again = backup_sh("restore", shipped, keyspace)
    assert again.returncode == 0, again.stderr
    assert read_all(url, exchange, list(written)) == expected


def test_bad_input_is_one_clear_line_and_a_failing_exit(
    cql: Session, cassandra_url: str, keyspace: str, tmp_path: Path
) -> None:
    def fails(done: subprocess.CompletedProcess[str], code: int, text: str) -> None:
        lines = done.stderr.strip().splitlines()
        assert done.returncode == code, done.stderr
        assert len(lines) == 1 and text in lines[0], done.stderr
        assert "Traceback" not in done.stderr and "Exception" not in done.stderr

    fails(backup_sh("backup", "no-such;ks", tmp_path / "b"), 2, "is not a keyspace name")
    fails(backup_sh("backup", keyspace, tmp_path / "b"), 1, "has no tables on this node")
    fails(backup_sh("restore", tmp_path, keyspace), 1, "is not a complete backup")
    fails(backup_sh("frobnicate"), 2, "usage:")

    url = url_of(cassandra_url, keyspace)
    write(url, every_channel(f"x{secrets.token_hex(4)}", count=2))
    # what the CronJob runs: <root>/<host>/<keyspace>/<UTC time>, older backups pruned
    root = tmp_path / "root"
    older = root / socket.gethostname() / keyspace / "20200101T000000Z"
    older.mkdir(parents=True)
    (older / "BACKUP").write_text(f"keyspace={keyspace}\n")
    fails(backup_sh("ship", keyspace, root, "0"), 2, "is not a positive number")
    done = backup_sh("ship", keyspace, root, "1")
    assert done.returncode == 0, done.stderr
    assert f"pruned {older}" in done.stderr
    (shipped,) = (root / socket.gethostname() / keyspace).iterdir()
    assert (shipped / "BACKUP").is_file() and shipped.name > older.name
    fails(backup_sh("backup", keyspace, shipped), 1, "already exists")

    other = f"{keyspace}_x"  # a keyspace without hundi's tables
    fails(backup_sh("restore", shipped, other), 1, "create the schema first")

    damaged = next(shipped.glob("*/*-Data.db"))
    data = damaged.read_bytes()  # flip the last byte: writing a 0 over a 0 damaged nothing
    damaged.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    fails(backup_sh("restore", shipped, keyspace), 1, "is damaged")
    # no snapshot is left behind by the backups
    assert keyspace not in nodetool("listsnapshots")


def test_prune_keeps_the_newest_complete_backups(tmp_path: Path) -> None:
    for name in ["20261201T0300Z", "20261202T0300Z", "20261203T0300Z"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "BACKUP").write_text("keyspace=hundi\n")
    (tmp_path / "20261204T0300Z.partial").mkdir()  # in progress: not counted, not removed
    done = backup_sh("prune", tmp_path, "2")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20261202T0300Z",
        "20261203T0300Z",
        "20261204T0300Z.partial",
    ]
