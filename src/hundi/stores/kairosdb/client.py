"""A small blocking KairosDB REST client: one keep-alive connection, gzip bodies, clear errors.

Why ``http.client`` on the writer thread and not ``aiohttp``: the store is called from the
pipeline's writer thread (never the event loop), so a blocking keep-alive connection is the
simplest thing that is fast: no event loop to run per request, no extra dependency, one TCP
connection reused for every POST. Every failure becomes one :class:`StoreError` that names the
server (never the credentials) and the reason; nothing is retried here except the one
reconnect that keep-alive needs when the server closed an idle connection. Retrying is the
writer's job (and its outage spool's).
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import threading
import zlib
from typing import Any
from urllib.parse import urlsplit

import msgspec

from hundi.stores.base import StoreError

_ERROR_BODY_CHARS = 300


class _ErrorReply(msgspec.Struct):
    errors: list[str] = []


class KairosClient:
    """POSTs to one KairosDB server; thread-safe (one request at a time)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        user: str | None = None,
        password: str | None = None,
        gzip_level: int = 1,
    ) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port
        self._timeout_s = timeout_s
        self._gzip_level = gzip_level
        self._headers = {"Content-Type": "application/json", "Accept-Encoding": "gzip"}
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def gzip(self, body: bytes) -> bytes:
        """Gzip framing (``Content-Encoding: gzip``) at a fast level: JSON shrinks ~5-10x."""
        compressor = zlib.compressobj(self._gzip_level, zlib.DEFLATED, 31)
        return compressor.compress(body) + compressor.flush()

    def post(self, path: str, body: bytes, *, gzipped: bool = False) -> tuple[int, bytes]:
        """POST ``body`` (already gzipped if ``gzipped``); returns (status, reply body)."""
        headers = dict(self._headers)
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        with self._lock:
            return self._send("POST", path, body, headers)

    def post_json(self, path: str, payload: Any) -> bytes:
        """POST a JSON document and return the reply body; non-2xx → :class:`StoreError`."""
        status, reply = self.post(path, msgspec.json.encode(payload))
        self.check(status, reply, f"POST {path}")
        return reply

    def check(self, status: int, reply: bytes, what: str) -> None:
        if 200 <= status < 300:
            return
        detail = _error_text(reply)
        kind = "server error" if status >= 500 else "rejected the request"
        raise StoreError(f"KairosDB at {self.base_url} {kind} ({what}: HTTP {status}){detail}")

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout_s,
                context=ssl.create_default_context(),
            )  # fmt: skip
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)

    def _send(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        for attempt in (1, 2):
            reused = self._connection is not None
            if self._connection is None:
                self._connection = self._connect()
            connection = self._connection
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                if response.getheader("Content-Encoding", "") == "gzip":
                    data = zlib.decompress(data, 31)
                if response.will_close:
                    self._drop()
                return response.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self._drop()
                # The server may close an idle keep-alive connection just as we reuse it:
                # that (and only that) deserves one immediate retry on a fresh connection.
                if reused and attempt == 1:
                    continue
                raise self._unreachable(e) from None
            except (OSError, http.client.HTTPException, zlib.error) as e:
                self._drop()
                raise self._unreachable(e) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _unreachable(self, error: BaseException) -> StoreError:
        if isinstance(error, socket.timeout | TimeoutError):
            reason = f"no answer within {self._timeout_s:g}s"
        elif isinstance(error, OSError) and error.strerror:
            reason = error.strerror
        else:
            reason = str(error) or type(error).__name__
        return StoreError(f"KairosDB at {self.base_url} is unreachable: {reason}")


def _error_text(reply: bytes) -> str:
    """KairosDB's ``{"errors": [...]}`` as ``: first; second``, else a clipped body."""
    if not reply:
        return ""
    try:
        errors = msgspec.json.decode(reply, type=_ErrorReply).errors
    except msgspec.DecodeError:
        text = reply.decode("utf-8", "replace").strip()
        return f": {text[:_ERROR_BODY_CHARS]}" if text else ""
    return f": {'; '.join(errors)[:_ERROR_BODY_CHARS]}" if errors else ""
