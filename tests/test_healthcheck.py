"""``hundi health`` finds the health file where the running process writes it: the probe's
light path resolution agrees with :func:`hundi.config.load_settings` on every source."""

from __future__ import annotations

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
