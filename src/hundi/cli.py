"""``hundi`` command line. Each command lives next to the code it drives; this only groups them.

The commands are imported lazily (click's LazyGroup pattern): importing them all up front pulled
in pandas, pyarrow, aiohttp... and made ``hundi --version`` or a typo take seconds. ``hundi
--help`` lists each command from the one-line help kept here (a test checks it matches the
command's own) so it imports none of them either.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import click

from hundi import __version__


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """Where a subcommand lives (``module:attribute``) and its one-line help."""

    target: str
    summary: str

    def load(self) -> click.Command:
        module_name, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command


COMMANDS: dict[str, LazyCommand] = {
    "collect": LazyCommand(
        "hundi.pipeline.cli:collect",
        "Collect market data from EXCHANGE (e.g. binance) into stores.",
    ),
    "simulate": LazyCommand(
        "hundi.simulator.cli:simulate",
        "Exchange simulators speaking the real protocols over real sockets.",
    ),
    "replay": LazyCommand(
        "hundi.capture.cli:replay",
        "Turn raw captures (--raw files or recordings) into stored records, as live collection.",
    ),
    "query": LazyCommand(
        "hundi.query:query",
        "Print or export stored records (or server-side aggregates of them).",
    ),
    "ls": LazyCommand(
        "hundi.listing:ls",
        "List what a store holds: streams, time ranges, row counts and gaps.",
    ),
    "serve": LazyCommand(
        "hundi.api.cli:serve",
        "Serve stored data over HTTP for Grafana (Infinity datasource): /api/v1/...",
    ),
    "health": LazyCommand(
        "hundi.healthcheck:health",
        "Exit 0 when the running collector (or API) is healthy, else 1 with one line saying why.",
    ),
    "store": LazyCommand(
        "hundi.stores.embedded.check:store",
        "Maintain a store: check an embedded one; set up, compact or migrate a Cassandra one.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when one of them is run."""

    def __init__(self, *args: Any, lazy: dict[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            return self.lazy[cmd_name].load()
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, from the summaries kept here: listing imports no command."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.lazy:
                # a command object standing in for it shortens the summary exactly as click does
                text = click.Command(name, help=self.lazy[name].summary).get_short_help_str(limit)
            else:
                command = super().get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                text = command.get_short_help_str(limit)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="hundi")
def main() -> None:
    """Wunder's market-data collector, simulator and query tool."""
