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
