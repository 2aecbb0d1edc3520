"""One collector per spool folder: two real ``hundi collect`` processes given the same spool
and store, on the real Cassandra (a network store: the only kind that spools).

The second one stops at once with one line and exit 2; after the first is killed with -9 the
kernel has dropped its lock, and a new collector starts on the same spool.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from test_end_to_end import collect_args
from test_production_stores import trades_stored, wait_for

from children import spawn
from hundi.simulator.process import SimulatorProcess

pytestmark = pytest.mark.slow


def test_a_second_collector_on_the_same_spool_exits_2_and_a_crash_leaves_no_lock(
    cassandra_keyspace: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    env = {**os.environ, "HUNDI_SPOOL_DIR": str(spool)}
    with SimulatorProcess(["--market", "spot", "--rate", "200", "--seed", "21"]) as sim:
        first_args = collect_args(sim, "spot", tmp_path / "a", "--store", cassandra_keyspace)
        first = spawn(first_args, cwd=tmp_path, env=env)
        try:
            # storing: its collector (and spool) opened before it collected anything
            wait_for(lambda: trades_stored(tmp_path / "a"), first, 120, "first trades stored")
            second_args = collect_args(sim, "spot", tmp_path / "b", "--store", cassandra_keyspace)
            second = subprocess.run(
                [*second_args, "--duration", "3"], capture_output=True, text=True, timeout=120,
                cwd=tmp_path, env=env,
            )  # fmt: skip
            lines = second.stderr.strip().splitlines()
            assert second.returncode == 2, second.stderr[-3000:]
            assert len(lines) == 1, second.stderr[-3000:]
            assert lines[0].startswith("Error: spool folder "), lines
            assert str(spool) in lines[0] and "in use by another collector" in lines[0], lines
            assert "its own spool" in lines[0], lines
            assert first.poll() is None, first.stderr_text()[-3000:]

            first.send_signal(signal.SIGKILL)  # a crash: nothing released by the process
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(timeout=30)
        third_args = collect_args(sim, "spot", tmp_path / "c", "--store", cassandra_keyspace)
        third = subprocess.run(
            [*third_args, "--duration", "3"], capture_output=True, text=True, timeout=180,
            cwd=tmp_path, env=env,
        )  # fmt: skip
    assert third.returncode == 0, third.stderr[-3000:]
    assert "in use by another collector" not in third.stderr
    assert "Traceback" not in third.stderr
    assert trades_stored(tmp_path / "c"), third.stderr[-3000:]
    assert list(spool.glob("*.lock")), "the lock file lives beside the spool folder"
