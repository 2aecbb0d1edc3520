"""Who may read: a bearer token for ``hundi serve``.

The token comes only from ``HUNDI_API_TOKEN`` in the environment or in ``.secret.hundi.env``
(working directory; never committed, never logged). It is required whenever the server listens
on anything but loopback, and the server refuses to start on such an address without one.
Grafana's Infinity datasource sends it as ``Authorization: Bearer <token>`` (its "Bearer Token"
auth, or a custom header). ``/api/v1/health`` stays open: it answers only ok/unavailable and
the store's scheme, and orchestrator probes cannot carry secrets. ``/status`` (the status page,
:mod:`hundi.api.status`) stays open too: it is static HTML holding no data (a browser cannot send
a header when it navigates), and every request it makes carries the token.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

from hundi.config import ConfigError, env_with_files

SECRET_ENV_FILE = ".secret.hundi.env"
TOKEN_ENV = "HUNDI_API_TOKEN"
MIN_TOKEN_CHARS = 24
PLACEHOLDERS = frozenset({"change-me", "changeme", "secret", "token"})
OPEN_PATHS = frozenset({"/api/v1/health", "/status", "/"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def load_token() -> str | None:
    """The configured token, or None; a placeholder or a short token is a ConfigError (the
    message never contains the value)."""
    token = env_with_files(SECRET_ENV_FILE).get(TOKEN_ENV, "").strip()
    if not token:
        return None
    if token.lower() in PLACEHOLDERS:
        raise ConfigError(f"{TOKEN_ENV} is still a placeholder: set a random token")
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"{TOKEN_ENV} is {len(token)} characters; use at least {MIN_TOKEN_CHARS} random ones "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return token


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; anything else may be reached by others."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it resolves to something reachable


def require_token(token: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Middleware answering 401 to any request (but the health check) without the token.
    The comparison is constant-time, so response timing does not leak the token."""
    expected = token.encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), expected
            ):
                return web.json_response(
                    {"error": "missing or wrong token (Authorization: Bearer ...)"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="hundi"'},
                )
        return await handler(request)

    return check
