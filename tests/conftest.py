"""Shared fixtures. The real recordings are read from ``../shared/recordings``, never copied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECORDINGS = (REPO / ".." / "shared" / "recordings").resolve()


@pytest.fixture(scope="session")
def recordings_dir() -> Path:
    """The real exchange recordings; missing under CI is a failure, not a skip."""
    if not RECORDINGS.is_dir():
        message = f"real recordings not found at {RECORDINGS}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return RECORDINGS
