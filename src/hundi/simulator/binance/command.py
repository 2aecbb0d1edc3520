"""``hundi simulate binance``: the Binance simulator until Ctrl-C, SIGTERM or ``--duration``.

Registered as the ``simulator`` of the ``binance`` exchange (``hundi.exchanges.binance``);
:mod:`hundi.simulator.cli` loads it only when it is run or listed. The first stdout lines are
machine-readable (``ws_url=...``, ``rest_url=...``, ``market=...``), flushed at once. The
server (aiohttp) is imported when the command runs, not when it is listed.

In process, the same server is ``hundi.simulator.binance.server.BinanceSimulator``::

    async with BinanceSimulator(SimulatorConfig(symbols=("BTCUSDT",))) as sim:
        sim.ws_url, sim.rest_url, sim.stats()

``stats()`` (also ``GET /sim/stats``) is JSON: ``connections[]`` each with ``id``, ``path``,
``opened_ns``, ``closed_ns``, ``close_reason``, ``subscriptions``, ``frames_sent``, ``bytes_sent``
and ``streams`` = {stream name: {``frames``, ``first``, ``last``, ``count``, ``ranges`` (ids in
send order, ``[[first, last], ...]``), ``truncated``}} (ids: aggTrade ``a``, trade ``t``, depth
``U``..``u``); ``symbols`` {SYMBOL: last ids, ``oldest_kept_agg_id`` (the oldest id REST
``aggTrades`` still answers: the last ``trade_history`` aggTrades are kept, older ids answer
``[]``)}; ``faults[]`` each ``{kind, at_ns, conn, symbol,
stream, first_id, last_id, detail}``; totals ``messages_generated``, ``messages_per_s``,
``frames_sent``, ``bytes_sent``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hundi.options import PORT
from hundi.simulator.binance.config import FaultSpec, FaultSpecError, SimulatorConfig
from hundi.simulator.binance.rules import BinanceVariant
from hundi.simulator.options import duration_option, host_option

if TYPE_CHECKING:
    from hundi.simulator.binance.private import BinancePrivate
    from hundi.simulator.binance.server import BinanceSimulator


DEFAULT_SYMBOLS = {
    BinanceVariant.SPOT: "BTCUSDT,ETHUSDT",
    BinanceVariant.USDM: "BTCUSDT,ETHUSDT",
    BinanceVariant.COINM: "BTCUSD_PERP,ETHUSD_PERP",
}


@click.command(name="binance")
@click.option("--market", type=click.Choice([m.value for m in BinanceVariant]), default="spot")
@host_option
@click.option("--port", type=PORT, default=0, show_default=True, help="0 = a free port.")
@click.option(
    "--symbols",
    default=None,
    help="Native symbols. Default: BTCUSDT,ETHUSDT (coinm: BTCUSD_PERP,ETHUSD_PERP).",
)
@click.option(
    "--rate",
    type=float,
    default=1000.0,
    show_default=True,
    help="Messages per second generated over all symbols; 0 = as fast as possible.",
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--fault", "faults", multiple=True, metavar="KIND[:PARAM]", help="Repeatable.")
@click.option(
    "--replay",
    "replay",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Play captured frames instead of the synthetic market (repeatable).",
)
@click.option("--speed", type=click.Choice(["original", "max"]), default="original")
@click.option("--ping-interval", type=float, default=None, help="Seconds (Binance: 20 / 180).")
@click.option("--pong-timeout", type=float, default=None, help="Seconds (Binance: 60 / 600).")
@click.option("--max-connection-age", type=float, default=24 * 3600.0, show_default=True)
@click.option("--max-send-buffer", type=int, default=8 * 1024 * 1024, show_default=True)
@duration_option
@click.option("--trade-history", type=click.IntRange(min=0), default=100_000, show_default=True,
              help="Newest aggTrades per symbol REST answers; older ids: [].")  # fmt: skip
@click.option(
    "--private",
    is_flag=True,
    help="Serve user-data streams for the account in BINANCE_API_KEY/_SECRET "
    "(environment or .secret.binance.env).",
)
@click.option("--order-interval", type=float, default=0.05, show_default=True,
              help="Seconds between two order updates of the private account.")  # fmt: skip
@click.option("--listen-key-ttl", type=float, default=3600.0, show_default=True,
              help="USD-M listen key lifetime without keep-alive, seconds.")  # fmt: skip
@click.option("--private-fault", "private_faults", multiple=True, metavar="KIND:N",
              help="terminate:N, listen-key-expire:N, drop:N (each N s); repeatable.")  # fmt: skip
def binance(
    market: str,
    host: str,
    port: int,
    symbols: str | None,
    rate: float,
    seed: int,
    faults: tuple[str, ...],
    replay: tuple[Path, ...],
    speed: str,
    ping_interval: float | None,
    pong_timeout: float | None,
    max_connection_age: float,
    max_send_buffer: int,
    duration: float | None,
    trade_history: int,
    private: bool,
    order_interval: float,
    listen_key_ttl: float,
    private_faults: tuple[str, ...],
) -> None:
    """Binance spot, USD-M or COIN-M: combined/raw streams, live SUBSCRIBE, REST snapshots."""
    try:
        config = SimulatorConfig(
            market=BinanceVariant(market),
            host=host,
            port=port,
            symbols=tuple((symbols or DEFAULT_SYMBOLS[BinanceVariant(market)]).split(",")),
            rate=rate,
            seed=seed,
            faults=tuple(FaultSpec.parse(f) for f in faults),
            replay=replay,
            speed=speed,
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
            max_connection_age=max_connection_age,
            max_send_buffer=max_send_buffer,
            duration=duration,
            trade_history=trade_history,
        )
    except (FaultSpecError, ValueError) as e:
        raise click.UsageError(str(e)) from None
    from hundi.simulator.binance.server import BinanceSimulator

    try:
        sim = BinanceSimulator(config)  # reads --replay files: bad input fails here, cleanly
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    if private or private_faults:
        sim.private = _private(config, order_interval, listen_key_ttl, private_faults)
    try:
        asyncio.run(_serve(sim))
    except OSError as e:
        raise click.ClickException(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


def _private(
    config: SimulatorConfig,
    order_interval: float,
    listen_key_ttl: float,
    faults: tuple[str, ...],
) -> BinancePrivate:
    from hundi.exchanges.credentials import CredentialError, require_credentials
    from hundi.simulator.binance.private import BinancePrivate, PrivateConfig

    try:
        credentials = require_credentials("binance")
        parsed = dict(PrivateConfig.parse_fault(f) for f in faults)
    except (CredentialError, ValueError) as e:
        raise click.UsageError(str(e)) from None
    if not order_interval > 0 or not listen_key_ttl > 0:
        raise click.UsageError("--order-interval and --listen-key-ttl must be > 0")
    return BinancePrivate(
        config.market,
        PrivateConfig(
            credentials=credentials,
            order_interval_s=order_interval,
            faults=parsed,
            listen_key_ttl_s=listen_key_ttl,
            ping_interval_s=config.effective_ping_interval,
            seed=config.seed,
        ),
        config.symbols,
    )


async def _serve(sim: BinanceSimulator) -> None:
    from hundi.simulator.site import serve_until_stopped

    def farewell() -> str:
        stats = sim.stats()
        return (
            f"stopped: {stats['messages_generated']} messages generated "
            f"({stats['messages_per_s']:.0f}/s), {stats['frames_sent']} frames sent, "
            f"{stats['faults_total']} faults"
        )

    await serve_until_stopped(
        sim, sim.config.duration, farewell, announce=[f"market={sim.config.market.value}"]
    )
