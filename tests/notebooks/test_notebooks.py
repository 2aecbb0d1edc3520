"""Every notebook runs headless (nbclient, a real kernel) against data collected from the
simulator for this test; a failing cell fails the suite, and each notebook must plot."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

import hundi
from hundi.research.demo import collect_simulated
from hundi.research.notebooks import NotebookFailed, notebook_paths, run_notebook

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few seconds of spot and USD-M, collected at the same time into one store."""
    path = collect_simulated(tmp_path_factory.mktemp("notebooks") / "data", seconds=4)
    for symbol in ("BTC-USDT", "BTC-USDT-PERP"):
        for channel in ("trades", "bbo", "book"):
            assert len(hundi.read(path, exchange="binance", symbol=symbol, channel=channel))
    return path


def test_the_three_notebooks_are_there() -> None:
    names = [p.name for p in notebook_paths(NOTEBOOKS)]
    assert names == ["01-quickstart.ipynb", "02-order-book.ipynb", "03-cross-market.ipynb"]
    for path in notebook_paths(NOTEBOOKS):
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        # committed without outputs: what runs is what is read
        assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", [p.name for p in notebook_paths(NOTEBOOKS)])
@pytest.mark.slow
def test_notebook_runs_and_plots(name: str, store: Path, tmp_path: Path) -> None:
    run = run_notebook(NOTEBOOKS / name, store, timeout=240, output=tmp_path)
    assert run.images >= 1, f"{name} drew nothing"
    executed = nbformat.read(tmp_path / name, as_version=4)
    errors = [
        out
        for cell in executed.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors


@pytest.mark.slow
def test_a_failing_cell_fails_with_the_cell_named(store: Path, tmp_path: Path) -> None:
    broken = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("import hundi"),
            nbformat.v4.new_code_cell("hundi.read(STORE_THAT_IS_NOT_DEFINED, exchange='x')"),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    path = tmp_path / "broken.ipynb"
    nbformat.write(broken, path)
    with pytest.raises(NotebookFailed, match="STORE_THAT_IS_NOT_DEFINED"):
        run_notebook(path, store, timeout=60)
