"""``hundi simulate bybit``: Bybit v5 public WebSockets and REST until Ctrl-C, SIGTERM or
``--duration``.

Registered as the ``simulator`` of the ``bybit`` exchange (``hundi.exchanges.bybit``);
:mod:`hundi.simulator.cli` loads it only when it is run or listed. The first stdout lines are
``ws_url=...`` and ``rest_url=...``, flushed at once.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import click

from hundi.options import PORT
from hundi.simulator.options import duration_option, host_option

if TYPE_CHECKING:
    from hundi.simulator.bybit.server import BybitSimulator

FAULT_KINDS = ("drop", "restart", "skip", "stale-snapshot")
SYMBOL = re.compile(r"^[A-Z0-9]+(USDT|USDC|USD)$")


def parse_faults(texts: tuple[str, ...]) -> dict[str, float]:
    """``kind:SECONDS`` options → {kind: seconds}; ValueError (one line) for anything else."""
    faults: dict[str, float] = {}
    for text in texts:
        kind, _, raw = text.partition(":")
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if kind not in FAULT_KINDS or not value > 0:
            raise ValueError(
                f"unknown fault {text!r} (known: drop:SECONDS, restart:SECONDS, skip:SECONDS, "
                "stale-snapshot:N)"
            )
        faults[kind] = value
    return faults


@click.command(name="bybit")
@host_option
@click.option("--port", type=PORT, default=0, show_default=True, help="0 = a free port.")
@click.option("--symbols", default="BTCUSDT,ETHUSDT,BTCUSD", show_default=True,
              help="Bybit symbols; names ending in USD are inverse perpetuals, the others spot "
                   "pairs and linear perpetuals.")  # fmt: skip
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--rate", type=float, default=200.0, show_default=True,
              help="Market actions per second.")  # fmt: skip
@click.option("--steps", type=int, default=None,
              help="Stop the market after this many actions (the streams go quiet).")  # fmt: skip
@click.option("--fault", "faults", multiple=True, metavar="KIND:SECONDS",
              help="drop:S (abort every socket), restart:S (book service restart: u=1 "
                   "snapshots), skip:S (a book delta lost: u skips one), stale-snapshot:N "
                   "(the first N full_orderbook answers stale); repeatable.")  # fmt: skip
@duration_option
def bybit(
    host: str,
    port: int,
    symbols: str,
    seed: int,
    rate: float,
    steps: int | None,
    faults: tuple[str, ...],
    duration: float | None,
) -> None:
    """Bybit v5 public WebSockets (spot, linear, inverse) and REST instruments-info/orderbook."""
    from hundi.simulator.bybit.server import BybitSimConfig, BybitSimulator

    names = tuple(s.strip() for s in symbols.split(",") if s.strip())
    if not names:
        raise click.UsageError("--symbols: no symbols")
    for name in names:
        if not SYMBOL.match(name):
            raise click.UsageError(f"--symbols: {name!r} is not a USDT, USDC or USD symbol")
    try:
        parsed = parse_faults(faults)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if not rate > 0:
        raise click.UsageError("--rate must be > 0")
    if steps is not None and steps < 0:
        raise click.UsageError("--steps must be >= 0")
    config = BybitSimConfig(
        host=host, port=port, symbols=names, seed=seed, rate=rate, steps=steps, faults=parsed
    )
    try:
        asyncio.run(_serve(BybitSimulator(config), duration))
    except OSError as e:
        raise click.ClickException(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


async def _serve(sim: BybitSimulator, duration: float | None) -> None:
    from hundi.simulator.site import serve_until_stopped

    await serve_until_stopped(sim, duration, lambda: f"stopped: {sim.steps} market actions")
