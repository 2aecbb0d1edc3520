"""What an exchange folder registers, so generic code never names a venue.

Each exchange package exposes one :class:`Exchange` as its ``hundi.exchanges`` entry point
(``pyproject.toml``). Collect, replay, capture inference, ``hundi simulate``, the stored-book
rules and the recording tests all find a venue through it: adding a venue is its folder plus
one entry-point line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from hundi.book.rule import UNCHECKED, ContinuityRule
from hundi.exchanges.base import VenueConfig, VenueProtocol


class VenueFactory(Protocol):
    def __call__(self, config: VenueConfig) -> VenueProtocol: ...


# A capture's files (and the market asked for, or None) → the venue config that replays it;
# raises ValueError with a one-line reason when the files are not this venue's.
CaptureInference = Callable[[Sequence[Path], str | None], VenueConfig]


@dataclass(frozen=True)
class Exchange:
    """One venue's registration. Only ``name`` and ``venue`` are required."""

    name: str  # the records' ``exchange`` value and the CLI name
    venue: VenueFactory  # builds the sans-I/O protocol for a config
    # How this venue's stored L2 rows continue one another (``hundi.book``); None: no L2 book.
    book_rule: ContinuityRule | None = None
    # Builds a replay config from third-party capture files (``hundi replay`` without --config).
    infer_capture: CaptureInference | None = None
    # "module:attribute" of the click command ``hundi simulate <name>`` runs (imported lazily).
    simulator: str = ""
    # File-name prefixes in ``../shared/recordings`` that are this venue's traffic.
    recordings: tuple[str, ...] = ()
    # Other recording names this venue's traffic is published under that ``../shared/recordings``
    # does not hold (so no test replays them): ``hundi replay`` still recognises them by name.
    other_recordings: tuple[str, ...] = ()


def exchange(name: str) -> Exchange:
    """The registered exchange ``name``; ValueError (one line, with the known names) if none."""
    found = entry_points(group="hundi.exchanges", name=name)
    if not found:
        raise ValueError(f"unknown exchange {name!r}; known: {', '.join(exchange_names())}")
    entry = next(iter(found)).load()
    if not isinstance(entry, Exchange):
        raise TypeError(f"hundi.exchanges entry {name!r} is not an Exchange: {entry!r}")
    return entry


def exchanges() -> dict[str, Exchange]:
    """Every registered exchange by name (each entry point loaded)."""
    return {ep.name: exchange(ep.name) for ep in entry_points(group="hundi.exchanges")}


def exchange_names() -> list[str]:
    """Registered names without importing any venue (cheap: for help texts and errors)."""
    return sorted(ep.name for ep in entry_points(group="hundi.exchanges"))


@cache
def book_rule(name: str) -> ContinuityRule:
    """The continuity rule of exchange ``name``'s stored book rows; for an exchange that is not
    registered or declares none, :data:`~hundi.book.rule.UNCHECKED` (only snapshots restart)."""
    try:
        rule = exchange(name).book_rule
    except ValueError:
        return UNCHECKED
    return UNCHECKED if rule is None else rule
