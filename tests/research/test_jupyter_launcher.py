"""``make jupyter``'s launcher: settings and secret handling, and a real server that admits
the token and nothing else."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from hundi.research.jupyter import (
    JupyterConfigError,
    autoreload_ipython_dir,
    command,
    environment,
    load_settings,
)
from hundi.research.notebooks import run_notebook

REPO = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-t0ken-for-the-test-only"


def test_examples_are_complete_and_load(tmp_path: Path) -> None:
    (tmp_path / ".jupyter.env").write_text((REPO / ".jupyter.env.example").read_text())
    secret = (REPO / ".secret.jupyter.env.example").read_text()
    assert "JUPYTER_TOKEN=" in secret
    (tmp_path / ".secret.jupyter.env").write_text(
        secret.replace("JUPYTER_TOKEN=", f"JUPYTER_TOKEN={TOKEN}")
    )
    launch = load_settings(tmp_path, environ={})
    assert (launch.lab, launch.autoreload, launch.port, launch.root) == (True, True, 8888, tmp_path)
    assert launch.token == TOKEN
    assert TOKEN not in repr(launch)
    assert TOKEN not in " ".join(command(launch))  # never on the command line (ps shows it)
    assert environment(launch, {})["JUPYTER_TOKEN"] == TOKEN


def test_missing_token_names_the_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(JupyterConfigError, match=r"\.secret\.jupyter\.env.*JUPYTER_TOKEN"):
        load_settings(tmp_path, environ={})
    (tmp_path / ".secret.jupyter.env").write_text("JUPYTER_TOKEN=\n")
    with pytest.raises(
        JupyterConfigError, match=r"\.secret\.jupyter\.env: JUPYTER_TOKEN is missing"
    ):
        load_settings(tmp_path, environ={})


def test_bad_settings_name_the_key_and_never_show_the_token(tmp_path: Path) -> None:
    (tmp_path / ".secret.jupyter.env").write_text(f"JUPYTER_TOKEN={TOKEN}\n")
    (tmp_path / ".jupyter.env").write_text("JUPYTER_ENABLE_LAB=maybe\n")
    with pytest.raises(JupyterConfigError, match="JUPYTER_ENABLE_LAB must be yes or no") as bad:
        load_settings(tmp_path, environ={})
    assert TOKEN not in str(bad.value)
    (tmp_path / ".jupyter.env").write_text("JUPYTER_ENABLE_LAB=no\nJUPYTER_AUTO_RELOAD=no\n")
    launch = load_settings(tmp_path, environ={})
    assert not launch.lab and not launch.autoreload
    assert Path(command(launch)[0]).name == "jupyter-notebook"
    assert "IPYTHONDIR" not in environment(launch, {})
    # the environment wins over the files
    launch = load_settings(tmp_path, environ={"JUPYTER_ENABLE_LAB": "yes", "JUPYTER_TOKEN": "x"})
    assert launch.lab and launch.token == "x"


@pytest.mark.slow
def test_autoreload_profile_loads_autoreload_in_a_real_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPYTHONDIR", str(autoreload_ipython_dir(tmp_path / "ipython")))
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "loaded = get_ipython().extension_manager.loaded\n"
                "assert any(name.endswith('autoreload') for name in loaded), loaded"
            )
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    path = tmp_path / "check.ipynb"
    nbformat.write(notebook, path)
    run_notebook(path, tmp_path, timeout=60)  # raises if the assertion fails


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(port: int, token: str | None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/status")
    if token is not None:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


@pytest.mark.slow
def test_server_answers_with_the_token_and_rejects_without(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / ".jupyter.env").write_text(f"JUPYTER_PORT={port}\nJUPYTER_AUTO_RELOAD=yes\n")
    (tmp_path / ".secret.jupyter.env").write_text(f"JUPYTER_TOKEN={TOKEN}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_")}
    env["HOME"] = str(tmp_path / "home")  # the autoreload profile and jupyter state go here
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "hundi.research.jupyter"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        code = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                code = status(port, TOKEN)
                break
            except OSError:
                time.sleep(0.3)
        assert code == 200, log.read_text()[-2000:]
        assert status(port, None) == 403
        assert status(port, "wrong") == 403
        with pytest.raises(OSError):  # 127.0.0.1 only
            outside = [
                a
                for a in socket.gethostbyname_ex(socket.gethostname())[2]
                if not a.startswith("127.")
            ]
            if not outside:
                raise OSError("no other interface to try")
            socket.create_connection((outside[0], port), timeout=2).close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
    text = log.read_text()
    assert "JupyterLab on http://127.0.0.1" in text
    assert TOKEN not in text
    assert (tmp_path / "home" / ".cache" / "hundi" / "ipython-autoreload").is_dir()
