"""Exchange simulators for tests and benchmarks: the real wire protocol over real sockets.

One folder per venue (``hundi.simulator.<venue>``), its click command registered by the venue's
exchange (``simulator=`` in :class:`~hundi.exchanges.registry.Exchange`), so
``hundi simulate <venue>`` and ``SimulatorProcess(args, venue=...)`` (a subprocess that reports
the URLs to connect to) find it without an edit here. Each venue's folder documents its server
and its ground truth (e.g. the ``/sim/stats`` JSON in ``hundi.simulator.<venue>.command``).

The in-process servers and their configs live in their folders (``hundi.simulator.<venue>``).
"""

from __future__ import annotations

from hundi.simulator.process import SimulatorProcess

__all__ = ["SimulatorProcess"]
