"""``hundi simulate okx``: OKX v5 public WebSockets and REST until Ctrl-C, SIGTERM or
``--duration``.

Registered as the ``simulator`` of the ``okx`` exchange; the first stdout lines are
``ws_url=...`` and ``rest_url=...``; collect from it with ``hundi collect okx --endpoint
<ws_url>/ws/v5/public --rest-endpoint <rest_url>`` (the business URL, for candles, is derived).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

from hundi.options import PORT
from hundi.simulator.options import duration_option, host_option

if TYPE_CHECKING:
    from hundi.simulator.okx.server import OkxSimulator


def parse_faults(texts: tuple[str, ...]) -> dict[str, float]:
    """``kind:N`` options → {kind: N}; ValueError (one line) for anything else."""
    from hundi.simulator.okx.server import FAULTS

    faults: dict[str, float] = {}
    for text in texts:
        kind, _, raw = text.partition(":")
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if kind not in FAULTS or not value > 0:
            known = ", ".join(f"{k}:N" for k in FAULTS)
            raise ValueError(f"unknown fault {text!r} (known: {known})")
        faults[kind] = value
    return faults


@click.command(name="okx")
@host_option
@click.option("--port", type=PORT, default=0, show_default=True, help="0 = a free port.")
@click.option("--symbols", default="BTC-USDT,BTC-USDT-SWAP,BTC-USD-261225", show_default=True,
              help="OKX instrument ids (spot, swaps, dated futures).")  # fmt: skip
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--rate", type=float, default=200.0, show_default=True,
              help="Market actions per second.")  # fmt: skip
@click.option("--steps", type=int, default=None,
              help="Stop the market after this many actions (the streams go quiet).")  # fmt: skip
@click.option("--fault", "faults", multiple=True, metavar="KIND:N",
              help="disconnect:SECONDS (abort sockets), seq-reset:SECONDS (books renumbered "
                   "lower), skip:SECONDS (a book push withheld), trade-skip:SECONDS (a trades "
                   "push withheld: a tradeId gap), stale-snapshot:N (first N "
                   "REST books from before the warm-up); repeatable.")  # fmt: skip
@duration_option
def okx(
    host: str,
    port: int,
    symbols: str,
    seed: int,
    rate: float,
    steps: int | None,
    faults: tuple[str, ...],
    duration: float | None,
) -> None:
    """OKX v5 public market data: trades, bbo-tbt, books (seqId, no snapshot), tickers,
    derivatives channels, liquidation-orders, candle1m (business) and REST books/instruments."""
    from hundi.exchanges.okx.symbols import market_of
    from hundi.simulator.okx.server import OkxSimConfig, OkxSimulator

    insts = tuple(s.strip() for s in symbols.split(",") if s.strip())
    try:
        for inst in insts:
            market_of(inst)
        parsed = parse_faults(faults)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if not insts:
        raise click.UsageError("--symbols: no instruments")
    if not rate > 0:
        raise click.UsageError("--rate must be > 0")
    if steps is not None and steps < 0:
        raise click.UsageError("--steps must be >= 0")
    config = OkxSimConfig(
        host=host, port=port, symbols=insts, seed=seed, rate=rate, steps=steps, faults=parsed
    )
    try:
        asyncio.run(_serve(OkxSimulator(config), duration))
    except OSError as e:
        raise click.ClickException(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


async def _serve(sim: OkxSimulator, duration: float | None) -> None:
    from hundi.simulator.site import serve_until_stopped

    await serve_until_stopped(sim, duration, lambda: f"stopped: {sim.steps} market actions")
