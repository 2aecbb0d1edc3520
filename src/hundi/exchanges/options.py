"""Venue options (strings in :class:`~hundi.exchanges.base.VenueConfig`) parsed with errors
that name the option, so a typo or an out-of-range value fails at configuration time instead of
silently falling back to a default."""

from __future__ import annotations

from collections.abc import Mapping


def int_option(options: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """Option ``name`` as an integer within ``low..high``; ``default`` when it is not given."""
    text = options.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"option {name} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise ValueError(f"option {name} must be within {low}..{high}, got {value}")
    return value
