"""The ``hundi`` command group: subcommands imported lazily, each still listed and runnable.

``hundi --version`` and ``hundi --help`` used to import every command's module up front (pandas,
pyarrow, aiohttp...): seconds before a version string. The real console script runs here with
``PYTHONPROFILEIMPORTTIME=1``, which makes Python list every module it imports on stderr.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hundi import __version__
from hundi.cli import COMMANDS, main

HUNDI = Path(sys.executable).with_name("hundi")
HEAVY = {"pandas", "pyarrow", "numpy", "aiohttp", "picows", "msgspec", "cassandra", "rich", "yaml"}
IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)\s*$", re.M)


def imported_by(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the installed ``hundi`` with ``args``; (its result, top-level modules it imported)."""
    done = subprocess.run(
        [str(HUNDI), *args],
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = {name.split(".")[0] for name in IMPORTED.findall(done.stderr)}
    assert "click" in modules, "no import list: did PYTHONPROFILEIMPORTTIME work?"
    return done, modules


@pytest.mark.slow
def test_version_imports_no_command() -> None:
    done, modules = imported_by("--version")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"hundi, version {__version__}"
    assert not HEAVY & modules, sorted(HEAVY & modules)


@pytest.mark.slow
def test_help_lists_every_command_without_importing_them() -> None:
    done, modules = imported_by("--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not HEAVY & modules, sorted(HEAVY & modules)
    listed = re.findall(r"^  ([a-z]+)  ", done.stdout.split("Commands:", 1)[1], re.M)
    assert listed == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_summary_is_the_command_s_own(name: str) -> None:
    """What ``hundi --help`` shows without importing a command is what the command says."""
    command = COMMANDS[name].load()
    assert command.name == name
    assert command.get_short_help_str(limit=1000) == COMMANDS[name].summary


@pytest.mark.parametrize(
    "args",
    [[name, "--help"] for name in sorted(COMMANDS)]
    + [["simulate", "binance", "--help"], ["store", "check", "--help"]],
    ids=" ".join,
)
def test_every_command_runs_its_own_help(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: main {' '.join(args[:-1])} ")


def test_an_unknown_command_is_one_clear_error() -> None:
    result = CliRunner().invoke(main, ["colect"])
    assert result.exit_code == 2
    assert "No such command 'colect'" in result.output


def test_the_help_section_matches_click_s_own_rendering() -> None:
    """The lazy listing renders exactly as click renders the loaded commands."""
    loaded = {name: c.load() for name, c in COMMANDS.items()}
    eager = click.Group("main", commands=loaded, context_settings=main.context_settings)
    lazy_text = main.get_help(click.Context(main, info_name="main"))
    eager_text = eager.get_help(click.Context(eager, info_name="main"))
    assert lazy_text.split("Commands:")[1] == eager_text.split("Commands:")[1]


@pytest.mark.slow
def test_health_probe_imports_nothing_heavy(tmp_path: Path) -> None:
    """Probes run ``hundi health`` several times a minute: it reads a JSON file, so it must not
    pay for the record model, pandas or aiohttp (it used to import all of them: ~1.4 s)."""
    health = tmp_path / "health.json"
    health.write_text(f'{{"written_at": {time.time()}, "ok": true, "component": "collector"}}')
    done, modules = imported_by("health", "--file", str(health))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
    assert not (HEAVY - {"yaml"}) & modules, sorted(HEAVY & modules)
    assert "hundi.config" not in IMPORTED.findall(done.stderr)
