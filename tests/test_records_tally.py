"""``records.stream_tally`` (``hundi._columns.tally``): a batch's streams in one C pass, the
same as the Python passes the collector falls back to."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hundi.records import Bbo, Event, Trade, one_exchange, stream_tally


def trade(exchange: Any, symbol: Any, n: int) -> Trade:
    return Trade(
        exchange=exchange, symbol=symbol, native_symbol="X", ts=n, recv_ts=n, trade_id=n,
        price=1.0, size=1.0, side=1, first_trade_id=n, last_trade_id=n,
    )  # fmt: skip


def by_python(records: list[Any]) -> tuple[Any, ...] | None:
    """What the collector computes without the C pass."""
    exchange = one_exchange(records)
    if exchange is None or not all(type(r.symbol) is str for r in records):
        return None
    symbols = [r.symbol for r in records]
    latest = dict(zip(symbols, records, strict=True))
    counts = Counter(symbols)
    return exchange, list(latest), [counts[s] for s in latest], list(latest.values())


class Name(str):
    pass


NAMES = st.sampled_from(["BTC-USDT", "ETH-USDT", "SOL-USDT", "A", ""])


@st.composite
def batches(draw: st.DrawFn) -> list[Any]:
    exchange = draw(st.sampled_from(["binance", "okx"]))
    n = draw(st.integers(1, 60))
    out = []
    for i in range(n):
        ex = exchange if draw(st.integers(0, 30)) else draw(st.sampled_from(["okx", "kraken"]))
        symbol = draw(st.one_of(NAMES, NAMES.map(lambda s: "".join(list(s))), st.text(max_size=3)))
        if draw(st.integers(0, 40)) == 0:
            symbol = Name(symbol)  # a str subclass: the Python path's to judge
        out.append(trade("".join(list(ex)), symbol, i))  # equal names, not always the same object
    return out


@settings(max_examples=400, deadline=None)
@given(batches())
def test_the_c_tally_is_the_python_bookkeeping(records: list[Any]) -> None:
    tallied = stream_tally(records)
    if tallied is None:  # declined: never for a batch of one exchange and exact names
        assert by_python(records) is None or any(type(r.symbol) is not str for r in records)
        return
    exchange, symbols, counts, lasts = tallied
    assert (exchange, symbols, counts) == by_python(records)[:3]  # type: ignore[index]
    assert all(a is b for a, b in zip(lasts, by_python(records)[3], strict=True))  # type: ignore[index]


def test_many_symbols_keep_first_seen_order_and_counts() -> None:
    records = [trade("binance", f"S{i % 700}", i) for i in range(7000)]
    exchange, symbols, counts, lasts = stream_tally(records) or ("", [], [], [])
    assert exchange == "binance" and symbols == [f"S{i}" for i in range(700)]
    assert counts == [10] * 700 and [r.trade_id for r in lasts] == list(range(6300, 7000))


def test_what_the_c_pass_declines() -> None:
    ok = [trade("binance", "A", 1), trade("binance", "B", 2)]
    assert stream_tally([]) is None
    assert stream_tally([*ok, trade("okx", "A", 3)]) is None  # two exchanges
    assert stream_tally(tuple(ok)) is None  # type: ignore[arg-type]  (not a list)
    bbo = Bbo(exchange="binance", symbol="A", native_symbol="A", ts=1, recv_ts=1, update_id=1,
              bid_price=1.0, bid_size=1.0, ask_price=2.0, ask_size=1.0)  # fmt: skip
    assert stream_tally([*ok, bbo]) is None  # another record type
    assert stream_tally([trade(Name("binance"), "A", 1)]) is None
    event = Event(exchange="binance", symbol="", native_symbol="", ts=1, recv_ts=1, kind="gap",
                  channel="trades", expected=1, received=2, detail="")  # fmt: skip
    assert stream_tally([event]) == ("binance", [""], [1], [event])
