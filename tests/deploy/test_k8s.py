"""deploy/k8s rendered with the real kustomize, validated offline against the Kubernetes schemas,
and held to the deployment's rules: non-root, limits, probes, secrets only in Secrets, network
paths only where something must talk, Cassandra's shape, collector sharding."""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hundi.config import load_config_file
from hundi.deploy.envfiles import ENV_FILES, EnvFileError, load_env_files
from hundi.deploy.kube import (
    COMPONENTS,
    DEPLOY,
    K8S_ENV_FILES,
    KUBERNETES_VERSION,
    OVERLAYS,
    REPO,
    DeployError,
    apply,
    containers,
    decoded_secret_data,
    find_kustomize,
    pod_spec,
    references,
    render,
    select,
    validate,
)
from hundi.pipeline.shard import Shard, shard_feeds

Object = dict[str, Any]
REPLICAS = {"dev": {"cassandra": 1, "collectors": 1}, "prod": {"cassandra": 3, "collectors": 3}}


@pytest.fixture(scope="module")
def kustomize() -> Path:
    """The real kustomize (KUSTOMIZE or `make k8s-tools`); missing under CI is a failure."""
    try:
        return find_kustomize()
    except DeployError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real-looking env files: the templates with a distinct random value for every secret."""
    directory = tmp_path_factory.mktemp("env")
    for name, spec in ENV_FILES.items():
        lines = (REPO / spec.example).read_text().splitlines()
        if spec.secret:
            lines = [
                f"{line.partition('=')[0]}={secrets.token_urlsafe(18)}"
                if "=" in line and not line.lstrip().startswith("#")
                else line
                for line in lines
            ]
        (directory / name).write_text("\n".join(lines) + "\n")
    return directory


@pytest.fixture(scope="module")
def secret_env(env_dir: Path) -> dict[str, str]:
    names = [name for name, spec in ENV_FILES.items() if spec.secret]
    return {k: v for values in load_env_files(env_dir, names).values() for k, v in values.items()}


@pytest.fixture(scope="module")
def rendered(kustomize: Path, env_dir: Path) -> dict[str, list[Object]]:
    return {name: render(name, env_dir=env_dir, kustomize=kustomize) for name in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def objects(rendered: dict[str, list[Object]], overlay: str) -> list[Object]:
    return rendered[overlay]


def find(objects: list[Object], kind: str, name: str, namespace: str | None = None) -> Object:
    for obj in objects:
        meta = obj["metadata"]
        if (obj["kind"], meta["name"]) == (kind, name) and namespace in (
            None,
            meta.get("namespace"),
        ):
            return obj
    raise AssertionError(f"no {kind} {name} in {namespace}")


def generated(objects: list[Object], kind: str, base: str, namespace: str) -> Object:
    """A generated ConfigMap/Secret by its name before kustomize's hash suffix."""
    found = [
        o
        for o in objects
        if o["kind"] == kind
        and o["metadata"]["name"].rsplit("-", 1)[0] == base
        and o["metadata"].get("namespace") == namespace
    ]
    assert len(found) == 1, (kind, base, namespace)
    return found[0]


def workloads(objects: list[Object]) -> Iterator[tuple[Object, Object]]:
    for obj in objects:
        spec = pod_spec(obj)
        if spec is not None:
            yield obj, spec


def env_of(container: Object) -> dict[str, Object]:
    return {var["name"]: var for var in container.get("env") or []}


def spec_of(objects: list[Object], deployment: str) -> Object:
    spec = pod_spec(find(objects, "Deployment", deployment))
    assert spec is not None
    return spec


def container(objects: list[Object], kind: str, name: str, container_name: str) -> Object:
    spec = pod_spec(find(objects, kind, name))
    assert spec is not None
    return next(c for c in spec["containers"] if c["name"] == container_name)


# --- rendering and schemas ---------------------------------------------------------------------


@pytest.mark.slow
def test_every_overlay_renders_from_the_committed_templates_and_validates(
    kustomize: Path,
) -> None:
    """What `make k8s-validate` does in CI: only the *.example files exist there."""
    for name in OVERLAYS:
        objects = render(name, examples=True, kustomize=kustomize)
        validate(objects, KUBERNETES_VERSION)
        kinds = {o["kind"] for o in objects}
        assert {"Namespace", "StatefulSet", "Deployment", "Service", "ConfigMap", "Secret"} <= kinds
        assert {"NetworkPolicy", "PodDisruptionBudget", "PersistentVolumeClaim"} <= kinds


@pytest.mark.slow
def test_real_env_files_render_and_validate(objects: list[Object]) -> None:
    validate(objects)
    cluster_scoped = {"Namespace", "PriorityClass"}
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] not in cluster_scoped} == {
        "backend",
        "frontend",
    }


def test_validation_is_strict_and_names_the_object(objects: list[Object]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(find(objects, "Service", "cassandra")))
    broken["spec"]["clusterIp"] = "None"  # misspelt field: must not pass silently
    with pytest.raises(DeployError, match=r"Service/cassandra: .*'clusterIp' was unexpected"):
        validate([broken])


def test_every_component_selects_its_objects_and_what_they_reference(
    objects: list[Object],
) -> None:
    for component in COMPONENTS:
        chosen = select(objects, component)
        assert chosen, component
        validate(chosen)
        if component.endswith("-namespace"):
            namespace = component.removesuffix("-namespace")
            assert find(chosen, "Namespace", namespace)
            assert find(chosen, "NetworkPolicy", "default-deny", namespace)
            continue
        present = {
            (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in chosen
        }
        for obj, spec in workloads(chosen):
            namespace = obj["metadata"]["namespace"]
            for kind, name in references(spec):
                assert (kind, namespace, name) in present, (component, kind, name)


def test_no_dangling_reference_to_a_configmap_or_secret(objects: list[Object]) -> None:
    present = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects}
    for obj, spec in workloads(objects):
        for kind, name in references(spec):
            assert (kind, obj["metadata"]["namespace"], name) in present, (obj["kind"], name)


def test_the_env_files_checked_are_the_ones_the_kustomization_reads() -> None:
    base = yaml.safe_load((DEPLOY / "k8s" / "base" / "kustomization.yaml").read_text())
    generators = base["configMapGenerator"] + base["secretGenerator"]
    read = {Path(path).name for g in generators for path in g.get("envs", [])}
    assert read == set(K8S_ENV_FILES)
    # Secret files only feed Secrets, the others only ConfigMaps.
    for g in base["configMapGenerator"]:
        assert not any(ENV_FILES[Path(p).name].secret for p in g.get("envs", [])), g["name"]
    for g in base["secretGenerator"]:
        assert all(ENV_FILES[Path(p).name].secret for p in g["envs"]), g["name"]


def test_a_missing_env_file_fails_naming_the_file(tmp_path: Path, env_dir: Path) -> None:
    for name in ENV_FILES:
        if name != ".secret.grafana.env":
            shutil.copy(env_dir / name, tmp_path / name)
    with pytest.raises(EnvFileError, match=r"\.secret\.grafana\.env is missing"):
        render("dev", env_dir=tmp_path, kustomize=Path("/nonexistent"))  # fails before kustomize


def test_an_incomplete_env_file_fails_naming_file_and_key(tmp_path: Path, env_dir: Path) -> None:
    for name in ENV_FILES:
        shutil.copy(env_dir / name, tmp_path / name)
    text = (tmp_path / ".cassandra.env").read_text()
    (tmp_path / ".cassandra.env").write_text(
        "\n".join(line for line in text.splitlines() if not line.startswith("CASSANDRA_DC="))
    )
    with pytest.raises(EnvFileError, match=r"\.cassandra\.env: CASSANDRA_DC is not set"):
        render("prod", env_dir=tmp_path, kustomize=Path("/nonexistent"))


def test_apply_dry_run_prints_and_a_missing_kubectl_is_one_clear_error(
    kustomize: Path, env_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUSTOMIZE", str(kustomize))
    text = apply("grafana", "dev", env_dir=env_dir, dry_run=True)
    assert {d["kind"] for d in yaml.safe_load_all(text)} >= {"Deployment", "Secret", "Service"}
    monkeypatch.setenv("KUBECTL", "kubectl-that-does-not-exist")
    with pytest.raises(DeployError, match=r"kubectl not found: install it .* DRY_RUN=1"):
        apply("grafana", "dev", env_dir=env_dir, dry_run=False)


# --- security ----------------------------------------------------------------------------------


def test_every_container_runs_non_root_without_privileges(objects: list[Object]) -> None:
    checked = 0
    for obj, spec in workloads(objects):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        pod = spec.get("securityContext") or {}
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), where
        # only the Cassandra backup/repair CronJobs talk to the API (their own, narrow account)
        if obj["kind"] == "CronJob" and obj["metadata"]["name"].startswith("cassandra-"):
            assert spec["serviceAccountName"] == "cassandra-ops", where
        else:
            assert spec.get("automountServiceAccountToken") is False, where
        for c in containers(spec):
            context = {**pod, **(c.get("securityContext") or {})}
            name = f"{where}/{c['name']}"
            assert context.get("runAsNonRoot") is True, name
            assert context.get("runAsUser", 0) > 0 and context.get("runAsGroup", 0) > 0, name
            assert context.get("allowPrivilegeEscalation") is False, name
            assert context.get("privileged", False) is False, name
            assert context.get("readOnlyRootFilesystem") is True, name
            assert context.get("capabilities", {}).get("drop") == ["ALL"], name
            assert "add" not in context.get("capabilities", {}), name
            checked += 1
    cronjobs = sum(1 for o in objects if o["kind"] == "CronJob")
    # a backup and a repair CronJob per Cassandra node, and the hourly `hundi store compact`
    assert cronjobs in (3, 7)
    # 7 main containers (collectors twice: the A/B pair) + 2 init containers + the bootstrap
    # Job + the CronJobs'
    assert checked == 10 + cronjobs


def test_compaction_runs_hourly_over_yesterday_and_today(objects: list[Object]) -> None:
    """A live collector writes ~7,200 small chunks an hour per busy stream; compacted hourly,
    only the current hour is read in small chunks (docs/cassandra-store.md "Compaction")."""
    job = find(objects, "CronJob", "hundi-compact", "backend")
    minute, hour, *_ = job["spec"]["schedule"].split()
    assert minute.isdigit() and int(minute) >= 2 and hour == "*"  # after the 60 s margin
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] < 3600
    (compact,) = pod_spec(job)["containers"]  # type: ignore[index]
    script = " ".join(compact["args"])
    assert (
        "exec hundi store compact" in script and '--since "$(date -u -d yesterday +%F)"' in script
    )


def test_every_container_has_requests_and_limits(objects: list[Object]) -> None:
    for obj, spec in workloads(objects):
        for c in containers(spec):
            resources = c.get("resources") or {}
            for bound in ("requests", "limits"):
                assert set(resources.get(bound, {})) >= {"cpu", "memory"}, (
                    obj["metadata"]["name"],
                    c["name"],
                    bound,
                )


def test_every_main_container_has_readiness_and_liveness_probes(objects: list[Object]) -> None:
    for obj, spec in workloads(objects):
        if obj["kind"] in ("CronJob", "Job"):
            continue  # a run to completion, watched by its Job's status
        for c in spec["containers"]:
            assert "readinessProbe" in c and "livenessProbe" in c, (obj["metadata"]["name"], c)


# HTTP endpoints that answer an error while Cassandra is down (they read the store).
STORE_CHECKS = {("hundi-api", "/api/v1/health"), ("kairosdb", "/api/v1/health/check")}


def test_liveness_and_startup_never_depend_on_cassandra(objects: list[Object]) -> None:
    """A Cassandra outage makes pods unready, never restarts them: a restart heals nothing."""
    for obj, spec in workloads(objects):
        for c in spec["containers"]:
            for probe in ("livenessProbe", "startupProbe"):
                path = c.get(probe, {}).get("httpGet", {}).get("path")
                assert (obj["metadata"]["name"], path) not in STORE_CHECKS, (
                    obj["metadata"]["name"],
                    probe,
                )
    api = container(objects, "Deployment", "hundi-api", "hundi-api")
    assert api["readinessProbe"]["httpGet"]["path"] == "/api/v1/health"
    assert api["livenessProbe"]["exec"]["command"][:2] == ["hundi", "health"]
    kairosdb = container(objects, "Deployment", "kairosdb", "kairosdb")
    assert kairosdb["readinessProbe"]["httpGet"]["path"] == "/api/v1/health/check"


def test_configmaps_and_secrets_fit_in_etcd(objects: list[Object]) -> None:
    for obj in objects:
        if obj["kind"] in ("ConfigMap", "Secret"):
            size = sum(len(v) for v in (obj.get("data") or {}).values())
            assert size < 1024 * 1024, obj["metadata"]["name"]


def test_namespaces_enforce_the_restricted_pod_security_level(objects: list[Object]) -> None:
    for name in ("backend", "frontend"):
        labels = find(objects, "Namespace", name)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_secrets_live_only_in_secrets(
    objects: list[Object], secret_env: dict[str, str], env_dir: Path
) -> None:
    """No secret key or value in a ConfigMap or an env literal; every one is in a Secret."""
    names = [name for name, spec in ENV_FILES.items() if spec.secret]
    files = load_env_files(env_dir, names)
    # every file's values: several files share key names (one Cassandra login per role)
    values = [v for values in files.values() for v in values.values() if v]
    assert values, "the secret env files must give the check something to find"
    in_secrets: set[str] = set()
    for obj in objects:
        if obj["kind"] == "Secret":
            in_secrets |= set(decoded_secret_data(obj).values())
        if obj["kind"] == "ConfigMap":
            data = {**(obj.get("data") or {}), **(obj.get("binaryData") or {})}
            name = obj["metadata"]["name"]
            assert not set(data) & set(secret_env), f"secret key in ConfigMap {name}"
            for text in data.values():
                assert not any(value in text for value in values), f"secret in ConfigMap {name}"
    for _, spec in workloads(objects):
        for c in containers(spec):
            for var in c.get("env") or []:
                literal = var.get("value", "")
                assert not any(value in literal for value in values), (c["name"], var["name"])
                if var["name"] in secret_env:
                    assert "secretKeyRef" in var.get("valueFrom", {}), (c["name"], var["name"])
            for arg in [*c.get("args", []), *c.get("command", [])]:
                assert not any(value in arg for value in values), c["name"]
    # Every secret the pods need is generated (values from the secret env files).
    needed = {"CASSANDRA_USER", "CASSANDRA_PASSWORD", "GF_SECURITY_ADMIN_PASSWORD", "JUPYTER_TOKEN"}
    assert {secret_env[key] for key in needed} <= in_secrets
    for name in names:
        if name.startswith(".secret.cassandra"):
            assert set(files[name].values()) <= in_secrets, name


def test_rendering_never_leaves_the_secrets_in_the_repository(rendered: object) -> None:
    assert not (DEPLOY / "k8s" / "env").exists()


# --- network policies --------------------------------------------------------------------------

Pod = tuple[str, dict[str, str]]  # namespace, labels


def _selects(selector: Object, labels: dict[str, str]) -> bool:
    assert "matchExpressions" not in selector, "the evaluator below knows matchLabels only"
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _peer(peer: Object, policy_namespace: str, pod: Pod) -> bool:
    if "ipBlock" in peer:
        return False  # in-cluster pods are not matched by the public ipBlocks used here
    namespace, labels = pod
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}):
            return False
    elif namespace != policy_namespace:
        return False
    return "podSelector" not in peer or _selects(peer["podSelector"], labels)


def _ports(rule: Object, port: int) -> bool:
    return "ports" not in rule or any(p.get("port") == port for p in rule["ports"])


def _allows(objects: list[Object], direction: str, pod: Pod, peer: Pod | None, port: int) -> bool:
    """Whether ``pod``'s policies let traffic go to/come from ``peer`` (None: the internet)."""
    kind, peers = ("Egress", "to") if direction == "egress" else ("Ingress", "from")
    policies = [
        o
        for o in objects
        if o["kind"] == "NetworkPolicy"
        and o["metadata"]["namespace"] == pod[0]
        and _selects(o["spec"]["podSelector"], pod[1])
        and kind in o["spec"]["policyTypes"]
    ]
    if not policies:
        return True  # not isolated
    for policy in policies:
        for rule in policy["spec"].get(direction) or []:
            if not _ports(rule, port):
                continue
            if peers not in rule:
                return True
            for p in rule[peers]:
                if peer is None and "ipBlock" in p and p["ipBlock"]["cidr"] == "0.0.0.0/0":
                    return True
                if peer is not None and _peer(p, policy["metadata"]["namespace"], peer):
                    return True
    return False


def can_talk(objects: list[Object], source: Pod, target: Pod, port: int) -> bool:
    return _allows(objects, "egress", source, target, port) and _allows(
        objects, "ingress", target, source, port
    )


def pod(objects: list[Object], name: str) -> Pod:
    for obj, _ in workloads(objects):
        if obj["metadata"]["name"] == name:
            spec = obj["spec"].get("jobTemplate", {}).get("spec", obj["spec"])  # CronJob
            return obj["metadata"]["namespace"], spec["template"]["metadata"]["labels"]
    raise AssertionError(name)


def test_default_deny_in_both_namespaces_and_every_pod_has_its_own_policy(
    objects: list[Object],
) -> None:
    for namespace in ("backend", "frontend"):
        deny = find(objects, "NetworkPolicy", "default-deny", namespace)["spec"]
        assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
        assert "ingress" not in deny and "egress" not in deny
    for obj, _ in workloads(objects):
        namespace, labels = pod(objects, obj["metadata"]["name"])
        own = [
            p
            for p in objects
            if p["kind"] == "NetworkPolicy"
            and p["metadata"]["namespace"] == namespace
            and p["spec"]["podSelector"]
            and _selects(p["spec"]["podSelector"], labels)
        ]
        assert own, obj["metadata"]["name"]


ALLOWED = [
    ("collectors", "cassandra", 9042),
    ("collectors", "kairosdb", 8080),
    ("kairosdb", "cassandra", 9042),
    ("hundi-api", "cassandra", 9042),
    ("grafana", "hundi-api", 8000),
    ("jupyter", "cassandra", 9042),
    ("jupyter", "kairosdb", 8080),
    ("jupyter", "hundi-api", 8000),
    ("cassandra", "cassandra", 7000),
]
DENIED = [
    ("grafana", "cassandra", 9042),
    ("grafana", "kairosdb", 8080),  # its Angular datasource cannot load on Grafana 11
    ("collectors", "hundi-api", 8000),
    ("hundi-api", "kairosdb", 8080),
    ("kairosdb", "cassandra", 7000),
    ("cassandra", "kairosdb", 8080),
    ("jupyter", "collectors", 8000),
    ("collectors", "grafana", 3000),
    ("hundi-api", "jupyter", 8888),
]


def test_only_what_must_talk_can_talk(objects: list[Object]) -> None:
    for source, target, port in ALLOWED:
        assert can_talk(objects, pod(objects, source), pod(objects, target), port), (source, target)
    for source, target, port in DENIED:
        assert not can_talk(objects, pod(objects, source), pod(objects, target), port), (
            source,
            target,
        )


def test_an_image_loaded_into_the_cluster_is_never_pulled(
    objects: list[Object], overlay: str
) -> None:
    """Found by review: in dev (images loaded with `kind load`, tag `latest`) the b members,
    the bootstrap Job, the compaction CronJob and Grafana had no pull policy, so Kubernetes
    pulled `:latest` Always (ErrImagePull, or someone else's image); and the b members had the
    base sizes, not dev's."""
    for obj, spec in workloads(objects):
        for each in spec.get("initContainers", []) + spec["containers"]:
            if each["image"].endswith(":latest"):
                assert each.get("imagePullPolicy") == "IfNotPresent", (
                    obj["metadata"]["name"],
                    each["name"],
                )
    a, b = (
        container(objects, "StatefulSet", n, "collector") for n in ("collectors", "collectors-b")
    )
    assert a["resources"] == b["resources"]
    claims = [
        find(objects, "StatefulSet", n)["spec"]["volumeClaimTemplates"]
        for n in ("collectors", "collectors-b")
    ]
    assert claims[0] == claims[1]
    assert overlay != "dev" or a["resources"]["limits"]["memory"] == "1Gi"


def test_no_policy_opens_kairosdb_to_grafana(objects: list[Object]) -> None:
    """Found by review: the KairosDB policy still let Grafana in (only Grafana's egress rule
    blocked it), though no datasource of Grafana 11 speaks KairosDB."""
    kairos = find(objects, "NetworkPolicy", "kairosdb", "backend")
    peers = [peer for rule in kairos["spec"]["ingress"] for peer in rule["from"]]
    names = {
        (p.get("podSelector") or {}).get("matchLabels", {}).get("app.kubernetes.io/name")
        for p in peers
    }
    assert "grafana" not in names and names, names


INGRESS_CONTROLLER: Pod = ("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})


def test_grafana_and_jupyter_are_reachable_from_the_ingress_controller_only(
    objects: list[Object],
) -> None:
    """Only pods of the ingress controller's namespace (INGRESS_NAMESPACE of the frontend
    `cluster` ConfigMap) open Grafana and Jupyter; `kubectl port-forward` is not pod traffic."""
    cluster = generated(objects, "ConfigMap", "cluster", "frontend")
    assert cluster["data"]["INGRESS_NAMESPACE"] == INGRESS_CONTROLLER[0]
    stranger: Pod = ("default", {"app": "anything"})
    for name, port in (("grafana", 3000), ("jupyter", 8888)):
        assert can_talk(objects, INGRESS_CONTROLLER, pod(objects, name), port), name
        assert not can_talk(objects, stranger, pod(objects, name), port), name
        for other in ("collectors", "hundi-api", "kairosdb", "cassandra"):
            assert not can_talk(objects, pod(objects, other), pod(objects, name), port), other
        assert not can_talk(
            objects,
            pod(objects, "jupyter" if name == "grafana" else "grafana"),
            pod(objects, name),
            port,
        )
        ingress = find(objects, "NetworkPolicy", name, "frontend")["spec"]["ingress"]
        assert all("ipBlock" not in peer for rule in ingress for peer in rule["from"])
        assert all("namespaceSelector" in peer for rule in ingress for peer in rule["from"])
    for name, port in (("cassandra", 9042), ("kairosdb", 8080), ("hundi-api", 8000)):
        assert not can_talk(objects, stranger, pod(objects, name), port), name
        assert not can_talk(objects, INGRESS_CONTROLLER, pod(objects, name), port), name


def test_the_ingress_namespace_is_one_setting(
    kustomize: Path, env_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changing INGRESS_NAMESPACE in the base kustomization moves both policies with it."""
    tree = tmp_path / "deploy"
    shutil.copytree(DEPLOY, tree, ignore=shutil.ignore_patterns("env"))
    base = tree / "k8s" / "base" / "kustomization.yaml"
    text = base.read_text()
    assert text.count("INGRESS_NAMESPACE=ingress-nginx") == 1
    base.write_text(text.replace("INGRESS_NAMESPACE=ingress-nginx", "INGRESS_NAMESPACE=traefik"))
    monkeypatch.setattr("hundi.deploy.kube.DEPLOY", tree)
    traefik: Pod = ("traefik", {"app.kubernetes.io/name": "traefik"})
    for overlay_name in OVERLAYS:
        objects = render(overlay_name, env_dir=env_dir, kustomize=kustomize)
        for name, port in (("grafana", 3000), ("jupyter", 8888)):
            assert can_talk(objects, traefik, pod(objects, name), port), (overlay_name, name)
            assert not can_talk(objects, INGRESS_CONTROLLER, pod(objects, name), port)


def test_only_collectors_reach_the_internet(objects: list[Object]) -> None:
    """The exchanges. Grafana's plugin is in its image: it has no internet egress at all."""
    assert _allows(objects, "egress", pod(objects, "collectors"), None, 443)
    assert _allows(objects, "egress", pod(objects, "collectors"), None, 9443)
    for name in ("cassandra", "kairosdb", "hundi-api", "jupyter", "grafana"):
        for port in (443, 80):
            assert not _allows(objects, "egress", pod(objects, name), None, port), name
    grafana = find(objects, "NetworkPolicy", "grafana", "frontend")["spec"]
    assert all("ipBlock" not in peer for rule in grafana["egress"] for peer in rule["to"])
    dns: Pod = ("kube-system", {"k8s-app": "kube-dns"})
    for obj, _ in workloads(objects):
        assert _allows(objects, "egress", pod(objects, obj["metadata"]["name"]), dns, 53)


# --- Cassandra ---------------------------------------------------------------------------------


def test_cassandra_statefulset_shape(objects: list[Object], overlay: str) -> None:
    sts = find(objects, "StatefulSet", "cassandra", "backend")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["replicas"] == REPLICAS[overlay]["cassandra"]
    service = find(objects, "Service", sts["spec"]["serviceName"], "backend")
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"]
    assert _selects({"matchLabels": service["spec"]["selector"]}, labels)
    first = f"{sts['metadata']['name']}-0.{service['metadata']['name']}.backend.svc.cluster.local"
    assert first == "cassandra-0.cassandra.backend.svc.cluster.local"
    env = env_of(container(objects, "StatefulSet", "cassandra", "cassandra"))
    assert env["CASSANDRA_SEEDS"]["value"].split(",")[0] == first
    assert env["CASSANDRA_REPLICAS"]["value"] == str(sts["spec"]["replicas"])
    assert env["MEMORY_LIMIT"]["valueFrom"]["resourceFieldRef"]["resource"] == "limits.memory"
    cluster = generated(objects, "ConfigMap", "cluster", "backend")
    assert cluster["data"]["CASSANDRA_RF"] == str(min(sts["spec"]["replicas"], 3))
    # Storage: a claim per pod, mounted where Cassandra keeps its data.
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = container(objects, "StatefulSet", "cassandra", "cassandra")["volumeMounts"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/var/lib/cassandra"} in mounts


def test_cassandra_spreads_over_machines_and_keeps_a_quorum(objects: list[Object]) -> None:
    sts = find(objects, "StatefulSet", "cassandra", "backend")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    (term,) = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert _selects(term["labelSelector"], labels)
    pdb = find(objects, "PodDisruptionBudget", "cassandra", "backend")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert _selects(pdb["spec"]["selector"], labels)


def test_cassandra_runs_the_start_script_from_its_configmap(objects: list[Object]) -> None:
    c = container(objects, "StatefulSet", "cassandra", "cassandra")
    script = generated(objects, "ConfigMap", "cassandra-start", "backend")
    assert script["data"]["start.sh"] == (DEPLOY / "k8s/base/cassandra/start.sh").read_text()
    mount = next(m for m in c["volumeMounts"] if m["name"] == "start")
    assert c["command"] == ["bash", f"{mount['mountPath']}/start.sh"]
    env = env_of(c)
    for key in ("CASSANDRA_USER", "CASSANDRA_PASSWORD"):
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert key in decoded_secret_data(find(objects, "Secret", ref["name"], "backend"))


def test_cassandra_backup_and_repair_cronjobs_cover_every_node_one_at_a_time(
    objects: list[Object],
) -> None:
    sts = find(objects, "StatefulSet", "cassandra", "backend")
    nodes = [f"cassandra-{n}" for n in range(sts["spec"]["replicas"])]
    script = generated(objects, "ConfigMap", "cassandra-start", "backend")
    assert script["data"]["backup.sh"] == (DEPLOY / "k8s/base/cassandra/backup.sh").read_text()
    cassandra = container(objects, "StatefulSet", "cassandra", "cassandra")
    mounts = {m["name"]: m["mountPath"] for m in cassandra["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(sts)["volumes"]}  # type: ignore[index]
    claim = find(objects, "PersistentVolumeClaim", "cassandra-backups", "backend")
    # off the node, shared by all nodes (one dev node: the default StorageClass, RWO)
    modes = ["ReadWriteMany"] if len(nodes) > 1 else ["ReadWriteOnce"]
    assert claim["spec"]["accessModes"] == modes
    assert volumes["backups"]["persistentVolumeClaim"]["claimName"] == "cassandra-backups"
    for task in ("backup", "repair"):
        jobs = [
            o for o in objects if o["kind"] == "CronJob" and f"-{task}-" in o["metadata"]["name"]
        ]
        assert sorted(j["metadata"]["name"] for j in jobs) == [
            f"cassandra-{task}-{n}" for n in range(len(nodes))
        ]
        hours: set[tuple[str, str, str]] = set()
        for job in jobs:
            assert job["metadata"]["namespace"] == "backend"
            assert job["spec"]["concurrencyPolicy"] == "Forbid"
            minute, hour, _, _, weekday = job["spec"]["schedule"].split()
            hours.add((minute, hour, weekday))
            (kubectl,) = pod_spec(job)["containers"]  # type: ignore[index]
            node = job["metadata"]["name"].replace(f"-{task}", "")
            args = kubectl["args"]
            assert args[:5] == ["exec", node, "--namespace=backend", "--container=cassandra", "--"]
            if task == "backup":
                assert args[5:8] == ["bash", f"{mounts['start']}/backup.sh", "ship"]
                assert args[8] == "hundi" and args[9] == mounts["backups"]
            else:
                assert args[5:] == ["nodetool", "repair", "-pr", "-full"]
        assert len(hours) == len(jobs)  # staggered: no two nodes start together
    # least privilege: its own account, a namespaced Role, get/exec on the Cassandra pods only
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    binding = find(objects, "RoleBinding", "cassandra-ops", "backend")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "cassandra-ops",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cassandra-ops", "namespace": "backend"}
    ]
    assert find(objects, "ServiceAccount", "cassandra-ops", "backend")
    rules = find(objects, "Role", "cassandra-ops", "backend")["rules"]
    granted = {(r, v) for rule in rules for r in rule["resources"] for v in rule["verbs"]}
    assert granted == {("pods", "get"), ("pods/exec", "create"), ("pods/exec", "get")}
    for rule in rules:
        assert rule["apiGroups"] == [""] and set(nodes) <= set(rule["resourceNames"])
        assert all(name.startswith("cassandra-") for name in rule["resourceNames"])
    # the CronJob pods reach neither Cassandra's ports nor the internet
    ops = pod(objects, "cassandra-backup-0")
    for port in (9042, 7000):
        assert not can_talk(objects, ops, pod(objects, "cassandra"), port)
    assert not _allows(objects, "egress", ops, None, 443)


def _gib(quantity: str) -> float:
    number, unit = quantity[:-2], quantity[-2:]
    return float(number) * {"Ki": 2**-20, "Mi": 2**-10, "Gi": 1, "Ti": 2**10}[unit]


def test_cassandra_logs_fit_their_volume(objects: list[Object]) -> None:
    """An emptyDir over its sizeLimit evicts the pod: the logs volume holds what Cassandra's
    default logback retains (5GB of rolled system.log, 5GB of debug.log, live files, gc.log)."""
    c = container(objects, "StatefulSet", "cassandra", "cassandra")
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/var/log/cassandra")
    spec = pod_spec(find(objects, "StatefulSet", "cassandra", "backend"))
    assert spec is not None
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert _gib(volume["emptyDir"]["sizeLimit"]) >= 5 + 5 + 0.25


# hundi.logs rotates HUNDI_LOG_PATH at 64 MiB and keeps 3 backups; the health file sits beside.
HUNDI_LOG_RETENTION_GIB = 4 * 64 / 1024


def test_hundi_logs_fit_their_volume(objects: list[Object]) -> None:
    """The volume under HUNDI_LOG_PATH holds hundi's whole log retention with room to spare
    (an emptyDir over its sizeLimit evicts the pod)."""
    checked = 0
    for obj, spec in workloads(objects):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            log_path = env_of(c).get("HUNDI_LOG_PATH", {}).get("value")
            if log_path is None:
                continue
            mount = max(
                (m for m in c["volumeMounts"] if log_path.startswith(m["mountPath"] + "/")),
                key=lambda m: len(m["mountPath"]),
            )
            limit = _gib(volumes[mount["name"]]["emptyDir"]["sizeLimit"])
            assert limit >= 1.25 * HUNDI_LOG_RETENTION_GIB, (obj["metadata"]["name"], limit)
            checked += 1
    assert checked >= 3  # collectors, hundi-api, jupyter


# --- the other components ----------------------------------------------------------------------


def test_kairosdb_uses_cassandra_probes_health_and_queues_on_a_volume(
    objects: list[Object],
) -> None:
    c = container(objects, "Deployment", "kairosdb", "kairosdb")
    assert c["image"].startswith("wunder/kairosdb:")
    # ready when the datastore answers; started and alive while Jetty answers
    assert c["readinessProbe"]["httpGet"]["path"] == "/api/v1/health/check"
    for probe in ("startupProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/api/v1/health/status"
    env = env_of(c)
    assert (
        env["KAIROSDB_CASSANDRA_HOSTS"]["value"]
        == "cassandra-client.backend.svc.cluster.local:9042"
    )
    queue = env["KAIROSDB_QUEUE_PATH"]["value"]
    volumes = {v["name"]: v for v in spec_of(objects, "kairosdb")["volumes"]}
    mount = next(m for m in c["volumeMounts"] if queue.startswith(m["mountPath"] + "/"))
    claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    assert find(objects, "PersistentVolumeClaim", claim, "backend")


def test_collectors_shard_by_ordinal_over_the_configured_symbols(
    objects: list[Object], overlay: str, tmp_path: Path
) -> None:
    sts = find(objects, "StatefulSet", "collectors", "backend")
    replicas = sts["spec"]["replicas"]
    assert replicas == REPLICAS[overlay]["collectors"]
    c = container(objects, "StatefulSet", "collectors", "collector")
    assert env_of(c)["HUNDI_SHARDS"]["value"] == str(replicas)
    args = c["args"]
    assert args[:1] == ["collect"] and args[args.index("--shard") + 1] == "auto"
    # the cluster's log pipeline reads stdout: every line from INFO up, one JSON object each
    assert env_of(c)["HUNDI_LOG_STREAM"]["value"] == "stdout"
    assert env_of(c)["HUNDI_LOG_FORMAT"]["value"] == "json"
    stores = env_of(c)["HUNDI_STORE"]["value"]
    assert stores.startswith("cassandra://cassandra-client.backend.svc.cluster.local:9042/")
    assert "kairosdb+http://kairosdb.backend.svc.cluster.local:8080" in stores
    # The mounted feed list is a valid hundi config and every symbol lands in one pod.
    config_path = Path(args[args.index("--config") + 1])
    feeds_map = generated(objects, "ConfigMap", "collectors-feeds", "backend")
    local = tmp_path / config_path.name
    local.write_text(feeds_map["data"][config_path.name])
    feeds = load_config_file(local).feeds
    everything = sorted((f.exchange, f.market, s) for f in feeds for s in f.symbols)
    split = sorted(
        (f.exchange, f.market, s)
        for ordinal in range(replicas)
        for f in shard_feeds(feeds, Shard(ordinal, replicas))
        for s in f.symbols
    )
    assert split == everything


def test_grafana_admin_password_and_provisioning_from_files(objects: list[Object]) -> None:
    c = container(objects, "Deployment", "grafana", "grafana")
    env = env_of(c)
    ref = env["GF_SECURITY_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert "GF_SECURITY_ADMIN_PASSWORD" in decoded_secret_data(
        find(objects, "Secret", ref["name"], "frontend")
    )
    # the Infinity plugin is baked into the image at a pinned version, never fetched at start
    assert c["image"].startswith("wunder/grafana:")
    assert not {"GF_INSTALL_PLUGINS", "GF_PLUGINS_PREINSTALL"} & set(env)
    assert env["GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES"]["value"] == "false"
    # no volume hides the image's plugin directory (GF_PATHS_PLUGINS, deploy/grafana/Dockerfile)
    plugins = re.search(r"GF_PATHS_PLUGINS=(\S+)", (DEPLOY / "grafana" / "Dockerfile").read_text())
    assert plugins
    for mount in c["volumeMounts"]:
        assert not plugins.group(1).startswith(mount["mountPath"].rstrip("/") + "/"), mount
        assert not mount["mountPath"].startswith(plugins.group(1)), mount
    api = env["HUNDI_API_URL"]["value"]
    assert api == "http://hundi-api.backend.svc.cluster.local:8000"
    assert find(objects, "Service", "hundi-api", "backend")["spec"]["ports"][0]["port"] == 8000
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec_of(objects, "grafana")["volumes"]}

    def mounted(path: str) -> Object:
        name = volumes[mounts[path]]["configMap"]["name"]
        return find(objects, "ConfigMap", name, "frontend")

    provisioning = DEPLOY / "grafana" / "provisioning"
    datasources = mounted("/etc/grafana/provisioning/datasources")["data"]
    assert datasources == {"hundi.yaml": (provisioning / "datasources/hundi.yaml").read_text()}
    providers_text = mounted("/etc/grafana/provisioning/dashboards")["data"]["hundi.yaml"]
    assert providers_text == (provisioning / "dashboards/hundi.yaml").read_text()
    (provider,) = yaml.safe_load(providers_text)["providers"]
    # Every generated dashboard is mounted where the provider looks.
    dashboards = mounted(provider["options"]["path"])["data"]
    files = {p.name: p.read_text() for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")}
    assert files and dashboards == files


def test_jupyter_token_from_the_secret_and_notebooks_on_a_seeded_volume(
    objects: list[Object],
) -> None:
    deployment = find(objects, "Deployment", "jupyter", "frontend")
    spec = deployment["spec"]["template"]["spec"]
    c = container(objects, "Deployment", "jupyter", "jupyter")
    ref = env_of(c)["JUPYTER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert "JUPYTER_TOKEN" in decoded_secret_data(find(objects, "Secret", ref["name"], "frontend"))
    # The image serves /home/hundi/work (its CMD's root_dir): that is the volume.
    notebooks = next(m for m in c["volumeMounts"] if m["mountPath"] == "/home/hundi/work")
    assert "--ServerApp.root_dir=/home/hundi/work" in (REPO / "Dockerfile").read_text()
    (seed,) = spec["initContainers"]
    assert seed["image"] == c["image"]
    assert seed["command"] == ["cp", "-R", "-n", "/home/hundi/work/notebooks", "/seed/"]
    assert any(m["name"] == notebooks["name"] for m in seed["volumeMounts"])
    volume = next(v for v in spec["volumes"] if v["name"] == notebooks["name"])
    assert find(
        objects, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], "frontend"
    )


def test_generated_configs_are_the_env_files(
    objects: list[Object], env_dir: Path, secret_env: dict[str, str]
) -> None:
    """ConfigMaps hold exactly the non-secret files' values; Secrets the secret files'."""
    loaded = load_env_files(env_dir)
    assert (
        generated(objects, "ConfigMap", "cassandra-config", "backend")["data"]
        == (loaded[".cassandra.env"])
    )
    assert (
        generated(objects, "ConfigMap", "hundi-config", "frontend")["data"]
        == (loaded[".hundi.env"])
    )
    secret = generated(objects, "Secret", "cassandra-reader", "frontend")
    assert decoded_secret_data(secret) == loaded[".secret.cassandra-reader.env"]
    assert (
        base64.b64decode(secret["data"]["CASSANDRA_PASSWORD"]).decode()
        == loaded[".secret.cassandra-reader.env"]["CASSANDRA_PASSWORD"]
    )


def test_an_image_registry_prefixes_only_hundis_images(kustomize: Path, env_dir: Path) -> None:
    objects = render(
        "prod", env_dir=env_dir, kustomize=kustomize, image_registry="reg.example:5000/"
    )
    images = {c["image"] for _, spec in workloads(objects) for c in containers(spec)}
    assert images == {
        "reg.example:5000/wunder/hundi:0.1.0",
        "reg.example:5000/wunder/hundi-jupyter:0.1.0",
        "reg.example:5000/wunder/kairosdb:0.1.0",
        "reg.example:5000/wunder/grafana:0.1.0",  # grafana/grafana:11.6.0 + Infinity
        "registry.k8s.io/kubectl:v1.33.0",  # the Cassandra backup/repair CronJobs
        "cassandra:5.0.6",
    }


@pytest.mark.slow
def test_command_line_validates_and_names_a_missing_file(kustomize: Path, tmp_path: Path) -> None:
    """`python -m hundi.deploy.kube` as `make k8s-validate` and `make cassandra` run it."""
    command = [sys.executable, "-m", "hundi.deploy.kube"]
    env = {**os.environ, "KUSTOMIZE": str(kustomize)}
    ok = subprocess.run(
        [*command, "validate", "--examples"], env=env, capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    counts = [len(render(name, examples=True, kustomize=kustomize)) for name in OVERLAYS]
    assert ok.stdout.splitlines() == [
        f"ok: overlay {name}: {count} objects valid for Kubernetes {KUBERNETES_VERSION}"
        for name, count in zip(OVERLAYS, counts, strict=True)
    ]
    missing = subprocess.run(
        [*command, "apply", "cassandra", "--env-dir", str(tmp_path)],
        env={**env, "DRY_RUN": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2
    assert f"{tmp_path / '.secret.cassandra.env'} is missing" in missing.stderr
    assert "Traceback" not in missing.stderr and missing.stdout == ""


def test_the_api_token_reaches_hundi_serve_and_grafanas_datasource(objects: list[Object]) -> None:
    """hundi serve listens on the pod network, so it requires HUNDI_API_TOKEN; Grafana's
    datasource sends the same Secret's token as a bearer header."""
    api = container(objects, "Deployment", "hundi-api", "hundi-api")
    assert "0.0.0.0" in api["args"]
    grafana = container(objects, "Deployment", "grafana", "grafana")
    for c, namespace in ((api, "backend"), (grafana, "frontend")):
        ref = env_of(c)["HUNDI_API_TOKEN"]["valueFrom"]["secretKeyRef"]
        secret = find(objects, "Secret", ref["name"], namespace)
        assert "HUNDI_API_TOKEN" in decoded_secret_data(secret)
    datasources = yaml.safe_load(
        (REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "hundi.yaml").read_text()
    )["datasources"]
    (hundi,) = datasources
    assert hundi["jsonData"]["httpHeaderName1"] == "Authorization"
    assert hundi["secureJsonData"]["httpHeaderValue1"] == "Bearer ${HUNDI_API_TOKEN}"


# --- metrics -----------------------------------------------------------------------------------

PROMETHEUS: Pod = ("monitoring", {"app.kubernetes.io/name": "prometheus"})


def test_prometheus_scrapes_the_collectors_and_the_api_with_the_token(
    objects: list[Object],
) -> None:
    """Annotated pods (prometheus.io/*) serve /metrics on a declared port that only Prometheus
    (namespace monitoring) may reach; off loopback the process requires HUNDI_API_TOKEN, so
    each gets it from the Secret."""
    targets = {("StatefulSet", "collectors", "collector"), ("Deployment", "hundi-api", "hundi-api")}
    for kind, name, container_name in targets:
        obj = find(objects, kind, name, "backend")
        annotations = obj["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        port = int(annotations["prometheus.io/port"])
        c = container(objects, kind, name, container_name)
        assert port in {p["containerPort"] for p in c["ports"]}, name
        ref = env_of(c)["HUNDI_API_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert "HUNDI_API_TOKEN" in decoded_secret_data(
            find(objects, "Secret", ref["name"], "backend")
        )
        assert can_talk(objects, PROMETHEUS, pod(objects, name), port), name
        assert not can_talk(objects, ("default", {"app": "anything"}), pod(objects, name), port)
        assert not can_talk(objects, pod(objects, "jupyter"), pod(objects, name), port) or (
            name == "hundi-api"  # Jupyter reads the API itself
        )
    args = container(objects, "StatefulSet", "collectors", "collector")["args"]
    assert args[args.index("--health-port") + 1] == "9100"
    assert args[args.index("--health-host") + 1] == "0.0.0.0"


# --- Cassandra roles (docs/deployment.md, "Cassandra roles") -----------------------------------

# workload -> the one Cassandra login Secret it may use
CASSANDRA_LOGINS = {
    ("StatefulSet", "cassandra", "backend"): "cassandra-admin",
    ("Job", "cassandra-bootstrap", "backend"): None,  # admin + every role's (creates them)
    ("StatefulSet", "collectors", "backend"): "cassandra-writer",
    ("StatefulSet", "collectors-b", "backend"): "cassandra-writer",  # the pair's member b
    ("Deployment", "hundi-api", "backend"): "cassandra-reader",
    ("Deployment", "jupyter", "frontend"): "cassandra-reader",
    ("Deployment", "kairosdb", "backend"): "cassandra-kairosdb",
    ("CronJob", "hundi-compact", "backend"): "cassandra-writer",  # rewrites and deletes chunks
}
ROLE_SECRETS = ("cassandra-admin", "cassandra-writer", "cassandra-reader", "cassandra-kairosdb")


def _secret_base(name: str) -> str:
    return name.rsplit("-", 1)[0]


def test_each_workload_logs_in_with_its_own_cassandra_role(objects: list[Object]) -> None:
    for obj, spec in workloads(objects):
        key = (obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))
        used = {
            _secret_base(name)
            for kind, name in references(spec)
            if kind == "Secret" and _secret_base(name) in ROLE_SECRETS
        }
        if key not in CASSANDRA_LOGINS:
            assert not used, key  # grafana: no Cassandra login at all
        elif CASSANDRA_LOGINS[key] is None:
            assert used == set(ROLE_SECRETS), key
        else:
            assert used == {CASSANDRA_LOGINS[key]}, key
            env = env_of(next(iter(spec["containers"])))
            for var in ("CASSANDRA_USER", "CASSANDRA_PASSWORD"):
                ref = env[var]["valueFrom"]["secretKeyRef"]
                assert _secret_base(ref["name"]) == CASSANDRA_LOGINS[key], (key, var)
                assert ref["key"] == var


def test_no_admin_login_in_the_frontend_and_the_example_is_not_the_builtin_role(
    objects: list[Object],
) -> None:
    frontend = {
        _secret_base(o["metadata"]["name"])
        for o in objects
        if o["kind"] == "Secret" and o["metadata"]["namespace"] == "frontend"
    }
    assert "cassandra-reader" in frontend
    assert not frontend & {"cassandra-admin", "cassandra-writer", "cassandra-kairosdb"}
    assert not [n for n in frontend if "credentials" in n]
    for name in ENV_FILES:
        if name.startswith(".secret.cassandra"):
            text = (REPO / ENV_FILES[name].example).read_text()
            assert "CASSANDRA_USER=cassandra\n" not in text, name


def test_bootstrap_job_sets_up_schema_and_roles_as_admin(objects: list[Object]) -> None:
    job = find(objects, "Job", "cassandra-bootstrap", "backend")
    spec = pod_spec(job)
    assert spec is not None
    (main,) = spec["containers"]
    assert main["args"][:2] == ["store", "roles"]
    assert main["args"][2].startswith("cassandra://cassandra-client.backend.svc.cluster.local")
    env = env_of(main)
    for var, secret in {
        "CASSANDRA_USER": "cassandra-admin",
        "CASSANDRA_WRITER_PASSWORD": "cassandra-writer",
        "CASSANDRA_READER_PASSWORD": "cassandra-reader",
        "CASSANDRA_KAIROSDB_PASSWORD": "cassandra-kairosdb",
    }.items():
        assert _secret_base(env[var]["valueFrom"]["secretKeyRef"]["name"]) == secret, var
    assert spec["restartPolicy"] == "OnFailure"  # retries until Cassandra answers
    assert can_talk(objects, pod(objects, "cassandra-bootstrap"), pod(objects, "cassandra"), 9042)
    assert not can_talk(
        objects, pod(objects, "cassandra-bootstrap"), pod(objects, "kairosdb"), 8080
    )


# --- heap rule and QoS ----------------------------------------------------------------------

GUARANTEED = {("StatefulSet", "cassandra"), ("Deployment", "kairosdb")}


def _qos(spec: Object) -> str:
    """The QoS class Kubernetes gives a pod spec (every container, init ones included)."""
    bounds = [c.get("resources") or {} for c in containers(spec)]
    if all(
        set(r.get("limits", {})) >= {"cpu", "memory"}
        and {k: r.get("requests", r["limits"]).get(k, r["limits"][k]) for k in ("cpu", "memory")}
        == {k: r["limits"][k] for k in ("cpu", "memory")}
        for r in bounds
    ):
        return "Guaranteed"
    return "Burstable" if any(r for r in bounds) else "BestEffort"


def test_cassandra_and_kairosdb_get_guaranteed_qos(objects: list[Object]) -> None:
    for obj, spec in workloads(objects):
        key = (obj["kind"], obj["metadata"]["name"])
        if key in GUARANTEED:
            assert _qos(spec) == "Guaranteed", key
        else:  # collectors, API, Jupyter, Grafana, the Job: Burstable by choice (docs)
            assert _qos(spec) == "Burstable", key


def test_the_cluster_heap_is_half_the_memory_limit(objects: list[Object], tmp_path: Path) -> None:
    """The rule docs/deployment.md states, computed by start.sh from the rendered pod: half the
    limit (at most 16G), and the env file's MAX_HEAP_SIZE (4G for compose) does not cap it."""
    cassandra = container(objects, "StatefulSet", "cassandra", "cassandra")
    env = env_of(cassandra)
    assert env["MAX_HEAP_SIZE"]["value"] == "" and env["HEAP_NEWSIZE"]["value"] == ""
    limit = cassandra["resources"]["limits"]["memory"]
    units = {"Gi": 1024**3, "Mi": 1024**2}
    limit_bytes = int(limit[:-2]) * units[limit[-2:]]
    result = subprocess.run(
        ["bash", str(DEPLOY / "k8s" / "base" / "cassandra" / "start.sh"), "heap"],
        env={
            "PATH": os.environ["PATH"],
            "CGROUP_ROOT": str(tmp_path),
            "MEMORY_LIMIT": str(limit_bytes),
            "MAX_HEAP_SIZE": env["MAX_HEAP_SIZE"]["value"],
            "HEAP_NEWSIZE": env["HEAP_NEWSIZE"]["value"],
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    heap_mib = min(limit_bytes // 1024**2 // 2, 16 * 1024)
    assert result.stdout.split() == [f"MAX_HEAP_SIZE={heap_mib}M", f"HEAP_NEWSIZE={heap_mib // 4}M"]


# --- seeds and topology ---------------------------------------------------------------------

STORAGE_CLASS = {"dev": "standard", "prod": "hundi-ssd"}


def test_at_least_two_seeds_that_exist_when_there_are_two_nodes(
    objects: list[Object], overlay: str
) -> None:
    sts = find(objects, "StatefulSet", "cassandra", "backend")
    replicas = sts["spec"]["replicas"]
    seeds = env_of(container(objects, "StatefulSet", "cassandra", "cassandra"))["CASSANDRA_SEEDS"]
    names = seeds["value"].split(",")
    assert len(names) == min(replicas, 2), overlay
    for ordinal, name in enumerate(names):
        assert name == f"cassandra-{ordinal}.cassandra.backend.svc.cluster.local"
        assert ordinal < replicas


def test_clients_use_the_ready_only_service_and_only_peers_see_unready_nodes(
    objects: list[Object],
) -> None:
    peer = find(objects, "Service", "cassandra", "backend")["spec"]
    client = find(objects, "Service", "cassandra-client", "backend")["spec"]
    assert peer["publishNotReadyAddresses"] is True
    assert client.get("publishNotReadyAddresses", False) is False
    assert client["selector"] == peer["selector"]
    assert [p["port"] for p in client["ports"]] == [9042]
    services = [o for o in objects if o["kind"] == "Service"]
    assert [
        o["metadata"]["name"] for o in services if o["spec"].get("publishNotReadyAddresses")
    ] == ["cassandra"]
    clients = 0
    for obj, spec in workloads(objects):
        for c in containers(spec):
            texts = [v.get("value", "") for v in c.get("env") or []] + c.get("args", [])
            for text in texts:
                if obj["metadata"]["name"] == "cassandra":
                    continue  # the nodes themselves: seeds on the peer service
                assert "cassandra.backend.svc" not in text, (obj["metadata"]["name"], text)
                clients += "cassandra-client.backend.svc.cluster.local:9042" in text
    # collectors (a and b), hundi-api, jupyter, kairosdb, bootstrap Job, compaction CronJob
    assert clients == 7


def test_racks_follow_the_nodes_zones(objects: list[Object], overlay: str) -> None:
    main = container(objects, "StatefulSet", "cassandra", "cassandra")
    env = env_of(main)
    assert env["CASSANDRA_ENDPOINT_SNITCH"]["value"] == "GossipingPropertyFileSnitch"
    assert env["NODE_ZONE"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['topology.kubernetes.io/zone']"
    )
    spec = pod_spec(find(objects, "StatefulSet", "cassandra", "backend"))
    assert spec is not None
    spread = spec.get("topologySpreadConstraints", [])
    if overlay == "prod":
        (zone,) = spread
        assert zone["topologyKey"] == "topology.kubernetes.io/zone"
        assert zone["maxSkew"] == 1 and zone["whenUnsatisfiable"] == "DoNotSchedule"
        assert zone["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": "cassandra"}
    # the replace ConfigMap (empty unless a node is being replaced) is mounted, optionally
    volume = next(v for v in spec["volumes"] if v["name"] == "replace")
    assert volume["configMap"] == {"name": "cassandra-replace", "optional": True}
    assert {"name": "replace", "mountPath": "/etc/cassandra-replace", "readOnly": True} in main[
        "volumeMounts"
    ]
    assert find(objects, "ConfigMap", "cassandra-replace", "backend").get("data") in (None, {})


def test_every_volume_names_its_storage_class(objects: list[Object], overlay: str) -> None:
    claims = [o["spec"] for o in objects if o["kind"] == "PersistentVolumeClaim"]
    for obj, _ in workloads(objects):
        claims += [t["spec"] for t in obj["spec"].get("volumeClaimTemplates", [])]
    # Cassandra data, collector spool (a and b), KairosDB queue, notebooks, Cassandra backups
    assert len(claims) == 6
    backups = [c for c in claims if c["accessModes"] == ["ReadWriteMany"]]
    assert len(backups) == (1 if overlay == "prod" else 0)
    for claim in backups:  # a shared volume needs a class that can be mounted by every node
        assert claim.get("storageClassName") == "hundi-backups"
    others = [c for c in claims if c not in backups]
    assert {c.get("storageClassName") for c in others} == {STORAGE_CLASS[overlay]}


def test_every_collector_shard_runs_as_an_a_b_pair(objects: list[Object], overlay: str) -> None:
    """Two StatefulSets (collectors, collectors-b) with the same pods, replica count and
    HUNDI_SHARDS, selecting only their own pods; pod N of each records shard N into the same
    stores; the pair kept apart by node and zone (required in prod), one pod down at a time
    (PodDisruptionBudget), and scheduled first (PriorityClass)."""
    a = find(objects, "StatefulSet", "collectors", "backend")
    b = find(objects, "StatefulSet", "collectors-b", "backend")
    count = REPLICAS[overlay]["collectors"]
    assert a["spec"]["replicas"] == b["spec"]["replicas"] == count
    pair = "hundi.wunder.dev/pair"
    assert a["spec"]["selector"]["matchLabels"][pair] == "a"
    assert b["spec"]["selector"]["matchLabels"][pair] == "b"
    for sts in (a, b):
        labels = sts["spec"]["template"]["metadata"]["labels"]
        assert labels[pair] == sts["spec"]["selector"]["matchLabels"][pair]
    env = [
        {
            e["name"]: e.get("value")
            for e in container(objects, "StatefulSet", name, "collector")["env"]
        }
        for name in ("collectors", "collectors-b")
    ]
    assert env[0]["HUNDI_SHARDS"] == env[1]["HUNDI_SHARDS"] == str(count)
    assert env[0]["HUNDI_STORE"] == env[1]["HUNDI_STORE"]
    args = [
        container(objects, "StatefulSet", n, "collector")["args"]
        for n in ("collectors", "collectors-b")
    ]
    assert args[0] == args[1] and "auto" in args[0]
    for sts in (a, b):
        spec = sts["spec"]["template"]["spec"]
        assert spec["priorityClassName"] == "hundi-collectors"
        anti = spec["affinity"]["podAntiAffinity"]
        terms = (
            anti["requiredDuringSchedulingIgnoredDuringExecution"]
            if overlay == "prod"
            else [
                t["podAffinityTerm"]
                for t in anti["preferredDuringSchedulingIgnoredDuringExecution"]
            ]
        )
        assert {t["topologyKey"] for t in terms} == {
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
        }
        for term in terms:  # the same shard's pods: same pod index, either member
            assert term["matchLabelKeys"] == ["apps.kubernetes.io/pod-index"]
            assert term["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": "collectors"}
    budget = find(objects, "PodDisruptionBudget", "collectors", "backend")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "collectors"}
    classes = {o["metadata"]["name"]: o for o in objects if o["kind"] == "PriorityClass"}
    priority = classes["hundi-collectors"]
    assert priority["value"] > 0 and not priority.get("globalDefault", False)
    # found by review: a pending collector preempted lower-priority pods, Cassandra's among them
    stores = classes["hundi-datastores"]
    assert stores["value"] > priority["value"] and not stores.get("globalDefault", False)
    for kind, name in (("StatefulSet", "cassandra"), ("Deployment", "kairosdb")):
        spec = find(objects, kind, name, "backend")["spec"]["template"]["spec"]
        assert spec["priorityClassName"] == "hundi-datastores", name
