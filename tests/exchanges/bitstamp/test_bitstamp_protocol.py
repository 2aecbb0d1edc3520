"""Bitstamp WebSocket v2 market data, sans-I/O, on hand-written frames."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest

from hundi.book.replay import broken
from hundi.exchanges.base import (
    FrameStatus,
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestRequest,
    RestResponse,
    VenueConfig,
)
from hundi.exchanges.bitstamp import BitstampVenue
from hundi.exchanges.bitstamp.book import BOOK_RULE
from hundi.exchanges.bitstamp.protocol import CONN, BitstampProtocol
from hundi.exchanges.bitstamp.symbols import native, normalize
from hundi.records import BUY, SELL, Channel

S = 1_000_000_000
T0 = 1_795_000_000 * S
US0 = T0 // 1_000  # microtimestamps around T0
ALL = (Channel.TRADES, Channel.BOOK, Channel.BBO, Channel.EVENTS)


def protocol(
    symbols: tuple[str, ...] = ("btcusd",),
    channels: tuple[Channel, ...] = ALL,
    **options: str,
) -> BitstampProtocol:
    config = VenueConfig(
        market="spot", symbols=symbols, channels=channels, endpoint="ws://sim",
        rest_endpoint="http://sim/", options=dict(options),
    )  # fmt: skip
    return BitstampVenue(config)


def frame(event: str, channel: str, data: Any) -> bytes:
    return msgspec.json.encode({"data": data, "channel": channel, "event": event})


def diff(
    mt: int, bids: list[list[str]] | None = None, asks: list[list[str]] | None = None
) -> bytes:
    body = {"timestamp": str(mt // 1_000_000), "microtimestamp": str(mt), "bids": bids or [],
            "asks": asks or []}  # fmt: skip
    return frame("data", "diff_order_book_btcusd", body)


def trade(trade_id: int, side: int = 0, price: str = "100.5", amount: str = "0.25") -> bytes:
    return frame("trade", "live_trades_btcusd", {
        "id": trade_id, "timestamp": str(US0 // 1_000_000), "amount": float(amount),
        "amount_str": amount, "price": float(price), "price_str": price, "type": side,
        "microtimestamp": str(US0), "buy_order_id": 1, "sell_order_id": 2,
    })  # fmt: skip


def snapshot_body(mt: int, bids: list[list[str]], asks: list[list[str]]) -> bytes:
    return msgspec.json.encode({"timestamp": str(mt // 1_000_000), "microtimestamp": str(mt),
                                "bids": bids, "asks": asks})  # fmt: skip


BIDS = [["100.0", "1.0"], ["99.0", "2.0"]]
ASKS = [["101.0", "1.5"], ["102.0", "3.0"]]


def opened(p: BitstampProtocol) -> RecordSink:
    out = RecordSink()
    p.on_open(CONN, T0, out)
    return out


ACK_WAIT = S  # without the diff subscription's ack, a snapshot is asked 1 s after the open
T1 = T0 + ACK_WAIT


def snapshot_request(p: BitstampProtocol, now_ns: int = T1) -> RestRequest:
    (request,) = [r for r in p.due_requests(now_ns) if r.purpose is RestPurpose.BOOK_SNAPSHOT]
    return request


def answer(p: BitstampProtocol, request: RestRequest, body: bytes, out: RecordSink) -> None:
    p.receive_response(request, RestResponse(200, body), T0, out)


def kinds(out: RecordSink) -> list[str]:
    """The book's events (a disconnect also stores one on trades)."""
    return [e.kind for e in out.events if e.channel != "trades"]


# ---------------------------------------------------------------------- symbols and config


def test_symbols_normalize_and_back() -> None:
    assert normalize("btcusd") == "BTC-USD"
    assert normalize("etheur") == "ETH-EUR"
    assert normalize("usdtusd") == "USDT-USD"  # the longest counter currency is not taken
    assert normalize("batbtc") == "BAT-BTC"
    assert normalize("btcusdt") == "BTC-USDT"
    assert native("ETH-EUR") == "etheur"


@pytest.mark.parametrize("bad", ["btc-usd", "BTC/USD", "usd", "btcxyz", ""])
def test_bad_pair_spelling_is_a_one_line_error(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Bitstamp pair") as caught:
        protocol((bad.lower(),) if bad else ("",))
    assert "\n" not in str(caught.value)


def test_the_cli_upper_case_spelling_is_bitstamps_lower_case() -> None:
    p = protocol(("BTCUSD", "ETHEUR"))
    assert p.symbols == {"btcusd": "BTC-USD", "etheur": "ETH-EUR"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": (Channel.TICKER,)}, "does not serve ticker"),
        ({"symbols": ()}, "no symbols"),
        ({"max_buffer": "x"}, "not a number"),
        ({"max_buffer": "0"}, "must be > 0"),
        ({"nope": "1"}, "unknown bitstamp option 'nope'"),
    ],
)
def test_config_errors_are_one_line(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        protocol(**kwargs)
    assert "\n" not in str(caught.value)


def test_only_a_spot_market() -> None:
    config = VenueConfig(market="usdm", symbols=("btcusd",), channels=ALL)
    with pytest.raises(ValueError, match="only a spot market"):
        BitstampVenue(config)


def test_connection_subscribes_each_channel_of_each_pair() -> None:
    (spec,) = protocol(("btcusd", "etheur")).connections()
    assert spec.key == CONN and spec.url == "ws://sim"
    channels = [msgspec.json.decode(m)["data"]["channel"] for m in spec.subscribe]
    assert channels == [
        "diff_order_book_btcusd", "diff_order_book_etheur", "live_trades_btcusd",
        "live_trades_etheur", "order_book_btcusd", "order_book_etheur",
    ]  # fmt: skip
    assert msgspec.json.decode(spec.subscribe[0])["event"] == "bts:subscribe"
    default = BitstampVenue(VenueConfig("spot", ("btcusd",), (Channel.TRADES,)))
    assert default.connections()[0].url == "wss://ws.bitstamp.net"
    assert default.snapshot_url("btcusd") == "https://www.bitstamp.net/api/v2/order_book/btcusd"


# ---------------------------------------------------------------------- control frames


def test_acks_heartbeats_are_filtered() -> None:
    p = protocol()
    out = opened(p)
    for data in (
        b'{"event":"bts:subscription_succeeded","channel":"live_trades_btcusd","data":{}}',
        b'{"event":"bts:unsubscription_succeeded","channel":"live_trades_btcusd","data":{}}',
        b'{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}',
    ):
        assert p.receive(CONN, data, T0, out) is FrameStatus.FILTERED
    assert len(out) == 0


def test_request_reconnect_asks_for_a_reconnect_once() -> None:
    p = protocol()
    out = opened(p)
    data = b'{"event": "bts:request_reconnect", "channel": "", "data": ""}'
    assert p.receive(CONN, data, T0, out) is FrameStatus.PROCESSED
    assert p.receive(CONN, data, T0, out) is FrameStatus.PROCESSED
    assert kinds(out) == ["shutdown", "shutdown"]
    assert "bts:request_reconnect" in out.events[0].detail
    assert p.take_reconnects() == [CONN]
    assert p.take_reconnects() == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"event":"bts:error","channel":"","data":{"code":null,"message":"Bad subscription'
         b' string."}}', "server_error"),
        (b'{"event":"bts:error","channel":"","data":"??"}', "server_error"),
        (b'{"event":"bts:whatever","channel":"","data":{}}', "unknown_event"),
        (b'{"event":"trade","channel":"diff_order_book_btcusd","data":{}}', "unknown_event"),
        (b"not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b'{"channel":"x"}', "invalid_message"),
        (b'{"event":"data","channel":"diff_order_book_ethusd","data":{}}', "unknown_symbol"),
        (b'{"event":"data","channel":"detail_order_book_btcusd","data":{}}', "unknown_stream"),
        (b'{"event":"data","channel":"diff_order_book_btcusd","data":{"bids":[]}}',
         "invalid_message"),
        (b'{"event":"data","channel":"diff_order_book_btcusd","data":{"microtimestamp":"1",'
         b'"bids":[["x","1"]],"asks":[]}}', "invalid_message"),
    ],
)  # fmt: skip
def test_bad_frames_are_rejected_with_their_reason(data: bytes, reason: str) -> None:
    p = protocol()
    out = opened(p)
    with pytest.raises(RejectedFrame) as caught:
        p.receive(CONN, data, T0, out)
    assert caught.value.reason == reason


def test_unsubscribed_channel_of_a_known_pair_is_an_unknown_stream() -> None:
    p = protocol(channels=(Channel.TRADES,))
    with pytest.raises(RejectedFrame) as caught:
        p.receive(CONN, diff(US0), T0, RecordSink())
    assert caught.value.reason == "unknown_stream"


# ---------------------------------------------------------------------- trades


def test_trades_carry_id_taker_side_and_microtimestamp() -> None:
    p = protocol()
    out = opened(p)
    assert p.receive(CONN, trade(7, side=0), T0, out) is FrameStatus.PROCESSED
    assert p.receive(CONN, trade(8, side=1, price="101.25"), T0, out) is FrameStatus.PROCESSED
    first, second = out.trades
    assert (first.trade_id, first.side, first.price, first.size) == (7, BUY, 100.5, 0.25)
    assert first.ts == US0 * 1_000 and first.recv_ts == T0
    assert (first.symbol, first.native_symbol, first.exchange) == ("BTC-USD", "btcusd", "bitstamp")
    assert (second.side, second.price) == (SELL, 101.25)


def test_a_trade_seen_again_is_stored_once() -> None:
    p = protocol()
    out = opened(p)
    p.receive(CONN, trade(7), T0, out)
    assert p.receive(CONN, trade(7), T0, out) is FrameStatus.FILTERED
    assert p.receive(CONN, trade(6), T0, out) is FrameStatus.PROCESSED  # late, never stored
    assert [t.trade_id for t in out.trades] == [7, 6]
    assert p.trades_dropped == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (trade(1, side=2), "invalid_field"),
        (trade(1, price="0"), "invalid_value"),
        (trade(1, amount="nan"), "invalid_value"),
    ],
)
def test_bad_trades_are_rejected(data: bytes, reason: str) -> None:
    p = protocol()
    out = opened(p)
    with pytest.raises(RejectedFrame) as caught:
        p.receive(CONN, data, T0, out)
    assert caught.value.reason == reason
    assert out.trades == []


def test_a_disconnect_stores_a_trades_gap_after_the_last_id() -> None:
    p = protocol(channels=(Channel.TRADES,))
    out = opened(p)
    p.receive(CONN, trade(41), T0, out)
    p.on_close(CONN, T0 + S, out)
    (gap,) = out.events
    assert (gap.kind, gap.channel, gap.expected, gap.received) == ("gap", "trades", 42, -1)
    p.on_open(CONN, T0 + 2 * S, out)
    assert len(out.events) == 1  # one gap per break


# ---------------------------------------------------------------------- book sync


def test_snapshot_requested_once_connected_and_acknowledged() -> None:
    p = protocol()
    assert [r.purpose for r in p.due_requests(T0)] == [RestPurpose.SYMBOL_LISTING]
    out = opened(p)
    assert p.due_requests(T0) == [] and p.next_wakeup_ns() == T1  # waits for the ack
    ack = b'{"event":"bts:subscription_succeeded","channel":"diff_order_book_btcusd","data":{}}'
    p.receive(CONN, ack, T0, out)
    request = snapshot_request(p, T0)  # acknowledged: at once
    assert request.url == "http://sim/api/v2/order_book/btcusd" and request.key == "btcusd"
    assert p.due_requests(T0 + S) == []  # one in flight


def test_without_an_ack_the_snapshot_is_asked_after_the_wait() -> None:
    p = protocol(snapshot_ack_wait_ms="300")
    opened(p)
    p.due_requests(T0)  # the listing
    assert p.due_requests(T0 + S // 4) == []
    assert snapshot_request(p, T0 + 3 * S // 10)


def test_documented_sync_drops_old_diffs_and_applies_the_rest() -> None:
    p = protocol()
    out = opened(p)
    request = snapshot_request(p)
    p.receive(CONN, diff(US0 + 1, bids=[["100.0", "9.0"]]), T0, out)  # in the snapshot
    assert not p.book("btcusd").synced
    answer(p, request, snapshot_body(US0 + 3, BIDS, ASKS), out)
    book = p.book("btcusd")
    assert book.synced and book.last_mt == US0 + 3
    # a late diff the snapshot holds is dropped while nothing newer was applied
    p.receive(CONN, diff(US0 + 2, bids=[["100.5", "1"]]), T0, out)
    assert book.synced and book.bids.best() == 100.0 and book.diffs_covered == 2
    p.receive(CONN, diff(US0 + 5, asks=[["101.0", "0"]]), T0, out)  # after it
    assert kinds(out) == ["synced"] and book.last_mt == US0 + 5
    snapshot_rows = [r for r in out.book if r.snapshot]
    diff_rows = [r for r in out.book if not r.snapshot]
    assert {r.update_id for r in snapshot_rows} == {US0 + 3} and len(snapshot_rows) == 4
    assert [(r.price, r.size, r.update_id, r.prev_update_id) for r in diff_rows] == [
        (101.0, 0.0, US0 + 5, US0 + 3)
    ]
    assert book.bids.best() == 100.0 and book.asks.best() == 102.0
    status = p.books()[0]
    assert status.synced and status.best_bid == 100.0 and status.last_update_id == US0 + 5


def test_an_old_diff_after_a_newer_one_is_time_going_back_not_covered() -> None:
    p = protocol()
    out = opened(p)
    request = snapshot_request(p)
    p.receive(CONN, diff(US0 + 1), T0, out)
    answer(p, request, snapshot_body(US0 + 3, BIDS, ASKS), out)
    p.receive(CONN, diff(US0 + 5, asks=[["101.0", "0"]]), T0, out)
    p.receive(CONN, diff(US0 + 2, bids=[["100.5", "1"]]), T0, out)  # older than the snapshot
    assert kinds(out) == ["synced", "gap", "resync"]
    assert (out.events[1].expected, out.events[1].received) == (US0 + 5, US0 + 2)
    assert not p.book("btcusd").synced


def test_the_same_diff_twice_is_applied_once() -> None:
    p = protocol()
    out = opened(p)
    synced(p, out)
    again = diff(US0 + 7, bids=[["99.5", "1"]])
    assert p.receive(CONN, again, T0, out) is FrameStatus.PROCESSED
    rows = len(out.book)
    assert p.receive(CONN, again, T0, out) is FrameStatus.FILTERED
    assert len(out.book) == rows and p.book("btcusd").diffs_repeated == 1
    # another diff in the same microsecond is a change of its own
    assert p.receive(CONN, diff(US0 + 7, bids=[["99.5", "2"]]), T0, out) is (FrameStatus.PROCESSED)
    assert len(out.book) == rows + 1 and kinds(out) == ["synced"]


def test_stale_snapshot_is_refetched_never_applied() -> None:
    p = protocol()
    out = opened(p)
    request = snapshot_request(p)
    p.receive(CONN, diff(US0 + 10, bids=[["100.0", "1.0"]]), T0, out)
    answer(p, request, snapshot_body(US0 + 5, BIDS, ASKS), out)  # older than the first diff
    assert not p.book("btcusd").synced and out.book == []
    (event,) = out.events
    assert event.kind == "resync" and event.detail.startswith("stale snapshot")
    assert (event.expected, event.received) == (US0 + 10, US0 + 5)
    again = snapshot_request(p, T1 + S)
    answer(p, again, snapshot_body(US0 + 20, BIDS, ASKS), out)
    assert p.book("btcusd").synced and kinds(out) == ["resync", "synced"]


def test_snapshot_before_any_diff_waits_for_one_to_judge_it() -> None:
    p = protocol()
    out = opened(p)
    answer(p, snapshot_request(p), snapshot_body(US0 + 5, BIDS, ASKS), out)
    assert not p.book("btcusd").synced and "snapshot held" in p.books()[0].waiting
    p.receive(CONN, diff(US0 + 4), T0, out)  # the subscription was live before the snapshot
    assert p.book("btcusd").synced


ACK = b'{"event":"bts:subscription_succeeded","channel":"diff_order_book_btcusd","data":{}}'


def test_a_lagging_snapshot_asked_after_the_ack_is_held_until_a_diff_judges_it() -> None:
    """The REST answer lags the stream (the real recording: 1-2.5 s): a snapshot asked after
    the ack may predate changes already streamed before the buffer began. Applying it at once
    would lose them; a diff newer than it shows it stale."""
    p = protocol()
    out = opened(p)
    p.receive(CONN, ACK, T0, out)
    answer(p, snapshot_request(p, T0), snapshot_body(US0, BIDS, ASKS), out)
    assert not p.book("btcusd").synced and out.book == []
    p.receive(CONN, diff(US0 + 2_000_000, bids=[["99.5", "1"]]), T0 + S, out)  # 2 s newer
    assert not p.book("btcusd").synced and kinds(out) == ["resync"]
    assert out.events[0].detail.startswith("stale snapshot")


def test_a_stale_refetch_waits_for_the_streams_lead_and_backs_off() -> None:
    p = protocol(stale_wait_ms="5000")
    out = opened(p)
    p.receive(CONN, ACK, T0, out)
    request = snapshot_request(p, T0)
    p.receive(CONN, diff(US0 + 2_000_000), T0, out)  # 2 s after the snapshot below
    p.receive_response(request, RestResponse(200, snapshot_body(US0, BIDS, ASKS)), T0, out)
    assert p.due_requests(T0 + S) == [] and p.next_wakeup_ns() == T0 + 2 * S
    again = snapshot_request(p, T0 + 2 * S)
    p.receive_response(again, RestResponse(200, snapshot_body(US0, BIDS, ASKS)), T0 + 2 * S, out)
    assert kinds(out) == ["resync", "resync"]
    assert p.next_wakeup_ns() == T0 + 6 * S  # doubled: 4 s after the second stale answer


def test_a_quiet_pair_syncs_on_a_second_unchanged_snapshot() -> None:
    p = protocol()
    out = opened(p)
    p.receive(CONN, ACK, T0, out)
    answer(p, snapshot_request(p, T0), snapshot_body(US0, BIDS, ASKS), out)
    assert not p.book("btcusd").synced
    assert p.due_requests(T0 + 2 * S) == [] and p.next_wakeup_ns() == T0 + 3 * S
    confirm = snapshot_request(p, T0 + 3 * S)
    p.receive_response(confirm, RestResponse(200, snapshot_body(US0, BIDS, ASKS)), T0, out)
    assert p.book("btcusd").synced and kinds(out) == ["synced"]
    assert "quiet" in out.events[0].detail


def test_a_second_snapshot_that_changed_is_held_again() -> None:
    p = protocol()
    out = opened(p)
    p.receive(CONN, ACK, T0, out)
    answer(p, snapshot_request(p, T0), snapshot_body(US0, BIDS, ASKS), out)
    confirm = snapshot_request(p, T0 + 3 * S)
    later = T0 + 3 * S
    p.receive_response(confirm, RestResponse(200, snapshot_body(US0 + 9, BIDS, ASKS)), later, out)
    assert not p.book("btcusd").synced and out.events == []
    assert snapshot_request(p, later + 3 * S)  # confirmed against the newer one, later


def test_a_confirming_snapshot_is_asked_only_after_the_ack() -> None:
    p = protocol()
    out = opened(p)
    answer(p, snapshot_request(p), snapshot_body(US0, BIDS, ASKS), out)
    assert p.due_requests(T1 + 10 * S) == []  # a confirmation needs the ack first
    p.receive(CONN, ACK, T1 + 10 * S, out)
    confirm = snapshot_request(p, T1 + 10 * S)
    answer(p, confirm, snapshot_body(US0, BIDS, ASKS), out)
    assert p.book("btcusd").synced


def synced(p: BitstampProtocol, out: RecordSink) -> None:
    request = snapshot_request(p)
    p.receive(CONN, diff(US0), T0, out)
    answer(p, request, snapshot_body(US0 + 1, BIDS, ASKS), out)
    assert p.book("btcusd").synced


def test_time_going_back_is_a_gap_and_resyncs_in_place() -> None:
    p = protocol()
    out = opened(p)
    synced(p, out)
    p.receive(CONN, diff(US0 + 10, bids=[["99.5", "1"]]), T0, out)
    p.receive(CONN, diff(US0 + 8, bids=[["99.6", "1"]]), T0, out)
    assert kinds(out) == ["synced", "gap", "resync"]
    gap = out.events[1]
    assert (gap.expected, gap.received) == (US0 + 10, US0 + 8) and gap.channel == "book"
    assert not p.book("btcusd").synced and p.take_reconnects() == []  # no reconnect needed
    request = snapshot_request(p, T1 + S)  # a new snapshot, the diff kept in the buffer
    answer(p, request, snapshot_body(US0 + 9, BIDS, ASKS), out)
    assert p.book("btcusd").synced and kinds(out)[-1] == "synced"


def test_a_diff_crossing_the_book_is_a_gap() -> None:
    p = protocol()
    out = opened(p)
    synced(p, out)
    before = len(out.book)
    p.receive(CONN, diff(US0 + 10, bids=[["101.5", "1"]]), T0, out)
    assert kinds(out) == ["synced", "gap", "resync"]
    assert "cross" in out.events[1].detail and len(out.book) == before  # nothing stored
    assert not p.book("btcusd").synced
    assert p.books()[0].best_bid != p.books()[0].best_bid  # nan: the book was dropped


def test_a_crossed_snapshot_is_refetched() -> None:
    p = protocol()
    out = opened(p)
    p.receive(CONN, diff(US0), T0, out)
    answer(p, snapshot_request(p), snapshot_body(US0 + 1, [["102.0", "1"]], ASKS), out)
    assert kinds(out) == ["resync"] and out.events[0].detail == "crossed snapshot"
    assert snapshot_request(p, T1 + S)


def test_disconnect_is_a_gap_and_a_reopen_asks_a_new_snapshot() -> None:
    p = protocol()
    out = opened(p)
    synced(p, out)
    p.on_close(CONN, T0 + S, out)
    gap = [e for e in out.events if e.channel == "book"][1]
    assert kinds(out) == ["synced", "gap", "resync"] and gap.detail == "disconnect"
    # on the exchange clock of the last change, as the snapshot rows that repair it
    assert gap.ts == (US0 + 1) * 1_000 and gap.recv_ts == T0 + S
    assert p.due_requests(T0 + S) == []  # nothing to sync while closed
    p.on_open(CONN, T0 + 2 * S, out)
    assert snapshot_request(p, T1 + 2 * S)


def test_an_answer_to_an_older_connections_request_is_judged_like_any() -> None:
    p = protocol()
    out = opened(p)
    ack = b'{"event":"bts:subscription_succeeded","channel":"diff_order_book_btcusd","data":{}}'
    p.receive(CONN, ack, T0, out)
    old = snapshot_request(p)  # asked after the ack, but on a connection that then dropped
    p.on_close(CONN, T0, out)
    answer(p, old, snapshot_body(US0 + 1, BIDS, ASKS), out)  # closed: nothing to judge it by
    assert not p.book("btcusd").synced and out.book == []
    p.on_open(CONN, T0, out)
    older = snapshot_request(p, T1 + S)
    p.on_close(CONN, T0, out)
    p.on_open(CONN, T0, out)
    new = snapshot_request(p, T1 + 2 * S)
    answer(p, older, snapshot_body(US0 + 1, BIDS, ASKS), out)
    assert not p.book("btcusd").synced  # held: it does not vouch for the new subscription
    p.receive(CONN, diff(US0), T0, out)  # the first diff of the new connection vouches
    assert p.book("btcusd").synced
    answer(p, new, snapshot_body(US0 + 2, BIDS, ASKS), out)  # synced already: ignored
    assert p.book("btcusd").last_mt == US0 + 1 and kinds(out) == ["synced"]


def test_failed_snapshot_is_retried_after_a_backoff() -> None:
    p = protocol()
    out = opened(p)
    request = snapshot_request(p)
    p.receive_response(request, RestResponse(503, b""), T1, out)
    assert p.due_requests(T1 + S // 10) == []
    wake = p.next_wakeup_ns()
    assert wake is not None and T1 < wake <= T1 + S
    retry = snapshot_request(p, wake)
    p.receive_response(retry, RestResponse(200, b"garbage"), wake, out)  # unreadable: retried
    assert not p.book("btcusd").synced and p.due_requests(wake) == []
    assert snapshot_request(p, wake + 2 * S)


def test_snapshots_are_spaced() -> None:
    p = protocol(("btcusd", "etheur"), rest_min_interval_ms="500")
    opened(p)
    first = [r.key for r in p.due_requests(T1) if r.purpose is RestPurpose.BOOK_SNAPSHOT]
    assert first == ["btcusd"]
    assert p.next_wakeup_ns() == T1 + S // 2
    assert [r.key for r in p.due_requests(T1 + S // 2)] == ["etheur"]


def test_buffer_overflow_starts_the_buffer_over() -> None:
    p = protocol(max_buffer="2")
    out = opened(p)
    for i in range(3):
        p.receive(CONN, diff(US0 + i), T0, out)
    assert kinds(out) == ["resync"] and "buffer full" in out.events[0].detail
    assert p.book("btcusd").first_buffered_mt == US0 + 2


def test_time_going_back_while_buffering_starts_the_buffer_over() -> None:
    p = protocol()
    out = opened(p)
    p.receive(CONN, diff(US0 + 5), T0, out)
    p.receive(CONN, diff(US0 + 3), T0, out)
    assert kinds(out) == ["resync"] and p.book("btcusd").first_buffered_mt == US0 + 3


def test_the_top_100_channel_is_the_bbo() -> None:
    p = protocol()
    out = opened(p)
    body = {"timestamp": "1", "microtimestamp": str(US0), "bids": BIDS, "asks": ASKS}
    assert p.receive(CONN, frame("data", "order_book_btcusd", body), T0, out) is (
        FrameStatus.PROCESSED
    )
    (bbo,) = out.bbo
    assert (bbo.bid_price, bbo.bid_size, bbo.ask_price, bbo.ask_size) == (100.0, 1.0, 101.0, 1.5)
    assert bbo.update_id == US0
    crossed = {**body, "bids": [["102.0", "1"]]}
    with pytest.raises(RejectedFrame):
        p.receive(CONN, frame("data", "order_book_btcusd", crossed), T0, out)


# ---------------------------------------------------------------------- listing


def test_listing_flags_unlisted_renamed_and_disabled_pairs() -> None:
    p = protocol(("btcusd", "etheur", "xrpusd", "ltcusd"))
    (listing,) = [r for r in p.due_requests(T0) if r.purpose is RestPurpose.SYMBOL_LISTING]
    assert listing.url == "http://sim/api/v2/trading-pairs-info/"
    body = msgspec.json.encode([
        {"url_symbol": "btcusd", "name": "BTC/USD", "trading": "Enabled"},
        {"url_symbol": "etheur", "name": "ETH/EUR", "trading": "Disabled"},
        {"url_symbol": "xrpusd", "name": "XRPX/USD", "trading": "Enabled"},
    ])  # fmt: skip
    out = RecordSink()
    p.receive_response(listing, RestResponse(500, b""), T0, out)
    assert out.events == [] and p.due_requests(T0) == []  # retried after a back-off
    retry = [r for r in p.due_requests(T0 + S) if r.purpose is RestPurpose.SYMBOL_LISTING]
    p.receive_response(retry[0], RestResponse(200, body), T0, out)
    problems = {e.native_symbol: e.detail for e in out.events}
    assert set(problems) == {"etheur", "xrpusd", "ltcusd"} == set(p.invalid_symbols)
    assert "Disabled" in problems["etheur"] and "XRPX/USD" in problems["xrpusd"]
    assert all(e.kind == "invalid_symbol" for e in out.events)


# ---------------------------------------------------------------------- stored rows rule


def test_book_rule_judges_rows_as_the_sync_does() -> None:
    first = np.array([5, 3, 7, 7], np.int64)
    prev_u = np.array([4, 4, 7, 8], np.int64)
    assert BOOK_RULE.after_snapshot(first, first, prev_u, prev_u).tolist() == [
        True, False, False, False
    ]  # fmt: skip
    # a diff naming the row before it; a second diff in the same µs; the next level of the
    # same diff (same ids, an older predecessor)
    first = np.array([5, 7, 7, 9], np.int64)
    prev_id = np.array([4, 7, 5, 8], np.int64)
    prev_u = np.array([4, 7, 7, 8], np.int64)
    assert BOOK_RULE.after_diff(first, first, prev_id, prev_u).tolist() == [True] * 4


def test_book_rule_sees_a_missing_stored_diff() -> None:
    """Stored diffs name the exact predecessor: a diff whose predecessor is not the row before
    it (one in the middle is missing) breaks the chain, though its time moves forward."""
    p = protocol()
    out = opened(p)
    synced(p, out)
    for mt in (US0 + 2, US0 + 3, US0 + 4):
        p.receive(CONN, diff(mt, bids=[["99.5", str(mt - US0)]]), T0, out)
    rows = [r for r in out.book if not r.snapshot]
    del rows[1]  # the middle diff was lost from the store
    first = np.array([r.first_update_id for r in rows], np.int64)
    prev_id = np.array([r.prev_update_id for r in rows], np.int64)
    prev_u = np.array([US0 + 1] + [r.update_id for r in rows[:-1]], np.int64)
    after_snapshot = BOOK_RULE.after_snapshot(first, first, prev_id, prev_u).tolist()
    after_diff = BOOK_RULE.after_diff(first, first, prev_id, prev_u).tolist()
    assert after_snapshot[0] and after_diff[1:] == [False]


def test_a_pair_listed_under_another_name_is_unsubscribed_not_collected() -> None:
    p = protocol(("btcusd", "xrpusd"))
    out = opened(p)
    (listing,) = [r for r in p.due_requests(T0) if r.purpose is RestPurpose.SYMBOL_LISTING]
    body = msgspec.json.encode([
        {"url_symbol": "btcusd", "name": "BTC/USD", "trading": "Enabled"},
        {"url_symbol": "xrpusd", "name": "XRPX/USD", "trading": "Enabled"},
    ])  # fmt: skip
    p.receive_response(listing, RestResponse(200, body), T0, out)
    assert p.take_messages() == [
        (CONN, b'{"event":"bts:unsubscribe","data":{"channel":"%s_xrpusd"}}' % prefix)
        for prefix in (b"diff_order_book", b"live_trades", b"order_book")
    ]
    (event,) = out.events
    assert event.kind == "invalid_symbol" and "not collected" in event.detail
    xrp_trade = trade(7).replace(b"live_trades_btcusd", b"live_trades_xrpusd")
    assert p.receive(CONN, xrp_trade, T0, out) is FrameStatus.FILTERED
    assert out.trades == [] and [b.symbol for b in p.books()] == ["BTC-USD"]
    assert all(b"xrpusd" not in m for m in p.connections()[0].subscribe)
    assert all(r.key != "xrpusd" for r in p.due_requests(T1))


def test_a_snapshot_of_a_book_unchanged_for_days_is_plausible() -> None:
    p = protocol()
    out = opened(p)
    p.receive(CONN, ACK, T0, out)
    days_old = US0 - 3 * 86_400_000_000
    answer(p, snapshot_request(p, T0), snapshot_body(days_old, BIDS, ASKS), out)
    confirm = snapshot_request(p, T0 + 3 * S)  # a quiet pair: confirmed by a second one
    answer(p, confirm, snapshot_body(days_old, BIDS, ASKS), out)
    assert p.book("btcusd").synced
    q = protocol()
    out = opened(q)
    future = US0 + 3 * 86_400_000_000
    answer(q, snapshot_request(q), snapshot_body(future, BIDS, ASKS), out)
    assert q.book("btcusd").pending is None  # refused, refetched after a back-off


def test_a_stale_refetch_waits_at_most_stale_wait_first() -> None:
    """A lead of minutes is a book that was quiet before the first diff, not a REST lag."""
    p = protocol()
    out = opened(p)
    p.receive(CONN, ACK, T0, out)
    request = snapshot_request(p, T0)
    p.receive(CONN, diff(US0 + 600_000_000), T0, out)  # 10 minutes after the snapshot below
    p.receive_response(request, RestResponse(200, snapshot_body(US0, BIDS, ASKS)), T0, out)
    assert p.next_wakeup_ns() == T0 + S


def test_a_book_resynced_after_a_disconnect_is_not_broken_for_book_at() -> None:
    """The disconnect gap is on the exchange clock: the snapshot that resynced the book (here
    the same unchanged book, the same microtimestamp) repairs it; on the local clock (later than
    the book's last change) ``book_at`` would call the resynced book broken."""
    p = protocol()
    out = opened(p)
    synced(p, out)  # snapshot at US0 + 1
    p.on_close(CONN, T0 + 10 * S, out)
    p.on_open(CONN, T0 + 11 * S, out)
    request = snapshot_request(p, T0 + 12 * S)
    p.receive(CONN, diff(US0 + 1), T0 + 12 * S, out)  # vouches: nothing changed meanwhile
    answer(p, request, snapshot_body(US0 + 1, BIDS, ASKS), out)
    assert p.book("btcusd").synced
    gaps = np.array(sorted(e.ts for e in out.events if e.kind == "gap" and e.channel == "book"))
    snapshot_ts = max(r.ts for r in out.book if r.snapshot)
    assert not broken(gaps, snapshot_ts, T0 + 20 * S)
