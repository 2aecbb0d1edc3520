"""``services/manage.py cluster``: what runs without a cluster (token layout, ring parsing, bad
input) and that the default run leaves the cluster tests out."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_production_stores import services

REPO = Path(__file__).resolve().parents[2]

STATUS = """Datacenter: datacenter1
=======================
Status=Up/Down
|/ State=Normal/Leaving/Joining/Moving
--  Address    Load        Tokens  Owns (effective)  Host ID                               Rack
UN  127.0.0.3  106.07 KiB  1       100.0%            ca0501dd-d7c7-41b5-a381-12ca4c0bdab1  rack1
DN  127.0.0.2  178.99 KiB  1       100.0%            860007c9-e827-4894-aedf-0d8c41268b9b  rack1
UJ  127.0.0.1  203.69 KiB  1       100.0%            45e511ab-1946-42e2-9665-5fd6752f0561  rack1
"""


def test_ring_states_come_from_every_node_row_of_nodetool_status() -> None:
    states = services().parse_ring_states(STATUS)
    assert states == {"127.0.0.3": "UN", "127.0.0.2": "DN", "127.0.0.1": "UJ"}


def test_node_tokens_split_the_murmur3_ring_evenly() -> None:
    manage = services()
    tokens = [manage._node_token(i, 3) for i in (1, 2, 3)]
    assert tokens[0] == -(2**63)
    steps = {b - a for a, b in itertools.pairwise(tokens)}
    assert steps == {2**64 // 3}
    assert all(-(2**63) <= token < 2**63 for token in tokens)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["up", "--nodes", "0"], "a local cluster has 1 to 9 nodes"),
        (["up", "--nodes", "3"], "was created with 5 nodes, not 3"),
        (["kill"], "kill: give a node number 1..5"),
        (["start", "6"], "start: give a node number 1..5"),
    ],
)
def test_bad_cluster_commands_fail_with_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manage = services()
    manage.CLUSTER = tmp_path  # a cluster "created" with 5 nodes, none running
    (tmp_path / "size").write_text("5\n")
    assert manage.main(["cluster", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_the_default_run_deselects_the_cluster_tests_and_minus_m_cluster_selects_them() -> None:
    def collected(*options: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
             *options, "tests/cluster/test_cluster_faults.py"],
            capture_output=True, text=True, cwd=REPO, timeout=120,
        )  # fmt: skip
        assert done.returncode in (0, 5), done.stdout + done.stderr  # 5: nothing collected
        return done.stdout

    assert "2 deselected" in collected()
    assert "2 deselected" in collected("-m", "not slow")
    selected = collected("-m", "cluster")
    assert "test_kill_9_one_node" in selected and "test_two_nodes_down" in selected
    assert "deselected" not in selected


@pytest.mark.slow
def test_under_minus_m_cluster_a_missing_cluster_fails_and_never_skips(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cluster",
         "-k", "kill_9", "tests/cluster/test_cluster_faults.py"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, "HUNDI_SERVICES_DIR": str(tmp_path)},  # no cluster was created here
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 error" in done.stdout and "skipped" not in done.stdout, done.stdout[-3000:]
    assert "the local cluster has no nodes" in done.stdout and "make cluster-up N=3" in done.stdout
