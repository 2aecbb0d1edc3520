"""Venue protocols: one folder per exchange, found by name via ``hundi.exchanges`` entry points
(:mod:`hundi.exchanges.registry`)."""

from __future__ import annotations

from hundi.exchanges.registry import Exchange, VenueFactory, exchange, exchange_names, exchanges


def venue_factory(name: str) -> VenueFactory:
    """The protocol factory of exchange ``name`` (ValueError if it is not registered)."""
    return exchange(name).venue


__all__ = ["Exchange", "VenueFactory", "exchange", "exchange_names", "exchanges", "venue_factory"]
