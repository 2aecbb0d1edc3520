"""Render, validate and apply hundi's Kubernetes manifests (``deploy/k8s``, kustomize).

The ConfigMaps and Secrets come from the env files at the repository root. They are checked
first (:mod:`hundi.deploy.envfiles`: a missing file or key is one message naming both), then
written, as python-dotenv read them, into ``env/`` of a private temporary copy of ``deploy/``
that kustomize builds. So kustomize sees exactly the values hundi itself would read, the files
never need to sit inside the manifests folder, and CI can render from the committed
``*.example`` templates (``examples=True``).

    python -m hundi.deploy.kube render --overlay dev [--component cassandra] [--examples]
    python -m hundi.deploy.kube validate [--overlay dev] [--examples]
    python -m hundi.deploy.kube apply cassandra --overlay dev     # DRY_RUN=1 prints instead
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import yaml

from hundi.config import ConfigError
from hundi.deploy.envfiles import load_env_files, secret_values

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
KUSTOMIZE_VERSION = "v5.7.1"  # what `make k8s-tools` installs
KUBERNETES_VERSION = "1.33.0"  # the API the manifests are validated against (strict)
OVERLAYS = ("dev", "prod")
NAMESPACES = ("backend", "frontend")
COMPONENTS = (
    "backend-namespace",
    "frontend-namespace",
    "cassandra",
    "kairosdb",
    "hundi-api",
    "collectors",
    "grafana",
    "jupyter",
)
COMPONENT_LABEL = "app.kubernetes.io/component"
# The env files deploy/k8s/base/kustomization.yaml generates ConfigMaps/Secrets from.
K8S_ENV_FILES = (
    ".hundi.env",
    ".cassandra.env",
    ".kairosdb.env",
    ".jupyter.env",
    ".secret.cassandra.env",
    ".secret.cassandra-writer.env",
    ".secret.cassandra-reader.env",
    ".secret.cassandra-kairosdb.env",
    ".secret.grafana.env",
    ".secret.jupyter.env",
    ".secret.hundi.env",
)

Object = dict[str, Any]


class DeployError(ConfigError):
    """Rendering or applying failed; the message says what to do and never holds a secret."""


def find_kustomize(environ: Mapping[str, str] | None = None, repo: Path = REPO) -> Path:
    """``$KUSTOMIZE``, else ``.tools/bin/kustomize`` (``make k8s-tools``)."""
    environ = os.environ if environ is None else environ
    given = environ.get("KUSTOMIZE", "").strip()
    if given:
        path = Path(given)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise DeployError(f"KUSTOMIZE={given} is not an executable file")
        return path
    local = repo / ".tools" / "bin" / "kustomize"
    if local.is_file() and os.access(local, os.X_OK):
        return local
    raise DeployError(
        f"kustomize not found at {local}: run `make k8s-tools` (installs kustomize "
        f"{KUSTOMIZE_VERSION} with go) or set KUSTOMIZE=/path/to/kustomize"
    )


def _env_file_text(name: str, values: Mapping[str, str]) -> str:
    """KEY=value lines as kustomize reads them (literally: no quotes, no continuation)."""
    lines = []
    for key, value in values.items():
        if "\n" in value or "\r" in value:
            raise DeployError(f"{name}: {key} spans several lines; kustomize takes one-line values")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for value in secrets:
        if len(value) >= 3:
            text = text.replace(value, "***")
    return text


def render(
    overlay: str,
    component: str | None = None,
    *,
    env_dir: Path = REPO,
    examples: bool = False,
    kustomize: Path | None = None,
    image_registry: str | None = None,
) -> list[Object]:
    """The overlay's objects (only ``component``'s and what they reference, when given).

    ``image_registry`` (e.g. ``registry.example:5000``) prefixes hundi's own images
    (``wunder/...``, pushed there by ``make images IMAGE_REGISTRY=...``); public images stay."""
    if overlay not in OVERLAYS:
        raise DeployError(f"unknown overlay {overlay!r}; choose from {', '.join(OVERLAYS)}")
    if component is not None and component not in COMPONENTS:
        raise DeployError(f"unknown component {component!r}; choose from {', '.join(COMPONENTS)}")
    loaded = load_env_files(env_dir, K8S_ENV_FILES, examples=examples)
    secrets = secret_values(loaded).values()
    binary = kustomize or find_kustomize()
    with tempfile.TemporaryDirectory(prefix="hundi-k8s-") as tmp:  # mode 700
        tree = Path(tmp) / "deploy"
        shutil.copytree(DEPLOY / "k8s", tree / "k8s", ignore=shutil.ignore_patterns("env"))
        shutil.copytree(DEPLOY / "grafana", tree / "grafana")
        env = tree / "k8s" / "env"
        env.mkdir()
        for name, values in loaded.items():
            target = env / name
            target.write_text(_env_file_text(name, values))
            target.chmod(0o600)
        result = subprocess.run(
            [
                str(binary),
                "build",
                "--load-restrictor",
                "LoadRestrictionsNone",
                str(tree / "k8s" / "overlays" / overlay),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        message = _scrub(result.stderr.strip() or result.stdout.strip(), secrets)
        raise DeployError(f"kustomize build of overlay {overlay} failed:\n{message}")
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    if image_registry:
        _prefix_images(objects, image_registry.rstrip("/"))
    return objects if component is None else select(objects, component)


def _prefix_images(objects: list[Object], registry: str) -> None:
    for obj in objects:
        spec = pod_spec(obj)
        for container in containers(spec) if spec else ():
            if container["image"].startswith("wunder/"):
                container["image"] = f"{registry}/{container['image']}"


def _labels(obj: Object) -> dict[str, str]:
    labels: dict[str, str] = obj.get("metadata", {}).get("labels") or {}
    return labels


def pod_spec(obj: Object) -> Object | None:
    """The pod spec of a workload (Deployment, StatefulSet, Job, ...), else None."""
    spec = obj.get("spec") or {}
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
    if obj.get("kind") == "Pod":
        return spec if isinstance(spec, dict) else None
    return template.get("spec") if isinstance(template, dict) else None


def containers(spec: Object) -> Iterator[Object]:
    """Init and regular containers of a pod spec."""
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def references(spec: Object) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret a pod spec uses."""
    found: set[tuple[str, str]] = set()
    for container in containers(spec):
        for source in container.get("envFrom") or []:
            if "configMapRef" in source:
                found.add(("ConfigMap", source["configMapRef"]["name"]))
            if "secretRef" in source:
                found.add(("Secret", source["secretRef"]["name"]))
        for var in container.get("env") or []:
            value_from = var.get("valueFrom") or {}
            if "configMapKeyRef" in value_from:
                found.add(("ConfigMap", value_from["configMapKeyRef"]["name"]))
            if "secretKeyRef" in value_from:
                found.add(("Secret", value_from["secretKeyRef"]["name"]))
    for volume in spec.get("volumes") or []:
        if "configMap" in volume:
            found.add(("ConfigMap", volume["configMap"]["name"]))
        if "secret" in volume:
            found.add(("Secret", volume["secret"]["secretName"]))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                found.add(("ConfigMap", source["configMap"]["name"]))
            if "secret" in source:
                found.add(("Secret", source["secret"]["name"]))
    return found


def select(objects: list[Object], component: str) -> list[Object]:
    """One component's objects plus the ConfigMaps and Secrets its pods use."""
    if component.endswith("-namespace"):
        namespace = component.removesuffix("-namespace")
        return [
            obj
            for obj in objects
            if _labels(obj).get(COMPONENT_LABEL) == "namespaces"
            and (obj["metadata"].get("namespace") or obj["metadata"]["name"]) == namespace
        ]
    chosen = [obj for obj in objects if _labels(obj).get(COMPONENT_LABEL) == component]
    wanted: set[tuple[str, str, str]] = set()
    for obj in chosen:
        spec = pod_spec(obj)
        if spec is not None:
            namespace = obj["metadata"].get("namespace", "")
            wanted |= {(kind, namespace, name) for kind, name in references(spec)}
    extra = [
        obj
        for obj in objects
        if obj not in chosen
        and (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]) in wanted
    ]
    return extra + chosen


def validate(objects: Iterable[Object], version: str = KUBERNETES_VERSION) -> None:
    """Check every object against the Kubernetes OpenAPI schema of ``version`` (strict: an
    unknown field is an error), offline; one DeployError lists every invalid object."""
    import kubernetes_validate

    problems = []
    for obj in objects:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            problems.append(f"{where}: {exc.message} (at {path or 'top level'})")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{where}: no schema for {obj.get('apiVersion')} in Kubernetes {version}"
            )
    if problems:
        raise DeployError("invalid manifests:\n" + "\n".join(problems))


# An image reference pinned to its content: a tag can be moved to other bytes, a digest cannot.
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def unpinned_images(objects: Iterable[Object]) -> list[str]:
    """The container images of ``objects`` not pinned by digest, sorted, each once."""
    found = {
        container["image"]
        for obj in objects
        if (spec := pod_spec(obj)) is not None
        for container in containers(spec)
        if not _DIGEST.search(container["image"])
    }
    return sorted(found)


def to_yaml(objects: Iterable[Object]) -> str:
    return yaml.safe_dump_all(list(objects), sort_keys=False)


def _kubectl() -> str:
    kubectl = shutil.which(os.environ.get("KUBECTL", "kubectl"))
    if kubectl is None:
        raise DeployError(
            "kubectl not found: install it (https://kubernetes.io/docs/tasks/tools/) and "
            "point it at your cluster, or run with DRY_RUN=1 to print the manifests"
        )
    context = subprocess.run(
        [kubectl, "config", "current-context"], capture_output=True, text=True, check=False
    )
    if context.returncode != 0 or not context.stdout.strip():
        raise DeployError(
            "kubectl has no current context: `kubectl config use-context <name>` "
            "(or set KUBECONFIG), or run with DRY_RUN=1 to print the manifests"
        )
    return kubectl


def apply(
    component: str,
    overlay: str = "dev",
    *,
    env_dir: Path = REPO,
    dry_run: bool | None = None,
    image_registry: str | None = None,
) -> str:
    """Render ``component``, validate it and pipe it to ``kubectl apply -f -``; with
    ``dry_run`` (default: ``DRY_RUN=1``) return the YAML instead of applying it."""
    objects = render(overlay, component, env_dir=env_dir, image_registry=image_registry)
    validate(objects)
    if dry_run is None:
        dry_run = os.environ.get("DRY_RUN", "") not in ("", "0")
    text = to_yaml(objects)
    if dry_run:
        return text
    kubectl = _kubectl()
    if not component.endswith("-namespace"):
        for namespace in sorted({o["metadata"]["namespace"] for o in objects}):
            probe = subprocess.run(
                [kubectl, "get", "namespace", namespace], capture_output=True, check=False
            )
            if probe.returncode != 0:
                raise DeployError(
                    f"namespace {namespace} does not exist (or the cluster is unreachable): "
                    f"run `make {namespace}-namespace` first"
                )
    # Server-side apply: no last-applied annotation, so a large ConfigMap (dashboards) fits.
    result = subprocess.run(
        [kubectl, "apply", "--server-side", "--field-manager=hundi", "-f", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DeployError(f"kubectl apply of {component} failed:\n{result.stderr.strip()}")
    return result.stdout


def decoded_secret_data(obj: Object) -> dict[str, str]:
    """A Secret's values in clear text (``data`` is base64, ``stringData`` is not)."""
    data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    return data | dict(obj.get("stringData") or {})


# --- command line -----------------------------------------------------------------------------

_env_dir = click.option(
    "--env-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=REPO,
    show_default="repository root",
    help="Directory holding the env files.",
)
_registry = click.option(
    "--image-registry",
    envvar="IMAGE_REGISTRY",
    default=None,
    help="Registry holding the wunder/* images (default: none, images loaded into the cluster).",
)
_examples = click.option(
    "--examples", is_flag=True, help="Render from the committed *.example templates (CI)."
)


def _run(action: Callable[[], None]) -> None:
    try:
        action()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@click.group()
def main() -> None:
    """hundi's Kubernetes manifests (deploy/k8s)."""


@main.command("render")
@click.option("--overlay", type=click.Choice(OVERLAYS), default="dev", show_default=True)
@click.option("--component", type=click.Choice(COMPONENTS), help="Only this component.")
@_env_dir
@_examples
@_registry
def render_command(
    overlay: str, component: str | None, env_dir: Path, examples: bool, image_registry: str | None
) -> None:
    """Print the rendered YAML."""

    def show() -> None:
        objects = render(
            overlay, component, env_dir=env_dir, examples=examples, image_registry=image_registry
        )
        click.echo(to_yaml(objects), nl=False)

    _run(show)


@main.command("validate")
@click.option("--overlay", type=click.Choice(OVERLAYS), help="One overlay (default: all).")
@_env_dir
@_examples
def validate_command(overlay: str | None, env_dir: Path, examples: bool) -> None:
    """Render and check every object against the Kubernetes schemas, offline."""

    def check() -> None:
        for name in [overlay] if overlay else OVERLAYS:
            objects = render(name, env_dir=env_dir, examples=examples)
            validate(objects)
            click.echo(
                f"ok: overlay {name}: {len(objects)} objects valid "
                f"for Kubernetes {KUBERNETES_VERSION}"
            )

    _run(check)


@main.command("pins")
@click.option("--overlay", type=click.Choice(OVERLAYS), default="prod", show_default=True)
@_env_dir
@_examples
def pins_command(overlay: str, env_dir: Path, examples: bool) -> None:
    """Fail (one line, exit 1) while an image of the overlay is not pinned by digest
    (scripts/pin-images.sh pins them where a registry is reachable)."""

    def check() -> None:
        missing = unpinned_images(render(overlay, env_dir=env_dir, examples=examples))
        if missing:
            click.echo(
                f"error: overlay {overlay}: {len(missing)} image(s) not pinned by digest "
                f"({', '.join(missing)}): run scripts/pin-images.sh where the registry is "
                "reachable",
                err=True,
            )
            sys.exit(1)
        click.echo(f"ok: overlay {overlay}: every image pinned by digest")

    _run(check)


@main.command("apply")
@click.argument("component", type=click.Choice(COMPONENTS))
@click.option("--overlay", type=click.Choice(OVERLAYS), default="dev", show_default=True)
@_env_dir
@_registry
def apply_command(component: str, overlay: str, env_dir: Path, image_registry: str | None) -> None:
    """Apply COMPONENT to the current kubectl context (DRY_RUN=1: print it instead)."""
    _run(
        lambda: click.echo(
            apply(component, overlay, env_dir=env_dir, image_registry=image_registry), nl=False
        )
    )


if __name__ == "__main__":
    main()
