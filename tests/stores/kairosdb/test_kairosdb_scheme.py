"""Which channels go to KairosDB and how (no server needed: pure conversion)."""

from __future__ import annotations

from kairos_samples import MS, T0, bbo, one_of_each, trade

from hundi.records import RECORD_TYPES, Channel
from hundi.stores.kairosdb.scheme import (
    EXCLUDED,
    Converter,
    LastPerMs,
    TradesPerMs,
    generic_rule,
    ms_of_ns,
    rule_for,
)


def test_every_channel_is_either_sent_by_a_rule_or_excluded_with_a_reason() -> None:
    for channel, record_type in RECORD_TYPES.items():
        rule = rule_for(channel)
        if rule is None:
            assert channel.value in EXCLUDED, f"{channel} has no KairosDB rule and no reason"
            continue
        names = set(record_type.__struct_fields__)
        assert set(rule.tag_names) <= names, channel
        if isinstance(rule, LastPerMs):
            assert set(rule.fields) <= names, channel
        identity = getattr(record_type, "IDENTITY", ())
        variants = [f for f in identity if not f.endswith(("_id", "_time")) and f != "price"]
        if isinstance(rule, LastPerMs) and not rule.full_state:
            # Records differing only in a variant must land in different series (unless each
            # record is a full merged state, whose last of the ms is the state of the ms).
            assert set(variants) <= set(rule.tag_names), channel


def test_generic_rule_takes_numeric_fields_and_low_cardinality_tags() -> None:
    """What a new channel gets without edits (shown on existing record types)."""
    candles = generic_rule("candles")
    assert isinstance(candles, LastPerMs)
    assert candles.tag_names == ("exchange", "symbol", "interval")
    assert "open_time" not in candles.fields and "recv_ts" not in candles.fields
    assert {"open", "close", "trade_count", "closed"} <= set(candles.fields)
    flow = generic_rule("flow")
    assert flow is not None and flow.tag_names == ("exchange", "symbol", "interval", "window")
    basis = generic_rule("basis")
    assert basis is not None and not {"ts_a", "ts_b"} & set(basis.fields)
    ticker = generic_rule("ticker")
    assert ticker is not None and ticker.series == "ticker"
    assert "last_price" in ticker.fields and "close_time" not in ticker.fields
    assert generic_rule("no-such-channel") is None


def test_ms_is_the_floor_of_ns_also_before_1970() -> None:
    assert ms_of_ns(1_999_999) == 1
    assert ms_of_ns(-1) == -1
    assert ms_of_ns(T0 + 999_999) == T0 // MS


def test_conversion_rows_per_channel() -> None:
    pending = Converter().convert(one_of_each())
    key = ("binance", "BTC-USDT")
    assert set(pending) == {
        ("trades_ms", key), ("bbo", key), ("ticker", key), ("candles", (*key, "1m")),
        ("candles", (*key, "1s")), ("events", (*key, "gap", "book")),
        ("events", (*key, "resync", "book")), ("events", ("binance", "", "reconnect", "")),
    }  # fmt: skip
    assert pending[("bbo", key)][T0 // MS] == (2.0, 1e-05, 2.5, 3.0)
    assert pending[("events", (*key, "gap", "book"))] == {T0 // MS: (2,)}


def test_late_trades_beyond_the_merge_horizon_are_not_sent_but_counted() -> None:
    converter = Converter(horizon_ms=10)
    trades = [trade(1, 0, price=1.0, size=1.0, side=1), trade(2, 50, price=1.0, size=1.0, side=1)]
    first = converter.convert({Channel.TRADES: trades})
    assert sorted(first[("trades_ms", ("binance", "BTC-USDT"))]) == [T0 // MS, T0 // MS + 50]
    late = converter.convert({Channel.TRADES: [trade(3, 0, price=2.0, size=1.0, side=1)]})
    assert late == {}  # a partial ms-0 aggregate would overwrite the complete one
    rule = converter.rule(Channel.TRADES)
    assert isinstance(rule, TradesPerMs)
    assert rule.late == {("binance", "BTC-USDT"): 1}
    within = converter.convert({Channel.TRADES: [trade(4, 45, price=3.0, size=2.0, side=-1)]})
    (row,) = within[("trades_ms", ("binance", "BTC-USDT"))].values()
    assert row[:5] == (1, 2.0, 6.0, 0.0, 2.0)


def test_lossless_only_channels_have_no_rule_and_are_counted_as_not_sent() -> None:
    lossless = ("book", "book_l3", "orders", "fills", "instruments")
    assert [rule_for(name) for name in lossless] == [None] * 5
    out: dict = {}
    assert Converter().add({Channel.BOOK: one_of_each()[Channel.BOOK]}, out) == 1
    assert Converter().add({Channel.BOOK_L3: one_of_each()[Channel.BOOK_L3]}, out) == 2
    assert out == {}


def test_bbo_keeps_the_last_update_of_each_ms() -> None:
    pending = Converter().convert({Channel.BBO: [bbo(0, 1, 1.0), bbo(0, 2, 2.0), bbo(0, 3, 1.5)]})
    assert pending[("bbo", ("binance", "BTC-USDT"))] == {T0 // MS: (1.5, 1e-05, 2.0, 3.0)}


def test_rollback_forgets_everything_since_the_commit_so_redelivery_counts_once() -> None:
    """The writer's outage path: discard() rolls back, then the spool re-sends the batches."""
    a = [trade(i, ms=i % 4, price=1.0 + i, size=1.0, side=1) for i in range(8)]
    b = [trade(i, ms=2 + i % 30, price=1.0 + i, size=0.5, side=-1) for i in range(8, 60)]
    reference = Converter(horizon_ms=10)
    want: dict = {}
    reference.add({Channel.TRADES: a}, want)
    reference.add({Channel.TRADES: b}, want)

    converter = Converter(horizon_ms=10)
    got: dict = {}
    converter.add({Channel.TRADES: a}, got)
    converter.commit()
    converter.add({Channel.TRADES: b}, {})  # written, then the store went down: discarded
    converter.rollback()
    converter.add({Channel.TRADES: b}, got)  # re-sent from the spool
    assert got == want
    rule = converter.rule(Channel.TRADES)
    assert isinstance(rule, TradesPerMs) and not rule.late


def test_a_read_s_ms_range_takes_any_datetime_without_overflow() -> None:
    """Bounds beyond pandas' ns range (year 9999 or 1000) are the open ends; a Timestamp's
    nanoseconds still round the end up to the bucket holding them."""
    from datetime import UTC, datetime

    import pandas as pd

    from hundi.stores.kairosdb.reader import LAST_MS, ms_range

    assert ms_range(datetime(1000, 1, 1), datetime(9999, 12, 31)) == (0, LAST_MS)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    first = int(start.timestamp() * 1000)
    assert ms_range(start, pd.Timestamp(start) + pd.Timedelta(1, "ns")) == (first, first)
    assert ms_range(start.replace(tzinfo=None), None) == (first, LAST_MS)
