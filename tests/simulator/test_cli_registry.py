"""``hundi simulate <venue>`` is built from the exchange registry: a venue whose registration
names a simulator joins with no edit to the CLI, and listing them imports no simulator server."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from hundi.exchanges import exchanges
from hundi.exchanges.registry import Exchange
from hundi.simulator import cli
from hundi.simulator.cli import load_command, simulate
from hundi.simulator.options import OPEN_ENV

WITH_SIMULATOR = sorted(name for name, e in exchanges().items() if e.simulator)


def test_every_registered_simulator_is_a_listed_click_command() -> None:
    assert WITH_SIMULATOR  # binance and bitfinex register one
    result = CliRunner().invoke(simulate, ["--help"])
    assert result.exit_code == 0, result.output
    for name in WITH_SIMULATOR:
        assert isinstance(load_command(exchanges()[name].simulator), click.Command)
        assert f"  {name} " in result.output


def test_help_imports_no_simulator_server() -> None:
    """Listing the venues loads their small command modules, never a server (aiohttp)."""
    code = (
        "import sys\n"
        "from hundi.simulator.cli import simulate\n"
        "simulate(['--help'], standalone_mode=False)\n"
        "print('LOADED', *sorted(m for m in sys.modules if m.split('.')[0] == 'aiohttp'"
        " or m.startswith('hundi.simulator.') and m.endswith('.server')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    listing, _, loaded = out.rpartition("LOADED")
    assert loaded.strip() == "", f"imported by --help: {loaded.strip()}"
    for name in WITH_SIMULATOR:
        assert f"  {name} " in listing


@click.command()
@click.option("--greeting", default="hello")
def _fake_simulator(greeting: str) -> None:
    click.echo(f"ws_url=ws://fake {greeting}")


def _registry_with(monkeypatch: pytest.MonkeyPatch, extra: Exchange) -> None:
    known = {**exchanges(), extra.name: extra}

    def exchange(name: str) -> Exchange:
        if name not in known:
            raise ValueError(f"unknown exchange {name!r}")
        return known[name]

    monkeypatch.setattr(cli, "exchanges", lambda: known)
    monkeypatch.setattr(cli, "exchange", exchange)


def test_a_new_venue_joins_by_registration_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Exchange(
        name="fakevenue",
        venue=lambda config: None,
        simulator=f"{__name__}:_fake_simulator",
    )
    _registry_with(monkeypatch, fake)
    runner = CliRunner()
    assert "fakevenue" in runner.invoke(simulate, ["--help"]).output
    result = runner.invoke(simulate, ["fakevenue", "--greeting", "hi"])
    assert result.exit_code == 0, result.output
    assert result.output == "ws_url=ws://fake hi\n"


def test_unknown_or_simulator_less_venues_are_clean_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _registry_with(monkeypatch, Exchange(name="nosim", venue=lambda config: None))
    runner = CliRunner()
    result = runner.invoke(simulate, ["nope"])
    assert result.exit_code == 2 and "No such command 'nope'" in result.output
    result = runner.invoke(simulate, ["nosim"])
    assert result.exit_code == 2 and "exchange 'nosim' has no simulator" in result.output
    assert "nosim" not in runner.invoke(simulate, ["--help"]).output
    assert "Traceback" not in result.output


def test_a_simulator_that_is_not_a_click_command_is_named() -> None:
    with pytest.raises(TypeError, match="is not a click command"):
        load_command(f"{__name__}:WITH_SIMULATOR")


@pytest.mark.parametrize("venue", WITH_SIMULATOR)
def test_no_simulator_listens_beyond_loopback_unless_told_or_runs_for_no_time(
    venue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review: ``--host 0.0.0.0`` listened on every interface (a simulator has no
    authentication) and ``--duration -1`` ran nothing and exited 0. Both are refused before
    anything starts; HUNDI_SIMULATOR_OPEN=1 allows the address (the compose stack)."""
    monkeypatch.delenv(OPEN_ENV, raising=False)
    runner = CliRunner()
    for args, option in (
        (["--host", "0.0.0.0"], "--host"),
        (["--duration", "-1"], "--duration"),
        (["--duration", "0"], "--duration"),
    ):
        result = runner.invoke(simulate, [venue, *args])
        assert result.exit_code == 2, (venue, args, result.output)
        assert f"Invalid value for '{option}'" in result.output
    monkeypatch.setenv(OPEN_ENV, "1")
    command = load_command(exchanges()[venue].simulator)
    assert isinstance(command, click.Command)
    context = command.make_context(venue, ["--host", "0.0.0.0"])
    assert context.params["host"] == "0.0.0.0"
