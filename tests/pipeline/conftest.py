"""Pipeline tests reuse the in-test exchange and venue of ``tests/connection``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "connection"))
