"""The Binance user-data protocol, sans-I/O: subscribe/sign, parse, back off, keep alive."""

from __future__ import annotations

import base64
import logging
from typing import Any

import msgspec
import pytest

from hundi.exchanges.base import RecordSink, RejectedFrame, RestPurpose, RestResponse, VenueConfig
from hundi.exchanges.binance import BinanceVenue
from hundi.exchanges.binance.auth import hmac_sha256_hex, sorted_payload
from hundi.exchanges.binance.protocol import BinanceProtocol
from hundi.exchanges.binance.userdata import LISTEN_KEY, USERDATA_KEY
from hundi.exchanges.credentials import Credentials, Secret
from hundi.records import Channel, EventKind

KEY, SECRET = "userKEY-0123456789", "userSECRET-abcdefghij"
CREDS = Credentials("binance", Secret(KEY), Secret(SECRET), "test")
S = 1_000_000_000
T0 = 1_795_000_000 * S  # a wall-clock time in ns
SESSION = RestPurpose.SESSION_KEY  # listen-key requests are tagged so, and answered by the tag


def protocol(market: str = "spot", **options: str) -> BinanceProtocol:
    config = VenueConfig(
        market=market,
        symbols=("BTCUSDT",),
        channels=(Channel.TRADES, Channel.ORDERS, Channel.FILLS),
        endpoint="ws://sim",
        rest_endpoint="http://sim",
        options={"auth_retry_initial_ms": "1000", "auth_max_attempts": "3", **options},
    )
    return BinanceVenue(config, credentials=CREDS)


def spec(p: BinanceProtocol):  # type: ignore[no-untyped-def]
    return next(s for s in p.connections() if s.key == USERDATA_KEY)


def wrap(event: dict[str, object]) -> bytes:
    return msgspec.json.encode({"subscriptionId": 0, "event": event})


REPORT: dict[str, object] = {
    "e": "executionReport", "E": 1499405658658, "s": "ETHBTC", "c": "mUvoqJxFIILMdfAW5iGSOW",
    "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "1.00000000", "p": "0.10264410",
    "P": "0.00000000", "F": "0.00000000", "g": -1, "C": "", "x": "TRADE",
    "X": "PARTIALLY_FILLED", "r": "NONE", "i": 4293153, "l": "0.25000000",
    "z": "0.40000000", "L": "0.10264000", "n": "0.00010000", "N": "BNB", "T": 1499405658657,
    "t": 77, "I": 8641984, "w": True, "m": True, "M": False, "O": 1499405658600,
    "Z": "0.04105600", "Y": "0.02566000", "Q": "0.00000000", "W": 1499405658600,
    "V": "NONE",
    # conditional fields: trailing stop, strategy, self-trade prevention, SOR
    "d": 4, "D": 1668680518494, "j": 1, "J": 1000000, "v": 3, "A": "3.000000",
    "B": "3.000000", "u": 1, "U": 37, "Cs": "QUOTE", "pl": "2.123", "pL": "0.10000001",
    "pY": "0.21", "b": "ONE_PARTY_TRADE_REPORT", "a": 1234, "k": "SOR", "uS": True,
}  # fmt: skip


def test_spot_opening_sends_a_valid_signed_subscription() -> None:
    p = protocol()
    s = spec(p)
    assert s.private and s.url == "ws://sim/ws-api/v3" and KEY not in repr(s)
    opening = p.opening(s, T0)
    assert opening is not None and KEY not in repr(opening)
    request = msgspec.json.decode(opening.messages[0])
    assert request["method"] == "userDataStream.subscribe.signature"
    params = request["params"]
    assert params["apiKey"] == KEY and params["timestamp"] == T0 // 1_000_000
    unsigned = {k: v for k, v in params.items() if k != "signature"}
    assert params["signature"] == hmac_sha256_hex(SECRET, sorted_payload(unsigned))
    # each open signs afresh
    again = p.opening(s, T0 + S)
    assert again is not None and again.messages != opening.messages


def test_execution_report_with_every_field_becomes_an_order_and_a_fill() -> None:
    p = protocol()
    out = RecordSink()
    p.receive(USERDATA_KEY, b'{"id":1,"status":200,"result":{"subscriptionId":0}}', T0, out)
    assert p.receive(USERDATA_KEY, wrap(REPORT), T0 + 1, out).name == "PROCESSED"
    (order,) = out.orders
    assert order.symbol == "ETH-BTC" and order.native_symbol == "ETHBTC"
    assert order.order_id == "4293153" and order.client_order_id == "mUvoqJxFIILMdfAW5iGSOW"
    assert order.status == "partially_filled" and order.execution == "TRADE"
    assert order.side == 1 and order.quantity == 1.0 and order.filled == 0.4
    assert order.average_price == pytest.approx(0.041056 / 0.4)
    assert order.fee == 0.0001 and order.fee_asset == "BNB" and order.trade_id == 77
    assert order.ts == 1499405658657 * 1_000_000 and order.created_ts == 1499405658600 * 1_000_000
    (fill,) = out.fills
    assert (fill.trade_id, fill.price, fill.quantity, fill.maker) == (77, 0.10264, 0.25, True)


def test_a_cancel_keeps_the_orders_own_client_id() -> None:
    p = protocol()
    out = RecordSink()
    cancel = {**REPORT, "x": "CANCELED", "X": "CANCELED", "c": "cancelReq1", "C": "myOrder7",
              "t": -1, "l": "0", "L": "0", "n": "0", "N": None}  # fmt: skip
    p.receive(USERDATA_KEY, wrap(cancel), T0, out)
    assert out.orders[0].client_order_id == "myOrder7" and out.orders[0].status == "canceled"
    assert not out.fills


@pytest.mark.parametrize(
    "event",
    [
        {"e": "outboundAccountPosition", "E": 1564034571105, "u": 1564034571073,
         "B": [{"a": "ETH", "f": "10000.000000", "l": "0.000000"}]},
        {"e": "balanceUpdate", "E": 1573200697110, "a": "BTC", "d": "100.00000000",
         "T": 1573200697068},
        {"e": "listStatus", "E": 1},
    ],
)  # fmt: skip
def test_account_events_are_checked_and_filtered(event: dict[str, object]) -> None:
    p = protocol()
    out = RecordSink()
    assert p.receive(USERDATA_KEY, wrap(event), T0, out).name == "FILTERED"
    assert not len(out)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b'{"event":{"e":"\xff"}}', "malformed_json"),  # not UTF-8, inside the event
        (b'{"event":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "malformed_json"),
        (wrap({"e": "somethingNew", "E": 1}), "unknown_event"),
        (wrap({**REPORT, "q": "-1"}), "invalid_message"),
        (wrap({**REPORT, "S": "SIDEWAYS"}), "invalid_message"),
        (b'{"hello":1}', "invalid_message"),
    ],
)
def test_bad_frames_are_rejected_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(RejectedFrame) as info:
        protocol().receive(USERDATA_KEY, frame, T0, RecordSink())
    assert info.value.reason == reason


def test_refused_credentials_back_off_capped_and_give_up(caplog: pytest.LogCaptureFixture) -> None:
    p = protocol()
    s = spec(p)
    now = T0
    delays = []
    with caplog.at_level(logging.WARNING):
        for _attempt in range(3):
            opening = p.opening(s, now)
            assert opening is not None
            rid = msgspec.json.decode(opening.messages[0])["id"]
            error = {
                "id": rid,
                "status": 400,
                "error": {"code": -1022, "msg": "Signature for this request is not valid."},
            }
            out = RecordSink()
            p.receive(USERDATA_KEY, msgspec.json.encode(error), now, out)  # fmt: skip
            (event,) = out.events
            assert event.kind == EventKind.AUTH_FAILED.value and "-1022" in event.detail
            # not before the back-off: no new opening, no reconnect request
            p.due_requests(now + 1)
            assert p.opening(s, now + 1) is None and USERDATA_KEY not in p.take_reconnects()
            wake = p.next_wakeup_ns()
            if wake is None:
                break
            delays.append((wake - now) / S)
            now = wake
            p.due_requests(now)  # the I/O loop's clock reaches the protocol
            assert USERDATA_KEY in p.take_reconnects()
    assert delays == [1.0, 2.0]  # doubling from auth_retry_initial_ms, then give up (3 attempts)
    assert p.opening(s, now + 3600 * S) is None  # gave up: never again until restarted
    assert "giving up" in caplog.text and KEY not in caplog.text and SECRET not in caplog.text


def test_event_stream_terminated_records_a_gap_and_resubscribes() -> None:
    p = protocol()
    out = RecordSink()
    p.receive(USERDATA_KEY, b'{"id":1,"status":200,"result":{"subscriptionId":0}}', T0, out)
    p.receive(USERDATA_KEY, wrap({"e": "eventStreamTerminated", "E": 1728973001334}), T0, out)
    (event,) = out.events
    assert (
        event.kind == "gap"
        and event.channel == "orders"
        and "eventStreamTerminated" in event.detail
    )
    assert USERDATA_KEY in p.take_reconnects()


def test_a_dropped_subscription_records_a_gap_market_books_untouched() -> None:
    p = protocol()
    out = RecordSink()
    assert p.opening(spec(p), T0) is not None  # subscription request id 1
    p.on_open(USERDATA_KEY, T0, out)
    p.receive(USERDATA_KEY, b'{"id":1,"status":200,"result":{"subscriptionId":0}}', T0, out)
    p.on_close(USERDATA_KEY, T0 + S, out)
    assert [e.kind for e in out.events] == ["gap"]


def test_orders_without_credentials_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("BINANCE_API_SECRET", raising=False)
    monkeypatch.chdir(str(tmp_path))
    config = VenueConfig(market="spot", symbols=("BTCUSDT",), channels=(Channel.ORDERS,))
    with pytest.raises(ValueError, match="BINANCE_API_KEY"):
        BinanceVenue(config)


# -- USD-M -------------------------------------------------------------------------------------

ORDER_TRADE_UPDATE = {
    "e": "ORDER_TRADE_UPDATE", "E": 1568879465651, "T": 1568879465650,
    "o": {"s": "BTCUSDT", "c": "TEST", "S": "SELL", "o": "TRAILING_STOP_MARKET", "f": "GTC",
          "q": "0.001", "p": "0", "ap": "7100.5", "sp": "7103.04", "x": "TRADE",
          "X": "PARTIALLY_FILLED", "i": 8886774, "l": "0.0005", "z": "0.0005", "L": "7100.5",
          "N": "USDT", "n": "0.0142", "T": 1568879465650, "t": 12, "b": "0", "a": "9.91",
          "m": False, "R": False, "wt": "CONTRACT_PRICE", "ot": "TRAILING_STOP_MARKET",
          "ps": "LONG", "cp": False, "AP": "7476.89", "cr": "5.0", "pP": False, "si": 0,
          "ss": 0, "rp": "0", "V": "EXPIRE_TAKER", "pm": "OPPONENT", "gtd": 0, "er": "0"},
}  # fmt: skip


def listen_key_reply(p: BinanceProtocol, now: int, body: bytes, status: int = 200) -> RecordSink:
    (request,) = p.due_requests(now)
    out = RecordSink()
    p.receive_response(request, RestResponse(status, body), now, out)
    return out


def test_usdm_listen_key_is_created_kept_alive_and_used_in_the_url() -> None:
    p = protocol("usdm", listen_key_keepalive_s="60")
    s = spec(p)
    assert p.opening(s, T0) is None  # no key yet
    requests = [r for r in p.due_requests(T0) if r.purpose is SESSION]
    (post,) = requests
    assert post.key == LISTEN_KEY  # its name in logs
    assert (post.method, post.url) == ("POST", "http://sim/fapi/v1/listenKey")
    assert post.headers == {"X-MBX-APIKEY": KEY} and post.private and KEY not in repr(post)
    assert not [r for r in p.due_requests(T0) if r.purpose is SESSION]  # one in flight
    p.receive_response(post, RestResponse(200, b'{"listenKey":"LK1"}'), T0, RecordSink())
    opening = p.opening(s, T0)
    assert opening is not None and opening.url == "ws://sim/private/ws/LK1"
    assert not [r for r in p.due_requests(T0 + 59 * S) if r.purpose is SESSION]
    (put,) = [r for r in p.due_requests(T0 + 60 * S) if r.purpose is SESSION]
    assert put.method == "PUT"


def test_usdm_unknown_listen_key_is_recreated_and_the_stream_reconnected() -> None:
    p = protocol("usdm", listen_key_keepalive_s="60")
    p.opening(spec(p), T0)
    p.due_requests(T0)  # exchangeInfo etc.
    p2 = protocol("usdm", listen_key_keepalive_s="60")
    (post,) = [r for r in p2.due_requests(T0) if r.purpose is SESSION]
    p2.receive_response(post, RestResponse(200, b'{"listenKey":"LK1"}'), T0, RecordSink())
    assert p2.opening(spec(p2), T0) is not None
    (put,) = [r for r in p2.due_requests(T0 + 60 * S) if r.purpose is SESSION]
    out = RecordSink()
    body = b'{"code":-1125,"msg":"This listenKey does not exist."}'
    p2.receive_response(put, RestResponse(400, body), T0 + 60 * S, out)
    assert [e.kind for e in out.events] == ["gap"]
    (post2,) = [r for r in p2.due_requests(T0 + 60 * S) if r.purpose is SESSION]
    assert post2.method == "POST"
    p2.receive_response(post2, RestResponse(200, b'{"listenKey":"LK2"}'), T0 + 61 * S, out)
    assert USERDATA_KEY in p2.take_reconnects()
    opening = p2.opening(spec(p2), T0 + 61 * S)
    assert opening is not None and opening.url.endswith("/LK2")


def test_usdm_listen_key_expired_event_gets_a_new_key() -> None:
    p = protocol("usdm")
    (post,) = [r for r in p.due_requests(T0) if r.purpose is SESSION]
    p.receive_response(post, RestResponse(200, b'{"listenKey":"LK1"}'), T0, RecordSink())
    out = RecordSink()
    p.on_open(USERDATA_KEY, T0, out)
    frame = b'{"e":"listenKeyExpired","E":"1736996475556","listenKey":"LK1"}'
    p.receive(USERDATA_KEY, frame, T0, out)
    assert out.events[-1].kind == "gap" and "listenKeyExpired" in out.events[-1].detail
    assert p.opening(spec(p), T0) is None
    (post2,) = [r for r in p.due_requests(T0) if r.purpose is SESSION]
    assert post2.method == "POST"


def test_usdm_refused_key_is_an_auth_failure_with_backoff() -> None:
    p = protocol("usdm")
    (post,) = [r for r in p.due_requests(T0) if r.purpose is SESSION]
    out = RecordSink()
    body = b'{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}'
    p.receive_response(post, RestResponse(401, body), T0, out)
    assert [e.kind for e in out.events] == ["auth_failed"]
    assert not [r for r in p.due_requests(T0 + S // 2) if r.purpose is SESSION]
    assert [r for r in p.due_requests(T0 + S) if r.purpose is SESSION]


def test_usdm_events_become_orders_and_fills() -> None:
    p = protocol("usdm")
    out = RecordSink()
    assert p.receive(USERDATA_KEY, msgspec.json.encode(ORDER_TRADE_UPDATE), T0, out).name == (
        "PROCESSED"
    )
    (order,) = out.orders
    assert order.symbol == "BTC-USDT-PERP" and order.side == -1 and order.stop_price == 7103.04
    assert order.average_price == 7100.5 and order.fee == 0.0142 and order.trade_id == 12
    (fill,) = out.fills
    assert (fill.price, fill.quantity, fill.fee_asset) == (7100.5, 0.0005, "USDT")
    lite = {"e": "TRADE_LITE", "E": 1721895408092, "T": 1721895408214, "s": "BTCUSDT",
            "q": "0.001", "p": "0", "m": False, "c": "z8hc", "S": "BUY", "L": "64089.20",
            "l": "0.040", "t": 109100866, "i": 8886774}  # fmt: skip
    position = {"s": "BTCUSDT", "pa": "0", "ep": "0.00000", "bep": "0", "cr": "200", "up": "0",
                "mt": "isolated", "iw": "0.00000000", "ps": "BOTH"}  # fmt: skip
    balance = {"a": "USDT", "wb": "122624.1", "cw": "100.1", "bc": "50.1"}
    account = {"e": "ACCOUNT_UPDATE", "E": 1564745798939, "T": 1564745798938,
               "a": {"m": "ORDER", "B": [balance], "P": [position]}}  # fmt: skip
    for event in (lite, account):
        assert p.receive(USERDATA_KEY, msgspec.json.encode(event), T0, out).name == "FILTERED"
    assert len(out.orders) == 1 and len(out.fills) == 1


def test_usdm_a_listen_key_whose_stream_never_opens_is_replaced() -> None:
    p = protocol("usdm")
    (post,) = [r for r in p.due_requests(T0) if r.purpose is SESSION]
    p.receive_response(post, RestResponse(200, b'{"listenKey":"DEAD"}'), T0, RecordSink())
    for _ in range(3):  # three connect attempts fail (the manager never calls on_open)
        assert p.opening(spec(p), T0) is not None
    assert p.opening(spec(p), T0) is None
    (again,) = [r for r in p.due_requests(T0) if r.purpose is SESSION]
    assert again.method == "POST"
    p.receive_response(again, RestResponse(200, b'{"listenKey":"LIVE"}'), T0, RecordSink())
    opening = p.opening(spec(p), T0)
    assert opening is not None and opening.url.endswith("/LIVE")
    p.on_open(USERDATA_KEY, T0, RecordSink())
    for _ in range(5):  # once a stream opened, reopening the same key is fine
        p.on_open(USERDATA_KEY, T0, RecordSink())
        assert p.opening(spec(p), T0) is not None


def ed25519_protocol() -> tuple[BinanceProtocol, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    creds = Credentials("binance", Secret(KEY), Secret(""), "test", ed25519_pem=Secret(pem))
    config = VenueConfig(
        market="spot", symbols=("BTCUSDT",), channels=(Channel.ORDERS,), endpoint="ws://sim",
        options={"auth_retry_initial_ms": "1000"},
    )  # fmt: skip
    return BinanceVenue(config, credentials=creds), key.public_key()


def test_ed25519_keys_log_the_session_on_then_subscribe() -> None:
    p, public_key = ed25519_protocol()
    opening = p.opening(spec(p), T0)
    assert opening is not None
    logon, subscribe = (msgspec.json.decode(m) for m in opening.messages)
    assert logon["method"] == "session.logon" and subscribe == {
        "id": logon["id"] + 1,
        "method": "userDataStream.subscribe",
    }
    params = logon["params"]
    unsigned = {k: v for k, v in params.items() if k != "signature"}
    public_key.verify(base64.b64decode(params["signature"]), sorted_payload(unsigned).encode())
    out = RecordSink()
    ok = {"id": logon["id"], "status": 200, "result": {"apiKey": "x"}}
    assert p.receive(USERDATA_KEY, msgspec.json.encode(ok), T0, out).name == "FILTERED"
    subscribed = {"id": subscribe["id"], "status": 200, "result": {"subscriptionId": 0}}
    p.receive(USERDATA_KEY, msgspec.json.encode(subscribed), T0, out)
    p.on_close(USERDATA_KEY, T0, out)
    assert [e.kind for e in out.events] == ["gap"]  # it was subscribed


def test_a_refused_logon_is_one_auth_failure_not_two() -> None:
    p, _ = ed25519_protocol()
    opening = p.opening(spec(p), T0)
    assert opening is not None
    logon, subscribe = (msgspec.json.decode(m) for m in opening.messages)
    out = RecordSink()
    for rid in (logon["id"], subscribe["id"]):
        error = {"id": rid, "status": 400, "error": {"code": -1022, "msg": "Signature invalid."}}
        p.receive(USERDATA_KEY, msgspec.json.encode(error), T0, out)
    assert [e.kind for e in out.events] == ["auth_failed"]


def test_frames_are_redacted_for_captures() -> None:
    spot = protocol()
    echo = b'{"id":1,"status":200,"result":{"apiKey":"' + KEY.encode() + b'"}}'
    assert KEY.encode() not in spot.redact(USERDATA_KEY, echo)
    assert spot.redact("spot-public-0", echo) == echo  # market data is never touched
    usdm = protocol("usdm")
    (post,) = [r for r in usdm.due_requests(T0) if r.purpose is SESSION]
    usdm.receive_response(post, RestResponse(200, b'{"listenKey":"LK-secret"}'), T0, RecordSink())
    usdm.opening(spec(usdm), T0)
    expired = b'{"e":"listenKeyExpired","E":"1736996475556","listenKey":"LK-secret"}'
    assert b"LK-secret" not in usdm.redact(USERDATA_KEY, expired)
