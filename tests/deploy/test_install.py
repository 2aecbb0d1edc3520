"""scripts/install.sh, the install recipe of the images, really run (no Docker engine needed).

The prod profile is installed the way the Dockerfile's build stage does it: from a directory
holding only what the build context admits (pyproject.toml, README.md, src, the script), into
a fresh venv, every package from uv.lock (uv's cache, filled by `make venv`, makes it seconds).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def context_copy(tmp_path: Path) -> Path:
    """What the Dockerfile copies into its build stage, nothing else."""
    build = tmp_path / "build"
    (build / "scripts").mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(REPO / name, build / name)
    for name in ("install.sh", "uv-requirements.txt"):
        shutil.copy(REPO / "scripts" / name, build / "scripts" / name)
    shutil.copytree(
        REPO / "src",
        build / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    return build


def run(*cmd: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_prod_profile_installs_a_working_non_editable_hundi(tmp_path: Path) -> None:
    build = context_copy(tmp_path)
    venv = tmp_path / "venv"
    script = build / "scripts" / "install.sh"
    installed = subprocess.run(
        [str(script), str(venv), "prod"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHON": sys.executable},
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    version = run(venv / "bin" / "hundi", "--version")
    assert version.returncode == 0 and version.stdout.startswith("hundi, version ")
    health = run(venv / "bin" / "hundi", "health", "--help")
    assert health.returncode == 0 and "--max-age" in health.stdout
    # a regular install: the package lives in the venv, not in the source tree it came from
    shutil.rmtree(build / "src")
    location = run(venv / "bin" / "python", "-c", "import hundi; print(hundi.__file__)")
    assert location.stdout.strip().startswith(str(venv)), location.stdout + location.stderr
    # runtime dependencies only: no test or notebook tools in the production venv
    extras = run(venv / "bin" / "python", "-c", "import pytest")
    assert extras.returncode != 0
    # the versions are uv.lock's, not whatever is newest today; no installer left in the venv
    locked = tomllib.loads((REPO / "uv.lock").read_text())["package"]
    pins = {p["name"]: p["version"] for p in locked if p["name"] in {"msgspec", "pyarrow"}}
    versions = run(
        venv / "bin" / "python",
        "-c",
        "import importlib.metadata as m; print(m.version('msgspec'), m.version('pyarrow'))",
    )
    assert versions.stdout.split() == [pins["msgspec"], pins["pyarrow"]], versions.stderr
    assert run(venv / "bin" / "python", "-c", "import pip").returncode != 0
    # exactly hundi and its locked runtime dependencies: no pip, setuptools or wheel (uv creates
    # the venv without them and none is a runtime dependency), nor their commands
    installed = run(
        venv / "bin" / "python",
        "-c",
        "import importlib.metadata as m; print(*(d.metadata['Name'] for d in m.distributions()))",
    )
    names = {n.lower().replace("_", "-") for n in installed.stdout.split()}
    assert names == runtime_closure() | {"hundi"}, installed.stderr
    for tool in ("pip", "setuptools", "wheel", "pkg_resources"):
        assert run(venv / "bin" / "python", "-c", f"import {tool}").returncode != 0, tool
    assert not [p.name for p in (venv / "bin").iterdir() if p.name.startswith(("pip", "wheel"))]
    config = (venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in config  # the image's pip stays outside
    # idempotent: a second run only confirms what is there
    again = run(script, venv, "prod", "deps", timeout=600)
    assert again.returncode == 0, again.stderr
    assert run(venv / "bin" / "hundi", "--version").returncode == 0
    # a dependency added to pyproject.toml without relocking is refused, not resolved today
    pyproject = build / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"click>=8.1",', '"click>=8.1", "six",'))
    drifted = run(script, venv, "prod", "deps", timeout=600)
    assert drifted.returncode != 0
    said = " ".join(drifted.stderr.split())
    assert "`uv.lock` needs to be updated, but `--locked` was provided" in said, said
    assert "uv.lock no longer matches pyproject.toml, run 'make deps-upgrade'" in said


def runtime_closure() -> set[str]:
    """hundi's runtime dependencies in uv.lock, transitively (no extras)."""
    packages = {p["name"]: p for p in tomllib.loads((REPO / "uv.lock").read_text())["package"]}
    found: set[str] = set()
    todo = [d["name"] for d in packages["hundi"].get("dependencies", [])]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += [d["name"] for d in packages[name].get("dependencies", [])]
    return found


def test_every_locked_runtime_artifact_has_a_hash() -> None:
    packages = {p["name"]: p for p in tomllib.loads((REPO / "uv.lock").read_text())["package"]}
    closure = runtime_closure()
    assert closure and not closure & {"pip", "setuptools", "wheel"}
    for name in closure:
        artifacts = [*packages[name].get("wheels", []), packages[name].get("sdist", {})]
        artifacts = [a for a in artifacts if a]
        assert artifacts and all(a["hash"].startswith("sha256:") for a in artifacts), name


@pytest.mark.slow
def test_prod_install_refuses_a_package_whose_hash_differs_from_the_lock(tmp_path: Path) -> None:
    """The hashes in uv.lock are checked at install: one wrong hash and nothing is installed."""
    build = context_copy(tmp_path)
    lock = build / "uv.lock"
    packages = {p["name"]: p for p in tomllib.loads(lock.read_text())["package"]}
    dotenv = packages["python-dotenv"]  # a runtime dependency (hundi.config reads .env files)
    text = lock.read_text()
    for artifact in [*dotenv["wheels"], dotenv["sdist"]]:
        assert text.count(artifact["hash"]) == 1
        text = text.replace(artifact["hash"], "sha256:" + "0" * 64)
    lock.write_text(text)
    venv = tmp_path / "venv"
    result = subprocess.run(
        [str(build / "scripts" / "install.sh"), str(venv), "prod", "bootstrap", "deps"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert f"Hash mismatch for `python-dotenv=={dotenv['version']}`" in result.stderr
    assert run(venv / "bin" / "python", "-c", "import dotenv").returncode != 0


def test_install_script_errors_name_the_problem(tmp_path: Path) -> None:
    script = REPO / "scripts" / "install.sh"
    usage = run(script)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    profile = run(script, tmp_path / "v", "staging")
    assert profile.returncode == 2
    assert "unknown profile 'staging' (expected prod, runtime, dev or jupyter)" in profile.stderr
    no_venv = run(script, tmp_path / "v", "prod", "deps")
    assert no_venv.returncode == 2
    assert f"no venv at {tmp_path / 'v'} (run the bootstrap step first" in no_venv.stderr
    step = run(script, tmp_path / "v", "prod", "wheel")
    assert step.returncode == 2 and "unknown step 'wheel'" in step.stderr


@pytest.mark.slow
def test_dev_editable_install_follows_the_checkout_mounted_over_it(tmp_path: Path) -> None:
    """The dev image installs hundi editable from /src, then compose bind-mounts the developer's
    checkout over /src, hiding what the build copied. What points the venv at the source must
    live in the venv (site-packages), so the mounted checkout is what runs."""
    checkout = context_copy(tmp_path)  # the image's /src
    venv = tmp_path / "venv"
    installed = subprocess.run(
        [str(checkout / "scripts" / "install.sh"), str(venv), "dev", "bootstrap", "self"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # the bind mount: the image's copy disappears, another checkout shows at the same path
    checkout.rename(tmp_path / "hidden-by-the-mount")
    mounted = context_copy(tmp_path)
    assert mounted == checkout
    (mounted / "src" / "hundi" / "_mounted_edit.py").write_text("EDITED = True\n")
    found = run(
        venv / "bin" / "python",
        "-c",
        "import hundi, hundi._mounted_edit as m; print(hundi.__file__, m.EDITED)",
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == [str(mounted / "src" / "hundi" / "__init__.py"), "True"]
