"""``hundi.exchanges._template``: the documented skeleton works, and is never registered."""

from __future__ import annotations

import numpy as np
import pytest

from hundi.exchanges import exchange_names
from hundi.exchanges._template import EXCHANGE, TemplateVenue
from hundi.exchanges._template.book import BOOK_RULE
from hundi.exchanges._template.symbols import native, normalize
from hundi.exchanges.base import FrameStatus, RecordSink, RejectedFrame, VenueConfig
from hundi.records import Channel, EventKind

NOW = 1_700_000_000_000  # ms
NS = NOW * 1_000_000


def frame(text: str) -> bytes:
    return text.replace("NOW", str(NOW)).encode()


def test_the_template_is_not_registered() -> None:
    assert EXCHANGE.name not in exchange_names()
    assert "_template" not in exchange_names()


def test_symbols_round_trip() -> None:
    assert normalize("btc/usdt") == "BTC-USDT" and native("BTC-USDT") == "BTC/USDT"
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        normalize("BTCUSDT")


def test_frames_are_processed_filtered_or_rejected() -> None:
    protocol = TemplateVenue(
        VenueConfig(market="spot", symbols=("BTC/USDT",), channels=(Channel.TRADES, Channel.BOOK))
    )
    (spec,) = protocol.connections()
    assert len(spec.subscribe) == 2
    out = RecordSink()
    receive = protocol.receive
    assert receive("public", b'{"event":"subscribed"}', NS, out) is FrameStatus.FILTERED
    trade = '{"channel":"trades","symbol":"BTC/USDT","data":[{"id":7,"px":"100.5","qty":"0.1","side":"buy","ts":NOW}]}'  # noqa: E501
    assert receive("public", frame(trade), NS, out) is FrameStatus.PROCESSED
    assert out.trades[0].symbol == "BTC-USDT" and out.trades[0].price == 100.5
    diff_early = '{"channel":"book","symbol":"BTC/USDT","type":"update","seq":9,"prev_seq":8,"ts":NOW,"bids":[["99","1"]]}'  # noqa: E501
    assert receive("public", frame(diff_early), NS, out) is FrameStatus.FILTERED
    snapshot = '{"channel":"book","symbol":"BTC/USDT","type":"snapshot","seq":10,"ts":NOW,"bids":[["100","1.5"]],"asks":[["101","2"]]}'  # noqa: E501
    assert receive("public", frame(snapshot), NS, out) is FrameStatus.PROCESSED
    diff = '{"channel":"book","symbol":"BTC/USDT","type":"update","seq":11,"prev_seq":10,"ts":NOW,"bids":[["100","0"],["100.5","1"]]}'  # noqa: E501
    assert receive("public", frame(diff), NS, out) is FrameStatus.PROCESSED
    (book,) = protocol.books()
    assert book.synced and (book.best_bid, book.best_ask) == (100.5, 101.0)
    gap = '{"channel":"book","symbol":"BTC/USDT","type":"update","seq":13,"prev_seq":12,"ts":NOW}'
    assert receive("public", frame(gap), NS, out) is FrameStatus.PROCESSED
    assert not protocol.books()[0].synced and protocol.take_reconnects() == ["public"]
    assert [e.kind for e in out.events] == [EventKind.SYNCED, EventKind.GAP]
    for bad, reason in [
        (b"{nope", "malformed_json"),
        (b'{"channel":"trades","symbol":"ETH/USDT"}', "unknown_symbol"),
        (b'{"channel":"candles","symbol":"BTC/USDT"}', "unknown_message"),
        (frame(trade.replace('"100.5"', '"nan"')), "invalid_field"),
    ]:
        with pytest.raises(RejectedFrame) as rejected:
            receive("public", bad, NS, out)
        assert rejected.value.reason == reason

    # the stored rows continue one another under the registered book rule
    rows = out.book
    snapshot_u = rows[0].update_id
    diffs = [r for r in rows if not r.snapshot]
    ok = BOOK_RULE.after_snapshot(
        np.array([r.first_update_id for r in diffs], np.int64),
        np.array([r.update_id for r in diffs], np.int64),
        np.array([r.prev_update_id for r in diffs], np.int64),
        np.full(len(diffs), snapshot_u, np.int64),
    )
    assert ok.all()


def test_a_bad_configuration_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="does not serve candles"):
        TemplateVenue(VenueConfig(market="spot", symbols=("A/B",), channels=(Channel.CANDLES,)))
