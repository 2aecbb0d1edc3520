"""The one place the WebSocket client is chosen: ``default_client``."""

from __future__ import annotations

import importlib.util

import pytest

from hundi.connection.client import AiohttpClient, default_client

HAVE_PICOWS = importlib.util.find_spec("picows") is not None


def test_aiohttp_when_asked_whatever_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUNDI_WS_CLIENT", "picows")
    assert isinstance(default_client("aiohttp"), AiohttpClient)
    assert isinstance(default_client(" AIOHTTP "), AiohttpClient)


def test_the_environment_decides_when_nothing_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUNDI_WS_CLIENT", "aiohttp")
    assert isinstance(default_client(), AiohttpClient)


def test_picows_by_default_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUNDI_WS_CLIENT", raising=False)
    expected = "picows" if HAVE_PICOWS else "aiohttp"
    assert default_client().name == expected
    assert default_client("picows").name == expected
