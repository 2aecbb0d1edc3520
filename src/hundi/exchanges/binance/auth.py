"""Binance request signing (HMAC-SHA256), pure functions.

The signature is the hex HMAC-SHA256, keyed with the API secret, of the request parameters as
``k=v`` pairs joined by ``&``. The WebSocket API signs them sorted by name (``apiKey`` included);
REST signs the query string as sent. Values are sent unencoded here: the user-data parameters
are ASCII keys and numbers. Ed25519 keys sign the same payload; the signature is base64
(``session.logon``). ``cryptography`` is imported only when an Ed25519 key is used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

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


def load_ed25519(pem: str) -> Any:
    """The private key object of a PEM Ed25519 key; ValueError (without the key) if it is not."""
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
    except ImportError:  # pragma: no cover - a dependency of the package
        raise ValueError("Ed25519 keys need the 'cryptography' package") from None
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("the Ed25519 key file is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the key file holds a private key, but not an Ed25519 one")
    return key


def ed25519_signature(private_key: Any, payload: str) -> str:
    """Base64 of the Ed25519 signature of ``payload`` (WebSocket API ``session.logon``)."""
    signature: bytes = private_key.sign(payload.encode())
    return base64.b64encode(signature).decode()


def signed_logon_params(
    credentials: Credentials, private_key: Any, timestamp_ms: int, recv_window_ms: int | None
) -> dict[str, str | int]:
    """``session.logon`` parameters signed with an Ed25519 key."""
    params: dict[str, str | int] = {
        "apiKey": credentials.api_key.reveal(),
        "timestamp": timestamp_ms,
    }
    if recv_window_ms is not None:
        params["recvWindow"] = recv_window_ms
    params["signature"] = ed25519_signature(private_key, sorted_payload(params))
    return params
