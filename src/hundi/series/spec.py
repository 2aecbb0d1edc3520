"""``--series`` specs: which derived series a feed computes, parsed once with clear errors.

Grammar (comma separated, or a YAML list of the same items)::

    bars:1s | bars:1m | bars:250ms        time bars that close on the clock
    ticks:100                             a bar every 100 trades
    volume:2.5                            a bar every 2.5 units of base volume
    book:10@1s                            top-10 book snapshot (and metrics) every second
    flow:1m@1s                            trade-flow imbalance + realized volatility over a
                                          rolling 1-minute window, one value per 1s bar
    basis:BTC-USDT/BTC-USDT-PERP@1s       mid spread and basis between two streams, every 1s
                                          (a leg may name its exchange: binance:BTC-USDT)
    grace:500ms                           how long late data may still land in its interval

Durations are an integer with a unit: ``ms``, ``s``, ``m``, ``h``, ``d``. Labels are
normalized to the largest whole unit (``60s`` → ``1m``) so one interval has one name in
every store.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

MS = 1_000_000
_UNITS = {"ms": MS, "s": 1000 * MS, "m": 60_000 * MS, "h": 3_600_000 * MS, "d": 86_400_000 * MS}
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")
DEFAULT_GRACE_NS = 500 * MS
EXAMPLE = "bars:1s,bars:1m,ticks:100,volume:10,book:10@1s,flow:1m@1s,basis:A/B@1s,grace:500ms"


class SeriesSpecError(ValueError):
    """A bad series spec; the message names the item and the expected form."""


@dataclass(frozen=True, slots=True)
class Duration:
    ns: int
    label: str


def parse_duration(text: str, *, allow_zero: bool = False) -> Duration:
    """``"1m"`` → 60 s in ns, labelled ``"1m"``; ``"90s"`` stays ``"90s"``."""
    match = _DURATION.match(text)
    if not match:
        raise SeriesSpecError(f"{text!r} is not a duration like 250ms, 1s, 5m, 1h, 1d")
    ns = int(match.group(1)) * _UNITS[match.group(2)]
    if ns < 0 or (ns == 0 and not allow_zero):
        raise SeriesSpecError(f"{text!r}: a duration must be positive")
    return Duration(ns, duration_label(ns))


def duration_label(ns: int) -> str:
    """The canonical name of a duration: its largest whole unit."""
    if ns == 0:
        return "0ms"
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNITS[unit]
        if ns % size == 0:
            return f"{ns // size}{unit}"
    raise SeriesSpecError(f"{ns} ns is not a whole number of milliseconds")


@dataclass(frozen=True, slots=True)
class TimeBars:
    interval: Duration


@dataclass(frozen=True, slots=True)
class TickBars:
    count: int

    @property
    def label(self) -> str:
        return f"ticks:{self.count}"


@dataclass(frozen=True, slots=True)
class VolumeBars:
    volume: float

    @property
    def label(self) -> str:
        return f"volume:{self.volume:g}"


@dataclass(frozen=True, slots=True)
class BookTopSpec:
    depth: int
    interval: Duration


@dataclass(frozen=True, slots=True)
class FlowSpec:
    window: Duration
    step: Duration

    @property
    def bars_per_window(self) -> int:
        return self.window.ns // self.step.ns


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of a cross-market pair: a normalized symbol, optionally on a given exchange."""

    symbol: str
    exchange: str | None = None

    def matches(self, exchange: str, symbol: str) -> bool:
        return symbol == self.symbol and (self.exchange is None or exchange == self.exchange)

    @property
    def label(self) -> str:
        return f"{self.exchange}:{self.symbol}" if self.exchange else self.symbol


@dataclass(frozen=True, slots=True)
class BasisSpec:
    leg_a: Leg
    leg_b: Leg
    interval: Duration

    @property
    def pair_symbol(self) -> str:
        """The stored ``symbol`` of the pair: both legs, joined by ``_`` (path and tag safe)."""
        return f"{self.leg_a.symbol}_{self.leg_b.symbol}"


Spec = TimeBars | TickBars | VolumeBars | BookTopSpec | FlowSpec | BasisSpec


@dataclass(frozen=True, slots=True)
class SeriesPlan:
    """Everything one feed computes, plus the grace for late data (same for all its series)."""

    specs: tuple[Spec, ...]
    grace_ns: int = DEFAULT_GRACE_NS

    def __bool__(self) -> bool:
        return bool(self.specs)


def _positive_int(text: str, item: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SeriesSpecError(f"{item!r}: {text!r} is not a whole number") from None
    if value <= 0:
        raise SeriesSpecError(f"{item!r}: {text!r} must be positive")
    return value


def _at(rest: str, item: str) -> tuple[str, Duration]:
    head, sep, interval = rest.rpartition("@")
    if not sep or not head:
        raise SeriesSpecError(f"{item!r}: expected VALUE@INTERVAL, e.g. book:10@1s")
    try:
        return head, parse_duration(interval)
    except SeriesSpecError as exc:
        raise SeriesSpecError(f"{item!r}: {exc}") from None


def _leg(text: str, item: str) -> Leg:
    exchange, sep, symbol = text.strip().rpartition(":")
    symbol = symbol.strip().upper()
    if not symbol:
        raise SeriesSpecError(f"{item!r}: a leg needs a symbol, e.g. BTC-USDT")
    return Leg(symbol, exchange.strip().lower() or None if sep else None)


def parse_item(item: str) -> Spec | Duration:
    """One spec item; a ``grace:`` item comes back as its :class:`Duration`."""
    kind, sep, rest = item.strip().partition(":")
    kind = kind.strip().lower()
    rest = rest.strip()
    if not sep or not rest:
        raise SeriesSpecError(f"{item!r}: expected KIND:VALUE, e.g. {EXAMPLE}")
    try:
        if kind == "bars":
            return TimeBars(parse_duration(rest))
        if kind == "grace":
            return parse_duration(rest, allow_zero=True)
    except SeriesSpecError as exc:
        raise SeriesSpecError(f"{item!r}: {exc}") from None
    if kind == "ticks":
        return TickBars(_positive_int(rest, item))
    if kind == "volume":
        try:
            volume = float(rest)
        except ValueError:
            raise SeriesSpecError(f"{item!r}: {rest!r} is not a number") from None
        if not (volume > 0 and math.isfinite(volume)):
            raise SeriesSpecError(f"{item!r}: the volume must be positive")
        return VolumeBars(volume)
    if kind == "book":
        depth, interval = _at(rest, item)
        return BookTopSpec(_positive_int(depth, item), interval)
    if kind == "flow":
        window_text, step = _at(rest, item)
        try:
            window = parse_duration(window_text)
        except SeriesSpecError as exc:
            raise SeriesSpecError(f"{item!r}: {exc}") from None
        if window.ns % step.ns or window.ns < 2 * step.ns:
            raise SeriesSpecError(
                f"{item!r}: the window must be a whole multiple (>= 2) of the step, e.g. flow:1m@1s"
            )
        return FlowSpec(window, step)
    if kind == "basis":
        pair, interval = _at(rest, item)
        a, slash, b = pair.partition("/")
        if not slash or not a.strip() or not b.strip():
            raise SeriesSpecError(f"{item!r}: expected basis:SYMBOL_A/SYMBOL_B@INTERVAL")
        leg_a, leg_b = _leg(a, item), _leg(b, item)
        if leg_a == leg_b:
            raise SeriesSpecError(f"{item!r}: the two legs are the same stream")
        return BasisSpec(leg_a, leg_b, interval)
    raise SeriesSpecError(
        f"{item!r}: unknown series kind {kind!r}; choose from bars, ticks, volume, book, flow, "
        "basis, grace"
    )


def parse_series(text: str | Sequence[str], where: str = "--series") -> SeriesPlan:
    """``"bars:1s,book:10@1s"`` (or a list of items) → a :class:`SeriesPlan`.

    Errors name ``where`` (the option or YAML key) and the offending item.
    """
    items = text.split(",") if isinstance(text, str) else [str(t) for t in text]
    specs: list[Spec] = []
    grace = DEFAULT_GRACE_NS
    for item in items:
        if not item.strip():
            continue
        try:
            parsed = parse_item(item)
        except SeriesSpecError as exc:
            raise SeriesSpecError(f"{where}: {exc}") from None
        if isinstance(parsed, Duration):
            grace = parsed.ns
        elif parsed not in specs:
            specs.append(parsed)
    if not specs:
        raise SeriesSpecError(f"{where}: no series given; e.g. {EXAMPLE}")
    return SeriesPlan(tuple(specs), grace)
