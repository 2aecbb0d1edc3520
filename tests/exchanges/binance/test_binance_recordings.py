"""The Binance protocol on the real spot and USD-M recordings (``../shared/recordings``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from binance_replay import ReplayResult, RowBook, query_symbol, replay

from hundi.capture.events import CaptureEvent, CaptureKind
from hundi.capture.reader import read_capture
from hundi.exchanges.base import RecordSink, RestResponse, VenueConfig
from hundi.exchanges.binance import BinanceVenue
from hundi.exchanges.binance.protocol import EXCHANGE_INFO_KEY, BinanceProtocol
from hundi.records import ASK, BID, Channel, EventKind

SPOT_SYMBOLS = ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR")
USDM_SYMBOLS = ("SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT")
CHANNELS = (Channel.TRADES, Channel.BBO, Channel.BOOK, Channel.CANDLES, Channel.TICKER)
MS = 1_000_000


def events(recordings_dir: Path, name: str) -> Iterator[CaptureEvent]:
    """The recording: ``NAME.0`` holds the exchangeInfo fetched at start, then the streams."""
    return read_capture([recordings_dir / f"{name}.{part}" for part in ("0", "ws.1.0", "http.0.0")])


def venue(market: str, symbols: tuple[str, ...]) -> BinanceProtocol:
    return BinanceVenue(VenueConfig(market=market, symbols=symbols, channels=CHANNELS))


@pytest.fixture(scope="module")
def spot(recordings_dir: Path) -> tuple[BinanceProtocol, ReplayResult]:
    protocol = venue("spot", SPOT_SYMBOLS)
    return protocol, replay(protocol, events(recordings_dir, "BINANCE"))


@pytest.fixture(scope="module")
def usdm(recordings_dir: Path) -> tuple[BinanceProtocol, ReplayResult]:
    protocol = venue("usdm", USDM_SYMBOLS)
    return protocol, replay(protocol, events(recordings_dir, "BINANCE_FUTURES"))


def recv_count(recordings_dir: Path, name: str) -> int:
    return sum(1 for e in events(recordings_dir, name) if e.kind is CaptureKind.RECV)


def kinds(result: ReplayResult, symbol: str) -> list[str]:
    return [e.kind for e in result.sink.events if e.symbol == symbol]


def assert_rows_rebuild_books(
    protocol: BinanceProtocol, result: ReplayResult, natives: tuple[str, ...]
) -> None:
    """The stored rows alone rebuild exactly the protocol's final books."""
    rebuilt = RowBook()
    rebuilt.apply(result.sink.book)
    for native in natives:
        book = protocol.book(native)
        assert rebuilt.books[book.symbol] == (book.bids.levels, book.asks.levels)


# ---------------------------------------------------------------------------------------- spot
def test_spot_every_frame_accounted_and_none_rejected(spot, recordings_dir: Path) -> None:
    _, result = spot
    frames = result.accounting
    assert frames.received == recv_count(recordings_dir, "BINANCE") == 265
    assert frames.balanced()
    assert not frames.rejected
    assert frames.processed == frames.received


def test_spot_books_never_crossed_and_all_sync_from_recorded_snapshots(spot) -> None:
    protocol, result = spot
    assert result.book_checks > 265 * 4
    assert result.crossed == []
    assert {s.symbol: s.synced for s in protocol.books()} == dict.fromkeys(
        ("NKN-USDT", "BLZ-ETH", "LRC-BTC", "RUNE-EUR"), True
    )
    assert sorted(r.key for _, r in result.requests) == sorted((*SPOT_SYMBOLS, EXCHANGE_INFO_KEY))
    # exchangeInfo first (the recorded client fetched it before connecting), then depth.
    assert result.answered[0][1].key == EXCHANGE_INFO_KEY
    assert [query_symbol(url) for _, _, url in result.answered[1:]] == [
        r.key for _, r, _ in result.answered[1:]
    ]
    # The protocol asks exactly what the recorded client fetched.
    assert all(request.url == url for _, request, url in result.answered)
    assert (result.stats.rest_unused, result.stats.rest_unanswered) == (0, 0)
    assert protocol.invalid_symbols == []  # all four are listed and trading
    for symbol in ("NKN-USDT", "BLZ-ETH", "LRC-BTC", "RUNE-EUR"):
        assert kinds(result, symbol) == [EventKind.SYNCED]
    assert_rows_rebuild_books(protocol, result, SPOT_SYMBOLS)


def test_spot_snapshot_rows_then_straddling_diff(spot, recordings_dir: Path) -> None:
    protocol, result = spot
    nkn = [r for r in result.sink.book if r.native_symbol == "NKNUSDT"]
    snapshot = [r for r in nkn if r.snapshot]
    recorded = next(
        e.data for e in events(recordings_dir, "BINANCE")
        if e.kind is CaptureKind.REST and "NKNUSDT" in e.url
    )  # fmt: skip
    levels = json.loads(recorded)
    assert len(snapshot) == len(levels["bids"]) + len(levels["asks"])  # one row per level
    assert {r.update_id for r in snapshot} == {499869752}
    assert nkn[: len(snapshot)] == snapshot  # snapshot first, then diffs
    # The buffered diff 499869750..752 is older than the snapshot and dropped; the first applied
    # diff is 753..754 (U == lastUpdateId + 1), hand-checked against the recorded frame.
    first_diff = nkn[len(snapshot) : len(snapshot) + 2]
    assert [(r.side, r.price, r.size) for r in first_diff] == [
        (BID, 0.3517, 4265.0),
        (ASK, 0.3529, 10968.0),
    ]
    assert {(r.first_update_id, r.update_id, r.prev_update_id) for r in first_diff} == {
        (499869753, 499869754, -1)
    }
    assert first_diff[0].ts == 1633998512568 * MS
    assert first_diff[0].recv_ts == 1633998512564785000
    assert protocol.book("NKNUSDT").last_update_id == 499870179  # the last recorded diff


def test_spot_hand_checked_trade_bbo_candle(spot) -> None:
    _, result = spot
    trade = next(t for t in result.sink.trades if t.trade_id == 15683430)
    assert (trade.symbol, trade.native_symbol, trade.exchange) == ("NKN-USDT", "NKNUSDT", "binance")
    assert (trade.price, trade.size, trade.side) == (0.3528, 58.0, 1)  # m=false: taker bought
    assert (trade.first_trade_id, trade.last_trade_id) == (19862790, 19862790)
    assert trade.ts == 1633998523963 * MS
    assert trade.recv_ts == 1633998523957215000

    bbo = next(b for b in result.sink.bbo if b.update_id == 499869768)
    assert (bbo.bid_price, bbo.bid_size, bbo.ask_price, bbo.ask_size) == (
        0.3521, 672.0, 0.3526, 3199.0,
    )  # fmt: skip
    assert bbo.ts == bbo.recv_ts == 1633998513377805000  # spot bookTicker has no event time

    candle = next(c for c in result.sink.candles if c.ts == 1633998523963 * MS)
    assert candle.symbol == "NKN-USDT"
    assert (candle.interval, candle.open_time, candle.close_time) == (
        "1m", 1633998480000 * MS, 1633998539999 * MS,
    )  # fmt: skip
    assert (candle.open, candle.high, candle.low, candle.close) == (0.3527, 0.3528, 0.3522, 0.3528)
    assert (candle.volume, candle.quote_volume, candle.taker_buy_volume) == (
        25877.0, 9116.046, 58.0,
    )  # fmt: skip
    assert (candle.trade_count, candle.closed) == (30, False)


# ---------------------------------------------------------------------------------------- USD-M
def test_usdm_every_frame_accounted_and_none_rejected(usdm, recordings_dir: Path) -> None:
    _, result = usdm
    frames = result.accounting
    assert frames.received == recv_count(recordings_dir, "BINANCE_FUTURES") == 1535
    assert frames.balanced()
    assert not frames.rejected


def test_usdm_books_sync_by_the_usdm_rule(usdm, recordings_dir: Path) -> None:
    """All four recorded USD-M snapshots are usable under Binance's USD-M rule.

    For AKRO, KEEP and CTK the straddling diff ends exactly at ``lastUpdateId`` (``u ==
    lastUpdateId``): the USD-M rule ``U <= lastUpdateId <= u`` accepts it, while the spot rule
    (``U <= lastUpdateId + 1 <= u``) would wrongly refuse these snapshots and refetch.
    """
    protocol, result = usdm
    assert result.crossed == []
    assert all(state.synced for state in protocol.books())
    assert all(protocol.book(s).snapshots_refused == 0 for s in USDM_SYMBOLS)
    assert sorted(r.key for _, r in result.requests) == sorted((*USDM_SYMBOLS, EXCHANGE_INFO_KEY))
    assert all(request.url == url for _, request, url in result.answered)
    assert (result.stats.rest_unused, result.stats.rest_unanswered) == (0, 0)
    assert protocol.invalid_symbols == []  # all four are listed perpetuals, trading
    boundary = {}
    for native in ("AKROUSDT", "KEEPUSDT", "CTKUSDT", "SUSHIUSDT"):
        book = protocol.book(native)
        snapshot_id = next(
            r.update_id for r in result.sink.book if r.native_symbol == native and r.snapshot
        )
        first = next(r for r in result.sink.book if r.native_symbol == native and not r.snapshot)
        assert first.first_update_id <= snapshot_id <= first.update_id
        boundary[native] = first.update_id == snapshot_id
        assert kinds(result, book.symbol) == [EventKind.SYNCED]
    assert boundary == {"AKROUSDT": True, "KEEPUSDT": True, "CTKUSDT": True, "SUSHIUSDT": False}
    assert_rows_rebuild_books(protocol, result, USDM_SYMBOLS)


def test_usdm_hand_checked_records(usdm) -> None:
    _, result = usdm
    sell = next(t for t in result.sink.trades if t.trade_id == 14888302)
    assert (sell.symbol, sell.price, sell.size, sell.side) == ("AKRO-USDT-PERP", 0.01731, 312.0, -1)
    assert sell.ts == 1626992742134 * MS  # trade time T, not event time E

    bbo = next(b for b in result.sink.bbo if b.update_id == 600859600576)
    assert (bbo.symbol, bbo.bid_price, bbo.bid_size, bbo.ask_price, bbo.ask_size) == (
        "SUSHI-USDT-PERP", 7.611, 2.0, 7.612, 297.0,
    )  # fmt: skip
    assert bbo.ts == 1626992741017 * MS

    rows = [r for r in result.sink.book if r.update_id == 600859607423]
    assert len(rows) == 10
    assert {(r.first_update_id, r.prev_update_id) for r in rows} == {(600859605926, 600859604824)}
    assert (rows[0].side, rows[0].price, rows[0].size) == (BID, 7.56, 478.0)
    assert (rows[-1].side, rows[-1].price, rows[-1].size) == (ASK, 7.65, 590.0)

    candle = next(c for c in result.sink.candles if c.native_symbol == "CTKUSDT")
    assert (candle.open, candle.close, candle.volume, candle.trade_count) == (
        1.01,
        1.011,
        3917.0,
        48,
    )


def test_usdm_stale_snapshots_are_refused_and_refetched(recordings_dir: Path) -> None:
    """Join the stream late: the recorded snapshots are then older than every buffered diff.

    The protocol must refuse each of them (never build a book on it), say so with a resync
    event, and ask for a fresh snapshot.
    """
    recorded = list(events(recordings_dir, "BINANCE_FUTURES"))
    snapshots = {
        query_symbol(e.url): e for e in recorded if e.kind is CaptureKind.REST and "/depth" in e.url
    }
    late_start = max(e.ts for e in snapshots.values()) + 2_000_000_000
    protocol = venue("usdm", USDM_SYMBOLS)
    out = RecordSink()
    requests = {}
    for event in recorded:
        if event.kind is CaptureKind.RECV and event.ts >= late_start:
            protocol.receive("usdm-public-0", event.data, event.ts, out)
            for request in protocol.due_requests(event.ts):
                requests[request.key] = request
    assert sorted(requests) == sorted((*USDM_SYMBOLS, EXCHANGE_INFO_KEY))
    del requests[EXCHANGE_INFO_KEY]  # left unanswered: it must not hold up the snapshots
    now = late_start + 30_000_000_000
    for native, request in requests.items():
        protocol.receive_response(request, RestResponse(200, snapshots[native].data), now, out)
    assert not any(state.synced for state in protocol.books())
    assert not out.book
    refused = [e for e in out.events if e.kind == EventKind.RESYNC]
    assert sorted(e.native_symbol for e in refused) == sorted(USDM_SYMBOLS)
    assert all("stale snapshot" in e.detail for e in refused)
    # Fresh requests follow, paced by the REST scheduler.
    again = []
    for step in range(1, 20):
        again += [r.key for r in protocol.due_requests(now + step * 200_000_000)]
    assert sorted(again) == sorted(USDM_SYMBOLS)


def test_usdm_legacy_single_path_decodes_the_same(recordings_dir: Path) -> None:
    protocol = BinanceVenue(
        VenueConfig(
            market="usdm", symbols=USDM_SYMBOLS, channels=CHANNELS, options={"usdm_split": "false"}
        )
    )
    assert [(s.key, s.url) for s in protocol.connections()] == [
        ("usdm-stream-0", "wss://fstream.binance.com/stream")
    ]
    result = replay(protocol, events(recordings_dir, "BINANCE_FUTURES"))
    assert not result.accounting.rejected
    assert all(state.synced for state in protocol.books())
