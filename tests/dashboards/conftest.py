"""The Grafana emulation (``grafana``) lives next to this file; the API server helpers in
tests/api (``apiserver``)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "api"))
