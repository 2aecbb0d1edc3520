"""``hundi simulate bitfinex``: the Bitfinex v2 WebSocket (public channels on the shared
synthetic market, and the authenticated channel 0 when BITFINEX_API_KEY/_SECRET are set) until
Ctrl-C, SIGTERM or ``--duration``.

Registered as the ``simulator`` of the ``bitfinex`` exchange (``hundi.exchanges.bitfinex``);
:mod:`hundi.simulator.cli` loads it only when it is run or listed. The first stdout lines are
``ws_url=...`` and ``rest_url=...``, flushed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import click

from hundi.options import PORT
from hundi.simulator.options import duration_option, host_option

if TYPE_CHECKING:
    from hundi.simulator.bitfinex.server import BitfinexSimulator


@click.command(name="bitfinex")
@host_option
@click.option("--port", type=PORT, default=0, show_default=True, help="0 = a free port.")
@click.option("--symbols", default="tBTCUSD,tETHUSD", show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--order-interval", type=float, default=0.05, show_default=True,
              help="Seconds between two order updates of the account.")  # fmt: skip
@click.option("--heartbeat", type=float, default=15.0, show_default=True, help="Seconds.")
@click.option("--private-fault", "private_faults", multiple=True, metavar="drop:N",
              help="drop:N aborts every socket each N s; repeatable.")  # fmt: skip
@click.option("--fault", "faults", multiple=True, metavar="KIND:N",
              help="Public-channel fault every N s: checksum, seq, reconnect, drop or "
                   "drop_trades (a drop whose trades until the resubscribe only REST serves); "
                   "repeatable.")  # fmt: skip
@click.option("--rate", type=float, default=50.0, show_default=True,
              help="Public market actions per second.")  # fmt: skip
@duration_option
def bitfinex(
    host: str,
    port: int,
    symbols: str,
    seed: int,
    order_interval: float,
    heartbeat: float,
    private_faults: tuple[str, ...],
    faults: tuple[str, ...],
    rate: float,
    duration: float | None,
) -> None:
    """Bitfinex v2 WebSocket: public channels; orders and fills of the account in
    BITFINEX_API_KEY/_SECRET when set."""
    from hundi.exchanges.credentials import CredentialError, Credentials, require_credentials
    from hundi.simulator.bitfinex.server import FAULTS, BitfinexSimConfig, BitfinexSimulator

    credentials: Credentials | None = None
    try:
        if private_faults:
            credentials = require_credentials("bitfinex")
        else:
            with contextlib.suppress(CredentialError):
                credentials = require_credentials("bitfinex")
        every: dict[str, float] = {}
        for text, known in [(t, ("drop",)) for t in private_faults] + [(t, FAULTS) for t in faults]:
            kind, _, raw = text.partition(":")
            if kind not in known or not raw.replace(".", "", 1).isdigit() or not float(raw) > 0:
                names = ", ".join(f"{k}:N" for k in known)
                raise ValueError(f"unknown fault {text!r} (known: {names})")
            every[kind] = float(raw)
    except (CredentialError, ValueError) as e:
        raise click.UsageError(str(e)) from None
    if not order_interval > 0 or not heartbeat > 0 or not rate > 0:
        raise click.UsageError("--order-interval, --heartbeat and --rate must be > 0")
    config = BitfinexSimConfig(
        credentials=credentials, host=host, port=port,
        symbols=tuple(s.strip() for s in symbols.split(",") if s.strip()),
        order_interval_s=order_interval, heartbeat_s=heartbeat, faults=every, seed=seed,
        rate=rate,
    )  # fmt: skip
    try:
        asyncio.run(_serve_bitfinex(BitfinexSimulator(config), duration))
    except OSError as e:
        raise click.ClickException(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


async def _serve_bitfinex(sim: BitfinexSimulator, duration: float | None) -> None:
    from hundi.simulator.site import serve_until_stopped

    await serve_until_stopped(
        sim,
        duration,
        lambda: f"stopped: {sim.steps} order updates, {sim.public.actions} market actions",
    )
