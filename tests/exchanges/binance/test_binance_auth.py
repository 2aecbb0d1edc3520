"""Binance signatures against the worked examples of Binance's API documentation."""

from __future__ import annotations

from hundi.exchanges.binance.auth import hmac_sha256_hex, signed_ws_params, sorted_payload
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
