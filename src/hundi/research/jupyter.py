"""``make jupyter``: JupyterLab (or the classic notebook UI) on 127.0.0.1, with hundi importable.

Settings, read from the working directory:

* ``.jupyter.env`` (optional; see ``.jupyter.env.example``): ``JUPYTER_ENABLE_LAB`` (yes:
  JupyterLab, no: the notebook UI; default yes), ``JUPYTER_AUTO_RELOAD`` (yes: every kernel
  starts with ``%autoreload 2``, so edits to hundi apply without a restart; default yes),
  ``JUPYTER_PORT`` (default 8888), ``JUPYTER_ROOT`` (directory served; default the current one).
* ``.secret.jupyter.env`` (required; see ``.secret.jupyter.env.example``): ``JUPYTER_TOKEN``.
  The server gets it through its environment, never on the command line (visible in ``ps``),
  and it is never printed.

The server binds 127.0.0.1 only; the launcher replaces itself with ``jupyter lab`` (or
``jupyter notebook``) so signals reach the server directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hundi.config import ConfigError, read_env_file

SETTINGS_FILE = ".jupyter.env"
SECRET_FILE = ".secret.jupyter.env"
_YES = {"yes", "y", "true", "1", "on"}
_NO = {"no", "n", "false", "0", "off"}
AUTORELOAD_STARTUP = """\
# Written by hundi's `make jupyter` (JUPYTER_AUTO_RELOAD=yes): reload edited modules before
# every cell, so changes to hundi apply without restarting the kernel.
from IPython import get_ipython

_shell = get_ipython()
if _shell is not None:
    _shell.run_line_magic("load_ext", "autoreload")
    _shell.run_line_magic("autoreload", "2")
"""


class JupyterConfigError(ValueError):
    """A missing or bad setting; the message names the file and the key (never a secret)."""


@dataclass(frozen=True, slots=True)
class Launch:
    lab: bool
    autoreload: bool
    port: int
    root: Path
    token: str = field(repr=False)


def _flag(values: Mapping[str, str | None], key: str, default: bool) -> bool:
    raw = values.get(key)
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip().lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise JupyterConfigError(f"{SETTINGS_FILE}: {key} must be yes or no, not {raw!r}")


def _read(path: Path) -> dict[str, str]:
    try:
        return read_env_file(path)
    except ConfigError as exc:
        raise JupyterConfigError(str(exc)) from None


def load_settings(directory: Path, environ: Mapping[str, str] | None = None) -> Launch:
    """Read ``.jupyter.env`` and ``.secret.jupyter.env`` in ``directory``.

    Variables already set in the environment win over both files (as with the other
    ``.env`` files of the project).
    """
    env = dict(os.environ if environ is None else environ)
    settings_path = directory / SETTINGS_FILE
    values = _read(settings_path)
    values.update({k: v for k, v in env.items() if k.startswith("JUPYTER_")})
    secret_path = directory / SECRET_FILE
    token = env.get("JUPYTER_TOKEN")
    if not token:
        if not secret_path.is_file():
            raise JupyterConfigError(
                f"{SECRET_FILE} not found in {directory}: copy {SECRET_FILE}.example to "
                f"{SECRET_FILE} and set JUPYTER_TOKEN"
            )
        token = _read(secret_path).get("JUPYTER_TOKEN") or ""
    if not token.strip():
        raise JupyterConfigError(f"{SECRET_FILE}: JUPYTER_TOKEN is missing or empty")
    port_text = (values.get("JUPYTER_PORT") or "8888").strip()
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise JupyterConfigError(f"{SETTINGS_FILE}: JUPYTER_PORT must be a port number")
    root = Path(values.get("JUPYTER_ROOT") or directory).expanduser()
    if not root.is_absolute():
        root = directory / root
    if not root.is_dir():
        raise JupyterConfigError(f"{SETTINGS_FILE}: JUPYTER_ROOT {str(root)!r} is not a directory")
    return Launch(
        lab=_flag(values, "JUPYTER_ENABLE_LAB", True),
        autoreload=_flag(values, "JUPYTER_AUTO_RELOAD", True),
        port=int(port_text),
        root=root.resolve(),
        token=token.strip(),
    )


def autoreload_ipython_dir(base: Path | None = None) -> Path:
    """An IPython directory whose default profile loads autoreload at kernel start."""
    home = base if base is not None else Path.home() / ".cache" / "hundi" / "ipython-autoreload"
    startup = home / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-hundi-autoreload.py").write_text(AUTORELOAD_STARTUP)
    return home


def server_program(launch: Launch) -> Path:
    """``jupyter-lab`` or ``jupyter-notebook`` next to this interpreter (the project venv)."""
    return Path(sys.executable).parent / ("jupyter-lab" if launch.lab else "jupyter-notebook")


def command(launch: Launch) -> list[str]:
    args = [
        str(server_program(launch)), "--no-browser", "--ip=127.0.0.1", f"--port={launch.port}",
        "--port-retries=0", f"--ServerApp.root_dir={launch.root}",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")  # containers run as root; the server still binds 127.0.0.1
    return args


def environment(launch: Launch, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["JUPYTER_TOKEN"] = launch.token
    if launch.autoreload:
        env["IPYTHONDIR"] = str(autoreload_ipython_dir())
    return env


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hundi.research.jupyter")
    parser.add_argument(
        "--dir", type=Path, default=Path.cwd(), help="Where the .env files are (default: here)."
    )
    args = parser.parse_args(argv)
    try:
        launch = load_settings(args.dir.resolve())
    except JupyterConfigError as e:
        print(f"make jupyter: {e}", file=sys.stderr)
        return 2
    app = "JupyterLab" if launch.lab else "Jupyter Notebook"
    if not server_program(launch).is_file():
        print(
            f"make jupyter: {server_program(launch).name} is not installed in this environment: "
            "pip install -e '.[notebooks]'",
            file=sys.stderr,
        )
        return 2
    path = "lab" if launch.lab else "tree"
    print(
        f"{app} on http://127.0.0.1:{launch.port}/{path} serving {launch.root} "
        f"(token: JUPYTER_TOKEN from {SECRET_FILE}; autoreload "
        f"{'on' if launch.autoreload else 'off'})",
        flush=True,
    )
    cmd = command(launch)
    os.execve(cmd[0], cmd, environment(launch))


if __name__ == "__main__":
    sys.exit(main())
