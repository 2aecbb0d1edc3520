"""Command-line options: floats that refuse NaN and infinity, ports, listen addresses, output
files.

``click.FloatRange`` lets ``nan`` through (every comparison with it is false), so
``--duration nan`` ran and said ok, and ``hundi health --max-age nan`` called a stale file
fresh. Light on purpose: ``hundi health`` imports it.
"""

from __future__ import annotations

import ipaddress
import math
import os
from pathlib import Path
from typing import Any

import click


class FiniteFloat(click.FloatRange):
    """A ``FloatRange`` of finite numbers."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; anything else may be reached by others."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it resolves to something reachable


#: A TCP port to listen on (0: any free one); a bigger number was a traceback from bind().
PORT = click.IntRange(0, 65535)

__all__ = ["PORT", "FiniteFloat"]


def unwritable_file(option: str, path: Path) -> str | None:
    """Why ``path`` (an output file an option names) cannot be written, checked before a run
    stores anything (a directory, or a missing one, was a traceback at the run's end); None
    when it can."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        return f"{option} {str(path)!r} is a directory; give a file name"
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        return f"{option} {str(path)!r}: directory {str(parent)!r} is not writable"
    return None
