"""Missed OKX trades fetched back over REST ``/api/v5/market/history-trades`` (type=1, by
tradeId), on hand-written answers: the requests asked, the trades stored once, ``backfilled``
per page and ``unrecoverable`` for every id OKX does not return."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest

from hundi.exchanges.base import RecordSink, RestPurpose, RestRequest, RestResponse, VenueConfig
from hundi.exchanges.okx import OkxVenue
from hundi.exchanges.okx.protocol import TRADES_GAP_NS, OkxProtocol
from hundi.records import BUY, SELL, Channel, Event, EventKind

T0 = 1_780_000_000_000  # ms, 2026
NS = T0 * 1_000_000
S = 1_000_000_000


def proto(**options: str) -> OkxProtocol:
    config = VenueConfig("spot", ("BTC-USDT",), (Channel.TRADES,), options=dict(options))
    config.rest_endpoint = "https://rest.test"
    return OkxVenue(config)


def push(tid: int, count: int = 1) -> bytes:
    row = {"instId": "BTC-USDT", "tradeId": str(tid), "px": "100.5", "sz": "0.25",
           "side": "buy", "ts": str(T0), "count": str(count)}  # fmt: skip
    return msgspec.json.encode({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [row]})


def rest_row(tid: int, side: str = "sell", px: str = "101") -> dict[str, str]:
    return {"instId": "BTC-USDT", "side": side, "sz": "0.5", "px": px, "source": "0",
            "tradeId": str(tid), "ts": str(T0 - 5)}  # fmt: skip


def answer(*tids: int, code: str = "0") -> RestResponse:
    rows = [rest_row(t) for t in sorted(tids, reverse=True)]  # OKX: newest first
    return RestResponse(200, msgspec.json.encode({"code": code, "msg": "", "data": rows}))


def query(request: RestRequest) -> dict[str, str]:
    parts = urlsplit(request.url)
    assert parts.path == "/api/v5/market/history-trades"
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


def gapped(p: OkxProtocol, lo: int, hi: int) -> RecordSink:
    """Live ids up to ``lo - 1``, then ``hi``: ids ``lo..hi-1`` are a gap."""
    out = RecordSink()
    p.receive("public", push(lo - 1), NS, out)
    p.receive("public", push(hi), NS, out)
    return out


def kinds(events: list[Event]) -> list[tuple[str, int, int]]:
    return [(e.kind, e.expected, e.received) for e in events]


def test_a_gap_is_fetched_back_by_trade_id_and_stored_once() -> None:
    p = proto()
    out = gapped(p, 11, 15)  # ids 11..14 missing
    assert kinds(out.events) == [(EventKind.GAP.value, 11, 15)]
    assert p.owed_ids() == 4
    (request,) = p.due_requests(NS)
    assert request.purpose is RestPurpose.TRADE_BACKFILL
    assert query(request) == {"instId": "BTC-USDT", "type": "1", "after": "15", "limit": "4"}
    assert p.due_requests(NS + 10 * TRADES_GAP_NS) == []  # one request in flight
    # the stream delivers id 13 meanwhile (a reordered frame): not stored twice
    late = RecordSink()
    p.receive("public", push(13), NS, late)
    assert [t.trade_id for t in late.trades] == [13]
    got = RecordSink()
    p.receive_response(request, answer(11, 12, 13, 14, 15, 10), NS + S, got)
    assert [(t.trade_id, t.first_trade_id, t.last_trade_id) for t in got.trades] == [
        (14, 14, 14), (12, 12, 12), (11, 11, 11),
    ]  # fmt: skip
    t = got.trades[0]
    assert (t.side, t.price, t.size, t.ts, t.recv_ts) == (SELL, 101.0, 0.5, NS - 5 * 10**6, NS + S)
    assert kinds(got.events) == [(EventKind.BACKFILLED.value, 11, 15)]
    assert "3 trades" in got.events[0].detail
    assert p.owed_ids() == 0
    assert p.due_requests(NS + 2 * S) == [] and p.finishing_requests(NS + 2 * S) is None


def test_a_long_gap_is_paged_from_the_top_down_in_pages_of_100() -> None:
    p = proto()
    gapped(p, 1, 251)  # ids 1..250
    first = p.due_requests(NS)[0]
    assert query(first)["after"] == "251" and query(first)["limit"] == "100"
    out = RecordSink()
    p.receive_response(first, answer(*range(151, 251)), NS, out)
    assert p.due_requests(NS + TRADES_GAP_NS - 1) == []  # history-trades: 20 requests / 2 s
    second = p.due_requests(NS + TRADES_GAP_NS)[0]
    assert query(second)["after"] == "151" and query(second)["limit"] == "100"
    p.receive_response(second, answer(*range(51, 151)), NS, out)
    third = p.due_requests(NS + 2 * TRADES_GAP_NS)[0]
    assert query(third)["after"] == "51" and query(third)["limit"] == "50"
    p.receive_response(third, answer(*range(1, 51)), NS, out)
    assert sorted(t.trade_id for t in out.trades) == list(range(1, 251))
    assert kinds(out.events) == [
        (EventKind.BACKFILLED.value, 151, 251), (EventKind.BACKFILLED.value, 51, 151),
        (EventKind.BACKFILLED.value, 1, 51),
    ]  # fmt: skip


def test_ids_okx_does_not_return_are_unrecoverable() -> None:
    p = proto()
    gapped(p, 11, 21)  # ids 11..20
    request = p.due_requests(NS)[0]
    out = RecordSink()
    # 20 and 15..16 missing from the page, and a short page: history ends at 13
    p.receive_response(request, answer(19, 18, 17, 14, 13), NS, out)
    assert sorted(t.trade_id for t in out.trades) == [13, 14, 17, 18, 19]
    assert kinds(out.events) == [
        (EventKind.UNRECOVERABLE.value, 20, 21), (EventKind.UNRECOVERABLE.value, 15, 17),
        (EventKind.BACKFILLED.value, 13, 20), (EventKind.UNRECOVERABLE.value, 11, 13),
    ]  # fmt: skip
    assert p.owed_ids() == 0


def test_an_empty_answer_is_unrecoverable() -> None:
    p = proto()
    gapped(p, 11, 13)
    request = p.due_requests(NS)[0]
    out = RecordSink()
    p.receive_response(request, answer(), NS, out)
    assert kinds(out.events) == [(EventKind.UNRECOVERABLE.value, 11, 13)]
    assert out.trades == []


def test_a_refused_row_is_unrecoverable_and_the_rest_stored() -> None:
    p = proto()
    gapped(p, 11, 13)
    request = p.due_requests(NS)[0]
    rows = [rest_row(12, px="0"), rest_row(11, side="buy")]
    out = RecordSink()
    p.receive_response(
        request, RestResponse(200, msgspec.json.encode({"code": "0", "data": rows})), NS, out
    )
    assert [(t.trade_id, t.side) for t in out.trades] == [(11, BUY)]
    assert kinds(out.events) == [
        (EventKind.UNRECOVERABLE.value, 12, 13), (EventKind.BACKFILLED.value, 11, 13),
    ]  # fmt: skip


def test_errors_are_retried_within_the_budget_then_unrecoverable() -> None:
    p = proto(backfill_requests_per_gap="2")
    gapped(p, 11, 13)
    out = RecordSink()
    request = p.due_requests(NS)[0]
    p.receive_response(request, RestResponse(429, b'{"code":"50011","msg":"Rate limit"}'), NS, out)
    assert out.events == []  # a rate-limited request does not count, and backs off
    assert p.due_requests(NS + TRADES_GAP_NS) == []
    request = p.due_requests(NS + S)[0]
    p.receive_response(request, answer(code="51001"), NS + S, out)  # an error code: retried
    request = p.due_requests(NS + 2 * S)[0]
    p.receive_response(request, RestResponse(200, b"<html>"), NS + 2 * S, out)
    assert kinds(out.events) == [(EventKind.UNRECOVERABLE.value, 11, 13)]
    assert "at most 2" in out.events[0].detail
    assert p.owed_ids() == 0


def test_backfill_off_and_stop_before_fetched_are_unrecoverable() -> None:
    off = proto(backfill_requests_per_gap="0")
    out = gapped(off, 11, 13)
    assert kinds(out.events)[1:] == [(EventKind.UNRECOVERABLE.value, 11, 13)]
    assert off.due_requests(NS) == []
    p = proto()
    gapped(p, 11, 13)
    assert p.finishing_requests(NS) is not None
    stopped = RecordSink()
    p.abandon(NS, stopped)
    assert kinds(stopped.events) == [(EventKind.UNRECOVERABLE.value, 11, 13)]
    assert "stopped" in stopped.events[0].detail


def gap_event(channel: str) -> Event:
    return Event(
        exchange="okx", symbol="BTC-USDT", native_symbol="BTC-USDT", ts=NS, recv_ts=NS,
        kind=EventKind.GAP.value, channel=channel, expected=5, received=9, detail="",
    )  # fmt: skip


def test_a_gap_found_between_runs_is_recovered() -> None:
    p = proto()
    gap = gap_event("trades")
    assert p.recover(gap, NS, RecordSink())
    assert query(p.due_requests(NS)[0])["after"] == "9"
    assert not p.recover(gap_event("book"), NS, RecordSink())


def test_aggregated_push_gap_starts_at_its_first_fill() -> None:
    p = proto()
    out = RecordSink()
    p.receive("public", push(10), NS, out)
    p.receive("public", push(20, count=3), NS, out)  # fills 18..20; 11..17 missing
    assert kinds(out.events) == [(EventKind.GAP.value, 11, 18)]
    assert query(p.due_requests(NS)[0]) == {
        "instId": "BTC-USDT", "type": "1", "after": "18", "limit": "7"}  # fmt: skip


@pytest.mark.parametrize("bad", ["-1", "x"])
def test_bad_budget_option_is_one_line(bad: str) -> None:
    with pytest.raises(ValueError, match="backfill_requests_per_gap") as e:
        proto(backfill_requests_per_gap=bad)
    assert "\n" not in str(e.value)
