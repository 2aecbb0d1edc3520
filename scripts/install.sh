#!/usr/bin/env bash
# The one install recipe of hundi: the Dockerfile's build stages, `make venv` (CI), `make demo`
# and `make deps-upgrade` all run it, so a change that breaks the image's install breaks CI too.
# Every third-party package comes from uv.lock (exact versions and hashes), never from whatever
# a resolver picks today: a fresh clone installs what CI tested.
#
#   scripts/install.sh VENV PROFILE [STEP...]
#
# PROFILE  prod     runtime dependencies, hundi as a regular (non-editable) install
#          runtime  runtime dependencies, hundi editable: what `make demo` needs, nothing more
#          dev      editable hundi with the dev and notebooks extras (pytest, ruff, mypy, debugpy,
#                   JupyterLab): the development venv and the image's dev target
#          jupyter  hundi with the notebooks extra (JupyterLab), non-editable
# STEP     bootstrap  create VENV (if missing, without pip) and the pinned uv (scripts/uv-requirements.txt)
#          deps       third-party dependencies of PROFILE only, from uv.lock
#          self       hundi itself (editable for runtime/dev), from the same lock
#          (default: all three, in that order)
#
# Run from anywhere; it works on the repository that holds it. Idempotent: re-running it changes
# nothing that already matches the lock. PYTHON (default python3) creates the venv; uv lives in
# UV_TOOL_DIR (default REPO/.tools/uv), outside VENV, so the image's venv carries no installer.
set -euo pipefail

usage() {
  echo "usage: $0 VENV {prod|runtime|dev|jupyter} [bootstrap|deps|self ...]" >&2
  exit 2
}

[ $# -ge 2 ] || usage
venv=$1
profile=$2
shift 2
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(bootstrap deps self)

case "$profile" in
  prod) extras=() ; editable=no ;;
  runtime) extras=() ; editable=yes ;;
  dev) extras=(--extra dev --extra notebooks) ; editable=yes ;;
  jupyter) extras=(--extra notebooks) ; editable=no ;;
  *) echo "install.sh: unknown profile '$profile' (expected prod, runtime, dev or jupyter)" >&2; exit 2 ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for file in pyproject.toml uv.lock scripts/uv-requirements.txt; do
  [ -f "$repo/$file" ] || {
    echo "install.sh: $repo/$file is missing (run the script from a hundi checkout)" >&2
    exit 2
  }
done
python=${PYTHON:-python3}
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
vpy="$venv/bin/python"
tools=${UV_TOOL_DIR:-$repo/.tools/uv}
uv="$tools/bin/uv"
# uv must use the interpreter of VENV and never fetch one of its own (no internet but PyPI).
export UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT="$venv"

say() { echo "install.sh: $*" >&2; }

bootstrap() {
  command -v "$python" >/dev/null || {
    say "$python not found (set PYTHON to a Python 3.11+ interpreter)"
    exit 2
  }
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    say "$python is $("$python" -V 2>&1); hundi needs Python 3.11+"
    exit 2
  }
  if [ ! -x "$uv" ] || ! "$uv" --version | grep -qF "$(sed -n 's/^uv==\([^ ]*\).*/uv \1/p' "$repo/scripts/uv-requirements.txt")"; then
    say "installing the pinned uv into $tools (a few seconds)"
    "$python" -m venv --clear "$tools"
    "$tools/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
      --require-hashes -r "$repo/scripts/uv-requirements.txt"
  fi
  if [ ! -x "$vpy" ]; then
    "$uv" venv --quiet --python "$python" "$venv"
  fi
}

need_venv() {
  [ -x "$vpy" ] && [ -x "$uv" ] || {
    say "no venv at $venv (run the bootstrap step first: make hundi-venv-bootstrap)"
    exit 2
  }
}

sync() {
  # --locked: install exactly uv.lock, and fail (instead of relocking) if pyproject.toml changed
  # without `uv lock`; make deps-upgrade is the one place that moves versions.
  local args=(sync --project "$repo" --locked --python "$vpy" "${extras[@]}" "$@")
  [ "$editable" = yes ] || args+=(--no-editable)
  "$uv" "${args[@]}" || {
    say "uv sync failed; if uv.lock no longer matches pyproject.toml, run 'make deps-upgrade' (or '.tools/uv/bin/uv lock') and commit uv.lock"
    exit 1
  }
}

deps() {
  need_venv
  say "installing the $profile dependencies of $repo/uv.lock into $venv"
  # Only the dependencies: the image caches them in their own layer, before the source is copied.
  # --inexact leaves an installed hundi alone; the self step syncs exactly (removes strays).
  sync --no-install-project --inexact
}

self() {
  need_venv
  sync
  "$venv/bin/hundi" --version
}

for step in "${steps[@]}"; do
  case "$step" in
    bootstrap) bootstrap ;;
    deps) deps ;;
    self) self ;;
    *) say "unknown step '$step' (expected bootstrap, deps or self)"; exit 2 ;;
  esac
done
