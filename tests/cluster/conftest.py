"""The local multi-node cluster of ``make cluster-up``: only under ``-m cluster``, never skipped.

The default run (``make test``, ``make test-fast``, CI) deselects these tests: three nodes do not
fit CI's time on 2 cores. ``make test-cluster`` selects them with ``-m cluster``, and there a
cluster that is not up is a failure, not a skip.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from types import ModuleType

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "pipeline"))  # the simulator → collector helpers live there

from test_production_stores import services  # noqa: E402

CLUSTER_NODES = 3


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect ``cluster`` tests unless the ``-m`` expression names the marker."""
    if "cluster" in (config.option.markexpr or ""):
        return
    deselected = [item for item in items if item.get_closest_marker("cluster")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("cluster")]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Each phase's report on the item, so a fixture's teardown knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def failed_in_call(node: pytest.Item) -> bool:
    report = getattr(node, "report_call", None)
    return report is None or report.failed


@pytest.fixture(scope="session")
def manage() -> ModuleType:
    """``services/manage.py``, checked to have every node of the cluster up (UN)."""
    module = services()
    size = module.cluster_size()
    if size != CLUSTER_NODES:
        pytest.fail(
            f"the local cluster has {size or 'no'} nodes, these tests need {CLUSTER_NODES}: "
            f"`make cluster-up N={CLUSTER_NODES}`"
        )
    try:
        module.wait_cluster_up(size, via=1, timeout=60)
    except module.ServiceError as exc:
        pytest.fail(f"the local cluster is not up: {exc}; `make cluster-up N={size}`")
    return module


@pytest.fixture
def cluster_url(
    manage: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> Iterator[str]:
    """A fresh keyspace at RF=3 on all three nodes, written and read at LOCAL_QUORUM (this
    process and the collectors it starts inherit the settings); dropped after a passing test,
    kept after a failing one (the evidence: which rows Cassandra holds)."""
    replication = f"{{'class': 'SimpleStrategy', 'replication_factor': {CLUSTER_NODES}}}"
    monkeypatch.setenv("CASSANDRA_REPLICATION", replication)
    monkeypatch.setenv("CASSANDRA_CONSISTENCY", "LOCAL_QUORUM")
    port = manage.ClusterPorts.from_env().cql
    hosts = ",".join(f"{manage.node_address(i)}:{port}" for i in range(1, CLUSTER_NODES + 1))
    keyspace = f"hundi_c{uuid.uuid4().hex[:12]}"
    yield f"cassandra://{hosts}/{keyspace}"
    if failed_in_call(request.node):
        # whatever failed, the run's embedded store and summary outlive pytest's rotation
        from test_cluster_faults import keep_evidence

        kept = keep_evidence(tmp_path, f"cassandra://{hosts}/{keyspace}")
        print(f"\n[cluster] test failed: keyspace {keyspace} kept on the cluster, files in {kept}")
        return
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy

    cluster = Cluster(
        [manage.node_address(i) for i in range(1, CLUSTER_NODES + 1)],
        port=port,
        protocol_version=5,
        auth_provider=PlainTextAuthProvider(
            os.environ["CASSANDRA_USER"], os.environ["CASSANDRA_PASSWORD"]
        ),
        execution_profiles={
            EXEC_PROFILE_DEFAULT: ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy())
        },
    )
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
    finally:
        cluster.shutdown()
