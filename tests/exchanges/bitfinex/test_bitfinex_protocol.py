"""The Bitfinex authenticated channel 0, sans-I/O."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest

from hundi.exchanges.base import RecordSink, RejectedFrame, VenueConfig
from hundi.exchanges.bitfinex import BitfinexVenue
from hundi.exchanges.bitfinex.protocol import AUTH_KEY, BitfinexProtocol, normalize, order_status
from hundi.exchanges.credentials import Credentials, Secret
from hundi.records import Channel

KEY, SECRET = "bfxKEY-0123456", "bfxSECRET-abcdef"
CREDS = Credentials("bitfinex", Secret(KEY), Secret(SECRET), "test")
S = 1_000_000_000
T0 = 1_795_000_000 * S


def protocol(**options: str) -> BitfinexProtocol:
    config = VenueConfig(
        market="spot", symbols=("TBTCUSD",), channels=(Channel.ORDERS, Channel.FILLS),
        endpoint="ws://sim",
        options={"auth_retry_initial_ms": "1000", "auth_max_attempts": "2", **options},
    )  # fmt: skip
    return BitfinexVenue(config, credentials=CREDS)


def order(oid: int | None = 42, amount: float = 0.5, status: str = "ACTIVE") -> list[Any]:
    return [
        oid, None, 1001, "tBTCUSD", 1700000000000, 1700000000500, amount, 1.0,
        "EXCHANGE LIMIT", None, None, None, 0, status, None, None, 30000.5, 30000.0, 0, 0,
        None, None, None, 0, 0, None, None, None, "API>BFX", None, None, {},
    ]  # fmt: skip


def frame(*parts: Any) -> bytes:
    return msgspec.json.encode(list(parts))


def test_opening_authenticates_with_a_fresh_nonce() -> None:
    p = protocol()
    (spec,) = p.connections()
    assert spec.key == AUTH_KEY and spec.private and spec.url == "ws://sim/ws/2"
    first, second = p.opening(spec, T0), p.opening(spec, T0)
    assert first is not None and second is not None
    a, b = (msgspec.json.decode(o.messages[0]) for o in (first, second))
    assert b["authNonce"] > a["authNonce"] and a["authPayload"] == f"AUTH{a['authNonce']}"


def test_order_updates_become_orders() -> None:
    p = protocol()
    out = RecordSink()
    p.receive(AUTH_KEY, b'{"event":"auth","status":"OK","chanId":0,"userId":1}', T0, out)
    p.receive(AUTH_KEY, frame(0, "on", order(amount=1.0)), T0, out)
    p.receive(AUTH_KEY, frame(0, "ou", order(status="PARTIALLY FILLED @ 30000.5(0.5)")), T0, out)
    closed = order(amount=0.0, status="EXECUTED @ 30000.5(0.5): was PARTIALLY FILLED @ 30000.5")
    p.receive(AUTH_KEY, frame(0, "oc", closed), T0, out)
    assert [o.status for o in out.orders] == ["new", "partially_filled", "filled"]
    assert [o.filled for o in out.orders] == [0.0, 0.5, 1.0]
    first = out.orders[0]
    assert (first.symbol, first.order_id, first.client_order_id, first.side) == (
        "BTC-USD",
        "42",
        "1001",
        1,
    )
    assert first.ts == 1700000000500 * 1_000_000 and first.price == 30000.5


def test_tu_is_the_fill_te_is_filtered() -> None:
    p = protocol()
    out = RecordSink()
    trade = [901, "tBTCUSD", T0 // 1_000_000 - 400, 42, -0.5, 30000.5, "EXCHANGE LIMIT", 30000.5, 1]
    assert p.receive(AUTH_KEY, frame(0, "te", [*trade, None, None, 1001]), T0, out).name == (
        "FILTERED"
    )
    p.receive(AUTH_KEY, frame(0, "tu", [*trade, -0.03, "USD", 1001]), T0, out)
    (fill,) = out.fills
    assert (fill.trade_id, fill.order_id, fill.side, fill.quantity) == (901, "42", -1, 0.5)
    assert fill.fee == 0.03 and fill.fee_asset == "USD" and fill.maker


def test_refused_order_request_is_a_rejected_order() -> None:
    p = protocol()
    out = RecordSink()
    notice = [1700000000000, "on-req", None, None, order(oid=None), None, "ERROR",
              "Invalid order: not enough exchange balance"]  # fmt: skip
    p.receive(AUTH_KEY, frame(0, "n", notice), T0, out)
    (rejected,) = out.orders
    assert rejected.status == "rejected" and rejected.order_id == ""
    assert rejected.client_order_id == "1001" and "balance" in rejected.reject_reason
    info = [1700000000000, "ucm-notify-ui", None, None, None, None, "SUCCESS", "hello"]
    assert p.receive(AUTH_KEY, frame(0, "n", info), T0, out).name == "FILTERED"


def test_open_order_snapshot_stores_only_what_changed() -> None:
    p = protocol()
    out = RecordSink()
    p.receive(AUTH_KEY, frame(0, "on", order(amount=1.0)), T0, out)
    snapshot = frame(0, "os", [order(amount=1.0), order(oid=43, amount=0.2)])
    p.receive(AUTH_KEY, snapshot, T0, out)
    assert [(o.order_id, o.execution) for o in out.orders] == [("42", "on"), ("43", "os")]
    assert p.receive(AUTH_KEY, snapshot, T0, RecordSink()).name == "FILTERED"  # nothing new


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("ACTIVE", "new"),
        ("PARTIALLY FILLED @ 107.6(-0.2)", "partially_filled"),
        ("EXECUTED @ 107.6(-0.2): was PARTIALLY FILLED @ 107.6(-0.2)", "filled"),
        ("CANCELED", "canceled"),
        ("CANCELED was: PARTIALLY FILLED @ 107.6(-0.2)", "canceled"),
        ("INSUFFICIENT MARGIN was: PARTIALLY FILLED @ 107.6(-0.2)", "canceled"),
        ("IOC CANCELED", "expired"),
        ("RSN_DUST", "canceled"),
    ],
)
def test_statuses(text: str, status: str) -> None:
    assert order_status(text) == status


def test_symbols() -> None:
    assert normalize("tBTCUSD") == "BTC-USD" and normalize("tBTCF0:USTF0") == "BTCF0-USTF0"


def test_refused_auth_backs_off_and_gives_up(caplog: pytest.LogCaptureFixture) -> None:
    p = protocol()
    (spec,) = p.connections()
    failed = b'{"event":"auth","status":"FAILED","chanId":0,"code":10100,"msg":"apikey: invalid"}'
    out = RecordSink()
    with caplog.at_level(logging.WARNING):
        assert p.opening(spec, T0) is not None
        p.receive(AUTH_KEY, failed, T0, out)
        assert p.opening(spec, T0 + S // 2) is None
        assert p.next_wakeup_ns() == T0 + S
        p.due_requests(T0 + S)
        assert p.take_reconnects() == [AUTH_KEY]
        assert p.opening(spec, T0 + S) is not None
        p.receive(AUTH_KEY, failed, T0 + S, out)
    assert [e.kind for e in out.events] == ["auth_failed", "auth_failed"]
    assert "giving up" in out.events[-1].detail and p.opening(spec, T0 + 3600 * S) is None
    assert KEY not in caplog.text and SECRET not in caplog.text


def test_closing_an_authenticated_connection_records_a_gap() -> None:
    p = protocol()
    out = RecordSink()
    p.receive(AUTH_KEY, b'{"event":"auth","status":"OK","chanId":0}', T0, out)
    p.on_close(AUTH_KEY, T0, out)
    assert [(e.kind, e.channel) for e in out.events] == [("gap", "orders")]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[0,", "malformed_json"),
        (b'[0,"os",[[1,"\xff"]]]', "malformed_json"),  # not UTF-8
        (b'[0,"n",' + b"[" * 100_000 + b"]" * 100_000 + b"]", "malformed_json"),
        (frame(0, "zz", []), "unknown_event"),
        (frame(5, "hb"), "unknown_channel"),
        (frame(0, "on", ["x"]), "invalid_message"),
        (b'{"event":"error","code":10300,"msg":"Subscription failed"}', "server_error"),
    ],
)
def test_bad_frames_are_rejected(data: bytes, reason: str) -> None:
    with pytest.raises(RejectedFrame) as info:
        protocol().receive(AUTH_KEY, data, T0, RecordSink())
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "data",
    [frame(0, "hb"), frame(0, "ps", []), frame(0, "ws", []),
     b'{"event":"info","version":2,"serverId":"x","platform":{"status":1}}'],
)  # fmt: skip
def test_control_and_account_frames_are_filtered(data: bytes) -> None:
    assert protocol().receive(AUTH_KEY, data, T0, RecordSink()).name == "FILTERED"


def test_unserved_channel_is_a_clear_error() -> None:
    config = VenueConfig(market="spot", symbols=("tBTCUSD",), channels=(Channel.BOOK_L3,))
    with pytest.raises(ValueError, match="Bitfinex does not serve book_l3"):
        BitfinexVenue(config, credentials=CREDS)


T0_MS = T0 // 1_000_000


def fill_frame(price: float | str = 30000.5, amount: float = -0.5, mts: int = T0_MS) -> bytes:
    trade = [901, "tBTCUSD", mts, 42, amount, price, "EXCHANGE LIMIT", 30000.5, 1]
    return frame(0, "tu", [*trade, -0.03, "USD", 1001])


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (fill_frame(price=0.0), "price"),
        (fill_frame(price=-30000.5), "price"),
        (fill_frame(price=1e299), "price"),  # decodes (the decoder bounds at 1e300)
        (fill_frame(amount=0.0), "size"),
        (fill_frame(amount=-1e299), "size"),
        (fill_frame(mts=1), "trade time"),  # 1970
        (fill_frame(mts=9_000_000_000_000), "trade time"),  # 2255
        (fill_frame(mts=T0_MS - 86_400_001), "trade time"),
    ],
)
def test_impossible_fills_are_rejected_naming_the_field(data: bytes, field: str) -> None:
    out = RecordSink()
    with pytest.raises(RejectedFrame) as info:
        protocol().receive(AUTH_KEY, data, T0, out)
    assert (info.value.reason, info.value.detail.split(":")[0]) == ("invalid_value", field)
    assert len(out) == 0


def test_plausible_fill_is_stored() -> None:
    out = RecordSink()
    assert protocol().receive(AUTH_KEY, fill_frame(mts=T0_MS - 86_399_000), T0, out).name == (
        "PROCESSED"
    )
    assert [f.price for f in out.fills] == [30000.5]
