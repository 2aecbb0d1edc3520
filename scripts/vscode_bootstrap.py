"""make hundi-vscode-bootstrap: VS Code settings for hundi, merged into what a developer has.

Writes ``settings.json`` (the .venv interpreter, ruff, pytest), ``launch.json`` (attach to
``make hundi-debug`` on localhost:5678 with /src mapped to the workspace, attach to a local
``where=local`` run, launch the current file) and ``extensions.json``. Keys and launch
configurations of the developer's own are kept; ours are replaced, so running it again updates
them. VS Code allows comments and trailing commas (JSONC): they are read, but not written back.
Standard library only: it runs before any venv exists.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SETTINGS: dict[str, Any] = {
    "python.defaultInterpreterPath": "${workspaceFolder}/.venv/bin/python",
    "python.terminal.activateEnvironment": True,
    "python.testing.pytestEnabled": True,
    "python.testing.unittestEnabled": False,
    "python.testing.pytestArgs": ["tests"],
    "ruff.importStrategy": "fromEnvironment",
    "mypy-type-checker.importStrategy": "fromEnvironment",
    "[python]": {
        "editor.defaultFormatter": "charliermarsh.ruff",
        "editor.formatOnSave": True,
        "editor.codeActionsOnSave": {
            "source.fixAll": "explicit",
            "source.organizeImports": "explicit",
        },
    },
    "files.exclude": {"**/__pycache__": True, "**/.mypy_cache": True, "**/.ruff_cache": True},
}

LAUNCH: list[dict[str, Any]] = [
    {
        "name": "hundi: attach to make hundi-debug (dev container)",
        "type": "debugpy",
        "request": "attach",
        "connect": {"host": "localhost", "port": 5678},
        "pathMappings": [{"localRoot": "${workspaceFolder}", "remoteRoot": "/src"}],
        "justMyCode": False,
    },
    {
        "name": "hundi: attach to make hundi-debug where=local",
        "type": "debugpy",
        "request": "attach",
        "connect": {"host": "localhost", "port": 5678},
        "justMyCode": False,
    },
    {
        "name": "hundi: current file",
        "type": "debugpy",
        "request": "launch",
        "program": "${file}",
        "cwd": "${workspaceFolder}",
        "console": "integratedTerminal",
        "justMyCode": False,
    },
]

EXTENSIONS = [
    "ms-python.python",
    "ms-python.debugpy",
    "ms-python.mypy-type-checker",
    "charliermarsh.ruff",
    "ms-toolsai.jupyter",
    "ms-azuretools.vscode-docker",
]


class BootstrapError(Exception):
    """A file cannot be merged; the message names it."""


def strip_jsonc(text: str) -> str:
    """JSON text without // and /* */ comments and trailing commas (outside strings)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else n
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c in "]}":
            while out and out[-1].isspace():
                out.pop()
            if out and out[-1] == ",":
                out.pop()
            out.append(c)
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(strip_jsonc(path.read_text()) or "{}")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BootstrapError(f"{path}: not readable as JSON ({exc}); fix or move it") from None
    if not isinstance(data, dict):
        raise BootstrapError(f"{path}: expected a JSON object at the top")
    return data


def merge_settings(current: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in SETTINGS.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def merge_launch(current: dict[str, Any]) -> dict[str, Any]:
    ours = {c["name"] for c in LAUNCH}
    theirs = [
        c
        for c in current.get("configurations", [])
        if not (isinstance(c, dict) and c.get("name") in ours)
    ]
    return {**current, "version": "0.2.0", "configurations": [*LAUNCH, *theirs]}


def merge_extensions(current: dict[str, Any]) -> dict[str, Any]:
    recommended = [e for e in current.get("recommendations", []) if e not in EXTENSIONS]
    return {**current, "recommendations": [*EXTENSIONS, *recommended]}


def bootstrap(folder: Path) -> list[Path]:
    """Merge the three files in ``folder``; returns what was written."""
    plan = [
        (folder / "settings.json", merge_settings),
        (folder / "launch.json", merge_launch),
        (folder / "extensions.json", merge_extensions),
    ]
    merged = [(path, merge(read(path))) for path, merge in plan]  # read all before writing any
    folder.mkdir(parents=True, exist_ok=True)
    for path, data in merged:
        path.write_text(json.dumps(data, indent=2) + "\n")
    return [path for path, _ in merged]


def main(argv: list[str]) -> int:
    folder = Path(argv[1] if len(argv) > 1 else ".vscode")
    try:
        written = bootstrap(folder)
    except BootstrapError as exc:
        print(f"hundi-vscode-bootstrap: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
