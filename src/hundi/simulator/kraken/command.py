"""``hundi simulate kraken``: Kraken's spot WebSocket v2 until Ctrl-C, SIGTERM or ``--duration``.

Registered as the ``simulator`` of the ``kraken`` exchange (``hundi.exchanges.kraken``);
:mod:`hundi.simulator.cli` loads it only when it is run or listed. The first stdout lines are
``ws_url=...`` and ``rest_url=...``, flushed at once; collect from it with
``hundi collect kraken --endpoint <ws_url>/v2``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

from hundi.options import PORT
from hundi.simulator.options import duration_option, host_option

if TYPE_CHECKING:
    from hundi.simulator.kraken.server import KrakenSimulator


@click.command(name="kraken")
@host_option
@click.option("--port", type=PORT, default=0, show_default=True, help="0 = a free port.")
@click.option("--symbols", default="BTC/USD,ETH/USD", show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--rate", type=float, default=200.0, show_default=True,
              help="Market actions a second.")  # fmt: skip
@click.option("--book-interval", type=float, default=0.05, show_default=True,
              help="Seconds between two book updates of a subscription.")  # fmt: skip
@click.option("--heartbeat", type=float, default=1.0, show_default=True, help="Seconds.")
@click.option("--fault", "faults", multiple=True, metavar="KIND:SECONDS",
              help="checksum:N (a corrupted level each N s), disconnect:N, skip_trade:N (a "
                   "trade withheld from the WebSocket, kept for REST), rate_limit:N (a REST "
                   "Trades request refused as too many), refuse_resubscribe:N (a book "
                   "re-subscribe refused as busy).")  # fmt: skip
@duration_option
def kraken(
    host: str,
    port: int,
    symbols: str,
    seed: int,
    rate: float,
    book_interval: float,
    heartbeat: float,
    faults: tuple[str, ...],
    duration: float | None,
) -> None:
    """Kraken spot WebSocket v2 public market data (instrument, book, trade, ticker, ohlc) at
    <ws_url>/v2, v1 books at <ws_url>, and REST Trades (the trade history) at <rest_url>."""
    from hundi.simulator.kraken.server import FAULTS, KrakenSimConfig, KrakenSimulator

    parsed: dict[str, float] = {}
    for text in faults:
        kind, _, raw = text.partition(":")
        try:
            every = float(raw)
        except ValueError:
            every = 0.0
        if kind not in FAULTS or not every > 0:
            known = ", ".join(f"{k}:N" for k in FAULTS)
            raise click.UsageError(f"unknown fault {text!r} (known: {known})")
        parsed[kind] = every
    pairs = tuple(s.strip() for s in symbols.split(",") if s.strip())
    if not pairs or any(s.count("/") != 1 for s in pairs):
        raise click.UsageError(f"--symbols must be Kraken pairs such as BTC/USD, got {symbols!r}")
    if not (rate > 0 and book_interval > 0 and heartbeat > 0):
        raise click.UsageError("--rate, --book-interval and --heartbeat must be > 0")
    config = KrakenSimConfig(
        host=host, port=port, symbols=pairs, seed=seed, rate=rate,
        book_interval_s=book_interval, heartbeat_s=heartbeat, faults=parsed,
    )  # fmt: skip
    try:
        asyncio.run(_serve_kraken(KrakenSimulator(config), duration))
    except OSError as e:
        raise click.ClickException(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


async def _serve_kraken(sim: KrakenSimulator, duration: float | None) -> None:
    from hundi.simulator.site import serve_until_stopped

    await serve_until_stopped(
        sim, duration, lambda: f"stopped: {sim.steps} market actions, {len(sim.fault_log)} faults"
    )
