"""The Coinbase Exchange ``full`` channel, sans-I/O, on hand-written frames: every message
kind, the documented snapshot sync, skipped sequences and stale snapshots resynced in place,
bad input rejected with its reason, authentication and configuration errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hundi.exchanges.base import (
    FrameStatus,
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestRequest,
    RestResponse,
    VenueConfig,
)
from hundi.exchanges.coinbase.full import FULL_CONN, CoinbaseFullProtocol, full_feed
from hundi.exchanges.coinbase.full_auth import CoinbaseCredentials, load_full_credentials
from hundi.exchanges.credentials import CredentialError, Secret
from hundi.records import ASK, BID, Channel
from hundi.research import book_l3_at
from hundi.stores.embedded import EmbeddedStore

S = 1_000_000_000
T0 = 1_795_000_000 * S  # 2026-11-17T09:46:40Z
SECRET = base64.b64encode(b"coinbase-test-secret").decode()
CREDS = CoinbaseCredentials(Secret("cbKEY-123"), Secret(SECRET), Secret("pass-phrase"), "test")


def protocol(
    *symbols: str, creds: CoinbaseCredentials | None = CREDS, **options: str
) -> CoinbaseFullProtocol:
    config = VenueConfig(
        market="spot",
        symbols=symbols or ("BTC-USD",),
        channels=(Channel.BOOK_L3,),
        endpoint="ws://sim",
        rest_endpoint="http://sim",
        options=options,
        authenticate=creds is not None,
    )
    return CoinbaseFullProtocol(config, credentials=creds)


def iso(offset_ms: float) -> str:
    ns = T0 + round(offset_ms * 1_000_000)
    from datetime import UTC, datetime

    whole = datetime.fromtimestamp(ns // S, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{(ns % S) // 1000:06d}Z"


def msg(kind: str, seq: int, ms: float = 0, product: str = "BTC-USD", **fields: Any) -> bytes:
    return msgspec.json.encode(
        {"type": kind, "product_id": product, "sequence": seq, "time": iso(ms), **fields}
    )


def opened(seq: int, oid: str, side: str, price: str, size: str, ms: float = 0) -> bytes:
    return msg("open", seq, ms, order_id=oid, side=side, price=price, remaining_size=size)


def snapshot_body(seq: int, bids: list[list[str]], asks: list[list[str]]) -> bytes:
    return msgspec.json.encode({"sequence": seq, "bids": bids, "asks": asks, "time": iso(0)})


SUBSCRIBED = b'{"type":"subscriptions","channels":[{"name":"full","product_ids":["BTC-USD"]}]}'
BIDS = [["99.00", "1.0", "b1"], ["99.00", "2.0", "b2"], ["98.50", "0.5", "b3"]]
ASKS = [["101.00", "1.5", "a1"], ["102.00", "3.0", "a2"]]


def answer(
    p: CoinbaseFullProtocol, out: RecordSink, body: bytes, *, now: int = T0 + S, status: int = 200
) -> RestRequest:
    (request,) = p.due_requests(now)
    p.receive_response(request, RestResponse(status, body), now, out)
    return request


def synced(seq: int = 100, **options: str) -> tuple[CoinbaseFullProtocol, RecordSink]:
    p = protocol(**options)
    out = RecordSink()
    p.on_open(FULL_CONN, T0, out)
    assert p.receive(FULL_CONN, SUBSCRIBED, T0, out) is FrameStatus.FILTERED
    answer(p, out, snapshot_body(seq, BIDS, ASKS))
    return p, out


def kinds(out: RecordSink) -> list[tuple[str, int]]:
    return [(r.kind, r.sequence) for r in out.book_l3]


def events(out: RecordSink) -> list[tuple[str, int, int]]:
    return [(e.kind, e.expected, e.received) for e in out.events]


def queue(p: CoinbaseFullProtocol, side: int, price: float) -> list[tuple[str, float]]:
    return [(o.order_id, o.size) for o in p.state["BTC-USD"].book.queue(side, price)]


def test_the_subscribe_is_signed_at_each_open_as_coinbase_documents() -> None:
    p = protocol("BTC-USD", "ETH-EUR")
    (spec,) = p.connections()
    assert spec.key == FULL_CONN and spec.private and spec.url == "ws://sim"
    opening = p.opening(spec, T0)
    assert opening is not None
    sent = msgspec.json.decode(opening.messages[0])
    assert sent["type"] == "subscribe" and sent["channels"] == ["full"]
    assert sent["product_ids"] == ["BTC-USD", "ETH-EUR"]
    assert sent["key"] == "cbKEY-123" and sent["passphrase"] == "pass-phrase"
    assert float(sent["timestamp"]) == pytest.approx(T0 / S)
    prehash = f"{sent['timestamp']}GET/users/self/verify".encode()
    expected = hmac.new(base64.b64decode(SECRET), prehash, hashlib.sha256).digest()
    assert base64.b64decode(sent["signature"]) == expected
    unsigned = protocol(creds=None)
    (public,) = unsigned.connections()
    assert not public.private
    assert "key" not in msgspec.json.decode(public.subscribe[0])


def test_the_documented_sync_buffers_fetches_level3_and_applies_what_follows() -> None:
    p = protocol()
    out = RecordSink()
    p.on_open(FULL_CONN, T0, out)
    assert p.due_requests(T0) == []  # nothing subscribed yet
    assert p.books()[0].waiting == "waiting for the subscription"
    p.receive(FULL_CONN, SUBSCRIBED, T0, out)
    # messages arrive while the snapshot is fetched: one it covers, two after it
    assert (
        p.receive(FULL_CONN, opened(100, "old", "buy", "97", "1"), T0, out) is FrameStatus.PROCESSED
    )
    p.receive(FULL_CONN, opened(101, "b4", "buy", "99.00", "0.7", 5), T0, out)
    p.receive(
        FULL_CONN,
        msg(
            "received",
            102,
            6,
            order_id="t1",
            side="sell",
            order_type="limit",
            price="99.00",
            size="1.2",
        ),
        T0,
        out,
    )
    assert out.book_l3 == []  # buffered until the snapshot
    (request,) = p.due_requests(T0 + S)
    assert request.url == "http://sim/products/BTC-USD/book?level=3"
    assert request.purpose is RestPurpose.BOOK_SNAPSHOT and request.key == "full:BTC-USD"
    assert request.headers["CB-ACCESS-KEY"] == "cbKEY-123"
    assert "cbKEY-123" not in repr(request)
    assert p.due_requests(T0 + S) == []  # one request at a time
    p.receive_response(request, RestResponse(200, snapshot_body(100, BIDS, ASKS)), T0 + S, out)
    assert kinds(out) == [("snapshot", 100)] * 5 + [("open", 101), ("received", 102)]
    assert events(out) == [("synced", -1, 100)]
    assert queue(p, BID, 99.0) == [("b1", 1.0), ("b2", 2.0), ("b4", 0.7)]
    (status,) = p.books()
    assert status.synced and status.last_update_id == 102 and status.waiting == ""
    assert (status.best_bid, status.best_ask, status.bids, status.asks) == (99.0, 101.0, 2, 2)


def test_every_message_kind_becomes_its_row_and_moves_the_book() -> None:
    p, out = synced()
    out.drain()
    frames = [
        msg("received", 101, order_id="t1", side="sell", order_type="market", funds="500"),
        msg(
            "match",
            102,
            trade_id=7,
            maker_order_id="b1",
            taker_order_id="t1",
            side="buy",
            price="99.00",
            size="1.0",
        ),
        msg(
            "match",
            103,
            trade_id=8,
            maker_order_id="b2",
            taker_order_id="t1",
            side="buy",
            price="99.00",
            size="0.25",
        ),
        msg(
            "done",
            104,
            order_id="b1",
            side="buy",
            price="99.00",
            remaining_size="0",
            reason="filled",
        ),
        msg("done", 105, order_id="t1", side="sell", reason="filled"),  # a market order: no price
        msg(
            "change",
            106,
            order_id="a2",
            side="sell",
            price="102.00",
            old_size="3.0",
            new_size="2.5",
        ),
        msg(
            "change",
            107,
            order_id="b3",
            side="buy",
            old_price="98.50",
            new_price="99.00",
            old_size="0.5",
            new_size="0.5",
            reason="modify_order",
        ),
        msg(
            "done",
            108,
            order_id="a1",
            side="sell",
            price="101.00",
            remaining_size="1.5",
            reason="canceled",
        ),
    ]
    for frame in frames:
        assert p.receive(FULL_CONN, frame, T0 + S, out) is FrameStatus.PROCESSED
    rows = {r.sequence: r for r in out.book_l3}
    assert (rows[101].kind, rows[101].order_id, rows[101].side, rows[101].price) == (
        "received",
        "t1",
        ASK,
        0.0,
    )
    match = rows[102]
    assert (match.order_id, match.other_order_id, match.trade_id, match.side, match.size) == (
        "b1",
        "t1",
        7,
        BID,
        1.0,
    )
    assert (rows[104].reason, rows[105].price, rows[105].size) == ("filled", 0.0, 0.0)
    assert (rows[106].size, rows[107].price, rows[108].reason) == (2.5, 99.0, "canceled")
    assert queue(p, BID, 99.0) == [("b2", 1.75), ("b3", 0.5)]  # re-queued behind b2
    assert queue(p, BID, 98.5) == []
    assert queue(p, ASK, 102.0) == [("a2", 2.5)]
    assert p.books()[0].best_ask == 102.0
    assert all(r.symbol == "BTC-USD" and r.native_symbol == "BTC-USD" for r in out.book_l3)
    assert out.book_l3[0].ts == T0 and out.book_l3[0].recv_ts == T0 + S


def test_a_skipped_sequence_is_a_gap_and_a_resync_in_place() -> None:
    p, out = synced()
    out.drain()
    p.receive(FULL_CONN, opened(101, "b4", "buy", "99.00", "0.7"), T0, out)
    assert (
        p.receive(FULL_CONN, opened(104, "b5", "buy", "98.00", "1", 1), T0, out)
        is FrameStatus.PROCESSED
    )
    assert events(out) == []  # maybe only out of order: 102 may still come (the reorder window)
    # 300 ms later (past full_reorder_ms, 200) 102 has not come: a skipped sequence
    p.receive(FULL_CONN, opened(105, "b6", "buy", "97.00", "1", 2), T0 + 300_000_000, out)
    assert events(out) == [("gap", 102, 104), ("resync", -1, -1)]
    assert out.events[0].channel == "book_l3" and out.events[0].detail == "sequence 104 after 101"
    assert out.events[0].ts == T0 + 1_000_000  # the exchange time of the message after the hole
    (status,) = p.books()
    assert not status.synced and "skipped sequence" in status.waiting
    assert kinds(out) == [("open", 101)]
    out.drain()
    new_bids = [["99.00", "2.0", "b2"], ["98.00", "1", "b5"]]
    answer(p, out, snapshot_body(104, new_bids, ASKS), now=T0 + 2 * S)
    assert kinds(out) == [("snapshot", 104)] * 4 + [("open", 105)]
    assert p.books()[0].synced and p.books()[0].last_update_id == 105
    assert queue(p, BID, 99.0) == [("b2", 2.0)]  # the book restarted from the new snapshot


def test_duplicates_and_late_messages_are_filtered() -> None:
    p, out = synced()
    out.drain()
    p.receive(FULL_CONN, opened(101, "b4", "buy", "99.00", "0.7"), T0, out)
    assert (
        p.receive(FULL_CONN, opened(101, "b4", "buy", "99.00", "0.7"), T0, out)
        is FrameStatus.FILTERED
    )
    assert p.receive(FULL_CONN, opened(99, "x", "buy", "90", "1"), T0, out) is FrameStatus.FILTERED
    assert kinds(out) == [("open", 101)] and out.events == []


def test_a_stale_snapshot_is_not_used_and_another_is_fetched_after_a_back_off() -> None:
    p = protocol(full_snapshot_retry_ms="500")
    out = RecordSink()
    p.receive(FULL_CONN, SUBSCRIBED, T0, out)
    p.receive(FULL_CONN, opened(120, "b9", "buy", "95", "1"), T0, out)
    answer(p, out, snapshot_body(100, BIDS, ASKS))  # 101..119 are in neither
    assert kinds(out) == []
    assert events(out) == [("resync", 101, 120)]
    assert "stale snapshot" in out.events[0].detail
    assert p.due_requests(T0 + S) == [] and p.next_wakeup_ns() == T0 + S + S // 2
    out.drain()
    answer(p, out, snapshot_body(119, BIDS, ASKS), now=T0 + 2 * S)
    assert kinds(out) == [("snapshot", 119)] * 5 + [("open", 120)]
    assert p.state["BTC-USD"].snapshots_stale == 1


def test_a_failed_or_unusable_snapshot_is_fetched_again() -> None:
    p = protocol()
    out = RecordSink()
    p.receive(FULL_CONN, SUBSCRIBED, T0, out)
    answer(p, out, b"busy", status=429)
    assert p.due_requests(T0 + S) == []  # backing off
    answer(p, out, b'{"sequence": 5, "bids": [["x", "1", "o"]], "asks": []}', now=T0 + 3 * S)
    answer(p, out, b"not json", now=T0 + 10 * S)
    crossed = snapshot_body(7, [["102", "1", "b"]], [["101", "1", "a"]])
    answer(p, out, crossed, now=T0 + 20 * S)
    assert events(out) == [("resync", -1, -1)] and out.book_l3 == []
    answer(p, out, snapshot_body(8, BIDS, ASKS), now=T0 + 40 * S)
    assert p.books()[0].synced


def test_an_open_that_crosses_the_book_breaks_it() -> None:
    p, out = synced()
    out.drain()
    p.receive(FULL_CONN, opened(101, "bad", "buy", "105.00", "1"), T0, out)
    assert [e[0] for e in events(out)] == ["gap", "resync"]
    assert "crosses the book" in out.events[0].detail
    assert out.book_l3 == []  # found before it is stored
    assert p.state["BTC-USD"].book.best(BID) == 99.0  # nor applied
    assert not p.books()[0].synced and p.due_requests(T0 + S) != []


def test_a_dropped_connection_is_a_gap_and_the_next_one_resyncs() -> None:
    p, out = synced()
    out.drain()
    p.on_close(FULL_CONN, T0 + 5 * S, out)
    assert events(out) == [("gap", 101, -1), ("resync", -1, -1)]
    # stamped just after the exchange time the book is known up to (the snapshot's), not with
    # the local time
    assert [e.ts for e in out.events] == [T0 + 1, T0 + 1]
    assert [e.recv_ts for e in out.events] == [T0 + 5 * S] * 2
    assert p.books()[0].waiting == "waiting for the subscription (after disconnect)"
    p.on_open(FULL_CONN, T0 + 6 * S, out)
    assert p.due_requests(T0 + 6 * S) == []
    p.receive(FULL_CONN, SUBSCRIBED, T0 + 6 * S, out)
    answer(p, out, snapshot_body(300, BIDS, ASKS), now=T0 + 7 * S)
    assert p.books()[0].synced and p.books()[0].last_update_id == 300


def test_the_buffer_is_bounded() -> None:
    p = protocol(full_max_buffer="2")
    out = RecordSink()
    for seq in (1, 2, 3):
        p.receive(FULL_CONN, opened(seq, f"o{seq}", "buy", "90", "1"), T0, out)
    assert events(out) == [("gap", 1, 3)]
    assert [r.sequence for r in p.state["BTC-USD"].buffer] == [3]


def test_control_frames_are_filtered() -> None:
    p, out = synced()
    heartbeat = msgspec.json.encode(
        {
            "type": "heartbeat",
            "sequence": 100,
            "last_trade_id": 5,
            "product_id": "BTC-USD",
            "time": iso(0),
        }
    )
    assert p.receive(FULL_CONN, heartbeat, T0, out) is FrameStatus.FILTERED
    activate = msgspec.json.encode(
        {
            "type": "activate",
            "product_id": "BTC-USD",
            "order_id": "s",
            "stop_type": "entry",
            "side": "buy",
            "stop_price": "1",
            "timestamp": "1795000000.1",
        }
    )
    assert p.receive(FULL_CONN, activate, T0, out) is FrameStatus.FILTERED


@pytest.mark.parametrize(
    ("frame", "reason", "detail"),
    [
        (b"{not json", "malformed_json", ""),
        (b"\xff\xfe", "malformed_json", "UTF-8"),
        (b'{"sequence": 3}', "invalid_message", "type"),
        (b'{"type": "l3update", "product_id": "BTC-USD"}', "unknown_message", "l3update"),
        (
            msg(
                "open",
                101,
                product="DOGE-USD",
                order_id="o",
                side="buy",
                price="1",
                remaining_size="1",
            ),
            "unknown_symbol",
            "DOGE-USD",
        ),
        (
            msg("open", 101, order_id="o", side="up", price="1", remaining_size="1"),
            "invalid_field",
            "side",
        ),
        (
            msg("open", -1, order_id="o", side="buy", price="1", remaining_size="1"),
            "invalid_field",
            "sequence",
        ),
        (
            msg("open", 101, order_id="o", side="buy", price="nan", remaining_size="1"),
            "invalid_field",
            "price",
        ),
        (
            msg("open", 101, order_id="o", side="buy", price="-1", remaining_size="1"),
            "invalid_value",
            "price",
        ),
        (
            msg("open", 101, order_id="o", side="buy", remaining_size="1"),
            "invalid_field",
            "price missing",
        ),
        (msg("open", 101, side="buy", price="1", remaining_size="1"), "invalid_field", "order id"),
        (
            msg("match", 101, maker_order_id="m", side="buy", price="1", size="1", trade_id=3),
            "invalid_field",
            "taker",
        ),
        (
            msgspec.json.encode(
                {
                    "type": "done",
                    "product_id": "BTC-USD",
                    "sequence": 9,
                    "time": "yesterday",
                    "order_id": "o",
                    "side": "buy",
                }
            ),
            "invalid_field",
            "time",
        ),
        (msg("done", 101, -3 * 86_400_000, order_id="o", side="buy"), "invalid_value", "time"),
        (
            b'{"type": "heartbeat", "product_id": "DOGE-USD", "sequence": 1}',
            "unknown_symbol",
            "DOGE",
        ),
        (
            b'{"type": "error", "message": "Failed to subscribe", '
            b'"reason": "ZZZ-USD is not a valid product"}',
            "server_error",
            "not a valid product",
        ),
    ],
)
def test_bad_input_is_rejected_with_its_reason(frame: bytes, reason: str, detail: str) -> None:
    p, out = synced()
    out.drain()
    with pytest.raises(RejectedFrame) as caught:
        p.receive(FULL_CONN, frame, T0, out)
    assert caught.value.reason == reason
    assert detail in caught.value.detail
    assert out.book_l3 == [] and p.books()[0].last_update_id == 100  # nothing of it applied


def test_refused_credentials_record_auth_failed_and_reconnect_after_a_back_off() -> None:
    p = protocol(auth_retry_initial_ms="1000", auth_max_attempts="2")
    out = RecordSink()
    refusal = (
        b'{"type":"error","message":"Authentication Failed","reason":"invalid signature cbKEY-123"}'
    )
    assert p.receive(FULL_CONN, refusal, T0, out) is FrameStatus.PROCESSED
    (event,) = out.events
    assert event.kind == "auth_failed" and event.channel == "book_l3"
    assert "cbKEY-123" not in event.detail and "***" in event.detail
    assert p.take_reconnects() == []  # within the back-off
    (spec,) = p.connections()
    assert p.opening(spec, T0) is None
    p.receive(FULL_CONN, SUBSCRIBED, T0 + 2 * S, out)
    assert p.take_reconnects() == [FULL_CONN]
    assert p.redact(FULL_CONN, b'{"key":"cbKEY-123","passphrase":"pass-phrase"}') == (
        b'{"key":"***","passphrase":"***"}'
    )


@pytest.mark.parametrize(
    ("symbols", "channels", "options", "message"),
    [
        (("BTC-USD",), (Channel.BOOK_L3, Channel.TRADES), {}, "book_l3 only, not trades"),
        (("BTC-USD",), (Channel.EVENTS,), {}, "needs the book_l3 channel"),
        ((), (Channel.BOOK_L3,), {}, "no symbols"),
        (("btc-usd",), (Channel.BOOK_L3,), {}, "did you mean 'BTC-USD'"),
        (("BTCUSD",), (Channel.BOOK_L3,), {}, "expected BASE-QUOTE"),
        (
            ("BTC-USD",),
            (Channel.BOOK_L3,),
            {"full_max_buffer": "many"},
            "full_max_buffer must be an integer",
        ),
    ],
)
def test_configuration_errors_are_one_line(
    symbols: tuple[str, ...], channels: tuple[Channel, ...], options: dict[str, str], message: str
) -> None:
    config = VenueConfig(
        market="spot", symbols=symbols, channels=channels, options=options, authenticate=False
    )
    with pytest.raises(ValueError, match=message) as caught:
        CoinbaseFullProtocol(config)
    assert "\n" not in str(caught.value)


def test_credentials_come_from_the_environment_or_the_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "COINBASE_API_KEY": "env-key-1",
        "COINBASE_API_SECRET": SECRET,
        "COINBASE_API_PASSPHRASE": "env-pass-1",
    }
    found = load_full_credentials(env, tmp_path)
    assert (found.api_key.reveal(), found.passphrase.reveal()) == ("env-key-1", "env-pass-1")
    assert found.source == "environment"
    assert "env-key-1" not in repr(found) and "env-pass-1" not in repr(found)
    (tmp_path / ".secret.coinbase.env").write_text(
        f"COINBASE_API_KEY=fk\nCOINBASE_API_SECRET={SECRET}\nCOINBASE_API_PASSPHRASE=fp\n"
    )
    from_file = load_full_credentials({}, tmp_path)
    assert (from_file.api_key.reveal(), from_file.passphrase.reveal()) == ("fk", "fp")
    with pytest.raises(CredentialError, match="COINBASE_API_PASSPHRASE is missing"):
        load_full_credentials({"COINBASE_API_KEY": "k1", "COINBASE_API_SECRET": SECRET}, tmp_path)
    with pytest.raises(CredentialError, match="not base64"):
        load_full_credentials({**env, "COINBASE_API_SECRET": "not base64!"}, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CredentialError, match="needs COINBASE_API_KEY") as caught:
        load_full_credentials({}, empty)
    assert "\n" not in str(caught.value)
    monkeypatch.chdir(empty)
    for name in env:
        monkeypatch.delenv(name, raising=False)
    config = VenueConfig(market="spot", symbols=("BTC-USD",), channels=(Channel.BOOK_L3,))
    with pytest.raises(CredentialError, match="needs COINBASE_API_KEY"):
        CoinbaseFullProtocol(config)


def test_stored_rows_rebuild_the_protocols_book(tmp_path: Path) -> None:
    """What the protocol stores is what ``hundi.book_l3_at`` rebuilds, gap and resync included."""
    p, out = synced(full_reorder_window="0")  # no reorder window: the hole is a gap at once
    p.receive(FULL_CONN, opened(101, "b4", "buy", "99.00", "0.7", 1), T0 + S, out)
    p.receive(
        FULL_CONN,
        msg(
            "match",
            102,
            2,
            trade_id=1,
            maker_order_id="a1",
            taker_order_id="t",
            side="sell",
            price="101.00",
            size="0.5",
        ),
        T0 + S,
        out,
    )
    p.receive(FULL_CONN, opened(110, "b5", "buy", "98.00", "1", 3), T0 + S, out)  # gap
    answer(p, out, snapshot_body(110, [*BIDS, ["98.00", "1", "b5"]], ASKS), now=T0 + 2 * S)
    p.receive(
        FULL_CONN,
        msg(
            "done",
            111,
            4,
            order_id="b2",
            side="buy",
            price="99.00",
            remaining_size="2.0",
            reason="canceled",
        ),
        T0 + 3 * S,
        out,
    )
    store = EmbeddedStore(str(tmp_path))
    store.write(out.drain())
    store.flush()
    rebuilt = book_l3_at(store, "coinbase", "BTC-USD", T0 + 10 * S)
    book = p.state["BTC-USD"].book
    mine = [
        (side, price, o.order_id, o.size)
        for side in (BID, ASK)
        for price in book.prices(side)
        for o in book.queue(side, price)
    ]
    assert [(r.side, r.price, r.order_id, r.size) for r in rebuilt.itertuples()] == mine
    assert rebuilt.attrs["synced"] and rebuilt.attrs["update_id"] == 111
    before_gap = book_l3_at(store, "coinbase", "BTC-USD", T0 + 2_500_000)
    assert before_gap.attrs["update_id"] == 102 and before_gap.attrs["synced"]
    assert dict(zip(before_gap["order_id"], before_gap["size"], strict=True))["a1"] == 1.0


def test_a_venue_with_public_channels_mounts_the_full_feed_for_book_l3() -> None:
    public = VenueConfig(market="spot", symbols=("BTC-USD",), channels=(Channel.TRADES,))
    assert full_feed(public) is None
    mixed = VenueConfig(
        market="spot", symbols=("BTC-USD",), channels=(Channel.TRADES, Channel.BOOK_L3),
        options={"level2_option_of_the_public_feed": "1"}, authenticate=False,
    )  # fmt: skip
    feed = full_feed(mixed)
    assert feed is not None and feed.config.channels == (Channel.BOOK_L3,)
    assert [spec.key for spec in feed.connections()] == [FULL_CONN]


def test_a_snapshot_asked_before_a_reconnect_is_not_used_after_it() -> None:
    p = protocol()
    out = RecordSink()
    p.receive(FULL_CONN, SUBSCRIBED, T0, out)
    (early,) = p.due_requests(T0)
    p.on_close(FULL_CONN, T0 + S, out)
    p.on_open(FULL_CONN, T0 + 2 * S, out)
    p.receive(FULL_CONN, SUBSCRIBED, T0 + 2 * S, out)
    p.receive(FULL_CONN, opened(500, "n1", "buy", "90", "1"), T0 + 2 * S, out)
    assert p.due_requests(T0 + 2 * S) == []  # the early one is still out
    p.receive_response(early, RestResponse(200, snapshot_body(100, BIDS, ASKS)), T0 + 3 * S, out)
    assert out.book_l3 == [] and out.events == [] and not p.books()[0].synced
    answer(p, out, snapshot_body(499, BIDS, ASKS), now=T0 + 4 * S)
    assert kinds(out) == [("snapshot", 499)] * 5 + [("open", 500)]


def test_coinbase_refusing_a_configured_product_is_an_invalid_symbol_event() -> None:
    p = protocol("BTC-USD", "ABC-USD")
    out = RecordSink()
    refusal = msgspec.json.encode(
        {
            "type": "error",
            "message": "Failed to subscribe",
            "reason": "ABC-USD is not a valid product",
        }
    )
    assert p.receive(FULL_CONN, refusal, T0, out) is FrameStatus.PROCESSED
    (event,) = out.events
    assert (event.kind, event.native_symbol) == ("invalid_symbol", "ABC-USD")
    assert "not a valid product" in event.detail


def test_messages_out_of_order_within_the_reorder_window_are_applied_in_sequence() -> None:
    p, out = synced()
    out.drain()
    p.receive(FULL_CONN, opened(101, "b4", "buy", "99.00", "0.7"), T0, out)
    p.receive(FULL_CONN, opened(103, "b6", "buy", "99.00", "0.3", 2), T0 + 1_000_000, out)
    assert kinds(out) == [("open", 101)] and events(out) == []  # 103 waits for 102
    p.receive(FULL_CONN, opened(102, "b5", "buy", "99.00", "0.5", 1), T0 + 2_000_000, out)
    assert kinds(out) == [("open", 101), ("open", 102), ("open", 103)] and events(out) == []
    assert [o for o, _ in queue(p, BID, 99.0)] == ["b1", "b2", "b4", "b5", "b6"]
    assert p.books()[0].synced and p.books()[0].last_update_id == 103
    # a duplicate of a held message is filtered
    p.receive(FULL_CONN, opened(105, "b8", "buy", "90", "1"), T0 + 3_000_000, out)
    assert (
        p.receive(FULL_CONN, opened(105, "b8", "buy", "90", "1"), T0 + 3_000_000, out)
        is FrameStatus.FILTERED
    )


def test_the_reorder_window_also_ends_after_so_many_messages() -> None:
    p, out = synced(full_reorder_window="2", full_reorder_ms="60000")
    out.drain()
    for seq in (102, 103):
        p.receive(FULL_CONN, opened(seq, f"o{seq}", "buy", "90", "1"), T0, out)
    assert events(out) == []
    p.receive(FULL_CONN, opened(104, "o104", "buy", "90", "1"), T0, out)  # a third one waiting
    assert events(out) == [("gap", 101, 102), ("resync", -1, -1)]
    assert [r.sequence for r in p.state["BTC-USD"].buffer] == [102, 103, 104]  # for the snapshot


def test_an_auction_snapshot_may_be_crossed_and_crossing_opens_do_not_break_it() -> None:
    p = protocol()
    out = RecordSink()
    p.receive(FULL_CONN, SUBSCRIBED, T0, out)
    crossed = msgspec.json.encode(
        {
            "sequence": 7,
            "bids": [["102", "1", "b"]],
            "asks": [["101", "1", "a"]],
            "time": iso(0),
            "auction_mode": True,
        }
    )
    answer(p, out, crossed)
    assert p.books()[0].synced and events(out) == [("synced", -1, 7)]
    p.receive(FULL_CONN, opened(8, "b2", "buy", "103", "1"), T0, out)
    assert p.books()[0].synced and kinds(out)[-1] == ("open", 8)


def test_a_refused_product_is_dropped_and_the_others_subscribed_again() -> None:
    p = protocol("BTC-USD", "ABC-USD")
    out = RecordSink()
    (spec,) = p.connections()
    refusal = msgspec.json.encode(
        {
            "type": "error",
            "message": "Failed to subscribe",
            "reason": "ABC-USD is not a valid product",
        }
    )
    assert p.take_reconnects() == []
    p.receive(FULL_CONN, refusal, T0, out)
    assert p.take_reconnects() == [FULL_CONN]  # Coinbase refused the whole subscribe: again
    assert p.take_reconnects() == []  # once
    assert [b.waiting for b in p.books()] == [
        "waiting for the subscription",
        "refused by Coinbase (not a valid product)",
    ]
    opening = p.opening(spec, T0 + S)  # the new connection (and every later one) leaves it out
    assert opening is not None
    sent = msgspec.json.decode(opening.messages[0])
    assert sent["product_ids"] == ["BTC-USD"] and sent["key"] == "cbKEY-123"
    only = protocol("ABC-USD")
    only.receive(FULL_CONN, refusal, T0, out)
    assert only.opening(only.connections()[0], T0) is None  # nothing left to subscribe


def test_only_the_products_the_subscriptions_ack_lists_are_subscribed() -> None:
    p = protocol("BTC-USD", "ETH-EUR")
    out = RecordSink()
    p.receive(FULL_CONN, SUBSCRIBED, T0, out)  # lists BTC-USD only
    assert p.state["BTC-USD"].subscribed and not p.state["ETH-EUR"].subscribed
    assert [r.key for r in p.due_requests(T0)] == ["full:BTC-USD"]
    other = b'{"type":"subscriptions","channels":[{"name":"ticker","product_ids":["ETH-EUR"]}]}'
    p.receive(FULL_CONN, other, T0, out)
    assert not p.state["ETH-EUR"].subscribed  # another channel's product is not ours


def checked(interval_s: str = "60") -> tuple[CoinbaseFullProtocol, RecordSink]:
    p, out = synced(full_snapshot_interval_s=interval_s)
    assert p.due_requests(T0 + S + 59 * S) == []  # not yet due
    out.drain()
    return p, out


def test_a_periodic_snapshot_that_matches_the_live_book_is_stored_as_a_checkpoint(
    tmp_path: Path,
) -> None:
    p, out = checked()
    assert p.next_wakeup_ns() == T0 + 61 * S  # the check is due a minute after the sync
    (request,) = p.due_requests(T0 + 61 * S)
    assert request.purpose is RestPurpose.BOOK_SNAPSHOT and p.books()[0].synced
    assert p.next_wakeup_ns() is None  # out: nothing to wake up for (no busy loop)
    # messages while it is out are held, not applied yet
    p.receive(FULL_CONN, opened(101, "b4", "buy", "99.00", "0.7", 1), T0 + 61 * S, out)
    assert kinds(out) == []
    body = snapshot_body(101, [*BIDS[:2], ["99.00", "0.7", "b4"], BIDS[2]], ASKS)
    p.receive_response(request, RestResponse(200, body), T0 + 62 * S, out)
    assert kinds(out) == [("open", 101)] + [("snapshot", 101)] * 6
    snapshot_rows = [r for r in out.book_l3 if r.kind == "snapshot"]
    assert [r.trade_id for r in snapshot_rows] == list(range(6))  # their places
    assert {r.ts for r in snapshot_rows} == {T0 + 1_000_000}  # the book as of message 101
    assert events(out) == [] and p.state["BTC-USD"].snapshots_checked == 1
    p.receive(FULL_CONN, opened(102, "b5", "buy", "98.00", "1", 2), T0 + 63 * S, out)
    assert kinds(out)[-1] == ("open", 102)  # applied at once again
    store = EmbeddedStore(str(tmp_path))
    store.write(out.drain())
    store.flush()
    rebuilt = book_l3_at(store, "coinbase", "BTC-USD", T0 + 10 * S)
    assert rebuilt.attrs["snapshot_ts"].value == T0 + 1_000_000  # replayed from the checkpoint
    assert rebuilt.attrs["update_id"] == 102
    assert p.due_requests(T0 + 100 * S) == [] and p.due_requests(T0 + 123 * S) != []


def test_a_periodic_snapshot_ahead_of_the_stream_waits_for_it() -> None:
    p, out = checked()
    (request,) = p.due_requests(T0 + 61 * S)
    body = snapshot_body(102, [*BIDS, ["98.00", "1", "b5"]], [ASKS[1]])
    p.receive_response(request, RestResponse(200, body), T0 + 62 * S, out)
    assert kinds(out) == []  # the stream is at 100: held until it reaches 102
    done = msg(
        "done", 101, 1, order_id="a1", side="sell", price="101.00", remaining_size="1.5",
        reason="canceled",
    )  # fmt: skip
    p.receive(FULL_CONN, done, T0 + 62 * S, out)
    assert kinds(out) == []
    p.receive(FULL_CONN, opened(102, "b5", "buy", "98.00", "1", 2), T0 + 62 * S, out)
    assert kinds(out) == [("done", 101), ("open", 102)] + [("snapshot", 102)] * 5
    assert events(out) == []


def test_a_periodic_snapshot_that_differs_is_a_gap_and_the_book_restarts_from_it() -> None:
    p, out = checked()
    (request,) = p.due_requests(T0 + 61 * S)
    reordered = [BIDS[1], BIDS[0], BIDS[2]]  # same orders, another queue order
    p.receive_response(
        request, RestResponse(200, snapshot_body(100, reordered, ASKS)), T0 + 62 * S, out
    )
    assert events(out) == [("gap", 100, 100), ("resync", -1, -1), ("synced", -1, 100)]
    assert "differs from the live book: the queue at 99" in out.events[0].detail
    assert out.events[0].ts == T0  # the exchange time of the book compared
    assert queue(p, BID, 99.0) == [("b2", 2.0), ("b1", 1.0)]
    assert p.books()[0].synced


def test_periodic_snapshots_can_be_turned_off() -> None:
    p, _ = synced(full_snapshot_interval_s="0")
    assert p.due_requests(T0 + 10**6 * S) == [] and p.next_wakeup_ns() is None
