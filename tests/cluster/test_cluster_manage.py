"""``services/manage.py cluster``: what runs without a cluster (token layout, ring parsing, bad
input) and that the default run leaves the cluster tests out."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
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


def test_cluster_nodes_acknowledge_writes_only_after_their_commit_log_is_synced(
    tmp_path: Path,
) -> None:
    """A QUORUM write must survive two of three nodes being killed -9 together: with periodic
    commit-log sync a node replays only up to its last sync after a crash, so writes two nodes
    acknowledged and the third had not applied yet were lost (4 book rows, one run of four)."""
    import yaml

    manage = services()
    ports = manage.ClusterPorts(cql=9142, storage=7100, jmx_base=7300)
    for index in (1, 2, 3):
        home = tmp_path / f"node{index}"
        manage.render_cluster_node_conf(home, index, 3, ports)
        text = (home / "conf" / "cassandra.yaml").read_text()
        assert "@" not in text.replace(str(home), ""), "a placeholder was left unrendered"
        conf = yaml.safe_load(text)
        assert conf["commitlog_sync"] == "group", conf["commitlog_sync"]
        assert conf["commitlog_sync_group_window"] == "15ms"
        assert "commitlog_sync_period" not in conf
        assert conf["listen_address"] == manage.node_address(index)
        assert conf["initial_token"] == manage._node_token(index, 3)


def test_a_cassandra_difference_names_the_colliding_and_the_missing_rows() -> None:
    """The fault test's diagnosis: embedded rows that share a Cassandra key (Cassandra keeps
    one) and rows only one store holds are listed, so a failed run says which it was."""
    import pandas as pd
    from test_cluster_faults import differing_rows

    from hundi.records import Channel

    def book(rows: list[tuple[int, int, float, float]]) -> pd.DataFrame:
        frame = pd.DataFrame(
            [
                {"ts": ts, "exchange": "binance", "symbol": "BTC-USDT", "update_id": uid,
                 "side": 1, "price": price, "size": size, "snapshot": False}
                for ts, uid, price, size in rows
            ]
        )  # fmt: skip
        return frame.set_index("ts")

    embedded = book([(1, 10, 100.0, 1.0), (1, 10, 100.0, 2.0), (2, 11, 101.0, 1.0)])
    cassandra = book([(1, 10, 100.0, 2.0)])
    text = differing_rows(embedded, cassandra, Channel.BOOK)
    assert "3 embedded rows, 1 in Cassandra" in text
    assert "2 embedded rows share a Cassandra key" in text
    assert "1 rows on one side only" in text and "left_only" in text


def test_a_pid_file_naming_another_live_process_is_stale_and_never_signalled(
    tmp_path: Path,
) -> None:
    """After a reboot or crash a pid file may name a pid since reused by an unrelated process:
    it must not count as our node (``cluster up`` would skip starting it, ``cluster down``
    would SIGTERM that process's group)."""
    manage = services()
    manage.RUNTIME = tmp_path
    name = manage.node_name(2)
    (tmp_path / name).mkdir(parents=True)
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (tmp_path / name / "pid").write_text(f"{stranger.pid}\n")
        assert manage.running_pid(name) is None
        assert not (tmp_path / name / "pid").exists(), "the stale pid file is removed"
        (tmp_path / name / "pid").write_text(f"{stranger.pid}\n")
        manage.stop(name, timeout=1)
        assert stranger.poll() is None, "an unrelated process was signalled"
    finally:
        stranger.kill()
        stranger.wait()


def test_a_template_placeholder_without_a_value_fails_before_the_server_starts(
    tmp_path: Path,
) -> None:
    manage = services()
    template = tmp_path / "node.yaml"
    template.write_text("listen_address: @ADDRESS@\n@COMMITLOG_SYNC@\n")
    with pytest.raises(manage.ServiceError, match="no value for @COMMITLOG_SYNC@"):
        manage._render(template, tmp_path / "out.yaml", {"ADDRESS": "127.0.0.2"})
    assert not (tmp_path / "out.yaml").exists()


def test_a_failed_runs_evidence_is_kept_outside_pytests_rotating_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_cluster_faults import keep_evidence

    run = tmp_path / "run"
    (run / "data" / "binance").mkdir(parents=True)
    (run / "data" / "binance" / "part.parquet").write_bytes(b"rows")
    (run / "summary.json").write_text("{}")
    monkeypatch.setenv("HUNDI_CLUSTER_EVIDENCE", str(tmp_path / "kept"))
    kept = keep_evidence(run, "cassandra://127.0.0.1:9142/hundi_cabc", "book: 4 rows differ")
    assert kept == tmp_path / "kept" / "hundi_cabc"
    assert (kept / "data" / "binance" / "part.parquet").read_bytes() == b"rows"
    assert (kept / "summary.json").exists()
    assert (kept / "differences.txt").read_text() == "book: 4 rows differ"


def test_a_cluster_node_is_never_taken_for_the_single_node(tmp_path: Path) -> None:
    """A cluster node's command line names the single node's jars (``cassandra/lib``): a stale
    single-node pid file whose pid a cluster node now holds must not count as the single node
    (``down`` would SIGTERM that node's group)."""
    manage = services()
    manage.RUNTIME = tmp_path
    single = tmp_path / "cassandra"
    node = tmp_path / manage.node_name(1)
    for folder in (single / "lib", node):
        folder.mkdir(parents=True)
    sleep = "import time; time.sleep(60)"
    jars = f"{node / 'conf'}:{single / 'lib'}/*"  # as _cassandra_command builds the class path
    cluster_node = subprocess.Popen([sys.executable, "-c", sleep, jars], cwd=node)
    ours = subprocess.Popen([sys.executable, "-c", sleep, f"{single / 'conf'}:{jars}"], cwd=single)
    try:
        for child in (cluster_node, ours):  # /proc shows an empty command line during exec
            deadline = time.monotonic() + 30
            while not Path(f"/proc/{child.pid}/cmdline").read_bytes():
                assert time.monotonic() < deadline, "the child never showed its command line"
                time.sleep(0.01)
        (single / "pid").write_text(f"{cluster_node.pid}\n")
        assert manage.running_pid("cassandra") is None
        (single / "pid").write_text(f"{ours.pid}\n")
        assert manage.running_pid("cassandra") == ours.pid  # the real single node still counts
    finally:
        for child in (cluster_node, ours):
            child.kill()
            child.wait()
