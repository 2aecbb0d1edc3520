"""The simulator's Coinbase ``full`` order model through :class:`CoinbaseFullProtocol`: the
rebuilt L3 book equals the model's after thousands of market actions, with a lost message and a
stale snapshot on the way (each a stored gap/resync, then synced again), and the stored rows
rebuild the same book through the research API."""

from __future__ import annotations

import base64
import math
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from hundi.exchanges.base import (
    FrameStatus,
    RecordSink,
    RejectedFrame,
    RestRequest,
    RestResponse,
    VenueConfig,
)
from hundi.exchanges.coinbase.full import FULL_CONN, CoinbaseFullProtocol
from hundi.exchanges.coinbase.full_auth import CoinbaseCredentials
from hundi.exchanges.credentials import Secret
from hundi.records import ASK, BID, Channel
from hundi.research import book_at, book_l3_at
from hundi.simulator.coinbase.full import CoinbaseFullFeed
from hundi.simulator.market import SyntheticMarket
from hundi.stores.embedded import EmbeddedStore

MS = 1_000_000
T0 = 1_795_000_000_000 * MS
PRODUCTS = ("BTC-USD", "ETH-EUR")
SECRET = base64.b64encode(b"simulated secret").decode()
KEYS = ("sim-key", SECRET, "sim-pass")
CREDS = CoinbaseCredentials(Secret(KEYS[0]), Secret(KEYS[1]), Secret(KEYS[2]), "test")


def same(rebuilt: list[tuple[float, str, float]], truth: list[tuple[float, str, float]]) -> bool:
    """Equal orders (price, id) in equal order, sizes equal up to float rounding."""
    return len(rebuilt) == len(truth) and all(
        (p, o) == (tp, to) and math.isclose(z, tz, rel_tol=1e-9, abs_tol=1e-12)
        for (p, o, z), (tp, to, tz) in zip(rebuilt, truth, strict=True)
    )


class Session:
    """The feed and the protocol wired together in-process, with a snapshot latency."""

    def __init__(
        self,
        seed: int = 7,
        credentials: CoinbaseCredentials = CREDS,
        options: dict[str, str] | None = None,
    ) -> None:
        self.market = SyntheticMarket(PRODUCTS, seed, T0 // MS, trade_history=10)
        self.feed = CoinbaseFullFeed(
            {p: self.market.symbols[p] for p in PRODUCTS}, seed, credentials=KEYS
        )
        config = VenueConfig(
            market="spot", symbols=PRODUCTS, channels=(Channel.BOOK_L3,), endpoint="ws://sim",
            rest_endpoint="http://sim", options=options or {},
        )  # fmt: skip
        self.protocol = CoinbaseFullProtocol(config, credentials=credentials)
        self.out = RecordSink()
        self.now = T0
        self.statuses: Counter[FrameStatus] = Counter()
        self.pending: list[tuple[int, RestRequest]] = []  # (answer at step, request)
        self.step_no = 0
        self.subscribed: list[str] = []

    def deliver(self, frame: bytes) -> None:
        self.statuses[self.protocol.receive(FULL_CONN, frame, self.now, self.out)] += 1

    def open(self) -> None:
        self.protocol.on_open(FULL_CONN, self.now, self.out)
        (spec,) = self.protocol.connections()
        opening = self.protocol.opening(spec, self.now)
        assert opening is not None
        replies, self.subscribed = self.feed.subscribe(opening.messages[0], self.now)
        for reply in replies:
            self.deliver(reply)

    def step(self, latency: int = 40) -> None:
        """One market action; snapshots are answered ``latency`` actions after being asked."""
        self.step_no += 1
        self.now += MS
        moved = self.market.step()
        for product, frame in self.feed.on_step(moved, self.now):
            if product in self.subscribed:
                self.deliver(frame)
        for request in self.protocol.due_requests(self.now):
            self.pending.append((self.step_no + latency, request))
        due = [r for at, r in self.pending if at <= self.step_no]
        self.pending = [(at, r) for at, r in self.pending if at > self.step_no]
        for request in due:
            product = request.key.removeprefix("full:")
            body = self.feed.snapshot_body(product, self.now)
            self.protocol.receive_response(request, RestResponse(200, body), self.now, self.out)

    def assert_books_equal_the_model(self) -> None:
        for product in PRODUCTS:
            truth = self.feed.book(product)
            book = self.protocol.state[product].book
            for side in (BID, ASK):
                rebuilt = [
                    (price, o.order_id, o.size)
                    for price in book.prices(side)
                    for o in book.queue(side, price)
                ]
                assert same(rebuilt, truth[side]), (product, side)
            assert not book.crossed()


def test_the_rebuilt_book_equals_the_models_through_a_lost_message_and_a_stale_snapshot(
    tmp_path: Path,
) -> None:
    s = Session()
    s.open()
    for _ in range(1500):
        s.step()
    assert all(status.synced for status in s.protocol.books())
    s.assert_books_equal_the_model()
    assert s.out.events and {e.kind for e in s.out.events} == {"synced"}

    s.feed.skip_sequence("BTC-USD")  # one message lost ...
    s.feed.stale_snapshot("BTC-USD")  # ... and the snapshot fetched to repair it is stale
    for _ in range(3000):
        s.step()
    kinds = [(e.symbol, e.kind) for e in s.out.events]
    assert kinds.count(("BTC-USD", "gap")) == 1
    assert kinds.count(("ETH-EUR", "gap")) == 0
    resyncs = [e for e in s.out.events if e.kind == "resync" and e.symbol == "BTC-USD"]
    assert [r.detail.split(":")[0] for r in resyncs] == ["level-3 snapshot", "stale snapshot"]
    assert kinds.count(("BTC-USD", "synced")) == 2
    assert s.protocol.state["BTC-USD"].snapshots_stale == 1
    assert all(status.synced for status in s.protocol.books())
    s.assert_books_equal_the_model()

    sent = sum(p.sent for p in s.feed.products.values())
    assert s.statuses[FrameStatus.PROCESSED] == sent  # every message accounted, none rejected
    assert s.statuses[FrameStatus.FILTERED] == 1  # the subscriptions reply
    assert s.feed.products["BTC-USD"].skipped == 1

    rows = s.out.drain()
    kinds_stored = Counter(getattr(r, "kind") for r in rows[Channel.BOOK_L3])  # noqa: B009
    assert {"snapshot", "received", "open", "match", "change", "done"} <= set(kinds_stored)
    store = EmbeddedStore(str(tmp_path))
    store.write(rows)
    store.flush()
    for product in PRODUCTS:
        stored = book_l3_at(store, "coinbase", product, s.now)
        assert stored.attrs["synced"] and stored.attrs["update_id"] == s.feed.sequence(product)
        truth = s.feed.book(product)
        for side in (BID, ASK):
            mine = stored[stored["side"] == side]
            assert same(
                list(zip(mine["price"], mine["order_id"], mine["size"], strict=True)), truth[side]
            )
        l2 = book_at(store, "coinbase", product, s.now)
        best_bid = l2[l2["side"] == BID].iloc[0]
        assert best_bid["price"] == truth[BID][0][0]
        assert best_bid["size"] == pytest.approx(
            sum(size for price, _, size in truth[BID] if price == truth[BID][0][0])
        )


def test_a_wrongly_signed_subscription_is_refused_with_coinbases_error() -> None:
    wrong = CoinbaseCredentials(Secret("sim-key"), Secret(SECRET), Secret("not-it"), "test")
    s = Session(credentials=wrong)
    s.open()
    assert s.subscribed == []
    (event,) = s.out.events
    assert event.kind == "auth_failed" and "Authentication Failed" in event.detail


def test_a_market_the_feed_does_not_serve_gives_no_frames() -> None:
    market = SyntheticMarket(("BTC-USD", "SOL-USD"), 3, T0 // MS, trade_history=10)
    feed = CoinbaseFullFeed({"BTC-USD": market.symbols["BTC-USD"]}, 3)
    assert feed.on_step(market.symbols["SOL-USD"], T0) == []


def test_subscriptions_are_checked() -> None:
    feed = Session().feed
    now = T0

    def reply(message: dict[str, object]) -> tuple[list[bytes], list[str]]:
        return feed.subscribe(msgspec.json.encode(message), now)

    frames, products = reply(
        {"type": "subscribe", "channels": ["level2"], "product_ids": ["BTC-USD"]}
    )
    assert products == [] and b"full channel" in frames[0]
    frames, products = reply(
        {"type": "subscribe", "channels": ["full"], "product_ids": ["XRP-USD"]}
    )
    assert products == [] and b"not a valid product" in frames[0]
    frames, products = reply(
        {"type": "subscribe", "channels": ["full"], "product_ids": ["BTC-USD"]}
    )
    assert products == [] and b"Authentication Failed" in frames[0]  # unsigned


def test_a_lost_message_alone_is_a_gap_and_a_resync_to_the_models_book() -> None:
    s = Session(seed=11)
    s.open()
    for _ in range(300):
        s.step(latency=5)
    s.feed.skip_sequence("ETH-EUR")
    for _ in range(600):
        s.step(latency=5)
    gaps = [e for e in s.out.events if e.kind == "gap"]
    assert [(g.symbol, g.received - g.expected) for g in gaps] == [("ETH-EUR", 1)]
    s.assert_books_equal_the_model()
    with pytest.raises(RejectedFrame, match="unknown_symbol"):
        s.protocol.receive(FULL_CONN, b'{"type":"open","product_id":"SOL-USD"}', s.now, s.out)


def test_amendments_refused_orders_reordered_messages_and_periodic_checks(tmp_path: Path) -> None:
    """The model also amends orders to a larger size (to the back of the queue), refuses limit
    orders that never open and swaps messages; none of it is a gap, the periodic snapshot
    checks agree with the live book and are stored as checkpoints the research API replays
    from."""
    s = Session(seed=13, options={"full_snapshot_interval_s": "1"})  # a step is 1 ms
    s.open()
    for i in range(6000):
        if i % 500 == 250:
            s.feed.reorder("BTC-USD" if i % 1000 == 250 else "ETH-EUR")
        s.step(latency=5)
    feeds = s.feed.products.values()
    assert sum(p.amended for p in feeds) > 20 and sum(p.rejected for p in feeds) > 5
    assert sum(p.limit_takers for p in feeds) > 5  # matched, then rested, then cancelled
    assert sum(p.reordered for p in feeds) >= 6  # (an action of one message sends it as is)
    assert {e.kind for e in s.out.events} == {"synced"}  # no gap, no resync
    checked = [s.protocol.state[p].snapshots_checked for p in PRODUCTS]
    assert all(n >= 4 for n in checked), checked
    s.assert_books_equal_the_model()
    sent = sum(p.sent for p in feeds)
    assert s.statuses[FrameStatus.PROCESSED] == sent
    rows = s.out.drain()
    changes = [r for r in rows[Channel.BOOK_L3] if getattr(r, "kind") == "change"]  # noqa: B009
    assert any(getattr(r, "size") > 0 for r in changes)  # noqa: B009
    store = EmbeddedStore(str(tmp_path))
    store.write(rows)
    store.flush()
    for product in PRODUCTS:
        stored = book_l3_at(store, "coinbase", product, s.now)
        assert stored.attrs["synced"] and stored.attrs["update_id"] == s.feed.sequence(product)
        assert stored.attrs["snapshot_ts"].value > T0 + 4_000 * MS  # a recent checkpoint
        truth = s.feed.book(product)
        for side in (BID, ASK):
            mine = stored[stored["side"] == side]
            assert same(
                list(zip(mine["price"], mine["order_id"], mine["size"], strict=True)), truth[side]
            )
