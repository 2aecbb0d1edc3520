"""Runtime settings and feed lists, with one precedence rule for every key.

Precedence, highest first: CLI flags > environment variables > ``.hundi.env`` in the current
directory (python-dotenv) > the ``settings:`` section of a ``--config`` YAML > defaults. Every
value is validated where it is read, and a bad one is reported once, naming the key, the
expected form and where it came from, so a typo never surfaces as a traceback deep in a run.

The YAML file may also list many ``feeds`` (exchange, market, symbols, channels, endpoints,
stores) so one collector process can record several venues.

The pieces every settings resolver shares (:class:`ConfigError`, dotenv reading, value parsers)
live in :mod:`hundi.settings`, which the lower layers use; they are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hundi.records import SERIES_CHANNELS, Channel
from hundi.series.spec import SeriesPlan, SeriesSpecError, parse_series
from hundi.settings import (
    ConfigError,
    env_with_files,
    positive_float,
    positive_int,
    read_env_file,
)

ENV_FILE = ".hundi.env"


def _nonempty(text: str) -> str:
    if not text.strip():
        raise ValueError(text)
    return text.strip()


def _store_list(text: str) -> tuple[str, ...]:
    stores = tuple(part.strip() for part in text.split(",") if part.strip())
    if not stores:
        raise ValueError(text)
    return stores


def _shard(text: str) -> str:
    value = text.strip().lower()
    if value and value != "auto" and not value.isdigit():
        raise ValueError(text)
    return value


def _ws_client(text: str) -> str:
    value = text.strip().lower()
    if value not in ("picows", "aiohttp"):
        raise ValueError(text)
    return value


def _log_stream(text: str) -> str:
    value = text.strip().lower()
    if value not in ("stderr", "stdout"):
        raise ValueError(text)
    return value


def _log_format(text: str) -> str:
    value = text.strip().lower()
    if value not in ("text", "json"):
        raise ValueError(text)
    return value


@dataclass(frozen=True, slots=True)
class _Key:
    env: str
    parse: Callable[[str], Any]
    expected: str
    default: str


KEYS: dict[str, _Key] = {
    "log_path": _Key("HUNDI_LOG_PATH", _nonempty, "a file path", "./logs/hundi.log"),
    "log_queue_max_size": _Key(
        "HUNDI_LOG_QUEUE_MAX_SIZE", positive_int, "a positive integer", "10000"
    ),
    "log_update_interval": _Key(
        "HUNDI_LOG_UPDATE_INTERVAL", positive_float, "a positive number of seconds", "1.0"
    ),
    "log_max_lines": _Key("HUNDI_LOG_MAX_LINES", positive_int, "a positive integer", "10"),
    # 'json': one JSON object per log line (log collectors); the status screen stays text.
    "log_format": _Key("HUNDI_LOG_FORMAT", _log_format, "'text' or 'json'", "text"),
    # Where log lines go besides the file when stdout is no terminal: 'stderr' (warnings and
    # errors only) or 'stdout' (every line at INFO and up: a container's log pipeline).
    "log_stream": _Key("HUNDI_LOG_STREAM", _log_stream, "'stderr' or 'stdout'", "stderr"),
    # The plain status line when stdout is no terminal: slow, so a piped or container log
    # does not fill with a line per refresh.
    "status_line_interval": _Key(
        "HUNDI_STATUS_LINE_INTERVAL", positive_float, "a positive number of seconds", "60"
    ),
    "store": _Key("HUNDI_STORE", _store_list, "comma-separated store URLs", "./data"),
    "flush_interval": _Key(
        "HUNDI_FLUSH_INTERVAL", positive_float, "a positive number of seconds", "1.0"
    ),
    "stale_after": _Key("HUNDI_STALE_AFTER", positive_float, "a positive number of seconds", "60"),
    "queue_batches": _Key("HUNDI_QUEUE_BATCHES", positive_int, "a positive integer", "32"),
    "queue_mb": _Key("HUNDI_QUEUE_MB", positive_int, "a positive integer (MiB)", "32"),
    "ws_client": _Key("HUNDI_WS_CLIENT", _ws_client, "'picows' or 'aiohttp'", "picows"),
    "spool_dir": _Key("HUNDI_SPOOL_DIR", _nonempty, "a folder path", "./spool"),
    "spill_after": _Key("HUNDI_SPILL_AFTER", positive_float, "a positive number of seconds", "5"),
    # A store failing this long with no spool to take over (full disk) stops the collector.
    "store_give_up_after": _Key(
        "HUNDI_STORE_GIVE_UP_AFTER", positive_float, "a positive number of seconds", "300"
    ),
    # Collector sharding (hundi.pipeline.shard): '' = all symbols, 'auto' = StatefulSet ordinal.
    "shard": _Key("HUNDI_SHARD", _shard, "'auto', a shard number or empty", ""),
    "shards": _Key("HUNDI_SHARDS", positive_int, "a positive integer", "1"),
    # '' = health.json beside the log file (hundi.pipeline.health)
    "health_file": _Key("HUNDI_HEALTH_FILE", str.strip, "a file path", ""),
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated settings; ``sources`` says where each value came from (for error messages)."""

    log_path: Path
    log_queue_max_size: int
    log_update_interval: float
    log_max_lines: int
    store: tuple[str, ...]
    flush_interval: float
    stale_after: float
    queue_batches: int
    queue_mb: int
    ws_client: str
    spool_dir: Path
    spill_after: float
    store_give_up_after: float
    shard: str
    shards: int
    health_file: Path | None = None  # status JSON `hundi health` reads; None: beside the log
    log_format: str = "text"  # or 'json' (hundi.logs)
    log_stream: str = "stderr"  # or 'stdout': every INFO+ line there (hundi.logs)
    status_line_interval: float = 60.0  # seconds between plain status lines (not a terminal)
    sources: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """One exchange market to record (a YAML ``feeds`` entry or the CLI arguments).

    Its venue part becomes the venue's :class:`~hundi.exchanges.base.VenueConfig` in one place,
    :func:`hundi.pipeline.cli.venue_config`."""

    exchange: str
    market: str
    symbols: tuple[str, ...]
    channels: tuple[Channel, ...]
    endpoint: str | None = None
    rest_endpoint: str | None = None
    stores: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)
    series: SeriesPlan | None = None  # derived series to compute live (hundi.series)


@dataclass(frozen=True, slots=True)
class ConfigFile:
    settings: dict[str, str]
    feeds: list[FeedConfig]


def load_settings(
    cli: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    config_file: ConfigFile | None = None,
) -> Settings:
    """Resolve every key by precedence and validate it (see the module docstring)."""
    environ = os.environ if environ is None else environ
    dotenv = read_env_file((cwd or Path.cwd()) / ENV_FILE)
    yaml_settings = config_file.settings if config_file else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, key in KEYS.items():
        raw: Any = None
        origin = "default"
        given = (cli or {}).get(name)
        if given is not None:
            raw, origin = given, "command line"
        elif environ.get(key.env) is not None:
            raw, origin = environ[key.env], "environment"
        elif dotenv.get(key.env) is not None:
            raw, origin = dotenv[key.env], ENV_FILE
        elif name in yaml_settings or key.env in yaml_settings:
            raw = yaml_settings.get(name, yaml_settings.get(key.env))
            origin = "config file"
        else:
            raw = key.default
        if origin == "command line" and not isinstance(raw, str):
            values[name] = tuple(raw) if isinstance(raw, list) else raw
        else:
            try:
                values[name] = key.parse(str(raw))
            except ValueError:
                raise ConfigError(
                    f"{key.env} must be {key.expected}, got {str(raw)!r} (from {origin})"
                ) from None
        sources[name] = origin
    values["log_path"] = Path(values["log_path"])
    values["spool_dir"] = Path(values["spool_dir"])
    values["health_file"] = Path(values["health_file"]) if values["health_file"] else None
    return Settings(**values, sources=sources)


# --- YAML ---------------------------------------------------------------------------------------


def _as_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        items = [str(v).strip() for v in value]
    else:
        raise ConfigError(f"{where} must be a list or a comma-separated string")
    items = [item for item in items if item]
    if not items:
        raise ConfigError(f"{where} must not be empty")
    return tuple(items)


def parse_channels(text: str | tuple[str, ...], where: str = "--channels") -> tuple[Channel, ...]:
    """``trades,bbo`` → channels; unknown names are a clear error listing the valid ones."""
    names = _as_list(text if isinstance(text, str) else list(text), where)
    known = {c.value: c for c in Channel if c is not Channel.EVENTS and c not in SERIES_CHANNELS}
    channels: list[Channel] = []
    for name in names:
        channel = known.get(name.lower())
        if channel is None:
            raise ConfigError(
                f"{where}: unknown channel {name!r}; choose from {', '.join(sorted(known))}"
            )
        if channel not in channels:
            channels.append(channel)
    return tuple(channels)


def _feed(raw: Any, index: int) -> FeedConfig:
    where = f"feeds[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    allowed = {
        "exchange",
        "market",
        "symbols",
        "channels",
        "endpoint",
        "rest_endpoint",
        "stores",
        "options",
        "series",
    }
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")
    for required in ("exchange", "symbols", "channels"):
        if required not in raw:
            raise ConfigError(f"{where}.{required} is required")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where}.options must be a mapping")
    for name in ("exchange", "market", "endpoint", "rest_endpoint"):
        if name in raw and raw[name] is not None and not isinstance(raw[name], str):
            raise ConfigError(f"{where}.{name} must be a string")
    return FeedConfig(
        exchange=str(raw["exchange"]).strip().lower(),
        market=str(raw.get("market") or "spot").strip().lower(),
        symbols=tuple(s.upper() for s in _as_list(raw["symbols"], f"{where}.symbols")),
        channels=parse_channels(
            _as_list(raw["channels"], f"{where}.channels"), f"{where}.channels"
        ),
        endpoint=raw.get("endpoint"),
        rest_endpoint=raw.get("rest_endpoint"),
        stores=_as_list(raw["stores"], f"{where}.stores") if raw.get("stores") else (),
        options={str(k): str(v) for k, v in options.items()},
        series=_series(raw.get("series"), f"{where}.series"),
    )


def _series(value: Any, where: str) -> SeriesPlan | None:
    """A feed's ``series`` (``"bars:1s,book:10@1s"`` or a list of such items)."""
    if value is None:
        return None
    try:
        return parse_series(_as_list(value, where), where)
    except SeriesSpecError as exc:
        raise ConfigError(str(exc)) from None


def load_config_file(path: Path) -> ConfigFile:
    """Read a ``--config`` YAML: optional ``settings`` mapping and ``feeds`` list."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {str(path)!r}: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {str(path)!r} is not valid YAML: {exc}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"config {str(path)!r} must be a mapping with 'settings' and/or 'feeds'")
    unknown = sorted(set(document) - {"settings", "feeds"})
    if unknown:
        raise ConfigError(f"config {str(path)!r}: unknown top-level keys {unknown}")
    settings = document.get("settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"config {str(path)!r}: 'settings' must be a mapping")
    known = set(KEYS) | {k.env for k in KEYS.values()}
    bad = sorted(str(k) for k in settings if k not in known)
    if bad:
        raise ConfigError(f"config {str(path)!r}: unknown settings {bad}")
    feeds_raw = document.get("feeds")
    if feeds_raw is None:
        feeds_raw = []
    if not isinstance(feeds_raw, list):
        raise ConfigError(f"config {str(path)!r}: 'feeds' must be a list")
    feeds = [_feed(raw, i) for i, raw in enumerate(feeds_raw)]
    return ConfigFile(settings={str(k): str(v) for k, v in settings.items()}, feeds=feeds)


__all__ = [
    "ENV_FILE",
    "KEYS",
    "ConfigError",
    "ConfigFile",
    "FeedConfig",
    "Settings",
    "env_with_files",
    "load_config_file",
    "load_settings",
    "parse_channels",
    "positive_float",
    "positive_int",
    "read_env_file",
]
