"""Least-privilege Cassandra roles for hundi, and the commands that set them up.

``hundi store init cassandra://host/keyspace`` creates or migrates the keyspace's tables (the
channel tables, the chunk tables of ``CASSANDRA_CHUNKED_CHANNELS``, the ``hundi_partitions``
index, TWCS and TTL options) and is the only step that
needs CREATE/ALTER: run it with the admin role. ``hundi store roles cassandra://host/keyspace``
does the same, then creates (or re-passwords) the login roles below and grants them exactly
what hundi needs; ``--print`` shows the CQL without connecting (passwords as placeholders).

========  =============================  ============================================
role      used by                        may
========  =============================  ============================================
admin     the bootstrap Job only         everything (superuser; CASSANDRA_USER)
writer    collectors                     SELECT + MODIFY on hundi's keyspace
reader    hundi-api, Jupyter             SELECT on hundi's keyspace
kairosdb  KairosDB                       CREATE/ALTER/DROP/SELECT/MODIFY on its own
                                         keyspace, and CREATE on ALL KEYSPACES (see below)
========  =============================  ============================================

MODIFY is Cassandra's INSERT/UPDATE/DELETE *and* TRUNCATE permission: the writer can empty a
table but cannot DROP or ALTER one. KairosDB 1.3 runs ``CREATE KEYSPACE IF NOT EXISTS`` at every
start and Cassandra checks CREATE on <all keyspaces> even when the keyspace exists, so its role
needs that one keyspace-level permission; it gets no access to keyspaces it did not create.

Role names come from ``--writer/--reader/--kairosdb`` (default ``CASSANDRA_WRITER_USER``...,
then hundi_writer, hundi_reader, kairosdb) and passwords only from the environment
(``CASSANDRA_WRITER_PASSWORD``, ``CASSANDRA_READER_PASSWORD``, ``CASSANDRA_KAIROSDB_PASSWORD``):
never from the command line, never printed. A role whose password is not set is left alone.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from hundi.stores.base import StoreError, glued_name

if TYPE_CHECKING:
    from hundi.records import Channel
    from hundi.stores.base import Store

EXIT_OK, EXIT_BAD_INPUT = 0, 2
_ROLE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


@dataclass(frozen=True, slots=True)
class Role:
    kind: str  # writer, reader, kairosdb
    name: str
    password_env: str  # the environment variable holding its password


def role_grants(role: Role, keyspace: str, kairosdb_keyspace: str) -> list[str]:
    """The GRANT statements of one role (idempotent: granting twice is a no-op)."""
    name = _quote_role(role.name)
    perms: tuple[str, ...]
    if role.kind == "writer":
        perms, ks = ("SELECT", "MODIFY"), keyspace
    elif role.kind == "reader":
        perms, ks = ("SELECT",), keyspace
    elif role.kind == "kairosdb":
        perms, ks = ("CREATE", "ALTER", "DROP", "SELECT", "MODIFY"), kairosdb_keyspace
    else:
        raise StoreError(f"unknown role kind {role.kind!r}")
    grants = [f'GRANT {perm} ON KEYSPACE "{ks}" TO {name}' for perm in perms]
    if role.kind == "kairosdb":
        grants.append(f"GRANT CREATE ON ALL KEYSPACES TO {name}")
    return grants


def role_cql(
    roles: list[Role],
    keyspace: str,
    kairosdb_keyspace: str,
    replication_cql: str,
    passwords: Mapping[str, str] | None,
) -> list[str]:
    """Every statement that sets up ``roles``: the KairosDB keyspace (a grant needs it to
    exist), each role (created, or its password changed) and its grants. With ``passwords``
    None the password literals are placeholders naming their variable (for printing)."""
    statements: list[str] = []
    if any(r.kind == "kairosdb" for r in roles):
        statements.append(
            f'CREATE KEYSPACE IF NOT EXISTS "{kairosdb_keyspace}" '
            f"WITH replication = {replication_cql}"
        )
    for role in roles:
        name = _quote_role(role.name)
        if passwords is None:
            secret = f"'<{role.password_env}>'"
        else:
            secret = "'" + passwords[role.password_env].replace("'", "''") + "'"
        statements.append(
            f"CREATE ROLE IF NOT EXISTS {name} WITH LOGIN = true AND SUPERUSER = false "
            f"AND PASSWORD = {secret}"
        )
        # An existing role gets the (new) password: this is how a password is rotated.
        statements.append(f"ALTER ROLE {name} WITH PASSWORD = {secret} AND LOGIN = true")
        statements.extend(role_grants(role, keyspace, kairosdb_keyspace))
    return statements


def _quote_role(name: str) -> str:
    if not _ROLE.fullmatch(name):
        raise StoreError(
            f"role name {name!r} must be a lowercase letter then up to 47 lowercase letters, "
            "digits or _"
        )
    return f'"{name}"'


def _fail(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(EXIT_BAD_INPUT)


def _cassandra_url(url: str) -> None:
    """StoreError unless ``url`` is a Cassandra store URL (``./data`` once said "names no
    host")."""
    from hundi.stores.base import describe_url, scheme_of

    if scheme_of(url) != "cassandra":
        raise StoreError(
            f"{describe_url(url)!r} is not a Cassandra store URL (cassandra://host/keyspace)"
        )


def _open_admin(url: str, *, existing_only: bool = False) -> object:
    """The store of ``url``, its schema brought up to date; ``existing_only``: a keyspace
    that does not exist is an error (a maintenance command given a typo must not create it)."""
    from hundi.stores.cassandra.store import CassandraStore

    _cassandra_url(url)
    return CassandraStore(url, existing_only=existing_only, maintenance=True)


@click.command("init")
@click.argument("url", metavar="URL")
def init(url: str) -> None:
    """Create or migrate the tables of the Cassandra store URL (cassandra://host/keyspace).

    The only step that needs CREATE/ALTER: run it with the admin role (CASSANDRA_USER and
    CASSANDRA_PASSWORD) before collectors (writer role) and readers start."""
    from hundi.stores.cassandra.store import CassandraStore

    try:
        store = _open_admin(url)
    except StoreError as exc:
        _fail(str(exc))
        return
    assert isinstance(store, CassandraStore)
    try:
        if store._unreachable:
            _fail(f"Cassandra {store.settings.where} is not reachable")
        made = len(store.schema_changes)
        tables = len(store._specs) + len(store._chunk_reads) + 1
        click.echo(
            f"ok: keyspace {store.settings.keyspace} is current ({tables} tables; "
            f"{made} change(s) made)"
        )
    finally:
        store.close()


@click.command("roles")
@click.argument("url", metavar="URL")
@click.option(
    "--writer",
    default=None,
    help="Writer role (collectors) [CASSANDRA_WRITER_USER or hundi_writer].",
)
@click.option(
    "--reader",
    default=None,
    help="Read-only role (API, Jupyter) [CASSANDRA_READER_USER or hundi_reader].",
)
@click.option(
    "--kairosdb",
    "kairosdb",
    default=None,
    help="KairosDB role [CASSANDRA_KAIROSDB_USER or kairosdb].",
)
@click.option(
    "--kairosdb-keyspace", default=None, help="KairosDB's keyspace [KAIROSDB_KEYSPACE or kairosdb]."
)
@click.option(
    "--print",
    "print_only",
    is_flag=True,
    help="Print the CQL (passwords as placeholders); connect to nothing.",
)
def roles(
    url: str,
    writer: str | None,
    reader: str | None,
    kairosdb: str | None,
    kairosdb_keyspace: str | None,
    print_only: bool,
) -> None:
    """Create the schema (as `init`), then the least-privilege login roles and their grants.

    Run with the admin role. Passwords come only from CASSANDRA_WRITER_PASSWORD,
    CASSANDRA_READER_PASSWORD and CASSANDRA_KAIROSDB_PASSWORD; a role whose password is unset
    is skipped. Running it again re-applies the grants and sets each role's password from the
    environment (how a password is rotated)."""
    from hundi.stores.cassandra.settings import load_settings, replication_cql
    from hundi.stores.cassandra.store import CassandraStore

    env = os.environ
    all_roles = [
        Role(
            "writer",
            writer or env.get("CASSANDRA_WRITER_USER") or "hundi_writer",
            "CASSANDRA_WRITER_PASSWORD",
        ),
        Role(
            "reader",
            reader or env.get("CASSANDRA_READER_USER") or "hundi_reader",
            "CASSANDRA_READER_PASSWORD",
        ),
        Role(
            "kairosdb",
            kairosdb or env.get("CASSANDRA_KAIROSDB_USER") or "kairosdb",
            "CASSANDRA_KAIROSDB_PASSWORD",
        ),
    ]
    kks = kairosdb_keyspace or env.get("KAIROSDB_KEYSPACE") or "kairosdb"
    try:
        _cassandra_url(url)
        settings = load_settings(url)
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,47}", kks):
            raise StoreError(f"KairosDB keyspace {kks!r} is not a keyspace name")
        replication = replication_cql(settings.replication)
        if print_only:
            for statement in role_cql(all_roles, settings.keyspace, kks, replication, None):
                click.echo(statement + ";")
            return
        names = [r.name for r in all_roles]
        if len(set(names)) != len(names):
            raise StoreError(f"the writer, reader and KairosDB roles must differ: {names}")
        if settings.user in names:
            raise StoreError(
                f"role {settings.user!r} is the admin login (CASSANDRA_USER): give the "
                "least-privilege roles other names"
            )
        chosen = [r for r in all_roles if env.get(r.password_env)]
        if not chosen:
            raise StoreError(
                "no role to set up: set CASSANDRA_WRITER_PASSWORD, CASSANDRA_READER_PASSWORD "
                "and/or CASSANDRA_KAIROSDB_PASSWORD"
            )
        statements = role_cql(chosen, settings.keyspace, kks, replication, env)
        store = _open_admin(url)
    except StoreError as exc:
        _fail(str(exc))
        return
    assert isinstance(store, CassandraStore)
    try:
        if store._unreachable:
            _fail(f"Cassandra {store.settings.where} is not reachable")
        secrets = [env[r.password_env] for r in chosen]
        for statement in statements:
            try:
                store._session.execute(statement)
            except Exception as exc:  # the driver's errors: one line, passwords scrubbed
                text = f"{type(exc).__name__}: {exc}"
                for secret in secrets:
                    text = text.replace(secret, "***")
                _fail(f"Cassandra {store.settings.where}: setting up roles failed: {text}")
        done = ", ".join(f"{r.kind} {r.name}" for r in chosen)
        click.echo(f"ok: keyspace {settings.keyspace} current; roles set up: {done}")
    finally:
        store.close()


def _day_number(text: str, option: str) -> int:
    """A YYYY-MM-DD option as days since the epoch (UTC), or one clear StoreError."""
    from datetime import date

    try:
        return (date.fromisoformat(text.strip()) - date(1970, 1, 1)).days
    except ValueError:
        raise StoreError(f"{option} {text!r}: expected a date YYYY-MM-DD") from None


def _selection(
    channel: str | None, day: str | None, since: str | None, until: str | None
) -> tuple[int | None, int | None, Channel | None]:
    """``--channel``, ``--day`` or ``--since``/``--until`` → (first day, last day, channel),
    or one clear StoreError."""
    from hundi.records import Channel

    if day is not None and (since is not None or until is not None):
        raise StoreError("--day cannot be combined with --since/--until")
    low, high = (day, day) if day is not None else (since, until)
    option = ("--day", "--day") if day is not None else ("--since", "--until")
    first = _day_number(low, option[0]) if low is not None else None
    last = _day_number(high, option[1]) if high is not None else None
    if first is not None and last is not None and last < first:
        raise StoreError(f"--until {until} is before --since {since}")
    chosen = None
    if channel is not None:
        try:
            chosen = Channel(channel.strip().lower())
        except ValueError:
            names = ", ".join(c.value for c in Channel)
            raise StoreError(f"--channel {channel!r}: expected one of {names}") from None
    return first, last, chosen


def _partition_options(command: Callable[..., None]) -> Callable[..., None]:
    """The store and the partition filters ``compact`` and ``migrate`` share."""
    for option in reversed(
        [
            click.option("--store", "url", required=True, metavar="URL",
                         help="cassandra://host/keyspace"),
            click.option("--exchange", default=None, help="Only this exchange."),
            click.option("--channel", default=None, help="Only this channel (e.g. trades)."),
            click.option("--symbol", default=None, help="Only this symbol (e.g. BTC-USDT)."),
            click.option("--day", default=None, metavar="YYYY-MM-DD", help="Only this UTC day."),
            click.option("--since", default=None, metavar="YYYY-MM-DD",
                         help="From this UTC day on."),
            click.option("--until", default=None, metavar="YYYY-MM-DD",
                         help="Up to this UTC day (incl.)."),
        ]
    ):  # fmt: skip
        command = option(command)
    return command


@click.command("compact")
@_partition_options
def compact(
    url: str,
    exchange: str | None,
    channel: str | None,
    symbol: str | None,
    day: str | None,
    since: str | None,
    until: str | None,
) -> None:
    """Merge the many small chunks of each closed UTC hour of the Cassandra store's chunk
    tables into a few big ones (reads return the same records, faster).

    An hour is closed once it ended CASSANDRA_COMPACT_CLOCK_MARGIN seconds ago (default 60).
    One line per partition: chunks before -> after, records, seconds. An hour holding a
    damaged chunk is left as it is and reported. Exit 0 when done, 1 when Cassandra cannot
    be reached or a partition had a damaged chunk or failed, 2 on bad input."""
    from hundi.stores.cassandra.compaction import (
        chunked_partitions,
        clock_margin_s,
        compact_partition,
    )
    from hundi.stores.cassandra.store import CassandraStore

    try:
        first, last, chosen = _selection(channel, day, since, until)
        margin = clock_margin_s()
        store = _open_admin(url, existing_only=True)
    except StoreError as exc:
        _fail(str(exc))
        return
    assert isinstance(store, CassandraStore)
    failed = 0
    try:
        # from here on a failure is the store's, not the input's: exit 1 (a CronJob or
        # script tells an outage from a typo)
        if store._unreachable:
            click.echo(f"Cassandra {store.settings.where} is not reachable", err=True)
            sys.exit(1)
        try:
            symbol = _stored_symbol(store, exchange, symbol, chosen)
        except StoreError as exc:
            _fail(str(exc))  # exits 2; the store closes below
        try:
            partitions = list(
                chunked_partitions(
                    store, exchange=exchange, channel=chosen, symbol=symbol,
                    first_day=first, last_day=last,
                )
            )  # fmt: skip
        except StoreError as exc:
            click.echo(str(exc), err=True)
            sys.exit(1)
        for found_channel, found_exchange, found_symbol, found_day in partitions:
            name = f"{found_channel.value} {found_exchange} {found_symbol} {_iso(found_day)}"
            try:
                report = compact_partition(
                    store, found_channel, found_exchange, found_symbol, found_day,
                    margin_s=margin,
                )  # fmt: skip
            except Exception as exc:  # the driver's errors, a store error: one line each
                failed += 1
                click.echo(f"{name}: failed: {type(exc).__name__}: {exc}", err=True)
                continue
            click.echo(
                f"{name}: chunks {report.chunks_before} -> {report.chunks_after}, "
                f"{report.records} records, {report.hours} hour(s) rewritten, "
                + (
                    f"{report.changed} changed while read (left for the next run), "
                    if report.changed
                    else ""
                )
                + f"{report.seconds:.2f} s"
            )
            for problem in report.damaged:
                click.echo(f"{name}: {problem}", err=True)
            failed += report.failed
        click.echo(f"{len(partitions)} partition(s), {failed} failed")
    finally:
        store.close()
    if failed:
        sys.exit(1)


@click.command("migrate")
@_partition_options
def migrate(
    url: str,
    exchange: str | None,
    channel: str | None,
    symbol: str | None,
    day: str | None,
    since: str | None,
    until: str | None,
) -> None:
    """Move the closed UTC days still stored row per record into the chunk tables of the
    Cassandra store (CASSANDRA_CHUNKED_CHANNELS; bbo and book stay in rows), then delete
    the rows. Reads return the same records before, during and after, faster after.

    A day is closed once it ended CASSANDRA_COMPACT_CLOCK_MARGIN seconds ago (default 60).
    One line per stream-day: rows -> chunks, seconds. Running it again moves only what is
    left. Exit 0 when done, 1 when Cassandra cannot be reached or a day was left in rows
    (it changed meanwhile, or failed), 2 on bad input."""
    from hundi.stores.cassandra.compaction import clock_margin_s
    from hundi.stores.cassandra.migration import migratable, migrate_partition, row_partitions
    from hundi.stores.cassandra.store import CassandraStore

    try:
        first, last, chosen = _selection(channel, day, since, until)
        margin = clock_margin_s()
        store = _open_admin(url, existing_only=True)
    except StoreError as exc:
        _fail(str(exc))
        return
    assert isinstance(store, CassandraStore)
    failed = 0
    try:
        if store._unreachable:
            click.echo(f"Cassandra {store.settings.where} is not reachable", err=True)
            sys.exit(1)
        if chosen is not None and (why := migratable(store, chosen)):
            _fail(f"--channel {chosen.value}: {why}")  # exits 2; the store closes below
        try:
            symbol = _stored_symbol(store, exchange, symbol, chosen)
        except StoreError as exc:
            _fail(str(exc))
        try:
            partitions = row_partitions(
                store, exchange=exchange, channel=chosen, symbol=symbol,
                first_day=first, last_day=last,
            )  # fmt: skip
        except Exception as exc:  # the driver's errors, a store error: one line
            click.echo(f"listing the stored days failed: {type(exc).__name__}: {exc}", err=True)
            sys.exit(1)
        moved = 0
        for found_channel, found_exchange, found_symbol, found_day in partitions:
            name = f"{found_channel.value} {found_exchange} {found_symbol} {_iso(found_day)}"
            try:
                report = migrate_partition(
                    store, found_channel, found_exchange, found_symbol, found_day,
                    margin_s=margin,
                )  # fmt: skip
            except Exception as exc:  # the driver's errors, a store error: one line each
                failed += 1
                click.echo(f"{name}: failed: {type(exc).__name__}: {exc}", err=True)
                continue
            if report.open_day:
                click.echo(f"{name}: not yet: the day has not ended (clock margin {margin:g} s)")
                continue
            if report.moved:
                moved += 1
                click.echo(
                    f"{name}: {report.rows} rows -> {report.chunks} chunks, {report.seconds:.2f} s"
                )
            elif not report.failed:  # another migrator moved them since the listing
                click.echo(f"{name}: nothing to move")
            if report.failed:
                failed += 1
                click.echo(f"{name}: left in rows: {report.left}", err=True)
        click.echo(f"{moved} day(s) moved into chunks, {failed} left in rows")
    finally:
        store.close()
    if failed:
        sys.exit(1)


def _stored_symbol(
    store: Store, exchange: str | None, symbol: str | None, channel: Channel | None
) -> str | None:
    """``--exchange``/``--symbol`` checked against what the store's index holds: a name it
    does not hold is bad input (StoreError naming what it holds), not "0 partition(s)",
    exit 0. A symbol spelled another way with the same letters and digits (``BTCUSDT``,
    ``btc-usdt``) is the stored one it names, if just one. The symbol as stored."""
    exchanges = store.exchanges()
    if exchange is not None and exchange not in exchanges:
        raise StoreError(f"{store.describe()} holds no exchange {exchange!r}; it holds: "
                         f"{', '.join(exchanges) or 'nothing'}")  # fmt: skip
    if symbol is None:
        return None
    stored: set[str] = set()
    for name in [exchange] if exchange is not None else exchanges:
        held = store.channels(name)
        for found in [channel] if channel is not None else held:
            if found in held:
                stored.update(store.symbols(name, found))
    if symbol in stored:
        return symbol
    same = sorted(s for s in stored if glued_name(s) == glued_name(symbol))
    if len(same) == 1:
        return same[0]
    where = f"{exchange} " if exchange is not None else ""
    named = ", ".join(same or sorted(stored)) or "nothing"
    raise StoreError(f"{store.describe()} holds no {where}symbol {symbol!r}; it holds: {named}")


def _iso(day: int) -> str:
    from datetime import date, timedelta

    return (date(1970, 1, 1) + timedelta(days=day)).isoformat()
