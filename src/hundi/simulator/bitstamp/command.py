"""``hundi simulate bitstamp``: Bitstamp WebSocket v2 and REST until Ctrl-C, SIGTERM or
``--duration``.

Registered as the ``simulator`` of the ``bitstamp`` exchange (``hundi.exchanges.bitstamp``);
:mod:`hundi.simulator.cli` loads it only when it is run or listed. The first stdout lines are
``ws_url=...`` and ``rest_url=...``, flushed at once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

from hundi.options import PORT
from hundi.simulator.options import duration_option, host_option

if TYPE_CHECKING:
    from hundi.simulator.bitstamp.server import BitstampSimulator


def parse_faults(texts: tuple[str, ...]) -> dict[str, float]:
    """``kind:N`` options → {kind: N}; ValueError (one line) for anything else."""
    from hundi.simulator.bitstamp.server import FAULTS

    faults: dict[str, float] = {}
    for text in texts:
        kind, _, raw = text.partition(":")
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if kind not in FAULTS or not value > 0:
            raise ValueError(
                f"unknown fault {text!r} (known: stale-snapshot:N, reconnect:SECONDS, "
                "drop:SECONDS, rest-lag:SECONDS)"
            )
        faults[kind] = value
    return faults


@click.command(name="bitstamp")
@host_option
@click.option("--port", type=PORT, default=0, show_default=True, help="0 = a free port.")
@click.option("--symbols", default="btcusd,etheur", show_default=True, help="Bitstamp pairs.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--rate", type=float, default=200.0, show_default=True,
              help="Market actions per second.")  # fmt: skip
@click.option("--steps", type=int, default=None,
              help="Stop the market after this many actions (the streams go quiet).")  # fmt: skip
@click.option("--fault", "faults", multiple=True, metavar="KIND:N",
              help="stale-snapshot:N (first N order_book answers stale), "
                   "reconnect:SECONDS (bts:request_reconnect), drop:SECONDS (abort sockets, "
                   "refuse new ones for 0.5 s), rest-lag:SECONDS (order_book answers that old); "
                   "repeatable.")  # fmt: skip
@duration_option
def bitstamp(
    host: str,
    port: int,
    symbols: str,
    seed: int,
    rate: float,
    steps: int | None,
    faults: tuple[str, ...],
    duration: float | None,
) -> None:
    """Bitstamp WebSocket v2 (live_trades, diff_order_book, order_book) and REST order_book."""
    from hundi.exchanges.bitstamp.symbols import split
    from hundi.simulator.bitstamp.server import BitstampSimConfig, BitstampSimulator

    pairs = tuple(s.strip() for s in symbols.split(",") if s.strip())
    try:
        for pair in pairs:
            split(pair)
        parsed = parse_faults(faults)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if not pairs:
        raise click.UsageError("--symbols: no pairs")
    if not rate > 0:
        raise click.UsageError("--rate must be > 0")
    if steps is not None and steps < 0:
        raise click.UsageError("--steps must be >= 0")
    config = BitstampSimConfig(
        host=host, port=port, symbols=pairs, seed=seed, rate=rate, steps=steps, faults=parsed
    )
    try:
        asyncio.run(_serve(BitstampSimulator(config), duration))
    except OSError as e:
        raise click.ClickException(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


async def _serve(sim: BitstampSimulator, duration: float | None) -> None:
    from hundi.simulator.site import serve_until_stopped

    await serve_until_stopped(sim, duration, lambda: f"stopped: {sim.steps} market actions")
