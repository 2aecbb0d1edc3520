"""What every venue simulator does the same way around its aiohttp app: ``async with``, a real
listening socket (port 0: any free one, known as soon as it listens) and the URLs clients use."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, Self, TypeVar

from aiohttp import web


class ListenConfig(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


C = TypeVar("C", bound=ListenConfig)


class SimulatorSite(Generic[C]):
    """Base of the venue simulators: ``start`` builds the app and calls :meth:`_listen`, ``stop``
    ends with :meth:`_unlisten`."""

    config: C
    port: int
    _runner: web.AppRunner | None

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def ws_url(self) -> str:
        return f"ws://{self._url_host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self._url_host}:{self.port}"

    @property
    def _url_host(self) -> str:
        host = self.config.host
        return f"[{host}]" if ":" in host else host

    async def _listen(self, app: web.Application) -> None:
        """Serve ``app`` on the configured host and port; ``port`` becomes the real one."""
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        host = self.config.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, self.config.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def _unlisten(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def serve_until_stopped(
    sim: SimulatorSite[Any],
    duration: float | None,
    farewell: Callable[[], str],
    announce: Sequence[str] = (),
) -> None:
    """Serve until SIGINT/SIGTERM or ``duration``: the command every venue's ``hundi simulate``
    runs. The URL lines on stdout are what ``SimulatorProcess`` waits for; ``farewell()``'s
    line goes to stderr once the server is down."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with sim:
        for line in (f"ws_url={sim.ws_url}", f"rest_url={sim.rest_url}", *announce):
            print(line, flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
        line = farewell()
    print(line, file=sys.stderr, flush=True)
