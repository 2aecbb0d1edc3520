"""The suite's own shape: what must hold for a fresh clone to collect it."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).parent


def test_test_module_basenames_are_unique() -> None:
    # Test folders are not packages, so pytest imports modules by basename: two files with the
    # same name fail collection on a clean checkout (CI failed once on tests/book/test_replay.py
    # next to tests/capture/test_replay.py; a warm __pycache__ hid it locally).
    where: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        if path.name.startswith("test_") or path.name == "conftest.py":
            continue
        where[path.name].append(str(path.relative_to(TESTS)))
    for path in TESTS.rglob("test_*.py"):
        where[path.name].append(str(path.relative_to(TESTS)))
    clashes = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert not clashes, f"test modules and helpers need unique basenames: {clashes}"
