"""Simulator settings and the ``--fault KIND[:PARAM]`` grammar.

Kept apart from the server so the CLI, tests and other packages can build a configuration
without importing aiohttp.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from hundi.simulator.binance.rules import (
    DAY_S,
    INCOMING_MSGS_PER_S,
    PING_INTERVAL_S,
    PONG_TIMEOUT_S,
    REST_WEIGHT_PER_MIN,
    BinanceVariant,
)


class FaultKind(enum.StrEnum):
    DISCONNECT = "disconnect"  # every N s: drop every client connection (no close frame)
    GAP = "gap"  # every N s: one depth and one aggTrade frame per symbol are never sent
    MALFORMED = "malformed"  # every N s: a truncated JSON text frame to every client
    DUPLICATE = "duplicate"  # every N s: the last aggTrade and depth frame are sent again
    REORDER = "reorder"  # every N s: two consecutive aggTrade (and depth) frames are swapped
    STALE_SNAPSHOT = "stale-snapshot"  # first REST depth answer per symbol predates the stream
    REST_429 = "rest-429"  # the first N depth requests answer 429 with Retry-After: 1
    SLOW_READER = "slow-reader"  # flood; a client whose unsent bytes exceed PARAM is dropped
    SHUTDOWN = "shutdown"  # N s after opening: serverShutdown, closed N s after that


# Kinds whose PARAM is required (a period or count); the others take an optional one.
_NEEDS_PARAM = {
    FaultKind.DISCONNECT,
    FaultKind.GAP,
    FaultKind.MALFORMED,
    FaultKind.DUPLICATE,
    FaultKind.REORDER,
    FaultKind.REST_429,
    FaultKind.SHUTDOWN,
}


class FaultSpecError(ValueError):
    """A ``--fault`` value that does not parse."""


@dataclass(frozen=True, slots=True)
class FaultSpec:
    kind: FaultKind
    param: float | None = None

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """``"gap:5"`` → ``FaultSpec(GAP, 5.0)``; clear error for anything else."""
        name, _, raw = text.strip().partition(":")
        try:
            kind = FaultKind(name)
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise FaultSpecError(f"unknown fault {name!r} (known: {known})") from None
        param: float | None = None
        if raw:
            try:
                param = float(raw)
            except ValueError:
                raise FaultSpecError(f"fault {name}: parameter {raw!r} is not a number") from None
            if param <= 0:
                raise FaultSpecError(f"fault {name}: parameter must be > 0")
        elif kind in _NEEDS_PARAM:
            raise FaultSpecError(f"fault {name} needs a parameter: {name}:N")
        return cls(kind, param)

    def __str__(self) -> str:
        return self.kind.value if self.param is None else f"{self.kind.value}:{self.param:g}"


@dataclass(slots=True)
class SimulatorConfig:
    """Everything ``hundi simulate binance`` accepts; ``None`` means the market's Binance value."""

    market: BinanceVariant = BinanceVariant.SPOT
    host: str = "127.0.0.1"
    port: int = 0  # 0 = pick a free port
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    rate: float = 1000.0  # generated stream messages per second, all symbols; 0 = flat out
    seed: int = 1
    faults: tuple[FaultSpec, ...] = ()
    replay: tuple[Path, ...] = ()
    speed: str = "original"  # replay pacing: "original" or "max"
    ping_interval: float | None = None
    pong_timeout: float | None = None
    max_connection_age: float = DAY_S
    duration: float | None = None  # stop after this many seconds (CLI)
    max_send_buffer: int = 8 * 1024 * 1024  # unsent bytes per client before it is dropped
    max_incoming_per_s: int | None = None
    rest_weight_per_min: int | None = None
    depth_interval_ms: int = 100  # the fastest diff stream; REST snapshots follow it
    stats_id_ranges: int = 10_000  # id ranges kept per connection and stream (bounded memory)
    stats_closed_connections: int = 1_000  # closed connections kept in stats
    trade_history: int = 100_000  # aggTrades per symbol REST ``aggTrades`` can still answer

    def __post_init__(self) -> None:
        # accept the CLI spellings too: "usdm", "gap:5", "path/to/capture"
        self.market = BinanceVariant(self.market)
        self.faults = tuple(FaultSpec.parse(f) if isinstance(f, str) else f for f in self.faults)
        self.replay = tuple(Path(p) for p in self.replay)
        self.symbols = tuple(s.strip().upper() for s in self.symbols if s.strip())
        if not self.symbols and not self.replay:
            raise ValueError("at least one symbol is needed")
        if self.rate < 0:
            raise ValueError("rate must be >= 0")
        if self.speed not in ("original", "max"):
            raise ValueError("speed must be 'original' or 'max'")
        for path in self.replay:
            if not Path(path).is_file():
                raise ValueError(f"replay file not found: {path}")

    @property
    def effective_ping_interval(self) -> float:
        interval = self.ping_interval
        return interval if interval is not None else PING_INTERVAL_S[self.market]

    @property
    def effective_pong_timeout(self) -> float:
        return self.pong_timeout if self.pong_timeout is not None else PONG_TIMEOUT_S[self.market]

    @property
    def effective_incoming_limit(self) -> int:
        limit = self.max_incoming_per_s
        return limit if limit is not None else INCOMING_MSGS_PER_S[self.market]

    @property
    def effective_rest_weight(self) -> int:
        limit = self.rest_weight_per_min
        return limit if limit is not None else REST_WEIGHT_PER_MIN[self.market]

    def fault(self, kind: FaultKind) -> FaultSpec | None:
        """The configured fault of that kind, if any (the last one given wins)."""
        found = None
        for spec in self.faults:
            if spec.kind is kind:
                found = spec
        return found
