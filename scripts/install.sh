#!/usr/bin/env bash
# The one install recipe of hundi: the Dockerfile's build stages and `make venv` (CI) both run it,
# so a change that breaks the image's install breaks CI too.
#
#   scripts/install.sh VENV PROFILE [STEP...]
#
# PROFILE  prod     runtime dependencies, hundi as a regular (non-editable) wheel install
#          dev      editable hundi with the dev and notebooks extras (pytest, ruff, mypy, debugpy,
#                   JupyterLab): the development venv and the image's dev target
#          jupyter  hundi with the notebooks extra (JupyterLab), non-editable
# STEP     bootstrap  create VENV (if missing) with current pip, setuptools and wheel
#          deps       third-party dependencies of PROFILE only (read from pyproject.toml)
#          self       hundi itself (editable for dev), without touching dependencies
#          (default: all three, in that order)
#
# Run from anywhere; it works on the repository that holds it. Idempotent: re-running it
# upgrades nothing that is already satisfied. PYTHON (default python3) creates the venv.
set -euo pipefail

usage() {
  echo "usage: $0 VENV {prod|dev|jupyter} [bootstrap|deps|self ...]" >&2
  exit 2
}

[ $# -ge 2 ] || usage
venv=$1
profile=$2
shift 2
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(bootstrap deps self)

case "$profile" in
  prod) extras="" ; editable=no ;;
  dev) extras="dev,notebooks" ; editable=yes ;;
  jupyter) extras="notebooks" ; editable=no ;;
  *) echo "install.sh: unknown profile '$profile' (expected prod, dev or jupyter)" >&2; exit 2 ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -f "$repo/pyproject.toml" ] || {
  echo "install.sh: $repo/pyproject.toml is missing (run the script from a hundi checkout)" >&2
  exit 2
}
python=${PYTHON:-python3}
vpy="$venv/bin/python"
pip=("$vpy" -m pip --disable-pip-version-check --no-input)
[ -n "${PIP_QUIET:-}" ] || pip+=(--quiet)

bootstrap() {
  if [ ! -x "$vpy" ]; then
    command -v "$python" >/dev/null || {
      echo "install.sh: $python not found (set PYTHON to a Python 3.11+ interpreter)" >&2
      exit 2
    }
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
      echo "install.sh: $python is $("$python" -V 2>&1); hundi needs Python 3.11+" >&2
      exit 2
    }
    "$python" -m venv "$venv"
  fi
  "${pip[@]}" install --upgrade pip setuptools wheel
}

need_venv() {
  [ -x "$vpy" ] || {
    echo "install.sh: no venv at $venv (run the bootstrap step first: make hundi-venv-bootstrap)" >&2
    exit 2
  }
}

deps() {
  need_venv
  local requirements
  requirements=$(mktemp)
  # The dependency lists come from pyproject.toml only: nothing to keep in sync here.
  "$vpy" - "$repo/pyproject.toml" "$extras" >"$requirements" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
wanted = [e for e in sys.argv[2].split(",") if e]
optional = project.get("optional-dependencies", {})
missing = [e for e in wanted if e not in optional]
if missing:
    sys.exit(f"install.sh: pyproject.toml has no extra {', '.join(missing)}")
for requirement in [*project["dependencies"], *(r for e in wanted for r in optional[e])]:
    print(requirement)
PY
  "${pip[@]}" install -r "$requirements" || { rm -f "$requirements"; exit 1; }
  rm -f "$requirements"
}

self() {
  need_venv
  # --no-deps: dependencies are the deps step's job (the image caches them in their own layer);
  # --no-build-isolation: build with the venv's setuptools (bootstrap) instead of fetching one.
  if [ "$editable" = yes ]; then
    "${pip[@]}" install --no-deps --no-build-isolation --editable "$repo"
  else
    "${pip[@]}" install --no-deps --no-build-isolation "$repo"
  fi
  "$venv/bin/hundi" --version
}

for step in "${steps[@]}"; do
  case "$step" in
    bootstrap) bootstrap ;;
    deps) deps ;;
    self) self ;;
    *) echo "install.sh: unknown step '$step' (expected bootstrap, deps or self)" >&2; exit 2 ;;
  esac
done
