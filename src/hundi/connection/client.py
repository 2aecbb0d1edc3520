"""The small WebSocket client interface the connection manager needs, and its implementations.

Why an interface: the library is chosen by measurement (``bench/ws_clients.py``), and the
manager must not care which one runs. Received messages are handed to a *synchronous* callback
(no await and no queue hop per frame), which is what makes the callback-based ``picows`` fast.

Measured receive throughput, 204-byte JSON text frames pushed by a server in another process
on the 2-core dev box (``bench/ws_clients.py``, best of 3, msgs/s)::

    websockets 17.4     47,013
    aiohttp 3.14      583,800
    picows 2.3      1,817,628

``picows`` is the default (ping/pong, close codes, extra headers, pause/resume reading all
supported); ``aiohttp`` is the fallback when picows is not installed, or on request through
``HUNDI_WS_CLIENT=aiohttp``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

OnMessage = Callable[[bytes], None]


class WsConnectError(Exception):
    """The WebSocket could not be opened; the message is fit for a log line."""


@dataclass(frozen=True, slots=True)
class CloseInfo:
    """Why a connection ended: a WebSocket close code/reason, or a transport error."""

    code: int
    reason: str

    def describe(self) -> str:
        return f"code {self.code}" + (f" ({self.reason})" if self.reason else "")


# ``struct tcp_info`` (Linux ``<linux/tcp.h>``, a stable ABI): ``tcpi_last_data_recv``, the
# milliseconds since the kernel last received data on the socket, is the u32 at byte 52.
_TCP_INFO: int | None = getattr(socket, "TCP_INFO", None) if sys.platform == "linux" else None
_LAST_DATA_RECV = struct.Struct("=I")
_LAST_DATA_RECV_AT = 52


def tcp_idle_s(sock: Any) -> float | None:
    """Seconds since the kernel last received data (any bytes, of any frame, complete or not)
    on TCP socket ``sock``; None where that cannot be known (not Linux, not TCP)."""
    if _TCP_INFO is None or sock is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 104)
    except (OSError, AttributeError, TypeError, ValueError):
        return None
    if len(info) < _LAST_DATA_RECV_AT + 4:
        return None
    millis: int = _LAST_DATA_RECV.unpack_from(info, _LAST_DATA_RECV_AT)[0]
    return millis / 1000.0


class WsConnection(ABC):
    """An open WebSocket delivering every data message to ``on_message`` synchronously."""

    def __init__(self) -> None:
        #: ``time.monotonic()`` of the last complete frame of any kind (data, ping, pong).
        self.last_activity = time.monotonic()

    def silent_for(self, now: float) -> float:
        """Seconds without a sign of life at ``now`` (``time.monotonic()``).

        A frame is delivered only once it is complete, so a large frame on a slow link looks
        silent for as long as it takes to arrive; the bytes arriving meanwhile are life. Where
        the kernel tells (Linux ``TCP_INFO``), the silence is the shorter of "since the last
        complete frame" and "since the last bytes received". Cheap enough for a periodic
        watchdog (one ``getsockopt``), not meant for the per-message path.
        """
        silent = now - self.last_activity
        idle = tcp_idle_s(self.raw_socket())
        if idle is not None and idle < silent:
            silent = idle
        return silent

    def raw_socket(self) -> Any:
        """The underlying socket (for :meth:`silent_for`), or None if unknown."""
        return None

    @abstractmethod
    def send(self, data: bytes) -> None:
        """Send one text message (subscriptions are JSON text)."""

    @abstractmethod
    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start a close handshake; :meth:`wait_closed` returns when it is done."""

    @abstractmethod
    async def wait_closed(self) -> CloseInfo:
        """Wait for the connection to end, whoever ended it."""

    @abstractmethod
    def pause_reading(self) -> None:
        """Stop reading the socket (backpressure: the kernel buffer then the server absorb)."""

    @abstractmethod
    def resume_reading(self) -> None: ...


class WsClient(ABC):
    name: str

    @abstractmethod
    async def connect(
        self,
        url: str,
        on_message: OnMessage,
        *,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
    ) -> WsConnection:
        """Open ``url``; raises :class:`WsConnectError` with a readable reason on failure."""


# --- picows -----------------------------------------------------------------------------------


class _PicowsConnection(WsConnection):
    def __init__(self) -> None:
        super().__init__()
        self.transport: Any = None
        self.close_info: CloseInfo | None = None

    def send(self, data: bytes) -> None:
        from picows import WSMsgType

        self.transport.send(WSMsgType.TEXT, data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        from picows import WSCloseCode

        if self.transport.is_disconnected:
            return
        if not self.transport.is_close_frame_sent:
            self.transport.send_close(WSCloseCode(code), reason.encode())
        # Don't wait for a peer that may never answer: give it a moment, then drop the socket.
        asyncio.get_running_loop().call_later(2.0, self.transport.disconnect)

    async def wait_closed(self) -> CloseInfo:
        try:
            await self.transport.wait_disconnected()
        except Exception as exc:  # the transport's own failure becomes the close reason
            if self.close_info is None:
                self.close_info = CloseInfo(1006, f"{type(exc).__name__}: {exc}")
        if self.close_info is None:
            handshake = self.transport.close_handshake
            received = handshake.recv if handshake is not None else None
            if received is not None:
                self.close_info = CloseInfo(received.code.value, received.reason)
            else:
                self.close_info = CloseInfo(1006, "connection lost")
        return self.close_info

    def raw_socket(self) -> Any:
        if self.transport is None:
            return None
        return self.transport.underlying_transport.get_extra_info("socket")

    def pause_reading(self) -> None:
        self.transport.underlying_transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.underlying_transport.resume_reading()


def _picows_listener(connection: _PicowsConnection, on_message: OnMessage) -> Any:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport

    text, binary, cont = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION
    ping, close = WSMsgType.PING, WSMsgType.CLOSE
    monotonic = time.monotonic

    class Listener(WSListener):
        """Hands complete messages to ``on_message``; answers pings itself so they count as
        liveness (picows' auto-pong would hide them from us)."""

        def __init__(self) -> None:
            self.fragments: list[bytes] = []

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            connection.last_activity = monotonic()
            kind = frame.msg_type
            if kind is text or kind is binary:
                if frame.fin:
                    on_message(frame.get_payload_as_bytes())
                else:
                    self.fragments = [frame.get_payload_as_bytes()]
            elif kind is cont:
                self.fragments.append(frame.get_payload_as_bytes())
                if frame.fin:
                    message = b"".join(self.fragments)
                    self.fragments = []
                    on_message(message)
            elif kind is ping:
                transport.send_pong(frame.get_payload_as_bytes())
            elif kind is close:
                connection.close_info = CloseInfo(
                    frame.get_close_code().value, frame.get_close_reason() or ""
                )
                if not transport.is_close_frame_sent:
                    transport.send_close(frame.get_close_code())
                transport.disconnect()

    return Listener()


class PicowsClient(WsClient):
    name = "picows"

    async def connect(
        self,
        url: str,
        on_message: OnMessage,
        *,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
    ) -> WsConnection:
        from picows import WSError, ws_connect

        connection = _PicowsConnection()
        try:
            transport, _ = await asyncio.wait_for(
                ws_connect(
                    lambda: _picows_listener(connection, on_message),
                    url,
                    websocket_handshake_timeout=connect_timeout,
                    enable_auto_pong=False,
                    disconnect_on_exception=False,
                    extra_headers=dict(headers or {}),
                    max_frame_size=64 * 1024 * 1024,
                    logger_name="hundi.ws",
                ),
                connect_timeout,
            )
        except TimeoutError as exc:
            raise WsConnectError(f"connect to {url} timed out after {connect_timeout:g}s") from exc
        except (OSError, WSError, ValueError) as exc:
            raise WsConnectError(connect_failure(url, exc)) from exc
        connection.transport = transport
        connection.last_activity = time.monotonic()
        return connection


# --- aiohttp ----------------------------------------------------------------------------------


def _aiohttp_ended() -> frozenset[Any]:
    import aiohttp

    kinds = aiohttp.WSMsgType
    return frozenset((kinds.CLOSE, kinds.CLOSING, kinds.CLOSED))


class _AiohttpConnection(WsConnection):
    """aiohttp answers pings itself (``autoping``), so only data frames update
    ``last_activity``; pings still count as life through :meth:`silent_for` (bytes received)."""

    def __init__(self, session: Any, ws: Any, on_message: OnMessage) -> None:
        super().__init__()
        self.session = session
        self.ws = ws
        self.on_message = on_message
        self.close_info: CloseInfo | None = None
        self.reading = asyncio.Event()
        self.reading.set()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        import aiohttp

        _ended = _aiohttp_ended()
        try:
            while True:
                await self.reading.wait()
                msg = await self.ws.receive()
                self.last_activity = time.monotonic()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self.on_message(msg.data.encode())
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    self.on_message(msg.data)
                elif msg.type in _ended:
                    break
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    self.close_info = CloseInfo(1006, _reason(msg.data))
                    break
        except (OSError, aiohttp.ClientError) as exc:
            self.close_info = CloseInfo(1006, _reason(exc))
        finally:
            if self.close_info is None:
                code = self.ws.close_code if self.ws.close_code is not None else 1006
                self.close_info = CloseInfo(code, "")
            await self.ws.close()
            await self.session.close()

    def send(self, data: bytes) -> None:
        asyncio.get_running_loop().create_task(self.ws.send_str(data.decode()))

    def close(self, code: int = 1000, reason: str = "") -> None:
        async def closing() -> None:
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()), 2.0)
            self.reader.cancel()

        asyncio.get_running_loop().create_task(closing())

    async def wait_closed(self) -> CloseInfo:
        try:
            await self.reader
        except asyncio.CancelledError:
            if not self.reader.cancelled():
                raise
        if self.close_info is None:
            self.close_info = CloseInfo(self.ws.close_code or 1000, "closed by us")
        return self.close_info

    def raw_socket(self) -> Any:
        return self.ws.get_extra_info("socket")

    def pause_reading(self) -> None:
        self.reading.clear()

    def resume_reading(self) -> None:
        self.reading.set()


class AiohttpClient(WsClient):
    name = "aiohttp"

    async def connect(
        self,
        url: str,
        on_message: OnMessage,
        *,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
    ) -> WsConnection:
        import aiohttp

        session = aiohttp.ClientSession()
        try:
            ws = await asyncio.wait_for(
                session.ws_connect(
                    url,
                    headers=dict(headers or {}),
                    autoping=True,
                    max_msg_size=64 * 1024 * 1024,
                    timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                    compress=0,
                ),
                connect_timeout,
            )
        except TimeoutError as exc:
            await session.close()
            raise WsConnectError(f"connect to {url} timed out after {connect_timeout:g}s") from exc
        except (OSError, aiohttp.ClientError, ValueError) as exc:
            await session.close()
            raise WsConnectError(connect_failure(url, exc)) from exc
        return _AiohttpConnection(session, ws, on_message)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_DEFAULT_PORTS = {"ws": 80, "http": 80, "wss": 443, "https": 443}


def host_port(url: str) -> str:
    """``host:port`` of ``url`` (the scheme's default port when none is given)."""
    parts = urlsplit(url)
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:  # a malformed port: show the URL as it is
        return url
    host = parts.hostname or ""
    return f"{host}:{port}" if port else host or url


def connect_failure(url: str, exc: BaseException) -> str:
    """What failed, in words, for a log line: ``cannot connect to stream.binance.com:9443:
    connection refused`` rather than ``ClientConnectorError ... ssl:default [Connect call
    failed ...]``. A transport failure names ``host:port``; a refused WebSocket handshake (the
    server answered, the path or headers are wrong) names the URL."""
    transport = isinstance(exc, OSError) or isinstance(getattr(exc, "os_error", None), OSError)
    where = host_port(url) if transport else url
    return f"cannot connect to {where}: {describe_error(exc)}"


def describe_error(exc: BaseException) -> str:
    """A network error in words: "connection refused", "host name not found", "timed out",
    "TLS certificate not accepted (...)"; the exception's own text otherwise."""
    inner = getattr(exc, "os_error", None)  # aiohttp's ClientConnectorError wraps the OSError
    if isinstance(inner, OSError) and inner is not exc:
        cert = getattr(exc, "certificate_error", None)
        if cert is not None:
            return f"TLS certificate not accepted ({cert})"
        return describe_error(inner)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"host name not found ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted ({exc.verify_message or exc.reason})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc})"
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    name = type(exc).__name__
    if name == "ServerDisconnectedError":
        return "the server closed the connection"
    return _reason(exc)


def default_client(wanted: str | None = None) -> WsClient:
    """The one place the WebSocket client is chosen: picows unless ``wanted`` (by default
    ``HUNDI_WS_CLIENT``) is ``aiohttp`` or picows is not installed."""
    if wanted is None:
        wanted = os.environ.get("HUNDI_WS_CLIENT", "")
    if wanted.strip().lower() == "aiohttp":
        return AiohttpClient()
    try:
        import picows  # noqa: F401
    except ImportError:
        return AiohttpClient()
    return PicowsClient()
