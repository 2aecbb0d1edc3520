"""``hundi simulate coinbase``: Coinbase Exchange ws-feed + REST market data until Ctrl-C,
SIGTERM or ``--duration``.

Registered as the ``simulator`` of the ``coinbase`` exchange (``hundi.exchanges.coinbase``);
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
    from hundi.simulator.coinbase.server import CoinbaseSimulator


def parse_faults(texts: tuple[str, ...]) -> dict[str, float]:
    """``kind:SECONDS`` options → {kind: period}; ValueError (one line) otherwise."""
    from hundi.simulator.coinbase.server import FAULTS

    faults: dict[str, float] = {}
    for text in texts:
        kind, _, raw = text.partition(":")
        try:
            period = float(raw)
        except ValueError:
            period = 0.0
        if kind not in FAULTS or not period > 0:
            raise ValueError(
                f"bad fault {text!r} (use KIND:SECONDS, KIND one of {', '.join(FAULTS)})"
            )
        faults[kind] = period
    return faults


@click.command(name="coinbase")
@host_option
@click.option("--port", type=PORT, default=0, show_default=True, help="0 = a free port.")
@click.option("--symbols", default="BTC-USD,ETH-USD", show_default=True, help="Product ids.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--rate", type=float, default=200.0, show_default=True,
              help="Market actions per second, all products together.")  # fmt: skip
@click.option("--heartbeat", type=float, default=1.0, show_default=True, help="Seconds.")
@click.option("--trade-history", type=int, default=100_000, show_default=True,
              help="Trades per product REST /products/{id}/trades keeps.")  # fmt: skip
@click.option("--fault", "faults", multiple=True, metavar="KIND:SECONDS",
              help="skip_match, disconnect, cross_book, skip_sequence or stale_snapshot "
                   "every SECONDS; repeatable.")  # fmt: skip
@duration_option
def coinbase(
    host: str,
    port: int,
    symbols: str,
    seed: int,
    rate: float,
    heartbeat: float,
    trade_history: int,
    faults: tuple[str, ...],
    duration: float | None,
) -> None:
    """Coinbase Exchange market data: matches, ticker, level2_batch, heartbeat, full; REST
    /products, /products/{id}/trades and /products/{id}/book?level=3."""
    from hundi.simulator.coinbase.server import CoinbaseSimConfig, CoinbaseSimulator

    products = tuple(s.strip() for s in symbols.split(",") if s.strip())
    try:
        parsed = parse_faults(faults)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if not products:
        raise click.UsageError("--symbols: give at least one product id, e.g. BTC-USD")
    if not rate > 0 or not heartbeat > 0 or trade_history < 1:
        raise click.UsageError("--rate and --heartbeat must be > 0, --trade-history >= 1")
    config = CoinbaseSimConfig(
        host=host, port=port, symbols=products, seed=seed, rate=rate, heartbeat_s=heartbeat,
        trade_history=trade_history, faults=parsed,
    )  # fmt: skip
    try:
        asyncio.run(_serve(CoinbaseSimulator(config), duration))
    except OSError as e:
        raise click.ClickException(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


async def _serve(sim: CoinbaseSimulator, duration: float | None) -> None:
    from hundi.simulator.site import serve_until_stopped

    await serve_until_stopped(
        sim, duration, lambda: f"stopped: {sim.steps} market actions, {sim.matches_sent} matches"
    )
