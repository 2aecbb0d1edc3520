"""``hundi health``: what the Docker HEALTHCHECK and the Kubernetes probes run.

A real ``hundi collect`` against the Binance simulator writes the health file; ``hundi health``
runs as a separate process, as a probe does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from children import spawn
from hundi.healthcheck import check_health
from hundi.pipeline.health import Health, write_health
from hundi.simulator.process import SimulatorProcess

HUNDI = str(Path(sys.executable).parent / "hundi")


def probe(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HUNDI, "health", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or dict(os.environ),
        cwd=cwd,
    )


@pytest.mark.slow
def test_fresh_ok_file_is_healthy(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    write_health(path, Health("collector", True))
    result = probe("--file", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.slow
def test_stale_file_is_unhealthy_and_says_how_old(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    write_health(path, Health("collector", True))
    record = json.loads(path.read_text())
    record["written_at"] -= 120
    path.write_text(json.dumps(record))
    result = probe("--file", str(path), "--max-age", "30")
    assert result.returncode == 1
    assert "is stale: " in result.stderr and "s old (max 30s)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_missing_and_garbled_files_are_unhealthy(tmp_path: Path) -> None:
    missing = probe("--file", str(tmp_path / "nope.json"))
    assert missing.returncode == 1
    assert f"no health file at {tmp_path / 'nope.json'}" in missing.stderr
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{half")
    result = probe("--file", str(garbled))
    assert result.returncode == 1 and "unreadable health file" in result.stderr


def test_failing_collector_reports_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    write_health(path, Health("collector", False, "store x lost 3 records (OSError: disk)"))
    assert check_health(path, 30) == "collector unhealthy: store x lost 3 records (OSError: disk)"


@pytest.mark.slow
def test_running_collector_is_healthy_and_stopped_one_is_not(tmp_path: Path) -> None:
    """The default path (beside HUNDI_LOG_PATH) is shared by collector and probe via settings."""
    env = {
        **os.environ,
        "HUNDI_LOG_PATH": str(tmp_path / "logs" / "hundi.log"),
        "HUNDI_LOG_UPDATE_INTERVAL": "0.2",
    }
    env.pop("HUNDI_HEALTH_FILE", None)
    health_file = tmp_path / "logs" / "health.json"
    with SimulatorProcess(["--rate", "200", "--symbols", "BTCUSDT"]) as sim:
        proc = spawn(
            [
                HUNDI,
                "collect",
                "binance",
                "--symbols",
                "BTCUSDT",
                "--channels",
                "trades",
                "--endpoint",
                sim.ws_url,
                "--rest-endpoint",
                sim.rest_url,
                "--store",
                str(tmp_path / "data"),
            ],
            env=env,
            cwd=tmp_path,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not health_file.exists():
                time.sleep(0.1)
            running = probe(env=env, cwd=tmp_path)
            assert running.returncode == 0, running.stderr
            assert running.stdout.strip() == "ok"
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr_text()
    stopped = probe(env=env, cwd=tmp_path)
    assert stopped.returncode == 1
    assert stopped.stderr.strip() == "unhealthy: collector unhealthy: stopped"


async def test_server_writes_health_while_running_and_stopped_after(tmp_path: Path) -> None:
    """``serve_health`` is the hook of ``hundi serve``: a real aiohttp server runs it."""
    from aiohttp import web

    from hundi.config import load_settings
    from hundi.pipeline.health import serve_health

    path = tmp_path / "api-health.json"
    settings = load_settings(
        environ={"HUNDI_HEALTH_FILE": str(path), "HUNDI_LOG_UPDATE_INTERVAL": "0.1"},
        cwd=tmp_path,
    )
    app = web.Application()
    app.cleanup_ctx.append(serve_health(settings))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        assert check_health(path, 30) is None
        assert json.loads(path.read_text())["component"] == "api"
    finally:
        await runner.cleanup()
    assert check_health(path, 30) == "api unhealthy: stopped"


async def test_unwritable_health_file_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    from hundi.pipeline.health import run_health_loop

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    probes = 0

    def probe() -> Health:
        nonlocal probes
        probes += 1
        return Health("collector", True)

    task = asyncio.create_task(run_health_loop(blocker / "health.json", 0.01, probe))
    deadline = time.monotonic() + 30
    while probes < 10:  # ten intervals, ten failed writes
        assert not task.done(), task
        assert time.monotonic() < deadline, f"the health loop probed {probes} times in 30 s"
        await asyncio.sleep(0.01)
    assert not task.done()  # still running: the process goes on
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    warnings = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(warnings) == 1  # once per distinct error, not every interval
