"""Coinbase Exchange authentication for the ``full`` channel, pure functions.

Coinbase's docs (Exchange WebSocket Authentication) list ``full`` among the channels that need
authentication today (with ``user``, ``level2``, ``level3``). The ``subscribe`` message carries
``key``, ``passphrase``, ``timestamp`` and ``signature``: the base64 HMAC-SHA256, keyed with the
base64-decoded API secret, of ``timestamp + "GET" + "/users/self/verify"``, exactly as a signed
REST request to ``GET /users/self/verify`` would be (the timestamp must be within 30 s of
Coinbase's clock, so it is built at each open). REST requests are signed the same way in the
``CB-ACCESS-*`` headers.

Credentials: ``COINBASE_API_KEY``, ``COINBASE_API_SECRET`` (base64) and
``COINBASE_API_PASSPHRASE``, from the environment or ``.secret.coinbase.env``
(:mod:`hundi.exchanges.credentials`; the passphrase from the same place as the pair).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

from hundi.exchanges.credentials import (
    CredentialError,
    Secret,
    load_credentials,
    secret_file_name,
)
from hundi.settings import ConfigError, read_env_file

VENUE = "coinbase"
VERIFY_PATH = "/users/self/verify"
PASSPHRASE = "COINBASE_API_PASSPHRASE"


@dataclass(frozen=True, slots=True)
class CoinbaseCredentials:
    """An Exchange API key: key, base64 secret and passphrase; ``source`` says where from."""

    api_key: Secret
    api_secret: Secret
    passphrase: Secret
    source: str

    def values(self) -> tuple[str, ...]:
        """Every raw value, for scrubbing frames and texts."""
        found = (self.api_key.reveal(), self.api_secret.reveal(), self.passphrase.reveal())
        return tuple(v for v in found if v)


def load_full_credentials(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> CoinbaseCredentials:
    """The user's Coinbase Exchange key; :class:`CredentialError` (one line, no values) when
    something is missing or the secret is not base64."""
    environ = os.environ if environ is None else environ
    pair = load_credentials(VENUE, environ=environ, cwd=cwd)
    if pair is None:
        raise CredentialError(
            "the Coinbase full channel (book_l3) needs COINBASE_API_KEY, COINBASE_API_SECRET "
            f"and {PASSPHRASE} in the environment or in {secret_file_name(VENUE)}"
        )
    if pair.source == "environment":
        passphrase = environ.get(PASSPHRASE, "")
    else:
        path = (cwd or Path.cwd()) / secret_file_name(VENUE)
        try:
            passphrase = read_env_file(path).get(PASSPHRASE, "")
        except ConfigError as exc:
            raise CredentialError(str(exc)) from None
    if not passphrase.strip():
        raise CredentialError(
            f"{PASSPHRASE} is missing or empty (COINBASE_API_KEY is set in {pair.source})"
        )
    try:
        base64.b64decode(pair.api_secret.reveal(), validate=True)
    except (binascii.Error, ValueError):
        raise CredentialError(
            f"COINBASE_API_SECRET from {pair.source} is not base64 (Coinbase Exchange secrets are)"
        ) from None
    return CoinbaseCredentials(
        pair.api_key, pair.api_secret, Secret(passphrase.strip()), pair.source
    )


def signature(secret_b64: str, timestamp: str, method: str, path: str, body: str = "") -> str:
    """base64(HMAC-SHA256(base64decode(secret), timestamp + method + path + body))."""
    key = base64.b64decode(secret_b64)
    digest = hmac.new(key, f"{timestamp}{method}{path}{body}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def timestamp(now_ns: int) -> str:
    """Seconds since the epoch, as Coinbase takes them (decimals allowed)."""
    return f"{now_ns / 1e9:.3f}"


def subscribe_message(
    channels: list[str],
    products: list[str],
    credentials: CoinbaseCredentials | None,
    now_ns: int,
) -> bytes:
    """The ``subscribe`` message, signed when ``credentials`` are given."""
    message: dict[str, object] = {
        "type": "subscribe",
        "product_ids": products,
        "channels": channels,
    }
    if credentials is not None:
        stamp = timestamp(now_ns)
        message["signature"] = signature(credentials.api_secret.reveal(), stamp, "GET", VERIFY_PATH)
        message["key"] = credentials.api_key.reveal()
        message["passphrase"] = credentials.passphrase.reveal()
        message["timestamp"] = stamp
    return msgspec.json.encode(message)


def rest_headers(credentials: CoinbaseCredentials, now_ns: int, path: str) -> dict[str, str]:
    """``CB-ACCESS-*`` headers of a signed ``GET path`` (path with its query string)."""
    stamp = timestamp(now_ns)
    return {
        "CB-ACCESS-KEY": credentials.api_key.reveal(),
        "CB-ACCESS-SIGN": signature(credentials.api_secret.reveal(), stamp, "GET", path),
        "CB-ACCESS-TIMESTAMP": stamp,
        "CB-ACCESS-PASSPHRASE": credentials.passphrase.reveal(),
    }
