"""Options every venue simulator command shares (``hundi simulate <venue>``).

A simulator serves a fake exchange with no authentication (a collector speaks the exchange's
public protocol to it), so it listens on a non-loopback address only when asked explicitly:
``HUNDI_SIMULATOR_OPEN=1`` (the compose stack's ``simulator`` service sets it). ``--host
0.0.0.0`` alone once listened on every interface without a word (found by review).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from hundi.options import FiniteFloat, is_loopback

OPEN_ENV = "HUNDI_SIMULATOR_OPEN"

F = TypeVar("F", bound=Callable[..., Any])


def _loopback_unless_opened(ctx: click.Context, param: click.Parameter, host: str) -> str:
    if not is_loopback(host) and os.environ.get(OPEN_ENV) != "1":
        raise click.BadParameter(
            f"{host!r} is not a loopback address: the simulator has no authentication; set "
            f"{OPEN_ENV}=1 to listen there anyway",
            ctx,
            param,
        )
    return host


def host_option(command: F) -> F:
    """``--host`` (default 127.0.0.1; another address only with ``HUNDI_SIMULATOR_OPEN=1``)."""
    return click.option(
        "--host",
        default="127.0.0.1",
        show_default=True,
        callback=_loopback_unless_opened,
        help=f"Address to listen on; a non-loopback one needs {OPEN_ENV}=1 (no authentication).",
    )(command)


def duration_option(command: F) -> F:
    """``--duration`` (seconds > 0; ``-1`` once ran nothing and exited 0)."""
    return click.option(
        "--duration",
        type=FiniteFloat(min=0, min_open=True),
        default=None,
        help="Stop after this many seconds.",
    )(command)
