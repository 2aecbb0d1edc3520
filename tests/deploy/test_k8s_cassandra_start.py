"""deploy/k8s/base/cassandra/start.sh, executed with bash: heap sizes from the memory limit
(downward API, cgroup v2, cgroup v1, none) and the password-auth rewrite of cassandra.yaml."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hundi.deploy.kube import DEPLOY

START = DEPLOY / "k8s" / "base" / "cassandra" / "start.sh"
GIB = 1024**3
MIB = 1024**2


def run(*args: str, cgroup: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("MAX_HEAP_SIZE", "HEAP_NEWSIZE")}
    return subprocess.run(
        ["bash", str(START), *args],
        env={**clean, "CGROUP_ROOT": str(cgroup), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def heap(cgroup: Path, **env: str) -> str:
    result = run("heap", cgroup=cgroup, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (2 * GIB, "MAX_HEAP_SIZE=1024M HEAP_NEWSIZE=256M"),
        (16 * GIB, "MAX_HEAP_SIZE=8192M HEAP_NEWSIZE=2048M"),
        (3 * GIB + 512 * MIB, "MAX_HEAP_SIZE=1792M HEAP_NEWSIZE=448M"),
        (64 * GIB, "MAX_HEAP_SIZE=16384M HEAP_NEWSIZE=4096M"),  # capped at 16G
    ],
)
def test_heap_is_half_the_downward_api_limit(tmp_path: Path, limit: int, expected: str) -> None:
    assert heap(tmp_path, MEMORY_LIMIT=str(limit)) == expected


def test_cgroup_v2_memory_max(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text(f"{4 * GIB}\n")
    assert heap(tmp_path) == "MAX_HEAP_SIZE=2048M HEAP_NEWSIZE=512M"


def test_cgroup_v1_limit_in_bytes(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text(f"{8 * GIB}\n")
    assert heap(tmp_path) == "MAX_HEAP_SIZE=4096M HEAP_NEWSIZE=1024M"


def test_downward_api_wins_over_cgroup(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text(f"{4 * GIB}\n")
    assert heap(tmp_path, MEMORY_LIMIT=str(2 * GIB)).startswith("MAX_HEAP_SIZE=1024M ")


def test_env_file_sizes_are_upper_bounds(tmp_path: Path) -> None:
    # .cassandra.env asks for less than the limit allows: its values win.
    assert (
        heap(tmp_path, MEMORY_LIMIT=str(16 * GIB), MAX_HEAP_SIZE="4G", HEAP_NEWSIZE="800M")
        == "MAX_HEAP_SIZE=4096M HEAP_NEWSIZE=800M"
    )
    # More than fits: lowered to the limit's size, and said so.
    result = run(
        "heap", cgroup=tmp_path, MEMORY_LIMIT=str(2 * GIB), MAX_HEAP_SIZE="4G", HEAP_NEWSIZE="800M"
    )
    assert result.stdout.strip() == "MAX_HEAP_SIZE=1024M HEAP_NEWSIZE=256M"
    assert "MAX_HEAP_SIZE=4G does not fit the 2048M limit" in result.stderr


def test_unlimited_falls_back_to_the_env_file(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text("max\n")
    assert (
        heap(tmp_path, MAX_HEAP_SIZE="4G", HEAP_NEWSIZE="800M")
        == "MAX_HEAP_SIZE=4G HEAP_NEWSIZE=800M"
    )
    (tmp_path / "memory.max").unlink()
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert heap(tmp_path, MAX_HEAP_SIZE="2G", HEAP_NEWSIZE="400M") == (
        "MAX_HEAP_SIZE=2G HEAP_NEWSIZE=400M"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MEMORY_LIMIT": str(512 * MIB)}, "memory limit 512M is too small for Cassandra"),
        ({"MEMORY_LIMIT": "2Gi"}, "MEMORY_LIMIT=2Gi is not a byte count"),
        (
            {"MEMORY_LIMIT": str(4 * GIB), "MAX_HEAP_SIZE": "lots"},
            "MAX_HEAP_SIZE=lots is not a size like 4G or 800M",
        ),
        ({}, "no memory limit (MEMORY_LIMIT, cgroup memory.max) and no MAX_HEAP_SIZE"),
    ],
)
def test_bad_sizes_fail_with_one_message(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = run("heap", cgroup=tmp_path, **env)
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""


CASSANDRA_5_YAML = """cluster_name: 'Test Cluster'
authenticator:
  class_name : org.apache.cassandra.auth.AllowAllAuthenticator
# MutualTlsAuthenticator can be configured using the following configuration.
#authenticator:
#  class_name : org.apache.cassandra.auth.MutualTlsAuthenticator
authorizer: AllowAllAuthorizer
role_manager: CassandraRoleManager
network_authorizer: AllowAllNetworkAuthorizer
"""


def test_configure_switches_cassandra_yaml_to_password_auth(tmp_path: Path) -> None:
    conf = tmp_path / "cassandra.yaml"
    conf.write_text(CASSANDRA_5_YAML)
    result = run("configure", cgroup=tmp_path, CASSANDRA_CONF=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert conf.read_text() == (
        "cluster_name: 'Test Cluster'\n"
        "authenticator: PasswordAuthenticator\n"
        "# MutualTlsAuthenticator can be configured using the following configuration.\n"
        "#authenticator:\n"
        "#  class_name : org.apache.cassandra.auth.MutualTlsAuthenticator\n"
        "authorizer: CassandraAuthorizer\n"
        "role_manager: CassandraRoleManager\n"
        "network_authorizer: AllowAllNetworkAuthorizer\n"
    )
    # Idempotent: a restarted container rewrites the same file to the same text.
    before = conf.read_text()
    assert run("configure", cgroup=tmp_path, CASSANDRA_CONF=str(tmp_path)).returncode == 0
    assert conf.read_text() == before


def test_configure_needs_a_writable_config(tmp_path: Path) -> None:
    result = run("configure", cgroup=tmp_path, CASSANDRA_CONF=str(tmp_path / "missing"))
    assert result.returncode == 1
    assert "cassandra.yaml is not writable" in result.stderr


SEEDS = ",".join(f"cassandra-{n}.cassandra.backend.svc.cluster.local" for n in (0, 1))


def topology(tmp_path: Path, **env: str) -> dict[str, str]:
    result = run("topology", cgroup=tmp_path, REPLACE_DIR=str(tmp_path / "replace"), **env)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    keys = ("CASSANDRA_RACK=", " CASSANDRA_SEEDS=", " JVM_EXTRA_OPTS=")
    values: dict[str, str] = {}
    for key, following in zip(keys, (*keys[1:], None), strict=True):
        start = line.index(key) + len(key)
        end = line.index(following) if following else len(line)
        values[key.strip(" =")] = line[start:end].strip()
    return values


def test_the_rack_is_the_nodes_zone_else_the_env_file(tmp_path: Path) -> None:
    common = {"HOSTNAME": "cassandra-2", "CASSANDRA_SEEDS": SEEDS, "CASSANDRA_RACK": "rack1"}
    for volume in ("a", "b"):
        (tmp_path / volume).mkdir()
    assert topology(
        tmp_path, NODE_ZONE="eu-west-1b", RACK_FILE=str(tmp_path / "a" / "rack"), **common
    ) == {
        "CASSANDRA_RACK": "eu-west-1b",
        "CASSANDRA_SEEDS": SEEDS,
        "JVM_EXTRA_OPTS": "",
    }
    first = topology(tmp_path, NODE_ZONE="", RACK_FILE=str(tmp_path / "b" / "rack"), **common)
    assert first["CASSANDRA_RACK"] == "rack1"


def test_a_node_keeps_the_rack_of_its_first_boot(tmp_path: Path) -> None:
    """Found by review: a node that first started without NODE_ZONE (the pod label appears
    once the cluster enables PodTopologyLabels) would restart in its zone's rack, and
    Cassandra refuses to start in another rack than the one it stored."""
    common = {"HOSTNAME": "cassandra-2", "CASSANDRA_SEEDS": SEEDS, "CASSANDRA_RACK": "rack1"}
    rack_file = tmp_path / "data" / "hundi-rack"
    rack_file.parent.mkdir()
    env = {**common, "RACK_FILE": str(rack_file)}
    assert topology(tmp_path, NODE_ZONE="", **env)["CASSANDRA_RACK"] == "rack1"
    assert rack_file.read_text().strip() == "rack1"
    later = run("topology", cgroup=tmp_path, REPLACE_DIR=str(tmp_path / "r"),
                NODE_ZONE="eu-west-1b", **env)  # fmt: skip
    assert later.returncode == 0, later.stderr
    assert "CASSANDRA_RACK=rack1 " in later.stdout
    assert later.stderr.count("keeping it, not eu-west-1b") == 1
    rack_file.unlink()  # a new volume (a replaced node) takes the zone
    assert topology(tmp_path, NODE_ZONE="eu-west-1b", **env)["CASSANDRA_RACK"] == "eu-west-1b"


def test_a_replacing_seed_drops_itself_from_the_seeds_and_replaces_the_dead_address(
    tmp_path: Path,
) -> None:
    (tmp_path / "replace").mkdir()
    (tmp_path / "replace" / "cassandra-0").write_text("10.244.1.9\n")
    got = topology(tmp_path, HOSTNAME="cassandra-0", CASSANDRA_SEEDS=SEEDS)
    assert got["CASSANDRA_SEEDS"] == "cassandra-1.cassandra.backend.svc.cluster.local"
    assert got["JVM_EXTRA_OPTS"] == "-Dcassandra.replace_address_first_boot=10.244.1.9"
    # another pod is not affected by cassandra-0's entry
    other = topology(tmp_path, HOSTNAME="cassandra-2", CASSANDRA_SEEDS=SEEDS)
    assert other["CASSANDRA_SEEDS"] == SEEDS and other["JVM_EXTRA_OPTS"] == ""


def test_a_bad_replace_address_or_no_other_seed_stops_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "replace").mkdir()
    (tmp_path / "replace" / "cassandra-0").write_text("not-an-ip\n")
    result = run(
        "topology", cgroup=tmp_path, REPLACE_DIR=str(tmp_path / "replace"),
        HOSTNAME="cassandra-0", CASSANDRA_SEEDS=SEEDS,
    )  # fmt: skip
    assert result.returncode != 0
    assert "not-an-ip is not an IP address" in result.stderr and result.stdout == ""
    (tmp_path / "replace" / "cassandra-0").write_text("10.0.0.1\n")
    alone = run(
        "topology", cgroup=tmp_path, REPLACE_DIR=str(tmp_path / "replace"),
        HOSTNAME="cassandra-0", CASSANDRA_SEEDS="cassandra-0.cassandra.backend.svc.cluster.local",
    )  # fmt: skip
    assert alone.returncode != 0
    assert "needs another seed" in alone.stderr and alone.stdout == ""
