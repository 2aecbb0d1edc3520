"""``HUNDI_LOG_FORMAT=json``: every log line one JSON object, for log collectors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from children import spawn
from hundi.config import ConfigError
from hundi.logs import JsonFormatter, SafeFileHandler, setup_logging
from hundi.simulator.process import SimulatorProcess

HUNDI = str(Path(sys.executable).parent / "hundi")
KEYS = {"time", "level", "logger", "message"}


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line of ``text`` as a JSON object (fails on any line that is not)."""
    objects = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(o, dict) for o in objects)
    return objects


def test_json_lines_carry_time_level_logger_message_and_exception(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hundi.log"
    runtime = setup_logging(path, queue_max_size=100, max_lines=5, console=True, log_format="json")
    log = logging.getLogger("hundi.test.json")
    try:
        log.info("plain %s", "info")
        try:
            raise ValueError("kaput")
        except ValueError:
            log.exception("it failed\non two lines")
    finally:
        runtime.close()
    info, error = json_lines(path.read_text())
    assert set(info) == KEYS
    assert (info["level"], info["logger"], info["message"]) == (
        "INFO",
        "hundi.test.json",
        "plain info",
    )
    stamp = datetime.fromisoformat(info["time"])
    assert stamp.utcoffset() is not None and stamp.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    assert error["message"] == "it failed\non two lines"
    assert "Traceback" in error["exception"] and "ValueError: kaput" in error["exception"]
    # stderr (warnings and errors only) in the same format, the traceback included
    (console,) = json_lines(capsys.readouterr().err)
    assert console["level"] == "ERROR" and "ValueError: kaput" in console["exception"]
    # the live screen's log pane stays human text
    assert runtime.recent.lines[-1].endswith("ERROR it failed")


def test_text_stays_the_default(tmp_path: Path) -> None:
    path = tmp_path / "hundi.log"
    runtime = setup_logging(path, queue_max_size=100, max_lines=5)
    try:
        logging.getLogger("hundi.test.text").info("human")
    finally:
        runtime.close()
    assert path.read_text().rstrip().endswith("INFO    hundi.test.text: human")


def test_setup_refuses_an_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HUNDI_LOG_FORMAT must be 'text' or 'json'"):
        setup_logging(tmp_path / "h.log", queue_max_size=10, max_lines=1, log_format="xml")


@pytest.mark.slow
def test_unknown_log_format_is_one_error_line_at_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [HUNDI, "collect", "binance", "--symbols", "BTCUSDT", "--duration", "1"],
        env={**os.environ, "HUNDI_LOG_FORMAT": "yaml", "HUNDI_LOG_PATH": str(tmp_path / "h.log")},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "Error: HUNDI_LOG_FORMAT must be 'text' or 'json', got 'yaml' (from environment)"
    ]
    assert not (tmp_path / "h.log").exists()  # refused before anything started


@pytest.mark.slow
def test_collect_writes_only_json_lines_and_keeps_secrets_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real run with an authenticated stream the simulator keeps dropping logs warnings:
    every stderr and log-file line is a JSON object, and the API key and secret appear nowhere
    (the same messages as in text mode, so the same masking)."""
    key, secret = "jsonKEY-51c0e9d2", "jsonSECRET-a7b3f0e441"
    monkeypatch.setenv("BINANCE_API_KEY", key)  # the simulator's account and the collector's
    monkeypatch.setenv("BINANCE_API_SECRET", secret)
    log_path = tmp_path / "logs" / "hundi.log"
    sim_args = ["--rate", "200", "--symbols", "BTCUSDT", "--private", "--private-fault", "drop:1"]
    with SimulatorProcess(sim_args) as sim:
        run = ["collect", "binance", "--symbols", "BTCUSDT", "--duration", "4"]
        sources = ["--endpoint", sim.ws_url, "--rest-endpoint", sim.rest_url]
        proc = spawn(
            [HUNDI, *run, *sources, "--channels", "trades,orders,fills", "--store", tmp_path / "d"],
            env={**os.environ, "HUNDI_LOG_FORMAT": "json", "HUNDI_LOG_PATH": str(log_path)},
            cwd=tmp_path,
        )
        proc.wait(timeout=120)
    err, out, logged = proc.stderr_text(), proc.stdout_text(), log_path.read_text()
    assert proc.returncode == 0, err
    lines = json_lines(err)
    assert any("connection closed" in line["message"] for line in lines), err
    assert all(set(line) >= KEYS and line["level"] in ("WARNING", "ERROR") for line in lines)
    file_lines = json_lines(logged)
    assert any("connected to" in line["message"] for line in file_lines)  # INFO: file only
    assert "records stored" in out  # the summary stays text on stdout
    for text in (err, out, logged):
        assert key not in text and secret not in text


def test_a_log_file_failure_is_reported_as_a_json_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The one stderr line saying the log file cannot be written is JSON too."""
    handler = SafeFileHandler(tmp_path / "h.log", max_bytes=1 << 20, backups=1, json_lines=True)
    handler.setFormatter(JsonFormatter())
    handler.stream.close()
    handler.stream = (tmp_path / "h.log").open("r", encoding="utf-8")  # every write fails
    try:
        record = logging.LogRecord("hundi.test", logging.INFO, "", 0, "lost", None, None)
        handler.emit(record)
        handler.emit(record)
    finally:
        handler.stream.close()
    (line,) = json_lines(capsys.readouterr().err)  # reported once, not per line
    assert line["level"] == "ERROR" and "cannot write the log file" in line["message"]
    assert handler.failed == 2
