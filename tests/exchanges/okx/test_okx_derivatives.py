"""OKX derivatives: the four channels merged into full DerivativeTicker records, liquidations
(sampled, filtered to configured contracts), instruments from REST (only changes re-emitted)."""

from __future__ import annotations

import math

import msgspec
import pytest

from hundi.exchanges.base import (
    FrameStatus,
    RecordSink,
    RejectedFrame,
    RestPurpose,
    RestResponse,
    VenueConfig,
)
from hundi.exchanges.okx import OkxVenue
from hundi.exchanges.okx.protocol import OkxProtocol
from hundi.records import CONTRACTS, SAMPLED, SELL, Channel, EventKind

T0 = 1_780_000_000_000
NS = T0 * 1_000_000


def proto(*channels: Channel) -> OkxProtocol:
    return OkxVenue(
        VenueConfig(
            "swap,futures",
            ("BTC-USDT-SWAP", "BTC-USD-261225"),
            channels,
            rest_endpoint="http://sim",
        )
    )


def frame(channel: str, inst: str, data: object) -> bytes:
    return msgspec.json.encode({"arg": {"channel": channel, "instId": inst}, "data": data})


def test_merged_full_records() -> None:
    p, out = proto(Channel.DERIVATIVE_TICKER), RecordSink()
    p.receive(
        "public",
        frame(
            "mark-price",
            "BTC-USDT-SWAP",
            [{"instId": "BTC-USDT-SWAP", "instType": "SWAP", "markPx": "100.5", "ts": str(T0)}],
        ),
        NS,
        out,
    )
    first = out.derivative_ticker[0]
    assert (first.source, first.mark_price, first.size_unit) == ("mark-price", 100.5, CONTRACTS)
    assert math.isnan(first.index_price) and math.isnan(first.funding_rate)
    assert math.isnan(first.open_interest) and first.next_funding_time == 0
    p.receive(
        "public",
        frame(
            "index-tickers", "BTC-USDT", [{"instId": "BTC-USDT", "idxPx": "100.1", "ts": str(T0)}]
        ),
        NS,
        out,
    )
    p.receive(
        "public",
        frame(
            "funding-rate",
            "BTC-USDT-SWAP",
            [
                {
                    "instId": "BTC-USDT-SWAP",
                    "fundingRate": "0.0001",
                    "nextFundingRate": "",
                    "fundingTime": str(T0 + 3600_000),
                    "nextFundingTime": str(T0 + 8 * 3600_000),
                    "ts": str(T0),
                }
            ],
        ),
        NS,
        out,
    )
    p.receive(
        "public",
        frame(
            "open-interest",
            "BTC-USDT-SWAP",
            [
                {
                    "instId": "BTC-USDT-SWAP",
                    "oi": "5000",
                    "oiCcy": "50",
                    "oiUsd": "5025000",
                    "ts": str(T0),
                }
            ],
        ),
        NS,
        out,
    )
    last = out.derivative_ticker[-1]
    assert [r.source for r in out.derivative_ticker] == [
        "mark-price",
        "index-tickers",
        "funding-rate",
        "open-interest",
    ]
    assert (last.mark_price, last.index_price, last.funding_rate) == (100.5, 100.1, 0.0001)
    assert last.next_funding_time == (T0 + 3600_000) * 1_000_000  # fundingTime: this period's
    assert math.isnan(last.predicted_funding_rate)  # OKX sent no forecast
    assert (last.open_interest, last.open_interest_value) == (5000, 5025000)


def test_index_feeds_every_contract_of_the_underlying() -> None:
    p = OkxVenue(
        VenueConfig(
            "swap,futures", ("BTC-USD-SWAP", "BTC-USD-261225"), (Channel.DERIVATIVE_TICKER,)
        )
    )
    out = RecordSink()
    p.receive(
        "public",
        frame("index-tickers", "BTC-USD", [{"instId": "BTC-USD", "idxPx": "99", "ts": str(T0)}]),
        NS,
        out,
    )
    assert [(r.symbol, r.index_price) for r in out.derivative_ticker] == [
        ("BTC-USD-PERP", 99.0),
        ("BTC-USD-20261225", 99.0),
    ]
    with pytest.raises(RejectedFrame, match="unknown_symbol"):
        p.receive("public", frame("index-tickers", "ETH-USD", []), NS, out)


@pytest.mark.parametrize(
    ("channel", "row"),
    [
        ("mark-price", {"instId": "BTC-USDT-SWAP", "markPx": "0", "ts": str(T0)}),
        ("mark-price", {"instId": "BTC-USDT-SWAP", "markPx": "x", "ts": str(T0)}),
        ("open-interest", {"instId": "BTC-USDT-SWAP", "oi": "-1", "ts": str(T0)}),
        ("funding-rate", {"instId": "BTC-USDT-SWAP", "fundingRate": "a", "fundingTime": "1"}),
    ],
)
def test_bad_derivative_rows_rejected(channel: str, row: dict[str, str]) -> None:
    out = RecordSink()
    with pytest.raises(RejectedFrame):
        proto(Channel.DERIVATIVE_TICKER).receive(
            "public", frame(channel, "BTC-USDT-SWAP", [row]), NS, out
        )
    assert out.derivative_ticker == []


def liquidation(inst: str, side: str) -> dict[str, object]:
    return {
        "instId": inst,
        "instType": "SWAP",
        "uly": "BTC-USDT",
        "details": [
            {
                "side": side,
                "posSide": "long",
                "bkPx": "95.5",
                "sz": "3",
                "bkLoss": "0",
                "ccy": "",
                "ts": str(T0),
            }
        ],
    }


def test_liquidations_sampled_and_filtered() -> None:
    p, out = proto(Channel.LIQUIDATIONS), RecordSink()
    data = msgspec.json.encode(
        {
            "arg": {"channel": "liquidation-orders", "instType": "SWAP"},
            "data": [liquidation("BTC-USDT-SWAP", "sell"), liquidation("ETH-USDT-SWAP", "buy")],
        }
    )
    p.receive("public", data, NS, out)
    (liq,) = out.liquidations
    assert (liq.symbol, liq.side, liq.price, liq.size) == ("BTC-USDT-PERP", SELL, 95.5, 3)
    assert (liq.size_unit, liq.completeness) == (CONTRACTS, SAMPLED)
    assert "posSide=long" in liq.detail
    other = msgspec.json.encode(
        {
            "arg": {"channel": "liquidation-orders", "instType": "SWAP"},
            "data": [liquidation("ETH-USDT-SWAP", "buy")],
        }
    )
    assert p.receive("public", other, NS, RecordSink()) is FrameStatus.FILTERED


INSTRUMENTS = {
    "SWAP": [
        {
            "instId": "BTC-USDT-SWAP",
            "instType": "SWAP",
            "ctVal": "0.01",
            "ctMult": "1",
            "ctValCcy": "BTC",
            "ctType": "linear",
            "settleCcy": "USDT",
            "tickSz": "0.1",
            "lotSz": "1",
            "state": "live",
            "expTime": "",
        },
        {"instId": "ETH-USDT-SWAP", "instType": "SWAP", "ctVal": "0.1"},
    ],
    "FUTURES": [
        {
            "instId": "BTC-USD-261225",
            "instType": "FUTURES",
            "ctVal": "100",
            "ctMult": "1",
            "ctValCcy": "USD",
            "ctType": "inverse",
            "settleCcy": "BTC",
            "tickSz": "0.1",
            "lotSz": "1",
            "state": "live",
            "expTime": "1798185600000",
        }
    ],
}


def answer(inst_type: str, rows: list[dict[str, str]] | None = None) -> RestResponse:
    body = {"code": "0", "msg": "", "data": INSTRUMENTS[inst_type] if rows is None else rows}
    return RestResponse(200, msgspec.json.encode(body))


def test_instruments_at_start_then_only_changes() -> None:
    p, out = proto(Channel.INSTRUMENTS), RecordSink()
    requests = [*p.due_requests(NS), *p.due_requests(NS + 10**9)]
    assert [r.url for r in requests] == [
        "http://sim/api/v5/public/instruments?instType=FUTURES",
        "http://sim/api/v5/public/instruments?instType=SWAP",
    ]
    assert all(r.purpose is RestPurpose.SYMBOL_LISTING for r in requests)
    for r in requests:
        p.receive_response(r, answer(r.key.partition(":")[2]), NS, out)
    by = {i.native_symbol: i for i in out.instruments}
    swap, fut = by["BTC-USDT-SWAP"], by["BTC-USD-261225"]
    assert (swap.contract_type, swap.inverse, swap.contract_size, swap.size_unit) == (
        "perpetual",
        False,
        0.01,
        CONTRACTS,
    )
    assert (swap.base_asset, swap.quote_asset, swap.settle_asset, swap.expiry) == (
        "BTC",
        "USDT",
        "USDT",
        0,
    )
    assert (fut.contract_type, fut.inverse, fut.contract_size, fut.settle_asset) == (
        "future",
        True,
        100.0,
        "BTC",
    )
    assert fut.expiry == 1798185600000 * 1_000_000 and fut.tick_size == 0.1
    assert p.due_requests(NS + 60 * 10**9) == []  # hourly by default
    later = NS + 3601 * 10**9
    (again,) = p.due_requests(later)
    changed = [{**INSTRUMENTS["FUTURES"][0], "state": "suspend"}]
    count = len(out.instruments)
    p.receive_response(again, answer("FUTURES", changed), later, out)
    assert len(out.instruments) == count + 1 and out.instruments[-1].status == "suspend"
    (third,) = p.due_requests(later + 3601 * 10**9)
    p.receive_response(third, answer("FUTURES", changed), later, out)
    assert len(out.instruments) == count + 1  # unchanged: nothing new


def test_unlisted_symbol_is_an_invalid_symbol_event() -> None:
    p, out = proto(Channel.INSTRUMENTS), RecordSink()
    (request,) = p.due_requests(NS)
    p.receive_response(request, answer("FUTURES", []), NS, out)
    assert [(e.kind, e.native_symbol) for e in out.events] == [
        (EventKind.INVALID_SYMBOL, "BTC-USD-261225")
    ]


def test_instruments_failure_retried() -> None:
    p, out = proto(Channel.INSTRUMENTS), RecordSink()
    (request,) = p.due_requests(NS)
    p.receive_response(request, RestResponse(500, b""), NS, out)
    assert out.instruments == []
    assert any("FUTURES" in r.url for r in p.due_requests(NS + 11 * 10**9))
