"""Cassandra store fixtures: one shared test keyspace, a direct driver session for checks."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy
from cassandra.query import tuple_factory

if TYPE_CHECKING:
    from hundi.stores.cassandra import CassandraStore


@pytest.fixture(scope="session")
def cql(cassandra_url: str) -> Iterator[Session]:
    """A plain driver session on the test node, to inspect and prepare schemas directly."""
    parts = urlsplit(cassandra_url)
    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(), row_factory=tuple_factory
    )
    cluster = Cluster(
        [parts.hostname or "127.0.0.1"],
        port=parts.port or 9042,
        protocol_version=5,
        auth_provider=PlainTextAuthProvider(
            os.environ["CASSANDRA_USER"], os.environ["CASSANDRA_PASSWORD"]
        ),
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    session = cluster.connect()
    yield session
    cluster.shutdown()


@pytest.fixture
def exchange() -> str:
    """A fresh exchange name per test: tests share the keyspace but never each other's rows."""
    return f"x{secrets.token_hex(4)}"


@pytest.fixture
def writer_pair(
    cassandra_keyspace: str,
) -> Iterator[Callable[..., tuple[CassandraStore, CassandraStore]]]:
    """Opens two writing stores (two collectors) on one fresh keyspace with the given store
    options; both are closed after the test."""
    from hundi.stores.base import open_store
    from hundi.stores.cassandra import CassandraStore

    opened: list[CassandraStore] = []

    def open_pair(**options: object) -> tuple[CassandraStore, CassandraStore]:
        for _ in range(2):
            store = open_store(cassandra_keyspace, **options)
            assert isinstance(store, CassandraStore)
            opened.append(store)
        return opened[-2], opened[-1]

    yield open_pair
    for store in opened:
        store.close()
