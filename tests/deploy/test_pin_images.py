"""Images pinned by digest in the prod overlay: the check (`make k8s-pins`) and the script
that pins them (scripts/pin-images.sh), here with a stand-in `crane` (no registry access)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hundi.deploy.kube import REPO, DeployError, find_kustomize, render, unpinned_images

pytestmark = pytest.mark.slow

IMAGES = {
    "cassandra:5.0.6",
    "registry.k8s.io/kubectl:v1.33.0",
    "wunder/grafana:0.1.0",
    "wunder/hundi-jupyter:0.1.0",
    "wunder/hundi:0.1.0",
    "wunder/kairosdb:0.1.0",
}
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def kustomize() -> Path:
    try:
        return find_kustomize()
    except DeployError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def fake_registry(tmp_path: Path, answer: str) -> dict[str, str]:
    """PATH with a `crane` that answers ``answer`` to `crane digest IMAGE`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    crane = bin_dir / "crane"
    crane.write_text(f'#!/bin/sh\n[ "$1" = digest ] && echo "{answer}"\n')
    crane.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def repo_copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "deploy", root / "deploy")
    shutil.copytree(REPO / "scripts", root / "scripts")
    for example in REPO.glob(".*.example"):
        shutil.copy(example, root / example.name)
    return root


def run_script(
    root: Path, env: dict[str, str], kustomize: Path
) -> subprocess.CompletedProcess[str]:
    env = {**env, "PYTHON": sys.executable, "KUSTOMIZE": str(kustomize)}
    return subprocess.run(
        ["bash", str(root / "scripts" / "pin-images.sh")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_prod_overlay_is_not_pinned_yet_and_the_check_says_so(kustomize: Path) -> None:
    """No registry here: every image is still a tag, and `pins` fails naming each one."""
    assert set(unpinned_images(render("prod", examples=True, kustomize=kustomize))) == IMAGES
    env = {**os.environ, "KUSTOMIZE": str(kustomize)}
    done = subprocess.run(
        [sys.executable, "-m", "hundi.deploy.kube", "pins", "--examples"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "6 image(s) not pinned by digest" in done.stderr


def test_the_script_pins_every_image_with_the_registry_digest(
    tmp_path: Path, kustomize: Path
) -> None:
    root = repo_copy(tmp_path)
    done = run_script(root, fake_registry(tmp_path, DIGEST), kustomize)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("pinned ") == len(IMAGES)
    overlay = (root / "deploy/k8s/overlays/prod/kustomization.yaml").read_text()
    assert overlay.count(f"digest: {DIGEST}") == len(IMAGES)
    again = run_script(root, fake_registry(tmp_path / "again", "unused"), kustomize)
    assert again.returncode == 0 and "already pinned" in again.stdout, again.stderr


def test_a_registry_answer_that_is_no_digest_pins_nothing(tmp_path: Path, kustomize: Path) -> None:
    root = repo_copy(tmp_path)
    before = (root / "deploy/k8s/overlays/prod/kustomization.yaml").read_text()
    done = run_script(root, fake_registry(tmp_path, "UNAUTHORIZED"), kustomize)
    assert done.returncode == 1
    assert "no digest (got UNAUTHORIZED)" in done.stderr
    assert (root / "deploy/k8s/overlays/prod/kustomization.yaml").read_text() == before


def test_unpinned_images_ignores_pinned_ones() -> None:
    pod = {"kind": "Pod", "spec": {"containers": [
        {"name": "a", "image": f"wunder/hundi:0.1.0@{DIGEST}"},
        {"name": "b", "image": "cassandra:5.0.6"},
    ]}}  # fmt: skip
    assert unpinned_images([pod]) == ["cassandra:5.0.6"]
