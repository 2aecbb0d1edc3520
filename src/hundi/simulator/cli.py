"""``hundi simulate <venue>``: one subcommand per registered exchange that has a simulator.

The venues come from the ``hundi.exchanges`` entry points (:mod:`hundi.exchanges.registry`):
an exchange whose registration names a ``simulator`` (``"module:attribute"`` of a click command,
e.g. ``hundi.simulator.<venue>.command:<venue>``) becomes ``hundi simulate <name>`` and
``python -m hundi.simulator <name>``, with no edit here. Commands are imported only when run or
listed (``--help``); a command module keeps its server import inside the command, so listing
them stays cheap.

Each command prints its URLs first on stdout (``ws_url=...``, ``rest_url=...``), flushed at
once, so scripts and tests can start it as a subprocess and read where to connect
(:class:`~hundi.simulator.process.SimulatorProcess`).
"""

from __future__ import annotations

from importlib import import_module

import click

from hundi.exchanges.registry import exchange, exchanges


def load_command(target: str) -> click.Command:
    """The click command at ``"module:attribute"``; TypeError if it is not one."""
    module, _, attribute = target.partition(":")
    command = getattr(import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"simulator {target!r} is not a click command: {command!r}")
    return command


class _RegisteredSimulators(click.Group):
    """Subcommands from the exchange registry, each loaded on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, ex in exchanges().items() if ex.simulator)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        try:
            target = exchange(cmd_name).simulator
        except ValueError:
            return None  # click: "No such command"
        if not target:
            raise click.UsageError(f"exchange {cmd_name!r} has no simulator", ctx)
        return load_command(target)


@click.group(cls=_RegisteredSimulators)
def simulate() -> None:
    """Exchange simulators speaking the real protocols over real sockets."""
