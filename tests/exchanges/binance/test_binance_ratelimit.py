"""REST snapshot pacing: weight budget, spacing, Retry-After, back-off, refetch."""

from __future__ import annotations

import random

from hundi.exchanges.base import RecordSink, RestResponse, VenueConfig
from hundi.exchanges.binance import BinanceVenue
from hundi.exchanges.binance.protocol import EXCHANGE_INFO_KEY, BinanceProtocol
from hundi.exchanges.binance.ratelimit import RestScheduler
from hundi.records import Channel

S = 1_000_000_000


def book_venue(*symbols: str, market: str = "spot", **options: str) -> BinanceProtocol:
    return BinanceVenue(VenueConfig(market, symbols, (Channel.BOOK,), options=options))


def buffer_diff(protocol: BinanceProtocol, native: str, now: int, first: int = 100) -> None:
    frame = (
        f'{{"stream":"{native.lower()}@depth@100ms","data":{{"e":"depthUpdate","E":1,'
        f'"s":"{native}","U":{first},"u":{first + 1},"pu":{first - 1},"b":[],"a":[]}}}}'
    ).encode()
    protocol.receive("conn", frame, now, RecordSink())


def test_429_retry_after_blocks_every_request() -> None:
    protocol = book_venue("BTCUSDT", "ETHUSDT")
    buffer_diff(protocol, "BTCUSDT", 0)
    buffer_diff(protocol, "ETHUSDT", 0)
    first, info = protocol.due_requests(0)
    assert (first.key, info.key) == ("BTCUSDT", EXCHANGE_INFO_KEY)  # exchangeInfo: unspaced
    protocol.receive_response(first, RestResponse(429, b"", {"Retry-After": "7"}), S, RecordSink())
    assert protocol.next_wakeup_ns() == 8 * S
    assert protocol.due_requests(8 * S - 1) == []
    assert [r.key for r in protocol.due_requests(8 * S)] == ["ETHUSDT"]
    assert [r.key for r in protocol.due_requests(9 * S)] == ["BTCUSDT"]  # retried, spaced


def test_418_without_header_waits_conservatively() -> None:
    scheduler = RestScheduler(weight_per_minute=1000, min_interval_ns=0)
    scheduler.sent("A", 1, 0)
    scheduler.completed("A", 418, {}, 0)
    assert not scheduler.may_send("A", 1, 59 * S)
    assert scheduler.may_send("A", 1, 60 * S)


def test_server_errors_back_off_exponentially_with_seeded_jitter() -> None:
    def delays(seed: int) -> list[int]:
        scheduler = RestScheduler(
            weight_per_minute=10**6, min_interval_ns=0, backoff_base_ns=S, backoff_cap_ns=16 * S,
            rng=random.Random(seed),
        )  # fmt: skip
        now, waits = 0, []
        for _ in range(7):
            scheduler.sent("A", 1, now)
            scheduler.completed("A", 599 if len(waits) % 2 else 503, {}, now)
            ready = scheduler.earliest_ns("A", 1, now)
            waits.append(ready - now)
            now = ready
        return waits

    waits = delays(1)
    assert waits == delays(1)  # deterministic for a seed
    assert waits != delays(2)  # but jittered
    for n, wait in enumerate(waits):
        full = min(16 * S, S << n)
        assert full // 2 <= wait <= full  # equal jitter within the capped exponential
    assert max(waits) <= 16 * S


def test_success_resets_the_back_off() -> None:
    scheduler = RestScheduler(weight_per_minute=10**6, min_interval_ns=0, backoff_base_ns=S)
    for _ in range(5):
        scheduler.sent("A", 1, 0)
        scheduler.completed("A", 500, {}, 0)
    scheduler.sent("A", 1, 100 * S)
    scheduler.completed("A", 200, {}, 100 * S)
    scheduler.sent("A", 1, 100 * S)
    scheduler.completed("A", 500, {}, 100 * S)
    assert scheduler.earliest_ns("A", 1, 100 * S) <= 101 * S


def test_other_4xx_backs_off_only_that_symbol() -> None:
    scheduler = RestScheduler(weight_per_minute=10**6, min_interval_ns=0, backoff_base_ns=S)
    scheduler.sent("A", 1, 0)
    scheduler.completed("A", 400, {}, 0)
    assert not scheduler.may_send("A", 1, 0)
    assert scheduler.may_send("B", 1, 0)


def test_side_request_is_unspaced_and_its_server_errors_back_off_only_itself() -> None:
    scheduler = RestScheduler(weight_per_minute=10**6, min_interval_ns=S, backoff_base_ns=S)
    scheduler.sent("A", 1, 0)
    assert scheduler.may_send("info", 1, 0, side=True)  # not spaced after A
    scheduler.sent("info", 1, 0, side=True)
    scheduler.completed("A", 200, {}, 0)
    assert scheduler.earliest_ns("A", 1, 0) == S  # spaced after A only, not after info
    for status in (500, 599):
        scheduler.completed("info", status, {}, 0, side=True)
        assert not scheduler.may_send("info", 1, 0, side=True)
        assert scheduler.earliest_ns("A", 1, 0) == S
        scheduler.sent("info", 1, 0, side=True)
    scheduler.completed("info", 429, {"Retry-After": "5"}, 0, side=True)
    assert scheduler.earliest_ns("A", 1, 0) == 5 * S  # rate limits are per IP: everyone waits


def test_weight_budget_and_spacing() -> None:
    # Spot limit 1000 weighs 50; a 120/min budget fits two requests per minute.
    protocol = book_venue(
        "AUSDT", "BUSDT", "CUSDT", rest_weight_per_minute="120", rest_min_interval_ms="500"
    )
    for native in ("AUSDT", "BUSDT", "CUSDT"):
        buffer_diff(protocol, native, 0)
    # exchangeInfo (weight 20) goes along: it is not spaced; 50 + 20 of 120 spent
    assert [r.key for r in protocol.due_requests(0)] == ["AUSDT", EXCHANGE_INFO_KEY]
    assert protocol.due_requests(S // 4) == []  # spacing
    assert protocol.next_wakeup_ns() == S // 2
    assert [r.key for r in protocol.due_requests(S // 2)] == ["BUSDT"]
    assert protocol.due_requests(30 * S) == []  # budget spent for this minute
    assert protocol.next_wakeup_ns() == 60 * S  # when the first request leaves the window
    assert [r.key for r in protocol.due_requests(60 * S)] == ["CUSDT"]


def test_stale_snapshot_leads_to_a_refetch() -> None:
    protocol = book_venue("BTCUSDT")
    buffer_diff(protocol, "BTCUSDT", 0, first=500)
    request, info = protocol.due_requests(0)
    assert info.key == EXCHANGE_INFO_KEY
    out = RecordSink()
    stale = b'{"lastUpdateId":400,"bids":[["1.0","1"]],"asks":[["2.0","1"]]}'
    protocol.receive_response(request, RestResponse(200, stale), S, out)
    assert not protocol.books()[0].synced
    assert "stale snapshot" in out.events[-1].detail
    [again] = protocol.due_requests(2 * S)
    fresh = b'{"lastUpdateId":500,"bids":[["1.0","1"]],"asks":[["2.0","1"]]}'
    protocol.receive_response(again, RestResponse(200, fresh), 3 * S, out)
    assert protocol.books()[0].synced


def test_garbage_snapshot_body_is_retried_like_a_transport_failure() -> None:
    protocol = book_venue("BTCUSDT", seed="3")
    buffer_diff(protocol, "BTCUSDT", 0)
    request, info = protocol.due_requests(0)
    assert info.key == EXCHANGE_INFO_KEY
    protocol.receive_response(request, RestResponse(200, b"<html>oops"), S, RecordSink())
    wake = protocol.next_wakeup_ns()
    assert wake is not None and wake > S
    assert [r.key for r in protocol.due_requests(wake)] == ["BTCUSDT"]
