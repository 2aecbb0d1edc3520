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
        "no market data: not listed or not trading on the exchange: BTCUSDX"
    ]


def test_one_unknown_symbol_beside_collected_ones_stays_ok() -> None:
    # said in the summary and as an invalid_symbol event; the rest was collected and stored
    assert judge(summary(invalid_symbols=["XYZUSDT"]))["exit_code"] == 0
