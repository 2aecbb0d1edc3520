"""Missed aggregate trades come back over REST ``aggTrades`` (issue 12), sans-I/O."""

from __future__ import annotations

import msgspec
import pytest

from hundi.exchanges.base import RecordSink, RestPurpose, RestRequest, RestResponse, VenueConfig
from hundi.exchanges.binance import BinanceVenue
from hundi.exchanges.binance.backfill import KEY_PREFIX
from hundi.exchanges.binance.protocol import BinanceProtocol
from hundi.records import Channel, EventKind

S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000_000  # trade time, ms
NOW = T0 * MS


def venue(market: str = "spot", **options: str) -> BinanceProtocol:
    return BinanceVenue(VenueConfig(market, ("BTCUSDT",), (Channel.TRADES,), options=dict(options)))


def live(protocol: BinanceProtocol, agg_id: int, now: int = NOW) -> RecordSink:
    stream = "btcusdt@aggTrade"
    frame = (
        f'{{"stream":"{stream}","data":{{"e":"aggTrade","E":{T0},"s":"BTCUSDT","a":{agg_id},'
        f'"p":"100.5","q":"0.25","f":{agg_id * 2},"l":{agg_id * 2 + 1},"T":{T0},"m":true,'
        f'"M":true}}}}'
    ).encode()
    out = RecordSink()
    protocol.receive(protocol.connections()[0].key, frame, now, out)
    return out


def page(ids: range, futures: bool = False) -> bytes:
    rows = []
    for a in ids:
        row = {"a": a, "p": "101.0", "q": "0.5", "f": a * 2, "l": a * 2 + 1, "T": T0, "m": False}
        if not futures:
            row["M"] = True
        rows.append(row)
    return msgspec.json.encode(rows)


def backfills(protocol: BinanceProtocol, now: int) -> list[RestRequest]:
    requests = [r for r in protocol.due_requests(now) if r.purpose is RestPurpose.TRADE_BACKFILL]
    assert all(r.key.startswith(KEY_PREFIX) for r in requests)  # names kept in captures
    return requests


def answer(protocol: BinanceProtocol, request: RestRequest, response: RestResponse) -> RecordSink:
    out = RecordSink()
    protocol.receive_response(request, response, NOW + S, out)
    return out


def kinds(out: RecordSink) -> list[tuple[str, int, int]]:
    return [(e.kind, e.expected, e.received) for e in out.events]


def test_a_gap_is_fetched_and_stored_as_trades_with_a_backfilled_event() -> None:
    protocol = venue()
    live(protocol, 100)
    out = live(protocol, 105)
    assert kinds(out) == [("gap", 101, 105)]
    [request] = backfills(protocol, NOW)
    assert (
        request.url == "https://api.binance.com/api/v3/aggTrades?symbol=BTCUSDT&fromId=101&limit=4"
    )
    assert request.weight == 4
    assert backfills(protocol, NOW + S) == []  # one request in flight per symbol
    got = answer(protocol, request, RestResponse(200, page(range(101, 105))))
    assert [t.trade_id for t in got.trades] == [101, 102, 103, 104]
    first = got.trades[0]
    assert (first.ts, first.recv_ts, first.price, first.size, first.side) == (
        T0 * MS, NOW + S, 101.0, 0.5, 1,
    )  # fmt: skip
    assert (first.first_trade_id, first.last_trade_id) == (202, 203)
    assert kinds(got) == [(EventKind.BACKFILLED.value, 101, 105)]
    assert "4 trades" in got.events[0].detail
    assert got.events[0].channel == "trades" and got.events[0].symbol == "BTC-USDT"
    assert backfills(protocol, NOW + 60 * S) == []
    assert protocol.next_wakeup_ns() is None
    # the ids are now seen: a resent live frame is a duplicate
    with pytest.raises(Exception, match="duplicate"):
        live(protocol, 102)


def test_ids_the_live_stream_delivered_meanwhile_are_not_stored_twice() -> None:
    protocol = venue()
    live(protocol, 100)
    live(protocol, 105)
    [request] = backfills(protocol, NOW)
    late = live(protocol, 102)  # a reordered frame fills part of the hole
    assert [t.trade_id for t in late.trades] == [102] and late.events == []
    got = answer(protocol, request, RestResponse(200, page(range(101, 105))))
    assert [t.trade_id for t in got.trades] == [101, 103, 104]
    assert kinds(got) == [("backfilled", 101, 105)]
    assert "3 trades" in got.events[0].detail


def test_an_empty_answer_makes_the_range_unrecoverable() -> None:
    protocol = venue()
    live(protocol, 100)
    live(protocol, 105)
    [request] = backfills(protocol, NOW)
    got = answer(protocol, request, RestResponse(200, b"[]"))
    assert got.trades == []
    assert kinds(got) == [("unrecoverable", 101, 105)]
    assert "101..104" in got.events[0].detail
    assert backfills(protocol, NOW + 60 * S) == []


def test_an_answer_starting_above_the_asked_id_names_the_lost_prefix() -> None:
    protocol = venue()
    live(protocol, 100)
    live(protocol, 110)
    [request] = backfills(protocol, NOW)
    got = answer(protocol, request, RestResponse(200, page(range(104, 111))))
    assert [t.trade_id for t in got.trades] == list(range(104, 110))  # 110 was seen live
    assert kinds(got) == [("unrecoverable", 101, 104), ("backfilled", 104, 110)]


def test_big_gaps_are_paged_oldest_first_within_the_per_gap_request_limit() -> None:
    protocol = venue(backfill_requests_per_gap="2", rest_weight_per_minute="3000")
    live(protocol, 100)
    live(protocol, 2601)  # ids 101..2600 missing: 2500
    live(protocol, 2610)  # ids 2602..2609 missing
    now = NOW
    fetched: list[int] = []
    events: list[tuple[str, int, int]] = []
    for _ in range(10):
        now += S
        requests = backfills(protocol, now)
        if not requests:
            continue
        [request] = requests
        lo = int(request.url.split("fromId=")[1].split("&")[0])
        limit = int(request.url.split("limit=")[1])
        got = answer(protocol, request, RestResponse(200, page(range(lo, lo + limit))))
        fetched += [t.trade_id for t in got.trades]
        events += kinds(got)
    assert fetched == [*range(101, 2101), *range(2602, 2610)]
    assert events == [
        ("backfilled", 101, 1101),
        ("backfilled", 1101, 2101),
        ("unrecoverable", 2101, 2601),
        ("backfilled", 2602, 2610),
    ]


def test_rate_limited_answers_are_retried_without_spending_the_gap_budget() -> None:
    protocol = venue(backfill_requests_per_gap="1")
    live(protocol, 100)
    live(protocol, 103)
    [request] = backfills(protocol, NOW)
    got = answer(protocol, request, RestResponse(429, b"{}", {"Retry-After": "2"}))
    assert got.events == [] and got.trades == []
    assert backfills(protocol, NOW + S) == []  # Retry-After holds every key
    wake = protocol.next_wakeup_ns()
    assert wake is not None and wake >= NOW + 3 * S
    [again] = backfills(protocol, NOW + 4 * S)
    got = answer(protocol, again, RestResponse(200, page(range(101, 103))))
    assert [t.trade_id for t in got.trades] == [101, 102]


def test_a_broken_answer_spends_the_budget_then_the_range_is_given_up() -> None:
    protocol = venue(backfill_requests_per_gap="1")
    live(protocol, 100)
    live(protocol, 103)
    [request] = backfills(protocol, NOW)
    got = answer(protocol, request, RestResponse(200, b"{not json"))
    assert kinds(got) == [("unrecoverable", 101, 103)]
    assert "at most 1" in got.events[0].detail
    assert backfills(protocol, NOW + 600 * S) == []


def test_usdm_url_and_weight() -> None:
    protocol = venue("usdm")
    live(protocol, 100)
    live(protocol, 102)
    [request] = backfills(protocol, NOW)
    assert (
        request.url
        == "https://fapi.binance.com/fapi/v1/aggTrades?symbol=BTCUSDT&fromId=101&limit=1"
    )
    assert request.weight == 20
    got = answer(protocol, request, RestResponse(200, page(range(101, 102), futures=True)))
    assert [t.trade_id for t in got.trades] == [101]


@pytest.mark.parametrize("options", [{"backfill_requests_per_gap": "0"}, {"trade_stream": "trade"}])
def test_no_backfill_when_turned_off_or_on_the_plain_trade_stream(options: dict[str, str]) -> None:
    protocol = venue(**options)
    assert protocol.market_data.backfill.symbols == {}


def test_the_option_is_checked() -> None:
    with pytest.raises(ValueError, match="backfill_requests_per_gap"):
        venue(backfill_requests_per_gap="-1")


def test_at_a_stop_what_a_gap_still_owes_is_asked_for_then_said_not_fetched() -> None:
    protocol = venue()
    assert protocol.finishing_requests(NOW) is None  # nothing owed: a stop need not wait
    live(protocol, 100)
    live(protocol, 105)  # ids 101..104 missing
    (request,) = protocol.finishing_requests(NOW)  # type: ignore[misc]
    assert request.purpose is RestPurpose.TRADE_BACKFILL and "fromId=101" in request.url
    assert protocol.finishing_requests(NOW) == []  # asked: owed, waiting for the answer
    out = answer(protocol, request, RestResponse(200, page(range(101, 103))))
    assert [t.trade_id for t in out.trades] == [101, 102]
    # a short page ends the venue's history: the rest is said, nothing stays owed
    assert protocol.finishing_requests(NOW) is None

    live(protocol, 110)  # ids 106..109 missing, and the run ends before the answer
    assert protocol.finishing_requests(NOW)
    out = RecordSink()
    protocol.abandon(NOW + S, out)
    assert kinds(out) == [(EventKind.UNRECOVERABLE.value, 106, 110)]
    assert "the collector stopped first" in out.events[0].detail
    assert protocol.finishing_requests(NOW) is None
