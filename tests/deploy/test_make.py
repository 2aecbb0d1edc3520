"""The make targets a developer types, run as they would run them (real make, real debugpy).

No target here may touch the developer's own files: env files come from a temporary ENV_DIR,
VS Code files go to a temporary VSCODE_DIR, and nothing reaches a Docker engine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hundi.deploy.envfiles import ENV_FILES

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Every command the issue names (make help must list each one).
ISSUE_TARGETS = (
    "backend-namespace",
    "frontend-namespace",
    "cassandra",
    "kairosdb",
    "hundi-venv-install",
    "hundi-venv-bootstrap",
    "hundi-install",
    "hundi-vscode-bootstrap",
    "hundi-up",
    "hundi-debug",
    "grafana",
    "jupyter-deploy",
    "collectors",
    "help",
)
MAKEFILES = ("Makefile", "deploy/k8s/k8s.mk", "deploy/grafana/grafana.mk")


def make(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """``make`` in the repository with this interpreter's venv, never rebuilding it."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed")
    return subprocess.run(
        ["make", "--no-print-directory", f"VENV={VENV}", "-o", f"{VENV}/bin/hundi", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )


def help_targets() -> dict[str, str]:
    result = make("help")
    assert result.returncode == 0, result.stderr
    targets = {}
    for line in ANSI.sub("", result.stdout).splitlines():
        name, _, text = line.strip().partition(" ")
        targets[name] = text.strip()
    return targets


def test_help_lists_every_target_the_issue_names() -> None:
    listed = help_targets()
    missing = [t for t in ISSUE_TARGETS if t not in listed]
    assert not missing, f"make help does not list {missing}"
    assert all(listed[t] for t in ISSUE_TARGETS)


def test_help_lists_every_target_of_every_included_makefile() -> None:
    listed = help_targets()
    for name in MAKEFILES:
        path = REPO / name
        if not path.exists():
            continue
        rules = re.findall(r"^([a-zA-Z0-9][a-zA-Z0-9_-]*):(?!=)", path.read_text(), re.M)
        undocumented = sorted(set(rules) - set(listed))
        assert not undocumented, f"{name}: targets without a `## help` text: {undocumented}"


def filled_env_dir(directory: Path) -> Path:
    """Every env file the dev stack reads, from its template, with test values for secrets."""
    directory.mkdir()
    for spec in ENV_FILES.values():
        text = (REPO / spec.example).read_text()
        for key in spec.required:
            text = re.sub(rf"^{key}=.*$", f"{key}=test-value-{key.lower()}", text, flags=re.M)
        (directory / spec.name).write_text(text)
    return directory


def fake_compose(tmp_path: Path) -> Path:
    """Stands in for `docker compose`, printing what it was asked (no engine here or in CI)."""
    script = tmp_path / "compose"
    script.write_text('#!/bin/sh\necho "compose $* env_dir=$HUNDI_ENV_DIR uid=$HUNDI_UID"\n')
    script.chmod(0o755)
    return script


@pytest.mark.slow
def test_hundi_up_names_the_missing_file_and_key(tmp_path: Path) -> None:
    env_dir = filled_env_dir(tmp_path / "env")
    (env_dir / ".secret.jupyter.env").unlink()
    grafana = env_dir / ".secret.grafana.env"
    grafana.write_text("# admin password forgotten\n")
    cassandra = env_dir / ".secret.cassandra.env"
    secret = "s3cret-value-never-echoed"
    cassandra.write_text(f"CASSANDRA_USER=hundi\nCASSANDRA_PASSWORD={secret}\n")
    result = make(
        "hundi-up", f"ENV_DIR={env_dir}", f"COMPOSE={fake_compose(tmp_path)}", timeout=120
    )
    assert result.returncode != 0
    assert f"{grafana}: GF_SECURITY_ADMIN_PASSWORD is not set" in result.stderr
    assert f"{env_dir / '.secret.jupyter.env'} is missing" in result.stderr
    assert "JUPYTER_TOKEN" in result.stderr
    assert secret not in result.stdout + result.stderr
    assert "compose up" not in result.stdout  # nothing started


@pytest.mark.slow
def test_hundi_up_refuses_a_template_placeholder_secret(tmp_path: Path) -> None:
    env_dir = filled_env_dir(tmp_path / "env")
    (env_dir / ".secret.cassandra.env").write_text(
        "CASSANDRA_USER=cassandra\nCASSANDRA_PASSWORD=change-me\n"
    )
    result = make("hundi-up", f"ENV_DIR={env_dir}", f"COMPOSE={fake_compose(tmp_path)}")
    assert result.returncode != 0
    assert "CASSANDRA_PASSWORD is empty or still the template's placeholder" in result.stderr


@pytest.mark.slow
def test_hundi_up_with_complete_env_files_starts_compose_with_them(tmp_path: Path) -> None:
    env_dir = filled_env_dir(tmp_path / "env")
    result = make("hundi-up", f"ENV_DIR={env_dir}", f"COMPOSE={fake_compose(tmp_path)}")
    assert result.returncode == 0, result.stderr
    assert f"compose up --detach --build env_dir={env_dir} uid={os.getuid()}" in result.stdout


def test_vscode_bootstrap_writes_json_and_keeps_the_users_keys(tmp_path: Path) -> None:
    folder = tmp_path / ".vscode"
    folder.mkdir()
    (folder / "settings.json").write_text(
        '{\n  // my own\n  "editor.fontSize": 15,\n  "[python]": {"editor.tabSize": 4,},\n}\n'
    )
    (folder / "launch.json").write_text(
        json.dumps({"version": "0.2.0", "configurations": [{"name": "mine", "type": "node"}]})
    )
    for _ in range(2):  # idempotent: a second run changes nothing
        result = make("hundi-vscode-bootstrap", f"VSCODE_DIR={folder}")
        assert result.returncode == 0, result.stderr
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["editor.fontSize"] == 15
    assert settings["[python]"]["editor.tabSize"] == 4
    assert settings["[python]"]["editor.defaultFormatter"] == "charliermarsh.ruff"
    assert settings["python.defaultInterpreterPath"] == "${workspaceFolder}/.venv/bin/python"
    assert settings["python.testing.pytestEnabled"] is True
    launch = json.loads((folder / "launch.json").read_text())
    names = [c["name"] for c in launch["configurations"]]
    assert "mine" in names and len(names) == len(set(names)) == 4
    attach = next(c for c in launch["configurations"] if "dev container" in c["name"])
    assert attach["request"] == "attach"
    assert attach["connect"] == {"host": "localhost", "port": 5678}
    assert attach["pathMappings"] == [{"localRoot": "${workspaceFolder}", "remoteRoot": "/src"}]
    assert any(c.get("program") == "${file}" for c in launch["configurations"])
    extensions = json.loads((folder / "extensions.json").read_text())
    assert {"ms-python.debugpy", "charliermarsh.ruff"} <= set(extensions["recommendations"])


def test_vscode_bootstrap_refuses_a_broken_file_without_writing(tmp_path: Path) -> None:
    folder = tmp_path / ".vscode"
    folder.mkdir()
    (folder / "launch.json").write_text("{not json")
    result = make("hundi-vscode-bootstrap", f"VSCODE_DIR={folder}")
    assert result.returncode != 0
    assert f"{folder / 'launch.json'}: not readable as JSON" in result.stderr
    assert not (folder / "settings.json").exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_hundi_debug_local_runs_the_file_with_its_args_under_debugpy(tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "debugged.py"
    script.write_text(
        "import sys\n"
        "import psutil\n"
        "listening = any(\n"
        "    c.status == psutil.CONN_LISTEN and c.laddr.port == int(sys.argv[1])\n"
        "    for c in psutil.net_connections(kind='tcp')\n"
        ")\n"
        "print('debugpy' in sys.modules, listening, sys.argv[2:])\n"
    )
    result = make(
        "hundi-debug",
        "where=local",
        "wait=no",
        f"port={port}",
        f"file={script}",
        f"args={port} a b",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True True ['a', 'b']"
    assert f"on 0.0.0.0:{port}" in result.stderr


def test_hundi_debug_says_what_is_wrong(tmp_path: Path) -> None:
    no_file = make("hundi-debug", "where=local", "wait=no")
    assert no_file.returncode != 0 and "give file=<python file>" in no_file.stderr
    outside = tmp_path / "x.py"
    outside.write_text("print(1)\n")
    result = make("hundi-debug", f"file={outside}", "COMPOSE=true")
    assert result.returncode != 0
    assert "outside the repository, which the container mounts at /src" in result.stderr


def test_images_builds_each_target_under_the_shared_names() -> None:
    result = make("--dry-run", "images", "IMAGE_REGISTRY=registry.example:5000", "IMAGE_TAG=1.2")
    assert result.returncode == 0, result.stderr
    builds = [line for line in result.stdout.splitlines() if line.startswith("docker build")]
    assert builds == [
        "docker build --target prod --tag registry.example:5000/wunder/hundi:1.2 .",
        "docker build --target dev --tag registry.example:5000/wunder/hundi-dev:1.2 .",
        "docker build --target jupyter --tag registry.example:5000/wunder/hundi-jupyter:1.2 .",
        "docker build --file deploy/kairosdb/Dockerfile "
        "--tag registry.example:5000/wunder/kairosdb:1.2 .",
        "docker build --file deploy/grafana/Dockerfile "
        "--tag registry.example:5000/wunder/grafana:1.2 .",
    ]
