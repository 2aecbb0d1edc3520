"""``HUNDI_LOG_STREAM=stdout``: every log line from INFO up on stdout, for a container's log
pipeline (the collectors' StatefulSet sets it), checked on a real ``hundi collect``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from children import spawn
from hundi.config import ConfigError
from hundi.logs import setup_logging
from hundi.simulator.process import SimulatorProcess

HUNDI = str(Path(sys.executable).parent / "hundi")


def log_objects(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of ``text`` (stdout also holds the text status line and summary)."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            obj = json.loads(line)
            assert isinstance(obj, dict)
            found.append(obj)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_collect_sends_its_info_lines_to_stdout(tmp_path: Path, log_format: str) -> None:
    log_path = tmp_path / "logs" / "hundi.log"
    with SimulatorProcess(["--rate", "200", "--symbols", "BTCUSDT"]) as sim:
        proc = spawn(
            [
                HUNDI,
                "collect",
                "binance",
                "--symbols",
                "BTCUSDT",
                "--duration",
                "3",
                "--endpoint",
                sim.ws_url,
                "--rest-endpoint",
                sim.rest_url,
                "--channels",
                "trades,book",
                "--store",
                tmp_path / "data",
            ],
            env={
                **os.environ,
                "HUNDI_LOG_STREAM": "stdout",
                "HUNDI_LOG_FORMAT": log_format,
                "HUNDI_LOG_PATH": str(log_path),
            },
            cwd=tmp_path,
        )
        proc.wait(timeout=120)
    out, err = proc.stdout_text(), proc.stderr_text()
    assert proc.returncode == 0, err
    if log_format == "json":
        lines = log_objects(out)
        infos = [line for line in lines if line["level"] == "INFO"]
        assert any("connected to" in line["message"] for line in infos), out
        assert {line["logger"].split(".")[0] for line in infos} == {"hundi"}
    else:
        infos = [line for line in out.splitlines() if " INFO " in line]
        assert any("connected to" in line for line in infos), out
    assert "records stored" in out  # the summary still ends stdout
    assert err == ""  # one stream: nothing duplicated on stderr
    # the file keeps every line as before
    assert "connected to" in log_path.read_text()


def test_an_unknown_stream_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HUNDI_LOG_STREAM must be 'stderr' or 'stdout'"):
        setup_logging(tmp_path / "h.log", queue_max_size=10, max_lines=1, stream="syslog")


@pytest.mark.slow
def test_an_unknown_stream_is_one_error_line_at_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [HUNDI, "collect", "binance", "--symbols", "BTCUSDT", "--duration", "1"],
        env={**os.environ, "HUNDI_LOG_STREAM": "syslog", "HUNDI_LOG_PATH": str(tmp_path / "h.log")},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "Error: HUNDI_LOG_STREAM must be 'stderr' or 'stdout', got 'syslog' (from environment)"
    ]
    assert not (tmp_path / "h.log").exists()
