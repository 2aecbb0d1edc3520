"""The deployment's configuration files and the keys each must set.

Docker compose, the Kubernetes ConfigMaps/Secrets and ``make`` targets all read the same dotenv
files at the repository root. Checking them up front turns a missing file or key into one message
naming both, instead of a pod that crash-loops or a server that starts without a password.
Values of secret files never appear in a message.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import click

from hundi.config import ConfigError, read_env_file


@dataclass(frozen=True)
class EnvFile:
    name: str  # file name at the repository root, e.g. ".cassandra.env"
    required: tuple[str, ...]  # keys that must be present and non-empty
    purpose: str

    @property
    def secret(self) -> bool:
        return self.name.startswith(".secret.")

    @property
    def example(self) -> str:
        return self.name + ".example"


ENV_FILES: dict[str, EnvFile] = {
    f.name: f
    for f in (
        EnvFile(".hundi.env", ("HUNDI_STORE",), "collector and API settings"),
        EnvFile(
            ".cassandra.env",
            (
                "CASSANDRA_SEEDS",
                "CASSANDRA_CLUSTER_NAME",
                "CASSANDRA_DC",
                "CASSANDRA_RACK",
                "MALLOC_ARENA_MAX",
                "MAX_HEAP_SIZE",
                "HEAP_NEWSIZE",
            ),
            "Cassandra nodes and the Cassandra store",
        ),
        EnvFile(".kairosdb.env", ("KAIROSDB_URL",), "the KairosDB store"),
        EnvFile(".jupyter.env", ("JUPYTER_ENABLE_LAB", "JUPYTER_PORT"), "JupyterLab"),
        EnvFile(
            ".secret.cassandra.env",
            ("CASSANDRA_USER", "CASSANDRA_PASSWORD"),
            "Cassandra admin (superuser) credentials: Cassandra's first start and bootstrap",
        ),
        EnvFile(
            ".secret.cassandra-writer.env",
            ("CASSANDRA_USER", "CASSANDRA_PASSWORD"),
            "Cassandra writer role (collectors)",
        ),
        EnvFile(
            ".secret.cassandra-reader.env",
            ("CASSANDRA_USER", "CASSANDRA_PASSWORD"),
            "Cassandra read-only role (hundi-api, Jupyter)",
        ),
        EnvFile(
            ".secret.cassandra-kairosdb.env",
            ("CASSANDRA_USER", "CASSANDRA_PASSWORD"),
            "Cassandra role of KairosDB",
        ),
        EnvFile(".secret.grafana.env", ("GF_SECURITY_ADMIN_PASSWORD",), "Grafana admin password"),
        EnvFile(".secret.jupyter.env", ("JUPYTER_TOKEN",), "JupyterLab token"),
        EnvFile(".secret.hundi.env", ("HUNDI_API_TOKEN",), "hundi API token (serve, Grafana)"),
    )
}

# Values in the committed templates that must not reach a real deployment.
PLACEHOLDERS = frozenset({"", "change-me", "changeme"})


class EnvFileError(ConfigError):
    """A deployment env file is missing or incomplete; the message names file and key."""


def load_env_files(
    directory: Path, names: Iterable[str] | None = None, *, examples: bool = False
) -> dict[str, dict[str, str]]:
    """Each named file's assignments, after checking it exists and sets every required key.

    ``examples=True`` reads the committed ``*.example`` templates instead (CI renders manifests
    from them); placeholder secrets are accepted there and refused in real files.
    """
    loaded: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for name in ENV_FILES if names is None else names:
        spec = ENV_FILES.get(name)
        if spec is None:
            raise EnvFileError(f"unknown env file {name!r}; known: {', '.join(ENV_FILES)}")
        path = directory / (spec.example if examples else spec.name)
        if not path.is_file() and examples:
            problems.append(f"{path} is missing: the committed template of {spec.name}")
            continue
        if not path.is_file():
            problems.append(
                f"{path} is missing ({spec.purpose}): copy {spec.example} to {spec.name} "
                f"and set {', '.join(spec.required)}"
            )
            continue
        values = read_env_file(path)
        for key in spec.required:
            value = values.get(key)
            if value is None:
                problems.append(f"{path}: {key} is not set ({spec.purpose})")
            elif spec.secret and not examples and value.strip() in PLACEHOLDERS:
                problems.append(f"{path}: {key} is empty or still the template's placeholder")
            elif not spec.secret and not value.strip():
                problems.append(f"{path}: {key} is empty ({spec.purpose})")
        loaded[name] = values
    if problems:
        raise EnvFileError("\n".join(problems))
    return loaded


def secret_values(loaded: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Every key → value of the secret files among ``loaded`` (to prove none leaks elsewhere)."""
    return {
        key: value
        for name, values in loaded.items()
        if ENV_FILES[name].secret
        for key, value in values.items()
        if value
    }


@click.command()
@click.argument("names", nargs=-1)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help="Directory holding the env files.",
)
@click.option("--examples", is_flag=True, help="Check the committed *.example templates instead.")
def check(names: tuple[str, ...], directory: Path, examples: bool) -> None:
    """Check that the env files NAMES (all when none) exist and set their required keys."""
    try:
        loaded = load_env_files(directory, names or None, examples=examples)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"ok: {', '.join(loaded)}")


if __name__ == "__main__":
    check()
