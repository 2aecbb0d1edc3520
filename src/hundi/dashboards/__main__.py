"""``python -m hundi.dashboards --out DIR``: regenerate the dashboards' JSON (make
grafana-dashboards)."""

from __future__ import annotations

from pathlib import Path

import click

from hundi.dashboards import write_all


@click.command()
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
    help="Folder for the JSON files, e.g. deploy/grafana/dashboards.",
)  # fmt: skip
def main(out: Path) -> None:
    """Write every hundi dashboard as Grafana JSON into OUT."""
    for path in write_all(out):
        click.echo(str(path))


if __name__ == "__main__":
    main()
