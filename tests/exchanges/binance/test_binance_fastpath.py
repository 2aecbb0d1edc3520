"""The C fast path (``_fastpath.c``) against the Python path it shortcuts.

It must never decide anything differently: for every frame, the records, the route's state,
the status and any refusal are those of the Python path alone. Held over the real recordings,
the simulator's generated market, and random frames around the shape it accepts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hundi.accounting import Accounting
from hundi.capture.reader import read_capture
from hundi.capture.replay import Batch, replay_events
from hundi.exchanges.base import FrameStatus, RecordSink, RejectedFrame, VenueConfig
from hundi.exchanges.binance import BinanceVenue, fastpath, marketdata
from hundi.exchanges.binance.protocol import BinanceProtocol
from hundi.exchanges.binance.routes import AggTradeRoute, TradeIdRoute
from hundi.records import Channel
from hundi.simulator.binance.rules import BinanceVariant

CHANNELS = (Channel.TRADES, Channel.BBO, Channel.BOOK, Channel.CANDLES, Channel.TICKER)
RECV_NS = 1_796_400_000_000_000_000
assert fastpath.receive is not None, "the C fast path is not built: scripts/install.sh"
C_RECEIVE: Callable[..., Any] = fastpath.receive


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the frames the C path handled (the others went to Python)."""
    seen = {"handled": 0, "declined": 0}

    def receive(*args: Any) -> Any:
        status = C_RECEIVE(*args)
        seen["handled" if status is not None else "declined"] += 1
        return status

    monkeypatch.setattr(marketdata, "FAST_RECEIVE", receive)
    return seen


def venue(market: str, symbols: tuple[str, ...]) -> BinanceProtocol:
    return BinanceVenue(VenueConfig(market=market, symbols=symbols, channels=CHANNELS))


def replayed(market: str, symbols: tuple[str, ...], files: list[Path]) -> tuple[Any, ...]:
    """Every record, the accounting and the books of one replay of ``files``."""
    sink = RecordSink()

    def collect(batch: Batch) -> None:
        for channel, records in batch.items():
            getattr(sink, channel.value).extend(records)

    protocol = venue(market, symbols)
    accounting = Accounting()
    replay_events(read_capture(files), protocol, collect, accounting)
    records = {c.value: list(getattr(sink, c.value)) for c in Channel}
    return records, repr(vars(accounting)), repr(protocol.books())


@pytest.mark.parametrize(
    ("name", "market", "symbols"),
    [
        ("BINANCE", "spot", ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR")),
        ("BINANCE_FUTURES", "usdm", ("SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT")),
    ],
)
def test_the_recordings_give_the_same_records_either_way(
    recordings_dir: Path,
    counted: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    market: str,
    symbols: tuple[str, ...],
) -> None:
    files = [recordings_dir / f"{name}.{part}" for part in ("0", "ws.1.0", "http.0.0")]
    fast = replayed(market, symbols, files)
    assert counted["handled"] > 50  # the common frames really took the C path
    monkeypatch.setattr(marketdata, "FAST_RECEIVE", None)
    assert fast == replayed(market, symbols, files)
    assert fast[0]["trades"] and fast[0]["bbo"]


def generated(variant: BinanceVariant, symbols: tuple[str, ...], n: int) -> list[bytes]:
    """``n`` frames of the simulator's own market (``bench/frames.py``)."""
    bench = str(Path(__file__).resolve().parents[3] / "bench")
    sys.path.insert(0, bench)
    try:
        from frames import generate
    finally:
        sys.path.remove(bench)
    # Event times from RECV_NS, not the clock: the C path declines (rightly) frames whose time
    # is far from the receive time, so clock-based frames stopped taking it a day later.
    start_ms = RECV_NS // 1_000_000
    return [data for _, data in generate(variant, symbols, n, start_ms=start_ms).frames]


@pytest.mark.parametrize("variant", [BinanceVariant.SPOT, BinanceVariant.USDM])
def test_the_simulators_market_gives_the_same_records_and_state_either_way(
    counted: dict[str, int], monkeypatch: pytest.MonkeyPatch, variant: BinanceVariant
) -> None:
    symbols = ("BTCUSDT", "ETHUSDT")
    frames = generated(variant, symbols, 6000)

    def run() -> tuple[Any, ...]:
        protocol = venue(variant.value, symbols)
        key = protocol.connections()[0].key
        sink = RecordSink()
        statuses = []
        for n, frame in enumerate(frames):
            try:
                statuses.append(protocol.receive(key, frame, RECV_NS + n, sink))
            except RejectedFrame as exc:
                statuses.append(exc.reason)
        records = {c.value: list(getattr(sink, c.value)) for c in Channel}
        routes = protocol.market_data._routes
        ids = {k: (r.ids.first, r.ids.last) for k, r in routes.items() if type(r) is AggTradeRoute}
        return records, statuses, ids

    fast = run()
    assert counted["handled"] > 4000
    monkeypatch.setattr(marketdata, "FAST_RECEIVE", None)
    assert fast == run()


# --- random frames around the accepted shape ------------------------------------------------


def _decimal(mantissa: int, places: int) -> str:
    if not places:
        return str(mantissa)
    whole, fraction = divmod(mantissa, 10**places)
    return f"{whole}.{fraction:0{places}d}"


# as Binance quotes prices and sizes: up to 8 places, ~15 digits, trailing zeros
BINANCE_DECIMALS = st.builds(_decimal, st.integers(1, 10**15), st.integers(0, 8))
DECIMALS = st.one_of(
    *[BINANCE_DECIMALS] * 16,
    st.from_regex(r"\A(0|[1-9][0-9]{0,24})(\.[0-9]{1,25})?\Z"),
    st.sampled_from(["0", "0.0", "0.00000000", "1e5", "1E-3", "-1.5", "01.5", "1.", ".5",
                     " 1", "+1", "nan", "inf", "1_0", "", "9" * 70, "1" * 30 + "." + "1" * 40,
                     "1000000000000000000", "1000000000000000001", "999999999999999999.9",
                     "9007199254740993", "0.1000000000000000055511151231257827"]),
)  # fmt: skip
INTS = st.one_of(
    st.integers(min_value=0, max_value=2**63 - 1),
    st.integers(min_value=-5, max_value=5),
    st.sampled_from([10**18, 10**18 - 1, 2**53 + 1, 9223372036854, 9223372036855]),
)
WRONG = st.sampled_from(
    ['"1"', "1.0", "1e3", "null", '"x"', "[]", "{}", '"\\u0031"', "-0", "true", '"0.1"', "7"]
)


def raw_value(kind: str) -> st.SearchStrategy[str]:
    """A JSON value text for a field of ``kind``: mostly right, sometimes off."""
    right = {
        "int": INTS.map(str),
        "dec": DECIMALS.map(lambda s: json.dumps(s)),
        "bool": st.sampled_from(["true", "false"]),
    }[kind]
    return st.one_of(*[right] * 25, WRONG)


AGG_FIELDS = {"a": "int", "p": "dec", "q": "dec", "f": "int", "l": "int", "T": "int",
              "m": "bool", "E": "int"}  # fmt: skip
BBO_FIELDS = {"u": "int", "b": "dec", "B": "dec", "a": "dec", "A": "dec", "E": "int"}
FIELDS_IGNORED = st.sampled_from(['"e":"aggTrade"', '"s":"BTCUSDT"', '"M":true', '"k":null',
                                  '"n":-1.5e-3', '"ab":0'])  # fmt: skip
ODD_FIELDS = st.sampled_from(['"x":[1,2]', '"y":{"z":1}', '"st":"a\\"b"', '"\u00fc":1',
                              '"w":"\u00fc"', '"v":01', '"r":1.', '"q2":"\t"'])  # fmt: skip
EXTRA = st.one_of(*[FIELDS_IGNORED] * 6, ODD_FIELDS)


@st.composite
def payloads(draw: st.DrawFn, fields: dict[str, str], next_id: int) -> str:
    parts = []
    for key, kind in fields.items():
        if draw(st.integers(0, 60)) == 0:
            continue  # a field missing now and then
        if key in ("T", "E") and draw(st.integers(0, 9)):
            # near the receive time, sometimes just outside the 24 h bound
            value = str(RECV_NS // 1_000_000 + draw(st.integers(-(10**8), 10**8)) // 3)
        elif key == "a" and kind == "int" and draw(st.integers(0, 9)):
            value = str(next_id)  # the next trade id, mostly
        else:
            value = draw(raw_value(kind))
        parts.append(f'"{key}":{value}')
        if draw(st.integers(0, 30)) == 0:
            parts.append(f'"{key}":{draw(raw_value(kind))}')  # repeated
    parts.extend(draw(st.lists(EXTRA, max_size=2)))
    order = draw(st.permutations(parts))
    return "{" + ",".join(order) + "}"


@st.composite
def frames(draw: st.DrawFn) -> tuple[str, bytes, int]:
    stream = draw(st.sampled_from(["btcusdt@aggTrade", "btcusdt@bookTicker", "btcusdt@depth"]))
    fields = AGG_FIELDS if stream.endswith("aggTrade") else BBO_FIELDS
    last = draw(st.sampled_from([-1, 5, 5, 5, 2**63 - 2]))
    payload = draw(payloads(fields, next_id=last + 1))
    frame = '{"stream":"' + stream + '","data":' + payload + "}"
    if draw(st.integers(0, 10)) == 0:
        odd = [frame + " ", " " + frame, frame.replace(":", ": ", 1), frame[:-1], frame + "}"]
        frame = draw(st.sampled_from([*odd, frame.replace('"data"', '"dat"')]))
    return stream, frame.encode(), last


def outcome(protocol: BinanceProtocol, frame: bytes, last: int, recv_ns: int) -> tuple[Any, ...]:
    sink = RecordSink()
    route = protocol.market_data._routes["btcusdt@aggTrade"]
    assert isinstance(route, TradeIdRoute)
    route.ids.first = route.ids.last = last
    try:
        result: Any = protocol.receive("md", frame, recv_ns, sink)
    except RejectedFrame as exc:
        result = (exc.reason, exc.detail)
    records = {c.value: list(getattr(sink, c.value)) for c in Channel}
    return result, records, (route.ids.first, route.ids.last, list(route.ids.holes))


def assert_same_either_way(frame: bytes, last: int, recv_ns: int) -> None:
    fast = outcome(FAST_VENUE, frame, last, recv_ns)
    original = marketdata.FAST_RECEIVE
    marketdata.FAST_RECEIVE = None
    try:
        slow = outcome(SLOW_VENUE, frame, last, recv_ns)
    finally:
        marketdata.FAST_RECEIVE = original
    assert fast == slow, frame


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.sampled_from([RECV_NS, 0, 2**62]))
def test_random_frames_come_out_the_same_either_way(
    drawn: tuple[str, bytes, int], recv_ns: int
) -> None:
    """Hypothesis draws frames around the shape the C path accepts (wrong types, decimals it
    must convert exactly, odd JSON, repeats, holes, times out of bounds): each gives the same
    status or refusal, records and id state with and without it."""
    _, frame, last = drawn
    assert_same_either_way(frame, last, recv_ns)


@st.composite
def common_frames(draw: st.DrawFn) -> tuple[str, bytes, int]:
    """Frames as Binance sends them, in any key order, with realistic values that now and then
    fall just outside what is valid (a zero size, a crossed quote, an id out of sequence, a
    time a day away): nearly all of them take the C path, or should be declined by it."""
    last = draw(st.sampled_from([-1, 5, 5, 5, 1_419_452_437]))
    when = str(RECV_NS // 1_000_000 + draw(st.integers(-(10**8), 10**8)) // 3)
    price, size, other = (json.dumps(draw(BINANCE_DECIMALS)) for _ in range(3))
    if draw(st.booleans()):
        stream = "btcusdt@aggTrade"
        trade_id = last + 1 if draw(st.integers(0, 9)) else draw(INTS)
        first = draw(st.integers(0, 2**62))
        last_id = str(first + draw(st.integers(0, 9)))
        fields = {"e": '"aggTrade"', "E": when, "s": '"BTCUSDT"', "a": str(trade_id),
                  "p": price, "q": size, "f": str(first), "l": last_id,
                  "T": when, "m": draw(st.sampled_from(["true", "false"])),
                  "M": "true"}  # fmt: skip
    else:
        stream = "btcusdt@bookTicker"
        fields = {"u": str(draw(st.integers(0, 2**62))), "s": '"BTCUSDT"', "b": price, "B": size,
                  "a": other, "A": json.dumps(draw(BINANCE_DECIMALS))}  # fmt: skip
        if draw(st.booleans()):  # USD-M: event and transaction times
            fields |= {"e": '"bookTicker"', "E": when, "T": when}
    if draw(st.integers(0, 9)) == 0:
        key = draw(st.sampled_from(sorted(fields)))
        fields[key] = draw(st.sampled_from(['"0"', '"0.0"', "0", '"1e5"', "null", '"-1"']))
    order = draw(st.permutations(list(fields.items())))
    payload = ",".join(f'"{k}":{v}' for k, v in order)
    return stream, f'{{"stream":"{stream}","data":{{{payload}}}}}'.encode(), last


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(common_frames())
def test_common_frames_come_out_the_same_either_way(drawn: tuple[str, bytes, int]) -> None:
    _, frame, last = drawn
    assert_same_either_way(frame, last, RECV_NS)


FAST_VENUE = venue("spot", ("BTCUSDT",))
SLOW_VENUE = venue("spot", ("BTCUSDT",))


@settings(max_examples=3000, deadline=None)
@given(DECIMALS)
def test_decimals_convert_exactly_as_msgspec_does(text: str) -> None:
    """Binance quotes every price and size as a decimal string; the C path converts the ones
    it accepts correctly rounded, to the very float msgspec's lax decoder makes."""
    frame = (
        '{"stream":"btcusdt@bookTicker","data":{"u":1,"b":"1","B":"1","a":'
        + json.dumps(text)
        + ',"A":"1"}}'
    ).encode()
    sink = RecordSink()
    status = C_RECEIVE(frame, RECV_NS, FAST_VENUE.market_data._routes, sink)
    try:
        expected = msgspec.json.decode(json.dumps(text), type=float, strict=False)
    except msgspec.ValidationError:
        assert status is None
        return
    if status is None:  # declined (out of range, crossed, odd): nothing recorded
        assert sink.bbo == []
        return
    assert status is FrameStatus.PROCESSED
    assert sink.bbo[0].ask_price == expected and str(sink.bbo[0].ask_price) == str(expected)


def test_without_the_built_extension_every_frame_takes_the_python_path(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import hundi.exchanges.binance as package

    monkeypatch.setitem(sys.modules, "hundi.exchanges.binance._fastpath", None)
    monkeypatch.delattr(package, "_fastpath")
    with caplog.at_level("WARNING"):
        assert fastpath._load() is None
    assert "C fast path is not built" in caplog.text


def test_a_sink_whose_lists_are_not_lists_takes_the_python_path() -> None:
    """The C path appends only to exact lists, checked before any side effect; another kind
    of sink (found by review: a deque) is the Python path's to fill."""
    import collections

    class Deques:
        trades: collections.deque[Any] = collections.deque()
        bbo: collections.deque[Any] = collections.deque()

    routes = FAST_VENUE.market_data._routes
    route = routes["btcusdt@aggTrade"]
    assert isinstance(route, TradeIdRoute)
    route.ids.first = route.ids.last = 99
    trade = (
        b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1796400000000,"a":100,'
        b'"p":"1.5","q":"2","f":1,"l":1,"T":1796400000000,"m":false}}'
    )
    bbo = b'{"stream":"btcusdt@bookTicker","data":{"u":1,"b":"1","B":"1","a":"2","A":"1"}}'
    assert C_RECEIVE(trade, RECV_NS, routes, Deques()) is None
    assert C_RECEIVE(bbo, RECV_NS, routes, Deques()) is None
    assert route.ids.last == 99  # untouched
    sink = RecordSink()
    assert C_RECEIVE(trade, RECV_NS, routes, sink) is FrameStatus.PROCESSED
    assert route.ids.last == 100 and sink.trades[0].price == 1.5


def test_a_fast_path_built_from_another_version_is_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import hundi.exchanges.binance as package

    class Stale:
        @staticmethod
        def configure(*args: Any) -> None:
            raise TypeError("function takes exactly 8 arguments (9 given)")

    monkeypatch.setattr(package, "_fastpath", Stale, raising=False)
    with caplog.at_level("WARNING"):
        assert fastpath._load() is None
    assert "takes exactly 8 arguments" in caplog.text
