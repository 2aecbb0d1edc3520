"""The store contract and the URL → store registry.

Stores are found by URL scheme through the ``hundi.stores`` entry-point group, so a new store
(KairosDB, Cassandra, ...) is a new package folder plus one entry point; the core never changes.
A bare path (no scheme) means the embedded store (scheme ``file``).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pandas as pd

from hundi.records import Channel, Record


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a stored stream ends: its last ``ts`` (ns) and, for sequenced channels, its highest
    sequence id (trade id, book update id; -1 when the channel has none)."""

    ts: int
    last_id: int = -1


class StoreError(Exception):
    """A store failure with a message fit for the user (never containing secrets)."""


class Store(ABC):
    """Where batches of records go, and where they are read back from.

    ``write`` is called from one writer thread (never the event loop) with records grouped by
    channel; it may buffer, but ``flush`` must make everything written so far durable and
    visible to readers in other processes. ``close`` flushes.
    """

    scheme: str = ""
    #: Re-writing a record is harmless (keyed upserts: Cassandra, KairosDB). Only such stores
    #: get the outage spool: after an outage the writer re-sends what the store may or may not
    #: have taken, which would duplicate rows in an append-only store.
    idempotent: ClassVar[bool] = False

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url

    @abstractmethod
    def write(self, batches: Mapping[Channel, Sequence[Record]]) -> None: ...

    @abstractmethod
    def flush(self) -> None: ...

    def close(self) -> None:
        self.flush()

    def discard(self) -> None:
        """Forget what was written since the last successful ``flush``.

        Called on idempotent stores when an outage makes the writer spool those batches: the
        store must not keep retrying them itself (they will be re-sent from the spool)."""
        raise NotImplementedError(f"{type(self).__name__} cannot discard unflushed writes")

    @abstractmethod
    def read(
        self,
        *,
        exchange: str,
        symbol: str | None,
        channel: Channel,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Records as a DataFrame indexed by exchange time ``ts`` (UTC), sorted."""

    def describe(self) -> str:
        """Human label for logs: the URL without credentials."""
        return describe_url(self.url)

    def last_position(
        self, exchange: str, symbol: str, channel: Channel, before_ns: int
    ) -> StreamPosition | None:
        """Where the stored stream ends among rows with ``ts < before_ns`` (None: nothing
        stored, or this store cannot tell cheaply). A collector compares its first records
        with it to record the hole since the previous run (:mod:`hundi.pipeline.resume`)."""
        return None


def describe_url(url: str) -> str:
    """A store URL fit for logs and messages: a password in it is masked."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def scheme_of(url: str) -> str:
    parts = urlsplit(url)
    # Windows drive letters and bare paths have no real scheme.
    if not parts.scheme or len(parts.scheme) == 1:
        return "file"
    return parts.scheme


def open_store(url: str, **options: Any) -> Store:
    """Open the store a URL names (``./data``, ``file:./data``, ``kairosdb+http://...``)."""
    scheme = scheme_of(url)
    found = entry_points(group="hundi.stores", name=scheme)
    if not found:
        known = sorted(ep.name for ep in entry_points(group="hundi.stores"))
        raise StoreError(f"unknown store scheme {scheme!r} in {url!r}; known: {', '.join(known)}")
    store_class = next(iter(found)).load()
    store: Store = store_class(url, **options)
    return store


@contextmanager
def reading(store: str | os.PathLike[str] | Store) -> Iterator[Store]:
    """The store to read from: one given open stays open; one opened here from a URL is closed
    when the read is done (a Cassandra store left open keeps its driver's threads and reconnects
    alive for the life of the process: a notebook leaked one per call)."""
    if isinstance(store, Store):
        yield store
        return
    opened = open_store(os.fspath(store), read_only=True)
    try:
        yield opened
    finally:
        opened.close()
