"""Binance signatures against the worked examples of Binance's API documentation."""

from __future__ import annotations

import base64

import pytest

from hundi.exchanges.binance.auth import (
    ed25519_signature,
    hmac_sha256_hex,
    load_ed25519,
    signed_logon_params,
    signed_ws_params,
    sorted_payload,
)
from hundi.exchanges.credentials import Credentials, Secret

# The documentation's example key pair (not anyone's credentials).
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def test_rest_signed_endpoint_example() -> None:
    """REST "SIGNED Endpoint Examples for POST /api/v3/order", example 1 (query string)."""
    query = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
        "&recvWindow=5000&timestamp=1499827319559"
    )
    assert (
        hmac_sha256_hex(DOC_SECRET, query)
        == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )


def test_websocket_api_signed_request_example() -> None:
    """WebSocket API "SIGNED request example (HMAC)": parameters sorted, apiKey included."""
    params: dict[str, str | int] = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.01000000",
        "price": "52000.00",
        "newOrderRespType": "ACK",
        "recvWindow": 100,
        "timestamp": 1645423376532,
        "apiKey": DOC_KEY,
    }
    payload = sorted_payload(params)
    assert payload == (
        f"apiKey={DOC_KEY}&newOrderRespType=ACK&price=52000.00&quantity=0.01000000"
        "&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532"
        "&type=LIMIT"
    )
    assert (
        hmac_sha256_hex(DOC_SECRET, payload)
        == "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"
    )


def test_user_data_subscription_params_are_signed_over_the_sorted_rest() -> None:
    creds = Credentials("binance", Secret(DOC_KEY), Secret(DOC_SECRET), "test")
    params = signed_ws_params(creds, 1645423376532, recv_window_ms=100)
    assert list(params) == ["apiKey", "timestamp", "recvWindow", "signature"]
    unsigned = {k: v for k, v in params.items() if k != "signature"}
    assert params["signature"] == hmac_sha256_hex(DOC_SECRET, sorted_payload(unsigned))
    assert sorted_payload(unsigned) == (f"apiKey={DOC_KEY}&recvWindow=100&timestamp=1645423376532")


def _pem(seed_hex: str) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def test_ed25519_signature_matches_rfc_8032_test_1() -> None:
    """Binance's Ed25519 signature is base64 of plain Ed25519 (RFC 8032, section 7.1, TEST 1)."""
    key = load_ed25519(_pem("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
    expected = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
        "39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert ed25519_signature(key, "") == base64.b64encode(expected).decode()


def test_session_logon_params_are_signed_over_the_sorted_rest() -> None:
    pem = _pem("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
    creds = Credentials("binance", Secret(DOC_KEY), Secret(""), "test", ed25519_pem=Secret(pem))
    key = load_ed25519(pem)
    params = signed_logon_params(creds, key, 1645423376532, 5000)
    unsigned = {k: v for k, v in params.items() if k != "signature"}
    signature = base64.b64decode(str(params["signature"]))
    key.public_key().verify(signature, sorted_payload(unsigned).encode())  # raises if wrong


def test_a_key_file_that_is_not_ed25519_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        load_ed25519("-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n")
