"""``hundi.book.orders.OrderBook``, the L3 book of full order feeds, against a plain model:
random order events leave the same queues, levels and best prices."""

from __future__ import annotations

import random

import pytest

from hundi.book.orders import OrderBook
from hundi.records import ASK, BID


def test_random_events_match_a_plain_list_model() -> None:
    rng = random.Random(3)
    book = OrderBook()
    model: list[tuple[str, int, float, float]] = []  # (id, side, price, size) in arrival order
    level_ts: dict[tuple[int, float], int] = {}  # when each level last changed
    for step in range(5000):
        r = rng.random()
        if r < 0.45 or not model:
            side = rng.choice((BID, ASK))
            price = float(rng.randrange(90, 100) if side == BID else rng.randrange(100, 110))
            size = float(rng.randrange(1, 5))
            book.apply("open", f"o{step}", side, price, size, step)
            model.append((f"o{step}", side, price, size))
            level_ts[side, price] = step
        elif r < 0.65:
            i = rng.randrange(len(model))
            book.apply("done", model[i][0], model[i][1], 0.0, 0.0, step)
            level_ts[model[i][1], model[i][2]] = step
            del model[i]
        elif r < 0.85:
            i = rng.randrange(len(model))
            oid, side, price, size = model[i]
            fill = float(rng.randrange(1, 5))
            book.apply("match", oid, side, price, fill, step)
            level_ts[side, price] = step
            if fill >= size:
                del model[i]
            else:
                model[i] = (oid, side, price, size - fill)
        else:
            i = rng.randrange(len(model))
            oid, side, price, size = model[i]
            how = rng.random()
            if how < 0.35:  # smaller in place
                new = max(size - 1, 1.0)
                book.apply("change", oid, side, price, new, step)
                model[i] = (oid, side, price, new)
                level_ts[side, price] = step
            elif how < 0.7:  # larger: the back of its level (only size-down keeps priority)
                new = size + float(rng.randrange(1, 3))
                book.apply("change", oid, side, price, new, step)
                del model[i]
                model.append((oid, side, price, new))
                level_ts[side, price] = step
            else:  # a new price: the back of the new level
                new_price = price + (1 if side == BID else -1) * rng.choice((-2, -1, 1))
                new_price = min(new_price, 99.0) if side == BID else max(new_price, 100.0)
                book.apply("change", oid, side, new_price, size, step)
                level_ts[side, price] = level_ts[side, new_price] = step
                if new_price != price:  # the same price keeps the place
                    del model[i]
                    model.append((oid, side, new_price, size))
        book.apply("received", "x", BID, 1.0, 1.0, step)  # moves nothing
    for side in (BID, ASK):
        prices = sorted({p for _, s, p, _ in model if s == side}, reverse=side == BID)
        assert book.prices(side) == prices
        for price in prices:
            queue = [(o, z) for o, s, p, z in model if s == side and p == price]
            assert [(o.order_id, o.size) for o in book.queue(side, price)] == queue
            assert book.level(side, price) == (
                pytest.approx(sum(z for _, z in queue)),
                level_ts[side, price],
            )
        assert book.best(side) == (prices[0] if prices else None)
    assert len(book) == len(model) and not book.crossed()


def test_dust_leaves_the_book_and_unknown_orders_change_nothing() -> None:
    book = OrderBook()
    book.add("a", BID, 10.0, 0.3, 1)
    assert book.reduce("a", 0.1) and book.reduce("a", 0.2)  # 0.3 - 0.1 - 0.2 is float dust
    assert len(book) == 0 and book.best(BID) is None and book.l2(BID) == []
    assert not book.reduce("nope", 1.0) and book.remove("nope") is None
    assert not book.change("nope", 1.0, None, 2)
    book.add("b", ASK, 11.0, 1.0, 3)
    book.add("b", ASK, 12.0, 2.0, 4)  # a known id is replaced
    assert book.l2(ASK) == [(12.0, 2.0)]
    book.add("c", BID, 12.0, 1.0, 5)
    assert book.crossed()


def test_a_larger_size_goes_to_the_back_and_a_smaller_one_keeps_its_place() -> None:
    book = OrderBook()
    for i, oid in enumerate(("a", "b", "c")):
        book.add(oid, BID, 10.0, 1.0, i)
    assert book.change("a", 0.5, None, 5)  # size down: still first
    assert [o.order_id for o in book.queue(BID, 10.0)] == ["a", "b", "c"]
    assert book.change("a", 2.0, None, 6)  # size up: last, queued at the change's time
    assert [(o.order_id, o.size, o.ts) for o in book.queue(BID, 10.0)] == [
        ("b", 1.0, 1),
        ("c", 1.0, 2),
        ("a", 2.0, 6),
    ]
    assert book.level(BID, 10.0) == (4.0, 6)
    book.reduce("b", 0.25, 7)  # a fill changes the level's time, not the queue
    assert book.level(BID, 10.0) == (3.75, 7)
    book.remove("c", 8)
    assert book.level(BID, 10.0) == (2.75, 8)
