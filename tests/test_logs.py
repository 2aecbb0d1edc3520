"""Logging through a bounded, dropping queue into the log file and the recent-lines tail."""

from __future__ import annotations

import logging
import queue
import time
from pathlib import Path

import pytest

from hundi.config import ConfigError
from hundi.logs import DroppingQueueHandler, setup_logging


def test_full_queue_drops_and_counts_instead_of_blocking() -> None:
    bounded: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=5)
    handler = DroppingQueueHandler(bounded)
    logger = logging.getLogger("hundi.test.bound")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        started = time.monotonic()
        for i in range(20):
            logger.warning("message %d", i)
        assert time.monotonic() - started < 1.0
    finally:
        logger.removeHandler(handler)
    assert bounded.qsize() == 5
    assert handler.dropped == 15
    assert bounded.get_nowait().getMessage() == "message 0"


def test_records_reach_the_file_and_the_tail(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "hundi.log"
    runtime = setup_logging(path, queue_max_size=100, max_lines=2)
    log = logging.getLogger("hundi.test.file")
    try:
        log.info("first")
        log.info("second")
        try:
            raise ValueError("kaput")
        except ValueError:
            log.exception("third")
    finally:
        runtime.close()
    text = path.read_text()
    assert "first" in text and "second" in text
    assert "Traceback" in text and "ValueError: kaput" in text
    second, third = runtime.recent.lines  # only the last two lines are kept
    assert second.endswith("INFO second")
    assert third.endswith("ERROR third")  # one line: the traceback stays in the file
    assert runtime.dropped == 0


def test_console_lines_have_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = setup_logging(tmp_path / "h.log", queue_max_size=100, max_lines=5, console=True)
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("hundi.test.console").exception("connect failed")
        logging.getLogger("hundi.test.console").info("not on the console")
    finally:
        runtime.close()
    err = capsys.readouterr().err
    assert "connect failed" in err
    assert "Traceback" not in err and "not on the console" not in err


def test_unwritable_log_path_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"HUNDI_LOG_PATH .* is not writable"):
        setup_logging(blocker / "hundi.log", queue_max_size=10, max_lines=1)
