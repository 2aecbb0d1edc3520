"""Bitfinex v2 WebSocket authentication, pure functions.

``authPayload = "AUTH" + nonce``; ``authSig`` = hex HMAC-SHA384 of the payload keyed with the
API secret; ``authNonce`` must grow strictly with every authentication of the key (Bitfinex
refuses a nonce not above the last one it saw: error 10114 "nonce: small"). Nonces here are
microseconds since the epoch, below JavaScript's 2^53 for centuries.
"""

from __future__ import annotations

import hashlib
import hmac

import msgspec

from hundi.exchanges.credentials import Credentials

MAX_NONCE = 2**53 - 1


def hmac_sha384_hex(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha384).hexdigest()


class NonceClock:
    """Strictly increasing nonces from the wall clock, even if the clock steps back."""

    def __init__(self) -> None:
        self.last = 0

    def next(self, now_ns: int) -> int:
        nonce = max(now_ns // 1000, self.last + 1)
        if nonce > MAX_NONCE:
            raise ValueError("nonce beyond 2^53")
        self.last = nonce
        return nonce


def auth_message(credentials: Credentials, nonce: int, filters: tuple[str, ...] = ()) -> bytes:
    """The ``auth`` event to send on channel 0."""
    payload = f"AUTH{nonce}"
    message: dict[str, object] = {
        "event": "auth",
        "apiKey": credentials.api_key.reveal(),
        "authSig": hmac_sha384_hex(credentials.api_secret.reveal(), payload),
        "authPayload": payload,
        "authNonce": nonce,
    }
    if filters:
        message["filter"] = list(filters)
    return msgspec.json.encode(message)
