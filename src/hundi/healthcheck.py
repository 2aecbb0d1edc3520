"""``hundi health``: the probe that Docker HEALTHCHECK and Kubernetes run several times a
minute, so it imports the standard library, click and python-dotenv only.

It reads the status file a running ``hundi collect`` / ``hundi serve`` rewrites every status
interval (:mod:`hundi.pipeline.health` writes it) and exits 0 when it is fresh and ok. Going
through :mod:`hundi.config` would import the record model and pandas: ~1.4 s and ~100 MB per
probe. The file's location follows the same precedence as the settings (flag > environment >
``.hundi.env`` > default; ``hundi health`` takes no ``--config``), which a test checks against
:func:`hundi.config.load_settings`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import click

from hundi.options import FiniteFloat
from hundi.settings import ConfigError, env_with_files

DEFAULT_MAX_AGE_S = 30.0
EXIT_UNHEALTHY = 1
ENV_FILE = ".hundi.env"  # as hundi.config
DEFAULT_LOG_PATH = "./logs/hundi.log"  # as hundi.config's HUNDI_LOG_PATH default


def health_file_path(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """HUNDI_HEALTH_FILE, else ``health.json`` beside HUNDI_LOG_PATH (environment over
    ``.hundi.env`` over the default); ConfigError for an empty log path."""
    values = env_with_files(ENV_FILE, environ=environ, cwd=cwd)
    health_file = values.get("HUNDI_HEALTH_FILE", "").strip()
    if health_file:
        return Path(health_file)
    log_path = values.get("HUNDI_LOG_PATH", DEFAULT_LOG_PATH).strip()
    if not log_path:
        raise ConfigError(f"HUNDI_LOG_PATH must be a file path, got {log_path!r}")
    return Path(log_path).parent / "health.json"


def check_health(path: Path, max_age_s: float, now: float | None = None) -> str | None:
    """``None`` when ``path`` is fresh and ok, else one line saying why not."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return f"no health file at {path} (is hundi collect/serve running with it?)"
    except (OSError, ValueError) as exc:
        return f"unreadable health file {path}: {type(exc).__name__}"
    if not isinstance(record, dict):
        return f"unreadable health file {path}: not a JSON object"
    written_at = record.get("written_at")
    if (
        not isinstance(written_at, int | float)
        or isinstance(written_at, bool)
        or not math.isfinite(written_at)
    ):
        return f"unreadable health file {path}: no written_at"
    age = (time.time() if now is None else now) - written_at
    component = record.get("component", "process")
    if age < -max_age_s:  # a time this far ahead says nothing about now
        return (
            f"{component} health file {path} is dated {-age:.0f}s in the future "
            f"(max {max_age_s:g}s): a clock jumped, or it was not written by hundi"
        )
    if age > max_age_s:
        return f"{component} health file {path} is stale: {age:.0f}s old (max {max_age_s:g}s)"
    if record.get("ok") is not True:
        return f"{component} unhealthy: {record.get('reason') or 'no reason given'}"
    return None


@click.command()
@click.option(
    "--max-age",
    type=FiniteFloat(min=0, min_open=True),
    default=DEFAULT_MAX_AGE_S,
    show_default=True,
    help="Seconds after which the health file counts as stale.",
)
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Health file. [default: HUNDI_HEALTH_FILE, else health.json beside HUNDI_LOG_PATH]",
)
def health(max_age: float, path: Path | None) -> None:
    """Exit 0 when the running collector (or API) is healthy, else 1 with one line saying why.

    For Docker HEALTHCHECK and Kubernetes probes: reads the status file the process rewrites
    every HUNDI_LOG_UPDATE_INTERVAL seconds.
    """
    if path is None:
        try:
            path = health_file_path()
        except ConfigError as exc:
            click.echo(f"unhealthy: {exc}", err=True)
            sys.exit(EXIT_UNHEALTHY)
    problem = check_health(path, max_age)
    if problem is not None:
        click.echo(f"unhealthy: {problem}", err=True)
        sys.exit(EXIT_UNHEALTHY)
    click.echo("ok")
