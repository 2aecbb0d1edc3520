"""The Coinbase protocol on the real recording (``../shared/recordings/COINBASE.*``): Coinbase
Pro ``level2`` + ``ticker`` + ``matches`` traffic of 2021, the protocol family of today's feed.

``level2`` carries no checksums and no sequence numbers, so there is nothing to count as
verified: the integrity checks that apply are the book never crossing (every frame) and the
per-product trade-id continuity of ``matches`` (no gap in the recording).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hundi.accounting import Accounting
from hundi.capture.events import CaptureKind
from hundi.capture.infer import infer_config, infer_exchange
from hundi.capture.reader import read_capture
from hundi.capture.replay import Batch, replay_events
from hundi.exchanges.base import VenueConfig
from hundi.exchanges.coinbase import CoinbaseVenue
from hundi.exchanges.coinbase.capture import infer_capture
from hundi.exchanges.coinbase.protocol import CoinbaseProtocol
from hundi.records import Channel, EventKind

PRODUCTS = (
    "SKL-USD",
    "SKL-BTC",
    "BAND-GBP",
    "NMR-EUR",
    "BAND-BTC",
    "YFI-BTC",
    "DASH-BTC",
    "NU-GBP",
    "CRV-EUR",
    "SKL-GBP",
)


def files(recordings_dir: Path) -> list[Path]:
    return sorted(recordings_dir.glob("COINBASE.*"))


def test_the_recording_config_is_inferred(recordings_dir: Path) -> None:
    found = files(recordings_dir)
    assert infer_exchange(found) == "coinbase"
    config = infer_config(found, "coinbase", None)
    assert config.market == "spot"
    assert set(config.symbols) == set(PRODUCTS)
    assert set(config.channels) == {Channel.BOOK, Channel.TICKER, Channel.TRADES, Channel.EVENTS}
    assert config.options == {"level2_channel": "level2"}


def test_replay_accounts_every_frame_and_never_crosses(recordings_dir: Path) -> None:
    found = files(recordings_dir)
    config = infer_capture(found, None)
    config.authenticate = False
    protocol = CoinbaseVenue(config)
    crossed: list[str] = []
    checks = 0
    receive = protocol.receive

    def checked(conn: str, data: bytes, recv_ns: int, out: object) -> object:
        nonlocal checks
        try:
            return receive(conn, data, recv_ns, out)  # type: ignore[arg-type]
        finally:
            for book in protocol.books():
                checks += 1
                if book.synced and book.best_bid >= book.best_ask:
                    crossed.append(book.symbol)

    protocol.receive = checked  # type: ignore[assignment,method-assign]
    accounting = Accounting()
    batches: list[Batch] = []
    replay_events(read_capture(found), protocol, batches.append, accounting)
    received = sum(1 for e in read_capture(found) if e.kind is CaptureKind.RECV)
    assert received == accounting.received == 9946
    # filtered: 3 acks and the 10 last_match of the subscribe (the run's first: they start the
    # id windows; an earlier run stored them, or the restart gap fetches them)
    assert (accounting.processed, accounting.filtered, accounting.rejected_total) == (9933, 13, 0)
    assert crossed == [] and checks >= received
    records = {ch: sum(len(b.get(ch, [])) for b in batches) for ch in Channel}
    assert records[Channel.TRADES] == 97  # the matches; no trade id skipped, no gap
    # the subscribe-time ticker (7 s old, the last_match's trade) is each product's first:
    # stored once; none is resent in the recording
    assert records[Channel.TICKER] == 107
    events = [e for b in batches for e in b.get(Channel.EVENTS, [])]
    assert [e.kind for e in events] == [EventKind.SYNCED.value] * 10  # one snapshot per product
    assert all(book.synced for book in protocol.books())
    assert len(protocol.books()) == 10
    assert isinstance(protocol, CoinbaseProtocol) and protocol.invalid_symbols == []


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_infer_accepts_both_host_names_and_both_subscribe_forms(tmp_path: Path) -> None:
    today = write(
        tmp_path / "A.ws.1.0",
        "wss://ws-feed.exchange.coinbase.com <-> 1.0",
        'wss://ws-feed.exchange.coinbase.com <- 1.1: {"type":"subscribe","product_ids":'
        '["BTC-USD"],"channels":["level2_batch","heartbeat",{"name":"matches",'
        '"product_ids":["ETH-USD"]}]}',
        '1.2: {"type":"subscriptions","channels":[]}',
    )
    config = infer_capture([today], "spot")
    assert config.symbols == ("BTC-USD", "ETH-USD")
    assert config.channels == (Channel.BOOK, Channel.TRADES, Channel.EVENTS)
    assert config.options == {}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["wss://stream.binance.com:9443/ws <-> 1.0"], "not a Coinbase ws-feed capture"),
        (["wss://ws-feed.pro.coinbase.com <-> 1.0"], "cannot infer products and channels"),
    ],
)
def test_infer_refuses_what_it_cannot_replay(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        infer_capture([write(tmp_path / "B.ws.1.0", *lines)], None)
    with pytest.raises(ValueError, match="one market, spot"):
        infer_capture([write(tmp_path / "C.ws.1.0", *lines)], "usdm")


def test_a_live_config_never_asks_for_level2_without_signing() -> None:
    config = VenueConfig(
        market="spot",
        symbols=("BTC-USD",),
        channels=(Channel.BOOK,),
        options={"level2_channel": "level2"},
    )
    with pytest.raises(ValueError, match="authenticated subscribe"):
        CoinbaseVenue(config)
