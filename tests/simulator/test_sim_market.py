"""The synthetic market on its own: deterministic, never crossed, trades eat the book."""

from __future__ import annotations

import random

from hundi.simulator.market import SymbolMarket, SymbolSpec, SyntheticMarket, fixed


def make(seed: int = 7, symbol: str = "BTCUSDT") -> SymbolMarket:
    spec = SymbolSpec.derive(symbol, random.Random(f"{seed}:{symbol}:spec"))
    return SymbolMarket(spec, seed, now_ms=1_700_000_000_000)


def run(market: SymbolMarket, steps: int) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for _ in range(steps):
        market.step()
        out.extend(market.events)
        market.events.clear()
    return out


def test_same_seed_same_market_other_seed_other_market() -> None:
    a, b, c = make(7), make(7), make(8)
    assert run(a, 3000) == run(b, 3000)
    assert a.snapshot() == b.snapshot()
    assert run(c, 3000) != run(make(7), 3000)


def test_unknown_symbols_get_a_usable_price_scale() -> None:
    market = make(3, "FOOBAR")
    run(market, 2000)
    assert market.best_bid > 1_000  # ticks: the walk is far from zero
    assert market.best_bid < market.best_ask


def test_book_never_crosses_and_best_prices_are_the_extremes() -> None:
    market = make()
    for _ in range(5000):
        market.step()
        market.events.clear()
        assert market.best_bid == max(market.bids)
        assert market.best_ask == min(market.asks)
        assert market.best_bid < market.best_ask
        assert all(q > 0 for q in market.bids.values())
        assert all(q > 0 for q in market.asks.values())


def test_a_taker_buy_trades_at_the_best_ask_and_reduces_it() -> None:
    market = make()
    ask, ask_qty = market.best_ask, market.asks[market.best_ask]
    first_agg = market.agg_id
    market._take(taker_buys=True)
    agg = [e for e in market.events if e[0] == "A"]
    _, agg_id, price, qty, first, last, maker, fills = agg[0]
    assert (agg_id, price, maker) == (first_agg + 1, ask, False)
    assert sum(q for _, q in fills) == qty  # type: ignore[attr-defined]
    assert [t for t, _ in fills] == list(range(first, last + 1))  # type: ignore[attr-defined]
    assert market.asks.get(ask, 0) == ask_qty - min(qty, ask_qty)  # type: ignore[operator]
    ids = [e[1] for e in agg]
    assert ids == list(range(first_agg + 1, first_agg + 1 + len(ids)))


def test_depth_channel_folds_changes_into_final_quantities() -> None:
    market = make()
    channel = market.add_channel(100)
    start = market.update_id
    run(market, 200)
    first, last, prev, bids, asks = channel.take()  # type: ignore[misc]
    assert (first, last, prev) == (start + 1, market.update_id, start)
    for price, qty in bids.items():
        assert market.bids.get(price, 0) == qty
    for price, qty in asks.items():
        assert market.asks.get(price, 0) == qty
    assert channel.take() is None
    run(market, 50)
    assert channel.take()[2] == last  # type: ignore[index]


def test_fixed_point_text_is_exact() -> None:
    assert fixed(3528, 4, 8) == "0.35280000"
    assert fixed(76110, 4) == "7.6110"
    assert fixed(-49, 2) == "-0.49"
    assert fixed(12, 0) == "12"
    assert fixed(12, 0, 8) == "12.00000000"


def test_the_shared_market_is_one_seeded_sequence_over_all_symbols() -> None:
    def trace(seed: int) -> list[tuple[object, ...]]:
        market = SyntheticMarket(("BTCUSDT", "ETHUSDT", "FOOBAR"), seed, 0, trade_history=10)
        out: list[tuple[object, ...]] = []
        for _ in range(2000):
            stepped = market.step()
            out.extend((stepped.spec.symbol, *e) for e in stepped.events)
            stepped.events.clear()
        return out

    assert trace(5) == trace(5)
    assert trace(5) != trace(6)
    assert {e[0] for e in trace(5)} == {"BTCUSDT", "ETHUSDT", "FOOBAR"}


def test_published_book_follows_the_diffs_and_the_pre_warmup_book_is_older() -> None:
    market = SyntheticMarket(("BTCUSDT",), 7, 0, trade_history=10)
    assert market.pre_warmup["BTCUSDT"][0] < market.published["BTCUSDT"][0]
    assert market.add_depth_speed(100) and not market.add_depth_speed(100)
    for _ in range(500):
        market.step().events.clear()
    for symbol, diff in market.take_depth(100):
        market.publish_depth(symbol, diff)
    book = market.symbols["BTCUSDT"]
    assert market.published["BTCUSDT"] == (book.update_id, book.bids, book.asks)
    assert list(market.take_depth(100)) == []
