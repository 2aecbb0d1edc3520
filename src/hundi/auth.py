"""The one bearer token of hundi's listeners (``hundi serve``, the collector's health port).

``HUNDI_API_TOKEN`` comes only from the environment or ``.secret.hundi.env`` (working directory;
never committed, never logged). A listener on anything but loopback requires it; requests carry
it as ``Authorization: Bearer <token>``, compared in constant time so response timing does not
leak it. The API and the collector share this module, so the rules cannot drift apart.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from hundi.settings import ConfigError, env_with_files

SECRET_ENV_FILE = ".secret.hundi.env"
TOKEN_ENV = "HUNDI_API_TOKEN"
MIN_TOKEN_CHARS = 24
PLACEHOLDERS = frozenset({"change-me", "changeme", "secret", "token"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


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


def has_bearer(request: web.Request, token: str) -> bool:
    """``Authorization: Bearer <token>`` (compared in constant time)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def require_bearer(token: str, open_paths: frozenset[str] = frozenset()) -> Middleware:
    """Middleware answering 401 to a request without the token (but to ``open_paths``)."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in open_paths and not has_bearer(request, token):
            return web.json_response(
                {"error": "missing or wrong token (Authorization: Bearer ...)"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="hundi"'},
            )
        return await handler(request)

    return check
