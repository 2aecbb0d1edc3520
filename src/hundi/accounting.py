"""Frame accounting: every received frame is processed, filtered or rejected-with-reason.

The invariant ``received == processed + filtered + rejected`` holds at every instant because
the three outcomes are counted in the same call that counts the frame as received.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hundi.exchanges.base import FrameStatus
from hundi.records import Channel


class Accounting:
    """Counters for the run summary (``--summary-json``)."""

    def __init__(self) -> None:
        self.received = 0
        self.processed = 0
        self.filtered = 0
        self.rejected: Counter[str] = Counter()
        self.records: Counter[str] = Counter({c.value: 0 for c in Channel})
        self.gaps = 0
        self.resyncs = 0
        self.reconnects = 0

    def count(self, status: FrameStatus) -> None:
        self.received += 1
        if status is FrameStatus.PROCESSED:
            self.processed += 1
        else:
            self.filtered += 1

    def reject(self, reason: str) -> None:
        self.received += 1
        self.rejected[reason] += 1

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def balanced(self) -> bool:
        return self.received == self.processed + self.filtered + self.rejected_total

    def summary(self, **extra: Any) -> dict[str, Any]:
        """The run summary; ``extra`` adds run facts (duration, stores, per-stream stats)."""
        return {
            "frames": {
                "received": self.received,
                "processed": self.processed,
                "filtered": self.filtered,
                "rejected": self.rejected_total,
                "rejected_reasons": dict(sorted(self.rejected.items())),
            },
            "records": dict(sorted(self.records.items())),
            "gaps": self.gaps,
            "resyncs": self.resyncs,
            "reconnects": self.reconnects,
            "balanced": self.balanced(),
            **extra,
        }
