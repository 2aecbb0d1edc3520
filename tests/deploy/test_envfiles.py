"""The deployment env files: templates complete, missing files and keys named, secrets unechoed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hundi.deploy.envfiles import ENV_FILES, EnvFileError, load_env_files, secret_values

REPO = Path(__file__).resolve().parents[2]


def _real_files_from_templates(directory: Path, password: str = "s3cr3t-value-42") -> None:
    """Copy every template to its real name, filling empty or placeholder secrets."""
    for spec in ENV_FILES.values():
        text = (REPO / spec.example).read_text()
        if spec.secret:
            lines = []
            for line in text.splitlines():
                key, sep, value = line.partition("=")
                if sep and not line.startswith("#") and value.strip() in ("", "change-me"):
                    line = f"{key}={password}"
                lines.append(line)
            text = "\n".join(lines) + "\n"
        (directory / spec.name).write_text(text)


def test_every_template_is_committed_and_complete() -> None:
    loaded = load_env_files(REPO, examples=True)
    assert set(loaded) == set(ENV_FILES)
    assert loaded[".cassandra.env"]["CASSANDRA_CLUSTER_NAME"]
    tracked = subprocess.run(
        ["git", "ls-files", *[spec.example for spec in ENV_FILES.values()]],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(tracked) == sorted(spec.example for spec in ENV_FILES.values())


def test_real_files_are_git_ignored() -> None:
    names = [spec.name for spec in ENV_FILES.values()]
    ignored = subprocess.run(
        ["git", "check-ignore", *names], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    assert sorted(ignored) == sorted(names)


def test_missing_file_is_named_with_the_keys_it_needs(tmp_path: Path) -> None:
    _real_files_from_templates(tmp_path)
    (tmp_path / ".cassandra.env").unlink()
    with pytest.raises(EnvFileError) as caught:
        load_env_files(tmp_path)
    message = str(caught.value)
    assert ".cassandra.env is missing" in message
    assert "MAX_HEAP_SIZE" in message and ".cassandra.env.example" in message


def test_missing_and_empty_keys_are_named(tmp_path: Path) -> None:
    _real_files_from_templates(tmp_path)
    cassandra = tmp_path / ".cassandra.env"
    cassandra.write_text(
        "\n".join(
            line
            for line in cassandra.read_text().splitlines()
            if not line.startswith("HEAP_NEWSIZE=")
        ).replace("CASSANDRA_RACK=rack1", "CASSANDRA_RACK=")
    )
    with pytest.raises(EnvFileError) as caught:
        load_env_files(tmp_path, [".cassandra.env"])
    message = str(caught.value)
    assert "HEAP_NEWSIZE is not set" in message
    assert "CASSANDRA_RACK is empty" in message


@pytest.mark.slow
def test_placeholder_secret_is_refused_and_never_echoed(tmp_path: Path) -> None:
    _real_files_from_templates(tmp_path)
    (tmp_path / ".secret.cassandra.env").write_text(
        "CASSANDRA_USER=cassandra\nCASSANDRA_PASSWORD=change-me\n"
    )
    with pytest.raises(EnvFileError, match="CASSANDRA_PASSWORD is empty or still the template"):
        load_env_files(tmp_path, [".secret.cassandra.env"])
    # A real secret is loaded, reported as secret, and absent from the CLI's output.
    _real_files_from_templates(tmp_path, password="pa55-w0rd-xyz")
    loaded = load_env_files(tmp_path)
    assert secret_values(loaded)["GF_SECURITY_ADMIN_PASSWORD"] == "pa55-w0rd-xyz"
    assert "CASSANDRA_SEEDS" not in secret_values(loaded)
    (tmp_path / ".secret.jupyter.env").write_text("JUPYTER_TOKEN=\n")
    result = subprocess.run(
        [sys.executable, "-m", "hundi.deploy.envfiles", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "JUPYTER_TOKEN" in result.stderr
    assert "pa55-w0rd-xyz" not in result.stderr + result.stdout


@pytest.mark.slow
def test_cli_accepts_complete_files(tmp_path: Path) -> None:
    _real_files_from_templates(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "hundi.deploy.envfiles", "--dir", str(tmp_path), ".hundi.env"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok: .hundi.env"


def test_unknown_file_name_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EnvFileError, match="unknown env file"):
        load_env_files(tmp_path, [".nope.env"])
