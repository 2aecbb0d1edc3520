#!/usr/bin/env bash
# make hundi-debug: run a Python file under debugpy, listening on 0.0.0.0:PORT for VS Code's
# "attach" configuration (make hundi-vscode-bootstrap writes it).
#
#   scripts/debug.sh WHERE WAIT PORT FILE [ARGS...]
#
# WHERE  container  inside the running dev container (compose service hundi-dev, source at /src,
#                   port 5678 published to localhost): needs `make hundi-up` first
#        local      in the local venv (BIN, default .venv/bin)
# WAIT   yes: start FILE only once a debugger attached; no: start at once
set -euo pipefail

[ $# -ge 4 ] || { echo "usage: $0 {container|local} {yes|no} PORT FILE [ARGS...]" >&2; exit 2; }
where=$1 wait=$2 port=$3 file=$4
shift 4
[ -n "$file" ] || { echo "hundi-debug: give file=<python file> (and args=\"...\")" >&2; exit 2; }
[ -f "$file" ] || { echo "hundi-debug: $file: no such file" >&2; exit 2; }
case "$wait" in
  yes) wait_flag=(--wait-for-client) ;;
  no) wait_flag=() ;;
  *) echo "hundi-debug: wait must be yes or no, got '$wait'" >&2; exit 2 ;;
esac
[[ "$port" =~ ^[0-9]+$ ]] || { echo "hundi-debug: port must be a number, got '$port'" >&2; exit 2; }

case "$where" in
  local)
    bin=${BIN:-.venv/bin}
    "$bin/python" -c 'import debugpy' 2>/dev/null || {
      echo "hundi-debug: debugpy is not installed in $bin (make venv installs it)" >&2
      exit 2
    }
    echo "hundi-debug: $file on 0.0.0.0:$port$([ "$wait" = yes ] && echo ', waiting for the debugger to attach')" >&2
    exec "$bin/python" -X frozen_modules=off -m debugpy --listen "0.0.0.0:$port" "${wait_flag[@]}" "$file" "$@"
    ;;
  container)
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    absolute=$(cd "$(dirname "$file")" && pwd)/$(basename "$file")
    case "$absolute" in
      "$repo"/*) inside="/src/${absolute#"$repo"/}" ;;
      *) echo "hundi-debug: $file is outside the repository, which the container mounts at /src (use where=local)" >&2; exit 2 ;;
    esac
    [ "$port" = 5678 ] || { echo "hundi-debug: the dev container publishes port 5678 only" >&2; exit 2; }
    read -r -a compose <<<"${COMPOSE:-docker compose}"
    "${compose[@]}" version >/dev/null  # docker's own message when compose is missing
    # docker's own message stands when there is no engine or the stack is not up.
    exec "${compose[@]}" exec hundi-dev python -X frozen_modules=off -m debugpy --listen "0.0.0.0:$port" \
      "${wait_flag[@]}" "$inside" "$@"
    ;;
  *) echo "hundi-debug: where must be container or local, got '$where'" >&2; exit 2 ;;
esac
