"""Run the notebooks headless (nbclient): ``make notebooks`` and the test suite use this.

Each notebook runs top to bottom in a fresh kernel (the ``python3`` kernel of this
interpreter's environment, so it imports this hundi) with ``HUNDI_NOTEBOOK_STORE`` pointing
at the data to use; the first failing cell stops it with the cell's source and error.

``python -m hundi.research.notebooks [--store DIR] [--out DIR] [NOTEBOOK...]``: without
``--store``, a few seconds of simulator data are collected first (spot and USD-M).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NOTEBOOKS = Path(__file__).resolve().parents[3] / "notebooks"
STORE_VARIABLE = "HUNDI_NOTEBOOK_STORE"


class NotebookFailed(Exception):
    """A notebook cell raised; the message names the notebook, the cell and the error."""


@dataclass(frozen=True, slots=True)
class NotebookRun:
    path: Path
    cells: int
    images: int  # image outputs (plots) produced
    seconds: float


def notebook_paths(directory: Path = NOTEBOOKS) -> list[Path]:
    return sorted(directory.glob("*.ipynb"))


def run_notebook(
    path: Path, store: Path, *, timeout: float = 300, output: Path | None = None
) -> NotebookRun:
    """Execute ``path`` against ``store``; write the executed copy to ``output`` if given."""
    import time

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    previous = os.environ.get(STORE_VARIABLE)
    os.environ[STORE_VARIABLE] = str(store)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    started = time.monotonic()
    try:
        client.execute()
    except CellExecutionError as e:
        raise NotebookFailed(f"{path.name}: {e}") from None
    finally:
        if previous is None:
            os.environ.pop(STORE_VARIABLE, None)
        else:
            os.environ[STORE_VARIABLE] = previous
        if output is not None:
            output.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, output / path.name)  # type: ignore[no-untyped-call]
    code = [c for c in notebook.cells if c.cell_type == "code"]
    images = sum(
        1 for c in code for out in c.get("outputs", []) if "image/png" in out.get("data", {})
    )
    return NotebookRun(path, len(code), images, time.monotonic() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hundi.research.notebooks")
    parser.add_argument("notebooks", nargs="*", type=Path, help="Default: notebooks/*.ipynb")
    parser.add_argument("--store", type=Path, help="Data to use; default: collect some now.")
    parser.add_argument("--out", type=Path, help="Write executed notebooks here.")
    parser.add_argument("--seconds", type=float, default=5.0, help="Simulator data to collect.")
    args = parser.parse_args(argv)
    paths = args.notebooks or notebook_paths()
    with tempfile.TemporaryDirectory(prefix="hundi-notebooks-") as scratch:
        store = args.store
        if store is None:
            from hundi.research.demo import collect_simulated

            print(f"collecting {args.seconds:g}s of simulator data (spot + usdm) ...")
            store = collect_simulated(Path(scratch) / "data", seconds=args.seconds)
        failed = 0
        for path in paths:
            try:
                run: Any = run_notebook(path, store, output=args.out)
            except NotebookFailed as e:
                failed += 1
                print(f"FAILED {e}", file=sys.stderr)
                continue
            print(f"ok  {path.name}: {run.cells} cells, {run.images} plots, {run.seconds:.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
