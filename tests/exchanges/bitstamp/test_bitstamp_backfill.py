"""Bitstamp trades lost in an outage, fetched back over REST ``transactions``, sans-I/O."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from hundi.exchanges.base import (
    FrameStatus,
    RecordSink,
    RestPurpose,
    RestRequest,
    RestResponse,
    VenueConfig,
)
from hundi.exchanges.bitstamp import BitstampVenue
from hundi.exchanges.bitstamp.backfill import window_for
from hundi.exchanges.bitstamp.protocol import CONN, BitstampProtocol
from hundi.records import BUY, SELL, Channel

S = 1_000_000_000
T0 = 1_795_000_000 * S
US0 = T0 // 1_000
DELAY = 2 * S  # backfill_delay_ms default


def protocol(symbols: tuple[str, ...] = ("btcusd",), **options: str) -> BitstampProtocol:
    config = VenueConfig(
        market="spot", symbols=symbols, channels=(Channel.TRADES, Channel.EVENTS),
        endpoint="ws://sim", rest_endpoint="http://sim/", options=dict(options),
    )  # fmt: skip
    p = BitstampVenue(config)
    p.due_requests(0)  # the listing, out of the way
    return p


def trade(trade_id: int, mt: int, pair: str = "btcusd") -> bytes:
    return msgspec.json.encode({"event": "trade", "channel": f"live_trades_{pair}", "data": {
        "id": trade_id, "amount_str": "0.5", "price_str": "100.0", "type": 0,
        "microtimestamp": str(mt),
    }})  # fmt: skip


def transactions(*rows: tuple[int, int, int]) -> bytes:
    """(tid, date in seconds, type) rows, newest first as Bitstamp answers."""
    body: list[dict[str, Any]] = [
        {"date": str(date), "tid": str(tid), "price": "101.5", "amount": "0.25", "type": str(t)}
        for tid, date, t in sorted(rows, reverse=True)
    ]
    return msgspec.json.encode(body)


def backfill_requests(p: BitstampProtocol, now_ns: int) -> list[RestRequest]:
    return [r for r in p.due_requests(now_ns) if r.purpose is RestPurpose.TRADE_BACKFILL]


def acked(pair: str = "btcusd") -> bytes:
    return b'{"event":"bts:subscription_succeeded","channel":"live_trades_%s","data":{}}' % (
        pair.encode()
    )


def outage(p: BitstampProtocol, out: RecordSink, closed_ns: int, reopened_ns: int) -> None:
    """A close, and a reopen whose trades subscriptions are acknowledged at once."""
    p.on_close(CONN, closed_ns, out)
    p.on_open(CONN, reopened_ns, out)
    for pair in p.symbols:
        p.receive(CONN, acked(pair), reopened_ns, out)


def test_the_outage_trades_are_fetched_back_once_the_stream_is_back() -> None:
    p = protocol()
    out = RecordSink()
    p.on_open(CONN, T0, out)
    p.receive(CONN, trade(41, US0 + 100), T0, out)
    outage(p, out, T0 + S, T0 + 3 * S)
    (gap,) = out.events
    assert (gap.kind, gap.channel, gap.expected, gap.received) == ("gap", "trades", 42, -1)
    assert p.owed_ids() == 1
    p.receive(CONN, trade(50, US0 + 3_500_000), T0 + 3 * S, out)  # the new stream
    assert backfill_requests(p, T0 + 3 * S + DELAY - 1) == []
    assert p.next_wakeup_ns() == T0 + 3 * S + DELAY
    (request,) = backfill_requests(p, T0 + 3 * S + DELAY)
    assert request.url == "http://sim/api/v2/transactions/btcusd/?time=minute"
    body = transactions(
        (39, US0 // 10**6 - 1, 0),  # before the hole
        (41, US0 // 10**6, 0),  # stored before the break
        (43, US0 // 10**6 + 1, 0),
        (45, US0 // 10**6 + 2, 1),
        (50, US0 // 10**6 + 3, 0),  # the new stream delivered it
    )
    p.receive_response(request, RestResponse(200, body), T0 + 6 * S, out)
    assert [t.trade_id for t in out.trades] == [41, 50, 43, 45]
    back = out.trades[2:]
    assert [t.side for t in back] == [BUY, SELL]
    assert back[0].ts == (US0 // 10**6 + 1) * S and back[0].recv_ts == T0 + 6 * S
    assert (back[0].price, back[0].size, back[0].symbol) == (101.5, 0.25, "BTC-USD")
    event = out.events[-1]
    assert (event.kind, event.channel, event.expected, event.received) == (
        "backfilled", "trades", 42, 46
    )  # fmt: skip
    assert "2 trades" in event.detail
    assert p.owed_ids() == 0 and p.finishing_requests(T0 + 7 * S) is None
    assert p.receive(CONN, trade(45, US0 + 2_000_000), T0 + 7 * S, out) is FrameStatus.FILTERED
    assert p.trades_backfilled == 2


@pytest.mark.parametrize(
    ("outage_s", "window"),
    [(10, "minute"), (55, "minute"), (56, "hour"), (3_000, "hour"), (3_600, "day"),
     (200_000, "day")],
)  # fmt: skip
def test_the_smallest_window_covering_the_outage(outage_s: float, window: str) -> None:
    assert window_for(outage_s)[0] == window


def test_an_outage_of_an_hour_asks_for_the_day() -> None:
    p = protocol()
    out = RecordSink()
    p.on_open(CONN, T0, out)
    p.receive(CONN, trade(41, US0), T0, out)
    outage(p, out, T0 + S, T0 + 3_700 * S)
    (request,) = backfill_requests(p, T0 + 3_700 * S + DELAY)
    assert request.url.endswith("?time=day")


def test_what_is_older_than_a_day_is_unrecoverable() -> None:
    p = protocol()
    out = RecordSink()
    p.on_open(CONN, T0, out)
    p.receive(CONN, trade(41, US0), T0, out)
    back = T0 + 90_000 * S
    outage(p, out, T0 + S, back)
    (request,) = backfill_requests(p, back + DELAY)
    assert request.url.endswith("?time=day")
    first_kept = (back + DELAY) // S - 86_000
    body = transactions((900, first_kept, 0), (901, first_kept + 1, 1))
    p.receive_response(request, RestResponse(200, body), back + DELAY, out)
    kinds = [(e.kind, e.expected, e.received) for e in out.events]
    assert kinds == [("gap", 42, -1), ("backfilled", 42, 902), ("unrecoverable", 42, -1)]
    assert "longer than" in out.events[-1].detail
    assert [t.trade_id for t in out.trades] == [41, 900, 901]


def test_a_failed_fetch_is_retried_after_a_backoff() -> None:
    p = protocol()
    out = RecordSink()
    p.on_open(CONN, T0, out)
    p.receive(CONN, trade(41, US0), T0, out)
    outage(p, out, T0 + S, T0 + 2 * S)
    due = T0 + 2 * S + DELAY
    (request,) = backfill_requests(p, due)
    p.receive_response(request, RestResponse(429, b""), due, out)
    assert backfill_requests(p, due + S // 4) == []
    (retry,) = backfill_requests(p, due + S // 2)
    p.receive_response(retry, RestResponse(200, b"not json"), due + S, out)
    assert backfill_requests(p, due + S + S // 2) == []
    (again,) = backfill_requests(p, due + 2 * S)
    p.receive_response(again, RestResponse(200, transactions()), due + 2 * S, out)
    assert out.events[-1].kind == "backfilled" and "no trade was missing" in out.events[-1].detail


def test_a_second_break_during_the_fetch_refetches_after_the_next_reopen() -> None:
    p = protocol()
    out = RecordSink()
    p.on_open(CONN, T0, out)
    p.receive(CONN, trade(41, US0), T0, out)
    outage(p, out, T0 + S, T0 + 2 * S)
    (first,) = backfill_requests(p, T0 + 2 * S + DELAY)
    outage(p, out, T0 + 5 * S, T0 + 6 * S)
    p.receive_response(first, RestResponse(200, transactions((43, US0 // 10**6 + 1, 0))), T0, out)
    assert [t.trade_id for t in out.trades] == [41]  # the hole goes on: its answer is stale
    (second,) = backfill_requests(p, T0 + 6 * S + DELAY)
    body = transactions((43, US0 // 10**6 + 1, 0), (44, US0 // 10**6 + 6, 0))
    p.receive_response(second, RestResponse(200, body), T0 + 9 * S, out)
    assert [t.trade_id for t in out.trades] == [41, 43, 44]
    assert [e.kind for e in out.events] == ["gap", "gap", "backfilled"]


def test_a_pair_without_a_trade_yet_is_bounded_by_the_connections_open() -> None:
    p = protocol()
    out = RecordSink()
    p.on_open(CONN, T0, out)
    outage(p, out, T0 + S, T0 + 2 * S)
    (gap,) = out.events
    assert (gap.kind, gap.expected) == ("gap", -1)
    (request,) = backfill_requests(p, T0 + 2 * S + DELAY)
    body = transactions((7, T0 // S - 2, 0), (8, T0 // S + 1, 0))  # 7: before our connection
    p.receive_response(request, RestResponse(200, body), T0 + 5 * S, out)
    assert [t.trade_id for t in out.trades] == [8]


def test_a_clean_stop_fetches_what_is_owed_at_once_then_abandons_the_rest() -> None:
    p = protocol(("btcusd", "etheur"), rest_min_interval_ms="500")
    out = RecordSink()
    p.on_open(CONN, T0, out)
    p.receive(CONN, trade(41, US0), T0, out)
    p.receive(CONN, trade(42, US0, "etheur"), T0, out)
    outage(p, out, T0 + S, T0 + 2 * S)
    stop = T0 + 2 * S + S // 10  # before the delay: a stop does not wait for it
    owed = p.finishing_requests(stop)
    assert owed is not None and [r.key for r in owed] == ["btcusd:transactions"]
    assert p.finishing_requests(stop) == []  # spaced: the next one later
    body = transactions((43, US0 // 10**6 + 1, 0))
    p.receive_response(owed[0], RestResponse(200, body), stop, out)
    assert p.owed_ids() == 1
    p.abandon(stop + S, out)
    last = out.events[-1]
    assert (last.kind, last.native_symbol, last.expected) == ("unrecoverable", "etheur", 43)
    assert "stopped" in last.detail and p.owed_ids() == 0
    assert p.finishing_requests(stop + S) is None


def test_without_the_trades_channel_nothing_is_owed() -> None:
    config = VenueConfig(
        market="spot", symbols=("btcusd",), channels=(Channel.BOOK,), endpoint="ws://sim",
        rest_endpoint="http://sim/",
    )  # fmt: skip
    p = BitstampVenue(config)
    out = RecordSink()
    p.on_open(CONN, T0, out)
    outage(p, out, T0 + S, T0 + 2 * S)
    assert p.owed_ids() == 0 and p.finishing_requests(T0 + 5 * S) is None


def test_an_open_without_a_close_is_a_rollover_not_a_break() -> None:
    """Replays of our captures show a make-before-break switch's OPEN; the live run heard of
    no break, so the replay stores none and owes nothing."""
    p = protocol()
    out = RecordSink()
    p.on_open(CONN, T0, out)
    p.receive(CONN, trade(41, US0), T0, out)
    p.on_open(CONN, T0 + S, out)
    assert out.events == [] and p.owed_ids() == 0
    assert p.receive(CONN, trade(41, US0), T0 + S, out) is FrameStatus.FILTERED


def test_the_fetch_waits_for_the_trades_subscriptions_ack() -> None:
    p = protocol()
    out = RecordSink()
    p.on_open(CONN, T0, out)
    p.receive(CONN, trade(41, US0), T0, out)
    p.on_close(CONN, T0 + S, out)
    p.on_open(CONN, T0 + 2 * S, out)
    assert backfill_requests(p, T0 + 2 * S + DELAY) == []  # not acknowledged yet
    p.receive(CONN, acked(), T0 + 5 * S, out)
    assert p.next_wakeup_ns() == T0 + 5 * S + DELAY
    assert backfill_requests(p, T0 + 5 * S + DELAY)


def test_without_an_ack_the_fetch_happens_later_anyway() -> None:
    p = protocol()
    out = RecordSink()
    p.on_open(CONN, T0, out)
    p.receive(CONN, trade(41, US0), T0, out)
    p.on_close(CONN, T0 + S, out)
    p.on_open(CONN, T0 + 2 * S, out)
    assert backfill_requests(p, T0 + 2 * S + DELAY + 9 * S) == []
    assert backfill_requests(p, T0 + 2 * S + DELAY + 10 * S)


def test_an_ack_read_before_the_open_is_heard_counts() -> None:
    """The I/O layer reads frames while it subscribes, before it calls ``on_open``."""
    p = protocol()
    out = RecordSink()
    p.on_open(CONN, T0, out)
    p.receive(CONN, trade(41, US0), T0, out)
    p.on_close(CONN, T0 + S, out)
    p.receive(CONN, acked(), T0 + 2 * S, out)
    p.on_open(CONN, T0 + 3 * S, out)
    assert backfill_requests(p, T0 + 2 * S + DELAY)
