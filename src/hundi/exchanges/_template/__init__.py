"""A documented skeleton of an exchange folder: copy it to ``hundi/exchanges/<venue>/``.

This package is deliberately NOT registered (no ``hundi.exchanges`` entry point names it), so
``hundi collect``, ``hundi replay`` and ``hundi simulate`` never offer it; it is imported and
type-checked like any other code, so it cannot rot unseen. ``docs/adding-an-exchange.md`` walks
through the steps; in short:

1. ``symbols.py``: native ↔ normalized symbols.
2. ``protocol.py``: the sans-I/O :class:`~hundi.exchanges.base.VenueProtocol` (wire format,
   records, book sync, frame accounting).
3. ``book.py``: the continuity rule of the stored book rows (``book_rule``).
4. This file: the factory that builds the protocol from a
   :class:`~hundi.exchanges.base.VenueConfig`, and the registration ``EXCHANGE``, which
   ``pyproject.toml`` names::

       [project.entry-points."hundi.exchanges"]
       <venue> = "hundi.exchanges.<venue>:EXCHANGE"

5. Optionally ``capture.py``: ``infer_capture(files, market) -> VenueConfig`` for foreign
   recordings (``hundi replay`` of files that are not our captures, and the recording tests);
   optionally a simulator in ``hundi/simulator/<venue>/`` (``SIMULATOR.md`` here).
"""

from __future__ import annotations

from hundi.exchanges._template.book import BOOK_RULE
from hundi.exchanges._template.protocol import EXCHANGE as NAME
from hundi.exchanges._template.protocol import TemplateProtocol
from hundi.exchanges.base import VenueConfig
from hundi.exchanges.registry import Exchange


def TemplateVenue(config: VenueConfig) -> TemplateProtocol:
    """Build the protocol for ``config``; raises ValueError on a bad configuration.

    A venue with private channels (``orders``/``fills``) also takes ``credentials`` and, when
    none are given and ``config.authenticate`` is true, loads them with
    :func:`hundi.exchanges.credentials.require_credentials` (see ``hundi.exchanges.bitfinex``).
    """
    return TemplateProtocol(config)


EXCHANGE = Exchange(
    name=NAME,  # the records' ``exchange`` and the CLI name: the entry point's name too
    venue=TemplateVenue,
    book_rule=BOOK_RULE,  # None for a venue without an L2 book or without sequence ids
    # infer_capture=infer_capture,  # from capture.py, if foreign recordings can be replayed
    # simulator="hundi.simulator.<venue>.command:<venue>",  # the click command, loaded lazily
    # recordings=("NAME",),  # ../shared/recordings/NAME.* are this venue's traffic
)

__all__ = ["EXCHANGE", "TemplateProtocol", "TemplateVenue"]
