"""Store URL and ``.cassandra.env`` parsing (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cassandra import ConsistencyLevel

from hundi.stores.base import StoreError
from hundi.stores.cassandra.settings import load_settings, replication_cql


def test_defaults_and_url_parts(tmp_path: Path) -> None:
    settings = load_settings("cassandra://alice@db1,db2:9142/ticks", environ={}, cwd=tmp_path)
    assert settings.hosts == ("db1", "db2")
    assert settings.port == 9142
    assert settings.keyspace == "ticks"
    assert settings.user == "alice"
    assert settings.password is None
    assert settings.consistency == ConsistencyLevel.LOCAL_QUORUM
    assert settings.replication == {"class": "SimpleStrategy", "replication_factor": "1"}
    assert settings.ttl_s == 0
    assert settings.where == "db1:9142,db2:9142/ticks"


def test_without_hosts_in_the_url_the_seeds_are_the_contact_points(tmp_path: Path) -> None:
    seeds = {"CASSANDRA_SEEDS": "10.0.0.1, 10.0.0.2:9142"}
    settings = load_settings("cassandra:///ticks", environ=seeds, cwd=tmp_path)
    assert (settings.hosts, settings.port, settings.keyspace) == (
        ("10.0.0.1", "10.0.0.2"),
        9142,
        "ticks",
    )


def test_ipv6_hosts_and_default_keyspace(tmp_path: Path) -> None:
    settings = load_settings("cassandra://[::1]:9043", environ={}, cwd=tmp_path)
    assert settings.hosts == ("::1",)
    assert settings.port == 9043
    assert settings.keyspace == "hundi"


def test_env_files_environment_and_url_precedence(tmp_path: Path) -> None:
    (tmp_path / ".cassandra.env").write_text(
        "CASSANDRA_KEYSPACE=from_file\nCASSANDRA_CONSISTENCY=one\nCASSANDRA_TTL=60\n"
        "CASSANDRA_REPLICATION={'class': 'NetworkTopologyStrategy', 'dc1': 3}\n"
        "CASSANDRA_USER=file_user\nCASSANDRA_DC=dc1\n"
    )
    (tmp_path / ".secret.cassandra.env").write_text("CASSANDRA_PASSWORD=hunter2\n")
    settings = load_settings("cassandra://localhost", environ={"CASSANDRA_TTL": "7"}, cwd=tmp_path)
    assert settings.keyspace == "from_file"
    assert settings.consistency == ConsistencyLevel.ONE
    assert settings.ttl_s == 7  # the environment wins over the file
    assert settings.user == "file_user"
    assert settings.password == "hunter2"
    assert "hunter2" not in repr(settings)
    assert settings.local_dc == "dc1"
    assert replication_cql(settings.replication) == (
        "{'class': 'NetworkTopologyStrategy', 'dc1': '3'}"
    )
    from_url = load_settings("cassandra://bob@localhost/url_ks", environ={}, cwd=tmp_path)
    assert (from_url.user, from_url.keyspace) == ("bob", "url_ks")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CASSANDRA_CONSISTENCY", "MOSTLY"),
        ("CASSANDRA_TTL", "-1"),
        ("CASSANDRA_REPLICATION", "{'replication_factor': 1}"),
        ("CASSANDRA_REPLICATION", "{'class': 'x'}; DROP KEYSPACE hundi"),
        ("CASSANDRA_REPLICATION", "{'class': \"Simple'Strategy\"}"),
        ("CASSANDRA_CONCURRENCY", "0"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(StoreError, match=key):
        load_settings("cassandra://localhost/ks", environ={key: value}, cwd=tmp_path)


@pytest.mark.parametrize(
    "url",
    [
        "cassandra:///ks",
        "cassandra://h1:9042,h2:9043/ks",
        "cassandra://localhost/bad-name",
        "cassandra://127.0.0.1:74578/ks",  # once connected to 9042 (the port wrapped)
        "cassandra://h1:0/ks",
    ],
)
def test_bad_urls(tmp_path: Path, url: str) -> None:
    with pytest.raises(StoreError):
        load_settings(url, environ={}, cwd=tmp_path)


def test_chunked_channels_codec_and_chunk_size(tmp_path: Path) -> None:
    from hundi.records import Channel

    default = load_settings("cassandra://h/ks", environ={}, cwd=tmp_path)
    assert default.chunked_channels == {
        Channel.TRADES, Channel.BBO, Channel.BOOK, Channel.BOOK_L3
    }  # fmt: skip
    assert (default.chunk_codec, default.chunk_rows) == ("zstd", 100_000)
    chosen = load_settings(
        "cassandra://h/ks",
        environ={
            "CASSANDRA_CHUNKED_CHANNELS": " trades , TICKER",
            "CASSANDRA_CHUNK_CODEC": "LZ4",
            "CASSANDRA_CHUNK_ROWS": "5000",
        },
        cwd=tmp_path,
    )
    assert chosen.chunked_channels == {Channel.TRADES, Channel.TICKER}
    assert (chosen.chunk_codec, chosen.chunk_rows) == ("lz4", 5000)
    for text, expected in (("none", frozenset()), ("all", frozenset(Channel))):
        env = {"CASSANDRA_CHUNKED_CHANNELS": text}
        assert load_settings("cassandra://h/ks", environ=env, cwd=tmp_path).chunked_channels == (
            expected
        )
    for key, bad, message in (
        ("CASSANDRA_CHUNKED_CHANNELS", "trades,nope", "channel names separated by commas"),
        ("CASSANDRA_CHUNK_CODEC", "gzip", "zstd or lz4"),
        ("CASSANDRA_CHUNK_ROWS", "0", "a positive integer"),
    ):
        with pytest.raises(StoreError, match=f"{key} must be {message}"):
            load_settings("cassandra://h/ks", environ={key: bad}, cwd=tmp_path)
