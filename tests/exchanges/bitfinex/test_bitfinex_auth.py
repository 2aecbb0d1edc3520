"""Bitfinex authentication: HMAC-SHA384 hex over ``"AUTH" + nonce``, strictly growing nonces."""

from __future__ import annotations

import itertools

import msgspec

from hundi.exchanges.bitfinex.auth import NonceClock, auth_message, hmac_sha384_hex
from hundi.exchanges.credentials import Credentials, Secret


def test_hmac_sha384_matches_the_rfc_4231_vector() -> None:
    """RFC 4231 test case 2 (key "Jefe"): the HMAC Bitfinex's algorithm is built on."""
    assert hmac_sha384_hex("Jefe", "what do ya want for nothing?") == (
        "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e"
        "8e2240ca5e69e2c78b3239ecfab21649"
    )


def test_auth_message_follows_the_documented_algorithm() -> None:
    creds = Credentials("bitfinex", Secret("my-key"), Secret("Jefe"), "test")
    message = msgspec.json.decode(auth_message(creds, 1_700_000_000_000_000))
    assert message == {
        "event": "auth",
        "apiKey": "my-key",
        "authPayload": "AUTH1700000000000000",
        "authNonce": 1_700_000_000_000_000,
        "authSig": hmac_sha384_hex("Jefe", "AUTH1700000000000000"),
    }
    assert len(message["authSig"]) == 96  # hex of 48 bytes


def test_nonces_grow_strictly_even_when_the_clock_steps_back() -> None:
    clock = NonceClock()
    t = 1_700_000_000 * 10**9
    nonces = [clock.next(t), clock.next(t), clock.next(t - 10**9), clock.next(t + 10**9)]
    assert nonces[0] == t // 1000
    assert all(b > a for a, b in itertools.pairwise(nonces))
