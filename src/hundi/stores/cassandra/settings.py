"""Where the Cassandra store connects and how it writes: the URL plus ``.cassandra.env`` keys.

``cassandra://[user@]host[:port][,host[:port]...]/keyspace``; with no host
(``cassandra:///keyspace``) the contact points are ``CASSANDRA_SEEDS``. The password is read
ONLY from ``CASSANDRA_PASSWORD`` (environment or ``.secret.cassandra.env``), never from the URL,
so it cannot leak through command lines, config files or log lines that print the URL.
Precedence per key: environment > ``.secret.cassandra.env`` > ``.cassandra.env`` (both in the
current directory) > default; the URL's user and keyspace win over ``CASSANDRA_USER`` and
``CASSANDRA_KEYSPACE``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

from cassandra import ConsistencyLevel

from hundi.records import Channel
from hundi.settings import ConfigError, env_with_files, positive_float
from hundi.stores.base import StoreError

ENV_FILE = ".cassandra.env"
SECRET_ENV_FILE = ".secret.cassandra.env"
DEFAULT_PORT = 9042
DEFAULT_KEYSPACE = "hundi"
DEFAULT_REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
# High-rate lossless channels: a row per record costs Cassandra ~30 µs of CPU each, a chunk per
# flush a few µs per record. The rest arrive a few per second per stream, where a chunk per
# flush would hold a handful of records and save nothing (see docs/cassandra-store.md).
DEFAULT_CHUNKED_CHANNELS = "trades,bbo,book,book_l3"
CHUNK_CODECS = ("zstd", "lz4")
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")  # Cassandra's keyspace-name rule

# ``host``, ``host:port``, ``[v6addr]`` or ``[v6addr]:port``
_HOST = re.compile(r"\[(?P<v6>[^\]]+)\](?::(?P<p6>\d+))?|(?P<h>[^:\[\]]+)(?::(?P<p>\d+))?")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CassandraSettings:
    """Everything the store needs to connect and write; ``password`` is kept out of ``repr``."""

    hosts: tuple[str, ...]
    port: int
    keyspace: str
    user: str | None
    password: str | None = field(repr=False)
    consistency: int  # a cassandra.ConsistencyLevel value
    replication: dict[str, str]
    ttl_s: int  # table default_time_to_live; 0 keeps data forever
    concurrency: int  # requests in flight per write
    batch_rows: int  # rows per single-partition UNLOGGED batch; 1 sends plain INSERTs
    local_dc: str | None  # prefer this data centre's replicas (CASSANDRA_DC)
    protocol_version: int
    connect_timeout_s: float
    request_timeout_s: float
    # Channels written in the chunked layout (:mod:`hundi.stores.cassandra.chunks`); the others
    # one row per record. Reads always read both layouts.
    chunked_channels: frozenset[Channel]
    chunk_codec: str  # Arrow IPC buffer compression of a chunk: zstd or lz4
    chunk_rows: int  # most records per chunk (one INSERT stays well under Cassandra's 16 MB)

    @property
    def where(self) -> str:
        """``host:port,.../keyspace`` for messages: no user, no password."""
        hosts = ",".join(f"{h}:{self.port}" for h in self.hosts)
        return f"{hosts}/{self.keyspace}"


def _parse_channels(text: str) -> frozenset[Channel]:
    """``trades,book``, ``all`` or ``none``."""
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if words == ["none"]:
        return frozenset()
    if words == ["all"]:
        return frozenset(Channel)
    known = {c.value: c for c in Channel}
    if not words or any(w not in known for w in words):
        raise ValueError(text)
    return frozenset(known[w] for w in words)


def _parse_codec(text: str) -> str:
    if text.lower() not in CHUNK_CODECS:
        raise ValueError(text)
    return text.lower()


def replication_cql(replication: Mapping[str, str]) -> str:
    """The replication map as a CQL literal (values were validated as safe words/numbers)."""
    return "{" + ", ".join(f"'{k}': '{v}'" for k, v in replication.items()) + "}"


def _parse_replication(text: str) -> dict[str, str]:
    """JSON or a CQL map (single quotes): ``{'class': 'NetworkTopologyStrategy', 'dc1': 3}``."""
    try:
        raw = json.loads(text.replace("'", '"'))
    except ValueError:
        raise ValueError(text) from None
    if not isinstance(raw, dict) or "class" not in raw:
        raise ValueError(text)
    result: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError(text)
        key_text, value_text = str(key), str(value)
        if not re.fullmatch(r"[\w.]+", key_text) or not re.fullmatch(r"[\w.]+", value_text):
            raise ValueError(text)
        result[key_text] = value_text
    return result


def _parse_consistency(text: str) -> int:
    value = ConsistencyLevel.name_to_value.get(text.strip().upper())
    if value is None:
        raise ValueError(text)
    return int(value)


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise ValueError(text)
        return value

    return parse


def _split_url(url: str) -> tuple[str | None, list[tuple[str, int | None]], str | None]:
    """(user, [(host, port or None)], keyspace) from ``cassandra://[user@]h1[:p],h2[:p]/ks``.

    Parsed by hand because ``urllib`` cannot split a comma-separated host list.
    """
    rest = url.split("://", 1)[1] if "://" in url else ""
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    netloc, _, path = rest.partition("/")
    user: str | None = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        if ":" in userinfo:
            raise StoreError(
                "do not put the Cassandra password in the store URL; set CASSANDRA_PASSWORD "
                f"in {SECRET_ENV_FILE} or the environment"
            )
        user = unquote(userinfo) or None
    keyspace = unquote(path.strip("/")) or None
    return user, _split_hosts(netloc, "the Cassandra store URL"), keyspace


def _split_hosts(text: str, where: str) -> list[tuple[str, int | None]]:
    """``h1[:p],[v6]:p,...`` → [(host, port or None)]."""
    hosts: list[tuple[str, int | None]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        match = _HOST.fullmatch(part)
        if match is None:
            raise StoreError(f"bad host {part!r} in {where}")
        port_text = match["p6"] or match["p"]
        if port_text and not 0 < int(port_text) < 65536:
            raise StoreError(f"bad port {port_text} in {where}: a port is 1-65535")
        hosts.append((match["v6"] or match["h"], int(port_text) if port_text else None))
    return hosts


def load_settings(
    url: str, *, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> CassandraSettings:
    """URL + environment + env files → validated settings; a bad value names its key."""
    user, hosts, keyspace = _split_url(url)
    try:
        env = env_with_files(ENV_FILE, SECRET_ENV_FILE, environ=environ, cwd=cwd)
    except ConfigError as exc:
        raise StoreError(str(exc)) from None
    if not hosts:  # cassandra:///keyspace: the cluster's seed nodes are the contact points
        hosts = _split_hosts(env.get("CASSANDRA_SEEDS", ""), "CASSANDRA_SEEDS")
    if not hosts:
        raise StoreError(
            "Cassandra store URL names no host (cassandra://host:9042/keyspace) "
            "and CASSANDRA_SEEDS is not set"
        )
    ports = {port for _, port in hosts if port is not None}
    if len(ports) > 1:  # the driver takes one port for all contact points
        raise StoreError("all Cassandra hosts must use the same port")

    def get(key: str, parse: Callable[[str], T], expected: str, default: str) -> T:
        raw = env.get(key)
        text = default if raw is None or not raw.strip() else raw.strip()
        try:
            return parse(text)
        except ValueError:
            raise StoreError(f"{key} must be {expected}, got {text!r}") from None

    keyspace = keyspace or get("CASSANDRA_KEYSPACE", str, "a keyspace name", DEFAULT_KEYSPACE)
    if not _IDENTIFIER.fullmatch(keyspace):
        raise StoreError(
            f"Cassandra keyspace {keyspace!r} must be a letter then up to 47 letters, digits or _"
        )
    local_dc = env.get("CASSANDRA_DC", "").strip() or None
    return CassandraSettings(
        hosts=tuple(h for h, _ in hosts),
        port=ports.pop() if ports else DEFAULT_PORT,
        keyspace=keyspace,
        user=user or (env.get("CASSANDRA_USER", "").strip() or None),
        password=env.get("CASSANDRA_PASSWORD") or None,
        consistency=get(
            "CASSANDRA_CONSISTENCY",
            _parse_consistency,
            "a consistency level (ONE, LOCAL_ONE, LOCAL_QUORUM, QUORUM, ALL, ...)",
            "LOCAL_QUORUM",
        ),
        replication=get(
            "CASSANDRA_REPLICATION",
            _parse_replication,
            "a replication map with a 'class', e.g. {'class': 'NetworkTopologyStrategy', 'dc1': 3}",
            DEFAULT_REPLICATION,
        ),
        ttl_s=get("CASSANDRA_TTL", _int_at_least(0), "seconds >= 0 (0 = keep forever)", "0"),
        concurrency=get("CASSANDRA_CONCURRENCY", _int_at_least(1), "a positive integer", "32"),
        batch_rows=get("CASSANDRA_BATCH_ROWS", _int_at_least(1), "a positive integer", "64"),
        local_dc=local_dc,
        protocol_version=get(
            "CASSANDRA_PROTOCOL_VERSION", _int_at_least(3), "a protocol version (3, 4, 5)", "5"
        ),
        connect_timeout_s=get("CASSANDRA_CONNECT_TIMEOUT", positive_float, "positive seconds", "5"),
        request_timeout_s=get(
            "CASSANDRA_REQUEST_TIMEOUT", positive_float, "positive seconds", "10"
        ),
        chunked_channels=get(
            "CASSANDRA_CHUNKED_CHANNELS",
            _parse_channels,
            "channel names separated by commas, 'all' or 'none'",
            DEFAULT_CHUNKED_CHANNELS,
        ),
        chunk_codec=get("CASSANDRA_CHUNK_CODEC", _parse_codec, "zstd or lz4", "zstd"),
        chunk_rows=get("CASSANDRA_CHUNK_ROWS", _int_at_least(1), "a positive integer", "100000"),
    )


def options_override(settings: CassandraSettings, options: Mapping[str, Any]) -> dict[str, Any]:
    """Store options that name a settings field (tests, benches) → replacements for it."""
    names = set(CassandraSettings.__dataclass_fields__)
    return {k: v for k, v in options.items() if k in names and k != "password"}
