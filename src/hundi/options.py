"""Command-line number options: floats that refuse NaN and infinity, ports.

``click.FloatRange`` lets ``nan`` through (every comparison with it is false), so
``--duration nan`` ran and said ok, and ``hundi health --max-age nan`` called a stale file
fresh. Light on purpose: ``hundi health`` imports it.
"""

from __future__ import annotations

import math
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


#: A TCP port to listen on (0: any free one); a bigger number was a traceback from bind().
PORT = click.IntRange(0, 65535)

__all__ = ["PORT", "FiniteFloat"]
