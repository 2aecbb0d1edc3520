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

from hundi.auth import (
    MIN_TOKEN_CHARS,
    PLACEHOLDERS,
    SECRET_ENV_FILE,
    TOKEN_ENV,
    Middleware,
    load_token,
    require_bearer,
)
from hundi.options import is_loopback

OPEN_PATHS = frozenset({"/api/v1/health", "/status", "/"})


def require_token(token: str) -> Middleware:
    """Middleware answering 401 to any request (but the open paths) without the token."""
    return require_bearer(token, OPEN_PATHS)


__all__ = [
    "MIN_TOKEN_CHARS",
    "OPEN_PATHS",
    "PLACEHOLDERS",
    "SECRET_ENV_FILE",
    "TOKEN_ENV",
    "is_loopback",
    "load_token",
    "require_token",
]
