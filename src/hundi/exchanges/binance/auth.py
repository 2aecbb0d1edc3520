"""Binance request signing (HMAC-SHA256), pure functions.

The signature is the hex HMAC-SHA256, keyed with the API secret, of the request parameters as
``k=v`` pairs joined by ``&``. The WebSocket API signs them sorted by name (``apiKey`` included);
REST signs the query string as sent. Values are sent unencoded here: the user-data parameters
are ASCII keys and numbers.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from hundi.exchanges.credentials import Credentials


def hmac_sha256_hex(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def sorted_payload(params: Mapping[str, str | int]) -> str:
    """The WebSocket API's signing payload: parameters sorted by name, ``k=v`` joined by ``&``."""
    return "&".join(f"{name}={params[name]}" for name in sorted(params))


def signed_ws_params(
    credentials: Credentials, timestamp_ms: int, recv_window_ms: int | None = None
) -> dict[str, str | int]:
    """``apiKey``, ``timestamp`` [, ``recvWindow``] and their ``signature`` (WebSocket API)."""
    params: dict[str, str | int] = {
        "apiKey": credentials.api_key.reveal(),
        "timestamp": timestamp_ms,
    }
    if recv_window_ms is not None:
        params["recvWindow"] = recv_window_ms
    params["signature"] = hmac_sha256_hex(credentials.api_secret.reveal(), sorted_payload(params))
    return params
