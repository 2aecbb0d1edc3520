"""Real full disks for tests: a ballast file that takes a tmpfs's space (the ``tmpfs``
fixture in ``tests/conftest.py`` mounts one; it needs root)."""

from __future__ import annotations

import os
from pathlib import Path

KIB = 1024


def fill(disk: Path, leave_bytes: int = 0) -> Path:
    """A ballast file taking all but ``leave_bytes`` of ``disk``; delete it to free space."""
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    ballast = disk / "ballast"
    with ballast.open("wb") as f:
        os.posix_fallocate(f.fileno(), 0, max(free - leave_bytes, 4 * KIB))
    return ballast
