"""KairosDB settings: precedence, KAIROSDB_URL, .kairosdb.env, clear errors (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hundi.stores.base import StoreError
from hundi.stores.kairosdb.settings import load_settings


def test_defaults_and_the_url_host() -> None:
    s = load_settings("kairosdb+http://127.0.0.1:8080", {}, environ={}, cwd=Path("/nonexistent"))
    assert s.base_url == "http://127.0.0.1:8080"
    assert s.datapoints_path == "/api/v1/datapoints"
    assert (s.ttl_s, s.metric_prefix, s.verify) == (0, "hundi", False)


def test_precedence_option_over_url_over_environment_over_env_file(tmp_path: Path) -> None:
    (tmp_path / ".kairosdb.env").write_text(
        "KAIROSDB_TTL=473040000\nKAIROSDB_METRIC_PREFIX=fromfile\nKAIROSDB_VERIFY=1\n"
        "KAIROSDB_API_DATAPOINTS=/kdb/api/v1/datapoints\n"
    )
    environ = {"KAIROSDB_METRIC_PREFIX": "fromenv"}
    s = load_settings("kairosdb+https://h:9/?ttl=60", {}, environ=environ, cwd=tmp_path)
    assert (s.base_url, s.ttl_s, s.metric_prefix, s.verify) == ("https://h:9", 60, "fromenv", True)
    assert s.datapoints_path == "/kdb/api/v1/datapoints"
    s = load_settings("kairosdb+https://h:9/?ttl=60", {"ttl": 5}, environ=environ, cwd=tmp_path)
    assert s.ttl_s == 5


def test_kairosdb_url_is_used_when_the_store_url_has_no_host(tmp_path: Path) -> None:
    environ = {"KAIROSDB_URL": "http://kdb.internal:8080", "KAIROSDB_USER": "u",
               "KAIROSDB_PASSWORD": "p"}  # fmt: skip
    s = load_settings("kairosdb+http://", {}, environ=environ, cwd=tmp_path)
    assert (s.base_url, s.user, s.password) == ("http://kdb.internal:8080", "u", "p")
    with pytest.raises(StoreError, match="no host and KAIROSDB_URL is not set"):
        load_settings("kairosdb+http://", {}, environ={}, cwd=tmp_path)


def test_bad_values_name_the_key_the_expectation_and_the_source(tmp_path: Path) -> None:
    with pytest.raises(
        StoreError,
        match=r"KAIROSDB_TTL must be a whole number of seconds \(0 = forever\), "
        r"got '-1' \(from environment\)",
    ):
        load_settings("kairosdb+http://h:1", {}, environ={"KAIROSDB_TTL": "-1"}, cwd=tmp_path)
    with pytest.raises(StoreError, match=r"KAIROSDB_METRIC_PREFIX must be .* \(from store URL\)"):
        load_settings("kairosdb+http://h:1?prefix=a b", {}, environ={}, cwd=tmp_path)
    with pytest.raises(StoreError, match="KAIROSDB_API_DATAPOINTS must be a URL path"):
        load_settings("kairosdb+http://h:1", {"datapoints_path": "api"}, environ={}, cwd=tmp_path)
