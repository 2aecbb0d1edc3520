"""The Coinbase Exchange ``full`` channel on top of the shared synthetic market: an order model.

The shared market (:mod:`hundi.simulator.market`) moves L2 levels: makers add and cancel
quantity, takers sweep levels (its ``("A", ...)`` trade events). :class:`CoinbaseFullFeed` keeps,
per product, the resting *orders* that make up those levels (a level's quantity is always the sum
of its orders' sizes) and turns each market action into the messages Coinbase's ``full`` channel
sends, each with the product's next ``sequence``:

* quantity added at a price: a new order, ``received`` (limit) then ``open`` at the back of the
  level's queue; or (one time in :data:`AMEND_SHARE`, at a level of two orders or more) the
  front order amended to a larger size, a ``change`` (old/new size) that sends it to the back
  of the queue (only a smaller size keeps priority, per Coinbase's changelog);
* a taker sweep: ``received`` (a market order), then per maker order it meets, front of the queue
  first, a ``match`` (maker/taker ids, own trade id) and, for a maker used up, its ``done``
  (``filled``); then the taker's ``done``. One sweep in :data:`LIMIT_TAKER_SHARE` that empties
  its last level is a *limit* order larger than what it met: after its matches the rest
  opens on its own side at that price (crossing nothing: the level it took is gone), then
  is cancelled (``done``), so the model's levels stay the market's;
* quantity removed without a trade: orders cancelled from the back of the queue (``done``,
  ``canceled``), the last one perhaps only reduced (``change``, old/new size).

Removals come before additions within one action and a taker never rests, so no message leaves
the book crossed. One action in :data:`REJECTED_SHARE` also carries a limit order that is
``received`` and then ``done`` (canceled) without ever opening (a post-only order refused):
it moves no book. The level-3 REST snapshot (:meth:`CoinbaseFullFeed.snapshot_body`) lists every
resting order at the current sequence, best price first, queue order within a price.

Faults (armed per product, consumed by the next message or snapshot): ``skip_sequence`` (the
next message is lost: its sequence is used but it is never sent) and ``stale_snapshot`` (the
next snapshot is the book as it was when the feed started, with that old sequence) and
``reorder`` (the next two messages are sent in swapped order, as Coinbase warns may happen).

Mounting in a venue simulator: :meth:`~CoinbaseFullFeed.subscribe` answers a client's
``subscribe`` (checking the signature when the feed has credentials), :meth:`~CoinbaseFullFeed.
on_step` gives the frames of a market action (call it after every ``SyntheticMarket.step()``
that moved a product of the feed), :meth:`~CoinbaseFullFeed.snapshot_body` answers
``GET /products/{id}/book?level=3``, and :meth:`~CoinbaseFullFeed.book` is the ground truth.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from hundi.exchanges.coinbase.full_auth import VERIFY_PATH, signature
from hundi.records import ASK, BID
from hundi.simulator.market import SymbolMarket, fixed
from hundi.simulator.market.book import DepthChannel

# The market's level changes reach the feed through a depth channel of its own; its interval is
# no real speed, so no venue's diff stream ever takes it.
_FEED_CHANNEL_MS = -3
_AUTH_WINDOW_NS = 30 * 1_000_000_000  # Coinbase refuses a timestamp further off than this
AMEND_SHARE = 0.15  # of additions at a level with 2+ orders: the front order grows instead
REJECTED_SHARE = 0.05  # of market actions: a limit order received and done, never open
LIMIT_TAKER_SHARE = 0.3  # of sweeps that empty their last level: a limit taker that then rests

Levels = dict[int, dict[str, int]]  # price ticks → {order id: size lots}, in queue order


@dataclass(slots=True)
class _Product:
    """One product's resting orders and message sequence."""

    market: SymbolMarket
    channel: DepthChannel
    rng: random.Random
    sequence: int
    bids: Levels = field(default_factory=dict)
    asks: Levels = field(default_factory=dict)
    seen_events: int = 0
    last_event: object = None
    trade_id: int = 0
    skip_next: bool = False
    stale_next: bool = False
    reorder_next: bool = False
    held: tuple[str, bytes] | None = None  # the first of two messages being swapped
    initial: tuple[int, Levels, Levels] = (0, {}, {})
    sent: int = 0
    skipped: int = 0
    amended: int = 0
    limit_takers: int = 0
    rejected: int = 0
    reordered: int = 0

    def side(self, is_bid: bool) -> Levels:
        return self.bids if is_bid else self.asks


def iso_time(ns: int) -> str:
    """Coinbase's time format: ISO-8601 UTC with microseconds."""
    whole = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{ns % 1_000_000_000 // 1000:06d}Z"


class CoinbaseFullFeed:
    """``full`` messages and level-3 snapshots for ``markets`` (product id → its market)."""

    def __init__(
        self,
        markets: Mapping[str, SymbolMarket],
        seed: int,
        *,
        credentials: tuple[str, str, str] | None = None,
    ) -> None:
        """``credentials`` (key, base64 secret, passphrase): subscriptions must be signed
        with them; None accepts unsigned ones."""
        self.credentials = credentials
        self.products: dict[str, _Product] = {}
        for product_id, market in markets.items():
            rng = random.Random(f"{seed}:{product_id}:full")
            state = _Product(
                market=market,
                channel=market.add_channel(_FEED_CHANNEL_MS),
                rng=rng,
                sequence=rng.randrange(10_000_000, 90_000_000),
                trade_id=rng.randrange(1_000_000, 9_000_000),
            )
            state.seen_events = len(market.events)
            state.last_event = market.events[-1] if market.events else None
            for is_bid, levels in ((True, market.bids), (False, market.asks)):
                for price, lots in levels.items():
                    self._seed_level(state, is_bid, price, lots)
            state.initial = (state.sequence, _copy(state.bids), _copy(state.asks))
            self.products[product_id] = state
        self._product_of = {id(s.market): p for p, s in self.products.items()}

    # ------------------------------------------------------------------ clients
    def subscribe(self, data: bytes, now_ns: int) -> tuple[list[bytes], list[str]]:
        """A client's message → (frames to send back, products it now receives ``full`` of).
        Wrong messages get Coinbase's ``error`` frame and no products."""
        try:
            message = msgspec.json.decode(data)
        except msgspec.DecodeError:
            return [_error("Failed to subscribe", "malformed JSON")], []
        if not isinstance(message, dict) or message.get("type") != "subscribe":
            return [_error("Failed to subscribe", "expected a subscribe message")], []
        channels = [c if isinstance(c, str) else c.get("name") for c in message.get("channels", [])]
        products = message.get("product_ids", [])
        if "full" not in channels:
            return [_error("Failed to subscribe", "this simulator serves the full channel")], []
        unknown = [p for p in products if p not in self.products]
        if unknown or not products:
            return [
                _error("Failed to subscribe", f"{unknown[:1] or products} is not a valid product")
            ], []
        if not self.signed(message, now_ns):
            return [_error("Authentication Failed", "invalid signature")], []
        reply = {"type": "subscriptions", "channels": [{"name": "full", "product_ids": products}]}
        return [msgspec.json.encode(reply)], list(products)

    def signed(self, message: dict[str, Any], now_ns: int) -> bool:
        """Whether a subscribe message carries a valid signature (always, without credentials)."""
        if self.credentials is None:
            return True
        key, secret, passphrase = self.credentials
        stamp = message.get("timestamp")
        if message.get("key") != key or message.get("passphrase") != passphrase:
            return False
        if not isinstance(stamp, str):
            return False
        try:
            if abs(float(stamp) * 1e9 - now_ns) > _AUTH_WINDOW_NS:
                return False
        except ValueError:
            return False
        return message.get("signature") == signature(secret, stamp, "GET", VERIFY_PATH)

    # ------------------------------------------------------------------ faults
    def skip_sequence(self, product_id: str) -> None:
        """The next message of the product is lost (its sequence is used, nothing is sent)."""
        self.products[product_id].skip_next = True

    def stale_snapshot(self, product_id: str) -> None:
        """The next snapshot of the product is the book from when the feed started."""
        self.products[product_id].stale_next = True

    def reorder(self, product_id: str) -> None:
        """The next two messages of the product are sent in swapped order."""
        self.products[product_id].reorder_next = True

    # ------------------------------------------------------------------ the market moved
    def on_step(self, market: SymbolMarket, now_ns: int) -> list[tuple[str, bytes]]:
        """The (product id, frame) messages of the market action just taken by ``market``
        (none for a market that is not one of the feed's products). Call it after each step,
        before or after the market's events are cleared: a cleared list is noticed."""
        product_id = self._product_of.get(id(market))
        if product_id is None:
            return []  # a product of the market the feed does not serve
        state = self.products[product_id]
        events = market.events
        start = state.seen_events
        if start > len(events) or (start and events[start - 1] is not state.last_event):
            start = 0  # the caller cleared the events since: all of them are new
        new = events[start:]
        state.seen_events = len(events)
        state.last_event = events[-1] if events else None
        diff = state.channel.take()
        frames: list[tuple[str, bytes]] = []
        time = iso_time(now_ns)
        trades = [e for e in new if e[0] == "A"]
        if trades:
            self._take(product_id, state, trades, time, frames)
        if diff is not None:
            _, _, _, bids, asks = diff
            targets = [(True, p, q) for p, q in bids.items()] + [
                (False, p, q) for p, q in asks.items()
            ]
            for is_bid, price, lots in targets:  # removals first: never a crossed book
                if lots < _total(state.side(is_bid).get(price)):
                    self._cancel(product_id, state, is_bid, price, lots, time, frames)
            for is_bid, price, lots in targets:
                held = _total(state.side(is_bid).get(price))
                if lots > held:
                    self._open(product_id, state, is_bid, price, lots - held, time, frames)
        if frames and state.rng.random() < REJECTED_SHARE:
            self._rejected(product_id, state, time, frames)
        if state.held is not None and not state.reorder_next:
            frames.append(state.held)  # the action ended before a second message: unswapped
            state.held = None
        return frames

    def _send(
        self,
        product_id: str,
        state: _Product,
        message: dict[str, Any],
        frames: list[tuple[str, bytes]],
    ) -> None:
        state.sequence += 1
        if state.skip_next:
            state.skip_next = False
            state.skipped += 1
            return
        body = {"type": message.pop("type"), "product_id": product_id, "sequence": state.sequence}
        body.update(message)
        frame = (product_id, msgspec.json.encode(body))
        state.sent += 1
        if state.reorder_next:  # hold this one, send it after the next
            state.reorder_next = False
            state.held = frame
            return
        frames.append(frame)
        if state.held is not None:
            frames.append(state.held)
            state.held = None
            state.reordered += 1

    def _rejected(
        self, product_id: str, state: _Product, time: str, frames: list[tuple[str, bytes]]
    ) -> None:
        """A limit order received and canceled before it ever rested (a post-only refusal)."""
        levels = state.bids if state.rng.random() < 0.5 else state.asks
        if not levels:
            return
        is_bid = levels is state.bids
        price = max(levels) if is_bid else min(levels)
        spec = state.market.spec
        order_id = self._order_id(state)
        side = "buy" if is_bid else "sell"
        price_text = fixed(price, spec.price_decimals)
        self._send(product_id, state, {
            "type": "received", "time": time, "order_id": order_id, "side": side,
            "order_type": "limit", "price": price_text, "size": fixed(1, spec.qty_decimals),
        }, frames)  # fmt: skip
        self._send(product_id, state, {
            "type": "done", "time": time, "order_id": order_id, "side": side,
            "price": price_text, "remaining_size": fixed(1, spec.qty_decimals),
            "reason": "canceled",
        }, frames)  # fmt: skip
        state.rejected += 1

    def _order_id(self, state: _Product) -> str:
        h = f"{state.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _seed_level(self, state: _Product, is_bid: bool, price: int, lots: int) -> None:
        """A level of the starting book as 1-3 resting orders."""
        parts = 1 if lots < 3 else state.rng.randrange(1, 4)
        sizes = [lots // parts] * parts
        sizes[0] += lots - sum(sizes)
        queue = state.side(is_bid).setdefault(price, {})
        for size in sizes:
            queue[self._order_id(state)] = size

    def _open(
        self,
        product_id: str,
        state: _Product,
        is_bid: bool,
        price: int,
        lots: int,
        time: str,
        frames: list[tuple[str, bytes]],
    ) -> None:
        spec = state.market.spec
        side = "buy" if is_bid else "sell"
        price_text = fixed(price, spec.price_decimals)
        queue = state.side(is_bid).get(price)
        if queue and len(queue) >= 2 and state.rng.random() < AMEND_SHARE:
            front = next(iter(queue))  # amended to a larger size: to the back of the queue
            old = queue.pop(front)
            queue[front] = old + lots
            self._send(product_id, state, {
                "type": "change", "time": time, "order_id": front, "side": side,
                "price": price_text, "old_size": fixed(old, spec.qty_decimals),
                "new_size": fixed(old + lots, spec.qty_decimals), "reason": "modify_order",
            }, frames)  # fmt: skip
            state.amended += 1
            return
        order_id = self._order_id(state)
        size_text = fixed(lots, spec.qty_decimals)
        self._send(product_id, state, {
            "type": "received", "time": time, "order_id": order_id, "side": side,
            "order_type": "limit", "price": price_text, "size": size_text,
        }, frames)  # fmt: skip
        self._send(product_id, state, {
            "type": "open", "time": time, "order_id": order_id, "side": side,
            "price": price_text, "remaining_size": size_text,
        }, frames)  # fmt: skip
        state.side(is_bid).setdefault(price, {})[order_id] = lots

    def _cancel(
        self,
        product_id: str,
        state: _Product,
        is_bid: bool,
        price: int,
        target: int,
        time: str,
        frames: list[tuple[str, bytes]],
    ) -> None:
        """Remove quantity from the back of the queue down to ``target``."""
        spec = state.market.spec
        levels = state.side(is_bid)
        queue = levels[price]
        side = "buy" if is_bid else "sell"
        price_text = fixed(price, spec.price_decimals)
        excess = _total(queue) - target
        while excess > 0:
            order_id = next(reversed(queue))
            size = queue[order_id]
            if size <= excess:
                del queue[order_id]
                excess -= size
                self._send(product_id, state, {
                    "type": "done", "time": time, "order_id": order_id, "side": side,
                    "price": price_text, "remaining_size": fixed(size, spec.qty_decimals),
                    "reason": "canceled",
                }, frames)  # fmt: skip
            else:
                queue[order_id] = size - excess
                self._send(product_id, state, {
                    "type": "change", "time": time, "order_id": order_id, "side": side,
                    "price": price_text, "old_size": fixed(size, spec.qty_decimals),
                    "new_size": fixed(size - excess, spec.qty_decimals), "reason": "STP",
                }, frames)  # fmt: skip
                excess = 0
        if not queue:
            del levels[price]

    def _take(
        self,
        product_id: str,
        state: _Product,
        trades: list[tuple[Any, ...]],
        time: str,
        frames: list[tuple[str, bytes]],
    ) -> None:
        """One taker (a market order) sweeping the levels of the step's trade events."""
        spec = state.market.spec
        taker_buys = not trades[0][6]  # buyer_is_maker
        taker = self._order_id(state)
        taker_side, maker_side = ("buy", "sell") if taker_buys else ("sell", "buy")
        total = sum(t[3] for t in trades)
        levels = state.side(not taker_buys)
        last = trades[-1][2]
        empties_last = sum(t[3] for t in trades if t[2] == last) >= _total(levels.get(last))
        limit = empties_last and state.rng.random() < LIMIT_TAKER_SHARE
        rest = state.rng.randrange(1, 4) if limit else 0  # lots left to rest after the sweep
        last_text = fixed(last, spec.price_decimals)
        received: dict[str, Any] = {
            "type": "received", "time": time, "order_id": taker, "side": taker_side,
            "order_type": "limit" if limit else "market",
            "size": fixed(total + rest, spec.qty_decimals),
        }  # fmt: skip
        if limit:
            received["price"] = last_text
        self._send(product_id, state, received, frames)
        for trade in trades:
            price, wanted = trade[2], trade[3]
            queue = levels[price]
            price_text = fixed(price, spec.price_decimals)
            while wanted > 0:
                maker = next(iter(queue))
                size = min(queue[maker], wanted)
                wanted -= size
                state.trade_id += 1
                self._send(product_id, state, {
                    "type": "match", "time": time, "trade_id": state.trade_id,
                    "maker_order_id": maker, "taker_order_id": taker, "side": maker_side,
                    "price": price_text, "size": fixed(size, spec.qty_decimals),
                }, frames)  # fmt: skip
                if size == queue[maker]:
                    del queue[maker]
                    self._send(product_id, state, {
                        "type": "done", "time": time, "order_id": maker, "side": maker_side,
                        "price": price_text, "remaining_size": fixed(0, spec.qty_decimals),
                        "reason": "filled",
                    }, frames)  # fmt: skip
                else:
                    queue[maker] -= size
            if not queue:
                del levels[price]
        if limit:  # the rest rests at its limit, then is cancelled
            rest_text = fixed(rest, spec.qty_decimals)
            self._send(product_id, state, {
                "type": "open", "time": time, "order_id": taker, "side": taker_side,
                "price": last_text, "remaining_size": rest_text,
            }, frames)  # fmt: skip
            self._send(product_id, state, {
                "type": "done", "time": time, "order_id": taker, "side": taker_side,
                "price": last_text, "remaining_size": rest_text, "reason": "canceled",
            }, frames)  # fmt: skip
            state.limit_takers += 1
            return
        self._send(product_id, state, {
            "type": "done", "time": time, "order_id": taker, "side": taker_side,
            "reason": "filled",
        }, frames)  # fmt: skip

    # ------------------------------------------------------------------ REST and truth
    def snapshot_body(self, product_id: str, now_ns: int) -> bytes:
        """``GET /products/{product_id}/book?level=3`` (a stale one when that fault is armed)."""
        state = self.products[product_id]
        if state.stale_next:
            state.stale_next = False
            sequence, bids, asks = state.initial
        else:
            sequence, bids, asks = state.sequence, state.bids, state.asks
        spec = state.market.spec

        def rows(levels: Levels, best_first: list[int]) -> list[list[str]]:
            return [
                [fixed(p, spec.price_decimals), fixed(s, spec.qty_decimals), order_id]
                for p in best_first
                for order_id, s in levels[p].items()
            ]

        body = {
            "bids": rows(bids, sorted(bids, reverse=True)),
            "asks": rows(asks, sorted(asks)),
            "sequence": sequence,
            "auction_mode": False,
            "auction": None,
            "time": iso_time(now_ns),
        }
        return msgspec.json.encode(body)

    def book(self, product_id: str) -> dict[int, list[tuple[float, str, float]]]:
        """The ground truth: per side (1 bid, -1 ask), (price, order id, size) best price
        first, queue order within a price, as floats the collector's records carry."""
        state = self.products[product_id]
        spec = state.market.spec
        out: dict[int, list[tuple[float, str, float]]] = {}
        for side, levels, prices in (
            (BID, state.bids, sorted(state.bids, reverse=True)),
            (ASK, state.asks, sorted(state.asks)),
        ):
            out[side] = [
                (float(fixed(p, spec.price_decimals)), oid, float(fixed(s, spec.qty_decimals)))
                for p in prices
                for oid, s in levels[p].items()
            ]
        return out

    def sequence(self, product_id: str) -> int:
        return self.products[product_id].sequence


def _total(queue: dict[str, int] | None) -> int:
    return sum(queue.values()) if queue else 0


def _copy(levels: Levels) -> Levels:
    return {price: dict(queue) for price, queue in levels.items()}


def _error(message: str, reason: str) -> bytes:
    return msgspec.json.encode({"type": "error", "message": message, "reason": reason})
