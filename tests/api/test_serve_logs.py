"""``hundi serve`` logs for a cluster's log pipeline: HUNDI_LOG_STREAM=stdout sends INFO lines
to stdout (as ``hundi collect`` does); by default stdout stays empty."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from apiserver import HUNDI, serve

pytestmark = pytest.mark.slow


def text_when(read: Callable[[], str], ready: str) -> str:
    """``read()`` once it holds ``ready``, or as it is after a generous deadline."""
    deadline = time.monotonic() + 60
    while True:
        text = read()
        if ready in text or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def test_info_lines_go_to_stdout_with_the_stdout_stream(tmp_path: Path) -> None:
    with serve(str(tmp_path), tmp_path, env={"HUNDI_LOG_STREAM": "stdout"}) as api:
        out = text_when(api.process.stdout_text, "hundi serve:")
        assert api.get("/api/v1/health").status == 200
    line = next(line for line in out.splitlines() if "hundi serve:" in line)
    port = api.base.rsplit(":", 1)[1]
    assert " INFO " in line and f"on http://127.0.0.1:{port}/api/v1/" in line


def test_json_lines_on_stdout(tmp_path: Path) -> None:
    env = {"HUNDI_LOG_STREAM": "stdout", "HUNDI_LOG_FORMAT": "json"}
    with serve(str(tmp_path), tmp_path, env=env) as api:
        out = text_when(api.process.stdout_text, "hundi serve:")
    first = json.loads(out.splitlines()[0])
    assert first["level"] == "INFO" and first["logger"] == "hundi.api"
    assert first["message"].startswith("hundi serve:")


def test_stdout_stays_empty_with_the_stderr_stream_the_default(tmp_path: Path) -> None:
    with serve(str(tmp_path), tmp_path, env={"HUNDI_LOG_STREAM": "stderr"}) as api:
        assert "hundi serve:" in text_when(api.process.stderr_text, "hundi serve:")
        assert api.process.stdout_text() == ""


def test_a_wrong_stream_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "HUNDI_LOG_STREAM": "syslog"}
    done = subprocess.run(
        [str(HUNDI), "serve", "--store", str(tmp_path), "--port", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "HUNDI_LOG_STREAM" in done.stderr, done.stderr
