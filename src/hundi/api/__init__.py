"""hundi's HTTP API for dashboards (``hundi serve``): stored data as JSON rows for Grafana.

Endpoints (``GET``; ``from``/``to`` in epoch ms, ``interval`` like ``1s``/``1m``):
``/api/v1/health``, ``/api/v1/symbols``, ``/api/v1/bars``, ``/api/v1/book``,
``/api/v1/coverage``, ``/api/v1/lag``, ``/api/v1/events``. See :mod:`hundi.api.queries`.
"""

from hundi.api.queries import Limits
from hundi.api.server import create_app

__all__ = ["Limits", "create_app"]
