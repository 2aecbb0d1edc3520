#!/usr/bin/env bash
# Pin every image of the prod overlay by digest: for each container image of the rendered
# overlay not yet pinned (`python -m hundi.deploy.kube pins` lists them), read the digest its tag
# points to now from the registry and write it into deploy/k8s/overlays/prod/kustomization.yaml
# (`kustomize edit set image NAME=NAME:TAG@sha256:...`), so a moved tag cannot change what runs.
# Digests are only ever read from a registry, never written by hand.
#
#   scripts/pin-images.sh            (then review the diff, `make k8s-validate k8s-pins`, commit)
#
# Needs `crane` (go-containerregistry) or `skopeo`, registry access (IMAGE_REGISTRY: where the
# wunder/* images were pushed, as for `make images`), kustomize (KUSTOMIZE or .tools/bin) and the
# repository's venv (PYTHON, default .venv/bin/python).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
kustomize="${KUSTOMIZE:-$root/.tools/bin/kustomize}"
overlay="$root/deploy/k8s/overlays/prod"

digest_of() {  # image reference -> sha256:... of what the registry serves for it now
    if command -v crane >/dev/null; then
        crane digest "$1"
    elif command -v skopeo >/dev/null; then
        skopeo inspect --format '{{.Digest}}' "docker://$1"
    else
        echo "pin-images: neither crane nor skopeo is installed" >&2
        return 2
    fi
}

[[ -x "$kustomize" ]] || { echo "pin-images: no kustomize at $kustomize (make k8s-tools)" >&2; exit 2; }
# the manifests and example env files of this repository (the one holding this script)
images="$(PATH="$(dirname "$kustomize"):$PATH" "$python" - "$root" <<'PY'
import sys
from pathlib import Path

from hundi.deploy import kube

root = Path(sys.argv[1])
kube.DEPLOY = root / "deploy"
print("\n".join(kube.unpinned_images(kube.render("prod", env_dir=root, examples=True))))
PY
)"
if [[ -z "$images" ]]; then
    echo "pin-images: every image of the prod overlay is already pinned"
    exit 0
fi
while read -r image; do
    name="${image%:*}"
    tag="${image##*:}"
    source="$image"
    if [[ "$name" == wunder/* && -n "${IMAGE_REGISTRY:-}" ]]; then
        source="$IMAGE_REGISTRY/$image"
    fi
    digest="$(digest_of "$source")"
    if [[ ! "$digest" =~ ^sha256:[0-9a-f]{64}$ ]]; then
        echo "pin-images: $source: no digest (got ${digest:-nothing})" >&2
        exit 1
    fi
    (cd "$overlay" && "$kustomize" edit set image "$name=$name:$tag@$digest")
    echo "pinned $name:$tag@$digest"
done <<< "$images"
