"""How a run is judged (``hundi.outcome.judge``): the exit code says what happened."""

from __future__ import annotations

from typing import Any

from hundi.outcome import judge


def summary(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "frames": {"received": 120, "processed": 100, "filtered": 20, "rejected": 0},
        "records": {"trades": 100, "events": 2},
        "stores": [],
        "balanced": True,
        "invalid_symbols": [],
    }
    return {**base, **changes}


def test_collected_and_stored_is_ok() -> None:
    assert judge(summary()) == {"result": "ok", "exit_code": 0, "reasons": []}


def test_every_symbol_unknown_to_the_exchange_is_nothing_collected() -> None:
    # frames came (the listing, subscription acks), market data did not: it said ok, exit 0
    outcome = judge(summary(records={"events": 1}, invalid_symbols=["BTCUSDX"]))
    assert (outcome["result"], outcome["exit_code"]) == ("nothing_collected", 3)
    assert outcome["reasons"] == [
        "no market data: every symbol is invalid (the exchange does not list, trade or name "
        "them as asked; see their invalid_symbol events): BTCUSDX"
    ]


def test_one_unknown_symbol_beside_collected_ones_is_incomplete() -> None:
    # the rest was collected and stored, but a symbol asked for was not: not "ok" (it was)
    outcome = judge(summary(invalid_symbols=["XYZUSDT"]))
    assert (outcome["result"], outcome["exit_code"]) == ("incomplete", 1)
    assert outcome["reasons"] == [
        "invalid symbols (the exchange does not list, trade or name them as asked; "
        "see their invalid_symbol events): XYZUSDT"
    ]


def test_rest_only_channels_stored_without_any_stream_is_ok() -> None:
    # --channels instruments: no stream is planned, so no frame can come; the rows were stored
    nothing = {"received": 0, "processed": 0, "filtered": 0, "rejected": 0}
    outcome = judge(summary(frames=nothing, records={"instruments": 2}, streams={}))
    assert outcome == {"result": "ok", "exit_code": 0, "reasons": []}


def test_rest_records_but_silent_streams_is_incomplete_not_nothing() -> None:
    # open interest came over REST, the mark-price stream never said a word
    nothing = {"received": 0, "processed": 0, "filtered": 0, "rejected": 0}
    streams = {"binance:stream-0": {"last_error": "refused"}}
    outcome = judge(summary(frames=nothing, records={"derivative_ticker": 3}, streams=streams))
    assert (outcome["result"], outcome["exit_code"]) == ("incomplete", 1)
    assert outcome["reasons"] == ["no frame received (binance:stream-0: refused)"]


def test_nothing_at_all_is_still_nothing_collected() -> None:
    nothing = {"received": 0, "processed": 0, "filtered": 0, "rejected": 0}
    for streams in ({}, {"binance:stream-0": {}}):
        outcome = judge(summary(frames=nothing, records={"events": 1}, streams=streams))
        assert (outcome["result"], outcome["exit_code"]) == ("nothing_collected", 3)


def test_with_two_stores_the_records_line_says_they_are_what_every_store_holds() -> None:
    """One store down, one up: "records stored: none" beside "store b: 15 records, ok" read as
    a contradiction; the count is what every store stored."""
    from hundi.outcome import summary_lines

    def store(name: str, stored: int, spooled: int) -> dict[str, Any]:
        error = "down" if spooled else None
        return {"store": name, "records": {"trades": stored}, "lost": {},
                "spooled": {"trades": spooled}, "last_error": error}  # fmt: skip

    run = summary(
        records={"trades": 0}, stores=[store("a", 0, 15), store("b", 15, 0)], duration_s=1.0,
        frames={"received": 1, "processed": 1, "filtered": 0, "rejected": 0,
                "rejected_reasons": {}},
        msgs_per_s=1.0, ws_client="picows", gaps=0, resyncs=0, reconnects=0,
    )  # fmt: skip
    run["outcome"] = judge(run)
    lines = summary_lines(run)
    assert "records stored in every store: none" in lines
    assert "store b: 15 records, ok" in lines
    single = summary_lines({**run, "stores": run["stores"][1:]})
    assert "records stored: none" in single


def test_an_only_symbol_listed_as_another_kind_is_not_called_unlisted() -> None:
    # a TRADIFI_PERPETUAL asked for as a perpetual is listed and trading: say what it is
    outcome = judge(summary(records={"events": 1}, invalid_symbols=["XAUUSDT"]))
    assert outcome["result"] == "nothing_collected"
    assert "not listed or not trading" not in outcome["reasons"][0]
    assert "see their invalid_symbol events" in outcome["reasons"][0]
