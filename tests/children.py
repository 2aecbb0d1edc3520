"""Child processes of a test whose stderr a failure report shows.

``spawn`` is ``subprocess.Popen`` with stderr (and, unless the test reads it, stdout) sent to a
file instead of a pipe: a pipe nobody reads while the child runs fills up and blocks the child,
and a test that fails before ``communicate`` would lose what the child said. Every child spawned
and every :class:`~hundi.simulator.process.SimulatorProcess` started during a test is listed,
and ``tests/conftest.py`` adds the tail of each one's stderr to the report of a failing test.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

TAIL_CHARS = 4000

# (label, reader of the stderr tail) for the children of the running test
_children: list[tuple[str, Callable[[], str]]] = []


def register(label: str, tail: Callable[[], str]) -> None:
    _children.append((label, tail))


def take_all() -> list[tuple[str, Callable[[], str]]]:
    taken = list(_children)
    _children.clear()
    return taken


def _file_tail(handle: IO[str]) -> str:
    handle.flush()
    handle.seek(0)
    return handle.read()[-TAIL_CHARS:]


class Child(subprocess.Popen[str]):
    """A ``Popen`` whose stderr is kept in a file: :meth:`stderr_text` at any time."""

    stderr_file: IO[str]
    stdout_file: IO[str] | None

    def stderr_text(self) -> str:
        """Everything the child wrote to stderr so far."""
        self.stderr_file.flush()
        self.stderr_file.seek(0)
        return self.stderr_file.read()

    def stdout_text(self) -> str:
        assert self.stdout_file is not None, "stdout was not sent to a file"
        self.stdout_file.flush()
        self.stdout_file.seek(0)
        return self.stdout_file.read()


def spawn(args: Sequence[str | Path], *, stdout: Any = "file", **popen: Any) -> Child:
    """Start ``args`` with stderr in a temporary file (and stdout too unless ``stdout`` is given,
    e.g. ``subprocess.PIPE`` for a test that reads it line by line)."""
    err = tempfile.TemporaryFile("w+", prefix="child-stderr-")  # noqa: SIM115 (the child keeps it)
    out = (
        tempfile.TemporaryFile("w+", prefix="child-stdout-")  # noqa: SIM115
        if stdout == "file"
        else None
    )
    child = Child(
        [str(a) for a in args],
        stdout=out if out is not None else stdout,
        stderr=err,
        text=True,
        **popen,
    )
    child.stderr_file = err
    child.stdout_file = out
    register(" ".join(str(a) for a in args)[:200], lambda: _file_tail(err))
    return child
