"""Derivative ticker, liquidation and instrument records for the store and read-path tests:
NaN fields, no funding (``next_funding_time`` 0), an expiry, two messages in one ms and several
liquidations in one ms, as the venue protocols emit them."""

from __future__ import annotations

import math
from typing import Any

from hundi.records import (
    BASE,
    COMPLETE,
    CONTRACTS,
    SAMPLED,
    Channel,
    DerivativeTicker,
    Instrument,
    Liquidation,
    Record,
)

T0 = 1_714_521_600_000_000_000  # 2024-05-01T00:00:00Z
MS = 1_000_000
SECOND = 1_000_000_000
EXPIRY = 1_798_185_600_000_000_000  # 2026-12-25T08:00:00Z
PERP = {"symbol": "BTC-USDT-PERP", "native_symbol": "BTCUSDT"}
INVERSE = {"symbol": "BTC-USD-PERP", "native_symbol": "BTCUSD_PERP"}
DATED = {"symbol": "BTC-USD-20261225", "native_symbol": "BTCUSD_261225"}


def ticker(
    at_ns: int,
    source: str,
    *,
    exchange: str = "binance",
    names: dict[str, str] = PERP,
    **fields: Any,
) -> DerivativeTicker:
    """A full merged record; unset fields are NaN (never received) as a protocol emits them."""
    values: dict[str, Any] = {
        "mark_price": math.nan, "index_price": math.nan, "funding_rate": math.nan,
        "predicted_funding_rate": math.nan, "next_funding_time": T0 + 8 * 3600 * SECOND,
        "open_interest": math.nan, "open_interest_value": math.nan, "size_unit": BASE,
    }  # fmt: skip
    values.update(fields)
    return DerivativeTicker(
        exchange=exchange, **names, ts=at_ns, recv_ts=at_ns + 3 * MS, source=source, **values
    )


def liquidation(
    at_ns: int, side: int, price: float, size: float, *, exchange: str = "binance",
    names: dict[str, str] = PERP, completeness: str = SAMPLED, unit: str = BASE,
) -> Liquidation:  # fmt: skip
    return Liquidation(
        exchange=exchange, **names, ts=at_ns, recv_ts=at_ns + 2 * MS, side=side, price=price,
        size=size, size_unit=unit, completeness=completeness, detail="status=FILLED", position=0,
    )  # fmt: skip


def instrument(
    at_ns: int, names: dict[str, str], *, exchange: str = "binance", **fields: Any
) -> Instrument:
    values: dict[str, Any] = {
        "contract_type": "perpetual", "inverse": False, "base_asset": "BTC",
        "quote_asset": "USDT", "settle_asset": "USDT", "contract_size": 1.0, "size_unit": BASE,
        "tick_size": 0.1, "lot_size": 0.001, "expiry": 0, "status": "TRADING",
    }  # fmt: skip
    values.update(fields)
    return Instrument(exchange=exchange, **names, ts=at_ns, recv_ts=at_ns, **values)


def derivative_batches(exchange: str = "binance") -> dict[Channel, list[Record]]:
    """One of each kind of row the stores must keep exactly."""
    tickers: list[Record] = [
        # mark price first, open interest not known yet: NaN
        ticker(T0, "markPrice", exchange=exchange, mark_price=60_000.5, index_price=60_001.25,
               funding_rate=0.0001, predicted_funding_rate=math.nan),
        # same ms, another message (REST open interest) merged into a full record
        ticker(T0 + 400_000, "open_interest", exchange=exchange, mark_price=60_000.5,
               index_price=60_001.25, funding_rate=0.0001, open_interest=12_345.678),
        ticker(T0 + SECOND, "markPrice", exchange=exchange, mark_price=60_010.0,
               index_price=60_011.0, funding_rate=-0.00025, open_interest=12_345.678,
               open_interest_value=740_949_000.5),
        # a dated future: no funding (next_funding_time 0), sized in contracts
        ticker(T0 + SECOND, "markPrice", exchange=exchange, names=DATED, mark_price=61_000.0,
               index_price=60_011.0, next_funding_time=0, open_interest=5_000.0,
               size_unit=CONTRACTS),
    ]  # fmt: skip
    liquidations: list[Record] = [
        # a cascade: three in one ms, two of them on the same side
        liquidation(T0 + 5 * MS, -1, 59_990.0, 0.5, exchange=exchange),
        liquidation(T0 + 5 * MS + 10, -1, 59_980.0, 1.5, exchange=exchange),
        liquidation(T0 + 5 * MS + 20, 1, 60_020.0, 0.25, exchange=exchange),
        liquidation(T0 + 2 * SECOND, 1, 61_100.0, 30.0, exchange=exchange, names=DATED,
                    completeness=COMPLETE, unit=CONTRACTS),
    ]  # fmt: skip
    instruments: list[Record] = [
        instrument(T0, PERP, exchange=exchange),
        instrument(T0, INVERSE, exchange=exchange, inverse=True, quote_asset="USD",
                   settle_asset="BTC", contract_size=100.0, size_unit=CONTRACTS, lot_size=1.0,
                   tick_size=math.nan),
        instrument(T0, DATED, exchange=exchange, contract_type="future", inverse=True,
                   quote_asset="USD", settle_asset="BTC", contract_size=100.0,
                   size_unit=CONTRACTS, expiry=EXPIRY, lot_size=1.0, tick_size=0.1),
    ]  # fmt: skip
    return {
        Channel.DERIVATIVE_TICKER: tickers,
        Channel.LIQUIDATIONS: liquidations,
        Channel.INSTRUMENTS: instruments,
    }


def same(a: Record, b: Record) -> bool:
    """Equal records, NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    for name in a.__struct_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        if x != y:
            return False
    return True


def same_records(got: list[Record], want: list[Record]) -> bool:
    key = _order_key
    got, want = sorted(got, key=key), sorted(want, key=key)
    return len(got) == len(want) and all(same(a, b) for a, b in zip(got, want, strict=True))


def _order_key(record: Record) -> tuple[Any, ...]:
    identity = tuple(str(getattr(record, f)) for f in type(record).IDENTITY)
    return (record.exchange, record.symbol, record.ts, identity)
