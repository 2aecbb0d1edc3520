"""A KairosDB store per test on the real server, under its own metric prefix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kairos_samples import new_prefix

from hundi.stores.kairosdb import KairosStore


@pytest.fixture
def prefix() -> str:
    return new_prefix()


@pytest.fixture
def store(kairosdb_url: str, prefix: str) -> Iterator[KairosStore]:
    """Verifying store (flush returns once KairosDB shows every point); data expires in 1 h."""
    opened = KairosStore(kairosdb_url, prefix=prefix, ttl=3600, verify=True, verify_timeout=20)
    yield opened
    opened.client.close()
