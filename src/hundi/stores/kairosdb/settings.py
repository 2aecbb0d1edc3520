"""KairosDB store settings: one precedence rule, validated once, errors that name the key.

Precedence, highest first: store options (``open_store(url, ttl=...)``) > URL query parameters
(``kairosdb+http://host:8080?prefix=test1``) > environment variables > ``.kairosdb.env`` in the
current directory > defaults. The server address comes from the URL; a URL without a host
(``kairosdb+http://``) takes ``KAIROSDB_URL``. Credentials may be given in the URL
(``kairosdb+https://user:pass@host``) or as ``KAIROSDB_USER``/``KAIROSDB_PASSWORD``; they are
never logged (:meth:`hundi.stores.base.Store.describe` masks them).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from hundi.settings import ConfigError, positive_float, read_env_file
from hundi.stores.base import StoreError

ENV_FILE = ".kairosdb.env"
DEFAULT_DATAPOINTS_PATH = "/api/v1/datapoints"
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


@dataclass(frozen=True, slots=True)
class KairosSettings:
    """Everything the store needs to talk to one KairosDB server."""

    base_url: str  # http(s)://host:port, no path, no credentials
    user: str | None
    password: str | None
    datapoints_path: str  # POST target for writes; queries use <path>/query
    ttl_s: int  # per-datapoint TTL in seconds; 0 keeps data forever
    metric_prefix: str  # first part of every metric name (``hundi``)
    verify: bool  # read back every flush and compare
    verify_timeout_s: float  # how long a flush waits for KairosDB's queue to show the points
    timeout_s: float  # socket timeout of one HTTP request
    max_points_per_post: int  # bodies are split so each POST stays a few MB
    max_pending_points: int  # write() sends early beyond this (bounded memory)
    gzip_level: int
    merge_horizon_ms: int  # how far back in exchange time per-ms aggregates can still be merged


def _whole(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(text)


def _gzip_level(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 9:
        raise ValueError(text)
    return value


def _api_path(text: str) -> str:
    value = text.strip()
    if not value.startswith("/") or "?" in value or " " in value:
        raise ValueError(text)
    return value.rstrip("/")


def _metric_prefix(text: str) -> str:
    value = text.strip()
    if not _PREFIX.match(value):
        raise ValueError(text)
    return value


# option name: (environment variable, parser, what is expected, default)
_KEYS: dict[str, tuple[str, Callable[[str], Any], str, str]] = {
    "datapoints_path": (
        "KAIROSDB_API_DATAPOINTS", _api_path, "a URL path like /api/v1/datapoints",
        DEFAULT_DATAPOINTS_PATH,
    ),
    "ttl": ("KAIROSDB_TTL", _whole, "a whole number of seconds (0 = forever)", "0"),
    "prefix": (
        "KAIROSDB_METRIC_PREFIX", _metric_prefix, "dot-separated names of [A-Za-z0-9_-]", "hundi"
    ),
    "verify": ("KAIROSDB_VERIFY", _flag, "1/0, true/false", "0"),
    "verify_timeout": (
        "KAIROSDB_VERIFY_TIMEOUT", positive_float, "a positive number of seconds", "10"
    ),
    "timeout": ("KAIROSDB_TIMEOUT", positive_float, "a positive number of seconds", "10"),
    "max_points_per_post": (
        "KAIROSDB_MAX_POINTS_PER_POST", _positive_int, "a positive integer", "50000"
    ),
    "max_pending_points": (
        "KAIROSDB_MAX_PENDING_POINTS", _positive_int, "a positive integer", "500000"
    ),
    "gzip_level": ("KAIROSDB_GZIP_LEVEL", _gzip_level, "an integer 1..9", "1"),
    "merge_horizon_ms": (
        "KAIROSDB_MERGE_HORIZON_MS", _positive_int, "a positive number of milliseconds", "2000"
    ),
}  # fmt: skip


def load_settings(
    url: str,
    options: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> KairosSettings:
    """Resolve and validate every setting (see the module docstring for the precedence)."""
    environ = os.environ if environ is None else environ
    try:
        dotenv = read_env_file((cwd or Path.cwd()) / ENV_FILE)
    except ConfigError as exc:
        raise StoreError(str(exc)) from None

    def lookup(env: str) -> tuple[str | None, str]:
        if environ.get(env) is not None:
            return environ[env], "environment"
        if dotenv.get(env) is not None:
            return dotenv[env], ENV_FILE
        return None, ""

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    values: dict[str, Any] = {}
    for name, (env, parse, expected, default) in _KEYS.items():
        if options.get(name) is not None:
            raw, origin = str(options[name]), "store option"
        elif name in query:
            raw, origin = query[name], "store URL"
        else:
            found, origin = lookup(env)
            raw, origin = (found, origin) if found is not None else (default, "default")
        try:
            values[name] = parse(raw)
        except ValueError:
            raise StoreError(f"{env} must be {expected}, got {raw!r} (from {origin})") from None

    base_url, user, password = _server(parts.scheme, parts, lookup)
    return KairosSettings(
        base_url=base_url,
        user=user,
        password=password,
        datapoints_path=values["datapoints_path"],
        ttl_s=values["ttl"],
        metric_prefix=values["prefix"],
        verify=values["verify"],
        verify_timeout_s=values["verify_timeout"],
        timeout_s=values["timeout"],
        max_points_per_post=values["max_points_per_post"],
        max_pending_points=values["max_pending_points"],
        gzip_level=values["gzip_level"],
        merge_horizon_ms=values["merge_horizon_ms"],
    )


def _server(
    scheme: str, parts: Any, lookup: Callable[[str], tuple[str | None, str]]
) -> tuple[str, str | None, str | None]:
    """(http(s)://host:port, user, password) from the store URL, else from KAIROSDB_URL."""
    if not scheme.startswith("kairosdb+") or scheme.removeprefix("kairosdb+") not in (
        "http",
        "https",
    ):
        raise StoreError("KairosDB store URLs start with kairosdb+http:// or kairosdb+https://")
    if parts.hostname:
        http_scheme = scheme.removeprefix("kairosdb+")
        source = parts
    else:
        env_url, _ = lookup("KAIROSDB_URL")
        if not env_url:
            raise StoreError("KairosDB store URL has no host and KAIROSDB_URL is not set")
        source = urlsplit(env_url.strip().removeprefix("kairosdb+"))
        http_scheme = source.scheme
        if http_scheme not in ("http", "https") or not source.hostname:
            raise StoreError("KAIROSDB_URL must look like http://host:8080")
    try:
        port = source.port
    except ValueError:
        raise StoreError("KairosDB URL has an invalid port") from None
    host = source.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    user = unquote(source.username) if source.username else None
    password = unquote(source.password) if source.password else None
    if user is None:
        user = lookup("KAIROSDB_USER")[0] or None
        password = lookup("KAIROSDB_PASSWORD")[0] or None
    return f"{http_scheme}://{netloc}", user, password
