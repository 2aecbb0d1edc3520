"""Kraken trades fetched back over REST ``Trades`` on hand-written frames and answers: the
request a trade-id gap makes, pages stored once, ids not returned, pacing and back-off on rate
limits, the budget per gap, a clean stop, and the options' errors."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from hundi.exchanges.base import RecordSink, RestPurpose, RestRequest, RestResponse, VenueConfig
from hundi.exchanges.kraken import KrakenProtocol, KrakenVenue
from hundi.exchanges.kraken.backfill import PAGE
from hundi.records import BUY, SELL, Channel, Event

NOW = 1_700_000_000_000_000_000
S = 1_000_000_000
MS = 1_000_000


def make(pairs: tuple[str, ...] = ("BTC/USD",), **options: str) -> KrakenProtocol:
    config = VenueConfig("spot", pairs, (Channel.TRADES, Channel.EVENTS), options=options,
                         rest_endpoint="http://sim.test")  # fmt: skip
    protocol = KrakenVenue(config)
    assert isinstance(protocol, KrakenProtocol)
    return protocol


def iso(micros: int) -> str:
    """``2023-11-14T22:13:20.<micros>Z``: NOW plus ``micros`` µs (under a second)."""
    return f"2023-11-14T22:13:20.{micros:06d}Z"


def ws_trade(tid: int, micros: int = 0, pair: str = "BTC/USD") -> dict[str, Any]:
    return {"symbol": pair, "side": "buy", "price": 100.5, "qty": 0.25, "ord_type": "limit",
            "trade_id": tid, "timestamp": iso(micros)}  # fmt: skip


def feed(p: KrakenProtocol, trades: list[dict[str, Any]], out: RecordSink, kind: str = "update",
         recv_ns: int = NOW) -> None:  # fmt: skip
    frame = msgspec.json.encode({"channel": "trade", "type": kind, "data": trades})
    p.receive("public", frame, recv_ns, out)


def rest_row(tid: int, micros: int = 0, side: str = "s") -> list[Any]:
    return ["101.25000", "0.50000000", msgspec.Raw(f"1700000000.{micros:06d}".encode()), side,
            "l", "", tid]  # fmt: skip


def answer(rows: list[list[Any]], last: int = NOW, key: str = "XXBTZUSD") -> RestResponse:
    body = msgspec.json.encode({"error": [], "result": {key: rows, "last": str(last)}})
    return RestResponse(200, body)


def error(*errors: str, status: int = 200) -> RestResponse:
    return RestResponse(status, msgspec.json.encode({"error": list(errors)}))


def with_gap(p: KrakenProtocol | None = None) -> tuple[KrakenProtocol, RecordSink]:
    """Ids 1, 2 (at 200 µs) then 6: ids 3..5 missing."""
    p = p or make()
    out = RecordSink()
    feed(p, [ws_trade(1, 100), ws_trade(2, 200)], out, "snapshot")
    feed(p, [ws_trade(6, 600)], out)
    return p, out


def one_request(p: KrakenProtocol, now_ns: int = NOW) -> RestRequest:
    (request,) = p.due_requests(now_ns)
    return request


def events(out: RecordSink) -> list[tuple[str, int, int]]:
    return [(e.kind, e.expected, e.received) for e in out.events]


def test_a_gap_asks_trades_since_just_before_the_last_trade_stored() -> None:
    p, out = with_gap()
    assert events(out) == [("gap", 3, 6)]
    assert p.owed_ids() == 3
    request = one_request(p)
    since = NOW + 200_000 - MS  # the time of id 2, less the 1 ms margin
    assert request.url == (
        f"http://sim.test/0/public/Trades?pair=BTC%2FUSD&since={since}&count={PAGE}"
    )
    assert request.purpose is RestPurpose.TRADE_BACKFILL and request.key == "trades:BTC/USD"
    assert p.due_requests(NOW + 5 * S) == []  # one request in flight at a time
    assert p.next_wakeup_ns() is None


def test_the_page_stores_the_missing_ids_once_with_a_backfilled_event() -> None:
    p, _ = with_gap()
    request = one_request(p)
    out = RecordSink()
    rows = [rest_row(2, 200), rest_row(3, 300), rest_row(4, 400, "b"), rest_row(5, 500),
            rest_row(6, 600), rest_row(7, 700)]  # fmt: skip
    p.receive_response(request, answer(rows), NOW + S, out)
    assert [(t.trade_id, t.side, t.price, t.size, t.ts) for t in out.trades] == [
        (3, SELL, 101.25, 0.5, NOW + 300_000),
        (4, BUY, 101.25, 0.5, NOW + 400_000),
        (5, SELL, 101.25, 0.5, NOW + 500_000),
    ]
    assert {(t.symbol, t.native_symbol, t.recv_ts) for t in out.trades} == {
        ("BTC-USD", "BTC/USD", NOW + S)
    }
    assert events(out) == [("backfilled", 3, 6)]
    assert "3 recovered over REST, 3 stored" in out.events[0].detail
    assert p.owed_ids() == 0 and p.finishing_requests(NOW + 2 * S) is None
    later = RecordSink()  # the stream repeating a fetched id (a re-subscribe's snapshot)
    feed(p, [ws_trade(4, 400), ws_trade(6, 600), ws_trade(7, 700)], later, "snapshot")
    assert [t.trade_id for t in later.trades] == [7] and later.events == []


def test_an_id_the_stream_delivered_meanwhile_is_not_stored_twice() -> None:
    p, _ = with_gap()
    request = one_request(p)
    out = RecordSink()
    # a re-subscribe's snapshot reaching back to id 4 fills part of the hole first
    feed(p, [ws_trade(4, 400), ws_trade(5, 500), ws_trade(6, 600)], out, "snapshot")
    assert [t.trade_id for t in out.trades] == [4, 5]
    out = RecordSink()
    rows = [rest_row(3, 300), rest_row(4, 400), rest_row(5, 500), rest_row(6, 600)]
    p.receive_response(request, answer(rows), NOW + S, out)
    assert [t.trade_id for t in out.trades] == [3]
    assert events(out) == [("backfilled", 3, 6)]
    assert "3 recovered over REST, 1 stored" in out.events[0].detail


def test_ids_kraken_does_not_return_are_unrecoverable() -> None:
    p, _ = with_gap()
    out = RecordSink()
    p.receive_response(one_request(p), answer([rest_row(2), rest_row(4), rest_row(6)]), NOW, out)
    assert [t.trade_id for t in out.trades] == [4]
    assert events(out) == [("backfilled", 4, 5), ("unrecoverable", 3, 4), ("unrecoverable", 5, 6)]
    assert p.owed_ids() == 0
    p, _ = with_gap()
    out = RecordSink()  # a short page ending before the gap does: the rest is not returned
    p.receive_response(one_request(p), answer([rest_row(3)]), NOW, out)
    assert events(out) == [("backfilled", 3, 4), ("unrecoverable", 4, 6)]
    assert "not returned over REST" in out.events[1].detail
    p, _ = with_gap()
    out = RecordSink()  # nothing at all
    p.receive_response(one_request(p), answer([]), NOW, out)
    assert events(out) == [("unrecoverable", 3, 6)] and out.trades == []


def test_a_full_page_is_followed_by_the_next_from_its_highest_trades_time() -> None:
    p = make()
    out = RecordSink()
    feed(p, [ws_trade(1, 100)], out, "snapshot")
    feed(p, [ws_trade(2 + PAGE + 10, 900)], out)  # ids 2..1011 missing
    first = one_request(p)
    rows = [rest_row(tid, 100 + tid // 10) for tid in range(2, 2 + PAGE)]  # ids 2..1001
    out = RecordSink()
    p.receive_response(first, answer(rows), NOW + S, out)
    assert len(out.trades) == PAGE and events(out) == [("backfilled", 2, 2 + PAGE)]
    assert p.owed_ids() == 10
    assert p.due_requests(NOW + S - 1) == []  # paced: a request a second by default
    second = one_request(p, NOW + S)
    top_ns = NOW + (100 + (1 + PAGE) // 10) * 1000
    assert f"since={top_ns - MS}&" in second.url
    out = RecordSink()
    rows = [rest_row(tid, 100 + tid // 10) for tid in range(1000, 1013)]
    p.receive_response(second, answer(rows), NOW + 2 * S, out)
    assert [t.trade_id for t in out.trades] == list(range(2 + PAGE, 12 + PAGE))
    assert events(out) == [("backfilled", 1002, 1012)] and p.owed_ids() == 0


def test_rate_limits_back_off_without_spending_the_gaps_budget() -> None:
    p, _ = with_gap(make(backfill_requests_per_gap="1"))
    out = RecordSink()
    p.receive_response(one_request(p), error("EGeneral:Too many requests"), NOW, out)
    assert out.events == [] and p.owed_ids() == 3
    assert p.next_wakeup_ns() == NOW + S and p.due_requests(NOW + S - 1) == []
    p.receive_response(one_request(p, NOW + S), RestResponse(429, b"{}"), NOW + S, out)
    assert p.next_wakeup_ns() == NOW + 3 * S  # doubled
    p.receive_response(one_request(p, NOW + 3 * S), error("EAPI:Rate limit exceeded"),
                       NOW + 3 * S, out)  # fmt: skip
    assert p.next_wakeup_ns() == NOW + 7 * S and out.events == []
    request = one_request(p, NOW + 7 * S)
    p.receive_response(request, answer([rest_row(3), rest_row(4), rest_row(5)]), NOW + 7 * S, out)
    assert [t.trade_id for t in out.trades] == [3, 4, 5]
    assert p.backfill._backoff_ns == 0  # an answer resets the back-off


def test_a_retry_after_header_is_honoured_up_to_a_minute() -> None:
    p, _ = with_gap()
    out = RecordSink()
    p.receive_response(one_request(p), RestResponse(429, b"", {"Retry-After": "7"}), NOW, out)
    assert p.next_wakeup_ns() == NOW + 7 * S
    p.receive_response(
        one_request(p, NOW + 7 * S), RestResponse(429, b"", {"retry-after": "3600"}), NOW, out
    )
    assert p.next_wakeup_ns() == NOW + 60 * S
    assert out.events == [] and p.owed_ids() == 3


def test_failures_spend_the_budget_then_the_gap_is_unrecoverable() -> None:
    p, _ = with_gap(make(backfill_requests_per_gap="3"))
    out = RecordSink()
    now = NOW
    for response in (RestResponse(502, b"bad gateway"), RestResponse(200, b"not json"),
                     error("EService:Unavailable")):  # fmt: skip
        request = one_request(p, now)
        p.receive_response(request, response, now, out)
        now = p.next_wakeup_ns() or 0
    assert events(out) == [("unrecoverable", 3, 6)]
    assert "at most 3 Trades requests per gap (last answer: EService:Unavailable)" in (
        out.events[0].detail
    )
    assert p.owed_ids() == 0 and p.due_requests(now + 60 * S) == []


def test_pairs_take_turns_one_request_at_a_time_spaced_by_the_interval() -> None:
    p = make(("BTC/USD", "ETH/USD"), rest_interval_ms="250")
    out = RecordSink()
    for pair in ("BTC/USD", "ETH/USD"):
        feed(p, [ws_trade(1, 100, pair)], out, "snapshot")
        feed(p, [ws_trade(5, 500, pair)], out)
    assert p.owed_ids() == 6
    first = one_request(p)
    p.receive_response(first, answer([rest_row(t) for t in (2, 3, 4)]), NOW, out)
    assert p.due_requests(NOW + 249 * MS) == []
    second = one_request(p, NOW + 250 * MS)
    assert {first.key, second.key} == {"trades:BTC/USD", "trades:ETH/USD"}


def test_a_clean_stop_finishes_owed_requests_then_abandons_the_rest() -> None:
    p, _ = with_gap()
    (request,) = p.finishing_requests(NOW) or []
    assert p.finishing_requests(NOW) == []  # owed, waiting for the answer
    out = RecordSink()
    p.receive_response(request, error("EGeneral:Too many requests"), NOW, out)
    assert p.finishing_requests(NOW) == []  # owed, backing off
    p.abandon(NOW + S, out)
    assert events(out) == [("unrecoverable", 3, 6)]
    assert "the collector stopped first" in out.events[0].detail
    assert p.owed_ids() == 0 and p.finishing_requests(NOW + S) is None
    p.receive_response(request, answer([rest_row(3)]), NOW + S, out)  # too late: ignored
    assert out.trades == []


def test_backfill_off_says_each_gap_unrecoverable_at_once() -> None:
    p, out = with_gap(make(backfill_requests_per_gap="0"))
    assert events(out) == [("gap", 3, 6), ("unrecoverable", 3, 6)]
    assert "backfill is off" in out.events[1].detail
    assert p.due_requests(NOW) == [] and p.owed_ids() == 0


def test_unusable_rows_are_refused_and_their_ids_unrecoverable() -> None:
    p, _ = with_gap()
    out = RecordSink()
    rows = [rest_row(3), ["0", "1", msgspec.Raw(b"1700000000.1"), "b", "l", "", 4],
            ["1", "1", msgspec.Raw(b"1700000000.1"), "x", "l", "", 5]]  # fmt: skip
    p.receive_response(one_request(p), answer(rows), NOW, out)
    assert [t.trade_id for t in out.trades] == [3]
    assert events(out) == [("backfilled", 3, 4), ("unrecoverable", 4, 6)]


def test_an_answer_without_one_pair_and_last_is_a_counted_failure() -> None:
    p, _ = with_gap(make(backfill_requests_per_gap="1"))
    out = RecordSink()
    body = msgspec.json.encode({"error": [], "result": {"A": [], "B": [], "last": "1"}})
    p.receive_response(one_request(p), RestResponse(200, body), NOW, out)
    assert events(out) == [("unrecoverable", 3, 6)]
    assert "one pair and a last cursor" in out.events[0].detail


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backfill_requests_per_gap": "-1"}, "backfill_requests_per_gap must be within"),
        ({"rest_interval_ms": "10"}, "rest_interval_ms must be within"),
        ({"rest_interval_ms": "soon"}, "rest_interval_ms must be an integer"),
        ({"api": "v1", "rest_interval_ms": "500"}, "rest_interval_ms is for v2 trades"),
    ],
)
def test_backfill_option_errors_are_one_line(options: dict[str, str], message: str) -> None:
    pair = "XBT/USD" if options.get("api") == "v1" else "BTC/USD"
    config = VenueConfig("spot", (pair,), (Channel.BOOK,), options=options)
    with pytest.raises(ValueError, match=message) as caught:
        KrakenVenue(config)
    assert "\n" not in str(caught.value)


def test_the_production_endpoint_by_default() -> None:
    p = KrakenVenue(VenueConfig("spot", ("BTC/USD",), (Channel.TRADES,)))
    assert isinstance(p, KrakenProtocol)
    with_gap(p)
    assert one_request(p).url.startswith("https://api.kraken.com/0/public/Trades?pair=BTC%2FUSD&")


def test_a_reconnect_whose_snapshot_does_not_reach_back_is_fetched_back() -> None:
    p = make()
    out = RecordSink()
    feed(p, [ws_trade(1, 100), ws_trade(2, 200)], out, "snapshot")
    p.on_close("public", NOW + S, out)
    # the re-subscribe's snapshot of the last trades starts at id 60: 3..59 happened meanwhile
    feed(p, [ws_trade(t, 300 + t) for t in range(60, 110)], out, "snapshot", NOW + 2 * S)
    assert [(e.kind, e.expected, e.received) for e in out.events] == [("gap", 3, 60)]
    assert p.owed_ids() == 57
    request = one_request(p, NOW + 2 * S)
    assert f"since={NOW + 200_000 - MS}&" in request.url  # before id 2, the last stored
    out = RecordSink()
    rows = [rest_row(t, 200 + t) for t in range(2, 112)]  # Kraken's page reaches past the gap
    p.receive_response(request, answer(rows), NOW + 3 * S, out)
    assert [t.trade_id for t in out.trades] == list(range(3, 60))
    assert events(out) == [("backfilled", 3, 60)] and p.owed_ids() == 0


def restart_gap(channel: str = "trades", exchange: str = "kraken") -> Event:
    return Event(
        exchange=exchange, symbol="BTC-USD", native_symbol="BTC/USD", ts=NOW + 100_000,
        recv_ts=NOW, kind="gap", channel=channel, expected=97, received=100,
        detail="restart: ids 97..99 not received between runs",
    )  # fmt: skip


def test_a_gap_between_two_runs_is_searched_back_from_the_trade_after_it() -> None:
    p = make()
    out = RecordSink()
    feed(p, [ws_trade(100, 100), ws_trade(101, 101)], out, "snapshot")  # this run's first
    assert p.recover(restart_gap(), NOW, out) and p.owed_ids() == 3
    first = one_request(p)
    assert f"since={NOW + 100_000 - 60 * S}&" in first.url  # a minute before trade 100
    out = RecordSink()
    p.receive_response(first, answer([rest_row(t) for t in range(98, 102)]), NOW, out)
    assert out.trades == [] and out.events == []  # starts above 97: not back far enough
    second = one_request(p, NOW + S)
    assert f"since={NOW + 100_000 - 120 * S}&" in second.url  # twice as far
    p.receive_response(second, answer([rest_row(t) for t in range(90, 102)]), NOW + S, out)
    assert [t.trade_id for t in out.trades] == [97, 98, 99]
    assert events(out) == [("backfilled", 97, 100)] and p.owed_ids() == 0
    later = RecordSink()
    feed(p, [ws_trade(98, 98), ws_trade(102, 102)], later)  # ids now held are not stored again
    assert [t.trade_id for t in later.trades] == [102]


def test_only_trades_gaps_of_our_pairs_are_recovered() -> None:
    p = make()
    assert not p.recover(restart_gap("book"), NOW, RecordSink())
    assert not p.recover(restart_gap(exchange="coinbase"), NOW, RecordSink())
    assert p.owed_ids() == 0


def test_a_search_back_spends_the_gaps_budget() -> None:
    p = make(backfill_requests_per_gap="2")
    out = RecordSink()
    feed(p, [ws_trade(100, 100)], out, "snapshot")
    assert p.recover(restart_gap(), NOW, out)
    now = NOW
    for _ in range(2):  # Kraken's pages never reach back to id 97
        p.receive_response(one_request(p, now), answer([rest_row(99), rest_row(100)]), now, out)
        now += S
    assert events(out) == [("unrecoverable", 97, 100)]
    assert "at most 2 Trades requests per gap" in out.events[0].detail
