"""Least-privilege roles against the real Cassandra: what each role of
``hundi store roles`` can and cannot do (admin = the test node's superuser)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
from cassandra import Unauthorized
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy
from click.testing import CliRunner

from hundi.query import read as hundi_read
from hundi.records import Channel, Record, Ticker, Trade
from hundi.stores.base import StoreError
from hundi.stores.cassandra import CassandraStore
from hundi.stores.embedded.check import store as store_group

pytestmark = pytest.mark.slow

T0 = 1_714_521_600_000_000_000
MS = 1_000_000
PROFILE = ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy())


@dataclass(frozen=True)
class Setup:
    host: str
    port: int
    keyspace: str
    kairosdb_keyspace: str
    roles: dict[str, tuple[str, str]]  # kind -> (name, password)

    def url(self, user: str | None = None) -> str:
        who = f"{user}@" if user else ""
        return f"cassandra://{who}{self.host}:{self.port}/{self.keyspace}"

    def session(self, kind: str) -> Iterator[Session]:
        name, password = self.roles[kind]
        cluster = Cluster(
            [self.host],
            port=self.port,
            protocol_version=5,
            execution_profiles={EXEC_PROFILE_DEFAULT: PROFILE},
            auth_provider=PlainTextAuthProvider(name, password),
        )
        try:
            yield cluster.connect()
        finally:
            cluster.shutdown()


def trades(exchange: str) -> list[Trade]:
    return [
        Trade(
            exchange=exchange,
            symbol="BTC-USDT",
            native_symbol="BTCUSDT",
            ts=T0 + i * MS,
            recv_ts=T0 + i * MS + 1,
            trade_id=i,
            price=60_000.0 + i,
            size=0.5,
            side=1,
            first_trade_id=i,
            last_trade_id=i,
        )
        for i in range(5)
    ]


def ticker(exchange: str) -> Record:
    """A ticker: a channel written one row per record by default."""
    values: dict[str, Any] = {"exchange": exchange, "symbol": "BTC-USDT", "native_symbol": "X"}
    for field in msgspec.structs.fields(Ticker):
        if field.name not in values:
            values[field.name] = {int: T0, float: 1.5, str: "x", bool: True}[field.type]
    return Ticker(**values)


@pytest.fixture(scope="module")
def setup(cassandra_url: str) -> Iterator[Setup]:
    """Roles and keyspaces with unique names, made by `hundi store roles` as the superuser;
    dropped afterwards."""
    tag = secrets.token_hex(4)
    parts = urlsplit(cassandra_url)
    made = Setup(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 9042,
        keyspace=f"hundi_roles_{tag}",
        kairosdb_keyspace=f"kdb_roles_{tag}",
        roles={
            kind: (f"t_{kind}_{tag}", secrets.token_urlsafe(12))
            for kind in ("writer", "reader", "kairosdb")
        },
    )
    env = {f"CASSANDRA_{k.upper()}_PASSWORD": pw for k, (_, pw) in made.roles.items()}
    try:
        result = CliRunner().invoke(
            store_group,
            [
                "roles",
                made.url(),
                "--writer",
                made.roles["writer"][0],
                "--reader",
                made.roles["reader"][0],
                "--kairosdb",
                made.roles["kairosdb"][0],
                "--kairosdb-keyspace",
                made.kairosdb_keyspace,
            ],
            env=env,
        )
        assert result.exit_code == 0, result.output
        assert result.output.startswith("ok: "), result.output
        assert not any(pw in result.output for _, pw in made.roles.values())
        yield made
    finally:
        admin = Cluster(
            [made.host],
            port=made.port,
            protocol_version=5,
            execution_profiles={EXEC_PROFILE_DEFAULT: PROFILE},
            auth_provider=PlainTextAuthProvider(
                os.environ["CASSANDRA_USER"], os.environ["CASSANDRA_PASSWORD"]
            ),
        )
        try:
            session = admin.connect()
            for keyspace in (made.keyspace, made.kairosdb_keyspace):
                session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
            for name, _ in made.roles.values():
                session.execute(f'DROP ROLE IF EXISTS "{name}"')
        finally:
            admin.shutdown()


def login(monkeypatch: pytest.MonkeyPatch, setup: Setup, kind: str) -> str:
    """The store URL for a role; its password in CASSANDRA_PASSWORD as a pod would have it."""
    name, password = setup.roles[kind]
    monkeypatch.setenv("CASSANDRA_PASSWORD", password)
    return setup.url(name)


def test_writer_writes_and_reads_its_records_but_cannot_drop_or_alter(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = login(monkeypatch, setup, "writer")
    store = CassandraStore(url)  # the schema is current: opening issues no CREATE/ALTER
    try:
        assert store.schema_changes == []
        written = trades("xwriter")
        store.write({Channel.TRADES: written})
        frame = store.read(exchange="xwriter", channel=Channel.TRADES, symbol="BTC-USDT")
        assert list(frame["trade_id"]) == [t.trade_id for t in written]
        assert list(frame["price"]) == [t.price for t in written]
        # and a row-per-record channel, beside the chunked trades
        store.write({Channel.TICKER: [ticker("xwriter")]})
        assert len(store.read(exchange="xwriter", channel=Channel.TICKER, symbol=None)) == 1
    finally:
        store.close()
    for session in setup.session("writer"):
        # the trades went to the chunk table `hundi store roles` made (init's schema)
        stored = session.execute(
            f"SELECT sum(records) FROM {setup.keyspace}.trades_chunks "
            "WHERE exchange = 'xwriter' ALLOW FILTERING"
        ).one()
        assert stored[0] == len(written)
        for cql in (
            f"DROP TABLE {setup.keyspace}.trades",
            f"DROP TABLE {setup.keyspace}.trades_chunks",
            f"ALTER TABLE {setup.keyspace}.trades_chunks WITH default_time_to_live = 1",
            f"DROP KEYSPACE {setup.keyspace}",
            f"ALTER TABLE {setup.keyspace}.trades WITH default_time_to_live = 1",
            f"CREATE TABLE {setup.keyspace}.evil (a int PRIMARY KEY)",
            f"CREATE TABLE {setup.kairosdb_keyspace}.evil (a int PRIMARY KEY)",
        ):
            with pytest.raises(Unauthorized):
                session.execute(cql)


def test_reader_reads_and_cannot_write_drop_truncate_or_alter(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASSANDRA_PASSWORD", setup.roles["writer"][1])
    writer = CassandraStore(setup.url(setup.roles["writer"][0]))
    try:
        writer.write({Channel.TRADES: trades("xreader")})
    finally:
        writer.close()
    url = login(monkeypatch, setup, "reader")
    frame = hundi_read(url, exchange="xreader", symbol="BTC-USDT", channel="trades")
    assert list(frame["trade_id"]) == [0, 1, 2, 3, 4]
    # A reader opened as a writing store still opens (no DDL) but the server refuses the write.
    store = CassandraStore(url)
    try:
        with pytest.raises(StoreError, match=r"Unauthorized.*MODIFY"):
            store.write({Channel.TRADES: trades("xreader2")})
    finally:
        store.close()
    for session in setup.session("reader"):
        for cql in (
            f"INSERT INTO {setup.keyspace}.hundi_partitions (exchange, channel, symbol, ts_day) "
            "VALUES ('x', 'trades', 'y', 1)",
            f"TRUNCATE {setup.keyspace}.trades",
            f"TRUNCATE {setup.keyspace}.trades_chunks",
            f"DROP TABLE {setup.keyspace}.trades",
            f"DROP TABLE {setup.keyspace}.trades_chunks",
            f"ALTER TABLE {setup.keyspace}.trades WITH default_time_to_live = 1",
            f"INSERT INTO {setup.keyspace}.trades_chunks (exchange, symbol, ts_day, first_ts, "
            "chunk_id, data) VALUES ('x', 'y', 1, 1, 0x00, 0x00)",
        ):
            with pytest.raises(Unauthorized):
                session.execute(cql)
        # and what it could read is still all there: the trades are chunks (the default)
        rows = session.execute(f"SELECT sum(records) FROM {setup.keyspace}.trades_chunks").one()
        assert rows[0] >= 5


def test_a_schema_change_without_the_permission_is_one_clear_error(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer whose settings need a different schema (here another TTL) does not try DDL it
    may not run silently: one error names the permission and the bootstrap command."""
    url = login(monkeypatch, setup, "writer")
    monkeypatch.setenv("CASSANDRA_TTL", "3600")
    with pytest.raises(StoreError) as raised:
        CassandraStore(url)
    message = str(raised.value)
    assert "no ALTER permission" in message
    assert f"hundi store init cassandra://{setup.host}:{setup.port}/{setup.keyspace}" in message
    assert "default_time_to_live" in message
    assert setup.roles["writer"][1] not in message


def test_kairosdb_role_is_limited_to_its_keyspace(setup: Setup) -> None:
    ks = setup.kairosdb_keyspace
    for session in setup.session("kairosdb"):
        # KairosDB's own start: CREATE KEYSPACE IF NOT EXISTS, its tables, writes and reads
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {ks} "
            "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute(f"CREATE TABLE IF NOT EXISTS {ks}.data_points (k int PRIMARY KEY, v int)")
        session.execute(f"INSERT INTO {ks}.data_points (k, v) VALUES (1, 2)")
        assert session.execute(f"SELECT v FROM {ks}.data_points WHERE k = 1").one()[0] == 2
        for cql in (
            f"SELECT * FROM {setup.keyspace}.trades",
            f"INSERT INTO {setup.keyspace}.hundi_partitions (exchange, channel, symbol, ts_day) "
            "VALUES ('x', 'trades', 'y', 1)",
            f"DROP TABLE {setup.keyspace}.trades",
            f"DROP KEYSPACE {setup.keyspace}",
            "SELECT * FROM system_auth.roles",
        ):
            with pytest.raises(Unauthorized):
                session.execute(cql)


def test_roles_print_shows_the_grants_and_no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASSANDRA_WRITER_PASSWORD", "s3cret-not-shown")
    result = CliRunner().invoke(store_group, ["roles", "cassandra://h/hundi", "--print"])
    assert result.exit_code == 0, result.output
    assert "s3cret-not-shown" not in result.output
    lines = result.output.splitlines()
    assert 'GRANT SELECT ON KEYSPACE "hundi" TO "hundi_writer";' in lines
    assert 'GRANT MODIFY ON KEYSPACE "hundi" TO "hundi_writer";' in lines
    assert 'GRANT SELECT ON KEYSPACE "hundi" TO "hundi_reader";' in lines
    assert not [line for line in lines if "hundi_reader" in line and "MODIFY" in line]
    bad = CliRunner().invoke(store_group, ["roles", "cassandra://h/hundi", "--reader", "x;DROP"])
    assert bad.exit_code == 2
    assert bad.output.count("\n") == 1 and "Traceback" not in bad.output
    # never re-password the admin as if it were a least-privilege role, nor mix two roles
    for args, says in (
        (["--writer", "hundi_admin"], "is the admin login"),
        (["--writer", "same", "--reader", "same"], "must differ"),
    ):
        refused = CliRunner().invoke(
            store_group,
            ["roles", "cassandra://h/hundi", *args],
            env={"CASSANDRA_USER": "hundi_admin", "CASSANDRA_WRITER_PASSWORD": "x"},
        )
        assert refused.exit_code == 2 and says in refused.output, refused.output
        assert refused.output.count("\n") == 1


def test_init_creates_the_schema_once_and_refuses_a_non_cassandra_url(
    cassandra_keyspace: str,
) -> None:
    first = CliRunner().invoke(store_group, ["init", cassandra_keyspace])
    assert first.exit_code == 0, first.output
    keyspace = cassandra_keyspace.rsplit("/", 1)[1]
    assert first.output.startswith(f"ok: keyspace {keyspace} is current (")
    assert "; 0 change(s)" not in first.output  # the keyspace and tables were made
    again = CliRunner().invoke(store_group, ["init", cassandra_keyspace])
    assert again.exit_code == 0 and "; 0 change(s) made)" in again.output, again.output
    for command in ("init", "roles"):  # roles once said "names no host" (review)
        bad = CliRunner().invoke(store_group, [command, "./data"])
        assert bad.exit_code == 2 and bad.output.count("\n") == 1, bad.output
        assert "'./data' is not a Cassandra store URL" in bad.output
    check = CliRunner().invoke(store_group, ["check", "cassandra://127.0.0.1/x"])
    assert check.exit_code == 2 and check.output.count("\n") == 1, check.output
    assert (
        "checks an embedded store" in check.output and "'cassandra://127.0.0.1/x'" in check.output
    )


def test_a_writer_on_a_keyspace_missing_a_table_is_told_to_run_init(
    setup: Setup, cassandra_keyspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The missing table is named with the CREATE permission and the bootstrap command."""
    assert CliRunner().invoke(store_group, ["init", cassandra_keyspace]).exit_code == 0
    keyspace = cassandra_keyspace.rsplit("/", 1)[1]
    writer = setup.roles["writer"][0]
    admin = Cluster(
        [setup.host],
        port=setup.port,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: PROFILE},
        auth_provider=PlainTextAuthProvider(
            os.environ["CASSANDRA_USER"], os.environ["CASSANDRA_PASSWORD"]
        ),
    )
    try:
        session = admin.connect()
        session.execute(f'GRANT SELECT ON KEYSPACE {keyspace} TO "{writer}"')
        session.execute(f'GRANT MODIFY ON KEYSPACE {keyspace} TO "{writer}"')
        session.execute(f"DROP TABLE {keyspace}.hundi_partitions", timeout=60)
    finally:
        admin.shutdown()
    url = f"cassandra://{writer}@{setup.host}:{setup.port}/{keyspace}"
    # undone before cassandra_keyspace drops the keyspace as the superuser
    with monkeypatch.context() as env, pytest.raises(StoreError) as raised:
        env.setenv("CASSANDRA_PASSWORD", setup.roles["writer"][1])
        CassandraStore(url)
    message = str(raised.value)
    assert f"create table {keyspace}.hundi_partitions" in message
    assert "no CREATE permission" in message
    assert f"run `hundi store init cassandra://{setup.host}:{setup.port}/{keyspace}`" in message
