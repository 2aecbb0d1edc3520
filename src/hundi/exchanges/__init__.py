"""Venue protocols: one folder per exchange, found by name via ``hundi.exchanges`` entry points."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Protocol

from hundi.exchanges.base import VenueConfig, VenueProtocol


class VenueFactory(Protocol):
    def __call__(self, config: VenueConfig) -> VenueProtocol: ...


def venue_factory(name: str) -> VenueFactory:
    found = entry_points(group="hundi.exchanges", name=name)
    if not found:
        known = sorted(ep.name for ep in entry_points(group="hundi.exchanges"))
        raise ValueError(f"unknown exchange {name!r}; known: {', '.join(known)}")
    factory: VenueFactory = next(iter(found)).load()
    return factory
