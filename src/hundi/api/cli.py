"""``hundi serve``: the HTTP API Grafana's Infinity datasource reads (see :mod:`hundi.api`)."""

from __future__ import annotations

import errno
import logging
import socket
import sys

import click

from hundi.api.queries import DEFAULT_MAX_POINTS, DEFAULT_MAX_ROWS, Limits
from hundi.config import ConfigError, load_settings
from hundi.logs import console_logging
from hundi.options import FiniteFloat
from hundi.research import ResearchError
from hundi.research.bars import interval_ns
from hundi.stores.base import StoreError, describe_url, open_store, scheme_of


def _listen(host: str, port: int) -> list[socket.socket]:
    """Bound sockets for every address ``host`` names (as aiohttp would bind them), made here so
    a port in use is one line before anything starts. OSError when one cannot be bound."""
    sockets: list[socket.socket] = []
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            port = port or sock.getsockname()[1]  # port 0: the others take the one given
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"hundi serve: port {port} on {host} is in use"
    return f"hundi serve: cannot listen on {host}:{port}: {exc.strerror or exc}"


def _duration(text: str) -> int:
    try:
        return interval_ns(text)
    except ResearchError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option(
    "--store", "store_url", default=None,
    help="Store URL to read (./data, cassandra://host/keyspace...); default: the first of "
    "HUNDI_STORE (environment or .hundi.env).",
)  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--max-range", default="1d", show_default=True,
    help="Longest from..to one request may ask for (250ms, 1h, 1d...).",
)  # fmt: skip
@click.option(
    "--max-points", type=click.IntRange(min=1), default=DEFAULT_MAX_POINTS, show_default=True,
    help="Most intervals (bars, buckets) one request may ask for.",
)  # fmt: skip
@click.option(
    "--max-rows", type=click.IntRange(min=1), default=DEFAULT_MAX_ROWS, show_default=True,
    help="Most raw rows (trades, quotes, events) one request may read.",
)  # fmt: skip
@click.option(
    "--cache-ttl", type=FiniteFloat(min=0), default=0.0, show_default=True,
    help="Seconds an answer is reused for the same request after it is computed (identical "
    "requests arriving while it is computed always share it); answers may then be that old.",
)  # fmt: skip
def serve(
    store_url: str | None,
    host: str,
    port: int,
    max_range: str,
    max_points: int,
    max_rows: int,
    cache_ttl: float,
) -> None:
    """Serve stored data over HTTP for Grafana (Infinity datasource): /api/v1/..."""
    from aiohttp import web

    from hundi.api.auth import SECRET_ENV_FILE, TOKEN_ENV, is_loopback, load_token
    from hundi.api.server import create_app
    from hundi.pipeline.health import serve_health

    try:
        settings = load_settings()
        token = load_token()
        console_logging(stream=settings.log_stream, log_format=settings.log_format)
    except ConfigError as exc:
        click.echo(f"hundi serve: {exc}", err=True)
        sys.exit(2)
    if token is None and not is_loopback(host):
        click.echo(
            f"hundi serve: --host {host} can be reached from other machines: set {TOKEN_ENV} "
            f"(environment or {SECRET_ENV_FILE}) so only holders of the token can read",
            err=True,
        )
        sys.exit(2)
    if store_url is None:
        store_url = settings.store[0]
    limits = Limits(max_range_ns=_duration(max_range), max_points=max_points, max_rows=max_rows)
    try:
        app = create_app(store_url, limits, token=token, cache_ttl_s=cache_ttl)
        if scheme_of(store_url) == "file":
            # a folder is checked now (a typo would serve 503s forever); a server store is not:
            # the API may start before its cluster, and answers 503 until it is up
            open_store(store_url, read_only=True).close()
    except StoreError as exc:
        click.echo(f"hundi serve: {exc}", err=True)
        sys.exit(2)
    try:
        sockets = _listen(host, port)
    except OSError as exc:
        click.echo(_cannot_listen(host, port, exc), err=True)
        sys.exit(2)
    port = sockets[0].getsockname()[1]
    # The container's HEALTHCHECK (`hundi health`) reads this file; HTTP probes use /api/v1/health.
    app.cleanup_ctx.append(serve_health(settings))
    auth = "token required" if token is not None else "no token: loopback only"
    serving = f"hundi serve: {describe_url(store_url)} on http://{host}:{port}/api/v1/ ({auth})"
    click.echo(serving, err=True)
    # with HUNDI_LOG_STREAM=stdout this INFO line (and every later one) reaches stdout
    logging.getLogger("hundi.api").info("%s", serving)
    web.run_app(app, sock=sockets, print=None, access_log=None)
