"""``hundi`` command line. Each command lives next to the code it drives; this only groups them."""

from __future__ import annotations

import click

from hundi import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="hundi")
def main() -> None:
    """Wunder's market-data collector, simulator and query tool."""


def _register() -> None:
    from hundi.api.cli import serve
    from hundi.capture.cli import replay
    from hundi.pipeline.cli import collect
    from hundi.pipeline.health import health
    from hundi.query import query
    from hundi.simulator.cli import simulate
    from hundi.stores.embedded.check import store

    main.add_command(collect)
    main.add_command(simulate)
    main.add_command(replay)
    main.add_command(query)
    main.add_command(serve)
    main.add_command(health)
    main.add_command(store)


_register()
