"""Cassandra store fixtures: one shared test keyspace, a direct driver session for checks."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, ResultSet, Session
from cassandra.policies import DCAwareRoundRobinPolicy
from cassandra.query import tuple_factory


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
def between_pages(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[object]]:
    """``between_pages(action, reading="")`` runs ``action`` once, the first time a read whose
    CQL holds ``reading`` asks the driver for its next page: the interleaving of a job (a
    compaction, a migration) that runs while a reader is between two pages. Returns a list
    that gets the action's result."""

    def arm(action: Callable[[], object], reading: str = "") -> list[object]:
        real = ResultSet.fetch_next_page
        done: list[object] = []

        def fetch_next_page(self: ResultSet) -> None:
            query = getattr(self.response_future.query, "query_string", "")
            if not done and reading in query:
                done.append(None)
                done[0] = action()
            real(self)

        monkeypatch.setattr(ResultSet, "fetch_next_page", fetch_next_page)
        return done

    return arm
