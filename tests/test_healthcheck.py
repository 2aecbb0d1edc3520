"""``hundi health`` finds the health file where the running process writes it: the probe's
light path resolution agrees with :func:`hundi.config.load_settings` on every source."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hundi.config import ConfigError, load_settings
from hundi.healthcheck import health_file_path
from hundi.pipeline.health import health_path


@pytest.mark.parametrize(
    ("environ", "dotenv"),
    [
        ({}, ""),
        ({"HUNDI_LOG_PATH": "/var/log/hundi/c.log"}, ""),
        ({}, "HUNDI_LOG_PATH=/data/logs/x.log\n"),
        ({"HUNDI_LOG_PATH": "/env/a.log"}, "HUNDI_LOG_PATH=/file/b.log\n"),
        ({"HUNDI_HEALTH_FILE": "/run/h.json", "HUNDI_LOG_PATH": "/env/a.log"}, ""),
        ({}, "HUNDI_HEALTH_FILE=/file/h.json\n"),
        ({"HUNDI_HEALTH_FILE": " /run/h.json "}, "HUNDI_HEALTH_FILE=/file/h.json\n"),
        ({"HUNDI_HEALTH_FILE": ""}, "HUNDI_LOG_PATH=/file/b.log\n"),
    ],
)
def test_the_probe_finds_the_file_the_settings_name(
    tmp_path: Path, environ: dict[str, str], dotenv: str
) -> None:
    if dotenv:
        (tmp_path / ".hundi.env").write_text(dotenv)
    expected = health_path(load_settings(environ=environ, cwd=tmp_path))
    assert health_file_path(environ=environ, cwd=tmp_path) == expected


def test_an_empty_log_path_is_a_config_error_in_both(tmp_path: Path) -> None:
    environ = {"HUNDI_LOG_PATH": "  "}
    with pytest.raises(ConfigError, match="HUNDI_LOG_PATH"):
        load_settings(environ=environ, cwd=tmp_path)
    with pytest.raises(ConfigError, match="HUNDI_LOG_PATH"):
        health_file_path(environ=environ, cwd=tmp_path)


@pytest.mark.parametrize(
    ("written_at", "args", "says"),
    [
        ("NaN", [], "no written_at"),
        ("Infinity", [], "no written_at"),
        ("true", [], "no written_at"),
        (365 * 86_400, [], "in the future"),
        (-3_600, ["--max-age", "nan"], "is not a finite number"),
        (-3_600, ["--max-age", "inf"], "is not a finite number"),
    ],
)
def test_health_is_not_ok_for_a_time_that_says_nothing(
    tmp_path: Path, written_at: str | int, args: list[str], says: str
) -> None:
    """A NaN, infinite or far-future time, or ``--max-age nan``, once read as fresh: ok."""
    from click.testing import CliRunner

    from hundi.healthcheck import health

    when = written_at if isinstance(written_at, str) else int(time.time()) + written_at
    path = tmp_path / "health.json"
    path.write_text(f'{{"written_at": {when}, "ok": true, "component": "collector"}}')
    result = CliRunner().invoke(health, ["--file", str(path), *args])
    assert result.exit_code in (1, 2) and says in result.output, result.output
